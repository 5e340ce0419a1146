//===- moe-gen-checkpoint.cpp - synthetic Hugging Face MoE checkpoints ----===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
//   moe-gen-checkpoint --family F --out DIR [--seed S] [--hidden D]
//       [--inner F] [--experts E] [--top-k K] [--layers L]
//       [--dtype f32|f16|bf16] [--shards N] ...   (see --help)
//
// Writes a small model in the layout of a real Hugging Face checkpoint of
// family F (spec sections 9 and 10): DIR/config.json with the keys that
// family's config uses, and the weights in model.safetensors, or in N shards
// with model.safetensors.index.json. Dense layers (DeepSeek
// first_k_dense_replace, Qwen mlp_only_layers and decoder_sparse_step) get a
// dense MLP, and every layer gets a few non-MoE tensors, so that an importer
// is tested on skipping what it must skip. Weights are random but fixed by
// the seed and the tensor name, whatever the sharding.
//
//===----------------------------------------------------------------------===//

#include "moe/Checkpoint/SafeTensors.h"
#include "moe/Support/Npy.h"
#include "moe/Support/Random.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>

using namespace mlir::moe;
using checkpoint::DType;
using llvm::StringRef;
namespace cl = llvm::cl;

static cl::OptionCategory category("moe-gen-checkpoint options");

static cl::opt<std::string> familyName(
    "family",
    cl::desc("mixtral, minimax, minimax_m2, qwen3_5_moe, qwen2_moe, qwen3_moe, "
             "qwen3_next, "
             "qwen3_vl_moe, olmoe, flex_olmo, jamba, deepseek_v2, deepseek_v3, "
             "deepseek_v32, kimi_k2, glm4_moe, glm4v_moe, glm4_moe_lite, "
             "glm_moe_dsa, dots1, ernie4_5_moe, granitemoe, "
             "granitemoeshared, gpt_oss, "
             "granitemoehybrid, lfm2_moe, llama4, llama4_text or dbrx"),
    cl::Required, cl::cat(category));
static cl::opt<std::string> outDir("out", cl::desc("Output directory"),
                                   cl::Required, cl::cat(category));
static cl::opt<uint64_t> seed("seed", cl::desc("Seed of the weights"),
                              cl::init(1), cl::cat(category));
static cl::opt<int64_t> hidden("hidden", cl::desc("hidden_size"), cl::init(64),
                               cl::cat(category));
static cl::opt<int64_t> inner("inner", cl::desc("Inner size of an expert"),
                              cl::init(96), cl::cat(category));
static cl::opt<int64_t> experts("experts", cl::desc("Routed experts"),
                                cl::init(8), cl::cat(category));
static cl::opt<int64_t>
    topK("top-k",
         cl::desc("num_experts_per_tok (default 2; olmoe 8, flex_olmo 5, "
                  "lfm2_moe 4, llama4 1; at most E)"),
         cl::cat(category));
static cl::opt<int64_t> layers("layers", cl::desc("num_hidden_layers"),
                               cl::init(2), cl::cat(category));
static cl::opt<std::string> dtypeName("dtype", cl::desc("f32, f16 or bf16"),
                                      cl::init("f32"), cl::cat(category));
static cl::opt<int64_t> shards("shards", cl::desc("Number of weight files"),
                               cl::init(1), cl::cat(category));
static cl::opt<int64_t> denseInner(
    "dense-inner",
    cl::desc("intermediate_size of the dense MLP layers (qwen, deepseek, "
             "glm4_moe, dots1, ernie4_5_moe, lfm2_moe; llama4's "
             "intermediate_size_mlp)"),
    cl::init(160), cl::cat(category));
static cl::opt<int64_t>
    sharedInner("shared-inner",
                cl::desc("shared_expert_intermediate_size (qwen2_moe, "
                         "qwen3_next, qwen3_5_moe); shared_intermediate_size "
                         "(granitemoeshared, where 0 leaves out the shared "
                         "MLP, and granitemoehybrid)"),
                cl::init(128), cl::cat(category));
static cl::opt<int64_t> sharedExperts(
    "shared-experts",
    cl::desc("n_shared_experts (deepseek, glm4_moe, dots1; ernie4_5_moe's "
             "moe_num_shared_experts; the shared FFN has inner size "
             "n_shared_experts * inner)"),
    cl::init(1), cl::cat(category));
static cl::opt<int64_t>
    groups("groups",
           cl::desc("n_group (deepseek, glm4_moe, dots1; default divides E)"),
           cl::cat(category));
static cl::opt<int64_t> topkGroup("topk-group",
                                  cl::desc("topk_group (deepseek, glm4_moe, "
                                           "dots1)"),
                                  cl::cat(category));
static cl::opt<int64_t>
    firstDense("first-dense",
               cl::desc("first_k_dense_replace (deepseek, glm4_moe, dots1; "
                        "lfm2_moe's num_dense_layers, ernie4_5_moe's "
                        "moe_layer_start_index)"),
               cl::init(1), cl::cat(category));
static cl::opt<int64_t>
    interleaveStep("interleave-step",
                   cl::desc("interleave_moe_layer_step (llama4): every "
                            "N-th layer is sparse, from layer N - 1"),
                   cl::init(1), cl::cat(category));
static cl::opt<int64_t> moeLayerFreq(
    "moe-layer-freq",
    cl::desc("moe_layer_freq (deepseek: layer L is sparse when L % "
             "N == 0); ernie4_5_moe's moe_layer_interval (when "
             "(L + 1) % N == 0); jamba's expert_layer_period (default 2)"),
    cl::init(1), cl::cat(category));
static cl::opt<int64_t>
    moeLayerOffset("moe-layer-offset",
                   cl::desc("expert_layer_offset (jamba): layer L is sparse "
                            "when L % period equals it; default 1"),
                   cl::init(1), cl::cat(category));
static cl::opt<int64_t>
    moeLayerEnd("moe-layer-end",
                cl::desc("moe_layer_end_index (ernie4_5_moe): no later layer "
                         "is sparse; -1, the default, is the last layer"),
                cl::init(-1), cl::cat(category));
static cl::opt<int64_t> sparseStep("sparse-step",
                                   cl::desc("decoder_sparse_step (qwen)"),
                                   cl::init(1), cl::cat(category));
static cl::list<int64_t> mlpOnlyLayers("mlp-only-layers",
                                       cl::desc("mlp_only_layers (qwen)"),
                                       cl::CommaSeparated, cl::cat(category));
static cl::opt<bool> normTopkProb(
    "norm-topk-prob",
    cl::desc("norm_topk_prob, 0 or 1 (qwen but qwen3_vl_moe, olmoe, "
             "deepseek, glm4_moe, dots1, lfm2_moe; default per family); "
             "dbrx's moe_normalize_expert_weights, 1 or null"),
    cl::ValueRequired, cl::cat(category));
static cl::opt<bool> fusedExperts(
    "fused-experts",
    cl::desc("0 or 1: the routed experts fused, <block>.experts.gate_up_proj "
             "[E, 2f, d] (gate rows first) and down_proj [E, d, f], as "
             "transformers 5 saves them and Qwen3.5-MoE is released "
             "(families whose experts are gate_proj, up_proj, down_proj "
             "under mlp; default 1 for qwen3_5_moe, else 0; for mixtral, "
             "minimax and minimax_m2 the block moves from block_sparse_moe "
             "to mlp); for llama4 and qwen3_vl_moe, fused [in, out] (the "
             "default) or, with 0, per expert [out, in] as their FP8 "
             "releases are"),
    cl::ValueRequired, cl::cat(category));
static cl::opt<bool>
    expertBias("expert-bias",
               cl::desc("use_expert_bias, 0 or 1 (lfm2_moe; default 1)"),
               cl::init(true), cl::ValueRequired, cl::cat(category));
static cl::opt<double>
    scalingFactor("scaling-factor",
                  cl::desc("routed_scaling_factor (deepseek, glm4_moe, "
                           "dots1, lfm2_moe; default 16 in v2, 2.5 in v3, 1 "
                           "in glm4_moe, dots1 and lfm2_moe)"),
                  cl::cat(category));

static cl::list<int64_t>
    fp8Block("fp8-block",
             cl::desc("rows,cols: write the projections as block-scaled FP8 "
                      "(F8_E4M3 with <name>_scale_inv, quant_method fp8), as "
                      "DeepSeek-V3 is released; blocks given for [out, in], "
                      "swapped over experts stored [in, out]"),
             cl::CommaSeparated, cl::cat(category));
static cl::opt<bool> fp8PerTensor(
    "fp8-per-tensor",
    cl::desc("write the projections as FP8 with one scale each (F8_E4M3 "
             "with <name>_scale and an input_scale, quant_method fp8 without "
             "weight_block_size), as AutoFP8 writes them; not with fused "
             "experts"),
    cl::cat(category));
static cl::opt<std::string> fp8Compressed(
    "fp8-compressed",
    cl::desc("tensor, channel, group:G or block:R,C: write the projections "
             "as FP8 the way llm-compressor does (quant_method "
             "compressed-tensors; F8_E4M3 with <name>_scale in --dtype, one "
             "a tensor, an output channel, a group of G columns of a row or "
             "a block of R x C); not tensor with fused experts"),
    cl::value_desc("strategy"), cl::cat(category));
static cl::opt<bool> fp8Fbgemm(
    "fp8-fbgemm",
    cl::desc("write the projections as FP8 the way Llama-4's FP8 release "
             "stores them (quant_method fbgemm_fp8; F8_E4M3 with "
             "<name>_scale, f32, one an output channel: [n, 1] for a "
             "Linear's [n, k], [E, 1, 2f] for the fused gate_up_proj and "
             "[E, d, 1] for the fused down_proj)"),
    cl::cat(category));
static cl::opt<bool> fp8Dequantized(
    "fp8-dequantized",
    cl::desc("with --fp8-block, --fp8-per-tensor, --fp8-compressed or "
             "--fp8-fbgemm: write "
             "the FP8 weights dequantized to --dtype instead (each FP8 value "
             "times its scale in f32, rounded once), without "
             "quantization_config: the checkpoint's --dtype copy"),
    cl::cat(category));

static cl::opt<bool> mxfp4(
    "mxfp4",
    cl::desc("gpt_oss: write the experts' projections in MXFP4 as the "
             "released checkpoints do (<proj>_blocks, U8 [E, out, in / 32, "
             "16], and E8M0 <proj>_scales [E, out, in / 32]; quant_method "
             "mxfp4); --hidden and --inner multiples of 32"),
    cl::cat(category));
static cl::opt<bool> mxfp4Compressed(
    "mxfp4-compressed",
    cl::desc("write the projections in MXFP4 as llm-compressor does "
             "(quant_method compressed-tensors, format mxfp4-pack-quantized: "
             "<name>_packed U8 [n, k / 2], two E2M1 codes a byte, and "
             "<name>_scale, E8M0 bytes [n, ceil(k / 32)]); experts stored "
             "per expert, even sizes"),
    cl::cat(category));
static cl::opt<bool> mxfp4Dequantized(
    "mxfp4-dequantized",
    cl::desc("with --mxfp4 or --mxfp4-compressed: write those projections "
             "dequantized to --dtype instead (exact), in the unquantized "
             "checkpoints' layout, without quantization_config"),
    cl::cat(category));

static cl::opt<unsigned> intCompressed(
    "int-compressed",
    cl::desc("4 or 8: write the projections as llm-compressor's W4A16 or "
             "W8A16 (quant_method compressed-tensors, format pack-quantized: "
             "<name>_packed I32 [n, ceil(k / (32 / bits))], the codes of "
             "each word from its lowest bits, each the value plus 2^(bits - "
             "1); <name>_scale in --dtype [n, ceil(k / group)]; "
             "<name>_shape I32 [2]); experts stored per expert"),
    cl::init(0), cl::cat(category));
static cl::opt<int64_t> intGroup(
    "int-group",
    cl::desc("with --int-compressed: the inputs one scale covers (strategy "
             "group); 0 for one scale a row (strategy channel)"),
    cl::init(32), cl::cat(category));
static cl::opt<bool> intActorder(
    "int-actorder",
    cl::desc("with --int-compressed and --int-group: actorder \"group\", the "
             "groups of the inputs in a random order (<name>_g_idx I32 [k], "
             "a permutation of j / group)"),
    cl::cat(category));
static cl::opt<std::string> intFormat(
    "int-format",
    cl::desc("with --int-compressed: pack-quantized (the default: codes in "
             "I32 words) or int-quantized (llm-compressor's W8A8: --int-"
             "compressed 8 only, each projection <name> I8 [n, k], its "
             "signed values, with <name>_scale; the config's activations "
             "dynamic int8 per token)"),
    cl::init("pack-quantized"), cl::cat(category));
static cl::opt<bool> intAsymmetric(
    "int-asymmetric",
    cl::desc("with --int-compressed: asymmetric weights (\"symmetric\": "
             "false), each group scaled over its range [min(v, 0), max(v, "
             "0)] with a zero point; <name>_zero_point I32 [ceil(n / (32 / "
             "bits)), ceil(k / group)], the zero points of a group's rows "
             "packed along n as the codes are along k, each plus 2^(bits - "
             "1)"),
    cl::cat(category));
static cl::opt<bool> intDequantized(
    "int-dequantized",
    cl::desc("with --int-compressed: write those projections dequantized "
             "to --dtype instead (each value times its scale in f32, "
             "rounded once), without quantization_config"),
    cl::cat(category));

static cl::opt<unsigned> gptq(
    "gptq",
    cl::desc("4 or 8: write the projections as GPTQ does (quant_method "
             "gptq: <prefix>.qweight I32 [k / w, n], w = 32 / bits codes a "
             "word along k from its lowest bits; <prefix>.scales F16 "
             "[groups, n]; <prefix>.qzeros I32 [groups, n / w], zero points "
             "packed along n, stored minus one; <prefix>.g_idx I32 [k]); "
             "experts stored per expert, --hidden and --inner multiples of "
             "w"),
    cl::init(0), cl::cat(category));
static cl::opt<int64_t> gptqGroup(
    "gptq-group",
    cl::desc("with --gptq: the group_size (0 for -1, one group a column)"),
    cl::init(32), cl::cat(category));
static cl::opt<bool> gptqDescAct(
    "gptq-desc-act",
    cl::desc("with --gptq: desc_act, the groups of the inputs in a random "
             "order (g_idx a permutation of j / group)"),
    cl::cat(category));
static cl::opt<bool> gptqAsym(
    "gptq-asym",
    cl::desc("with --gptq: sym false, a zero point a group from its minimum "
             "and maximum"),
    cl::cat(category));
static cl::opt<bool> gptqV2(
    "gptq-v2",
    cl::desc("with --gptq: checkpoint_format gptq_v2 (zero points stored as "
             "they are)"),
    cl::cat(category));
static cl::opt<bool> gptqDequantized(
    "gptq-dequantized",
    cl::desc("with --gptq: write those projections dequantized to --dtype "
             "instead (each (code - zero) times its scale in f32, rounded "
             "once), without quantization_config"),
    cl::cat(category));

static cl::opt<bool>
    awq("awq",
        cl::desc("write the projections as AWQ does (quant_method awq, version "
                 "gemm, 4 bits, zero points: <prefix>.qweight I32 [k, n / 8], "
                 "8 outputs a word in AWQ's order of fields; <prefix>.qzeros "
                 "I32 [groups, n / 8] alike; <prefix>.scales F16 [groups, n]); "
                 "experts stored per expert, --hidden and --inner multiples of "
                 "8"),
        cl::cat(category));
static cl::opt<int64_t> awqGroup(
    "awq-group",
    cl::desc("with --awq: the group_size (0 for -1, one group a column)"),
    cl::init(32), cl::cat(category));
static cl::opt<bool> awqDequantized(
    "awq-dequantized",
    cl::desc("with --awq: write those projections dequantized to --dtype "
             "instead, without quantization_config"),
    cl::cat(category));

