//===- SafeTensors.cpp - Hugging Face safetensors checkpoints -------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Checkpoint/SafeTensors.h"
#include "moe/Support/Npy.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

using namespace mlir::moe;
using namespace mlir::moe::checkpoint;
using llvm::StringRef;
using llvm::Twine;

/// A header larger than this is corrupt, not a model: real headers of
/// thousands of tensors take a few MB.
static constexpr uint64_t kMaxHeaderBytes = 100u << 20;

static llvm::Error fail(StringRef path, const Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 path + ": " + message);
}

static std::string formatShape(llvm::ArrayRef<int64_t> shape) {
  return "[" +
         llvm::join(llvm::map_range(
                        shape, [](int64_t d) { return std::to_string(d); }),
                    ", ") +
         "]";
}

/// Whether `text` nests arrays and objects at most `maxDepth` deep. The JSON
/// parser recurses once per level, so a corrupt header of a million '['
/// would overflow the stack; real headers nest 3 deep.
static bool isShallowJson(StringRef text, unsigned maxDepth = 64) {
  unsigned depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i; // the escaped character cannot end the string
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > maxDepth)
        return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return true;
}

/// Parses JSON text, refusing deep nesting first.
static llvm::Expected<llvm::json::Value> parseJson(StringRef text) {
  if (!isShallowJson(text))
    return llvm::createStringError("nested too deeply");
  return llvm::json::parse(text);
}

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

StringRef checkpoint::name(DType type) {
  switch (type) {
  case DType::F32:
    return "F32";
  case DType::F16:
    return "F16";
  case DType::BF16:
    return "BF16";
  case DType::F8E4M3:
    return "F8_E4M3";
  case DType::U8:
    return "U8";
  case DType::I8:
    return "I8";
  case DType::I32:
    return "I32";
  }
  llvm_unreachable("unknown dtype");
}

size_t checkpoint::elementSize(DType type) {
  switch (type) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::F8E4M3:
  case DType::U8:
  case DType::I8:
    return 1;
  }
  llvm_unreachable("unknown dtype");
}

std::optional<DType> checkpoint::parseDType(StringRef name) {
  return llvm::StringSwitch<std::optional<DType>>(name)
      .Case("F32", DType::F32)
      .Case("F16", DType::F16)
      .Case("BF16", DType::BF16)
      .Case("F8_E4M3", DType::F8E4M3)
      .Case("U8", DType::U8)
      .Case("I8", DType::I8)
      .Case("I32", DType::I32)
      .Default(std::nullopt);
}

std::optional<DType> checkpoint::parseComputeDType(StringRef name) {
  std::optional<DType> type = parseDType(name.upper());
  if (type == DType::F8E4M3 || type == DType::U8 || type == DType::I8 ||
      type == DType::I32)
    return std::nullopt;
  return type;
}

/// The element size of any dtype of the format, so that the extent of an
/// unsupported tensor is still checked; 0 for sub-byte or unknown dtypes,
/// whose extent is only checked against the file.
static size_t fileElementSize(StringRef dtype) {
  return llvm::StringSwitch<size_t>(dtype)
      .Cases({"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0"}, 1)
      .Cases({"I16", "U16", "F16", "BF16"}, 2)
      .Cases({"I32", "U32", "F32"}, 4)
      .Cases({"I64", "U64", "F64", "C64"}, 8)
      .Default(0);
}

//===----------------------------------------------------------------------===//
// TensorInfo
//===----------------------------------------------------------------------===//

int64_t TensorInfo::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d; // cannot overflow: checked when the header was read
  return n;
}

float checkpoint::getAsF32(const TensorInfo &tensor, int64_t index) {
  assert(tensor.dtype && "tensor of an unsupported dtype");
  assert(index >= 0 && index < tensor.numElements() && "index out of range");
  const char *p = static_cast<const char *>(tensor.data) +
                  index * elementSize(*tensor.dtype);
  if (*tensor.dtype == DType::F32) {
    float v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  }
  if (*tensor.dtype == DType::F8E4M3)
    return npy::f8E4M3ToFloat(*reinterpret_cast<const uint8_t *>(p));
  if (*tensor.dtype == DType::U8)
    return *reinterpret_cast<const uint8_t *>(p);
  if (*tensor.dtype == DType::I8)
    return *reinterpret_cast<const int8_t *>(p);
  if (*tensor.dtype == DType::I32) {
    int32_t v;
    std::memcpy(&v, p, sizeof(v));
    return static_cast<float>(v);
  }
  uint16_t bits;
  std::memcpy(&bits, p, sizeof(bits));
  return *tensor.dtype == DType::F16 ? npy::f16ToFloat(bits)
                                     : npy::bf16ToFloat(bits);
}

