//===- Manifest.cpp - what a compiled module needs from the runtime -------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "Manifest.h"

#include "moe/Checkpoint/SafeTensors.h"
#include "moe_ukernel_abi.h"

#include "llvm/Support/JSON.h"

using namespace moe::rt;
namespace json = llvm::json;

llvm::StringRef moe::rt::dtypeName(moe_dtype dtype) {
  switch (dtype) {
  case MOE_DTYPE_F32:
    return "f32";
  case MOE_DTYPE_F16:
    return "f16";
  case MOE_DTYPE_BF16:
    return "bf16";
  }
  return "?";
}

size_t moe::rt::elementSize(moe_dtype dtype) {
  return dtype == MOE_DTYPE_F32 ? 4 : 2;
}

/// The manifest's `stored` of block-scaled FP8, FP4 and integer weights.
static constexpr llvm::StringLiteral kStoredF8E4M3 = "f8e4m3fn";
static constexpr llvm::StringLiteral kStoredF4E2M1 = "f4e2m1fn";
static constexpr llvm::StringLiteral kStoredI4 = "i4";
static constexpr llvm::StringLiteral kStoredI8 = "i8";
static constexpr llvm::StringLiteral kStoredSI8 = "si8";

static std::optional<moe_dtype> parseDType(llvm::StringRef name) {
  for (moe_dtype d : {MOE_DTYPE_F32, MOE_DTYPE_F16, MOE_DTYPE_BF16})
    if (dtypeName(d) == name)
      return d;
  return std::nullopt;
}

std::string Manifest::toJSON() const {
  json::Array weightArray, statsArray, knobArray, layerArray;
  for (const WeightEntry &w : weights) {
    json::Array names(w.names);
    json::Array shape(w.shape);
    json::Object entry{{"id", w.id},
                       {"names", std::move(names)},
                       {"stacked", w.stacked},
                       {"dtype", dtypeName(w.dtype)},
                       {"shape", std::move(shape)}};
    if (w.device)
      entry["device"] = true;
    if (w.stored)
      entry["stored"] = dtypeName(*w.stored);
    if (w.scales) {
      entry["stored"] = w.scales->bits == 4 ? kStoredI4
                        : w.scales->bytes   ? kStoredSI8
                        : w.scales->bits    ? kStoredI8
                        : w.scales->fp4     ? kStoredF4E2M1
                                            : kStoredF8E4M3;
      entry["scales"] = json::Array(w.scales->names);
      entry["scale_block"] = json::Array{w.scales->rows, w.scales->cols};
      if (w.scales->nvfp4())
        entry["global_scales"] = json::Array(w.scales->globals);
      if (w.scales->globalsInverse)
        entry["global_scales_inverse"] = true;
      if (!w.scales->zeros.empty())
        entry["zero_points"] = json::Array(w.scales->zeros);
      if (w.scales->zeroOffset)
        entry["zero_point_offset"] = w.scales->zeroOffset;
      if (!w.scales->groupIndices.empty())
        entry["group_indices"] = json::Array(w.scales->groupIndices);
      if (w.scales->packOutputs)
        entry["pack_outputs"] = true;
      if (!w.scales->packOrder.empty())
        entry["pack_order"] = json::Array(w.scales->packOrder);
    }
    if (w.bitsandbytes)
      entry["bitsandbytes"] = true;
    if (w.transposed)
      entry["transposed"] = true;
    if (w.interleaved)
      entry["interleaved"] = true;
    if (w.packing)
      entry["packing"] = json::Object{{"first_row", w.packing->firstRow},
                                      {"rows", w.packing->rows},
                                      {"dtype", dtypeName(w.packing->dtype)},
                                      {"elements", w.packing->elements}};
    weightArray.push_back(std::move(entry));
  }
  for (const StatsEntry &s : stats) {
    json::Object entry{
        {"id", s.id}, {"layer", s.layer}, {"experts", s.experts}};
    if (s.coactivation)
      entry["coactivation"] = true;
    statsArray.push_back(std::move(entry));
  }
  for (const KnobEntry &k : knobs) {
    json::Object entry{{"id", k.id},
                       {"layer", k.layer},
                       {"name", k.name},
                       {"default", k.defaultValue}};
    if (k.device)
      entry["device"] = true;
    knobArray.push_back(std::move(entry));
  }
  for (const LayerEntry &l : layers)
    layerArray.push_back(json::Object{{"name", l.name},
                                      {"hidden", l.hidden},
                                      {"output", l.output},
                                      {"dtype", dtypeName(l.dtype)},
                                      {"flops_per_token", l.flopsPerToken},
                                      {"dense_flops_per_token",
                                       l.denseFlopsPerToken},
                                      {"max_tokens", l.maxTokens}});
  json::Object root{{"abi", MOE_RUNTIME_ABI_VERSION},
                    {"checkpoint", checkpoint},
                    {"weights", std::move(weightArray)},
                    {"stats", std::move(statsArray)},
                    {"knobs", std::move(knobArray)},
                    {"layers", std::move(layerArray)}};
  if (!cudaChip.empty())
    root["cuda"] = json::Object{{"chip", cudaChip}, {"format", cudaFormat}};
  std::string text;
  llvm::raw_string_ostream os(text);
  os << json::Value(std::move(root));
  return text;
}