static cl::opt<bool> nvfp4(
    "nvfp4",
    cl::desc("write the projections in NVFP4 as Model Optimizer exports "
             "them (quant_method modelopt, quant_algo NVFP4: <name> U8 "
             "[n, k / 2], two E2M1 codes a byte; <name>_scale F8_E4M3 "
             "[n, ceil(k / 16)]; <name>_scale_2, the global scale, and the "
             "input_scale, F32 scalars); experts stored per expert, even "
             "sizes"),
    cl::cat(category));
static cl::opt<bool> nvfp4Compressed(
    "nvfp4-compressed",
    cl::desc("with --nvfp4: write them as llm-compressor does instead "
             "(quant_method compressed-tensors, format nvfp4-pack-quantized: "
             "<name>_packed U8, <name>_scale F8_E4M3, and "
             "<name>_global_scale, which divides the block scales, and "
             "input_global_scale, F32 [1])"),
    cl::cat(category));
static cl::opt<bool> nvfp4Dequantized(
    "nvfp4-dequantized",
    cl::desc("with --nvfp4: write those projections dequantized to --dtype "
             "instead (each code times its scale, times the global scale, "
             "in f32, rounded once), without quantization_config"),
    cl::cat(category));

static cl::opt<std::string> bnb4(
    "bnb4",
    cl::desc("nf4 or fp4: write the projections as bitsandbytes' 4-bit "
             "Params4bit, as transformers saves a load_in_4bit model "
             "(quant_method bitsandbytes): <name> U8 [ceil(N / 2), 1], the "
             "codes of the N values of [n, k] in row-major order, two a "
             "byte, the first in the high nibble; <name>.quant_map F32 "
             "[16], the code table; <name>.absmax F32 [ceil(N / block)], the "
             "largest magnitude of each block of consecutive values; "
             "<name>.quant_state.bitsandbytes__nf4 (or __fp4), U8, the JSON "
             "of quant_type, blocksize, dtype and shape); experts stored per "
             "expert"),
    cl::value_desc("type"), cl::cat(category));
static cl::opt<int64_t> bnb4Block(
    "bnb4-block",
    cl::desc("with --bnb4: the blocksize, the values one absmax covers (a "
             "power of two from 32 to 4096)"),
    cl::init(64), cl::cat(category));
static cl::opt<bool> bnb4DoubleQuant(
    "bnb4-double-quant",
    cl::desc("with --bnb4: bnb_4bit_use_double_quant, the absmax values "
             "quantized in turn: <name>.absmax U8, codes of absmax minus "
             "nested_offset (their mean, in the state's JSON) in "
             "<name>.nested_quant_map (F32 [256]; here 256 even steps from "
             "-1 to 1, which readers take as stored), times "
             "<name>.nested_absmax (F32, the largest magnitude of each block "
             "of them)"),
    cl::cat(category));
static cl::opt<int64_t> bnb4NestedBlock(
    "bnb4-nested-block",
    cl::desc("with --bnb4-double-quant: the nested_blocksize, the absmax "
             "values one nested_absmax covers (a power of two from 32 to "
             "4096)"),
    cl::init(256), cl::cat(category));
static cl::opt<bool> bnb4Router(
    "bnb4-router",
    cl::desc("with --bnb4: quantize the routers' weights (and the shared "
             "expert's sigmoid gate) too; without it they stay in --dtype, "
             "named in llm_int8_skip_modules"),
    cl::cat(category));
static cl::opt<bool> bnb4Dequantized(
    "bnb4-dequantized",
    cl::desc("with --bnb4: write those weights dequantized to --dtype "
             "instead (each code's value times its block's scale in f32, "
             "rounded once), without quantization_config"),
    cl::cat(category));

static int fail(const llvm::Twine &message) {
  llvm::errs() << "moe-gen-checkpoint: error: " << message << "\n";
  return 1;
}

static int fail(llvm::Error error) {
  std::string message = llvm::toString(std::move(error));
  return fail(message);
}

//===----------------------------------------------------------------------===//
// Families and the model description
//===----------------------------------------------------------------------===//

namespace {
enum class Family {
  Mixtral,
  MiniMax,
  MiniMaxM2,
  Qwen2Moe,
  Qwen3Next,
  Qwen3Moe,
  Qwen3VLMoe,
  Qwen35Moe,
  Olmoe,
  FlexOlmo,
  Jamba,
  DeepSeekV2,
  DeepSeekV3,
  Glm4Moe,
  Glm4vMoe,
  Dots1,
  KimiK2,
  DeepSeekV32,
  Glm4MoeLite,
  GlmMoeDsa,
  Ernie45Moe,
  GraniteMoe,
  GraniteMoeShared,
  GraniteMoeHybrid,
  Lfm2Moe,
  Llama4,
  Llama4Text,
  Dbrx,
  GptOss
};

struct FamilyInfo {
  Family family;
  StringRef modelType;
  StringRef architecture;
};

/// Everything the files depend on, after defaults and checks.
struct Model {
  const FamilyInfo *info;
  int64_t hidden, inner, experts, topK, layers, denseInner;
  int64_t sharedInner = 0; // qwen2_moe shared expert, or deepseek's
  int64_t sharedExperts = 0, groups = 1, topkGroup = 1;
  int64_t firstDense = 0, moeLayerFreq = 1, sparseStep = 1;
  int64_t moeLayerEnd = 0; // ernie4_5_moe's moe_layer_end_index, as written
  int64_t moeLayerOffset = 0; // jamba's expert_layer_offset
  std::vector<int64_t> mlpOnlyLayers;
  bool normTopkProb = false;
  bool expertBias = false; // lfm2_moe's use_expert_bias
  bool fusedExperts = false; // experts.gate_up_proj and down_proj
  double scalingFactor = 1.0;
  DType dtype;
  /// How the projections are written, when in FP8: the config's format,
  /// and the rows and columns of the block of one scale (0 spans the whole
  /// dimension).
  enum class FP8 {
    None,
    Blocks,
    PerTensor,
    Compressed,
    Fbgemm
  } fp8Format = FP8::None;
  std::array<int64_t, 2> fp8Block = {0, 0};
  /// compressed-tensors' name of the scheme.
  std::string fp8Strategy;

  bool fp8() const { return fp8Format != FP8::None; }
  int64_t vocab = 32;

  Family family() const { return info->family; }
};
} // namespace

static const FamilyInfo kFamilies[] = {
    {Family::Mixtral, "mixtral", "MixtralForCausalLM"},
    {Family::MiniMax, "minimax", "MiniMaxForCausalLM"},
    {Family::MiniMaxM2, "minimax_m2", "MiniMaxM2ForCausalLM"},
    {Family::Qwen2Moe, "qwen2_moe", "Qwen2MoeForCausalLM"},
    {Family::Qwen3Next, "qwen3_next", "Qwen3NextForCausalLM"},
    {Family::Qwen3Moe, "qwen3_moe", "Qwen3MoeForCausalLM"},
    {Family::Qwen3VLMoe, "qwen3_vl_moe", "Qwen3VLMoeForConditionalGeneration"},
    {Family::Qwen35Moe, "qwen3_5_moe", "Qwen3_5MoeForConditionalGeneration"},
    {Family::Olmoe, "olmoe", "OlmoeForCausalLM"},
    {Family::FlexOlmo, "flex_olmo", "FlexOlmoForCausalLM"},
    {Family::Jamba, "jamba", "JambaForCausalLM"},
    {Family::DeepSeekV2, "deepseek_v2", "DeepseekV2ForCausalLM"},
    {Family::DeepSeekV3, "deepseek_v3", "DeepseekV3ForCausalLM"},
    {Family::Glm4Moe, "glm4_moe", "Glm4MoeForCausalLM"},
    {Family::Glm4vMoe, "glm4v_moe", "Glm4vMoeForConditionalGeneration"},
    {Family::Dots1, "dots1", "Dots1ForCausalLM"},
    {Family::KimiK2, "kimi_k2", "DeepseekV3ForCausalLM"},
    {Family::DeepSeekV32, "deepseek_v32", "DeepseekV32ForCausalLM"},
    {Family::Glm4MoeLite, "glm4_moe_lite", "Glm4MoeLiteForCausalLM"},
    {Family::GlmMoeDsa, "glm_moe_dsa", "GlmMoeDsaForCausalLM"},
    {Family::Ernie45Moe, "ernie4_5_moe", "Ernie4_5_MoeForCausalLM"},
    {Family::GraniteMoe, "granitemoe", "GraniteMoeForCausalLM"},
    {Family::GraniteMoeShared, "granitemoeshared",
     "GraniteMoeSharedForCausalLM"},
    {Family::GraniteMoeHybrid, "granitemoehybrid",
     "GraniteMoeHybridForCausalLM"},
    {Family::Lfm2Moe, "lfm2_moe", "Lfm2MoeForCausalLM"},
    {Family::Llama4, "llama4", "Llama4ForConditionalGeneration"},
    {Family::Llama4Text, "llama4_text", "Llama4ForCausalLM"},
    {Family::Dbrx, "dbrx", "DbrxForCausalLM"},
    {Family::GptOss, "gpt_oss", "GptOssForCausalLM"},
};

/// Mixtral's sparse block and tensor names (MiniMax-M2's block derives from
/// it, with sigmoid scores and e_score_correction_bias beside the router).
static bool isMixtralBlock(Family f) {
  return f == Family::Mixtral || f == Family::MiniMax || f == Family::MiniMaxM2;
}
/// Llama-4's text model: fused experts stored [in, out], an ungated shared
/// expert, every interleave_moe_layer_step-th layer sparse. The multimodal
/// checkpoint (llama4) nests its config in text_config and its tensors
/// under language_model.
static bool isLlama4(Family f) {
  return f == Family::Llama4 || f == Family::Llama4Text;
}
/// LFM2-MoE: Mixtral's expert names under feed_forward, sigmoid scores with
/// an f32 expert_bias buffer, the first num_dense_layers layers dense, and
/// LFM2's own names for the norms and the attention output.
static bool isLfm2(Family f) { return f == Family::Lfm2Moe; }
/// ERNIE-4.5-MoE: DeepSeek-V2's tensor names with softmax scores, the
/// selection bias moe_statics.e_score_correction_bias ([1, E], f32), always
/// renormalized; the sparse layers between moe_layer_start_index and
/// moe_layer_end_index at moe_layer_interval.
static bool isErnie(Family f) { return f == Family::Ernie45Moe; }
/// OLMoE's sparse block and names (FlexOlmo's derives from it).
static bool isOlmoe(Family f) {
  return f == Family::Olmoe || f == Family::FlexOlmo;
}
/// Jamba: OLMoE's expert names under feed_forward with the router named
/// router, softmax top-k never renormalized, every expert_layer_period-th
/// layer sparse from expert_layer_offset; its dense MLPs have the experts'
/// intermediate_size.
static bool isJamba(Family f) { return f == Family::Jamba; }
/// DBRX: DbrxFFN under transformer.blocks.L.ffn, its sizes named d_model and
/// n_layers and its block's keys in ffn_config; the experts w1, v1 and w2
/// each one [E * f, d] tensor (w2 stacking the down projections stored
/// [in, out]); every layer sparse.
static bool isDbrx(Family f) { return f == Family::Dbrx; }
/// GPT-OSS: its router with a bias, fused experts stored [in, out] with
/// gate and up interleaved, a bias per projection; every layer sparse.
/// Written as its bf16 releases are (the MXFP4 ones dequantized).
static bool isGptOss(Family f) { return f == Family::GptOss; }
static bool isQwen(Family f) {
  return f == Family::Qwen2Moe || f == Family::Qwen3Moe ||
         f == Family::Qwen3Next || f == Family::Qwen3VLMoe;
}
/// Fused experts stored [in, out] (gate_up_proj [E, d, 2f], down_proj
/// [E, f, d]): Llama-4's and Qwen3-VL-MoE's.
static bool hasInOutExperts(Family f) {
  return isLlama4(f) || f == Family::Qwen3VLMoe;
}
/// Qwen2-MoE's sparse block, with its sigmoid-gated shared expert (also
/// Qwen3-Next's).
static bool hasGatedSharedExpert(Family f);
static bool isQwen(Family f);
static bool isDeepSeek(Family f);
/// Experts named gate_proj, up_proj and down_proj under mlp, which
/// transformers 5 can also store fused (--fused-experts).
static bool hasMlpExperts(Family f) {
  return (isQwen(f) && f != Family::Qwen3VLMoe) || f == Family::Qwen35Moe ||
         isOlmoe(f) || isDeepSeek(f) || isErnie(f);
}
/// Granite's block (router.layer, fused input_linear and output_linear);
/// GraniteMoeShared and GraniteMoeHybrid (Granite 4.0) add a shared_mlp of
/// shared_intermediate_size, fused the same way, to every layer.
static bool isGranite(Family f) {
  return f == Family::GraniteMoe || f == Family::GraniteMoeShared ||
         f == Family::GraniteMoeHybrid;
}
static bool hasGraniteSharedMlp(Family f) {
  return f == Family::GraniteMoeShared || f == Family::GraniteMoeHybrid;
}
static bool hasSharedInner(Family f) {
  return hasGatedSharedExpert(f) || hasGraniteSharedMlp(f);
}
static bool hasGatedSharedExpert(Family f) {
  return f == Family::Qwen2Moe || f == Family::Qwen3Next ||
         f == Family::Qwen35Moe;
}
/// DeepSeek-V3's block under the config classes that list the sparse
/// layers in mlp_layer_types: DeepSeek-V3.2, GLM-4.7-Flash and GLM-5.
static bool hasMlpLayerTypes(Family f) {
  return f == Family::DeepSeekV32 || f == Family::Glm4MoeLite ||
         f == Family::GlmMoeDsa;
}
/// DeepSeek's sparse block: DeepSeek-V2 and V3, Kimi K2, GLM-4.5 and
/// dots.llm1 (V3's router and tensors under other config defaults, without
/// moe_layer_freq), and those above.
static bool isDeepSeek(Family f) {
  return f == Family::DeepSeekV2 || f == Family::DeepSeekV3 ||
         f == Family::KimiK2 || f == Family::Glm4Moe || f == Family::Glm4vMoe ||
         f == Family::Dots1 || hasMlpLayerTypes(f);
}
/// Families with an ungated shared FFN of n_shared_experts * inner.
static bool hasSharedExperts(Family f) { return isDeepSeek(f) || isErnie(f); }
/// Sigmoid scores, the f32 e_score_correction_bias, groups scored by their
/// two best experts.
static bool hasV3Router(Family f) {
  return f == Family::DeepSeekV3 || f == Family::KimiK2 ||
         f == Family::Glm4Moe || f == Family::Glm4vMoe || f == Family::Dots1 ||
         hasMlpLayerTypes(f);
}
static bool hasMoeLayerFreq(Family f) {
  return f == Family::DeepSeekV2 || f == Family::DeepSeekV3 ||
         f == Family::KimiK2;
}
/// Families whose config has norm_topk_prob (the others always or never
/// renormalize, spec section 9).
static bool hasNormTopkProb(Family f) {
  return (isQwen(f) && f != Family::Qwen3VLMoe) || isDeepSeek(f) ||
         isOlmoe(f) || isLfm2(f);
}
/// Families whose config says how many of the first layers are dense.
static bool hasFirstDense(Family f) {
  return isDeepSeek(f) || isLfm2(f) || isErnie(f);
}
/// Families with routed_scaling_factor.
static bool hasScalingFactor(Family f) { return isDeepSeek(f) || isLfm2(f); }

/// Whether layer L holds a sparse MoE block, with the rule of the family's
/// Hugging Face modeling code.
static bool isSparseLayer(const Model &m, int64_t layer) {
  if (isQwen(m.family()))
    return !llvm::is_contained(m.mlpOnlyLayers, layer) &&
           (layer + 1) % m.sparseStep == 0;
  if (isDeepSeek(m.family()))
    return layer >= m.firstDense && layer % m.moeLayerFreq == 0;
  if (isLfm2(m.family()))
    return layer >= m.firstDense;
  if (isJamba(m.family()))
    return layer % m.moeLayerFreq == m.moeLayerOffset;
  if (isErnie(m.family())) {
    int64_t end = m.moeLayerEnd == -1 ? m.layers - 1 : m.moeLayerEnd;
    return layer >= m.firstDense && layer <= end &&
           (layer + 1) % m.moeLayerFreq == 0;
  }
  if (isLlama4(m.family()))
    return layer % m.moeLayerFreq == m.moeLayerFreq - 1;
  return true;
}

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