//===----------------------------------------------------------------------===//
// Reading one file
//===----------------------------------------------------------------------===//

namespace {
/// The bytes of one mapped file.
struct FileView {
  StringRef path;
  const char *base;
  uint64_t dataStart; // 8 + header length
  uint64_t dataSize;  // bytes after the header
};
} // namespace

/// A non-negative integer, or nothing (JSON doubles that are not integral,
/// strings, negative numbers...).
static std::optional<int64_t> getCount(const llvm::json::Value &value) {
  std::optional<int64_t> n = value.getAsInteger();
  if (!n || *n < 0)
    return std::nullopt;
  return n;
}

static llvm::Error parseShape(const FileView &file, StringRef name,
                              const llvm::json::Object &entry,
                              TensorInfo &tensor) {
  const llvm::json::Array *shape = entry.getArray("shape");
  if (!shape)
    return fail(file.path, "tensor " + name + " has no \"shape\" array");
  int64_t elements = 1;
  for (const llvm::json::Value &dim : *shape) {
    std::optional<int64_t> d = getCount(dim);
    if (!d)
      return fail(file.path, "tensor " + name +
                                 " has a shape entry that is not a "
                                 "non-negative integer");
    if (llvm::MulOverflow(elements, *d, elements))
      return fail(file.path, "tensor " + name + " has too many elements");
    tensor.shape.push_back(*d);
  }
  return llvm::Error::success();
}

/// Checks "data_offsets" against the data section and the shape, then
/// points the tensor at its bytes.
static llvm::Error parseOffsets(const FileView &file, StringRef name,
                                const llvm::json::Object &entry,
                                TensorInfo &tensor) {
  const llvm::json::Array *offsets = entry.getArray("data_offsets");
  std::optional<int64_t> begin, end;
  if (offsets && offsets->size() == 2) {
    begin = getCount((*offsets)[0]);
    end = getCount((*offsets)[1]);
  }
  if (!begin || !end || *begin > *end)
    return fail(file.path, "tensor " + name +
                               " needs \"data_offsets\": [begin, end] with "
                               "0 <= begin <= end");
  if (static_cast<uint64_t>(*end) > file.dataSize)
    return fail(file.path, "tensor " + name + " ends at data offset " +
                               Twine(*end) + ", beyond the " +
                               Twine(file.dataSize) + "-byte data section");
  uint64_t numBytes = static_cast<uint64_t>(*end - *begin);
  if (size_t elementBytes = fileElementSize(tensor.dtypeName)) {
    std::string what = "tensor " + name.str() + " of " + tensor.dtypeName +
                       " and shape " + formatShape(tensor.shape);
    int64_t expected = 0;
    if (llvm::MulOverflow(tensor.numElements(),
                          static_cast<int64_t>(elementBytes), expected))
      return fail(file.path, what + " has too many bytes");
    if (static_cast<uint64_t>(expected) != numBytes)
      return fail(file.path, what + " spans " + Twine(numBytes) +
                                 " bytes in data_offsets, expected " +
                                 Twine(expected));
  }
  tensor.fileOffset = file.dataStart + static_cast<uint64_t>(*begin);
  tensor.data = file.base + tensor.fileOffset;
  tensor.numBytes = numBytes;
  return llvm::Error::success();
}

