//===- Importer.h - Hugging Face MoE checkpoints to moe IR ------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The front end for Hugging Face checkpoints (spec sections 9 and 10): reads
// a model directory's config.json and safetensors weights and builds a
// module with one public function `moe_layer_L` per sparse MoE layer L,
// taking the hidden states [T, d] and returning the block output [T, d].
// The weights are `moe.weight` ops naming checkpoint tensors; the module's
// `moe.checkpoint` attribute holds the directory's absolute path.
//
// Readings of config.json (each family follows its Hugging Face modeling
// code):
// - Keys that fix tensor shapes or expert groups are required: a missing or
//   mistyped one is an error naming the key and the file. Keys that only
//   switch behaviour take the default of the Hugging Face config class when
//   absent or null (norm_topk_prob, hidden_act, decoder_sparse_step,
//   mlp_only_layers, first_k_dense_replace, moe_layer_freq,
//   routed_scaling_factor, topk_method, scoring_func).
// - qwen3_moe's norm_topk_prob defaults to false, as in Qwen3MoeConfig
//   (released Qwen3 configs all set it to true).
// - When norm_topk_prob contradicts the family preset of spec section 9
//   (olmoe with true, qwen3_moe with false), the layers compute what the
//   Hugging Face code computes and are emitted without the `family`
//   attribute, with a warning: the preset names published models, the
//   routing attribute says what this model does.
// - DeepSeek-V2 renormalizes only when norm_topk_prob is true and k > 1,
//   and then does not scale (its published code); DeepSeek-V3 renormalizes
//   when norm_topk_prob is true and always scales by routed_scaling_factor.
// - qwen3_next (Qwen3-Next) is Qwen2-MoE's sparse block (its Hugging Face
//   Qwen3NextSparseMoeBlock derives from Qwen2MoeSparseMoeBlock), so its
//   layers carry `#moe.family<qwen2_moe>`; its norm_topk_prob defaults to
//   true, as in Qwen3NextConfig.
// - glm4_moe (GLM-4.5) is DeepSeek-V3's sparse block: its Hugging Face
//   router is DeepseekV3TopkRouter, so its layers carry
//   `#moe.family<deepseek_v3>`. Glm4MoeConfig's defaults apply
//   (first_k_dense_replace 1, routed_scaling_factor 1, norm_topk_prob
//   true); it has no moe_layer_freq, and scoring_func and topk_method are
//   not read (the modeling code never does).
// - glm4v_moe (GLM-4.5V, GLM-4.6V; its text model's keys in text_config,
//   its tensors under model.language_model.) is GLM-4.5's sparse block
//   under GLM-4.5's config defaults (Glm4vMoeTextConfig derives from
//   Glm4MoeConfig), so its layers carry `#moe.family<deepseek_v3>`.
// - dots1 (dots.llm1) is DeepSeek-V3's sparse block too (Dots1MoE and
//   Dots1TopkRouter derive from DeepSeek-V3's), under Dots1Config's
//   defaults: first_k_dense_replace 0, routed_scaling_factor 1,
//   norm_topk_prob false, n_group and topk_group 1; no moe_layer_freq,
//   and scoring_func and topk_method are not read.
// - minimax (MiniMax-Text-01, MiniMax-M1) is Mixtral's sparse block and
//   router in every layer (MiniMaxSparseMoeBlock derives from
//   MixtralSparseMoeBlock; its lightning attention is not read), so its
//   layers carry `#moe.family<mixtral>`.
// - minimax_m2 (MiniMax-M2) is Mixtral's sparse block (tensor names and
//   config keys: MiniMaxM2SparseMoeBlock derives from MixtralSparseMoeBlock)
//   routed by MiniMaxM2TopKRouter: sigmoid scores, the top k of the scores
//   plus `block_sparse_moe.e_score_correction_bias`, the unbiased
//   scores of the chosen experts renormalized, no scaling, every layer
//   sparse. No preset names this routing, so its layers carry the routing
//   attributes and no `family`. MiniMaxM2Config has no routing keys:
//   scoring_func, norm_topk_prob and the like are not read.
// - qwen3_5_moe (Qwen3.5-MoE; its text model's keys in text_config, its
//   tensors under model.language_model.) is Qwen3-Next's sparse block, so
//   its layers carry `#moe.family<qwen2_moe>`: a gated shared expert of
//   shared_expert_intermediate_size (default 512), every layer sparse,
//   always renormalized (norm_topk_prob is not read). Its released bf16
//   experts are fused (below).
// - Experts stored fused, as transformers 5 writes them (Qwen3.5-MoE's
//   releases, and any checkpoint saved with save_original_format=False):
//   where `<block>.experts.0.gate_proj.weight` is absent and
//   `<block>.experts.gate_up_proj` [E, 2f, d] (gate rows first) is there,
//   the layer takes it and `<block>.experts.down_proj` [E, d, f] as
//   experts(gate_up, down). The families whose experts are named
//   gate_proj, up_proj and down_proj under `mlp` read either layout; so
//   does Mixtral's block (mixtral, minimax, minimax_m2), which that layout
//   moves from `block_sparse_moe` to `mlp`, router and bias included.
// - qwen3_vl_moe (Qwen3-VL-MoE; its text model's keys in text_config, its
//   tensors under model.language_model.) routes as Qwen3-MoE always
//   renormalized (Qwen3VLMoeTextSparseMoeBlock does not read
//   norm_topk_prob), so its layers carry `#moe.family<qwen3_moe>`; its
//   sparse layers follow decoder_sparse_step and mlp_only_layers. Its
//   experts are fused and stored [in, out] as Llama-4's: gate_up_proj
//   [E, d, 2f] (gate columns, then up) and down_proj [E, f, d], emitted as
//   `moe.weight {transposed}`, or, when the checkpoint has no gate_up_proj
//   but experts.0.gate_proj.weight (its FP8 release), per expert and
//   [out, in] as Qwen3-MoE's.
// - granitemoeshared and granitemoehybrid (Granite 4.0) are Granite's
//   sparse block in every layer (Mamba and attention layers alike; the
//   mixers are not read) plus an ungated `shared_mlp` of
//   shared_intermediate_size (default 0, no shared MLP, and 1024), stored
//   fused as Granite's experts: `shared_mlp.input_linear.weight`
//   [2 fs, d] (gate rows first) and `output_linear.weight` [d, fs], which
//   the layer takes as shared(gate_up, down). With a shared MLP no preset
//   names the layer, so it carries no `family`.
// - flex_olmo (FlexOlmo) is OLMoE's sparse block (FlexOlmoSparseMoeBlock
//   derives from OlmoeSparseMoeBlock) in every layer, so its layers carry
//   `#moe.family<olmoe>` unless norm_topk_prob (default false) is true.
// - jamba (Jamba): JambaSparseMoeBlock under `feed_forward`, its router
//   `feed_forward.router.weight`, experts named as OLMoE's: softmax scores,
//   the top k, not renormalized. Layer l is sparse when l %
//   expert_layer_period == expert_layer_offset (defaults 2 and 1). No
//   preset names this block, so its layers carry no `family`; its Mamba
//   and attention layers are not read.
// - ernie4_5_moe (ERNIE-4.5-MoE): Ernie4_5_MoeSparseMoeBlock under `mlp`,
//   with DeepSeek-V2's tensor names, the sizes in moe_num_experts and
//   moe_intermediate_size and k in moe_k: softmax scores; the top k of the
//   scores plus `mlp.moe_statics.e_score_correction_bias` (stored [1, E]);
//   the unbiased scores of the chosen experts renormalized, no scaling;
//   an ungated `shared_experts` FFN of moe_num_shared_experts (default 2)
//   times moe_intermediate_size. Layer l is sparse when (l + 1) %
//   moe_layer_interval == 0 and moe_layer_start_index <= l <=
//   moe_layer_end_index (defaults 1, 1 and -1, the last layer).
//   use_bias = true (biases in every projection) is refused. No preset
//   names this routing, so its layers carry no `family`. The Hugging Face
//   code divides by the sum clamped to at least moe_norm_min (1e-12); the
//   layers add the specification's 1e-20 (docs/models.md).
// - lfm2_moe (LFM2-MoE): Lfm2MoeSparseMoeBlock under `feed_forward`, with
//   Mixtral's expert names (experts.N.w1, w3, w2), the sizes in
//   num_experts and moe_intermediate_size: sigmoid scores; with
//   use_expert_bias (default true) the top k of the scores plus the
//   block's `expert_bias` buffer, else of the scores; the unbiased scores
//   of the chosen experts, renormalized with norm_topk_prob (default true)
//   and times routed_scaling_factor (default 1); the first
//   num_dense_layers (default 2) layers dense. Its MLPs are always
//   SiLU-gated (hidden_act is not read). No preset names this routing, so
//   its layers carry no `family`. The Hugging Face code renormalizes by
//   the sum plus 1e-6; the layers add the specification's 1e-20
//   (docs/models.md).
// - llama4 (Llama-4; its text model's keys in text_config, its tensors
//   under language_model.) and llama4_text: Llama4TextMoe, which no preset
//   names, so its layers carry the routing and no `family`: the top k of
//   the logits, each weight the sigmoid of its logit (no renormalization)
//   applied to the expert's input (`apply_weight = input`); the fused
//   experts gate_up_proj [E, d, 2f] and down_proj [E, f, d] stored
//   [in, out], so emitted as `moe.weight {transposed}` (or per expert and
//   [out, in], as Qwen3-VL-MoE's may be); an ungated shared
//   expert (Llama4TextMLP) of intermediate_size; the sparse layers listed
//   in moe_layers, or else every interleave_moe_layer_step-th one (default
//   1), from layer step - 1.
// - dbrx (DBRX): DbrxFFN under `ffn`, its router `ffn.router.layer.weight`;
//   its sizes named d_model and n_layers, its block's keys in ffn_config
//   (moe_num_experts, moe_top_k, ffn_hidden_size, ffn_act_fn.name). Softmax
//   scores, the top k divided by their p-norm with p =
//   moe_normalize_expert_weights: 1 (the default) divides by their sum, as
//   the mixtral preset renormalizes, so the layers carry
//   `#moe.family<mixtral>`; null keeps them raw (no `family`, with a
//   warning); any other p is refused. The experts are three tensors of
//   [E * f, d]: `ffn.experts.mlp.w1` (gate) and `v1` (up), read as
//   [E, f, d], and `w2`, each expert's down projection stored [in, out],
//   read as [E, f, d] and emitted as `moe.weight {transposed}`. Every
//   layer is sparse.
// - gpt_oss (GPT-OSS, its bf16 checkpoints): GptOssMLP under `mlp`, every
//   layer sparse: `router.weight` and its bias `router.bias`, the top k of
//   the logits and a softmax over them, no `family`; the fused experts
//   stored [in, out] with gate and up interleaved (`experts.gate_up_proj`,
//   `moe.weight {interleaved, transposed}`; `experts.down_proj`), a bias
//   per projection (`gate_up_proj_bias`, interleaved, and
//   `down_proj_bias`) as `expert_biases(...)`, and `act = swiglu_oai`.
//   swiglu_limit must be 7. MXFP4 checkpoints (quant_method "mxfp4", the
//   released ones) hold the two expert projections as
//   `experts.gate_up_proj_blocks` [E, 2f, d / 32, 16] and
//   `experts.down_proj_blocks` [E, d, f / 32, 16] (U8, two E2M1 codes a
//   byte, low nibble first; stored [out, in], gate and up interleaved
//   along the output) with E8M0 scales `<proj>_scales` [E, out, in / 32]
//   (U8, 2^(s - 127)): `moe.weight {stored = f4E2M1FN, scales,
//   scale_block = [1, 32]}`, dequantized when the model loads.
// - hidden_act: silu or swish -> silu; gelu (the erf form) -> gelu_erf;
//   gelu_new, gelu_pytorch_tanh, gelu_fast (the tanh form) -> gelu_tanh;
//   relu -> relu. Shared experts use the same activation.
// - Every tensor of a layer has the dtype of its router weight (F32, F16 or
//   BF16), except the e_score_correction_bias of DeepSeek-V3, GLM-4.5 and
//   MiniMax-M2, and LFM2-MoE's expert_bias. Their routers add it to f32
//   scores (LFM2-MoE's bias is an f32 buffer), so the layer takes it
//   in f32 whatever the dtype it is stored in: an F16 or BF16 bias gets
//   `moe.weight {stored}` and is widened, exactly, when the model loads.
// - FP8 checkpoints (quantization_config: quant_method "fp8", fmt e4m3)
//   hold some weights in F8_E4M3. With weight_block_size [r, c]
//   (DeepSeek-V3's format) each has a scale tensor `<name>_scale_inv` of
//   [ceil(n / r), ceil(k / c)]; without it (AutoFP8's format, which vLLM
//   reads per tensor) each matrix has one scale, `<name>_scale` of shape
//   [] or [1], and its `input_scale` (for FP8 activations) is not read.
//   llm-compressor's checkpoints (quant_method "compressed-tensors", format
//   float-quantized) name each scale `<name>_scale`, one per tensor ([] or
//   [1]), per output channel ([n, 1]), per group of columns of each row
//   ([n, ceil(k / g)]) or per block ([ceil(n / r), ceil(k / c)]), as their
//   weights' `strategy` says; every config group that quantizes weights
//   must use the same 8-bit float scheme, and rotations (transform_config)
//   and sparse formats are refused. Llama-4's FP8 release (quant_method
//   "fbgemm_fp8") scales each output channel: `<name>_scale`, f32, [n, 1]
//   for a Linear's [n, k] weight, [E, 1, 2f] for the fused gate_up_proj
//   [E, d, 2f] and [E, d, 1] for down_proj [E, f, d]; its
//   activation_scale_ub is not read. The scales of a weight stored
//   [in, out] cover it as stored: blocks of the config's [r, c] swapped,
//   [c, r] (a grid of one block row or column may be stored with its last
//   two dimensions swapped, as Llama-4's down_proj scales are).
//   Model Optimizer's exports (quant_method "modelopt") are read in
//   quant_algo "FP8" (per tensor, `<name>_scale`) and "NVFP4": a U8
//   weight `<name>` [n, k / 2] holds two E2M1 codes a byte, with its E4M3
//   scales `<name>_scale` [n, ceil(k / 16)] and a global scale
//   `<name>_scale_2`, a scalar; it becomes `moe.weight {stored = f4E2M1FN,
//   scales, scale_block = [1, 16], global_scales}`. llm-compressor's NVFP4
//   (compressed-tensors, format "nvfp4-pack-quantized": weights of type
//   "float", 4 bits, strategy "tensor_group", group_size 16) names the
//   codes `<name>_packed` and the global scale `<name>_global_scale`, which
//   divides the block scales (`global_scales_inverse`); its MXFP4 (format
//   "mxfp4-pack-quantized": strategy "group", group_size 32) has
//   `<name>_packed` and E8M0 scales `<name>_scale` [n, ceil(k / 32)], and
//   becomes MXFP4's `moe.weight`. A config group's own `format` (as under
//   "mixed-precision") overrides the config's. A Model Optimizer
//   export whose config.json has no quantization_config is read from its
//   hf_quant_config.json (`quantization`: quant_algo and group_size as in
//   quantization_config; quant_algo null quantizes the KV cache only).
//   quant_algo "W4A16_NVFP4" is read as "NVFP4"; "MIXED_PRECISION" gives
//   each module of quantized_layers its own ("NVFP4", "W4A16_NVFP4" or
//   "FP8" where a weight of an imported layer has it): the longest module
//   that holds a tensor says how it must be stored.
//   The router and the correction bias stay unquantized. An F8_E4M3
//   expert or shared-expert weight becomes `moe.weight {stored =
//   f8E4M3FN, scales, scale_block}` of the layer's dtype (a per-tensor
//   scale is a block of the whole matrix): the runtime dequantizes it when
//   the model loads. Any other quantization is refused when config.json
//   is read.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IMPORT_IMPORTER_H
#define MOE_IMPORT_IMPORTER_H