/// Options that only some families' configs have: giving one to another
/// family is a mistake worth reporting, not ignoring.
static llvm::Error checkOptionFamilies(Family family) {
  struct Rule {
    const cl::Option &option;
    bool (*applies)(Family);
    StringRef families;
  };
  auto hasDense = [](Family f) {
    return isQwen(f) || isDeepSeek(f) || isLfm2(f) || isErnie(f) || isLlama4(f);
  };
  auto hasLayerInterval = [](Family f) {
    return hasMoeLayerFreq(f) || isErnie(f) || isJamba(f);
  };
  const Rule rules[] = {
      {denseInner, hasDense,
       "qwen, deepseek, glm4_moe, dots1, ernie4_5_moe, lfm2_moe and llama4"},
      {interleaveStep, isLlama4, "llama4 and llama4_text"},
      {sharedInner, hasSharedInner,
       "qwen2_moe, qwen3_next, qwen3_5_moe, granitemoeshared and "
       "granitemoehybrid"},
      {sharedExperts, hasSharedExperts,
       "deepseek, glm4_moe, dots1 and ernie4_5_moe"},
      {groups, isDeepSeek, "deepseek, glm4_moe and dots1"},
      {topkGroup, isDeepSeek, "deepseek, glm4_moe and dots1"},
      {firstDense, hasFirstDense,
       "deepseek, glm4_moe, dots1, ernie4_5_moe and lfm2_moe"},
      {moeLayerFreq, hasLayerInterval, "deepseek, ernie4_5_moe and jamba"},
      {moeLayerOffset, isJamba, "jamba"},
      {moeLayerEnd, isErnie, "ernie4_5_moe"},
      {scalingFactor, hasScalingFactor,
       "deepseek, glm4_moe, dots1 and lfm2_moe"},
      {sparseStep, isQwen, "qwen2_moe, qwen3_moe, qwen3_next and qwen3_vl_moe"},
      {mlpOnlyLayers, isQwen,
       "qwen2_moe, qwen3_moe, qwen3_next and qwen3_vl_moe"},
      {normTopkProb, [](Family f) { return hasNormTopkProb(f) || isDbrx(f); },
       "qwen2_moe, qwen3_moe, qwen3_next, olmoe, flex_olmo, deepseek, "
       "glm4_moe, dots1, lfm2_moe and dbrx (moe_normalize_expert_weights 1 "
       "or null)"},
      {expertBias, isLfm2, "lfm2_moe"},
      {fusedExperts,
       [](Family f) {
         return hasMlpExperts(f) || isMixtralBlock(f) || hasInOutExperts(f);
       },
       "qwen2_moe, qwen3_moe, qwen3_next, qwen3_5_moe, qwen3_vl_moe, olmoe, "
       "flex_olmo, deepseek, glm4_moe, dots1, ernie4_5_moe, mixtral, "
       "minimax, minimax_m2, llama4 and llama4_text"},
  };
  for (const Rule &rule : rules)
    if (rule.option.getNumOccurrences() && !rule.applies(family))
      return llvm::createStringError("--" + rule.option.ArgStr +
                                     " applies to " + rule.families + " only");
  return llvm::Error::success();
}

static llvm::Error checkPositive(const cl::opt<int64_t> &option) {
  if (option < 1)
    return llvm::createStringError("--" + option.ArgStr +
                                   " must be at least 1");
  return llvm::Error::success();
}

/// DeepSeek's expert groups: the defaults split E into up to 4 groups of at
/// least 2 experts (DeepSeek-V3 scores a group by its two best experts).
static llvm::Error setGroups(Model &m) {
  m.groups = groups.getNumOccurrences()             ? int64_t(groups)
             : m.experts % 4 == 0 && m.experts >= 8 ? 4
             : m.experts % 2 == 0 && m.experts >= 4 ? 2
                                                    : 1;
  m.topkGroup = topkGroup.getNumOccurrences()
                    ? int64_t(topkGroup)
                    : std::max<int64_t>(1, m.groups / 2);
  if (m.groups < 1 || m.experts % m.groups != 0)
    return llvm::createStringError("--groups must divide --experts");
  if (m.topkGroup < 1 || m.topkGroup > m.groups)
    return llvm::createStringError("--topk-group must be in [1, groups]");
  int64_t perGroup = m.experts / m.groups;
  if (hasV3Router(m.family()) && perGroup < 2)
    return llvm::createStringError(m.info->modelType +
                                   " needs at least 2 experts per group");
  if (m.topK > m.topkGroup * perGroup)
    return llvm::createStringError("--top-k exceeds the experts of the "
                                   "--topk-group kept groups");
  return llvm::Error::success();
}

static llvm::Error setFamilyExtras(Model &m) {
  Family f = m.family();
  m.normTopkProb = normTopkProb.getNumOccurrences()
                       ? bool(normTopkProb)
                       : f == Family::Qwen3Moe || f == Family::Qwen3Next ||
                             (hasV3Router(f) && f != Family::Dots1) ||
                             isLfm2(f) || isDbrx(f);
  if (hasGraniteSharedMlp(f) || f == Family::Qwen35Moe) {
    m.sharedInner = sharedInner;
    return llvm::Error::success();
  }
  if (isQwen(f)) {
    m.sparseStep = sparseStep;
    m.mlpOnlyLayers.assign(mlpOnlyLayers.begin(), mlpOnlyLayers.end());
    for (int64_t layer : m.mlpOnlyLayers)
      if (layer < 0 || layer >= m.layers)
        return llvm::createStringError("--mlp-only-layers names layer " +
                                       llvm::Twine(layer) +
                                       ", outside [0, layers)");
    if (hasGatedSharedExpert(f))
      m.sharedInner = sharedInner;
    return checkPositive(sparseStep);
  }
  if (isLfm2(f)) {
    m.firstDense = firstDense;
    m.expertBias = expertBias;
    m.scalingFactor =
        scalingFactor.getNumOccurrences() ? double(scalingFactor) : 1.0;
    if (m.firstDense < 0 || m.firstDense > m.layers)
      return llvm::createStringError("--first-dense must be in [0, layers]");
    return llvm::Error::success();
  }
  if (isJamba(f)) {
    m.moeLayerFreq =
        moeLayerFreq.getNumOccurrences() ? int64_t(moeLayerFreq) : 2;
    m.moeLayerOffset = moeLayerOffset;
    if (m.moeLayerFreq < 1)
      return llvm::createStringError("--moe-layer-freq must be at least 1");
    if (m.moeLayerOffset < 0 || m.moeLayerOffset >= m.moeLayerFreq)
      return llvm::createStringError(
          "--moe-layer-offset must be in [0, --moe-layer-freq)");
    return llvm::Error::success();
  }
  if (isErnie(f)) {
    m.sharedExperts = sharedExperts;
    m.sharedInner = m.sharedExperts * m.inner;
    m.firstDense = firstDense;
    m.moeLayerFreq = moeLayerFreq;
    m.moeLayerEnd = moeLayerEnd;
    if (m.sharedExperts < 0)
      return llvm::createStringError("--shared-experts must be at least 0");
    if (m.firstDense < 0 || m.firstDense > m.layers)
      return llvm::createStringError("--first-dense must be in [0, layers]");
    if (m.moeLayerEnd < -1 || m.moeLayerEnd >= m.layers)
      return llvm::createStringError(
          "--moe-layer-end must be -1 or in [0, layers)");
    return checkPositive(moeLayerFreq);
  }
  if (isLlama4(f)) {
    m.moeLayerFreq = interleaveStep;
    m.sharedInner = m.inner; // Llama4TextMLP of intermediate_size
    return checkPositive(interleaveStep);
  }
  if (!isDeepSeek(f))
    return llvm::Error::success();
  m.sharedExperts = sharedExperts;
  m.sharedInner = m.sharedExperts * m.inner;
  m.firstDense = firstDense;
  m.moeLayerFreq = moeLayerFreq;
  m.scalingFactor =
      scalingFactor.getNumOccurrences() ? double(scalingFactor)
      : f == Family::DeepSeekV3 || f == Family::KimiK2 ||
              f == Family::DeepSeekV32 || f == Family::GlmMoeDsa
          ? 2.5
      : f == Family::Glm4MoeLite ? 1.8
      : f == Family::Glm4Moe || f == Family::Glm4vMoe || f == Family::Dots1
          ? 1.0
          : 16.0;
  if (m.sharedExperts < 0)
    return llvm::createStringError("--shared-experts must be at least 0");
  if (m.firstDense < 0 || m.firstDense > m.layers)
    return llvm::createStringError("--first-dense must be in [0, layers]");
  if (llvm::Error err = checkPositive(moeLayerFreq))
    return err;
  return setGroups(m);
}

/// --fp8-compressed's strategy: tensor, channel, group:G or block:R,C.
static llvm::Error parseCompressedStrategy(Model &m) {
  auto [strategy, sizes] = StringRef(fp8Compressed).split(':');
  llvm::SmallVector<StringRef> parts;
  if (!sizes.empty())
    sizes.split(parts, ',');
  llvm::SmallVector<int64_t> values;
  for (StringRef part : parts) {
    int64_t value = 0;
    if (part.getAsInteger(10, value) || value < 1)
      break;
    values.push_back(value);
  }
  bool valid = values.size() == parts.size();
  if (strategy == "tensor" || strategy == "channel")
    valid &= parts.empty();
  else if (strategy == "group")
    valid &= values.size() == 1;
  else if (strategy == "block")
    valid &= values.size() == 2;
  else
    valid = false;
  if (!valid)
    return llvm::createStringError("--fp8-compressed must be tensor, "
                                   "channel, group:G or block:R,C");
  m.fp8Format = Model::FP8::Compressed;
  m.fp8Strategy = strategy.str();
  if (strategy == "channel")
    m.fp8Block = {1, 0};
  else if (strategy == "group")
    m.fp8Block = {1, values[0]};
  else if (strategy == "block")
    m.fp8Block = {values[0], values[1]};
  return llvm::Error::success();
}

/// The FP8 and MXFP4 options.
static llvm::Error parseFP8(Model &m) {
  int given =
      !fp8Block.empty() + fp8PerTensor + !fp8Compressed.empty() + fp8Fbgemm;
  if (given > 1)
    return llvm::createStringError(
        "--fp8-block, --fp8-per-tensor, --fp8-compressed and --fp8-fbgemm "
        "are exclusive");
  if (!fp8Block.empty()) {
    if (fp8Block.size() != 2 || fp8Block[0] < 1 || fp8Block[1] < 1)
      return llvm::createStringError("--fp8-block must be two positive sizes "
                                     "rows,cols");
    m.fp8Format = Model::FP8::Blocks;
    m.fp8Block = {fp8Block[0], fp8Block[1]};
  }
  if (fp8PerTensor)
    m.fp8Format = Model::FP8::PerTensor;
  if (!fp8Compressed.empty())
    if (llvm::Error err = parseCompressedStrategy(m))
      return err;
  if (fp8Fbgemm) {
    m.fp8Format = Model::FP8::Fbgemm;
    m.fp8Block = {1, 0};
  }
  if (m.fp8() && (isDbrx(m.family()) || isGptOss(m.family())))
    return llvm::createStringError(
        "FP8: " + m.info->modelType +
        " checkpoints are not written in FP8 (DBRX's stacked [E * f, d] "
        "tensors have no block grid per expert; GPT-OSS's release is "
        "--mxfp4)");
  // Granite's experts are always fused.
  bool fused = m.fusedExperts || isGranite(m.family());
  if (m.fp8() && m.fp8Block == std::array<int64_t, 2>{0, 0} && fused)
    return llvm::createStringError(
        "FP8 per tensor: fused expert tensors would share one scale among "
        "experts");
  if (fp8Dequantized && !m.fp8())
    return llvm::createStringError(
        "--fp8-dequantized needs --fp8-block, --fp8-per-tensor, "
        "--fp8-compressed or --fp8-fbgemm");
  if (mxfp4 && !isGptOss(m.family()))
    return llvm::createStringError("--mxfp4 is GPT-OSS's format: it needs "
                                   "--family gpt_oss");
  if (mxfp4 && (m.hidden % 32 || m.inner % 32))
    return llvm::createStringError(
        "--mxfp4 needs --hidden and --inner multiples of 32 (one scale a "
        "block of 32 inputs)");
  if (nvfp4 && (m.fp8() || mxfp4))
    return llvm::createStringError(
        "--nvfp4 and the FP8 and MXFP4 options are exclusive");
  if (nvfp4 && (fused || isDbrx(m.family()) || isGptOss(m.family())))
    return llvm::createStringError(
        "--nvfp4: Model Optimizer exports experts per expert (not with "
        "fused experts, dbrx or gpt_oss)");
  if (nvfp4 && (m.hidden % 2 || m.inner % 2))
    return llvm::createStringError(
        "--nvfp4 needs even --hidden and --inner (two codes a byte)");
  if (nvfp4Dequantized && !nvfp4)
    return llvm::createStringError("--nvfp4-dequantized needs --nvfp4");
  if (nvfp4Compressed && !nvfp4)
    return llvm::createStringError("--nvfp4-compressed needs --nvfp4");
  if (mxfp4Compressed && (m.fp8() || mxfp4 || nvfp4))
    return llvm::createStringError(
        "--mxfp4-compressed and the FP8, MXFP4 and NVFP4 options are "
        "exclusive");
  if (mxfp4Compressed && (fused || isDbrx(m.family()) || isGptOss(m.family())))
    return llvm::createStringError(
        "--mxfp4-compressed: llm-compressor quantizes experts stored per "
        "expert (not with fused experts, dbrx or gpt_oss, whose own MXFP4 is "
        "--mxfp4)");
  if (mxfp4Compressed && (m.hidden % 2 || m.inner % 2))
    return llvm::createStringError(
        "--mxfp4-compressed needs even --hidden and --inner (two codes a "
        "byte)");
  if (mxfp4Dequantized && !mxfp4 && !mxfp4Compressed)
    return llvm::createStringError(
        "--mxfp4-dequantized needs --mxfp4 or --mxfp4-compressed");
  if (intCompressed != 0 && intCompressed != 4 && intCompressed != 8)
    return llvm::createStringError("--int-compressed must be 4 or 8, not " +
                                   llvm::Twine(intCompressed.getValue()));
  if (intCompressed && (m.fp8() || mxfp4 || nvfp4 || mxfp4Compressed))
    return llvm::createStringError(
        "--int-compressed and the FP8, MXFP4 and NVFP4 options are "
        "exclusive");
  if (intCompressed && (fused || isDbrx(m.family()) || isGptOss(m.family())))
    return llvm::createStringError(
        "--int-compressed: llm-compressor quantizes experts stored per "
        "expert (not with fused experts, dbrx or gpt_oss)");
  if (intGroup < 0)
    return llvm::createStringError("--int-group must not be negative");
  if (intDequantized && !intCompressed)
    return llvm::createStringError("--int-dequantized needs --int-compressed");
  if (intAsymmetric && !intCompressed)
    return llvm::createStringError("--int-asymmetric needs --int-compressed");
  if (intFormat != "pack-quantized" && intFormat != "int-quantized")
    return llvm::createStringError(
        "--int-format must be pack-quantized or int-quantized, not " +
        intFormat);
  if (intFormat == "int-quantized" && (intCompressed != 8 || intAsymmetric))
    return llvm::createStringError(
        "--int-format int-quantized needs --int-compressed 8 and symmetric "
        "weights (no --int-asymmetric)");
  if (intActorder && (!intCompressed || !intGroup))
    return llvm::createStringError(
        "--int-actorder needs --int-compressed and a --int-group");
  if (gptq != 0 && gptq != 4 && gptq != 8)
    return llvm::createStringError("--gptq must be 4 or 8, not " +
                                   llvm::Twine(gptq.getValue()));
  if (gptq && (m.fp8() || mxfp4 || nvfp4 || mxfp4Compressed || intCompressed))
    return llvm::createStringError(
        "--gptq and the FP8, MXFP4, NVFP4 and --int-compressed options are "
        "exclusive");
  if (gptq && (fused || isDbrx(m.family()) || isGptOss(m.family())))
    return llvm::createStringError(
        "--gptq: GPTQ quantizes Linear layers, experts stored per expert "
        "(not with fused experts, dbrx or gpt_oss)");
  if (gptq && (m.hidden % (32 / gptq) || m.inner % (32 / gptq)))
    return llvm::createStringError("--gptq " + llvm::Twine(gptq.getValue()) +
                                   " needs --hidden and --inner multiples of " +
                                   llvm::Twine(32 / gptq.getValue()) +
                                   " (whole words)");
  if (gptqGroup < 0)
    return llvm::createStringError("--gptq-group must not be negative");
  if (awq &&
      (m.fp8() || mxfp4 || nvfp4 || mxfp4Compressed || intCompressed || gptq))
    return llvm::createStringError(
        "--awq and the FP8, MXFP4, NVFP4, --int-compressed and --gptq "
        "options are exclusive");
  if (awq && (fused || isDbrx(m.family()) || isGptOss(m.family())))
    return llvm::createStringError(
        "--awq: AWQ quantizes Linear layers, experts stored per expert (not "
        "with fused experts, dbrx or gpt_oss)");
  if (awq && (m.hidden % 8 || m.inner % 8))
    return llvm::createStringError(
        "--awq needs --hidden and --inner multiples of 8 (whole words)");
  if (awqGroup < 0)
    return llvm::createStringError("--awq-group must not be negative");
  if (awqDequantized && !awq)
    return llvm::createStringError("--awq-dequantized needs --awq");
  if ((gptqDescAct || gptqAsym || gptqV2 || gptqDequantized) && !gptq)
    return llvm::createStringError(
        "--gptq-desc-act, --gptq-asym, --gptq-v2 and --gptq-dequantized need "
        "--gptq");
  return llvm::Error::success();
}