static llvm::Expected<TensorInfo> parseEntry(const FileView &file,
                                             StringRef name,
                                             const llvm::json::Value &value) {
  const llvm::json::Object *entry = value.getAsObject();
  if (!entry)
    return fail(file.path, "tensor " + name + " is not a JSON object");
  TensorInfo tensor;
  tensor.name = name.str();
  tensor.file = file.path.str();
  std::optional<StringRef> dtype = entry->getString("dtype");
  if (!dtype)
    return fail(file.path, "tensor " + name + " has no \"dtype\" string");
  tensor.dtypeName = dtype->str();
  tensor.dtype = parseDType(*dtype);
  if (llvm::Error err = parseShape(file, name, *entry, tensor))
    return std::move(err);
  if (llvm::Error err = parseOffsets(file, name, *entry, tensor))
    return std::move(err);
  return tensor;
}

static llvm::Error checkMetadata(StringRef path,
                                 const llvm::json::Value &value) {
  const llvm::json::Object *metadata = value.getAsObject();
  if (!metadata)
    return fail(path, "\"__metadata__\" is not a JSON object");
  for (const auto &[key, item] : *metadata)
    if (!item.getAsString())
      return fail(path, "\"__metadata__\" entry " + StringRef(key) +
                            " is not a string");
  return llvm::Error::success();
}

/// The JSON header of a mapped file, after checking its length field.
static llvm::Expected<llvm::json::Value> readHeader(FileView &file,
                                                    uint64_t fileSize) {
  if (fileSize < 8)
    return fail(file.path, "too small for a safetensors file (" +
                               Twine(fileSize) + " bytes)");
  uint64_t headerSize = llvm::support::endian::read64le(file.base);
  if (headerSize > kMaxHeaderBytes)
    return fail(file.path, "header length " + Twine(headerSize) +
                               " is implausible (more than 100 MB); not a "
                               "safetensors file?");
  if (headerSize > fileSize - 8)
    return fail(file.path, "header length " + Twine(headerSize) +
                               " exceeds the file size " + Twine(fileSize) +
                               " (truncated file?)");
  file.dataStart = 8 + headerSize;
  file.dataSize = fileSize - file.dataStart;
  llvm::Expected<llvm::json::Value> header =
      parseJson(StringRef(file.base + 8, headerSize));
  if (!header)
    return fail(file.path,
                "invalid JSON header: " + llvm::toString(header.takeError()));
  return header;
}

llvm::Error Checkpoint::addFile(StringRef path) {
  llvm::Expected<llvm::sys::fs::file_t> fd =
      llvm::sys::fs::openNativeFileForRead(path);
  if (!fd)
    return fail(path, "cannot open: " + llvm::toString(fd.takeError()));
  llvm::sys::fs::file_status status;
  std::error_code ec = llvm::sys::fs::status(*fd, status);
  uint64_t fileSize = status.getSize();
  llvm::sys::fs::mapped_file_region mapping;
  // A zero-length mapping is invalid; readHeader reports files under 8 bytes.
  if (!ec && fileSize >= 8)
    mapping = llvm::sys::fs::mapped_file_region(
        *fd, llvm::sys::fs::mapped_file_region::readonly, fileSize, 0, ec);
  llvm::sys::fs::closeFile(*fd);
  if (ec)
    return fail(path, "cannot map: " + ec.message());

  FileView file{path, mapping ? mapping.const_data() : nullptr, 0, 0};
  llvm::Expected<llvm::json::Value> header = readHeader(file, fileSize);
  if (!header)
    return header.takeError();
  const llvm::json::Object *entries = header->getAsObject();
  if (!entries)
    return fail(path, "the header is not a JSON object");

  std::vector<TensorInfo> found;
  for (const auto &[key, value] : *entries) {
    if (key == "__metadata__") {
      if (llvm::Error err = checkMetadata(path, value))
        return err;
      continue;
    }
    llvm::Expected<TensorInfo> tensor = parseEntry(file, key, value);
    if (!tensor)
      return tensor.takeError();
    found.push_back(std::move(*tensor));
  }
  llvm::append_range(sortedTensors, std::move(found));
  mappings.push_back(std::move(mapping));
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// Directories and sharded checkpoints
//===----------------------------------------------------------------------===//

static constexpr StringRef kIndexName = "model.safetensors.index.json";
static constexpr StringRef kSingleName = "model.safetensors";

/// The "weight_map" of an index: tensor name -> shard file name.
static llvm::Expected<std::map<std::string, std::string>>
readWeightMap(StringRef indexPath) {
  auto buffer = llvm::MemoryBuffer::getFile(indexPath, /*IsText=*/true);
  if (!buffer)
    return fail(indexPath, "cannot read: " + buffer.getError().message());
  llvm::Expected<llvm::json::Value> index = parseJson((*buffer)->getBuffer());
  if (!index)
    return fail(indexPath,
                "invalid JSON: " + llvm::toString(index.takeError()));
  const llvm::json::Object *root = index->getAsObject();
  const llvm::json::Object *weights =
      root ? root->getObject("weight_map") : nullptr;
  if (!weights)
    return fail(indexPath, "has no \"weight_map\" object");
  std::map<std::string, std::string> weightMap;
  for (const auto &[name, shard] : *weights) {
    std::optional<StringRef> file = shard.getAsString();
    if (!file || file->empty())
      return fail(indexPath, "tensor " + StringRef(name) +
                                 " maps to something other than a file name");
    weightMap.emplace(name.str(), file->str());
  }
  return weightMap;
}

static llvm::Error checkUnique(llvm::ArrayRef<TensorInfo> sorted) {
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].name == sorted[i - 1].name)
      return fail(sorted[i].file, "tensor " + sorted[i].name + " is also in " +
                                      sorted[i - 1].file);
  return llvm::Error::success();
}