#include "moe/Checkpoint/SafeTensors.h"
#include "moe/IR/MoEAttrs.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mlir {
class MLIRContext;
} // namespace mlir

namespace mlir::moe::import {

/// The MoE configuration of a model, derived from its config.json: what
/// every sparse layer computes, and which layers are sparse.
struct ModelConfig {
  /// The config file, for messages.
  std::string path;
  Family family = Family::Mixtral;
  std::string modelType;

  int64_t hiddenSize = 0;
  int64_t numLayers = 0;
  int64_t numExperts = 0;
  int64_t topK = 0;
  /// Inner size f of a routed expert.
  int64_t expertSize = 0;
  /// Inner size of the shared expert FFN; 0 without one.
  int64_t sharedSize = 0;
  /// Qwen2-MoE: the shared expert output is scaled by sigmoid(ws . x).
  bool sharedGate = false;
  Activation act = Activation::Silu;

  // Routing (spec sections 1 to 3).
  ScoreFunc score = ScoreFunc::Softmax;
  Selection selection = Selection::TopK;
  int64_t groups = 1;
  std::optional<int64_t> topkGroup;
  GroupScore groupScore = GroupScore::Max;
  CombineWeights weights = CombineWeights::Scores;
  bool renormalize = false;
  double scale = 1.0;
  /// DeepSeek-V3's e_score_correction_bias.
  bool selectionBias = false;
  /// Where the routing weight multiplies (Llama-4: the expert input).
  ApplyWeight apply = ApplyWeight::Output;