/// The bitsandbytes options.
static llvm::Error parseBnb4(const Model &m) {
  if (bnb4.empty()) {
    if (bnb4Block.getNumOccurrences() || bnb4DoubleQuant ||
        bnb4NestedBlock.getNumOccurrences() || bnb4Router || bnb4Dequantized)
      return llvm::createStringError(
          "--bnb4-block, --bnb4-double-quant, --bnb4-nested-block, "
          "--bnb4-router and --bnb4-dequantized need --bnb4");
    return llvm::Error::success();
  }
  if (bnb4 != "nf4" && bnb4 != "fp4")
    return llvm::createStringError("--bnb4 must be nf4 or fp4, not " + bnb4);
  if (m.fp8() || mxfp4 || nvfp4 || mxfp4Compressed || intCompressed || gptq ||
      awq)
    return llvm::createStringError(
        "--bnb4 and the FP8, MXFP4, NVFP4, --int-compressed, --gptq and "
        "--awq options are exclusive");
  // Granite's experts are always fused.
  if (m.fusedExperts || isGranite(m.family()) || isDbrx(m.family()) ||
      isGptOss(m.family()))
    return llvm::createStringError(
        "--bnb4: bitsandbytes quantizes Linear layers, experts stored per "
        "expert (not with fused experts, dbrx or gpt_oss)");
  for (const cl::opt<int64_t> *option : {&bnb4Block, &bnb4NestedBlock}) {
    int64_t size = *option;
    if (size < 32 || size > 4096 || (size & (size - 1)))
      return llvm::createStringError("--" + option->ArgStr +
                                     " must be a power of two from 32 to "
                                     "4096, not " +
                                     llvm::Twine(size));
  }
  if (bnb4NestedBlock.getNumOccurrences() && !bnb4DoubleQuant)
    return llvm::createStringError(
        "--bnb4-nested-block needs --bnb4-double-quant");
  return llvm::Error::success();
}

static llvm::Expected<Model> parseModel() {
  auto info = llvm::find_if(
      kFamilies, [](const FamilyInfo &i) { return i.modelType == familyName; });
  if (info == std::end(kFamilies))
    return llvm::createStringError("unknown --family " + familyName);
  if (llvm::Error err = checkOptionFamilies(info->family))
    return std::move(err);
  for (const cl::opt<int64_t> *option :
       {&hidden, &inner, &experts, &layers, &shards, &denseInner})
    if (llvm::Error err = checkPositive(*option))
      return std::move(err);
  // GraniteMoeShared without a shared MLP is shared_intermediate_size 0.
  if (sharedInner < (info->family == Family::GraniteMoeShared ? 0 : 1))
    return llvm::createStringError(info->family == Family::GraniteMoeShared
                                       ? "--shared-inner must be at least 0"
                                       : "--shared-inner must be at least 1");

  Model m{info, hidden, inner, experts, 0, layers, denseInner};
  int64_t familyK = info->family == Family::Olmoe      ? 8
                    : info->family == Family::FlexOlmo ? 5
                    : isLfm2(info->family)             ? 4
                    : isLlama4(info->family)           ? 1
                                                       : 2;
  m.topK =
      topK.getNumOccurrences() ? int64_t(topK) : std::min(familyK, m.experts);
  if (m.topK < 1 || m.topK > m.experts)
    return llvm::createStringError("--top-k must be in [1, experts]");
  std::optional<DType> dtype =
      checkpoint::parseComputeDType(StringRef(dtypeName));
  if (!dtype)
    return llvm::createStringError("--dtype must be f32, f16 or bf16");
  m.dtype = *dtype;
  m.fusedExperts =
      fusedExperts.getNumOccurrences()
          ? bool(fusedExperts)
          : info->family == Family::Qwen35Moe || hasInOutExperts(info->family);
  if (llvm::Error err = parseFP8(m))
    return std::move(err);
  if (llvm::Error err = parseBnb4(m))
    return std::move(err);
  if (llvm::Error err = setFamilyExtras(m))
    return std::move(err);
  return m;
}

//===----------------------------------------------------------------------===//
// config.json
//===----------------------------------------------------------------------===//

static StringRef torchDType(DType type) {
  switch (type) {
  case DType::F32:
    return "float32";
  case DType::F16:
    return "float16";
  case DType::BF16:
    return "bfloat16";
  case DType::F8E4M3:
  case DType::U8:
  case DType::I8:
  case DType::I32:
    break;
  }
  llvm_unreachable("not a dtype of a model");
}

/// The keys each family's config.json has (Hugging Face names; note that
/// mixtral, minimax, minimax_m2, olmoe and granitemoe call the expert size
/// intermediate_size).
static void addMoEKeys(const Model &m, llvm::json::Object &config) {
  Family f = m.family();
  bool expertSizeIsIntermediate = isMixtralBlock(f) || isOlmoe(f) ||
                                  isJamba(f) || isGranite(f) || isGptOss(f);
  if (isLlama4(f)) {
    config["intermediate_size"] = m.inner;
    config["intermediate_size_mlp"] = m.denseInner;
    config["interleave_moe_layer_step"] = m.moeLayerFreq;
  } else if (expertSizeIsIntermediate) {
    config["intermediate_size"] = m.inner;
  } else {
    config["intermediate_size"] = m.denseInner;
    config["moe_intermediate_size"] = m.inner;
  }
  StringRef expertsKey =
      isMixtralBlock(f) || isGranite(f) || isLlama4(f) || isGptOss(f)
          ? "num_local_experts"
      : isDeepSeek(f) ? "n_routed_experts"
      : isErnie(f)    ? "moe_num_experts"
                      : "num_experts";
  config[expertsKey] = m.experts;
  config[isErnie(f) ? "moe_k" : "num_experts_per_tok"] = m.topK;
  if (hasNormTopkProb(f))
    config["norm_topk_prob"] = m.normTopkProb;
  if (isQwen(f)) {
    config["decoder_sparse_step"] = m.sparseStep;
    config["mlp_only_layers"] = llvm::json::Array(m.mlpOnlyLayers);
  }
  if (hasGatedSharedExpert(f))
    config["shared_expert_intermediate_size"] = m.sharedInner;
  if (hasGraniteSharedMlp(f))
    config["shared_intermediate_size"] = m.sharedInner;
  // GraniteMoeHybrid: Mamba layers with an attention layer every fourth
  // (the mixers are not what moe-import reads).
  if (f == Family::GraniteMoeHybrid) {
    llvm::json::Array types;
    for (int64_t l = 0; l < m.layers; ++l)
      types.push_back(l % 4 == 3 ? "attention" : "mamba");
    config["layer_types"] = std::move(types);
  }
  if (isGptOss(f)) // GptOssConfig's, the only limit swiglu_oai has
    config["swiglu_limit"] = 7.0;
  if (isJamba(f)) {
    config["expert_layer_period"] = m.moeLayerFreq;
    config["expert_layer_offset"] = m.moeLayerOffset;
  }
  if (isErnie(f)) {
    config["moe_num_shared_experts"] = m.sharedExperts;
    config["moe_layer_start_index"] = m.firstDense;
    config["moe_layer_end_index"] = m.moeLayerEnd;
    config["moe_layer_interval"] = m.moeLayerFreq;
    config["moe_norm_min"] = 1e-12;
    config["use_bias"] = false;
  }
  if (isLfm2(f)) {
    config["num_dense_layers"] = m.firstDense;
    config["use_expert_bias"] = m.expertBias;
    config["routed_scaling_factor"] = m.scalingFactor;
  }
}

static void addDeepSeekKeys(const Model &m, llvm::json::Object &config) {
  bool v3 = hasV3Router(m.family());
  config["n_shared_experts"] = m.sharedExperts;
  config["n_group"] = m.groups;
  config["topk_group"] = m.topkGroup;
  config["routed_scaling_factor"] = m.scalingFactor;
  // Glm4MoeLiteConfig has no first_k_dense_replace: its mlp_layer_types
  // alone say which layers are dense.
  if (m.family() != Family::Glm4MoeLite)
    config["first_k_dense_replace"] = m.firstDense;
  if (hasMlpLayerTypes(m.family())) {
    llvm::json::Array types;
    for (int64_t l = 0; l < m.layers; ++l)
      types.push_back(isSparseLayer(m, l) ? "sparse" : "dense");
    config["mlp_layer_types"] = std::move(types);
  }
  // Glm4MoeConfig has neither a routing method nor moe_layer_freq.
  if (!hasMoeLayerFreq(m.family()))
    return;
  config["topk_method"] = v3             ? "noaux_tc"
                          : m.groups > 1 ? "group_limited_greedy"
                                         : "greedy";
  config["scoring_func"] = v3 ? "sigmoid" : "softmax";
  config["moe_layer_freq"] = m.moeLayerFreq;
}

/// llm-compressor's quantization_config of one config group, for all
/// Linear layers but the routers and the output head.
static llvm::json::Object compressedTensorsConfig(llvm::json::Object weights,
                                                  llvm::json::Object inputs,
                                                  StringRef format) {
  llvm::json::Object group{
      {"input_activations", std::move(inputs)},
      {"output_activations", nullptr},
      {"targets", llvm::json::Array{"Linear"}},
      {"weights", std::move(weights)},
  };
  return llvm::json::Object{
      {"config_groups", llvm::json::Object{{"group_0", std::move(group)}}},
      {"format", format},
      {"ignore", llvm::json::Array{"lm_head", "re:.*gate$", "re:.*router.*"}},
      {"kv_cache_scheme", nullptr},
      {"quant_method", "compressed-tensors"},
      {"quantization_status", "compressed"},
  };
}

/// The quantization_config llm-compressor writes for FP8 weights with
/// dynamic FP8 activations (its FP8_DYNAMIC scheme, and the other weight
/// strategies of the same format); the routers are not quantized.
static llvm::json::Object compressedTensorsConfig(const Model &m) {
  llvm::json::Value groupSize = nullptr, blockStructure = nullptr;
  if (m.fp8Strategy == "group")
    groupSize = m.fp8Block[1];
  if (m.fp8Strategy == "block")
    blockStructure = llvm::json::Array(m.fp8Block);
  llvm::json::Object weights{
      {"actorder", nullptr},
      {"block_structure", blockStructure},
      {"dynamic", false},
      {"group_size", groupSize},
      {"num_bits", 8},
      {"observer", "minmax"},
      {"strategy", m.fp8Strategy},
      {"symmetric", true},
      {"type", "float"},
  };
  llvm::json::Object activations{
      {"dynamic", true},   {"num_bits", 8},   {"strategy", "token"},
      {"symmetric", true}, {"type", "float"},
  };
  return compressedTensorsConfig(std::move(weights), std::move(activations),
                                 "float-quantized");
}

/// The quantization_config llm-compressor writes for its NVFP4 scheme
/// (NVFP4 weights and activations, scaled by blocks of 16 under a global
/// scale a tensor).
static llvm::json::Object compressedNVFP4Config() {
  auto scheme = [](llvm::json::Value dynamic) {
    return llvm::json::Object{
        {"actorder", nullptr},
        {"block_structure", nullptr},
        {"dynamic", dynamic},
        {"group_size", 16},
        {"num_bits", 4},
        {"observer", "minmax"},
        {"strategy", "tensor_group"},
        {"symmetric", true},
        {"type", "float"},
    };
  };
  return compressedTensorsConfig(scheme(false), scheme("local"),
                                 "nvfp4-pack-quantized");
}

/// The quantization_config llm-compressor writes for its W4A16 and W8A16
/// schemes (integer weights scaled per group or channel, activations
/// unquantized), or for W8A8 (--int-format int-quantized: int8 activations
/// quantized per token when the model runs).
static llvm::json::Object compressedIntConfig() {
  llvm::json::Value groupSize = nullptr;
  if (intGroup)
    groupSize = intGroup.getValue();
  llvm::json::Object weights{
      {"actorder", intActorder ? llvm::json::Value("group") : nullptr},
      {"block_structure", nullptr},
      {"dynamic", false},
      {"group_size", std::move(groupSize)},
      {"num_bits", intCompressed.getValue()},
      {"observer", "minmax"},
      {"strategy", intGroup ? "group" : "channel"},
      {"symmetric", !intAsymmetric},
      {"type", "int"},
  };
  bool w8a8 = intFormat == "int-quantized";
  llvm::json::Object inputs{
      {"actorder", nullptr}, {"block_structure", nullptr},
      {"dynamic", true},     {"group_size", nullptr},
      {"num_bits", 8},       {"observer", nullptr},
      {"strategy", "token"}, {"symmetric", true},
      {"type", "int"},
  };
  llvm::json::Object config = compressedTensorsConfig(
      std::move(weights), std::move(inputs), intFormat.getValue());
  if (!w8a8) {
    auto *group = config.getObject("config_groups")->getObject("group_0");
    (*group)["input_activations"] = nullptr;
  }
  return config;
}

/// The quantization_config llm-compressor writes for its MXFP4 scheme
/// (MXFP4 weights and activations, an E8M0 scale a group of 32).
static llvm::json::Object compressedMXFP4Config() {
  auto scheme = [](bool dynamic) {
    return llvm::json::Object{
        {"actorder", nullptr},
        {"block_structure", nullptr},
        {"dynamic", dynamic},
        {"group_size", 32},
        {"num_bits", 4},
        {"observer", "minmax"},
        {"scale_dtype", "torch.uint8"},
        {"strategy", "group"},
        {"symmetric", true},
        {"type", "float"},
    };
  };
  return compressedTensorsConfig(scheme(false), scheme(true),
                                 "mxfp4-pack-quantized");
}

