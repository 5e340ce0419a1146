//===- Importer.cpp - Hugging Face MoE checkpoints to moe IR --------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Builds one function per sparse MoE layer: the weights that the layer's
// family stores (spec section 10) become `moe.weight` ops, checked against
// the checkpoint first, and one `moe.layer` with the family's attribute set
// computes the block.
//
//===----------------------------------------------------------------------===//

#include "moe/Import/Importer.h"
#include "moe/Checkpoint/SafeTensors.h"
#include "moe/IR/MoEDialect.h"
#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::import;
using checkpoint::Checkpoint;
using checkpoint::DType;
using llvm::StringRef;
using llvm::Twine;

static llvm::Error makeError(const Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

//===----------------------------------------------------------------------===//
// Layer selection
//===----------------------------------------------------------------------===//

llvm::Expected<llvm::SmallVector<int64_t>>
mlir::moe::import::parseLayerList(StringRef list) {
  llvm::SmallVector<int64_t> layers;
  llvm::SmallVector<StringRef> items;
  list.split(items, ',');
  for (StringRef item : items) {
    int64_t layer;
    if (item.trim().getAsInteger(10, layer) || layer < 0)
      return makeError("--layers expects comma-separated layer indices, "
                       "found \"" +
                       item + "\"");
    if (llvm::is_contained(layers, layer))
      return makeError("--layers names layer " + Twine(layer) + " twice");
    layers.push_back(layer);
  }
  llvm::sort(layers);
  return layers;
}

static std::string joinLayers(llvm::ArrayRef<int64_t> layers) {
  std::string text;
  for (int64_t layer : layers)
    text += (text.empty() ? "" : ", ") + std::to_string(layer);
  return text;
}

/// The requested layers, each of which must be sparse; or every sparse one.
static llvm::Expected<llvm::SmallVector<int64_t>>
selectLayers(const ModelConfig &config, llvm::ArrayRef<int64_t> requested) {
  llvm::SmallVector<int64_t> sparse = config.sparseLayers();
  if (sparse.empty())
    return makeError(config.path + ": the model has no sparse MoE layer");
  if (requested.empty())
    return sparse;
  for (int64_t layer : requested) {
    if (layer >= config.numLayers)
      return makeError("layer " + Twine(layer) +
                       " does not exist: the model has " +
                       Twine(config.numLayers) + " layers (num_hidden_layers)");
    if (!config.isSparseLayer(layer))
      return makeError("layer " + Twine(layer) +
                       " is a dense layer, not a sparse MoE layer (" +
                       config.denseReason(layer) + "); the sparse layers are " +
                       joinLayers(sparse));
  }
  return llvm::SmallVector<int64_t>(requested);
}

//===----------------------------------------------------------------------===//
// The tensors of a layer
//===----------------------------------------------------------------------===//

namespace {
/// One operand of moe.layer: a checkpoint tensor, or per-expert tensors
/// stacked along a new first dimension.
struct WeightSpec {
  /// The operand's role, which names its SSA value ("router", "gate", ...).
  std::string role;
  llvm::SmallVector<std::string> names;
  bool stacked = false;
  /// The operand's shape (with the expert dimension when stacked).
  llvm::SmallVector<int64_t> shape;
  /// F32 whatever the layer's dtype (the selection bias).
  bool alwaysF32 = false;
  /// The checkpoint's dtype of an `alwaysF32` tensor, set when it is
  /// checked: one stored in F16 or BF16 is widened, exactly, when the model
  /// loads (`moe.weight {stored}`).
  DType storedAs = DType::F32;
  /// The checkpoint tensor holds the operand with its last two dimensions
  /// swapped (`moe.weight {transposed}`).
  bool transposed = false;
  /// The checkpoint tensor holds the operand's dimension 1 interleaved
  /// (`moe.weight {interleaved}`: GPT-OSS's gate, up, gate, up, ...).
  bool interleaved = false;
  /// FP8 tensors (`moe.weight {stored = f8E4M3FN}`), set when they are
  /// checked: the scale tensor of each, and the block each scale covers.
  std::vector<std::string> scales;
  std::array<int64_t, 2> scaleBlock = {0, 0};
  /// MXFP4 tensors (`moe.weight {stored = f4E2M1FN}`, GPT-OSS's
  /// `_blocks`), whose E8M0 scales `scales` cover blocks of 1 x 32; or
  /// NVFP4 ones, whose E4M3 scales cover blocks of 1 x 16, each tensor with
  /// its global scale (`globalScales`, `moe.weight {global_scales}`),
  /// which divides them when `globalScalesInverse`.
  bool fp4 = false;
  std::vector<std::string> globalScales;
  bool globalScalesInverse = false;
  /// Integer tensors of 4 or 8 bits packed into I32 words (`moe.weight
  /// {stored = i4}` or `i8`), whose scales cover groups of one row (of one
  /// stored column when `transposed`: GPTQ's), with GPTQ's zero points
  /// (`zeroPoints`, each stored minus `zeroPointOffset`) and group indices.
  unsigned intBits = 0;
  /// Signed 8-bit values, one an I8 element (`moe.weight {stored = si8}`,
  /// compressed-tensors' int-quantized), rather than codes in words.
  bool intBytes = false;
  std::vector<std::string> zeroPoints, groupIndices;
  int64_t zeroPointOffset = 0;
  /// AWQ's words of outputs, in its order of fields.
  bool packOutputs = false;
  llvm::SmallVector<int64_t, 0> packOrder;
  /// bitsandbytes' 4-bit tensors (`moe.weight {bitsandbytes}`), each read
  /// as its state says.
  bool bnb4 = false;

  /// The shape of each checkpoint tensor.
  llvm::SmallVector<int64_t> tensorShape() const {
    llvm::SmallVector<int64_t> result(
        llvm::ArrayRef<int64_t>(shape).drop_front(stacked ? 1 : 0));
    if (transposed)
      std::swap(result[result.size() - 2], result.back());
    return result;
  }
};

/// A few operands (a layer has at most three of a kind).
using WeightSpecs = llvm::SmallVector<WeightSpec, 3>;

/// The operands of a layer's moe.layer, in operand order.
struct LayerSpec {
  WeightSpec router;
  /// The router's own bias [E] (GPT-OSS), added to the logits.
  std::optional<WeightSpec> routerBias;
  /// The selection bias.
  std::optional<WeightSpec> bias;
  WeightSpecs experts;
  /// One bias per expert weight (GPT-OSS), or none.
  WeightSpecs expertBiases;
  WeightSpecs shared;

  llvm::SmallVector<const WeightSpec *> all() const {
    llvm::SmallVector<const WeightSpec *> specs = {&router};
    if (routerBias)
      specs.push_back(&*routerBias);
    if (bias)
      specs.push_back(&*bias);
    for (const WeightSpec &spec :
         llvm::concat<const WeightSpec>(experts, expertBiases, shared))
      specs.push_back(&spec);
    return specs;
  }
};
} // namespace

static WeightSpec single(StringRef role, const Twine &name,
                         llvm::ArrayRef<int64_t> shape) {
  WeightSpec spec;
  spec.role = role.str();
  spec.names.push_back(name.str());
  spec.shape.assign(shape.begin(), shape.end());
  return spec;
}

/// `prefix.experts.<e>.<leaf>` for every expert, stacked.
static WeightSpec perExpert(StringRef role, const ModelConfig &m,
                            const Twine &prefix, StringRef leaf,
                            llvm::ArrayRef<int64_t> shape) {
  WeightSpec spec;
  spec.role = role.str();
  spec.stacked = true;
  for (int64_t e = 0; e < m.numExperts; ++e)
    spec.names.push_back((prefix + ".experts." + Twine(e) + "." + leaf).str());
  spec.shape.push_back(m.numExperts);
  spec.shape.append(shape.begin(), shape.end());
  return spec;
}

/// The routed experts stored per expert under `prefix.experts.<e>`: the
/// gate, up and down projections named by `leaves` (gate_proj.weight and so
/// on, or Mixtral's w1, w3, w2), each [out, in].
static WeightSpecs perExpertFFN(const ModelConfig &m, const std::string &prefix,
                                std::array<StringRef, 3> leaves = {
                                    "gate_proj.weight", "up_proj.weight",
                                    "down_proj.weight"}) {
  int64_t d = m.hiddenSize, f = m.expertSize;
  return {perExpert("gate", m, prefix, leaves[0], {f, d}),
          perExpert("up", m, prefix, leaves[1], {f, d}),
          perExpert("down", m, prefix, leaves[2], {d, f})};
}

/// gate_proj, up_proj, down_proj of the FFN `prefix` with inner size f.
static void addGatedFFN(llvm::SmallVectorImpl<WeightSpec> &out,
                        const Twine &prefix, int64_t d, int64_t f) {
  out.push_back(single("shared_gate", prefix + ".gate_proj.weight", {f, d}));
  out.push_back(single("shared_up", prefix + ".up_proj.weight", {f, d}));
  out.push_back(single("shared_down", prefix + ".down_proj.weight", {d, f}));
}

/// The module holding a layer's MoE block: `feed_forward` (Llama-4,
/// LFM2-MoE, Jamba), `ffn` (DBRX), `block_sparse_moe` (Mixtral, MiniMax,
/// Granite) or `mlp` (GPT-OSS and the others).
static std::string blockPrefix(const ModelConfig &m, int64_t layer) {
  bool blockSparse =
      (m.family == Family::Mixtral || m.family == Family::GraniteMoe) &&
      !m.isGptOss();
  return m.layerPrefix + "." + std::to_string(layer) +
         (m.isLlama4() || m.isLfm2() || m.isJamba() ? ".feed_forward"
          : m.isDbrx()                              ? ".ffn"
          : blockSparse                             ? ".block_sparse_moe"
                                                    : ".mlp");
}

/// GPTQ's and AWQ's words of a Linear's weight `<prefix>.weight`:
/// `<prefix>.qweight` (empty for another name).
static std::string qweightName(StringRef name) {
  if (!name.consume_back(".weight"))
    return "";
  return (name + ".qweight").str();
}

/// Whether the checkpoint holds projection weight `name`, llm-compressor's
/// packed codes of it (`<name>_packed`), or GPTQ's or AWQ's words.
static bool hasWeight(const Checkpoint &ckpt, const std::string &name) {
  return ckpt.lookup(name) || ckpt.lookup(name + "_packed") ||
         ckpt.lookup(qweightName(name));
}

/// Whether layer `layer`'s block_sparse_moe is stored in transformers 5's
/// layout (save_original_format = False): the block renamed mlp, its
/// experts fused (`mlp.experts.gate_up_proj`, gate rows first, and
/// `mlp.experts.down_proj`).
static bool isMovedToMlp(const ModelConfig &m, int64_t layer,
                         const Checkpoint &ckpt) {
  if (m.family != Family::Mixtral || m.isLfm2() || m.isLlama4() || m.isDbrx())
    return false;
  std::string prefix = m.layerPrefix + "." + std::to_string(layer);
  return !hasWeight(ckpt, prefix + ".block_sparse_moe.experts.0.w1.weight") &&
         ckpt.lookup(prefix + ".mlp.experts.gate_up_proj");
}

/// The router weight [E, d] of layer `layer`.
static WeightSpec routerSpec(const ModelConfig &m, int64_t layer,
                             const Checkpoint &ckpt) {
  if (m.isGptOss())
    return single("router", blockPrefix(m, layer) + ".router.weight",
                  {m.numExperts, m.hiddenSize});
  if (isMovedToMlp(m, layer, ckpt))
    return single("router",
                  m.layerPrefix + "." + std::to_string(layer) +
                      ".mlp.gate.weight",
                  {m.numExperts, m.hiddenSize});
  StringRef leaf = m.isLlama4() || m.isJamba() ? ".router.weight"
                   : m.family == Family::GraniteMoe || m.isDbrx()
                       ? ".router.layer.weight"
                       : ".gate.weight";
  return single("router", blockPrefix(m, layer) + leaf,
                {m.numExperts, m.hiddenSize});
}

/// Experts fused as transformers stores them: `<block>.experts.gate_up_proj`
/// [E, 2f, d] (gate rows first) and `<block>.experts.down_proj` [E, d, f],
/// both stored [in, out] (`moe.weight {transposed}`) when `inOut`.
static WeightSpecs fusedExperts(const ModelConfig &m, const std::string &block,
                                bool inOut) {
  int64_t d = m.hiddenSize, f = m.expertSize, e = m.numExperts;
  WeightSpec gateUp =
      single("gate_up", block + ".experts.gate_up_proj", {e, 2 * f, d});
  WeightSpec down = single("down", block + ".experts.down_proj", {e, d, f});
  gateUp.transposed = down.transposed = inOut;
  return {gateUp, down};
}

/// The tensor names and shapes of layer `layer` (spec section 10). The
/// checkpoint says whether experts named per expert are stored so or
/// fused, as transformers 5 writes them.
static LayerSpec describeLayer(const ModelConfig &m, int64_t layer,
                               const Checkpoint &ckpt) {
  int64_t d = m.hiddenSize, f = m.expertSize, e = m.numExperts;
  LayerSpec spec;
  spec.router = routerSpec(m, layer, ckpt);
  if (m.isLlama4() || m.isQwen3VL()) {
    // Fused experts stored [in, out]: gate_up_proj [E, d, 2f] (gate
    // columns, then up), down_proj [E, f, d]; or, when the checkpoint holds
    // them per expert (as the FP8 releases of both families do), [out, in]
    // tensors experts.<e>.gate_proj.weight and so on.
    std::string block = blockPrefix(m, layer);
    if (!ckpt.lookup(block + ".experts.gate_up_proj") &&
        hasWeight(ckpt, block + ".experts.0.gate_proj.weight"))
      spec.experts = perExpertFFN(m, block);
    else
      spec.experts = fusedExperts(m, block, /*inOut=*/true);
    if (m.isLlama4())
      addGatedFFN(spec.shared, block + ".shared_expert", d, m.sharedSize);
    return spec;
  }
  if (m.isGptOss()) {
    // GptOssMLP: the router's bias; the fused experts stored [in, out] with
    // gate and up interleaved (gate_up_proj [E, d, 2f]; down_proj
    // [E, f, d]), and a bias per projection, gate_up's interleaved too.
    std::string mlp = blockPrefix(m, layer);
    spec.routerBias = single("router_bias", mlp + ".router.bias", {e});
    // In f32 whatever --dtype says, as the selection biases of the other
    // families: the router adds it to f32 logits.
    spec.routerBias->alwaysF32 = true;
    spec.experts = fusedExperts(m, mlp, /*inOut=*/true);
    spec.experts[0].interleaved = true;
    if (m.mxfp4) {
      // The released checkpoints: each projection stored [out, in] in
      // MXFP4, `<proj>_blocks` with its E8M0 `<proj>_scales`, unless the
      // checkpoint holds it unquantized instead (a dequantized copy whose
      // config still says mxfp4).
      for (WeightSpec &weight : spec.experts) {
        std::string name = weight.names.front();
        if (!ckpt.lookup(name + "_blocks") && ckpt.lookup(name))
          continue;
        weight.names = {name + "_blocks"};
        weight.scales = {name + "_scales"};
        weight.scaleBlock = {1, Checkpoint::kMXFP4Block};
        weight.transposed = false;
        weight.fp4 = true;
      }
    }
    WeightSpec gateUpBias =
        single("gate_up_bias", mlp + ".experts.gate_up_proj_bias", {e, 2 * f});
    gateUpBias.interleaved = true;
    spec.expertBiases = {
        gateUpBias,
        single("down_bias", mlp + ".experts.down_proj_bias", {e, d})};
    return spec;
  }
  if (m.isDbrx()) {
    // DbrxExperts: w1 (gate) and v1 (up) stack the experts' [f, d]
    // matrices as one [E * f, d] tensor; w2 stacks their down projections
    // the same way, each stored [in, out].
    std::string mlp = blockPrefix(m, layer) + ".experts.mlp";
    WeightSpec down = single("down", mlp + ".w2", {e, d, f});
    down.transposed = true;
    spec.experts = {single("gate", mlp + ".w1", {e, f, d}),
                    single("up", mlp + ".v1", {e, f, d}), down};
    return spec;
  }
  if (m.family == Family::Mixtral) {
    bool fused = isMovedToMlp(m, layer, ckpt);
    std::string moe = fused
                          ? m.layerPrefix + "." + std::to_string(layer) + ".mlp"
                          : blockPrefix(m, layer);
    // MiniMax-M2 and LFM2-MoE: a buffer of the block, beside the router.
    if (m.selectionBias) {
      spec.bias = single(
          "bias",
          moe + (m.isLfm2() ? ".expert_bias" : ".e_score_correction_bias"),
          {e});
      spec.bias->alwaysF32 = true;
    }
    if (fused)
      spec.experts = fusedExperts(m, moe, /*inOut=*/false);
    else
      spec.experts =
          perExpertFFN(m, moe, {"w1.weight", "w3.weight", "w2.weight"});
    return spec;
  }
  if (m.family == Family::GraniteMoe) {
    // Fused experts: input_linear holds gate rows then up rows.
    std::string moe = blockPrefix(m, layer);
    spec.experts = {
        single("gate_up", moe + ".input_linear.weight", {e, 2 * f, d}),
        single("down", moe + ".output_linear.weight", {e, d, f})};
    // GraniteMoeShared's and GraniteMoeHybrid's shared_mlp, beside the
    // block and fused the same way: shared(gate_up, down).
    if (m.sharedSize > 0) {
      std::string mlp =
          m.layerPrefix + "." + std::to_string(layer) + ".shared_mlp";
      int64_t fs = m.sharedSize;
      spec.shared = {
          single("shared_gate_up", mlp + ".input_linear.weight", {2 * fs, d}),
          single("shared_down", mlp + ".output_linear.weight", {d, fs})};
    }
    return spec;
  }
  std::string mlp = blockPrefix(m, layer);
  if (m.selectionBias) {
    // ERNIE-4.5-MoE keeps it in the block's moe_statics, as [1, E].
    spec.bias = single("bias",
                       mlp + (m.isErnie() ? ".moe_statics" : ".gate") +
                           ".e_score_correction_bias",
                       {e});
    spec.bias->alwaysF32 = true;
  }
  // Fused experts [E, 2f, d] and [E, d, f] (transformers 5's layout,
  // Qwen3.5-MoE's releases) when the per-expert tensors are not there.
  if (!hasWeight(ckpt, mlp + ".experts.0.gate_proj.weight") &&
      ckpt.lookup(mlp + ".experts.gate_up_proj"))
    spec.experts = fusedExperts(m, mlp, /*inOut=*/false);
  else
    spec.experts = perExpertFFN(m, mlp);
  if (m.sharedSize > 0) {
    bool qwen2 = m.family == Family::Qwen2Moe;
    addGatedFFN(spec.shared,
                mlp + (qwen2 ? ".shared_expert" : ".shared_experts"), d,
                m.sharedSize);
    if (m.sharedGate)
      spec.shared.push_back(single("shared_sigmoid_gate",
                                   mlp + ".shared_expert_gate.weight", {1, d}));
  }
  return spec;
}

/// Checks one tensor of a layer whose dtype is `layerType` (set by its
/// router weight `routerName`).
static llvm::Error checkTensor(const Checkpoint &ckpt, StringRef name,
                               llvm::ArrayRef<int64_t> shape, DType layerType,
                               StringRef routerName) {
  const checkpoint::TensorInfo *tensor = ckpt.lookup(name);
  if (tensor && tensor->dtype && *tensor->dtype != layerType)
    return makeError(tensor->file + ": tensor " + name + " has dtype " +
                     tensor->dtypeName + ", expected " +
                     checkpoint::name(layerType) +
                     " like the layer's router weight " + routerName +
                     " (every tensor of a layer has one dtype)");
  return ckpt.require(name, shape, {layerType}).takeError();
}

/// Checks a single tensor of any float dtype and returns that dtype: the
/// router weight (whose dtype is the layer's) or the correction bias.
static llvm::Expected<DType> checkAnyFloat(const Checkpoint &ckpt,
                                           const WeightSpec &weight) {
  llvm::Expected<const checkpoint::TensorInfo *> tensor =
      ckpt.require(weight.names.front(), weight.tensorShape(),
                   {DType::F32, DType::F16, DType::BF16});
  if (!tensor)
    return tensor.takeError();
  return *(*tensor)->dtype;
}

/// Checks the tensors of `weight`, whose first one is FP8: all of them are,
/// with the scales that config.json's quantization_config describes.
static llvm::Error checkFP8(const Checkpoint &ckpt, const ModelConfig &m,
                            WeightSpec &weight) {
  const checkpoint::TensorInfo *first = ckpt.lookup(weight.names.front());
  auto fail = [&](const Twine &why) {
    return makeError(first->file + ": tensor " + weight.names.front() +
                     " has dtype F8_E4M3, but " + why);
  };
  if (!m.fp8)
    return fail(m.path + " has no quantization_config of FP8 weights "
                         "(quant_method \"fp8\", \"compressed-tensors\" or "
                         "\"fbgemm_fp8\")");
  llvm::SmallVector<int64_t> shape = weight.tensorShape();
  if (shape.size() < 2)
    return fail("FP8 weights are matrices, and it has rank " +
                Twine(shape.size()));
  if (m.fp8->perTensor() && shape.size() > 2)
    return fail("one scale per tensor of rank " + Twine(shape.size()) +
                " is not supported (" + m.fp8->description + ")");
  // A block size of 0 spans its whole dimension. The scales of a weight
  // stored [in, out] cover the tensor as stored, so its blocks are the
  // config's (given for [out, in]) swapped.
  int64_t rows = shape.end()[-2], cols = shape.back();
  std::array<int64_t, 2> block = m.fp8->block;
  if (weight.transposed)
    std::swap(block[0], block[1]);
  weight.scaleBlock = {block[0] ? block[0] : rows, block[1] ? block[1] : cols};
  llvm::SmallVector<int64_t> grid = shape;
  grid.end()[-2] = llvm::divideCeil(rows, weight.scaleBlock[0]);
  grid.back() = llvm::divideCeil(cols, weight.scaleBlock[1]);
  for (const std::string &name : weight.names) {
    if (llvm::Error err =
            ckpt.require(name, shape, {DType::F8E4M3}).takeError())
      return err;
    std::string scale = name + m.fp8->suffix;
    if (llvm::Error err = ckpt.requireScales(scale, grid).takeError())
      return err;
    weight.scales.push_back(std::move(scale));
  }
  return llvm::Error::success();
}

/// Checks the 4-bit float tensors of `weight`, named as `m.packedFP4`
/// says: U8 codes [..., n, k / 2] and NVFP4's F8_E4M3 scales [..., n,
/// ceil(k / 16)] with a global scale, a scalar, or MXFP4's E8M0 scales
/// [..., n, ceil(k / 32)]. `weight.names` name the codes.
static llvm::Error checkPackedFP4(const Checkpoint &ckpt, const ModelConfig &m,
                                  WeightSpec &weight) {
  const ModelConfig::FP4Tensors &fp4 = *m.packedFP4;
  StringRef format = fp4.nvfp4() ? "NVFP4" : "MXFP4";
  const checkpoint::TensorInfo *first = ckpt.lookup(weight.names.front());
  llvm::SmallVector<int64_t> shape = weight.tensorShape();
  if (weight.transposed || shape.size() < 2)
    return makeError(first->file + ": tensor " + weight.names.front() +
                     " holds " + format + " codes, but its weight is " +
                     (weight.transposed ? "stored [in, out]" : "not a matrix") +
                     ", which " + format + " checkpoints do not hold");
  // Codes under another exporter's name (Model Optimizer's `<name>` where
  // llm-compressor's config says `<name>_packed`).
  if (!StringRef(weight.names.front()).ends_with(fp4.codes))
    return makeError(first->file + ": tensor " + weight.names.front() +
                     " holds packed 4-bit codes, but " + m.path + " (" +
                     fp4.description + ") names them <name>" + fp4.codes);
  for (const std::string &codes : weight.names) {
    if (llvm::Error err = ckpt.requireMXFP4(codes, shape).takeError())
      return err;
    std::string name = StringRef(codes).drop_back(fp4.codes.size()).str();
    std::string scale = name + fp4.scales;
    if (llvm::Error err =
            fp4.nvfp4() ? ckpt.requireE4M3Scales(scale, shape).takeError()
                        : ckpt.requireE8M0Scales(scale, shape).takeError())
      return err;
    weight.scales.push_back(std::move(scale));
    if (!fp4.nvfp4())
      continue;
    std::string global = name + fp4.global;
    if (llvm::Error err = ckpt.requireScales(global, {1, 1}).takeError())
      return err;
    weight.globalScales.push_back(std::move(global));
  }
  weight.scaleBlock = {1, fp4.nvfp4() ? Checkpoint::kNVFP4Block
                                      : Checkpoint::kMXFP4Block};
  weight.fp4 = true;
  weight.globalScalesInverse = fp4.inverse;
  return llvm::Error::success();
}

/// Records the group indices of the integer tensors of `weight` (a piece
/// [..., n, k] each), `indexName(codes)` of each, I32 [..., k], where the
/// checkpoint has them: all of them or none.
static llvm::Error
collectGroupIndices(const Checkpoint &ckpt, WeightSpec &weight,
                    llvm::function_ref<std::string(StringRef)> indexName) {
  llvm::SmallVector<int64_t> columns = weight.tensorShape();
  columns.erase(columns.end() - 2);
  for (const std::string &codes : weight.names) {
    std::string indices = indexName(codes);
    if (!ckpt.lookup(indices))
      continue;
    if (llvm::Error err =
            ckpt.require(indices, columns, {DType::I32}).takeError())
      return err;
    weight.groupIndices.push_back(std::move(indices));
  }
  if (!weight.groupIndices.empty() &&
      weight.groupIndices.size() != weight.names.size())
    return makeError(ckpt.lookup(weight.names.front())->file + ": tensor " +
                     weight.names.front() +
                     " is stacked with integer tensors of which some have "
                     "group indices (" +
                     weight.groupIndices.front() + ") and some do not");
  return llvm::Error::success();
}

/// The fields of AWQ's words, lowest bits first: the element of its run of
/// 8 outputs each holds.
static constexpr int64_t kAWQOrder[] = {0, 2, 4, 6, 1, 3, 5, 7};

/// Checks GPTQ's or AWQ's tensors of `weight`, whose names are the
/// `<prefix>.qweight` of each Linear: I32 words [k / w, n] (GPTQ's, w codes
/// a word along k) or [k, n / w] (AWQ's, along n), their scales
/// `<prefix>.scales` [groups, n] (f32, f16 or bf16), zero points
/// `<prefix>.qzeros`, I32 [groups, n / w], and, when the checkpoint has
/// them, GPTQ's group indices `<prefix>.g_idx`, I32 [k]. The weight
/// becomes `transposed`: both store [in, out].
static llvm::Error checkQWeight(const Checkpoint &ckpt,
                                const ModelConfig::PackedInts &ints,
                                WeightSpec &weight) {
  llvm::SmallVector<int64_t> shape = weight.tensorShape();
  bool awq = ints.layout == ModelConfig::PackedInts::Layout::AWQ;
  int64_t n = shape.end()[-2], k = shape.back();
  int64_t perWord = 32 / ints.bits;
  int64_t group = ints.group ? ints.group : k;
  int64_t groups = llvm::divideCeil(k, group);
  auto withLast2 = [&](int64_t rows, int64_t cols) {
    llvm::SmallVector<int64_t> result(shape);
    result.end()[-2] = rows;
    result.back() = cols;
    return result;
  };
  if (!StringRef(weight.names.front()).ends_with(".qweight"))
    return makeError(ckpt.lookup(weight.names.front())->file + ": tensor " +
                     weight.names.front() + " has dtype I32, but " +
                     ints.description + " names a Linear's words " +
                     "<prefix>.qweight");
  for (const std::string &codes : weight.names) {
    StringRef prefix = StringRef(codes).drop_back(strlen(".qweight"));
    if (llvm::Error err =
            ckpt.require(codes,
                         awq ? withLast2(k, llvm::divideCeil(n, perWord))
                             : withLast2(llvm::divideCeil(k, perWord), n),
                         {DType::I32})
                .takeError())
      return err;
    std::string scale = (prefix + ".scales").str();
    if (llvm::Error err =
            ckpt.requireScales(scale, withLast2(groups, n)).takeError())
      return err;
    weight.scales.push_back(std::move(scale));
    std::string zeros = (prefix + ".qzeros").str();
    if (llvm::Error err =
            ckpt.require(zeros, withLast2(groups, llvm::divideCeil(n, perWord)),
                         {DType::I32})
                .takeError())
      return err;
    weight.zeroPoints.push_back(std::move(zeros));
  }
  if (llvm::Error err = collectGroupIndices(ckpt, weight, [](StringRef codes) {
        return (codes.drop_back(strlen(".qweight")) + ".g_idx").str();
      }))
    return err;
  weight.transposed = true;
  weight.packOutputs = awq;
  if (awq)
    weight.packOrder.assign(std::begin(kAWQOrder), std::end(kAWQOrder));
  weight.scaleBlock = {group, 1};
  weight.intBits = ints.bits;
  weight.zeroPointOffset = ints.zeroOffset;
  return llvm::Error::success();
}

/// Checks the integer tensors of `weight`, named as `m.packedInts` says:
/// I32 words [..., n, ceil(k / (32 / bits))] of `<name>_packed`, their
/// scales `<name>_scale` [..., n, ceil(k / group)] (f32, f16 or bf16) and,
/// for asymmetric weights, their zero points `<name>_zero_point`, I32
/// [..., ceil(n / (32 / bits)), ceil(k / group)]. `weight.names` name the
/// words. W8A8's integers (`ints.bytes`, int-quantized) are each `<name>`
/// itself, I8 [..., n, k], one signed value an element, with the same
/// scales and group indices.
static llvm::Error checkPackedInts(const Checkpoint &ckpt, const ModelConfig &m,
                                   WeightSpec &weight) {
  const ModelConfig::PackedInts &ints = *m.packedInts;
  const checkpoint::TensorInfo *first = ckpt.lookup(weight.names.front());
  llvm::SmallVector<int64_t> shape = weight.tensorShape();
  if (ints.qweight() && !weight.transposed && shape.size() >= 2)
    return checkQWeight(ckpt, ints, weight);
  if (weight.transposed || shape.size() < 2)
    return makeError(first->file + ": tensor " + weight.names.front() +
                     " holds " +
                     (ints.bytes ? "8-bit integers" : "packed integer codes") +
                     ", but its weight is " +
                     (weight.transposed ? "stored [in, out]" : "not a matrix") +
                     ", which " + ints.description + " does not hold");
  StringRef suffix = ints.bytes ? "" : "_packed";
  if (!StringRef(weight.names.front()).ends_with(suffix))
    return makeError(first->file + ": tensor " + weight.names.front() +
                     " has dtype I32, but " + m.path + " (" + ints.description +
                     ") names packed integer codes <name>_packed");
  int64_t group = ints.group ? ints.group : shape.back();
  llvm::SmallVector<int64_t> grid = shape;
  grid.back() = llvm::divideCeil(shape.back(), group);
  // The zero points are packed along n, 32 / bits a word.
  llvm::SmallVector<int64_t> zeroGrid = grid;
  zeroGrid.end()[-2] = llvm::divideCeil(shape.end()[-2], 32 / ints.bits);
  for (const std::string &codes : weight.names) {
    if (llvm::Error err =
            (ints.bytes ? ckpt.require(codes, shape, {DType::I8})
                        : ckpt.requirePackedInts(codes, shape, ints.bits))
                .takeError())
      return err;
    StringRef stem = StringRef(codes).drop_back(suffix.size());
    std::string scale = (stem + "_scale").str();
    if (llvm::Error err = ckpt.requireScales(scale, grid).takeError())
      return err;
    weight.scales.push_back(std::move(scale));
    std::string zeros = (stem + "_zero_point").str();
    if (!ints.zeroPoints) {
      // compressed-tensors packs the zero points of asymmetric weights
      // only: read as symmetric, such weights would silently be off.
      const checkpoint::TensorInfo *packed = ckpt.lookup(zeros);
      if (packed && packed->dtype == DType::I32)
        return makeError(packed->file + ": tensor " + zeros +
                         " holds packed zero points, but " + m.path + " (" +
                         ints.description + ") says the weights are symmetric");
      continue;
    }
    if (llvm::Error err =
            ckpt.require(zeros, zeroGrid, {DType::I32}).takeError())
      return err;
    weight.zeroPoints.push_back(std::move(zeros));
  }
  // Activation order "group": `<name>_g_idx`.
  if (llvm::Error err = collectGroupIndices(ckpt, weight, [&](StringRef codes) {
        return (codes.drop_back(suffix.size()) + "_g_idx").str();
      }))
    return err;
  weight.scaleBlock = {1, group};
  weight.intBits = ints.bits;
  weight.intBytes = ints.bytes;
  return llvm::Error::success();
}

/// Under Model Optimizer's MIXED_PRECISION, checks that each tensor of
/// `weight` is stored as quantized_layers says of its module (the longest
/// module that holds it): U8 codes for "NVFP4" and "W4A16_NVFP4", F8_E4M3
/// for "FP8", the layer's dtype for a tensor under no module.
static llvm::Error checkModelOptLayer(const Checkpoint &ckpt,
                                      const ModelConfig &m,
                                      const WeightSpec &weight) {
  const ModelConfig::ModelOptLayers &mixed = *m.modelOptLayers;
  for (const std::string &name : weight.names) {
    const checkpoint::TensorInfo *tensor = ckpt.lookup(name);
    if (!tensor || !tensor->dtype)
      continue; // the dtype checks name it
    StringRef module = StringRef(name);
    module.consume_back(".weight");
    auto found = mixed.algos.find(module.str());
    while (found == mixed.algos.end() && module.contains('.')) {
      module = module.rsplit('.').first;
      found = mixed.algos.find(module.str());
    }
    StringRef algo;
    if (found != mixed.algos.end())
      algo = found->second;
    DType dtype = *tensor->dtype;
    bool nvfp4 = algo == "NVFP4" || algo == "W4A16_NVFP4";
    if (!algo.empty() && !nvfp4 && algo != "FP8")
      return makeError(mixed.where + ": module " + found->first +
                       " has quant_algo \"" + algo +
                       "\", which moe-import does not read (it reads "
                       "\"NVFP4\", \"W4A16_NVFP4\" and \"FP8\")");
    bool quantized = dtype == DType::U8 || dtype == DType::F8E4M3;
    if (quantized == !algo.empty() &&
        (!quantized || (dtype == DType::U8) == nvfp4))
      continue;
    return makeError(tensor->file + ": tensor " + name + " has dtype " +
                     tensor->dtypeName + ", but " + mixed.where +
                     (algo.empty()
                          ? " names no module of it (the tensor would be "
                            "unquantized)"
                          : " gives its module " + found->first +
                                " quant_algo \"" + algo.str() + "\""));
  }
  return llvm::Error::success();
}

/// Checks the MXFP4 tensors of `weight` and their E8M0 scales.
static llvm::Error checkMXFP4(const Checkpoint &ckpt,
                              const WeightSpec &weight) {
  llvm::SmallVector<int64_t> shape = weight.tensorShape();
  for (auto [name, scale] : llvm::zip_equal(weight.names, weight.scales)) {
    if (llvm::Error err = ckpt.requireMXFP4(name, shape).takeError())
      return err;
    if (llvm::Error err = ckpt.requireE8M0Scales(scale, shape).takeError())
      return err;
  }
  return llvm::Error::success();
}

/// Checks the bitsandbytes 4-bit tensors of `weight` (the first has a
/// state): each has its codes, scales and state, and the quant type of the
/// config; returns the dtype their states name (one for all).
static llvm::Expected<DType>
checkBnb4(const Checkpoint &ckpt, const ModelConfig &m, WeightSpec &weight) {
  const checkpoint::TensorInfo *state =
      ckpt.lookupBnb4State(weight.names.front());
  if (!m.bnb4)
    return makeError(state->file + ": tensor " + state->name +
                     " is the state of a bitsandbytes 4-bit tensor, but " +
                     m.path +
                     " has no quantization_config of them (quant_method "
                     "\"bitsandbytes\", load_in_4bit)");
  if (weight.transposed || weight.interleaved)
    return makeError(state->file + ": tensor " + state->name +
                     " is the state of a bitsandbytes 4-bit tensor, but its "
                     "weight is stored " +
                     (weight.transposed ? "[in, out]" : "interleaved") +
                     ", which bitsandbytes checkpoints do not hold (they "
                     "quantize Linear layers)");
  std::optional<DType> dtype;
  for (const std::string &name : weight.names) {
    llvm::Expected<checkpoint::Bnb4Tensor> tensor =
        ckpt.requireBnb4(name, weight.tensorShape());
    if (!tensor)
      return tensor.takeError();
    if (tensor->quantType != m.bnb4->quantType)
      return makeError(tensor->codes->file + ": tensor " + name +
                       " is bitsandbytes " + tensor->quantType + ", but " +
                       m.path + " has bnb_4bit_quant_type \"" +
                       m.bnb4->quantType + "\"");
    if (dtype && *dtype != tensor->dtype)
      return makeError(
          tensor->codes->file + ": tensor " + name + " was quantized from " +
          checkpoint::name(tensor->dtype) + ", but " + weight.names.front() +
          " from " + checkpoint::name(*dtype) +
          " (every tensor of a layer has one dtype)");
    dtype = tensor->dtype;
  }
  weight.bnb4 = true;
  return *dtype;
}

/// The layer's dtype: its router weight's, or the dtype a bitsandbytes
/// router was quantized from.
static llvm::Expected<DType>
checkRouter(const Checkpoint &ckpt, const ModelConfig &m, WeightSpec router) {
  if (ckpt.lookupBnb4State(router.names.front()))
    return checkBnb4(ckpt, m, router);
  return checkAnyFloat(ckpt, router);
}

/// Checks every other tensor of the layer against its router's dtype (or as
/// FP8 or MXFP4), and records the dtype of those computed in F32 whatever the
/// layer's.
static llvm::Error checkLayer(const Checkpoint &ckpt, const ModelConfig &m,
                              LayerSpec &spec, DType layerType) {
  StringRef routerName = spec.router.names.front();
  spec.router.bnb4 = ckpt.lookupBnb4State(routerName) != nullptr;
  if (spec.routerBias) {
    for (const std::string &name : spec.routerBias->names)
      if (llvm::Error err = checkTensor(ckpt, name, spec.routerBias->shape,
                                        layerType, routerName))
        return err;
    spec.routerBias->storedAs = layerType;
  }
  for (WeightSpec &weight :
       llvm::concat<WeightSpec>(spec.experts, spec.expertBiases, spec.shared)) {
    if (weight.fp4) {
      if (llvm::Error err = checkMXFP4(ckpt, weight))
        return err;
      continue;
    }
    const checkpoint::TensorInfo *first = ckpt.lookup(weight.names.front());
    // GPTQ and AWQ name a Linear's words `<prefix>.qweight`.
    if (!first && m.packedInts && m.packedInts->qweight())
      if (const checkpoint::TensorInfo *codes =
              ckpt.lookup(qweightName(weight.names.front()))) {
        for (std::string &name : weight.names)
          if (std::string words = qweightName(name); !words.empty())
            name = std::move(words);
        first = codes;
      }
    // llm-compressor's packed formats name a projection's codes
    // `<name>_packed`.
    std::string packed = weight.names.front() + "_packed";
    if (const checkpoint::TensorInfo *codes = ckpt.lookup(packed);
        !first && codes) {
      if (!m.packedInts && (!m.packedFP4 || m.packedFP4->codes != "_packed"))
        return makeError(codes->file + ": tensor " + packed +
                         " holds packed codes, but " + m.path +
                         " has no quantization_config of them (quant_method "
                         "\"compressed-tensors\", format "
                         "\"nvfp4-pack-quantized\", "
                         "\"mxfp4-pack-quantized\" or \"pack-quantized\")");
      for (std::string &name : weight.names)
        name += "_packed";
      first = codes;
    }
    if (m.modelOptLayers)
      if (llvm::Error err = checkModelOptLayer(ckpt, m, weight))
        return err;
    // bitsandbytes' codes are U8 under the weight's own name, with a state.
    if (first && ckpt.lookupBnb4State(weight.names.front())) {
      llvm::Expected<DType> dtype = checkBnb4(ckpt, m, weight);
      if (!dtype)
        return dtype.takeError();
      if (*dtype != layerType)
        return makeError(first->file + ": tensor " + weight.names.front() +
                         " was quantized from " + checkpoint::name(*dtype) +
                         ", expected " + checkpoint::name(layerType) +
                         " like the layer's router weight " + routerName +
                         " (every tensor of a layer has one dtype)");
      continue;
    }
    if (first && first->dtype == DType::I32) {
      if (!m.packedInts)
        return makeError(first->file + ": tensor " + weight.names.front() +
                         " has dtype I32 (packed integer codes), but " +
                         m.path +
                         " has no quantization_config of integer weights "
                         "(quant_method \"compressed-tensors\", format "
                         "\"pack-quantized\")");
      if (llvm::Error err = checkPackedInts(ckpt, m, weight))
        return err;
      continue;
    }
    if (first && first->dtype == DType::I8) {
      if (!m.packedInts || !m.packedInts->bytes)
        return makeError(first->file + ": tensor " + weight.names.front() +
                         " has dtype I8 (8-bit integers), but " + m.path +
                         " has no quantization_config of them (quant_method "
                         "\"compressed-tensors\", format \"int-quantized\")");
      if (llvm::Error err = checkPackedInts(ckpt, m, weight))
        return err;
      continue;
    }
    if (first && first->dtype == DType::U8) {
      if (!m.packedFP4)
        return makeError(first->file + ": tensor " + weight.names.front() +
                         " has dtype U8 (packed 4-bit codes), but " + m.path +
                         " has no quantization_config of NVFP4 weights "
                         "(quant_method \"modelopt\", quant_algo \"NVFP4\", "
                         "or \"compressed-tensors\", format "
                         "\"nvfp4-pack-quantized\")");
      if (llvm::Error err = checkPackedFP4(ckpt, m, weight))
        return err;
      continue;
    }
    if (first && first->dtype == DType::F8E4M3) {
      if (llvm::Error err = checkFP8(ckpt, m, weight))
        return err;
      continue;
    }
    for (const std::string &name : weight.names)
      if (llvm::Error err = checkTensor(ckpt, name, weight.tensorShape(),
                                        layerType, routerName))
        return err;
  }
  if (spec.bias) {
    // The Hugging Face routers add the correction bias to f32 scores, so a
    // bias saved in a narrower dtype counts with its exact f32 value.
    llvm::Expected<DType> dtype = checkAnyFloat(ckpt, *spec.bias);
    if (!dtype)
      return dtype.takeError();
    spec.bias->storedAs = *dtype;
  }
  return llvm::Error::success();
}

//===----------------------------------------------------------------------===//
// IR
//===----------------------------------------------------------------------===//

static Type elementType(MLIRContext *ctx, DType type) {
  switch (type) {
  case DType::F32:
    return Float32Type::get(ctx);
  case DType::F16:
    return Float16Type::get(ctx);
  case DType::BF16:
    return BFloat16Type::get(ctx);
  case DType::F8E4M3:
    return Float8E4M3FNType::get(ctx);
  case DType::U8:
  case DType::I8:
  case DType::I32:
    break;
  }
  llvm_unreachable("not an element type of a layer");
}

static RoutingAttr routingAttr(MLIRContext *ctx, const ModelConfig &m) {
  return RoutingAttr::get(ctx, m.score, m.selection, m.topK, m.groups,
                          m.topkGroup, m.groupScore, /*top_p=*/std::nullopt,
                          /*tau=*/std::nullopt, m.weights, m.renormalize,
                          F64{m.scale}, m.apply);
}

/// Builds `func.func @moe_layer_<layer>` at the end of `module`.
static void buildLayerFunction(OpBuilder &builder, ModuleOp module,
                               const ModelConfig &m, int64_t layer,
                               const LayerSpec &spec, DType stored, DType dtype,
                               bool weightsAsArguments) {
  MLIRContext *ctx = builder.getContext();
  Location loc = module.getLoc();
  Type elemType = elementType(ctx, dtype);
  // The runtime converts the tensors stored in another dtype than the
  // layer's (or than F32, for the bias).
  auto storedOf = [&](const WeightSpec &weight) {
    if (weight.bnb4)
      return Type();
    if (weight.fp4)
      return Type(Float4E2M1FNType::get(ctx));
    if (weight.intBytes)
      return Type(IntegerType::get(ctx, 8, IntegerType::Signed));
    if (weight.intBits)
      return Type(IntegerType::get(ctx, weight.intBits));
    if (!weight.scales.empty())
      return elementType(ctx, DType::F8E4M3);
    DType from = weight.alwaysF32 ? weight.storedAs : stored;
    DType to = weight.alwaysF32 ? DType::F32 : dtype;
    return from == to ? Type() : elementType(ctx, from);
  };
  auto typeOf = [&](const WeightSpec &weight) {
    return RankedTensorType::get(
        weight.shape, weight.alwaysF32 ? Float32Type::get(ctx) : elemType);
  };
  auto actType =
      RankedTensorType::get({ShapedType::kDynamic, m.hiddenSize}, elemType);

  llvm::SmallVector<Type> argTypes = {actType};
  if (weightsAsArguments)
    for (const WeightSpec *weight : spec.all())
      argTypes.push_back(typeOf(*weight));

  builder.setInsertionPointToEnd(module.getBody());
  auto func =
      func::FuncOp::create(builder, loc, "moe_layer_" + std::to_string(layer),
                           builder.getFunctionType(argTypes, actType));
  func->setAttr("llvm.emit_c_interface", builder.getUnitAttr());
  Block *entry = func.addEntryBlock();
  builder.setInsertionPointToStart(entry);
  // Name locations give the values readable names when printed with
  // printNameLocAsPrefix (%x, %router, %gate, ...).
  auto nameLoc = [&](StringRef name) {
    return NameLoc::get(builder.getStringAttr(name), loc);
  };
  entry->getArgument(0).setLoc(nameLoc("x"));

  unsigned nextArg = 1;
  auto materialize = [&](const WeightSpec &weight) -> Value {
    if (weightsAsArguments) {
      BlockArgument arg = entry->getArgument(nextArg++);
      arg.setLoc(nameLoc(weight.role));
      return arg;
    }
    RankedTensorType type = typeOf(weight);
    WeightOp op =
        weight.stacked
            ? WeightOp::create(builder, nameLoc(weight.role), type,
                               llvm::ArrayRef<std::string>(weight.names),
                               storedOf(weight))
            : WeightOp::create(builder, nameLoc(weight.role), type,
                               StringRef(weight.names.front()),
                               storedOf(weight));
    op.setTransposed(weight.transposed);
    op.setInterleaved(weight.interleaved);
    if (!weight.scales.empty()) {
      op.setScalesAttr(builder.getStrArrayAttr(llvm::SmallVector<StringRef>(
          weight.scales.begin(), weight.scales.end())));
      op.setScaleBlock(llvm::ArrayRef<int64_t>(weight.scaleBlock));
    }
    if (!weight.globalScales.empty())
      op.setGlobalScalesAttr(
          builder.getStrArrayAttr(llvm::SmallVector<StringRef>(
              weight.globalScales.begin(), weight.globalScales.end())));
    op.setGlobalScalesInverse(weight.globalScalesInverse);
    auto names = [&](const std::vector<std::string> &list) {
      return builder.getStrArrayAttr(
          llvm::SmallVector<StringRef>(list.begin(), list.end()));
    };
    if (!weight.zeroPoints.empty())
      op.setZeroPointsAttr(names(weight.zeroPoints));
    if (weight.zeroPointOffset)
      op.setZeroPointOffsetAttr(
          builder.getI64IntegerAttr(weight.zeroPointOffset));
    if (!weight.groupIndices.empty())
      op.setGroupIndicesAttr(names(weight.groupIndices));
    op.setPackOutputs(weight.packOutputs);
    op.setBitsandbytes(weight.bnb4);
    if (!weight.packOrder.empty())
      op.setPackOrder(weight.packOrder);
    return op.getResult();
  };
  llvm::SmallVector<Value> router = {materialize(spec.router)};
  if (spec.routerBias)
    router.push_back(materialize(*spec.routerBias));
  Value bias = spec.bias ? materialize(*spec.bias) : Value();
  llvm::SmallVector<Value> experts, expertBiases, shared;
  for (const WeightSpec &weight : spec.experts)
    experts.push_back(materialize(weight));
  for (const WeightSpec &weight : spec.expertBiases)
    expertBiases.push_back(materialize(weight));
  for (const WeightSpec &weight : spec.shared)
    shared.push_back(materialize(weight));

  FamilyAttr family = m.matchesPreset && m.hasPreset
                          ? FamilyAttr::get(ctx, m.family)
                          : FamilyAttr();
  auto layerOp = LayerOp::create(
      builder, loc, entry->getArgument(0), router, bias,
      /*tau=*/Value(), /*capacity_factor=*/Value(), experts, expertBiases,
      shared, routingAttr(ctx, m),
      /*capacity=*/CapacityAttr(),
      ExpertsAttr::get(ctx, ExpertKind::Gated, m.act, std::nullopt), family);
  func::ReturnOp::create(builder, loc, layerOp.getOutput());
}

/// Verifies the module, turning diagnostics into an error.
static llvm::Error verifyModule(ModuleOp module) {
  std::string messages;
  ScopedDiagnosticHandler handler(module.getContext(), [&](Diagnostic &diag) {
    messages += "\n  " + diag.str();
    return success();
  });
  if (failed(verify(module)))
    return makeError("internal error: the imported module does not verify:" +
                     messages);
  return llvm::Error::success();
}

llvm::Expected<ImportResult>
mlir::moe::import::importModel(MLIRContext &context, StringRef modelDir,
                               const ImportOptions &options) {
  llvm::SmallString<256> dir(modelDir);
  if (std::error_code ec = llvm::sys::fs::make_absolute(dir))
    return makeError(modelDir + ": " + ec.message());
  llvm::sys::path::remove_dots(dir, /*remove_dot_dot=*/true);
  if (!llvm::sys::fs::exists(dir))
    return makeError(modelDir + ": no such model directory");
  if (!llvm::sys::fs::is_directory(dir))
    return makeError(modelDir + ": not a directory (expected a model "
                                "directory with config.json)");
  llvm::SmallString<256> configPath(dir);
  llvm::sys::path::append(configPath, "config.json");

  llvm::Expected<ModelConfig> config = readModelConfig(configPath);
  if (!config)
    return config.takeError();
  llvm::Expected<std::unique_ptr<Checkpoint>> ckpt = Checkpoint::open(dir);
  if (!ckpt)
    return ckpt.takeError();
  // Every layer has tensors: this bounds the layers to enumerate.
  size_t numTensors = (*ckpt)->tensors().size();
  if (static_cast<uint64_t>(config->numLayers) > numTensors)
    return makeError(
        configPath + ": num_hidden_layers = " + Twine(config->numLayers) +
        " exceeds the " + Twine(numTensors) + " tensors of the checkpoint");
  llvm::Expected<llvm::SmallVector<int64_t>> layers =
      selectLayers(*config, options.layers);
  if (!layers)
    return layers.takeError();

  // Check every layer before building anything; the router first, as it
  // confirms E and d before a name is made for each expert.
  std::vector<LayerSpec> specs;
  llvm::SmallVector<DType> dtypes;
  for (int64_t layer : *layers) {
    llvm::Expected<DType> dtype =
        checkRouter(**ckpt, *config, routerSpec(*config, layer, **ckpt));
    if (!dtype)
      return dtype.takeError();
    specs.push_back(describeLayer(*config, layer, **ckpt));
    if (llvm::Error err = checkLayer(**ckpt, *config, specs.back(), *dtype))
      return std::move(err);
    dtypes.push_back(*dtype);
  }

  context.loadDialect<MoEDialect, func::FuncDialect>();
  OpBuilder builder(&context);
  ImportResult result;
  result.module = ModuleOp::create(
      FileLineColLoc::get(builder.getStringAttr(configPath), 1, 1));
  result.module->getOperation()->setAttr(WeightOp::getCheckpointAttrName(),
                                         builder.getStringAttr(dir));
  for (auto [layer, spec, dtype] : llvm::zip_equal(*layers, specs, dtypes))
    buildLayerFunction(builder, *result.module, *config, layer, spec, dtype,
                       options.dtype.value_or(dtype),
                       options.weightsAsArguments);
  if (llvm::Error err = verifyModule(*result.module))
    return std::move(err);
  if (!config->matchesPreset)
    result.warnings.push_back(config->modelType + " with " +
                              config->presetNote +
                              ": the layers are emitted without the family "
                              "attribute");
  return result;
}