llvm::Error Checkpoint::openIndex(StringRef dir, StringRef indexPath) {
  llvm::Expected<std::map<std::string, std::string>> weightMap =
      readWeightMap(indexPath);
  if (!weightMap)
    return weightMap.takeError();

  auto shardPath = [&](StringRef shard) {
    llvm::SmallString<256> path(dir);
    llvm::sys::path::append(path, shard);
    return std::string(path);
  };
  std::set<std::string> shards;
  for (const auto &entry : *weightMap)
    shards.insert(entry.second);
  for (const std::string &shard : shards) {
    if (!llvm::sys::fs::is_regular_file(shardPath(shard)))
      return fail(indexPath,
                  "names shard " + shard + ", which does not exist in " + dir);
    if (llvm::Error err = addFile(shardPath(shard)))
      return err;
  }
  sortTensors();
  if (llvm::Error err = checkUnique(sortedTensors))
    return err;

  // Every mapped tensor must be in the shard that the index names: an
  // importer that trusted the index would otherwise miss it.
  for (const auto &[name, shard] : *weightMap) {
    const TensorInfo *tensor = lookup(name);
    if (!tensor)
      return fail(indexPath,
                  "maps tensor " + name + " to " + shard + ", which lacks it");
    if (tensor->file != shardPath(shard))
      return fail(indexPath, "maps tensor " + name + " to " + shard +
                                 ", but it is in " + tensor->file);
  }
  return llvm::Error::success();
}

void Checkpoint::sortTensors() {
  llvm::stable_sort(
      sortedTensors,
      [](const TensorInfo &a, const TensorInfo &b) { return a.name < b.name; });
}

llvm::Expected<std::unique_ptr<Checkpoint>> Checkpoint::open(StringRef path) {
  std::unique_ptr<Checkpoint> result(new Checkpoint());
  result->rootPath = path.str();
  llvm::SmallString<256> indexPath(path), singlePath(path);
  llvm::sys::path::append(indexPath, kIndexName);
  llvm::sys::path::append(singlePath, kSingleName);

  llvm::Error err = llvm::Error::success();
  if (!llvm::sys::fs::exists(path))
    err = fail(path, "no such file or directory");
  else if (!llvm::sys::fs::is_directory(path))
    err = result->addFile(path);
  else if (llvm::sys::fs::exists(indexPath))
    err = result->openIndex(path, indexPath);
  else if (llvm::sys::fs::exists(singlePath))
    err = result->addFile(singlePath);
  else
    err = fail(path,
               "is a directory without " + kIndexName + " or " + kSingleName);
  if (!err) {
    result->sortTensors();
    err = checkUnique(result->sortedTensors);
  }
  if (err)
    return std::move(err);
  return result;
}

//===----------------------------------------------------------------------===//
// Lookup
//===----------------------------------------------------------------------===//