static llvm::Error invalid(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 "invalid model manifest: " + message);
}

/// Reads the scale tensors and block size of block-scaled FP8, of MXFP4 or
/// NVFP4 (`fp4`; NVFP4 with global scales), or of integers of `bits` bits
/// (one a byte with `bytes`), weight `w`, whose pieces have rank
/// `pieceRank`, into `entry.scales`.
static llvm::Error parseBlockScales(const json::Object &w, size_t pieceRank,
                                    bool fp4, unsigned bits, bool bytes,
                                    WeightEntry &entry) {
  const json::Array *scales = w.getArray("scales");
  const json::Array *block = w.getArray("scale_block");
  const json::Array *globals = w.getArray("global_scales");
  bool nvfp4 = fp4 && globals;
  std::string weight = (nvfp4  ? "NVFP4 weight "
                        : fp4  ? "MXFP4 weight "
                        : bits ? "integer weight "
                               : "FP8 weight ") +
                       entry.names.front();
  std::optional<bool> inverse = w.getBoolean("global_scales_inverse");
  const json::Array *zeros = w.getArray("zero_points");
  const json::Array *groups = w.getArray("group_indices");
  std::optional<int64_t> zeroOffset = w.getInteger("zero_point_offset");
  std::optional<bool> packOutputs = w.getBoolean("pack_outputs");
  const json::Array *packOrder = w.getArray("pack_order");
  if (!scales || scales->size() != entry.names.size() || !block ||
      block->size() != 2 || pieceRank < 2 ||
      (globals && (!fp4 || globals->size() != entry.names.size())) ||
      (inverse && !globals) || (!inverse && w.get("global_scales_inverse")) ||
      (zeros && (!bits || zeros->size() != entry.names.size())) ||
      (groups && (!bits || groups->size() != entry.names.size())) ||
      (zeroOffset && !zeros) || (!zeroOffset && w.get("zero_point_offset")) ||
      ((packOutputs || packOrder) && !bits) ||
      (bytes && (zeros || packOutputs || packOrder || entry.transposed)) ||
      (!packOutputs && w.get("pack_outputs")) ||
      (!packOrder && w.get("pack_order")))
    return invalid("malformed block scales of " + weight);
  WeightEntry::BlockScales result;
  result.globalsInverse = inverse.value_or(false);
  result.zeroOffset = zeroOffset.value_or(0);
  result.packOutputs = packOutputs.value_or(false);
  if (packOrder) {
    // A permutation of the fields of a word.
    std::vector<bool> seen(32 / bits, false);
    for (const json::Value &v : *packOrder) {
      std::optional<int64_t> field = v.getAsInteger();
      if (!field || *field < 0 || *field >= static_cast<int64_t>(seen.size()) ||
          seen[*field] || packOrder->size() != seen.size())
        return invalid("malformed pack order of " + weight);
      seen[*field] = true;
      result.packOrder.push_back(*field);
    }
  }
  for (auto [list, names] :
       {std::pair(scales, &result.names), std::pair(globals, &result.globals),
        std::pair(zeros, &result.zeros),
        std::pair(groups, &result.groupIndices)}) {
    if (!list)
      continue;
    for (const json::Value &n : *list) {
      auto name = n.getAsString();
      if (!name || name->empty())
        return invalid("a scale name of " + weight + " is not a name");
      names->push_back(name->str());
    }
  }
  std::optional<int64_t> rows = (*block)[0].getAsInteger(),
                         cols = (*block)[1].getAsInteger();
  if (!rows || !cols || *rows < 1 || *cols < 1)
    return invalid("malformed scale block of " + weight);
  using mlir::moe::checkpoint::Checkpoint;
  int64_t fp4Block = nvfp4 ? Checkpoint::kNVFP4Block : Checkpoint::kMXFP4Block;
  if (fp4 && (*rows != 1 || *cols != fp4Block))
    return invalid(weight + " has a scale block other than 1 x " +
                   std::to_string(fp4Block));
  bool transposed = entry.transposed; // read before the scales
  if (bits && (transposed ? *cols : *rows) != 1)
    return invalid(weight + " has a scale block of more than one " +
                   (transposed ? "stored column" : "row"));
  result.rows = *rows;
  result.cols = *cols;
  result.fp4 = fp4;
  result.bits = bits;
  result.bytes = bytes;
  entry.scales = std::move(result);
  return llvm::Error::success();
}