/// The quantization_config transformers writes for a model loaded in 4
/// bits (BitsAndBytesConfig's). llm_int8_skip_modules names the modules
/// left in --dtype: the output head and, without --bnb4-router, the
/// routers (Llama-4's and Jamba's router, the others' gate) and
/// Qwen2-MoE's shared_expert_gate. transformers skips a module whose
/// dotted name contains one of them, so this list is descriptive only
/// ("gate" would skip gate_proj there); readers take the tensors as they
/// are.
static llvm::json::Object bnb4Config(const Model &m) {
  llvm::json::Array skip{"lm_head"};
  if (!bnb4Router) {
    skip.push_back(isLlama4(m.family()) || isJamba(m.family()) ? "router"
                                                               : "gate");
    if (hasGatedSharedExpert(m.family()))
      skip.push_back("shared_expert_gate");
  }
  return llvm::json::Object{
      {"_load_in_4bit", true},
      {"_load_in_8bit", false},
      {"bnb_4bit_compute_dtype", torchDType(m.dtype)},
      {"bnb_4bit_quant_storage", "uint8"},
      {"bnb_4bit_quant_type", bnb4.getValue()},
      {"bnb_4bit_use_double_quant", bnb4DoubleQuant.getValue()},
      {"llm_int8_enable_fp32_cpu_offload", false},
      {"llm_int8_has_fp16_weight", false},
      {"llm_int8_skip_modules", std::move(skip)},
      {"llm_int8_threshold", 6.0},
      {"load_in_4bit", true},
      {"load_in_8bit", false},
      {"quant_method", "bitsandbytes"},
  };
}

static llvm::json::Object buildConfig(const Model &m);

/// Model Optimizer's description of an NVFP4 export; the routers and the
/// output head stay unquantized (which the tensors show: moe-import reads
/// them so).
static llvm::json::Object modelOptQuantization() {
  return llvm::json::Object{
      {"exclude_modules", llvm::json::Array{"lm_head", "*.mlp.gate"}},
      {"group_size", 16},
      {"kv_cache_quant_algo", nullptr},
      {"quant_algo", "NVFP4"},
  };
}

/// hf_quant_config.json, which Model Optimizer writes beside config.json.
static llvm::json::Object modelOptQuantConfig() {
  return llvm::json::Object{
      {"producer", llvm::json::Object{{"name", "modelopt"}}},
      {"quantization", modelOptQuantization()},
  };
}

/// The config of a multimodal checkpoint: the text model's config, written
/// as that of family `text`, nested in text_config (the vision model's is
/// left out).
static llvm::json::Object nestTextConfig(const Model &m, Family text,
                                         StringRef textModelType) {
  Model textModel = m;
  textModel.info = llvm::find_if(
      kFamilies, [&](const FamilyInfo &i) { return i.family == text; });
  llvm::json::Object textConfig = buildConfig(textModel);
  textConfig.erase("architectures");
  textConfig["model_type"] = textModelType;
  llvm::json::Object config{
      {"architectures", llvm::json::Array{m.info->architecture}},
      {"model_type", m.info->modelType},
      {"tie_word_embeddings", false},
      {"torch_dtype", torchDType(m.dtype)},
  };
  // The quantization_config of the whole checkpoint stays at the top.
  if (llvm::json::Value *quantization = textConfig.get("quantization_config")) {
    config["quantization_config"] = std::move(*quantization);
    textConfig.erase("quantization_config");
  }
  config["text_config"] = std::move(textConfig);
  return config;
}

/// DbrxConfig: its own names for the sizes, the block's keys in ffn_config
/// (as DbrxFFNConfig writes them) and the attention's in attn_config.
static llvm::json::Object dbrxConfig(const Model &m) {
  llvm::json::Value norm = nullptr;
  if (m.normTopkProb)
    norm = 1.0;
  llvm::json::Object ffn{
      {"ffn_act_fn", llvm::json::Object{{"name", "silu"}}},
      {"ffn_hidden_size", m.inner},
      {"moe_jitter_eps", 0.01},
      {"moe_normalize_expert_weights", std::move(norm)},
      {"moe_num_experts", m.experts},
      {"moe_top_k", m.topK},
  };
  return llvm::json::Object{
      {"architectures", llvm::json::Array{m.info->architecture}},
      {"model_type", m.info->modelType},
      {"d_model", m.hidden},
      {"n_layers", m.layers},
      {"n_heads", 1},
      {"max_seq_len", 64},
      {"vocab_size", m.vocab},
      {"attn_config", llvm::json::Object{{"clip_qkv", 8},
                                         {"kv_n_heads", 1},
                                         {"rope_theta", 500000}}},
      {"ffn_config", std::move(ffn)},
      {"tie_word_embeddings", false},
      {"torch_dtype", torchDType(m.dtype)},
  };
}

static llvm::json::Object buildConfig(const Model &m) {
  if (isDbrx(m.family()))
    return dbrxConfig(m);
  // As in Llama4Config and Qwen3VLMoeConfig; Qwen3-VL-MoE's text model is
  // Qwen3-MoE's but for norm_topk_prob, which it does not have.
  if (m.family() == Family::Llama4)
    return nestTextConfig(m, Family::Llama4Text, "llama4_text");
  // Glm4vMoeTextConfig derives from Glm4MoeConfig: GLM-4.5's keys.
  if (m.family() == Family::Glm4vMoe)
    return nestTextConfig(m, Family::Glm4Moe, "glm4v_moe_text");
  if (m.family() == Family::Qwen3VLMoe) {
    llvm::json::Object config =
        nestTextConfig(m, Family::Qwen3Moe, "qwen3_vl_moe_text");
    config.getObject("text_config")->erase("norm_topk_prob");
    return config;
  }
  // Qwen3_5MoeTextConfig: Qwen3-Next's keys but norm_topk_prob,
  // decoder_sparse_step and mlp_only_layers, which it deletes.
  if (m.family() == Family::Qwen35Moe) {
    llvm::json::Object config =
        nestTextConfig(m, Family::Qwen3Next, "qwen3_5_moe_text");
    for (StringRef key :
         {"norm_topk_prob", "decoder_sparse_step", "mlp_only_layers"})
      config.getObject("text_config")->erase(key);
    return config;
  }
  llvm::json::Object config{
      {"architectures", llvm::json::Array{m.info->architecture}},
      {"model_type", m.info->modelType},
      {"hidden_size", m.hidden},
      {"num_hidden_layers", m.layers},
      {"vocab_size", m.vocab},
      {"tie_word_embeddings", false},
      {"torch_dtype", torchDType(m.dtype)},
  };
  // LFM2-MoE's MLPs are SiLU-gated; its config has no hidden_act.
  if (!isLfm2(m.family()))
    config["hidden_act"] = "silu";
  addMoEKeys(m, config);
  if (isDeepSeek(m.family()))
    addDeepSeekKeys(m, config);
  if (!fp8Dequantized && m.fp8Format == Model::FP8::Blocks)
    config["quantization_config"] = llvm::json::Object{
        {"activation_scheme", "dynamic"},
        {"fmt", "e4m3"},
        {"quant_method", "fp8"},
        {"weight_block_size", llvm::json::Array(m.fp8Block)},
    };
  if (!fp8Dequantized && m.fp8Format == Model::FP8::PerTensor)
    config["quantization_config"] = llvm::json::Object{
        {"activation_scheme", "static"},
        {"quant_method", "fp8"},
    };
  if (!fp8Dequantized && m.fp8Format == Model::FP8::Compressed)
    config["quantization_config"] = compressedTensorsConfig(m);
  // Llama-4's FP8 release; activation_scale_ub bounds FBGEMM's FP8
  // activations.
  if (!fp8Dequantized && m.fp8Format == Model::FP8::Fbgemm)
    config["quantization_config"] = llvm::json::Object{
        {"activation_scale_ub", 1200.0},
        {"quant_method", "fbgemm_fp8"},
    };
  // GPT-OSS's release: only the experts are MXFP4.
  // NVFP4 as llm-compressor or Model Optimizer exports it.
  if (mxfp4Compressed && !mxfp4Dequantized)
    config["quantization_config"] = compressedMXFP4Config();
  if (intCompressed && !intDequantized)
    config["quantization_config"] = compressedIntConfig();
  if (awq && !awqDequantized)
    config["quantization_config"] = llvm::json::Object{
        {"bits", 4},
        {"group_size", awqGroup ? awqGroup.getValue() : int64_t(-1)},
        {"modules_to_not_convert", nullptr},
        {"quant_method", "awq"},
        {"version", "gemm"},
        {"zero_point", true},
    };
  if (gptq && !gptqDequantized)
    config["quantization_config"] = llvm::json::Object{
        {"bits", gptq.getValue()},
        {"checkpoint_format", gptqV2 ? "gptq_v2" : "gptq"},
        {"damp_percent", 0.01},
        {"desc_act", gptqDescAct.getValue()},
        {"group_size", gptqGroup ? gptqGroup.getValue() : int64_t(-1)},
        {"quant_method", "gptq"},
        {"static_groups", false},
        {"sym", !gptqAsym},
        {"true_sequential", true},
    };
  if (!bnb4.empty() && !bnb4Dequantized)
    config["quantization_config"] = bnb4Config(m);
  if (nvfp4 && nvfp4Compressed && !nvfp4Dequantized) {
    config["quantization_config"] = compressedNVFP4Config();
  } else if (nvfp4 && !nvfp4Dequantized) {
    llvm::json::Object quantization = modelOptQuantization();
    quantization["quant_method"] = "modelopt";
    config["quantization_config"] = std::move(quantization);
  }
  if (mxfp4 && !mxfp4Dequantized)
    config["quantization_config"] = llvm::json::Object{
        {"modules_to_not_convert",
         llvm::json::Array{"model.layers.*.self_attn",
                           "model.layers.*.mlp.router", "model.embed_tokens",
                           "lm_head"}},
        {"quant_method", "mxfp4"},
    };
  return config;
}

//===----------------------------------------------------------------------===//
// Tensor list
//===----------------------------------------------------------------------===//

namespace {
/// How a tensor's values are drawn.
enum class Init {
  Linear,      // N(0, 1/fan_in), fan_in the last size
  LinearInOut, // the same, stored [..., in, out]: fan_in the one before
  Norm,        // 1 + 0.1 N(0, 1), like trained RMSNorm scales
  Bias,        // 0.1 N(0, 1), stored in f32
  WideBias,    // 2 N(0, 1) in the model's dtype (GPT-OSS's projection
               // biases: wide, so that swiglu_oai's clamps at 7 bite)
};

struct TensorSpec {
  std::string name;
  llvm::SmallVector<int64_t> shape;
  Init init;
  /// The fan-in of a Linear tensor whose sizes do not show it (DBRX's
  /// stacked w2); 0: the one its init implies.
  int64_t fanIn = 0;
  /// A projection that an FP8 checkpoint quantizes: every
  /// Linear matrix but the embeddings, the output head and the routers
  /// (which FP8 releases keep in their dtype).
  bool quantizable = false;
  /// An expert projection that an MXFP4 checkpoint quantizes (GPT-OSS's).
  bool mxfp4 = false;
  /// A router's weight, or the shared expert's sigmoid gate: quantized by
  /// --bnb4 with --bnb4-router.
  bool router = false;
};

class TensorList {
public:
  void add(const llvm::Twine &name, llvm::ArrayRef<int64_t> shape,
           Init init = Init::Linear) {
    specs.push_back({name.str(), llvm::SmallVector<int64_t>(shape), init});
  }
  /// A router's weight [E, d] (or a shared expert's gate [1, d]).
  void addRouter(const llvm::Twine &name, llvm::ArrayRef<int64_t> shape) {
    add(name, shape);
    specs.back().router = true;
  }
  /// A projection weight, quantized in FP8 checkpoints.
  void addProjection(const llvm::Twine &name, llvm::ArrayRef<int64_t> shape) {
    add(name, shape);
    specs.back().quantizable = true;
  }
  /// gate_proj, up_proj, down_proj of a gated FFN under `prefix`.
  void addGatedFFN(const llvm::Twine &prefix, int64_t d, int64_t f) {
    addProjection(prefix + ".gate_proj.weight", {f, d});
    addProjection(prefix + ".up_proj.weight", {f, d});
    addProjection(prefix + ".down_proj.weight", {d, f});
  }
  std::vector<TensorSpec> specs;
};
} // namespace

static void addSparseBlock(const Model &m, const std::string &layer,
                           TensorList &list) {
  int64_t d = m.hidden, f = m.inner, e = m.experts;
  if (hasInOutExperts(m.family())) {
    bool llama4 = isLlama4(m.family());
    std::string block = layer + (llama4 ? ".feed_forward" : ".mlp");
    list.addRouter(block + (llama4 ? ".router.weight" : ".gate.weight"),
                   {e, d});
    if (m.fusedExperts) {
      list.add(block + ".experts.gate_up_proj", {e, d, 2 * f},
               Init::LinearInOut);
      list.specs.back().quantizable = true;
      list.add(block + ".experts.down_proj", {e, f, d}, Init::LinearInOut);
      list.specs.back().quantizable = true;
    } else {
      for (int64_t x = 0; x < e; ++x)
        list.addGatedFFN(block + ".experts." + std::to_string(x), d, f);
    }
    if (llama4)
      list.addGatedFFN(block + ".shared_expert", d, m.sharedInner);
    return;
  }
  if (isGptOss(m.family())) {
    std::string mlp = layer + ".mlp";
    list.addRouter(mlp + ".router.weight", {e, d});
    list.add(mlp + ".router.bias", {e}, Init::WideBias);
    // The projections, quantized in MXFP4 checkpoints (--mxfp4).
    list.add(mlp + ".experts.gate_up_proj", {e, d, 2 * f}, Init::LinearInOut);
    list.specs.back().mxfp4 = true;
    list.add(mlp + ".experts.gate_up_proj_bias", {e, 2 * f}, Init::WideBias);
    list.add(mlp + ".experts.down_proj", {e, f, d}, Init::LinearInOut);
    list.specs.back().mxfp4 = true;
    list.add(mlp + ".experts.down_proj_bias", {e, d}, Init::WideBias);
    return;
  }
  if (isJamba(m.family())) {
    std::string ff = layer + ".feed_forward";
    list.addRouter(ff + ".router.weight", {e, d});
    for (int64_t i = 0; i < e; ++i)
      list.addGatedFFN(ff + ".experts." + std::to_string(i), d, f);
    return;
  }
  if (isMixtralBlock(m.family()) || isLfm2(m.family())) {
    bool lfm2 = isLfm2(m.family());
    // transformers 5 renames block_sparse_moe to mlp when it fuses.
    std::string moe = layer + (lfm2             ? ".feed_forward"
                               : m.fusedExperts ? ".mlp"
                                                : ".block_sparse_moe");
    list.addRouter(moe + ".gate.weight", {e, d});
    if (m.family() == Family::MiniMaxM2)
      list.add(moe + ".e_score_correction_bias", {e}, Init::Bias);
    if (lfm2 && m.expertBias)
      list.add(moe + ".expert_bias", {e}, Init::Bias);
    if (m.fusedExperts) { // gate (w1) rows first, then up (w3)
      list.addProjection(moe + ".experts.gate_up_proj", {e, 2 * f, d});
      list.addProjection(moe + ".experts.down_proj", {e, d, f});
      return;
    }
    for (int64_t i = 0; i < e; ++i) {
      std::string expert = moe + ".experts." + std::to_string(i);
      list.addProjection(expert + ".w1.weight", {f, d});
      list.addProjection(expert + ".w3.weight", {f, d});
      list.addProjection(expert + ".w2.weight", {d, f});
    }
    return;
  }
  if (isGranite(m.family())) {
    std::string moe = layer + ".block_sparse_moe";
    list.addRouter(moe + ".router.layer.weight", {e, d});
    list.addProjection(moe + ".input_linear.weight", {e, 2 * f, d});
    list.addProjection(moe + ".output_linear.weight", {e, d, f});
    if (hasGraniteSharedMlp(m.family()) && m.sharedInner > 0) {
      std::string mlp = layer + ".shared_mlp";
      list.addProjection(mlp + ".input_linear.weight", {2 * m.sharedInner, d});
      list.addProjection(mlp + ".output_linear.weight", {d, m.sharedInner});
    }
    return;
  }
  std::string mlp = layer + ".mlp";
  list.addRouter(mlp + ".gate.weight", {e, d});
  if (hasV3Router(m.family()))
    list.add(mlp + ".gate.e_score_correction_bias", {e}, Init::Bias);
  // Ernie4_5_MoeStatics keeps its bias as [1, E].
  if (isErnie(m.family()))
    list.add(mlp + ".moe_statics.e_score_correction_bias", {1, e}, Init::Bias);
  if (m.fusedExperts) { // transformers 5's layout, gate rows first
    list.addProjection(mlp + ".experts.gate_up_proj", {e, 2 * f, d});
    list.addProjection(mlp + ".experts.down_proj", {e, d, f});
  } else {
    for (int64_t i = 0; i < e; ++i)
      list.addGatedFFN(mlp + ".experts." + std::to_string(i), d, f);
  }
  if (hasGatedSharedExpert(m.family())) {
    list.addGatedFFN(mlp + ".shared_expert", d, m.sharedInner);
    list.addRouter(mlp + ".shared_expert_gate.weight", {1, d});
  }
  if (hasSharedExperts(m.family()) && m.sharedExperts > 0)
    list.addGatedFFN(mlp + ".shared_experts", d, m.sharedInner);
}