  /// Whether the routing is the family preset; when not, `presetNote`
  /// says why and the layers carry no `family` attribute.
  bool matchesPreset = true;
  std::string presetNote;
  /// False for a model type that no preset of spec section 9 describes
  /// (minimax_m2): its layers carry no `family` attribute, and that is not
  /// worth a warning.
  bool hasPreset = true;

  /// How the FP8 weights of a quantized checkpoint are scaled.
  struct FP8Scales {
    /// The rows and columns of the block that one scale covers, in a
    /// weight's [out, in] orientation; 0 spans the whole dimension ({0, 0}:
    /// one scale a matrix; {1, 0}: one an output channel). The scales of a
    /// weight stored [in, out] cover it as stored, in blocks of {columns,
    /// rows}.
    std::array<int64_t, 2> block = {0, 0};
    /// The scales of tensor `<name>` are `<name><suffix>`.
    std::string suffix = "_scale";
    /// The quantization_config's words for the scheme, for diagnostics.
    std::string description;

    bool perTensor() const { return block[0] == 0 && block[1] == 0; }
  };
  /// Set when the checkpoint's FP8 weights are described by its
  /// quantization_config (quant_method "fp8", "compressed-tensors" or
  /// "fbgemm_fp8").
  std::optional<FP8Scales> fp8;
  /// GPT-OSS's experts are MXFP4 (quant_method "mxfp4"): `<name>_blocks`
  /// and `<name>_scales` for its fused expert projections.
  bool mxfp4 = false;
  /// How a checkpoint names the tensors of a weight `<name>` (the
  /// projection's `weight`) stored as E2M1 codes, two a byte: a U8 tensor
  /// `<name><codes>`, block scales `<name><scales>` and, for NVFP4 (E4M3
  /// scales of blocks of 16), a global scale `<name><global>`, which
  /// multiplies the block scales, or divides them when `inverse`; without
  /// one, MXFP4 (E8M0 scales of blocks of 32).
  struct FP4Tensors {
    std::string codes, scales, global;
    bool inverse = false;
    /// The quantization_config's words for the scheme, for diagnostics.
    std::string description;