llvm::Expected<Manifest> Manifest::parse(llvm::StringRef text) {
  llvm::Expected<json::Value> value = json::parse(text);
  if (!value)
    return invalid(llvm::toString(value.takeError()));
  Manifest manifest;
  json::Path::Root root("manifest");
  const json::Object *object = value->getAsObject();
  if (!object)
    return invalid("not an object");
  if (object->getInteger("abi") != MOE_RUNTIME_ABI_VERSION)
    return invalid("ABI version differs from this runtime's " +
                   llvm::Twine(MOE_RUNTIME_ABI_VERSION) +
                   "; recompile the model");
  if (auto checkpoint = object->getString("checkpoint"))
    manifest.checkpoint = checkpoint->str();

  auto dtypeOf = [](const json::Object &o) -> std::optional<moe_dtype> {
    auto name = o.getString("dtype");
    return name ? parseDType(*name) : std::nullopt;
  };
  if (const json::Array *weights = object->getArray("weights")) {
    for (const json::Value &v : *weights) {
      const json::Object *w = v.getAsObject();
      WeightEntry entry;
      std::optional<int64_t> id = w ? w->getInteger("id") : std::nullopt;
      const json::Array *names = w ? w->getArray("names") : nullptr;
      const json::Array *shape = w ? w->getArray("shape") : nullptr;
      std::optional<moe_dtype> dtype = w ? dtypeOf(*w) : std::nullopt;
      if (!id || !names || !shape || !dtype)
        return invalid("malformed weight entry");
      entry.id = *id;
      entry.dtype = *dtype;
      entry.stacked = w->getBoolean("stacked").value_or(false);
      entry.device = w->getBoolean("device").value_or(false);
      for (const json::Value &n : *names) {
        auto name = n.getAsString();
        if (!name)
          return invalid("a weight name is not a string");
        entry.names.push_back(name->str());
      }
      if (names->empty())
        return invalid("a weight without tensor names");
      for (const json::Value &d : *shape) {
        auto size = d.getAsInteger();
        if (!size || *size < 0)
          return invalid("malformed weight shape");
        entry.shape.push_back(*size);
      }
      size_t pieceRank =
          entry.shape.size() - (entry.stacked && !entry.shape.empty() ? 1 : 0);
      entry.transposed = w->getBoolean("transposed").value_or(false);
      if (const json::Value *stored = w->get("stored")) {
        auto name = stored->getAsString();
        if (name == kStoredF8E4M3 || name == kStoredF4E2M1 ||
            name == kStoredI4 || name == kStoredI8 || name == kStoredSI8) {
          unsigned bits = name == kStoredI4                         ? 4
                          : name == kStoredI8 || name == kStoredSI8 ? 8
                                                                    : 0;
          if (llvm::Error err =
                  parseBlockScales(*w, pieceRank, name == kStoredF4E2M1, bits,
                                   name == kStoredSI8, entry))
            return err;
        } else {
          entry.stored = name ? parseDType(*name) : std::nullopt;
          if (!entry.stored || *entry.stored == entry.dtype)
            return invalid("malformed stored dtype of weight " +
                           entry.names.front());
        }
      }
      if (!entry.scales && (w->get("scales") || w->get("scale_block")))
        return invalid("weight " + entry.names.front() +
                       " has block scales but is not stored as FP8, FP4 or "
                       "integers");
      if (entry.transposed && pieceRank < 2)
        return invalid("weight " + entry.names.front() +
                       " is transposed but its tensors have fewer than two "
                       "dimensions");
      if (entry.transposed && entry.scales && entry.scales->fp4)
        return invalid("weight " + entry.names.front() +
                       " is MXFP4 or NVFP4 and transposed");
      entry.interleaved = w->getBoolean("interleaved").value_or(false);
      entry.bitsandbytes = w->getBoolean("bitsandbytes").value_or(false);
      if ((entry.bitsandbytes &&
           (w->get("stored") || entry.transposed || entry.interleaved)) ||
          (!entry.bitsandbytes && w->get("bitsandbytes")))
        return invalid("weight " + entry.names.front() +
                       " is bitsandbytes and stored, transposed or "
                       "interleaved, or has a malformed bitsandbytes flag");
      if (entry.interleaved &&
          (entry.stacked || entry.shape.size() < 2 || entry.shape[1] % 2 != 0))
        return invalid("weight " + entry.names.front() +
                       " is interleaved but not one tensor of rank 2 or "
                       "more with an even dimension 1");
      if (const json::Object *p = w->getObject("packing")) {
        Packing packing;
        auto firstRow = p->getInteger("first_row");
        auto rows = p->getInteger("rows");
        auto elements = p->getInteger("elements");
        std::optional<moe_dtype> packed = dtypeOf(*p);
        if (!firstRow || !rows || !elements || !packed ||
            *packed == MOE_DTYPE_F16 || entry.shape.size() < 2)
          return invalid("malformed packing of weight " + entry.names.front());
        int64_t n = entry.shape[entry.shape.size() - 2];
        int64_t k = entry.shape.back();
        int64_t matrices = entry.shape.size() == 3 ? entry.shape[0] : 1;
        if (*firstRow < 0 || *rows < 1 || *firstRow + *rows > n ||
            *elements != matrices * moe_uk_packed_elements(
                                        *rows, k, *packed == MOE_DTYPE_BF16))
          return invalid("inconsistent packing of weight " +
                         entry.names.front());
        entry.packing = Packing{*firstRow, *rows, *packed, *elements};
      }
      if (entry.id != static_cast<int64_t>(manifest.weights.size()))
        return invalid("weight ids are not consecutive");
      manifest.weights.push_back(std::move(entry));
    }
  }
  if (const json::Array *stats = object->getArray("stats")) {
    for (const json::Value &v : *stats) {
      const json::Object *s = v.getAsObject();
      std::optional<int64_t> id = s ? s->getInteger("id") : std::nullopt;
      std::optional<int64_t> experts =
          s ? s->getInteger("experts") : std::nullopt;
      auto layer = s ? s->getString("layer") : std::nullopt;
      if (!id || !experts || !layer || *experts < 1 ||
          *id != static_cast<int64_t>(manifest.stats.size()))
        return invalid("malformed statistics entry");
      manifest.stats.push_back({*id, layer->str(), *experts,
                                s->getBoolean("coactivation").value_or(false)});
    }
  }
  if (const json::Array *knobs = object->getArray("knobs")) {
    for (const json::Value &v : *knobs) {
      const json::Object *k = v.getAsObject();
      std::optional<int64_t> id = k ? k->getInteger("id") : std::nullopt;
      auto layer = k ? k->getString("layer") : std::nullopt;
      auto name = k ? k->getString("name") : std::nullopt;
      std::optional<double> value = k ? k->getNumber("default") : std::nullopt;
      if (!id || !layer || !name || !value ||
          *id != static_cast<int64_t>(manifest.knobs.size()))
        return invalid("malformed knob entry");
      manifest.knobs.push_back({*id, layer->str(), name->str(), *value,
                                k->getBoolean("device").value_or(false)});
    }
  }
  if (const json::Object *cuda = object->getObject("cuda")) {
    auto chip = cuda->getString("chip");
    auto format = cuda->getString("format");
    if (!chip || !format || chip->empty())
      return invalid("malformed cuda entry");
    manifest.cudaChip = chip->str();
    manifest.cudaFormat = format->str();
  }
  if (const json::Array *layers = object->getArray("layers")) {
    for (const json::Value &v : *layers) {
      const json::Object *l = v.getAsObject();
      auto name = l ? l->getString("name") : std::nullopt;
      auto hidden = l ? l->getInteger("hidden") : std::nullopt;
      auto output = l ? l->getInteger("output") : std::nullopt;
      std::optional<moe_dtype> dtype = l ? dtypeOf(*l) : std::nullopt;
      if (!name || !hidden || !output || !dtype)
        return invalid("malformed layer entry");
      LayerEntry entry{name->str(), *hidden, *output, *dtype};
      entry.flopsPerToken = l->getNumber("flops_per_token").value_or(0);
      entry.denseFlopsPerToken =
          l->getNumber("dense_flops_per_token").value_or(0);
      entry.maxTokens = l->getInteger("max_tokens").value_or(0);
      if (entry.maxTokens < 0)
        return invalid("malformed layer entry");
      manifest.layers.push_back(std::move(entry));
    }
  }
  return manifest;
}