const TensorInfo *Checkpoint::lookup(StringRef name) const {
  auto it = llvm::partition_point(sortedTensors, [&](const TensorInfo &t) {
    return StringRef(t.name) < name;
  });
  if (it == sortedTensors.end() || it->name != name)
    return nullptr;
  return &*it;
}

llvm::Expected<const TensorInfo *> Checkpoint::get(StringRef name) const {
  const TensorInfo *tensor = lookup(name);
  if (!tensor)
    return fail(rootPath, "has no tensor " + name);
  if (!tensor->dtype)
    return fail(tensor->file,
                "unsupported dtype " + tensor->dtypeName + " for tensor " +
                    name + " (expected F32, F16, BF16, F8_E4M3, U8 or I32)");
  return tensor;
}

static std::string formatDTypes(llvm::ArrayRef<DType> types) {
  std::string text;
  for (size_t i = 0; i < types.size(); ++i) {
    if (i)
      text += i + 1 == types.size() ? " or " : ", ";
    text += name(types[i]).str();
  }
  return text;
}

/// Whether a tensor of shape `found` holds one of shape `expected`: the same
/// sizes, possibly after leading dimensions of size 1, or with the leading
/// dimensions of a stack of matrices merged into its first one ([E * f, d]
/// for [E, f, d]). Either way the elements and their order are the same.
static bool holdsShape(llvm::ArrayRef<int64_t> found,
                       llvm::ArrayRef<int64_t> expected) {
  while (found.size() > expected.size() && found.front() == 1)
    found = found.drop_front();
  if (found.size() >= 2 && found.size() < expected.size()) {
    size_t merged = expected.size() - found.size() + 1;
    int64_t rows = 1;
    for (int64_t size : expected.take_front(merged))
      if (llvm::MulOverflow(rows, size, rows))
        return false;
    return found.front() == rows &&
           found.drop_front() == expected.drop_front(merged);
  }
  return found == expected;
}

llvm::Expected<const TensorInfo *>
Checkpoint::require(StringRef name, llvm::ArrayRef<int64_t> shape,
                    llvm::ArrayRef<DType> allowed) const {
  llvm::Expected<const TensorInfo *> tensor = get(name);
  if (!tensor)
    return tensor.takeError();
  const TensorInfo &t = **tensor;
  if (!allowed.empty() && !llvm::is_contained(allowed, *t.dtype))
    return fail(t.file, "tensor " + name + " has dtype " + t.dtypeName +
                            ", expected " + formatDTypes(allowed));
  if (!holdsShape(t.shape, shape))
    return fail(t.file, "tensor " + name + " has shape " +
                            formatShape(t.shape) + ", expected " +
                            formatShape(shape));
  return tensor;
}

llvm::Expected<const TensorInfo *>
Checkpoint::requireScales(StringRef name, llvm::ArrayRef<int64_t> grid) const {
  llvm::SmallVector<int64_t> shape(grid);
  const TensorInfo *t = lookup(name);
  if (grid == llvm::ArrayRef<int64_t>{1, 1} && t && t->shape.size() < 2)
    shape.assign(t->shape.size(), 1);
  size_t rank = shape.size();
  if (t && rank >= 2 && (shape[rank - 2] == 1 || shape[rank - 1] == 1)) {
    llvm::SmallVector<int64_t> swapped(shape);
    std::swap(swapped[rank - 2], swapped[rank - 1]);
    if (llvm::ArrayRef<int64_t>(t->shape) == llvm::ArrayRef<int64_t>(swapped))
      shape = std::move(swapped);
  }
  return require(name, shape, {DType::F32, DType::F16, DType::BF16});
}

llvm::Expected<const TensorInfo *>
Checkpoint::requireMXFP4(StringRef name, llvm::ArrayRef<int64_t> shape) const {
  assert(!shape.empty() && "MXFP4 tensors have a last dimension");
  int64_t k = shape.back();
  if (k % 2)
    return fail(rootPath, "tensor " + name + " would hold MXFP4 rows of " +
                              Twine(k) + " values, an odd number");
  llvm::SmallVector<int64_t> bytes(shape);
  bytes.back() = k / 2;
  if (k % kMXFP4Block == 0)
    if (const TensorInfo *t = lookup(name);
        t && t->shape.size() > shape.size()) {
      // GPT-OSS's blocks: the bytes of a scale's codes, as one dimension.
      bytes.back() = k / kMXFP4Block;
      bytes.push_back(kMXFP4Block / 2);
    }
  return require(name, bytes, {DType::U8});
}