/// DBRX's tensors, named as DbrxForCausalLM's; the attention and norm
/// weights are there for an importer to skip.
static std::vector<TensorSpec> buildDbrxTensorList(const Model &m) {
  int64_t d = m.hidden, f = m.inner, e = m.experts;
  TensorList list;
  list.add("transformer.wte.weight", {m.vocab, d});
  for (int64_t l = 0; l < m.layers; ++l) {
    std::string block = "transformer.blocks." + std::to_string(l);
    std::string attn = block + ".norm_attn_norm";
    list.add(attn + ".norm_1.weight", {d}, Init::Norm);
    list.add(attn + ".attn.Wqkv.weight", {3 * d, d});
    list.add(attn + ".attn.out_proj.weight", {d, d});
    list.add(attn + ".norm_2.weight", {d}, Init::Norm);
    std::string ffn = block + ".ffn";
    list.addRouter(ffn + ".router.layer.weight", {e, d});
    list.add(ffn + ".experts.mlp.w1", {e * f, d});
    list.add(ffn + ".experts.mlp.v1", {e * f, d});
    // Each expert's down projection [in, out]: fan-in f.
    list.add(ffn + ".experts.mlp.w2", {e * f, d});
    list.specs.back().fanIn = f;
  }
  list.add("transformer.norm_f.weight", {d}, Init::Norm);
  list.add("lm_head.weight", {m.vocab, d});
  return std::move(list.specs);
}

/// Every tensor in the order of a Hugging Face checkpoint, with the
/// attention and norm weights an importer must skip.
static std::vector<TensorSpec> buildTensorList(const Model &m) {
  if (isDbrx(m.family()))
    return buildDbrxTensorList(m);
  int64_t d = m.hidden;
  TensorList list;
  // The multimodal checkpoints hold their text model under
  // language_model.model (Llama-4) or model.language_model (Qwen3-VL).
  std::string top = m.family() == Family::Llama4 ? "language_model." : "";
  std::string model = m.family() == Family::Llama4 ? "language_model.model"
                      : m.family() == Family::Qwen3VLMoe ||
                              m.family() == Family::Qwen35Moe ||
                              m.family() == Family::Glm4vMoe
                          ? "model.language_model"
                          : "model";
  list.add(model + ".embed_tokens.weight", {m.vocab, d});
  // LFM2 names its norms and its attention output its own way, and its
  // dense MLP's projections as Mixtral's experts.
  bool lfm2 = isLfm2(m.family());
  for (int64_t l = 0; l < m.layers; ++l) {
    std::string layer = model + ".layers." + std::to_string(l);
    list.add(layer +
                 (lfm2 ? ".operator_norm.weight" : ".input_layernorm.weight"),
             {d}, Init::Norm);
    list.addProjection(layer + (lfm2 ? ".self_attn.out_proj.weight"
                                     : ".self_attn.o_proj.weight"),
                       {d, d});
    list.add(layer + (lfm2 ? ".ffn_norm.weight"
                           : ".post_attention_layernorm.weight"),
             {d}, Init::Norm);
    if (isSparseLayer(m, l)) {
      addSparseBlock(m, layer, list);
    } else if (lfm2) {
      std::string ff = layer + ".feed_forward";
      list.addProjection(ff + ".w1.weight", {m.denseInner, d});
      list.addProjection(ff + ".w3.weight", {m.denseInner, d});
      list.addProjection(ff + ".w2.weight", {d, m.denseInner});
    } else if (isJamba(m.family())) { // JambaMLP of intermediate_size
      list.addGatedFFN(layer + ".feed_forward", d, m.inner);
    } else {
      list.addGatedFFN(layer +
                           (isLlama4(m.family()) ? ".feed_forward" : ".mlp"),
                       d, m.denseInner);
    }
  }
  list.add(model + (lfm2 ? ".embedding_norm.weight" : ".norm.weight"), {d},
           Init::Norm);
  list.add(top + "lm_head.weight", {m.vocab, d});
  return std::move(list.specs);
}

//===----------------------------------------------------------------------===//
// Values
//===----------------------------------------------------------------------===//

using mlir::moe::Random;

/// FNV-1a, so that a tensor's values depend on its name, not on its place
/// in the list or in the shards.
static uint64_t hashName(StringRef name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : name)
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

static void storeValue(DType type, float value, char *out) {
  if (type == DType::F32) {
    std::memcpy(out, &value, sizeof(value));
    return;
  }
  uint16_t bits =
      type == DType::F16 ? npy::floatToF16(value) : npy::floatToBF16(value);
  std::memcpy(out, &bits, sizeof(bits));
}

/// `value` rounded to `type`.
static float roundTo(DType type, float value) {
  switch (type) {
  case DType::F16:
    return npy::f16ToFloat(npy::floatToF16(value));
  case DType::BF16:
    return npy::bf16ToFloat(npy::floatToBF16(value));
  default:
    return value;
  }
}

/// The values of `spec`, drawn from a generator seeded by `seed` and the
/// tensor's name.
static std::vector<float> generateValues(const TensorSpec &spec,
                                         uint64_t seed) {
  Random random(seed ^ hashName(spec.name));
  int64_t count = 1;
  for (int64_t s : spec.shape)
    count *= s;
  int64_t fanIn = spec.fanIn ? spec.fanIn
                  : spec.init == Init::LinearInOut
                      ? spec.shape[spec.shape.size() - 2]
                      : spec.shape.back();
  double scale = 1.0 / std::sqrt(static_cast<double>(fanIn));
  std::vector<float> values(count);
  for (float &value : values) {
    double z = random.normal();
    value = static_cast<float>(spec.init == Init::Norm       ? 1.0 + 0.1 * z
                               : spec.init == Init::Bias     ? 0.1 * z
                               : spec.init == Init::WideBias ? 2.0 * z
                                                             : z * scale);
  }
  return values;
}

static std::vector<char> storeValues(llvm::ArrayRef<float> values, DType type) {
  std::vector<char> bytes(values.size() * checkpoint::elementSize(type));
  for (auto [i, value] : llvm::enumerate(values))
    storeValue(type, value, bytes.data() + i * checkpoint::elementSize(type));
  return bytes;
}

namespace {
/// A tensor [..., n, k] quantized to block-scaled FP8: the FP8 bytes and
/// the f32 scale of each block of `blockRows` x `blockCols`.
struct BlockScaled {
  int64_t n, k, blockRows, blockCols, rows, cols;
  std::vector<char> bytes;
  llvm::SmallVector<int64_t> scaleShape;
  std::vector<float> scales;

  /// The scale of element i.
  int64_t blockOf(int64_t i) const {
    int64_t m = i / (n * k), r = i / k % n, c = i % k;
    return (m * rows + r / blockRows) * cols + c / blockCols;
  }
  /// What the publishers' conversion to bf16 computes: the FP8 value
  /// times its f32 scale, in f32.
  float dequantized(int64_t i) const {
    return npy::f8E4M3ToFloat(static_cast<uint8_t>(bytes[i])) *
           scales[blockOf(i)];
  }
};
} // namespace

/// Quantizes `values` of `shape` [..., n, k] by blocks of `block`: each
/// block's scale is its largest magnitude over 448 (FP8 E4M3's largest),
/// rounded to `scaleType`, and each value the FP8 value nearest to value /
/// scale.
static BlockScaled quantizeFP8(llvm::ArrayRef<float> values,
                               llvm::ArrayRef<int64_t> shape,
                               llvm::ArrayRef<int64_t> block, DType scaleType) {
  BlockScaled q;
  q.n = shape.end()[-2];
  q.k = shape.back();
  q.blockRows = block[0];
  q.blockCols = block[1];
  q.rows = (q.n + q.blockRows - 1) / q.blockRows;
  q.cols = (q.k + q.blockCols - 1) / q.blockCols;
  q.scaleShape.assign(shape.begin(), shape.end());
  q.scaleShape.end()[-2] = q.rows;
  q.scaleShape.back() = q.cols;
  q.scales.assign(values.size() / (q.n * q.k) * q.rows * q.cols, 0.0f);
  for (auto [i, value] : llvm::enumerate(values)) {
    float &amax = q.scales[q.blockOf(i)];
    amax = std::max(amax, std::fabs(value));
  }
  // Each scale as it is stored; the values are quantized with that one.
  for (float &scale : q.scales)
    scale = roundTo(scaleType, scale > 0.0f ? scale / 448.0f : 1.0f);
  q.bytes.resize(values.size());
  for (auto [i, value] : llvm::enumerate(values))
    q.bytes[i] =
        static_cast<char>(npy::floatToF8E4M3(value / q.scales[q.blockOf(i)]));
  return q;
}

namespace {
/// A tensor [E, in, out] quantized to MXFP4 as GPT-OSS stores it: [E,
/// out, in], each row's blocks of 32 inputs as 16 bytes of E2M1 codes (low
/// nibble first) with an E8M0 scale.
struct MXFP4 {
  std::vector<char> blocks, scales;
  /// The dequantized values, in the tensor's [E, in, out] layout.
  std::vector<float> values;
};
} // namespace

/// The magnitudes of E2M1's codes 0 to 7 (the sign is bit 3).
static constexpr float kE2M1Values[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};

/// The E2M1 code nearest to `v`, ties to the even code.
static unsigned nearestE2M1(float v) {
  unsigned best = 0;
  float bestMiss = std::fabs(v);
  for (unsigned c = 1; c < 8; ++c) {
    float miss = std::fabs(std::fabs(v) - kE2M1Values[c]);
    if (miss < bestMiss || (miss == bestMiss && c % 2 == 0)) {
      best = c;
      bestMiss = miss;
    }
  }
  return best | (std::signbit(v) ? 8 : 0);
}

/// The value of E2M1 code `code`.
static float e2m1Value(unsigned code) {
  return code & 8 ? -kE2M1Values[code & 7] : kE2M1Values[code & 7];
}

/// The exponent s of the MX scale 2^s of a block whose largest magnitude
/// is `amax`: the least that brings it to at most 6 (E2M1's largest).
static int mxExponent(float amax) {
  int exponent = amax > 0 ? static_cast<int>(std::ceil(
                                std::log2(static_cast<double>(amax) / 6)))
                          : 0;
  return std::clamp(exponent, -127, 127);
}

/// Quantizes `values` of `shape` [E, in, out] (in a multiple of 32): each
/// block's scale is the power of two 2^s that brings its largest magnitude
/// to at most 6 (E2M1's largest), and each value the E2M1 value nearest to
/// value / 2^s, ties to the even code.
static MXFP4 quantizeMXFP4(llvm::ArrayRef<float> values,
                           llvm::ArrayRef<int64_t> shape) {
  int64_t e = shape[0], in = shape[1], out = shape[2], groups = in / 32;
  MXFP4 q;
  q.blocks.assign(e * out * in / 2, 0);
  q.scales.resize(e * out * groups);
  q.values.resize(values.size());
  for (int64_t x = 0; x < e; ++x)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t g = 0; g < groups; ++g) {
        auto at = [&](int64_t i) { return (x * in + g * 32 + i) * out + o; };
        float amax = 0;
        for (int64_t i = 0; i < 32; ++i)
          amax = std::max(amax, std::fabs(values[at(i)]));
        int exponent = mxExponent(amax);
        q.scales[(x * out + o) * groups + g] =
            static_cast<char>(exponent + 127);
        float scale = std::ldexp(1.0f, exponent);
        for (int64_t i = 0; i < 32; ++i) {
          unsigned code = nearestE2M1(values[at(i)] / scale);
          int64_t j = ((x * out + o) * groups + g) * 32 + i;
          q.blocks[j / 2] =
              static_cast<char>(q.blocks[j / 2] | code << (j % 2 * 4));
          q.values[at(i)] = e2m1Value(code) * scale;
        }
      }
  return q;
}

namespace {
/// A tensor [..., n, k] (k even) in E2M1 codes, two a byte, with block
/// scales: NVFP4 as Model Optimizer exports it, or with the inverse global
/// scale, as llm-compressor does; or MXFP4 (E8M0 scales, no global one).
struct PackedFP4 {
  std::vector<char> codes, scales;
  llvm::SmallVector<int64_t> codeShape, scaleShape;
  float global = 1.0f;
  /// What the dequantization computes: each code's value times its E4M3
  /// scale (exact), times the global scale (divided by it when inverse),
  /// rounded once to f32.
  std::vector<float> values;
};
} // namespace

/// Quantizes `values` of `shape` [..., n, k] (k even) to E2M1 codes, two a
/// byte, the lower-indexed element in the low nibble, in blocks of `block`
/// of each row (the last one partial when `block` does not divide k):
/// `scaleOf` gives a block's scale byte and the scale it stands for from the
/// block's largest magnitude, each value's code is the E2M1 value nearest
/// to value / (scale x g), ties to the even code, and `valueOf` gives what
/// a code and its scale dequantize to.
static void quantizeE2M1Rows(
    llvm::ArrayRef<float> values, llvm::ArrayRef<int64_t> shape, int64_t block,
    float g, llvm::function_ref<std::pair<uint8_t, float>(float)> scaleOf,
    llvm::function_ref<float(unsigned, float)> valueOf, PackedFP4 &q) {
  int64_t k = shape.back(), rows = values.size() / k;
  int64_t blocks = (k + block - 1) / block;
  q.codeShape.assign(shape.begin(), shape.end());
  q.codeShape.back() = k / 2;
  q.scaleShape.assign(shape.begin(), shape.end());
  q.scaleShape.back() = blocks;
  q.codes.assign(values.size() / 2, 0);
  q.scales.resize(rows * blocks);
  q.values.resize(values.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t c0 = b * block, c1 = std::min(k, c0 + block);
      float blockMax = 0;
      for (int64_t c = c0; c < c1; ++c)
        blockMax = std::max(blockMax, std::fabs(values[r * k + c]));
      auto [byte, scale] = scaleOf(blockMax);
      q.scales[r * blocks + b] = static_cast<char>(byte);
      for (int64_t c = c0; c < c1; ++c) {
        int64_t j = r * k + c;
        unsigned code = scale > 0 ? nearestE2M1(values[j] / (scale * g)) : 0;
        q.codes[j / 2] =
            static_cast<char>(q.codes[j / 2] | code << (j % 2 * 4));
        q.values[j] = valueOf(code, scale);
      }
    }
}

