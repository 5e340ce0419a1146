//===- HfModel.h - Layers of Hugging Face MoE checkpoints -------*- C++ -*-===//
//
// The test oracle's reading of a Hugging Face MoE model (spec sections 9
// and 10), written independently of the compiler's importer: which layers
// are sparse, the routing and experts of a sparse layer, its tensor names,
// and its weights as reference-model inputs. Standard C++ only.
//
// Readings (those of each family's Hugging Face modeling code, as
// moe-import documents them):
// - Expert count: num_local_experts (mixtral, granitemoe), num_experts
//   (qwen2_moe, qwen3_moe, olmoe), n_routed_experts (deepseek); expert inner
//   size: intermediate_size (mixtral, olmoe, granitemoe),
//   moe_intermediate_size (qwen, deepseek). These, hidden_size,
//   num_hidden_layers, num_experts_per_tok, shared_expert_intermediate_size
//   (qwen2_moe), n_shared_experts (deepseek; null = none) and, for grouped
//   selection, n_group and topk_group are required.
// - Defaults when absent or null: hidden_act silu; norm_topk_prob false
//   (true for deepseek_v3); decoder_sparse_step 1; mlp_only_layers [];
//   first_k_dense_replace 0; moe_layer_freq 1; routed_scaling_factor 1.0
//   (2.5 for deepseek_v3); topk_method greedy (noaux_tc for deepseek_v3);
//   scoring_func softmax (sigmoid for deepseek_v3).
// - Sparse layers: qwen: L not in mlp_only_layers and (L + 1) %
//   decoder_sparse_step == 0; deepseek: L >= first_k_dense_replace and
//   L % moe_layer_freq == 0; llama4: L in moe_layers when given, else
//   L % interleave_moe_layer_step == step - 1; the others: every layer.
// - Routing: mixtral softmax top_k renormalized; qwen2_moe, qwen3_moe and
//   olmoe softmax top_k, renormalized iff norm_topk_prob; granitemoe top_k
//   on the logits with a softmax over the selected ones; deepseek_v2
//   softmax, top_k (greedy) or grouped_top_k with max (group_limited_greedy),
//   renormalized iff norm_topk_prob and k > 1, else scaled by
//   routed_scaling_factor; deepseek_v3 sigmoid, grouped_top_k with sum_top2
//   on the scores plus e_score_correction_bias, renormalized iff
//   norm_topk_prob, always scaled; glm4_moe as deepseek_v3; minimax_m2
//   sigmoid top_k on the scores plus e_score_correction_bias, renormalized;
//   llama4 (text_config) and llama4_text sigmoid top_k, the weights applied
//   to the expert input, the fused experts read transposed.
// - Activations: silu/swish, gelu (erf), gelu_new/gelu_pytorch_tanh/
//   gelu_fast (tanh), relu; shared experts use the same one.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_REFERENCE_HFMODEL_H
#define MOE_REFERENCE_HFMODEL_H

#include "Json.h"
#include "MoEReference.h"
#include "Npy.h"
#include "SafeTensorsReader.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hf {

/// One operand of the layer, in moe.layer operand order: router, selection
/// bias, routed experts, shared expert.
struct Operand {
  /// router, router_bias, bias, gate, up, down, gate_up, gate_up_bias,
  /// down_bias, shared_gate, shared_up, shared_down or shared_sigmoid_gate.
  std::string role;
  /// One tensor, or one per expert stacked along a new first dimension.
  std::vector<std::string> names;
  bool stacked = false;
  std::vector<int64_t> shape; // of the operand
  bool alwaysF32 = false;     // the selection bias: f32, stored in any float
  bool transposed = false;    // stored with the last two dimensions swapped
  /// Dimension 1 of the operand stored interleaved (GPT-OSS's gate, up,
  /// gate, up, ...): index i < m at 2 i, m + i at 2 i + 1.
  bool interleaved = false;
};