    bool nvfp4() const { return !global.empty(); }
  };
  /// 4-bit float weights: NVFP4 as Model Optimizer exports it (quant_method
  /// "modelopt", quant_algo "NVFP4": `<name>`, `<name>_scale`,
  /// `<name>_scale_2`), or as llm-compressor does (quant_method
  /// "compressed-tensors", format "nvfp4-pack-quantized": `<name>_packed`,
  /// `<name>_scale`, `<name>_global_scale`, inverse); MXFP4 as
  /// llm-compressor does (format "mxfp4-pack-quantized": `<name>_packed`,
  /// `<name>_scale`). GPT-OSS's own MXFP4 is `mxfp4`.
  std::optional<FP4Tensors> packedFP4;
  /// Integer weights as llm-compressor stores them (quant_method
  /// "compressed-tensors", format "pack-quantized": W4A16, W8A16): a
  /// weight `<name>` is the I32 words `<name>_packed` of its `bits`-bit
  /// codes and their scales `<name>_scale`, one a group of `group` inputs
  /// of each row (0: one a row, strategy "channel"). Asymmetric weights
  /// (`zeroPoints`, "symmetric": false) also have the zero points
  /// `<name>_zero_point`, I32 [ceil(n / w), groups], packed along n as the
  /// codes are along k, each stored plus 2^(bits - 1) as the codes are.
  ///
  /// With layout GPTQ (quant_method "gptq"), as GPTQ stores them: the
  /// Linear `<prefix>` (its weight `<prefix>.weight`) is `<prefix>.qweight`
  /// [k / w, n], words of w codes along k, with `<prefix>.scales` [groups,
  /// n], zero points `<prefix>.qzeros` [groups, n / w], each stored minus
  /// `zeroOffset` (1 in GPTQ's original format), and the group of each
  /// input `<prefix>.g_idx` [k] where the checkpoint has it.
  ///
  /// With layout AWQ (quant_method "awq", version "gemm"), as AWQ stores:
  /// `<prefix>.qweight` [k, n / 8], words of 8 outputs in AWQ's order of
  /// fields, `<prefix>.scales` [groups, n] and `<prefix>.qzeros` [groups,
  /// n / 8] packed the same way, no group indices.
  struct PackedInts {
    unsigned bits = 4;
    int64_t group = 0;
    enum class Layout { CompressedTensors, GPTQ, AWQ };
    Layout layout = Layout::CompressedTensors;
    /// GPTQ's and AWQ's Linears are `<prefix>.qweight`.
    bool qweight() const { return layout != Layout::CompressedTensors; }
    int64_t zeroOffset = 0;
    /// Layout CompressedTensors: the weights are asymmetric and have zero
    /// points (GPTQ's and AWQ's always have them).
    bool zeroPoints = false;
    /// Layout CompressedTensors, format "int-quantized" (llm-compressor's
    /// W8A8 weights): each weight `<name>` is I8, one signed value an
    /// element, with `<name>_scale` as above; no words, no zero points.
    bool bytes = false;
    /// The quantization_config's words for the scheme, for diagnostics.
    std::string description;
  };
  std::optional<PackedInts> packedInts;
  /// bitsandbytes' 4-bit weights (quant_method "bitsandbytes",
  /// load_in_4bit): each quantized Linear's `<prefix>.weight` holds U8
  /// codes and its state tensors beside it say the rest (quant type, block
  /// size, double quantization); a Linear left unquantized
  /// (llm_int8_skip_modules) keeps its dtype.
  struct Bnb4 {
    /// bnb_4bit_quant_type: "nf4" or "fp4".
    std::string quantType;
  };
  std::optional<Bnb4> bnb4;
  /// Model Optimizer's quant_algo "MIXED_PRECISION": the quant_algo of each
  /// module of its quantized_layers (`where` names that key). A module
  /// quantizes the tensors under it; a weight under none is unquantized.
  struct ModelOptLayers {
    std::map<std::string, std::string> algos;
    std::string where;
  };
  std::optional<ModelOptLayers> modelOptLayers;