llvm::Expected<const TensorInfo *>
Checkpoint::requirePackedInts(StringRef name, llvm::ArrayRef<int64_t> shape,
                              unsigned bits) const {
  assert(!shape.empty() && (bits == 4 || bits == 8) &&
         "packed integers of 4 or 8 bits, a last dimension");
  llvm::SmallVector<int64_t> words(shape);
  words.back() = llvm::divideCeil(shape.back(), 32 / bits);
  return require(name, words, {DType::I32});
}

llvm::Expected<const TensorInfo *>
Checkpoint::requireRowBlockScales(StringRef name, llvm::ArrayRef<int64_t> shape,
                                  int64_t block, DType dtype) const {
  assert(!shape.empty() && "E2M1 tensors have a last dimension");
  llvm::SmallVector<int64_t> grid(shape);
  grid.back() = llvm::divideCeil(shape.back(), block);
  return require(name, grid, {dtype});
}

llvm::Expected<const TensorInfo *>
Checkpoint::requireE8M0Scales(StringRef name,
                              llvm::ArrayRef<int64_t> shape) const {
  return requireRowBlockScales(name, shape, kMXFP4Block, DType::U8);
}

llvm::Expected<const TensorInfo *>
Checkpoint::requireE4M3Scales(StringRef name,
                              llvm::ArrayRef<int64_t> shape) const {
  return requireRowBlockScales(name, shape, kNVFP4Block, DType::F8E4M3);
}

//===----------------------------------------------------------------------===//
// bitsandbytes
//===----------------------------------------------------------------------===//

/// The quant types of bitsandbytes' 4-bit tensors, which name their states.
static constexpr StringRef kBnb4Types[] = {"nf4", "fp4"};
static constexpr StringRef kBnb4StateInfix = ".quant_state.bitsandbytes__";

const TensorInfo *Checkpoint::lookupBnb4State(StringRef name) const {
  for (StringRef type : kBnb4Types)
    if (const TensorInfo *state = lookup((name + kBnb4StateInfix + type).str()))
      return state;
  return nullptr;
}

/// The DType a bitsandbytes state names ("bfloat16", "float16", "float32").
static std::optional<DType> parseTorchDType(StringRef name) {
  return llvm::StringSwitch<std::optional<DType>>(name)
      .Case("bfloat16", DType::BF16)
      .Case("float16", DType::F16)
      .Case("float32", DType::F32)
      .Default(std::nullopt);
}