struct LayerPlan {
  std::string modelType;
  int64_t layer = 0, d = 0, E = 0, f = 0;
  moeref::LayerConfig cfg; // cfg.routing.k holds k
  std::vector<Operand> operands;
  /// FP8 checkpoints (a quantization_config): the scale of tensor <name>
  /// is <name><fp8Suffix>, one per block of fp8Block (rows, columns), where
  /// 0 spans the whole dimension ({0, 0}: one scale per tensor).
  bool fp8 = false;
  std::vector<int64_t> fp8Block = {0, 0};
  std::string fp8Suffix = "_scale";
  /// GPT-OSS's MXFP4 checkpoints (quant_method "mxfp4"): the experts'
  /// projections are <name>_blocks [E, out, in / 32, 16] (E2M1 codes, two
  /// a byte, low nibble first) with E8M0 scales <name>_scales [E, out, in
  /// / 32], stored [out, in] where the unquantized ones are [in, out].
  bool mxfp4 = false;
  /// Model Optimizer's NVFP4 checkpoints (quant_method "modelopt",
  /// quant_algo "NVFP4"): a U8 weight `<name>` holds E2M1 codes, with E4M3
  /// scales `<name>_scale` and a global scale `<name>_scale_2`. With
  /// `nvfp4Compressed` (llm-compressor's "nvfp4-pack-quantized"), the
  /// codes are `<name>_packed` and the global scale `<name>_global_scale`
  /// divides.
  bool nvfp4 = false;
  bool nvfp4Compressed = false;
  /// llm-compressor's MXFP4 ("mxfp4-pack-quantized"): codes
  /// `<name>_packed` as NVFP4's, with E8M0 scales `<name>_scale` [..., n,
  /// ceil(k / 32)] and no global scale.
  bool mxfp4Compressed = false;
  /// llm-compressor's integers ("pack-quantized"): `<name>_packed` holds
  /// I32 words of 32 / intBits codes (4 or 8 bits, the first in the lowest
  /// bits, each the value plus 2^(intBits - 1)), with scales `<name>_scale`
  /// [..., n, ceil(k / intGroup)] (intGroup 0: one a row). intAsymmetric
  /// ("symmetric": false): zero points `<name>_zero_point`, I32 [...,
  /// ceil(n / w), groups], w rows' zero points a word (row i in the bits
  /// (i % w) * intBits), each stored plus 2^(intBits - 1) as the codes are;
  /// element (i, j) is (code - zero) * scale.
  int intBits = 0;
  int64_t intGroup = 0;
  bool intAsymmetric = false;
  /// llm-compressor's 8-bit integers one an element ("int-quantized", or
  /// "naive-quantized" of type int: W8A8's weights): `<name>` is I8 [...,
  /// n, k], each element its signed value, times its scale `<name>_scale`
  /// [..., n, ceil(k / intGroup)] (the group from `<name>_g_idx` when
  /// present). The activations' quantization is not modelled.
  bool intValues = false;
  /// GPTQ (quant_method "gptq"): a Linear `<prefix>` is `<prefix>.qweight`
  /// (I32 [k / w, n], w codes a word along k, the first in the lowest bits),
  /// `.scales` [groups, n], `.qzeros` (I32 [groups, n / w], packed as the
  /// codes along n, each stored minus gptqZeroOffset) and, if present,
  /// `.g_idx` (I32 [k], the group of each input; else j / intGroup).
  bool gptq = false;
  int gptqZeroOffset = 0;
  /// AWQ (quant_method "awq", version "gemm"): as GPTQ's but `.qweight` is
  /// I32 [k, n / 8], 8 outputs a word, and the fields of its words and of
  /// `.qzeros`' hold outputs 0, 2, 4, 6, 1, 3, 5, 7 of their run, lowest
  /// bits first; no zero offset, no g_idx.
  bool awq = false;
  /// bitsandbytes (quant_method "bitsandbytes", load_in_4bit): a 4-bit
  /// weight `<name>` is found by its state tensor,
  /// `<name>.quant_state.bitsandbytes__nf4` or `__fp4`, whatever the config
  /// says (see readBnb4 in HfModel.cpp); the others are read as usual.
  bool bnb4 = false;
};

/// Plans sparse layer `layer` of the model with config.json `config`
/// (`file` names it in messages). A dense or nonexistent layer is an error.
bool planLayer(const json::Value &config, const std::string &file,
               int64_t layer, LayerPlan *plan, std::string *err);

/// The sparse layers of the model.
bool sparseLayers(const json::Value &config, const std::string &file,
                  std::vector<int64_t> *layers, std::string *err);

struct LayerWeights {
  npy::DType dtype = npy::DType::F32; // of the layer (the router weight's)
  std::vector<npy::Array> operands;   // as planned, exact values
  /// Per operand: FP8 or MXFP4 weights dequantized, each code times its scale
  /// rounded to f32 (the f32 product). They are the layer's weights once
  /// rounded to the dtype the layer computes in, as the publishers'
  /// conversion to bf16 does; the caller rounds them.
  std::vector<bool> dequantized;
};

/// Experts planned per expert (`<p>.experts.N.gate_proj.weight`, up,
/// down) that the checkpoint stores fused, as transformers 5 writes them
/// (`<p>.experts.gate_up_proj` [E, 2f, d], gate rows first, and
/// `<p>.experts.down_proj` [E, d, f]), are planned so instead; and the
/// reverse for Llama-4's and Qwen3-VL's fused experts stored [in, out],
/// which their FP8 releases hold per expert, [out, in].
void useStoredExpertLayout(const st::Reader &reader, LayerPlan *plan);

/// Reads and checks the planned tensors: present, of the planned shape, all
/// of the router weight's dtype (F32, F16 or BF16) but the F32 bias. An
/// expert weight may be FP8 (F8_E4M3, with `<name><plan.fp8Suffix>` of one
/// scale per block of `plan.fp8Block`): its values are the FP8 values times
/// their scales, rounded to f32.
bool loadWeights(const st::Reader &reader, const LayerPlan &plan,
                 LayerWeights *weights, std::string *err);

/// The reference model's inputs for hidden states `x` [T, d].
moeref::LayerInputs layerInputs(const LayerPlan &plan,
                                const LayerWeights &weights,
                                const moeref::Mat &x);

} // namespace hf

#endif // MOE_REFERENCE_HFMODEL_H