  /// The tensors of layer L are under `<layerPrefix>.L`.
  std::string layerPrefix = "model.layers";

  // Which layers are sparse.
  /// The sparse layers, when the config lists them: Llama-4's moe_layers,
  /// or the "sparse" entries of mlp_layer_types.
  std::optional<std::vector<int64_t>> moeLayers;
  /// The key that listed them: "moe_layers", or "mlp_layer_types"
  /// (DeepSeek-V3.2's, GLM-5's and GLM-4.7-Flash's).
  std::string moeLayersKey = "moe_layers";
  std::vector<int64_t> mlpOnlyLayers;
  int64_t decoderSparseStep = 1;
  int64_t firstKDenseReplace = 0;
  /// moe_layer_freq (DeepSeek), interleave_moe_layer_step (Llama-4),
  /// moe_layer_interval (ERNIE-4.5-MoE, whose moe_layer_start_index is
  /// firstKDenseReplace) or expert_layer_period (Jamba).
  int64_t moeLayerFreq = 1;
  /// Jamba's expert_layer_offset: the sparse layers are those equal to it
  /// modulo moeLayerFreq.
  int64_t moeLayerOffset = 0;
  /// ERNIE-4.5-MoE's moe_layer_end_index: no later layer is sparse.
  int64_t moeLayerEnd = 0;