llvm::Expected<Bnb4Tensor>
Checkpoint::requireBnb4(StringRef name, llvm::ArrayRef<int64_t> shape) const {
  const TensorInfo *state = lookupBnb4State(name);
  if (!state)
    return fail(rootPath, "tensor " + name + kBnb4StateInfix +
                              "nf4 (or fp4), the state of bitsandbytes 4-bit "
                              "tensor " +
                              name + ", not found");
  auto bad = [&](const Twine &why) {
    return fail(state->file, "tensor " + state->name + ": " + why);
  };
  if (!state->dtype || *state->dtype != DType::U8 || state->shape.size() != 1)
    return bad("expected the U8 bytes of a JSON object, found dtype " +
               state->dtypeName + " and shape " + formatShape(state->shape));
  StringRef text(static_cast<const char *>(state->data), state->numBytes);
  llvm::Expected<llvm::json::Value> parsed = parseJson(text);
  if (!parsed)
    return bad("not JSON (" + llvm::toString(parsed.takeError()) + ")");
  const llvm::json::Object *keys = parsed->getAsObject();
  if (!keys)
    return bad("expected a JSON object");

  Bnb4Tensor result;
  StringRef stateType = StringRef(state->name).rsplit("__").second;
  std::optional<StringRef> quantType = keys->getString("quant_type");
  if (quantType != stateType)
    return bad("expected quant_type \"" + stateType + "\", as its name says");
  result.quantType = stateType.str();
  std::optional<StringRef> dtypeName = keys->getString("dtype");
  std::optional<DType> dtype =
      dtypeName ? parseTorchDType(*dtypeName) : std::nullopt;
  if (!dtype)
    return bad("expected dtype \"bfloat16\", \"float16\" or \"float32\"");
  result.dtype = *dtype;
  // The shape of the tensor before quantization: the weight's.
  const llvm::json::Array *stateShape = keys->getArray("shape");
  llvm::SmallVector<int64_t> quantized;
  for (const llvm::json::Value &d :
       stateShape ? *stateShape : llvm::json::Array()) {
    std::optional<int64_t> size = d.getAsInteger();
    if (!size || *size < 0)
      return bad("expected shape to be a list of sizes");
    quantized.push_back(*size);
  }
  if (!stateShape || !holdsShape(quantized, shape))
    return bad("expected shape " + formatShape(shape) + " (the weight's), " +
               "found " + (stateShape ? formatShape(quantized) : "none"));
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  auto positive = [&](StringRef key, int64_t &out) -> llvm::Error {
    std::optional<int64_t> value = keys->getInteger(key);
    if (!value || *value < 1)
      return bad("expected " + key + " to be a positive integer");
    out = *value;
    return llvm::Error::success();
  };
  if (llvm::Error err = positive("blocksize", result.blocksize))
    return std::move(err);
  int64_t blocks = llvm::divideCeil(count, result.blocksize);
  bool nested = keys->get("nested_blocksize") || keys->get("nested_offset");
  if (nested) {
    if (llvm::Error err = positive("nested_blocksize", result.nestedBlocksize))
      return std::move(err);
    std::optional<double> offset = keys->getNumber("nested_offset");
    if (!offset || !std::isfinite(static_cast<float>(*offset)))
      return bad("expected nested_offset to be a finite number");
    result.offset = static_cast<float>(*offset);
    if (std::optional<StringRef> nestedType = keys->getString("nested_dtype");
        nestedType && *nestedType != "float32")
      return bad("nested_dtype \"" + *nestedType +
                 "\" is not supported (double quantization's scales are "
                 "\"float32\")");
  }

  // The codes: ceil(N / 2) bytes, as a column or a vector.
  llvm::Expected<const TensorInfo *> codes = get(name);
  if (!codes)
    return codes.takeError();
  result.codes = *codes;
  int64_t bytes = llvm::divideCeil(count, 2);
  llvm::ArrayRef<int64_t> found = result.codes->shape;
  if (result.codes->dtype != DType::U8 ||
      !(found == llvm::ArrayRef<int64_t>{bytes, 1} ||
        found == llvm::ArrayRef<int64_t>{bytes}))
    return fail(result.codes->file,
                "tensor " + name + " has dtype " + result.codes->dtypeName +
                    " and shape " + formatShape(found) + ", expected U8 [" +
                    Twine(bytes) + ", 1] (the codes of " +
                    "a bitsandbytes 4-bit tensor of shape " +
                    formatShape(shape) + ")");
  auto beside = [&](StringRef suffix, llvm::ArrayRef<int64_t> expected,
                    DType dtype) -> llvm::Expected<const TensorInfo *> {
    return require((name + "." + suffix).str(), expected, {dtype});
  };
  llvm::Expected<const TensorInfo *> absmax =
      beside("absmax", {blocks}, nested ? DType::U8 : DType::F32);
  llvm::Expected<const TensorInfo *> quantMap =
      beside("quant_map", {16}, DType::F32);
  if (!absmax)
    return absmax.takeError();
  if (!quantMap)
    return quantMap.takeError();
  result.absmax = *absmax;
  result.quantMap = *quantMap;
  if (nested) {
    llvm::Expected<const TensorInfo *> nestedAbsmax =
        beside("nested_absmax",
               {static_cast<int64_t>(
                   llvm::divideCeil(blocks, result.nestedBlocksize))},
               DType::F32);
    if (!nestedAbsmax)
      return nestedAbsmax.takeError();
    llvm::Expected<const TensorInfo *> nestedMap =
        beside("nested_quant_map", {256}, DType::F32);
    if (!nestedMap)
      return nestedMap.takeError();
    result.nestedAbsmax = *nestedAbsmax;
    result.nestedQuantMap = *nestedMap;
  } else if (lookup((name + ".nested_absmax").str())) {
    return bad("expected nested_blocksize and nested_offset, as the "
               "checkpoint holds " +
               name + ".nested_absmax");
  }
  return result;
}