/// Quantizes `values` of `shape` [..., n, k] (k even) to MXFP4 as
/// llm-compressor stores it: blocks of 32 of a row, each with the scale
/// 2^s of mxExponent as an E8M0 byte. `global` is unused.
static PackedFP4 quantizeRowsMXFP4(llvm::ArrayRef<float> values,
                                   llvm::ArrayRef<int64_t> shape) {
  PackedFP4 q;
  quantizeE2M1Rows(
      values, shape, 32, 1.0f,
      [](float blockMax) {
        int exponent = mxExponent(blockMax);
        return std::pair(static_cast<uint8_t>(exponent + 127),
                         std::ldexp(1.0f, exponent));
      },
      [](unsigned code, float scale) { return e2m1Value(code) * scale; }, q);
  return q;
}

/// The group of each of `k` inputs in groups of `group`: j / group, or with
/// `shuffled` a permutation of it drawn from the seed and `name` (GPTQ's
/// g_idx with desc_act, compressed-tensors' weight_g_idx with actorder
/// "group").
static std::vector<int32_t> inputGroups(int64_t k, int64_t group, bool shuffled,
                                        StringRef name) {
  std::vector<int32_t> groupOf(k);
  for (int64_t j = 0; j < k; ++j)
    groupOf[j] = static_cast<int32_t>(j / group);
  if (shuffled) {
    Random random(seed ^ hashName(name) ^ 0x67707471ull);
    for (int64_t j = k - 1; j > 0; --j)
      std::swap(groupOf[j], groupOf[random.next() % (j + 1)]);
  }
  return groupOf;
}

namespace {
/// Integers packed as compressed-tensors' pack-quantized format.
struct PackedInts {
  /// `bytes`: the signed codes of 8 bits, one a byte (int-quantized).
  std::vector<char> words, bytes, scales, zeros, groupIndices;
  llvm::SmallVector<int64_t> wordShape, scaleShape, zeroShape;
  /// What the dequantization computes: each value times its scale, rounded
  /// once to f32.
  std::vector<float> values;
};
} // namespace

/// Quantizes `values` of `shape` [..., n, k] to symmetric integers of
/// `bits` bits as llm-compressor does, in groups of `group` of each row (0:
/// the whole row; the last group partial when `group` does not divide k):
/// a group's scale is its largest magnitude over (2^bits - 1) / 2, rounded
/// to `scaleType`, and each value's code is value / scale rounded to
/// nearest (ties to even) and clamped to [-2^(bits - 1), 2^(bits - 1) - 1],
/// stored plus 2^(bits - 1), 32 / bits codes an I32 word from its lowest
/// bits. `asymmetric`: a group's scale is its range [min(v, 0), max(v, 0)]
/// over 2^bits - 1, rounded to `scaleType`, its zero point z the code of 0
/// (-2^(bits - 1) - round(min / scale), clamped), each code round(v /
/// scale) + z clamped, and the value (code - z) * scale; the zero points
/// are stored plus 2^(bits - 1) too, packed along the rows.
static PackedInts quantizeInts(llvm::ArrayRef<float> values,
                               llvm::ArrayRef<int64_t> shape, unsigned bits,
                               int64_t group, DType scaleType,
                               llvm::ArrayRef<int32_t> groupOf,
                               bool asymmetric) {
  int64_t k = shape.back(), rows = values.size() / k;
  int64_t g = group ? group : k, perWord = 32 / bits;
  int64_t groups = (k + g - 1) / g, words = (k + perWord - 1) / perWord;
  int64_t n = shape.end()[-2], nWords = (n + perWord - 1) / perWord;
  // The inputs of each group.
  std::vector<std::vector<int64_t>> members(groups);
  for (int64_t c = 0; c < k; ++c)
    members[groupOf[c]].push_back(c);
  int offset = 1 << (bits - 1);
  PackedInts q;
  q.wordShape.assign(shape.begin(), shape.end());
  q.wordShape.back() = words;
  q.scaleShape.assign(shape.begin(), shape.end());
  q.scaleShape.back() = groups;
  q.zeroShape.assign(q.scaleShape.begin(), q.scaleShape.end());
  q.zeroShape.end()[-2] = nWords;
  std::vector<uint32_t> packed(rows * words, 0);
  std::vector<uint32_t> zeros(rows / n * nWords * groups, 0);
  if (bits == 8)
    q.bytes.resize(values.size());
  std::vector<float> scales(rows * groups);
  q.values.resize(values.size());
  float lowest = float(-offset), highest = float(offset - 1);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < groups; ++b) {
      float lo = 0, hi = 0;
      for (int64_t c : members[b]) {
        lo = std::min(lo, values[r * k + c]);
        hi = std::max(hi, values[r * k + c]);
      }
      // The scale as the checkpoint stores it, which dequantizes.
      float range = asymmetric ? (hi - lo) / (2.0f * offset - 1.0f)
                               : std::max(-lo, hi) / (offset - 0.5f);
      float scale = roundTo(scaleType, range > 0 ? range : 1.0f);
      scales[r * groups + b] = scale;
      float zero = 0;
      if (asymmetric) {
        zero = std::clamp(lowest - std::nearbyint(lo / scale), lowest, highest);
        int64_t word = (r / n * nWords + r % n / perWord) * groups + b;
        zeros[word] |= static_cast<uint32_t>(static_cast<int>(zero) + offset)
                       << (r % n % perWord * bits);
      }
      for (int64_t c : members[b]) {
        float code = std::nearbyint(values[r * k + c] / scale) + zero;
        code = std::clamp(code, lowest, highest);
        uint32_t stored =
            static_cast<uint32_t>(static_cast<int>(code) + offset);
        packed[r * words + c / perWord] |= stored << (c % perWord * bits);
        if (bits == 8)
          q.bytes[r * k + c] = static_cast<char>(static_cast<int>(code));
        q.values[r * k + c] = (code - zero) * scale;
      }
    }
  }
  auto bytes = [](const std::vector<uint32_t> &words) {
    std::vector<char> result(words.size() * 4);
    std::memcpy(result.data(), words.data(), result.size());
    return result;
  };
  q.words = bytes(packed);
  q.zeros = bytes(zeros);
  q.scales = storeValues(scales, scaleType);
  q.groupIndices.resize(groupOf.size() * 4);
  std::memcpy(q.groupIndices.data(), groupOf.data(), q.groupIndices.size());
  return q;
}

namespace {
/// How a Linear is quantized and laid out as GPTQ or AWQ stores it.
struct QWeightLayout {
  unsigned bits = 4;
  int64_t group = 0;
  bool descAct = false, asym = false;
  /// The zero points are stored minus one (GPTQ's original format).
  bool zerosMinusOne = false;
  /// AWQ's: words [k, n / 8] of 8 outputs, in its order of fields.
  bool awq = false;
};

/// A Linear in GPTQ's or AWQ's layout.
struct QWeight {
  std::vector<char> qweight, qzeros, scales, gIdx;
  llvm::SmallVector<int64_t> qweightShape, qzerosShape, scalesShape;
  /// What the dequantization computes: (code - zero) times the scale,
  /// rounded once to f32, [n, k].
  std::vector<float> values;
};
} // namespace

/// Quantizes `values` of `shape` [n, k] (multiples of w = 32 / bits) as
/// GPTQ or AWQ lays them out (without their searches, which change the
/// codes, not the format): the inputs in groups of `group` (0: one group),
/// in a random order with `descAct`; a group's F16 scale per output from
/// its largest magnitude (symmetric, zero 2^(bits - 1)) or from its range
/// (`asym`, zero from its minimum, at least 1 when stored minus one); codes
/// round to nearest, clamped. GPTQ's words pack w inputs, AWQ's w outputs
/// with field p holding output kAWQOrder[p] of the run (its zero points
/// too).
static QWeight quantizeQWeight(llvm::ArrayRef<float> values,
                               llvm::ArrayRef<int64_t> shape, StringRef name,
                               const QWeightLayout &layout) {
  static constexpr int kAWQOrder[] = {0, 2, 4, 6, 1, 3, 5, 7};
  unsigned bits = layout.bits;
  int64_t n = shape[0], k = shape[1], w = 32 / bits;
  int64_t group = layout.group ? layout.group : k;
  int64_t groups = (k + group - 1) / group;
  int maxq = (1 << bits) - 1;
  std::vector<int32_t> groupOf = inputGroups(k, group, layout.descAct, name);
  // The bit offset of element e of a word's run.
  auto shift = [&](int64_t e) {
    int64_t field = e % w;
    if (layout.awq)
      field = std::find(std::begin(kAWQOrder), std::end(kAWQOrder), field) -
              std::begin(kAWQOrder);
    return static_cast<unsigned>(field * bits);
  };
  QWeight q;
  if (layout.awq)
    q.qweightShape = {k, n / w};
  else
    q.qweightShape = {k / w, n};
  q.qzerosShape = {groups, n / w};
  q.scalesShape = {groups, n};
  std::vector<uint32_t> qweight(k * n / w, 0), qzeros(groups * n / w, 0);
  std::vector<float> scales(groups * n);
  std::vector<int> zeros(groups * n);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<float> lo(groups, 0.0f), hi(groups, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      float v = values[i * k + j];
      lo[groupOf[j]] = std::min(lo[groupOf[j]], v);
      hi[groupOf[j]] = std::max(hi[groupOf[j]], v);
    }
    for (int64_t g = 0; g < groups; ++g) {
      float scale, zero;
      if (layout.asym) {
        scale = (hi[g] - lo[g]) / maxq;
        scale = roundTo(DType::F16, scale > 0 ? scale : 1.0f);
        zero = std::clamp(std::nearbyint(-lo[g] / scale),
                          layout.zerosMinusOne ? 1.0f : 0.0f, float(maxq));
      } else {
        float amax = std::max(-lo[g], hi[g]);
        scale = roundTo(DType::F16, amax > 0 ? 2.0f * amax / maxq : 1.0f);
        zero = float((maxq + 1) / 2);
      }
      scales[g * n + i] = scale;
      zeros[g * n + i] = static_cast<int>(zero);
      uint32_t stored = static_cast<uint32_t>(zeros[g * n + i] -
                                              (layout.zerosMinusOne ? 1 : 0));
      qzeros[g * (n / w) + i / w] |= stored << shift(i);
    }
  }
  q.values.resize(n * k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      int64_t g = groupOf[j];
      float scale = scales[g * n + i];
      int zero = zeros[g * n + i];
      float code = std::clamp(std::nearbyint(values[i * k + j] / scale) + zero,
                              0.0f, float(maxq));
      if (layout.awq)
        qweight[j * (n / w) + i / w] |= static_cast<uint32_t>(code) << shift(i);
      else
        qweight[(j / w) * n + i] |= static_cast<uint32_t>(code) << shift(j);
      q.values[i * k + j] = (code - zero) * scale;
    }
  auto bytes = [](const auto &words) {
    std::vector<char> result(words.size() * 4);
    std::memcpy(result.data(), words.data(), result.size());
    return result;
  };
  q.qweight = bytes(qweight);
  q.qzeros = bytes(qzeros);
  q.gIdx = bytes(groupOf);
  q.scales = storeValues(scales, DType::F16);
  return q;
}

/// Quantizes `values` of `shape` [..., n, k] (k even) to NVFP4: the global
/// scale g brings the largest magnitude to 6 x 448 (E2M1's and E4M3's
/// largest), and each block of 16 of a row has the E4M3 scale nearest to
/// its largest magnitude over 6 x g. With `inverse`, the global scale
/// stored is 1 / g (rounded to f32), which divides.
static PackedFP4 quantizeNVFP4(llvm::ArrayRef<float> values,
                               llvm::ArrayRef<int64_t> shape, bool inverse) {
  PackedFP4 q;
  float amax = 0;
  for (float v : values)
    amax = std::max(amax, std::fabs(v));
  if (amax > 0)
    q.global = inverse ? (6.0f * 448.0f) / amax : amax / (6.0f * 448.0f);
  // The global scale as it multiplies.
  float g = inverse ? 1.0f / q.global : q.global;
  quantizeE2M1Rows(
      values, shape, 16, g,
      [&](float blockMax) {
        uint8_t byte = npy::floatToF8E4M3(blockMax / 6.0f / g);
        return std::pair(byte, npy::f8E4M3ToFloat(byte));
      },
      [&](unsigned code, float scale) {
        float exact = e2m1Value(code) * scale;
        return inverse ? exact / q.global : exact * q.global;
      },
      q);
  return q;
}

namespace {
/// A weight quantized as bitsandbytes' Params4bit stores it.
struct Bnb4Weight {
  /// The codes, two a byte (the first in the high nibble), and the absmax
  /// of each block: F32, or with double quantization the U8 codes of the
  /// nested table, with the F32 nested_absmax of each nested block.
  std::vector<char> codes, absmax, nestedAbsmax;
  int64_t blocks = 0, nestedBlocks = 0;
  /// nested_offset: the mean of the absmax values.
  float offset = 0;
  /// What the dequantization computes, in f32: each code's value times the
  /// scale of its block.
  std::vector<float> values;
};
} // namespace

/// The code table of --bnb4: bitsandbytes' NF4 (QLoRA's), or its FP4 (sign
/// in bit 3) divided by its largest magnitude, 12.
static std::array<float, 16> bnb4Table() {
  static constexpr double kNF4[16] = {-1.0,
                                      -0.6961928009986877,
                                      -0.5250730514526367,
                                      -0.39491748809814453,
                                      -0.28444138169288635,
                                      -0.18477343022823334,
                                      -0.09105003625154495,
                                      0.0,
                                      0.07958029955625534,
                                      0.16093020141124725,
                                      0.24611230194568634,
                                      0.33791524171829224,
                                      0.44070982933044434,
                                      0.5626170039176941,
                                      0.7229568362236023,
                                      1.0};
  static constexpr float kFP4[16] = {
      0.0f,  0.0625f,  8.0f,  12.0f,  4.0f,  6.0f,  2.0f,  3.0f,
      -0.0f, -0.0625f, -8.0f, -12.0f, -4.0f, -6.0f, -2.0f, -3.0f};
  std::array<float, 16> table;
  for (int i = 0; i < 16; ++i)
    table[i] = bnb4 == "nf4" ? static_cast<float>(kNF4[i]) : kFP4[i] / 12.0f;
  return table;
}

/// The nested table of --bnb4-double-quant: 256 even steps from -1 to 1
/// (bitsandbytes' own is its dynamic map; a reader takes the table stored).
static std::array<float, 256> bnb4NestedTable() {
  std::array<float, 256> table;
  for (int i = 0; i < 256; ++i)
    table[i] = static_cast<float>(-1.0 + 2.0 * i / 255.0);
  return table;
}

/// The index of the entry of `table` nearest to `x`, the first of equals.
static unsigned nearestEntry(llvm::ArrayRef<float> table, float x) {
  unsigned best = 0;
  for (unsigned i = 1; i < table.size(); ++i)
    if (std::fabs(table[i] - x) < std::fabs(table[best] - x))
      best = i;
  return best;
}