  /// Llama-4's block (Llama4TextMoe, model types llama4 and llama4_text):
  /// the fused experts stored [in, out] (`moe.weight {transposed}`) and an
  /// ungated shared expert.
  bool isLlama4() const {
    return llvm::StringRef(modelType).starts_with("llama4");
  }
  /// Qwen3-VL-MoE (model type qwen3_vl_moe): Qwen3-MoE's routing with
  /// Llama-4's fused experts stored [in, out], under text_config.
  bool isQwen3VL() const { return modelType == "qwen3_vl_moe"; }
  /// Qwen3.5-MoE (model type qwen3_5_moe): Qwen3-Next's block in every
  /// layer, always renormalized, under text_config.
  bool isQwen35() const { return modelType == "qwen3_5_moe"; }
  /// GLM-4.5V (model type glm4v_moe): GLM-4.5's block and config defaults,
  /// under text_config.
  bool isGlm4V() const { return modelType == "glm4v_moe"; }
  /// The multimodal checkpoints, whose text model's keys are under
  /// text_config.
  bool hasTextConfig() const {
    return modelType == "llama4" || isQwen3VL() || isQwen35() || isGlm4V();
  }
  /// LFM2-MoE's block (Lfm2MoeSparseMoeBlock, model type lfm2_moe): Mixtral's
  /// expert names under `feed_forward`, the selection bias `expert_bias`, the
  /// first num_dense_layers layers dense.
  bool isLfm2() const { return modelType == "lfm2_moe"; }
  /// ERNIE-4.5-MoE's block (Ernie4_5_MoeSparseMoeBlock, model type
  /// ernie4_5_moe): DeepSeek-V2's tensor names with the selection bias
  /// `moe_statics.e_score_correction_bias`, the sparse layers between two
  /// indices at an interval.
  bool isErnie() const { return modelType == "ernie4_5_moe"; }
  /// Jamba's block (JambaSparseMoeBlock, model type jamba): under
  /// `feed_forward`, its router named `router`, every
  /// expert_layer_period-th layer sparse from expert_layer_offset.
  bool isJamba() const { return modelType == "jamba"; }
  /// DBRX's block (DbrxFFN, model type dbrx): under `ffn`, its router
  /// `router.layer`, its experts w1, v1 and w2 each one tensor [E * f, d]
  /// (w2 holding the down projections [in, out]); its sizes named d_model
  /// and n_layers, the block's keys in ffn_config.
  bool isDbrx() const { return modelType == "dbrx"; }
  /// GPT-OSS's block (GptOssMLP, model type gpt_oss): a router with a bias,
  /// fused experts stored [in, out] with gate and up interleaved, a bias
  /// on every projection, GPT-OSS's clamped SwiGLU.
  bool isGptOss() const { return modelType == "gpt_oss"; }
  /// Whether layer `layer` (in [0, numLayers)) holds a sparse MoE block.
  bool isSparseLayer(int64_t layer) const;
  /// Every sparse layer, ascending.
  llvm::SmallVector<int64_t> sparseLayers() const;
  /// Why layer `layer` is dense, e.g. "first_k_dense_replace = 1".
  std::string denseReason(int64_t layer) const;
};

/// The model types moe-import reads, for messages.
llvm::StringRef supportedModelTypes();

/// Derives the configuration from a parsed config.json; `path` names the
/// file in errors. Without a quantization_config, `hfQuantConfig` (Model
/// Optimizer's hf_quant_config.json, at `hfQuantPath`) describes the
/// quantization when it is given.
llvm::Expected<ModelConfig>
parseModelConfig(const llvm::json::Value &config, llvm::StringRef path,
                 const llvm::json::Value *hfQuantConfig = nullptr,
                 llvm::StringRef hfQuantPath = {});
/// Reads and derives `path` (a config.json), with the hf_quant_config.json
/// beside it when there is one.
llvm::Expected<ModelConfig> readModelConfig(llvm::StringRef path);

/// Parses a comma-separated list of layer indices ("1,3").
llvm::Expected<llvm::SmallVector<int64_t>> parseLayerList(llvm::StringRef list);

struct ImportOptions {
  /// Layers to import (each must be sparse); empty: every sparse layer.
  llvm::SmallVector<int64_t> layers;
  /// Pass the weights as function arguments after the hidden states, in
  /// the operand order of moe.layer (router, selection bias, routed
  /// experts, shared experts), instead of `moe.weight` ops. For running a
  /// layer where weights cannot be bound from the checkpoint.
  bool weightsAsArguments = false;
  /// The element type of the layers (hidden states and weights, not the
  /// f32 biases); unset: each layer's checkpoint dtype. Weights stored in
  /// another dtype get `moe.weight {stored}`: the runtime converts them
  /// when it loads the model.
  std::optional<checkpoint::DType> dtype;
};

struct ImportResult {
  OwningOpRef<ModuleOp> module;
  /// Things the user should know that are not errors (a non-preset
  /// routing).
  std::vector<std::string> warnings;
};

/// Imports the model in directory `modelDir` (config.json plus
/// model.safetensors, or shards with model.safetensors.index.json). Every
/// tensor of an imported layer is checked for presence, shape and dtype.
/// The module is verified before it is returned.
llvm::Expected<ImportResult> importModel(MLIRContext &context,
                                         llvm::StringRef modelDir,
                                         const ImportOptions &options = {});

} // namespace mlir::moe::import

#endif // MOE_IMPORT_IMPORTER_H