std::array<float, 16> Bnb4Tensor::codeValues() const {
  std::array<float, 16> values;
  for (int64_t c = 0; c < 16; ++c)
    values[c] = getAsF32(*quantMap, c);
  return values;
}

std::vector<float> Bnb4Tensor::blockScales() const {
  int64_t blocks = absmax->numElements();
  std::vector<float> scales(blocks);
  if (!nested()) {
    std::memcpy(scales.data(), absmax->data, blocks * sizeof(float));
    return scales;
  }
  std::array<float, 256> table;
  std::memcpy(table.data(), nestedQuantMap->data, sizeof(table));
  const uint8_t *codes = static_cast<const uint8_t *>(absmax->data);
  for (int64_t b = 0; b < blocks; ++b) {
    // Two roundings to f32, as bitsandbytes computes it: the f32 product,
    // then the sum of two floats in double, exact, rounded once (which no
    // compiler may fuse into a multiply-add of the product's operands).
    float product =
        table[codes[b]] * getAsF32(*nestedAbsmax, b / nestedBlocksize);
    scales[b] = static_cast<float>(static_cast<double>(product) + offset);
  }
  return scales;
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// The header of `tensors` laid out in `order`, padded so that the data
/// section starts on an 8-byte boundary.
static std::string
buildHeader(llvm::ArrayRef<TensorData> tensors, llvm::ArrayRef<size_t> order,
            const std::map<std::string, std::string> &metadata) {
  llvm::json::Object header;
  uint64_t offset = 0;
  for (size_t i : order) {
    const TensorData &t = tensors[i];
    llvm::json::Array shape;
    for (int64_t d : t.shape)
      shape.push_back(d);
    uint64_t end = offset + t.bytes.size();
    header[t.name] =
        llvm::json::Object{{"dtype", name(t.dtype)},
                           {"shape", std::move(shape)},
                           {"data_offsets", llvm::json::Array{offset, end}}};
    offset = end;
  }
  if (!metadata.empty()) {
    llvm::json::Object meta;
    for (const auto &[key, value] : metadata)
      meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  std::string text;
  llvm::raw_string_ostream(text) << llvm::json::Value(std::move(header));
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

llvm::Error checkpoint::writeSafeTensors(
    StringRef path, llvm::ArrayRef<TensorData> tensors,
    const std::map<std::string, std::string> &metadata) {
  std::set<StringRef> names;
  for (const TensorData &t : tensors) {
    int64_t elements = 1;
    for (int64_t d : t.shape)
      elements *= d;
    if (static_cast<uint64_t>(elements) * elementSize(t.dtype) !=
        t.bytes.size())
      return fail(path, "tensor " + t.name + " of shape " +
                            formatShape(t.shape) + " has " +
                            Twine(t.bytes.size()) + " bytes of data");
    if (!names.insert(t.name).second)
      return fail(path, "tensor " + t.name + " given twice");
  }

  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  llvm::sort(order, [&](size_t a, size_t b) {
    size_t sizeA = elementSize(tensors[a].dtype);
    size_t sizeB = elementSize(tensors[b].dtype);
    if (sizeA != sizeB)
      return sizeA > sizeB;
    return tensors[a].name < tensors[b].name;
  });
  std::string header = buildHeader(tensors, order, metadata);

  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return fail(path, "cannot write: " + ec.message());
  char length[8];
  llvm::support::endian::write64le(length, header.size());
  os.write(length, sizeof(length));
  os << header;
  for (size_t i : order)
    os.write(tensors[i].bytes.data(), tensors[i].bytes.size());
  os.close();
  if (os.has_error())
    return fail(path, "write failed: " + os.error().message());
  return llvm::Error::success();
}