/// Quantizes `values` (a weight's, in row-major order) as bitsandbytes'
/// 4-bit quantization lays them out, without its own rounding of the
/// codes: blocks of --bnb4-block consecutive values (the last one partial),
/// each scaled by its largest magnitude, absmax, and each value the code
/// of the table entry nearest to value / absmax (that of 0 in a block of
/// zeros). With --bnb4-double-quant, the absmax values minus their mean
/// (the offset) are quantized in turn to the nested table, in nested blocks
/// of --bnb4-nested-block scaled by their largest magnitudes; the scale
/// that dequantizes is then the nested entry times its nested absmax, plus
/// the offset, each rounded to f32.
static Bnb4Weight quantizeBnb4(llvm::ArrayRef<float> values) {
  std::array<float, 16> table = bnb4Table();
  int64_t count = values.size(), block = bnb4Block;
  Bnb4Weight q;
  q.blocks = (count + block - 1) / block;
  std::vector<float> absmax(q.blocks, 0.0f);
  for (int64_t i = 0; i < count; ++i)
    absmax[i / block] = std::max(absmax[i / block], std::fabs(values[i]));
  std::vector<unsigned> codes(count);
  q.codes.assign((count + 1) / 2, 0);
  for (int64_t i = 0; i < count; ++i) {
    float amax = absmax[i / block];
    codes[i] = nearestEntry(table, amax > 0 ? values[i] / amax : 0.0f);
    q.codes[i / 2] =
        static_cast<char>(q.codes[i / 2] | codes[i] << (i % 2 ? 0 : 4));
  }
  // The scales the dequantization reads.
  std::vector<float> scales = absmax;
  if (!bnb4DoubleQuant) {
    q.absmax = storeValues(absmax, DType::F32);
  } else {
    std::array<float, 256> nested = bnb4NestedTable();
    int64_t nestedBlock = bnb4NestedBlock;
    double sum = 0;
    for (float amax : absmax)
      sum += amax;
    q.offset = static_cast<float>(sum / static_cast<double>(q.blocks));
    q.nestedBlocks = (q.blocks + nestedBlock - 1) / nestedBlock;
    std::vector<float> centered(q.blocks), nestedAbsmax(q.nestedBlocks, 0.0f);
    for (int64_t b = 0; b < q.blocks; ++b) {
      centered[b] = absmax[b] - q.offset;
      float &top = nestedAbsmax[b / nestedBlock];
      top = std::max(top, std::fabs(centered[b]));
    }
    q.absmax.resize(q.blocks);
    for (int64_t b = 0; b < q.blocks; ++b) {
      float top = nestedAbsmax[b / nestedBlock];
      unsigned code = nearestEntry(nested, top > 0 ? centered[b] / top : 0.0f);
      q.absmax[b] = static_cast<char>(code);
      // The sum in double, rounded once, is the f32 sum; it also keeps the
      // product from being fused into it.
      float product = nested[code] * top;
      scales[b] = static_cast<float>(static_cast<double>(product) + q.offset);
    }
    q.nestedAbsmax = storeValues(nestedAbsmax, DType::F32);
  }
  q.values.resize(count);
  for (int64_t i = 0; i < count; ++i)
    q.values[i] = table[codes[i]] * scales[i / block];
  return q;
}

/// The bytes of `<name>.quant_state.bitsandbytes__<type>`: the JSON object
/// of QuantState.as_dict's other items for a weight of `shape` and `dtype`
/// (readers take the keys in any order; the offset is printed to read back
/// exactly).
static std::string bnb4State(llvm::ArrayRef<int64_t> shape, DType dtype,
                             const Bnb4Weight &q) {
  llvm::json::Object state{{"quant_type", bnb4.getValue()},
                           {"blocksize", bnb4Block.getValue()},
                           {"dtype", torchDType(dtype).str()},
                           {"shape", llvm::json::Array(shape)}};
  if (bnb4DoubleQuant) {
    state["nested_blocksize"] = bnb4NestedBlock.getValue();
    state["nested_dtype"] = "float32";
    state["nested_offset"] = static_cast<double>(q.offset);
  }
  std::string text;
  llvm::raw_string_ostream(text) << llvm::json::Value(std::move(state));
  return text;
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

static llvm::Error writeJson(StringRef path, llvm::json::Value value) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_Text);
  if (ec)
    return llvm::createStringError(path + ": cannot write: " + ec.message());
  os << llvm::formatv("{0:2}", value) << "\n";
  os.close();
  if (os.has_error())
    return llvm::createStringError(path +
                                   ": write failed: " + os.error().message());
  return llvm::Error::success();
}

static std::string joinPath(StringRef dir, StringRef file) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, file);
  return path.str().str();
}

/// Writes the tensors to one file or to `numShards` shards plus an index.
/// Tensor i goes to shard floor(i * N / count): consecutive tensors stay
/// together, and a layer may straddle two shards as in real checkpoints.
static llvm::Error writeWeights(const Model &m,
                                llvm::ArrayRef<TensorSpec> specs,
                                int64_t numShards) {
  std::deque<std::vector<char>> values;
  std::vector<std::vector<checkpoint::TensorData>> byShard(numShards);
  llvm::json::Object weightMap;
  uint64_t totalSize = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const TensorSpec &spec = specs[i];
    std::vector<checkpoint::TensorData> &shard =
        byShard[i * numShards / specs.size()];
    auto add = [&](const std::string &name, DType type,
                   llvm::ArrayRef<int64_t> shape, std::vector<char> bytes) {
      values.push_back(std::move(bytes));
      shard.push_back(
          {name, type, llvm::SmallVector<int64_t>(shape), values.back()});
      totalSize += values.back().size();
    };
    std::vector<float> generated = generateValues(spec, seed);
    if (mxfp4 && spec.mxfp4) {
      MXFP4 q = quantizeMXFP4(generated, spec.shape);
      if (mxfp4Dequantized) {
        add(spec.name, m.dtype, spec.shape, storeValues(q.values, m.dtype));
        continue;
      }
      int64_t e = spec.shape[0], in = spec.shape[1], out = spec.shape[2];
      add(spec.name + "_blocks", DType::U8, {e, out, in / 32, 16},
          std::move(q.blocks));
      add(spec.name + "_scales", DType::U8, {e, out, in / 32},
          std::move(q.scales));
      continue;
    }
    if (mxfp4Compressed && spec.quantizable) {
      PackedFP4 q = quantizeRowsMXFP4(generated, spec.shape);
      if (mxfp4Dequantized) {
        add(spec.name, m.dtype, spec.shape, storeValues(q.values, m.dtype));
        continue;
      }
      add(spec.name + "_packed", DType::U8, q.codeShape, std::move(q.codes));
      add(spec.name + "_scale", DType::U8, q.scaleShape, std::move(q.scales));
      continue;
    }
    if (intCompressed && spec.quantizable) {
      int64_t k = spec.shape.back();
      PackedInts q =
          quantizeInts(generated, spec.shape, intCompressed, intGroup, m.dtype,
                       inputGroups(k, intGroup ? intGroup.getValue() : k,
                                   intActorder, spec.name),
                       intAsymmetric);
      if (intDequantized) {
        add(spec.name, m.dtype, spec.shape, storeValues(q.values, m.dtype));
        continue;
      }
      if (intFormat == "int-quantized") {
        add(spec.name, DType::I8, spec.shape, std::move(q.bytes));
        add(spec.name + "_scale", m.dtype, q.scaleShape, std::move(q.scales));
        if (intActorder)
          add(spec.name + "_g_idx", DType::I32, {k}, std::move(q.groupIndices));
        continue;
      }
      // The weight's shape, [n, k], which the words do not tell.
      int32_t dims[] = {static_cast<int32_t>(spec.shape.end()[-2]),
                        static_cast<int32_t>(spec.shape.back())};
      add(spec.name + "_packed", DType::I32, q.wordShape, std::move(q.words));
      add(spec.name + "_scale", m.dtype, q.scaleShape, std::move(q.scales));
      add(spec.name + "_shape", DType::I32, {2},
          std::vector<char>(reinterpret_cast<const char *>(dims),
                            reinterpret_cast<const char *>(dims + 2)));
      if (intAsymmetric)
        add(spec.name + "_zero_point", DType::I32, q.zeroShape,
            std::move(q.zeros));
      if (intActorder)
        add(spec.name + "_g_idx", DType::I32, {k}, std::move(q.groupIndices));
      continue;
    }
    if ((gptq || awq) && spec.quantizable) {
      QWeightLayout layout;
      if (awq) {
        layout.group = awqGroup;
        layout.asym = true;
        layout.awq = true;
      } else {
        layout.bits = gptq;
        layout.group = gptqGroup;
        layout.descAct = gptqDescAct;
        layout.asym = gptqAsym;
        layout.zerosMinusOne = !gptqV2;
      }
      QWeight q = quantizeQWeight(generated, spec.shape, spec.name, layout);
      if (gptqDequantized || awqDequantized) {
        add(spec.name, m.dtype, spec.shape, storeValues(q.values, m.dtype));
        continue;
      }
      std::string prefix =
          StringRef(spec.name).drop_back(strlen(".weight")).str();
      add(prefix + ".qweight", DType::I32, q.qweightShape,
          std::move(q.qweight));
      add(prefix + ".qzeros", DType::I32, q.qzerosShape, std::move(q.qzeros));
      add(prefix + ".scales", DType::F16, q.scalesShape, std::move(q.scales));
      if (gptq)
        add(prefix + ".g_idx", DType::I32, {spec.shape.back()},
            std::move(q.gIdx));
      continue;
    }
    if (!bnb4.empty() && (spec.quantizable || (bnb4Router && spec.router))) {
      Bnb4Weight q = quantizeBnb4(generated);
      if (bnb4Dequantized) {
        add(spec.name, m.dtype, spec.shape, storeValues(q.values, m.dtype));
        continue;
      }
      int64_t count = generated.size();
      add(spec.name, DType::U8, {(count + 1) / 2, 1}, std::move(q.codes));
      add(spec.name + ".absmax", bnb4DoubleQuant ? DType::U8 : DType::F32,
          {q.blocks}, std::move(q.absmax));
      add(spec.name + ".quant_map", DType::F32, {16},
          storeValues(bnb4Table(), DType::F32));
      if (bnb4DoubleQuant) {
        add(spec.name + ".nested_absmax", DType::F32, {q.nestedBlocks},
            std::move(q.nestedAbsmax));
        add(spec.name + ".nested_quant_map", DType::F32, {256},
            storeValues(bnb4NestedTable(), DType::F32));
      }
      std::string state = bnb4State(spec.shape, m.dtype, q);
      add(spec.name + ".quant_state.bitsandbytes__" + bnb4, DType::U8,
          {static_cast<int64_t>(state.size())},
          std::vector<char>(state.begin(), state.end()));
      continue;
    }
    if (nvfp4 && spec.quantizable) {
      if (spec.shape.back() % 2)
        return llvm::createStringError(
            "--nvfp4: tensor " + spec.name + " has rows of " +
            std::to_string(spec.shape.back()) +
            " values, an odd number (two codes a byte)");
      PackedFP4 q = quantizeNVFP4(generated, spec.shape, nvfp4Compressed);
      if (nvfp4Dequantized) {
        add(spec.name, m.dtype, spec.shape, storeValues(q.values, m.dtype));
        continue;
      }
      // Model Optimizer's names, or llm-compressor's (whose scalars are
      // [1]); the activations' scales are not read.
      StringRef prefix = StringRef(spec.name).drop_back(strlen("weight"));
      llvm::SmallVector<int64_t> scalar;
      if (nvfp4Compressed)
        scalar.push_back(1);
      add(spec.name + (nvfp4Compressed ? "_packed" : ""), DType::U8,
          q.codeShape, std::move(q.codes));
      add(spec.name + "_scale", DType::F8E4M3, q.scaleShape,
          std::move(q.scales));
      add(spec.name + (nvfp4Compressed ? "_global_scale" : "_scale_2"),
          DType::F32, scalar, storeValues({q.global}, DType::F32));
      add((prefix + (nvfp4Compressed ? "input_global_scale" : "input_scale"))
              .str(),
          DType::F32, scalar, storeValues({0.0625f}, DType::F32));
      continue;
    }
    if (!m.fp8() || !spec.quantizable) {
      add(spec.name, spec.init == Init::Bias ? DType::F32 : m.dtype, spec.shape,
          storeValues(generated,
                      spec.init == Init::Bias ? DType::F32 : m.dtype));
      continue;
    }
    // A block size of 0 spans the whole dimension. The blocks are given
    // for [out, in]; a tensor stored [in, out] is quantized as stored, in
    // blocks swapped.
    bool inOut = spec.init == Init::LinearInOut;
    int64_t rows = spec.shape.end()[-2], cols = spec.shape.back();
    std::array<int64_t, 2> given = m.fp8Block;
    if (inOut)
      std::swap(given[0], given[1]);
    int64_t block[] = {given[0] ? given[0] : rows, given[1] ? given[1] : cols};
    // llm-compressor stores the scales in the model's dtype, the others in
    // f32.
    DType scaleType =
        m.fp8Format == Model::FP8::Compressed ? m.dtype : DType::F32;
    BlockScaled fp8 = quantizeFP8(generated, spec.shape, block, scaleType);
    if (fp8Dequantized) {
      for (auto [j, value] : llvm::enumerate(generated))
        value = fp8.dequantized(j);
      add(spec.name, m.dtype, spec.shape, storeValues(generated, m.dtype));
      continue;
    }
    add(spec.name, DType::F8E4M3, spec.shape, std::move(fp8.bytes));
    std::vector<char> scales = storeValues(fp8.scales, scaleType);
    switch (m.fp8Format) {
    case Model::FP8::Blocks:
      add(spec.name + "_scale_inv", scaleType, fp8.scaleShape,
          std::move(scales));
      break;
    case Model::FP8::PerTensor: {
      // AutoFP8 writes scalars: the weight's scale, and that of the inputs
      // for FP8 activations (which moe-import does not read).
      add(spec.name + "_scale", scaleType, {}, std::move(scales));
      StringRef prefix = StringRef(spec.name).drop_back(strlen("weight"));
      add((prefix + "input_scale").str(), DType::F32, {},
          storeValues({0.0625f}, DType::F32));
      break;
    }
    case Model::FP8::Compressed:
      // One scale a tensor is a vector of one.
      add(spec.name + "_scale", scaleType,
          m.fp8Strategy == "tensor" ? llvm::ArrayRef<int64_t>{1}
                                    : llvm::ArrayRef<int64_t>(fp8.scaleShape),
          std::move(scales));
      break;
    case Model::FP8::Fbgemm: {
      // FBGEMM's quantizer stores the fused gate_up_proj's scales [E, 1,
      // 2f] and the fused down_proj's [E, d, 1].
      llvm::SmallVector<int64_t> shape(fp8.scaleShape);
      if (inOut && StringRef(spec.name).ends_with("down_proj"))
        std::swap(shape.end()[-2], shape.back());
      add(spec.name + "_scale", scaleType, shape, std::move(scales));
      break;
    }
    case Model::FP8::None:
      llvm_unreachable("not FP8");
    }
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};

  // Remove the other layout's entry point: a stale index would win over a
  // fresh model.safetensors (and the reverse would confuse a reader).
  std::string index = joinPath(outDir, "model.safetensors.index.json");
  std::string single = joinPath(outDir, "model.safetensors");
  llvm::sys::fs::remove(numShards == 1 ? index : single);
  if (numShards == 1)
    return checkpoint::writeSafeTensors(single, byShard[0], metadata);

  for (int64_t s = 0; s < numShards; ++s) {
    std::string file;
    llvm::raw_string_ostream(file) << llvm::format(
        "model-%05lld-of-%05lld.safetensors", static_cast<long long>(s + 1),
        static_cast<long long>(numShards));
    for (const checkpoint::TensorData &t : byShard[s])
      weightMap[t.name] = file;
    if (llvm::Error err = checkpoint::writeSafeTensors(joinPath(outDir, file),
                                                       byShard[s], metadata))
      return err;
  }
  return writeJson(
      index, llvm::json::Object{
                 {"metadata", llvm::json::Object{{"total_size", totalSize}}},
                 {"weight_map", std::move(weightMap)}});
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "synthetic Hugging Face MoE checkpoints\n");

  llvm::Expected<Model> model = parseModel();
  if (!model)
    return fail(model.takeError());
  std::vector<TensorSpec> specs = buildTensorList(*model);
  if (shards > static_cast<int64_t>(specs.size()))
    return fail("--shards " + llvm::Twine(shards) + " exceeds the " +
                llvm::Twine(specs.size()) + " tensors");
  if (std::error_code ec = llvm::sys::fs::create_directories(outDir))
    return fail(outDir + ": cannot create: " + ec.message());
  if (llvm::Error err =
          writeJson(joinPath(outDir, "config.json"), buildConfig(*model)))
    return fail(std::move(err));
  // Model Optimizer describes its export in a file of its own as well.
  if (nvfp4 && !nvfp4Compressed && !nvfp4Dequantized)
    if (llvm::Error err = writeJson(joinPath(outDir, "hf_quant_config.json"),
                                    modelOptQuantConfig()))
      return fail(std::move(err));
  if (llvm::Error err = writeWeights(*model, specs, shards))
    return fail(std::move(err));
  return 0;
}
