//===- HfModel.cpp - Layers of Hugging Face MoE checkpoints ---------------===//

#include "HfModel.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>

using moeref::Act;
using moeref::GroupScore;
using moeref::LayerConfig;
using moeref::Mat;
using moeref::Score;
using moeref::Select;
using moeref::SharedKind;
using moeref::Weights;

namespace hf {

namespace {

/// Keys of a config.json object; every accessor returns false with `err`
/// set when the key is missing (and required) or has the wrong type.
struct Keys {
  const json::Value &root;
  std::string file;
  std::string *err;

  bool bad(const std::string &what) {
    *err = file + ": " + what;
    return false;
  }
  /// The value, or nullptr when absent or null.
  const json::Value *find(const std::string &key) const {
    const json::Value *v = root.get(key);
    return v && v->kind != json::Value::Kind::Null ? v : nullptr;
  }

  bool integer(const std::string &key, int64_t *out, int64_t min,
               const int64_t *fallback = nullptr) {
    const json::Value *v = find(key);
    if (!v) {
      if (fallback) {
        *out = *fallback;
        return true;
      }
      return bad("missing key \"" + key + "\" (an integer)");
    }
    if (v->kind != json::Value::Kind::Number || !v->isInteger)
      return bad("key \"" + key + "\" must be an integer, found " +
                 v->kindName());
    if (v->integer < min)
      return bad("key \"" + key + "\" must be at least " + std::to_string(min));
    *out = v->integer;
    return true;
  }
  bool integerOr(const std::string &key, int64_t fallback, int64_t *out,
                 int64_t min) {
    return integer(key, out, min, &fallback);
  }

  bool boolean(const std::string &key, bool fallback, bool *out) {
    const json::Value *v = find(key);
    if (!v) {
      *out = fallback;
      return true;
    }
    if (v->kind != json::Value::Kind::Bool)
      return bad("key \"" + key + "\" must be a boolean, found " +
                 v->kindName());
    *out = v->boolean;
    return true;
  }

  bool positive(const std::string &key, double fallback, double *out) {
    const json::Value *v = find(key);
    if (!v) {
      *out = fallback;
      return true;
    }
    if (v->kind != json::Value::Kind::Number || !(v->number > 0.0))
      return bad("key \"" + key + "\" must be a number > 0");
    *out = v->number;
    return true;
  }

  bool text(const std::string &key, const char *fallback, std::string *out) {
    const json::Value *v = find(key);
    if (!v) {
      if (!fallback) return bad("missing key \"" + key + "\" (a string)");
      *out = fallback;
      return true;
    }
    if (v->kind != json::Value::Kind::String)
      return bad("key \"" + key + "\" must be a string, found " +
                 v->kindName());
    *out = v->string;
    return true;
  }

  bool integers(const std::string &key, std::vector<int64_t> *out) {
    out->clear();
    const json::Value *v = find(key);
    if (!v) return true;
    if (v->kind != json::Value::Kind::Array)
      return bad("key \"" + key + "\" must be a list of integers");
    for (const json::Value &x : v->array) {
      if (x.kind != json::Value::Kind::Number || !x.isInteger)
        return bad("key \"" + key + "\" must be a list of integers");
      out->push_back(x.integer);
    }
    return true;
  }
};

/// qwen3_next's sparse block is Qwen2-MoE's (Qwen3NextSparseMoeBlock
/// derives from Qwen2MoeSparseMoeBlock), under other config defaults.
bool isQwen2Block(const std::string &t) {
  return t == "qwen2_moe" || t == "qwen3_next" || t == "qwen3_5_moe_text";
}
/// qwen3_5_moe's text model: Qwen3-Next's block in every layer, always
/// renormalized; read from its text_config.
bool isQwen35(const std::string &t) { return t == "qwen3_5_moe_text"; }
/// qwen3_vl_moe's text model: Qwen3-MoE's routing, always renormalized,
/// with fused experts stored [in, out]; read from its text_config.
bool isQwen3VL(const std::string &t) { return t == "qwen3_vl_moe_text"; }
bool isQwen(const std::string &t) {
  return isQwen2Block(t) || t == "qwen3_moe" || isQwen3VL(t);
}
/// glm4_moe's sparse block is DeepSeek-V3's: Glm4MoeTopkRouter is
/// DeepseekV3TopkRouter in the Hugging Face code. GLM-4.5V's text model
/// (glm4v_moe, read from its text_config) is GLM-4.5's block and config.
bool isGlm(const std::string &t) {
  return t == "glm4_moe" || t == "glm4v_moe_text";
}
/// dots1's sparse block is DeepSeek-V3's too (Dots1MoE, Dots1TopkRouter),
/// under Dots1Config's defaults.
bool isDots(const std::string &t) { return t == "dots1"; }
/// kimi_k2 is DeepSeek-V3 under its own model type (DeepSeek's config class,
/// whose routing defaults are V2's: the releases give every routing key).
bool isKimi(const std::string &t) { return t == "kimi_k2"; }
/// deepseek_v32, glm_moe_dsa and glm4_moe_lite: DeepSeek-V3's block under
/// config classes that list the layers' kinds in mlp_layer_types and
/// never read a routing method.
bool isLayerTyped(const std::string &t) {
  return t == "deepseek_v32" || t == "glm_moe_dsa" || t == "glm4_moe_lite";
}
bool isDeepSeek(const std::string &t) {
  return t == "deepseek_v2" || t == "deepseek_v3" || isKimi(t) || isGlm(t) ||
         isDots(t) || isLayerTyped(t);
}
/// DeepSeek-V3's router: sigmoid scores, e_score_correction_bias.
bool hasV3Router(const std::string &t) {
  return isDeepSeek(t) && t != "deepseek_v2";
}
/// minimax_m2's sparse block is Mixtral's (MiniMaxM2SparseMoeBlock derives
/// from MixtralSparseMoeBlock) with MiniMaxM2TopKRouter: sigmoid scores and
/// e_score_correction_bias.
bool isMiniMax(const std::string &t) { return t == "minimax_m2"; }
/// Llama-4's text model (Llama4TextMoe); a multimodal llama4 checkpoint is
/// read as llama4_text from its text_config.
bool isLlama4(const std::string &t) { return t == "llama4_text"; }
/// lfm2_moe: Lfm2MoeSparseMoeBlock under feed_forward, experts named w1/w3/w2,
/// sigmoid scores, expert_bias for selection when use_expert_bias.
bool isLfm2(const std::string &t) { return t == "lfm2_moe"; }
/// ernie4_5_moe: Ernie4_5_MoeSparseMoeBlock under mlp, experts named as
/// DeepSeek's, softmax scores with moe_statics.e_score_correction_bias to
/// choose, an ungated shared_experts FFN.
bool isErnie(const std::string &t) { return t == "ernie4_5_moe"; }
/// jamba: JambaSparseMoeBlock under feed_forward, its router named router,
/// experts named as OLMoE's; softmax scores, never renormalized.
bool isJamba(const std::string &t) { return t == "jamba"; }
/// dbrx: DbrxFFN under transformer.blocks.L.ffn, its router router.layer;
/// d_model and n_layers, the block's keys in ffn_config; the experts w1,
/// v1, w2 each [E * f, d], w2 holding the down projections [in, out].
bool isDbrx(const std::string &t) { return t == "dbrx"; }
/// gpt_oss: GptOssMLP, its router with a bias, fused experts stored
/// [in, out] with gate and up interleaved, a bias per projection, the
/// clamped SwiGLU.
bool isGptOss(const std::string &t) { return t == "gpt_oss"; }
/// Granite's block (router.layer, fused input_linear and output_linear);
/// granitemoeshared and granitemoehybrid add a shared_mlp fused the same
/// way.
bool isGranite(const std::string &t) {
  return t == "granitemoe" || t == "granitemoeshared" ||
         t == "granitemoehybrid";
}
/// OLMoE's sparse block: olmoe, and flex_olmo (FlexOlmoSparseMoeBlock
/// derives from OlmoeSparseMoeBlock).
bool isOlmoe(const std::string &t) { return t == "olmoe" || t == "flex_olmo"; }
/// The families named as Mixtral is: block_sparse_moe, w1/w3/w2. minimax
/// (MiniMax-Text-01, -M1) is Mixtral's block and router in every layer.
bool isMixtralBlock(const std::string &t) {
  return t == "mixtral" || t == "minimax" || isMiniMax(t);
}

/// The model-wide facts: sizes and the sparse-layer rule.
struct Model {
  std::string type;
  /// Layer L's tensors are under `prefix.L`.
  std::string prefix = "model.layers";
  int64_t d = 0, layers = 0, E = 0, f = 0, k = 0;
  std::vector<int64_t> mlpOnly;
  int64_t sparseStep = 1, firstDense = 0, freq = 1;
  /// ERNIE-4.5-MoE's last sparse layer (moe_layer_end_index, -1 resolved);
  /// its start and interval are firstDense and freq.
  int64_t lastSparse = 0;
  /// Jamba's expert_layer_offset (its expert_layer_period is freq).
  int64_t offset = 0;
  /// LFM2-MoE's use_expert_bias.
  bool expertBias = false;
  /// Llama-4: moe_layers when given, else every freq-th layer from freq - 1.
  /// isLayerTyped: the "sparse" layers of mlp_layer_types when given.
  bool hasMoeLayers = false;
  std::vector<int64_t> moeLayers;

  bool sparse(int64_t l) const {
    if (l < 0 || l >= layers) return false;
    if (isLlama4(type))
      return hasMoeLayers ? std::find(moeLayers.begin(), moeLayers.end(), l) !=
                                moeLayers.end()
                          : l % freq == freq - 1;
    if (isQwen(type))
      return std::find(mlpOnly.begin(), mlpOnly.end(), l) == mlpOnly.end() &&
             (l + 1) % sparseStep == 0;
    if (isLayerTyped(type) && hasMoeLayers)
      return std::find(moeLayers.begin(), moeLayers.end(), l) !=
             moeLayers.end();
    if (isDeepSeek(type)) return l >= firstDense && l % freq == 0;
    if (isLfm2(type)) return l >= firstDense;
    if (isErnie(type))
      return l >= firstDense && l <= lastSparse && (l + 1) % freq == 0;
    if (isJamba(type)) return l % freq == offset;
    return true;
  }
};

/// The keys of DBRX's ffn_config, or nothing with `err` set.
std::optional<Keys> ffnConfig(Keys &keys) {
  const json::Value *ffn = keys.find("ffn_config");
  if (!ffn || ffn->kind != json::Value::Kind::Object) {
    keys.bad("dbrx without an ffn_config object");
    return std::nullopt;
  }
  return Keys{*ffn, keys.file + ": ffn_config", keys.err};
}

/// Reads the model's keys; a type already set (a multimodal Llama-4's text
/// model) is not read again.
bool readModel(Keys &keys, Model *m) {
  if (m->type.empty() && !keys.text("model_type", nullptr, &m->type))
    return false;
  if (isDbrx(m->type)) {  // every layer sparse
    m->prefix = "transformer.blocks";
    std::optional<Keys> block = ffnConfig(keys);
    if (!block) return false;
    if (!keys.integer("d_model", &m->d, 1) ||
        !keys.integer("n_layers", &m->layers, 1) ||
        !block->integer("moe_num_experts", &m->E, 1) ||
        !block->integer("ffn_hidden_size", &m->f, 1) ||
        !block->integer("moe_top_k", &m->k, 1))
      return false;
    if (m->k > m->E) return block->bad("moe_top_k exceeds the experts");
    return true;
  }
  const char *expertsKey, *sizeKey, *kKey = "num_experts_per_tok";
  if (isMixtralBlock(m->type) || isGranite(m->type) || isLlama4(m->type) ||
      isGptOss(m->type)) {
    expertsKey = "num_local_experts";
    sizeKey = "intermediate_size";
  } else if (isOlmoe(m->type) || isJamba(m->type)) {
    expertsKey = "num_experts";
    sizeKey = "intermediate_size";
  } else if (isQwen(m->type) || isLfm2(m->type)) {
    expertsKey = "num_experts";
    sizeKey = "moe_intermediate_size";
  } else if (isDeepSeek(m->type)) {
    expertsKey = "n_routed_experts";
    sizeKey = "moe_intermediate_size";
  } else if (isErnie(m->type)) {
    expertsKey = "moe_num_experts";
    sizeKey = "moe_intermediate_size";
    kKey = "moe_k";
  } else {
    return keys.bad("unsupported model_type \"" + m->type + "\"");
  }
  if (!keys.integer("hidden_size", &m->d, 1) ||
      !keys.integer("num_hidden_layers", &m->layers, 1) ||
      !keys.integer(expertsKey, &m->E, 1) || !keys.integer(sizeKey, &m->f, 1) ||
      !keys.integer(kKey, &m->k, 1))
    return false;
  if (m->k > m->E) return keys.bad(std::string(kKey) + " exceeds the experts");
  if (isQwen35(m->type)) return true;  // every layer sparse
  if (isQwen(m->type))
    return keys.integerOr("decoder_sparse_step", 1, &m->sparseStep, 1) &&
           keys.integers("mlp_only_layers", &m->mlpOnly);
  if (isLlama4(m->type)) {
    if (!keys.find("moe_layers"))
      return keys.integerOr("interleave_moe_layer_step", 1, &m->freq, 1);
    m->hasMoeLayers = true;
    if (!keys.integers("moe_layers", &m->moeLayers)) return false;
    for (int64_t l : m->moeLayers)
      if (l < 0 || l >= m->layers)
        return keys.bad("moe_layers names a layer outside the model");
    return true;
  }
  if (isJamba(m->type)) {  // JambaConfig's defaults
    if (!keys.integerOr("expert_layer_period", 2, &m->freq, 1) ||
        !keys.integerOr("expert_layer_offset", 1, &m->offset, 0))
      return false;
    if (m->offset >= m->freq)
      return keys.bad("expert_layer_offset must be less than "
                      "expert_layer_period");
    return true;
  }
  if (isErnie(m->type)) {  // Ernie4_5_MoeConfig's defaults
    int64_t end = 0;
    if (!keys.integerOr("moe_layer_start_index", 1, &m->firstDense, 0) ||
        !keys.integerOr("moe_layer_end_index", -1, &end, -1) ||
        !keys.integerOr("moe_layer_interval", 1, &m->freq, 1))
      return false;
    m->lastSparse = end == -1 ? m->layers - 1 : end;
    return true;
  }
  if (isLfm2(m->type))  // Lfm2MoeConfig's defaults
    return keys.integerOr("num_dense_layers", 2, &m->firstDense, 0) &&
           keys.boolean("use_expert_bias", true, &m->expertBias);
  if (isGlm(m->type))  // Glm4MoeDecoderLayer has no moe_layer_freq
    return keys.integerOr("first_k_dense_replace", 1, &m->firstDense, 0);
  if (isDots(m->type))  // nor has Dots1DecoderLayer
    return keys.integerOr("first_k_dense_replace", 0, &m->firstDense, 0);
  if (isLayerTyped(m->type)) {
    if (const json::Value *types = keys.find("mlp_layer_types")) {
      if (types->kind != json::Value::Kind::Array ||
          int64_t(types->array.size()) != m->layers)
        return keys.bad("mlp_layer_types must list one kind a layer");
      m->hasMoeLayers = true;
      for (size_t l = 0; l < types->array.size(); ++l) {
        const json::Value &kind = types->array[l];
        if (kind.kind != json::Value::Kind::String ||
            (kind.string != "dense" && kind.string != "sparse"))
          return keys.bad("mlp_layer_types holds something other than "
                          "\"dense\" and \"sparse\"");
        if (kind.string == "sparse") m->moeLayers.push_back(int64_t(l));
      }
      return true;
    }
    // Without the list: Glm4MoeLiteConfig makes layer 0 dense, the others
    // the first first_k_dense_replace (default 3).
    if (m->type == "glm4_moe_lite") {
      m->firstDense = 1;
      return true;
    }
    return keys.integerOr("first_k_dense_replace", 3, &m->firstDense, 0);
  }
  if (isDeepSeek(m->type))
    return keys.integerOr("first_k_dense_replace", 0, &m->firstDense, 0) &&
           keys.integerOr("moe_layer_freq", 1, &m->freq, 1);
  return true;
}

bool readAct(Keys &keys, const Model &m, Act *act) {
  // LFM2-MoE's MLPs are SiLU-gated; its config has no hidden_act.
  if (isLfm2(m.type)) {
    *act = Act::Silu;
    return true;
  }
  if (isGptOss(m.type)) {  // its experts' own gating; hidden_act unread
    *act = Act::SwigluOai;
    return true;
  }
  std::string name = "silu";
  if (isDbrx(m.type)) {  // ffn_config.ffn_act_fn = {"name": ...}
    std::optional<Keys> block = ffnConfig(keys);
    if (!block) return false;
    if (const json::Value *fn = block->find("ffn_act_fn")) {
      if (fn->kind != json::Value::Kind::Object)
        return block->bad("ffn_act_fn must be an object");
      Keys inner{*fn, block->file + ".ffn_act_fn", keys.err};
      if (!inner.text("name", "silu", &name)) return false;
    }
  } else if (!keys.text("hidden_act", "silu", &name)) {
    return false;
  }
  if (name == "silu" || name == "swish") *act = Act::Silu;
  else if (name == "gelu") *act = Act::GeluErf;
  else if (name == "gelu_new" || name == "gelu_pytorch_tanh" ||
           name == "gelu_fast")
    *act = Act::GeluTanh;
  else if (name == "relu") *act = Act::Relu;
  else return keys.bad("unsupported hidden_act \"" + name + "\"");
  return true;
}

/// n_group and topk_group of DeepSeek's grouped selection.
bool readGroups(Keys &keys, const Model &m, moeref::RoutingConfig *r) {
  // Dots1Config defaults both to 1; the other classes' defaults differ
  // from their released configs, which always give them.
  // So do Glm4MoeLiteConfig and GlmMoeDsaConfig; DeepseekV32Config keeps
  // 4 of 8 groups.
  const int64_t one = 1, eight = 8, four = 4;
  bool v32 = m.type == "deepseek_v32";
  const int64_t *fallback =
      isDots(m.type) || (isLayerTyped(m.type) && !v32) ? &one : nullptr;
  if (!keys.integer("n_group", &r->groups, 1, v32 ? &eight : fallback) ||
      !keys.integer("topk_group", &r->topkGroup, 1, v32 ? &four : fallback))
    return false;
  if (m.E % r->groups != 0) return keys.bad("n_group does not divide the experts");
  if (r->topkGroup > r->groups) return keys.bad("topk_group exceeds n_group");
  if (m.k > r->topkGroup * (m.E / r->groups))
    return keys.bad("num_experts_per_tok exceeds the experts of the kept groups");
  if (r->groupScore == GroupScore::SumTop2 && m.E / r->groups < 2)
    return keys.bad("deepseek_v3 needs at least 2 experts per group");
  return true;
}

/// The routing of the family, and the shared expert's inner size (0: none).
bool readRouting(Keys &keys, const Model &m, LayerConfig *cfg, int64_t *fs) {
  moeref::RoutingConfig &r = cfg->routing;
  r.k = m.k;
  *fs = 0;
  cfg->shared = SharedKind::None;
  const std::string &t = m.type;
  if (isLlama4(t)) {
    // Llama4Router: the top k of the logits, each weight the sigmoid of its
    // logit, scaling the expert's input; Llama4TextMLP as a shared expert of
    // the routed experts' size, added as it is.
    r.score = Score::Sigmoid;
    r.apply = moeref::Apply::Input;
    cfg->shared = SharedKind::Plain;
    *fs = m.f;
    return true;
  }
  if (isLfm2(t)) {
    // Lfm2MoeSparseMoeBlock: sigmoid scores (plus expert_bias, an operand
    // below, to choose), the chosen ones renormalized with norm_topk_prob,
    // times routed_scaling_factor. (Its code adds 1e-6 to the sum where the
    // specification adds 1e-20; the reference follows the specification.)
    r.score = Score::Sigmoid;
    return keys.boolean("norm_topk_prob", true, &r.renormalize) &&
           keys.positive("routed_scaling_factor", 1.0, &r.scale);
  }
  if (isErnie(t)) {
    // Ernie4_5_MoeSparseMoeBlock: softmax scores (plus the correction bias,
    // an operand below, to choose), the chosen ones always renormalized
    // (its code divides by the sum clamped to moe_norm_min, the
    // specification adds 1e-20; the reference follows the specification),
    // and moe_num_shared_experts experts' worth of ungated shared FFN.
    bool biases = false;
    int64_t shared = 0;
    if (!keys.boolean("use_bias", false, &biases) ||
        !keys.integerOr("moe_num_shared_experts", 2, &shared, 0))
      return false;
    if (biases) return keys.bad("use_bias = true (biased experts) is not read");
    r.renormalize = true;
    *fs = shared * m.f;
    cfg->shared = shared > 0 ? SharedKind::Plain : SharedKind::None;
    return true;
  }
  if (isGptOss(t)) {
    // GptOssTopKRouter: the top k of the logits (with the router's bias), a
    // softmax over them; swiglu_limit (default 7) must be the activation's.
    double limit = 7.0;
    if (!keys.positive("swiglu_limit", 7.0, &limit)) return false;
    if (limit != 7.0) return keys.bad("swiglu_limit other than 7");
    r.score = Score::Logits;
    r.weights = Weights::SoftmaxSelected;
    return true;
  }
  if (isDbrx(t)) {
    // DbrxFFN: the top k of the softmax scores divided by their p-norm for
    // p = moe_normalize_expert_weights (default 1: their sum), or not at
    // all for null.
    std::optional<Keys> block = ffnConfig(keys);
    if (!block) return false;
    const json::Value *norm = block->root.get("moe_normalize_expert_weights");
    bool raw = norm && norm->kind == json::Value::Kind::Null;
    double p = 1.0;
    if (!raw && !block->positive("moe_normalize_expert_weights", 1.0, &p))
      return false;
    if (p != 1.0)
      return block->bad("moe_normalize_expert_weights other than 1 or null");
    r.renormalize = !raw;
    return true;
  }
  if (isMixtralBlock(t)) {
    r.renormalize = true;
    // MiniMax-M2: its config has no routing keys; the router always takes
    // sigmoid scores (and the bias, an operand below).
    if (isMiniMax(t)) r.score = Score::Sigmoid;
    return true;
  }
  if (isGranite(t)) {
    // GraniteMoeShared's shared_mlp exists with a size (default 0);
    // GraniteMoeHybrid's always does (default 1024; 0 adds nothing).
    if (t != "granitemoe") {
      if (!keys.integerOr("shared_intermediate_size",
                          t == "granitemoehybrid" ? 1024 : 0, fs, 0))
        return false;
      cfg->shared = *fs > 0 ? SharedKind::Plain : SharedKind::None;
    }
    r.score = Score::Logits;
    r.weights = Weights::SoftmaxSelected;
    return true;
  }
  if (isQwen3VL(t)) {  // Qwen3VLMoeTextSparseMoeBlock: no norm_topk_prob
    r.renormalize = true;
    return true;
  }
  if (isJamba(t)) return true;  // softmax, the top k as they are
  if (isOlmoe(t) || isQwen(t)) {
    // Qwen3_5MoeSparseMoeBlock always renormalizes.
    if (isQwen35(t))
      r.renormalize = true;
    else if (!keys.boolean("norm_topk_prob", t == "qwen3_next",
                           &r.renormalize))
      return false;
    if (!isQwen2Block(t)) return true;
    cfg->shared = SharedKind::Gated;
    const int64_t qwen35Shared = 512;  // Qwen3_5MoeTextConfig's default
    return keys.integer("shared_expert_intermediate_size", fs, 1,
                        isQwen35(t) ? &qwen35Shared : nullptr);
  }
  // DeepSeek, and GLM-4.5 (V3's router; Glm4MoeConfig's defaults; the
  // router never reads scoring_func or topk_method).
  // GLM-4.5 and dots.llm1 route with DeepSeek-V3's router, which reads
  // neither scoring_func nor topk_method.
  bool glm = isGlm(t) || isDots(t) || isLayerTyped(t);
  bool v3 = hasV3Router(t);
  bool norm = false;
  double factor = 1.0;
  std::string scoring = "sigmoid", method = "noaux_tc";
  if (isKimi(t))
    for (const char *key : {"scoring_func", "topk_method", "n_group",
                            "topk_group", "routed_scaling_factor",
                            "norm_topk_prob"})
      if (!keys.find(key))
        return keys.bad(std::string("kimi_k2 needs key \"") + key + "\"");
  double scaleDefault = t == "glm4_moe_lite" ? 1.8
                        : t == "deepseek_v3" || isKimi(t) || isLayerTyped(t)
                            ? 2.5
                            : 1.0;
  if (!keys.boolean("norm_topk_prob", v3 && !isDots(t), &norm) ||
      !keys.positive("routed_scaling_factor", scaleDefault, &factor))
    return false;
  if (!glm && (!keys.text("scoring_func", v3 ? "sigmoid" : "softmax",
                          &scoring) ||
               !keys.text("topk_method", v3 ? "noaux_tc" : "greedy", &method)))
    return false;
  int64_t shared = 0;
  if (keys.find("n_shared_experts")) {
    if (!keys.integer("n_shared_experts", &shared, 0)) return false;
  } else if (isLayerTyped(t) && !keys.root.get("n_shared_experts")) {
    shared = 1;  // their config classes' default
  } else if (!keys.root.get("n_shared_experts")) {
    return keys.bad("missing key \"n_shared_experts\" (an integer)");
  }
  *fs = shared * m.f;
  cfg->shared = shared > 0 ? SharedKind::Plain : SharedKind::None;
  if (v3) {
    if (scoring != "sigmoid" || method != "noaux_tc")
      return keys.bad("deepseek_v3 supports scoring_func sigmoid with "
                      "topk_method noaux_tc only");
    r.score = Score::Sigmoid;
    r.select = Select::GroupedTopK;
    r.groupScore = GroupScore::SumTop2;
    r.renormalize = norm;
    r.scale = factor;
    return readGroups(keys, m, &r);
  }
  if (scoring != "softmax")
    return keys.bad("deepseek_v2 supports scoring_func softmax only");
  r.renormalize = norm && m.k > 1;
  r.scale = r.renormalize ? 1.0 : factor;
  if (method == "greedy") return true;
  if (method != "group_limited_greedy")
    return keys.bad("unsupported topk_method \"" + method + "\"");
  r.select = Select::GroupedTopK;
  r.groupScore = GroupScore::Max;
  return readGroups(keys, m, &r);
}

Operand tensor(const std::string &role, const std::string &name,
               std::vector<int64_t> shape) {
  Operand o;
  o.role = role;
  o.names = {name};
  o.shape = std::move(shape);
  return o;
}

Operand experts(const std::string &role, const std::string &prefix,
                const std::string &leaf, int64_t E,
                std::vector<int64_t> shape) {
  Operand o;
  o.role = role;
  o.stacked = true;
  for (int64_t e = 0; e < E; ++e)
    o.names.push_back(prefix + ".experts." + std::to_string(e) + "." + leaf);
  o.shape = {E};
  o.shape.insert(o.shape.end(), shape.begin(), shape.end());
  return o;
}

/// The tensors of layer `l`, in moe.layer operand order (spec section 10).
std::vector<Operand> layerOperands(const Model &m, const LayerConfig &cfg,
                                   int64_t l, int64_t fs) {
  std::string base = m.prefix + "." + std::to_string(l);
  int64_t d = m.d, E = m.E, f = m.f;
  std::vector<Operand> ops;
  if (isLlama4(m.type) || isQwen3VL(m.type)) {
    // Fused experts kept as [in, out]: gate_up_proj [E, d, 2f], down_proj
    // [E, f, d]; Llama-4's block is feed_forward with a shared expert.
    bool llama4 = isLlama4(m.type);
    std::string p = base + (llama4 ? ".feed_forward" : ".mlp");
    ops.push_back(
        tensor("router", p + (llama4 ? ".router.weight" : ".gate.weight"),
               {E, d}));
    ops.push_back(tensor("gate_up", p + ".experts.gate_up_proj", {E, 2 * f, d}));
    ops.back().transposed = true;
    ops.push_back(tensor("down", p + ".experts.down_proj", {E, d, f}));
    ops.back().transposed = true;
    if (!llama4) return ops;
    std::string s = p + ".shared_expert";
    ops.push_back(tensor("shared_gate", s + ".gate_proj.weight", {fs, d}));
    ops.push_back(tensor("shared_up", s + ".up_proj.weight", {fs, d}));
    ops.push_back(tensor("shared_down", s + ".down_proj.weight", {d, fs}));
    return ops;
  }
  if (isMixtralBlock(m.type) || isLfm2(m.type)) {
    std::string p =
        base + (isLfm2(m.type) ? ".feed_forward" : ".block_sparse_moe");
    ops.push_back(tensor("router", p + ".gate.weight", {E, d}));
    if (isMiniMax(m.type)) { // the block's buffer, not the router's
      ops.push_back(tensor("bias", p + ".e_score_correction_bias", {E}));
      ops.back().alwaysF32 = true;
    }
    if (isLfm2(m.type) && m.expertBias) {
      ops.push_back(tensor("bias", p + ".expert_bias", {E}));
      ops.back().alwaysF32 = true;
    }
    ops.push_back(experts("gate", p, "w1.weight", E, {f, d}));
    ops.push_back(experts("up", p, "w3.weight", E, {f, d}));
    ops.push_back(experts("down", p, "w2.weight", E, {d, f}));
    return ops;
  }
  if (isGptOss(m.type)) {
    std::string p = base + ".mlp";
    ops.push_back(tensor("router", p + ".router.weight", {E, d}));
    ops.push_back(tensor("router_bias", p + ".router.bias", {E}));
    ops.back().alwaysF32 = true;
    ops.push_back(
        tensor("gate_up", p + ".experts.gate_up_proj", {E, 2 * f, d}));
    ops.back().transposed = ops.back().interleaved = true;
    ops.push_back(tensor("down", p + ".experts.down_proj", {E, d, f}));
    ops.back().transposed = true;
    ops.push_back(
        tensor("gate_up_bias", p + ".experts.gate_up_proj_bias", {E, 2 * f}));
    ops.back().interleaved = true;
    ops.push_back(tensor("down_bias", p + ".experts.down_proj_bias", {E, d}));
    return ops;
  }
  if (isDbrx(m.type)) {
    std::string p = base + ".ffn";
    ops.push_back(tensor("router", p + ".router.layer.weight", {E, d}));
    ops.push_back(tensor("gate", p + ".experts.mlp.w1", {E, f, d}));
    ops.push_back(tensor("up", p + ".experts.mlp.v1", {E, f, d}));
    ops.push_back(tensor("down", p + ".experts.mlp.w2", {E, d, f}));
    ops.back().transposed = true;
    return ops;
  }
  if (isJamba(m.type)) {
    std::string p = base + ".feed_forward";
    ops.push_back(tensor("router", p + ".router.weight", {E, d}));
    ops.push_back(experts("gate", p, "gate_proj.weight", E, {f, d}));
    ops.push_back(experts("up", p, "up_proj.weight", E, {f, d}));
    ops.push_back(experts("down", p, "down_proj.weight", E, {d, f}));
    return ops;
  }
  if (isGranite(m.type)) {
    std::string p = base + ".block_sparse_moe";
    ops.push_back(tensor("router", p + ".router.layer.weight", {E, d}));
    ops.push_back(tensor("gate_up", p + ".input_linear.weight", {E, 2 * f, d}));
    ops.push_back(tensor("down", p + ".output_linear.weight", {E, d, f}));
    if (cfg.shared != SharedKind::None) {  // fused as the experts are
      std::string s = base + ".shared_mlp";
      ops.push_back(
          tensor("shared_gate_up", s + ".input_linear.weight", {2 * fs, d}));
      ops.push_back(tensor("shared_down", s + ".output_linear.weight", {d, fs}));
    }
    return ops;
  }
  std::string p = base + ".mlp";
  ops.push_back(tensor("router", p + ".gate.weight", {E, d}));
  if (hasV3Router(m.type)) {
    ops.push_back(tensor("bias", p + ".gate.e_score_correction_bias", {E}));
    ops.back().alwaysF32 = true;
  }
  if (isErnie(m.type)) {  // stored [1, E]: see sameElements
    ops.push_back(tensor("bias", p + ".moe_statics.e_score_correction_bias",
                         {E}));
    ops.back().alwaysF32 = true;
  }
  ops.push_back(experts("gate", p, "gate_proj.weight", E, {f, d}));
  ops.push_back(experts("up", p, "up_proj.weight", E, {f, d}));
  ops.push_back(experts("down", p, "down_proj.weight", E, {d, f}));
  if (cfg.shared != SharedKind::None) {
    std::string s = p + (isQwen2Block(m.type) ? ".shared_expert"
                                              : ".shared_experts");
    ops.push_back(tensor("shared_gate", s + ".gate_proj.weight", {fs, d}));
    ops.push_back(tensor("shared_up", s + ".up_proj.weight", {fs, d}));
    ops.push_back(tensor("shared_down", s + ".down_proj.weight", {d, fs}));
    if (cfg.shared == SharedKind::Gated)
      ops.push_back(tensor("shared_sigmoid_gate",
                           p + ".shared_expert_gate.weight", {1, d}));
  }
  return ops;
}

std::string shapeText(const std::vector<int64_t> &s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i)
    t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

/// Whether a stored tensor of shape `stored` holds the elements of one of
/// `wanted`: the same shape, the same after leading sizes of 1 (a [1, E]
/// bias read as [E]), or a stack of matrices kept as one tall matrix (DBRX's
/// [E * f, d] read as [E, f, d]).
bool sameElements(std::vector<int64_t> stored,
                  const std::vector<int64_t> &wanted) {
  while (stored.size() > wanted.size() && stored.front() == 1)
    stored.erase(stored.begin());
  if (stored.size() == 2 && wanted.size() == 3)
    return stored[0] == wanted[0] * wanted[1] && stored[1] == wanted[2];
  return stored == wanted;
}

bool dtypeOf(const std::string &name, npy::DType *out) {
  if (name == "F32") *out = npy::DType::F32;
  else if (name == "F16") *out = npy::DType::F16;
  else if (name == "BF16") *out = npy::DType::BF16;
  else return false;
  return true;
}

/// FP8 tensor `t` [..., n, k] times its scales: `<name><suffix>` [...,
/// ceil(n / r), ceil(k / c)] for blocks `block` of r x c, where 0 spans the
/// whole dimension; the one scale of a matrix may be [] or [1] too, and a
/// grid of one block row or column [..., m, 1] for [..., 1, m].
bool readFP8(const st::Reader &reader, const st::TensorEntry &t,
             const std::vector<int64_t> &block, const std::string &suffix,
             std::vector<double> *values, std::string *err) {
  size_t rank = t.shape.size();
  bool perTensor = block[0] == 0 && block[1] == 0;
  if (rank < 2 || (perTensor && rank != 2)) {
    *err = t.file + ": tensor " + t.name + " is F8_E4M3 with shape " +
           shapeText(t.shape) + " (expected a matrix" +
           (perTensor ? ", one scale each)" : " or a stack of them)");
    return false;
  }
  int64_t n = t.shape[rank - 2], k = t.shape[rank - 1];
  int64_t r = block[0] ? block[0] : n, c = block[1] ? block[1] : k;
  std::string scaleName = t.name + suffix;
  const st::TensorEntry *s = reader.find(scaleName);
  if (!s) {
    *err = "the checkpoint has no tensor " + scaleName;
    return false;
  }
  int64_t sr = (n + r - 1) / r, sc = (k + c - 1) / c;
  std::vector<int64_t> expected(t.shape.begin(), t.shape.end() - 2);
  expected.push_back(sr);
  expected.push_back(sc);
  // The one scale of a matrix may be a scalar or a vector of one.
  bool scalar = expected == std::vector<int64_t>{1, 1} &&
                (s->shape.empty() || s->shape == std::vector<int64_t>{1});
  std::vector<int64_t> swapped = expected;
  std::swap(swapped[swapped.size() - 2], swapped.back());
  bool vector = (sr == 1 || sc == 1) && s->shape == swapped;
  if (s->shape != expected && !scalar && !vector) {
    *err = s->file + ": tensor " + scaleName + " has shape " +
           shapeText(s->shape) + ", expected " + shapeText(expected);
    return false;
  }
  std::vector<double> scales;
  if (s->dtype == "F8_E4M3") {
    *err = s->file + ": tensor " + scaleName + " has dtype F8_E4M3";
    return false;
  }
  if (!reader.read(t, values, err) || !reader.read(*s, &scales, err))
    return false;
  for (size_t i = 0; i < values->size(); ++i) {
    int64_t m = int64_t(i) / (n * k), row = int64_t(i) / k % n,
            col = int64_t(i) % k;
    (*values)[i] *= scales[(m * sr + row / r) * sc + col / c];
  }
  return true;
}

/// The value of E2M1 code `c` (4 bits: sign, exponent of 2 bits with bias
/// 1, mantissa of 1 bit; exponent 0 is subnormal).
static double e2m1(unsigned c) {
  unsigned exponent = c >> 1 & 3, mantissa = c & 1;
  double magnitude = exponent == 0
                         ? 0.5 * mantissa
                         : std::ldexp(1.0 + 0.5 * mantissa, int(exponent) - 1);
  return c & 8 ? -magnitude : magnitude;
}

/// MXFP4 tensor `<name>_blocks` of [..., n, k] (stored [..., n, k / 32,
/// 16]) times its E8M0 scales `<name>_scales` [..., n, k / 32], each
/// product exact.
static bool readMXFP4(const st::Reader &reader, const std::string &name,
                      const std::vector<int64_t> &shape,
                      std::vector<double> *values, std::string *err) {
  int64_t k = shape.back();
  std::vector<int64_t> blockShape(shape.begin(), shape.end() - 1);
  blockShape.push_back(k / 32);
  std::vector<int64_t> scaleShape = blockShape;
  blockShape.push_back(16);
  const st::TensorEntry *b = reader.find(name + "_blocks");
  const st::TensorEntry *s = reader.find(name + "_scales");
  for (auto [t, want, suffix] : {std::make_tuple(b, &blockShape, "_blocks"),
                                 std::make_tuple(s, &scaleShape, "_scales")}) {
    if (!t) {
      *err = "the checkpoint has no tensor " + name + suffix;
      return false;
    }
    if (t->dtype != "U8" || t->shape != *want) {
      *err = t->file + ": tensor " + t->name + " is " + t->dtype + " " +
             shapeText(t->shape) + ", expected U8 " + shapeText(*want);
      return false;
    }
  }
  if (k % 32) {
    *err = name + ": MXFP4 rows of " + std::to_string(k) +
           " inputs, not whole blocks of 32";
    return false;
  }
  std::vector<double> bytes, scales;
  if (!reader.read(*b, &bytes, err) || !reader.read(*s, &scales, err))
    return false;
  values->resize(bytes.size() * 2);
  for (size_t i = 0; i < values->size(); ++i) {
    unsigned byte = unsigned(bytes[i / 2]);
    unsigned code = i % 2 ? byte >> 4 : byte & 15;
    int exponent = int(scales[i / 32]);
    if (exponent == 255) {
      *err = s->file + ": tensor " + s->name + ": scale " +
             std::to_string(i / 32) + " is NaN (255)";
      return false;
    }
    (*values)[i] = std::ldexp(e2m1(code), exponent - 127);
  }
  return true;
}

/// E2M1 codes `t` (U8 [..., n, k / 2], two a byte, the low nibble first)
/// of weight `name`, a piece `shape` [..., n, k], each times its block
/// scale `<name>_scale` [..., n, ceil(k / b)], the exact product rounded
/// to f32 once. With `global` empty the scales are MXFP4's (llm-compressor's
/// layout): E8M0 bytes s, 2^(s - 127), b = 32. Otherwise they are NVFP4's:
/// E4M3, b = 16, and the product is multiplied by the scalar
/// `<name><global>` (Model Optimizer's `_scale_2`), or divided by it when
/// `inverse` (llm-compressor's `_global_scale`).
static bool readPackedE2M1(const st::Reader &reader, const st::TensorEntry &t,
                           const std::string &name, const std::string &global,
                           bool inverse, const std::vector<int64_t> &shape,
                           std::vector<double> *values, std::string *err) {
  bool mx = global.empty();
  const char *format = mx ? "MXFP4" : "NVFP4";
  const char *scaleType = mx ? "U8" : "F8_E4M3";
  int64_t k = shape.back(), b = mx ? 32 : 16;
  std::vector<int64_t> codeShape = shape, scaleShape = shape;
  codeShape.back() = k / 2;
  scaleShape.back() = (k + b - 1) / b;
  if (k % 2 || t.shape != codeShape) {
    *err = t.file + ": tensor " + t.name + " is U8 " + shapeText(t.shape) +
           ", expected " + format + " codes " + shapeText(codeShape);
    return false;
  }
  const st::TensorEntry *s = reader.find(name + "_scale");
  const st::TensorEntry *g = mx ? nullptr : reader.find(name + global);
  for (auto [e, suffix] :
       {std::pair(s, std::string("_scale")), std::pair(g, global)})
    if (!e && !suffix.empty()) {
      *err = "the checkpoint has no tensor " + name + suffix;
      return false;
    }
  if (s->dtype != scaleType || s->shape != scaleShape) {
    *err = s->file + ": tensor " + s->name + " is " + s->dtype + " " +
           shapeText(s->shape) + ", expected " + scaleType + " " +
           shapeText(scaleShape);
    return false;
  }
  std::vector<double> bytes, scales, globals = {1.0};
  if (!reader.read(t, &bytes, err) || !reader.read(*s, &scales, err))
    return false;
  if (g) {
    if (g->dtype == "F8_E4M3" || g->dtype == "U8" ||
        !(g->shape.empty() || g->shape == std::vector<int64_t>{1})) {
      *err = g->file + ": tensor " + g->name + " is " + g->dtype + " " +
             shapeText(g->shape) + ", expected a float scalar";
      return false;
    }
    if (!reader.read(*g, &globals, err))
      return false;
    if (inverse && globals[0] == 0) {
      *err = g->file + ": tensor " + g->name + " is zero";
      return false;
    }
  }
  for (double &scale : scales) {
    if (mx ? scale == 255 : std::isnan(scale)) {
      *err = s->file + ": tensor " + s->name + ": a scale is NaN";
      return false;
    }
    if (mx)
      scale = std::ldexp(1.0, int(scale) - 127);
  }
  values->resize(bytes.size() * 2);
  int64_t blocks = scaleShape.back();
  for (size_t i = 0; i < values->size(); ++i) {
    unsigned byte = unsigned(bytes[i / 2]);
    unsigned code = i % 2 ? byte >> 4 : byte & 15;
    double exact = e2m1(code) * scales[i / k * blocks + i % k / b];
    (*values)[i] =
        double(float(inverse ? exact / globals[0] : exact * globals[0]));
  }
  return true;
}

/// The float scales `<name>_scale` of an integer weight, of shape
/// `scaleShape`, into `scales`; `*found` is the tensor (for diagnostics).
static bool readIntScales(const st::Reader &reader, const std::string &name,
                          const std::vector<int64_t> &scaleShape,
                          std::vector<double> *scales,
                          const st::TensorEntry **found, std::string *err) {
  const st::TensorEntry *s = reader.find(name + "_scale");
  if (!s) {
    *err = "the checkpoint has no tensor " + name + "_scale";
    return false;
  }
  if ((s->dtype != "F32" && s->dtype != "F16" && s->dtype != "BF16") ||
      s->shape != scaleShape) {
    *err = s->file + ": tensor " + s->name + " is " + s->dtype + " " +
           shapeText(s->shape) + ", expected a float " + shapeText(scaleShape);
    return false;
  }
  *found = s;
  return reader.read(*s, scales, err);
}

/// Activation order "group": the group of each input of an integer weight
/// of piece `shape` [..., n, k], `<name>_g_idx` (I32 [..., k], each in
/// [0, groups)), into `groupOf`; left empty when there is no such tensor.
static bool readGroupIndices(const st::Reader &reader, const std::string &name,
                             const std::vector<int64_t> &shape, int64_t groups,
                             std::vector<double> *groupOf, std::string *err) {
  const st::TensorEntry *g = reader.find(name + "_g_idx");
  if (!g) return true;
  std::vector<int64_t> want(shape.begin(), shape.end() - 2);
  want.push_back(shape.back());
  if (g->dtype != "I32" || g->shape != want) {
    *err = g->file + ": tensor " + g->name + " is " + g->dtype + " " +
           shapeText(g->shape) + ", expected I32 " + shapeText(want);
    return false;
  }
  if (!reader.read(*g, groupOf, err)) return false;
  for (double v : *groupOf)
    if (v < 0 || v >= double(groups)) {
      *err = g->file + ": tensor " + g->name + ": a group is out of range";
      return false;
    }
  return true;
}

/// Integer codes `t` (`<name>_packed`, I32 [..., n, ceil(k / w)], w = 32 /
/// bits codes a word, the first in the lowest bits, each the value plus
/// 2^(bits - 1)) of weight `name`, a piece `shape` [..., n, k], each value times its
/// scale `<name>_scale` [..., n, ceil(k / group)] (group 0: k), the
/// product rounded to f32 once. `asymmetric`: each code minus the zero
/// point of its group and row, from `<name>_zero_point` (I32 [..., ceil(n
/// / w), groups], stored as the codes are, packed along n), rather than
/// minus 2^(bits - 1).
static bool readPackedInts(const st::Reader &reader, const st::TensorEntry &t,
                           const std::string &name, int bits, int64_t group,
                           bool asymmetric, const std::vector<int64_t> &shape,
                           std::vector<double> *values, std::string *err) {
  int64_t n = shape[shape.size() - 2], k = shape.back(), perWord = 32 / bits;
  int64_t g = group ? group : k;
  std::vector<int64_t> wordShape = shape, scaleShape = shape;
  wordShape.back() = (k + perWord - 1) / perWord;
  scaleShape.back() = (k + g - 1) / g;
  if (t.shape != wordShape) {
    *err = t.file + ": tensor " + t.name + " is I32 " + shapeText(t.shape) +
           ", expected packed codes " + shapeText(wordShape);
    return false;
  }
  std::vector<double> words, scales, groupOf, zeros;
  const st::TensorEntry *s = nullptr;
  if (!readIntScales(reader, name, scaleShape, &scales, &s, err) ||
      !reader.read(t, &words, err))
    return false;
  std::vector<int64_t> zeroShape = scaleShape;
  zeroShape[zeroShape.size() - 2] = (n + perWord - 1) / perWord;
  if (asymmetric) {
    const st::TensorEntry *z = reader.find(name + "_zero_point");
    if (!z) {
      *err = "the checkpoint has no tensor " + name + "_zero_point";
      return false;
    }
    if (z->dtype != "I32" || z->shape != zeroShape) {
      *err = z->file + ": tensor " + z->name + " is " + z->dtype + " " +
             shapeText(z->shape) + ", expected I32 " + shapeText(zeroShape);
      return false;
    }
    if (!reader.read(*z, &zeros, err)) return false;
  }
  if (!readGroupIndices(reader, name, shape, scaleShape.back(), &groupOf, err))
    return false;
  int64_t rows = int64_t(words.size()) / wordShape.back();
  values->assign(size_t(rows * k), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < k; ++c) {
      uint32_t word =
          uint32_t(int64_t(words[size_t(r * wordShape.back() + c / perWord)]));
      int64_t code = word >> (c % perWord * bits) & ((1u << bits) - 1);
      int64_t grp = groupOf.empty() ? c / g
                                    : int64_t(groupOf[size_t(r / n * k + c)]);
      double scale = scales[size_t(r * scaleShape.back() + grp)];
      if (!std::isfinite(scale)) {
        *err = s->file + ": tensor " + s->name + ": a scale is not finite";
        return false;
      }
      int64_t zero = int64_t(1) << (bits - 1);
      if (asymmetric) {
        // Row r is row i = r % n of piece r / n.
        int64_t i = r % n;
        int64_t at = (r / n * zeroShape[zeroShape.size() - 2] + i / perWord) *
                         scaleShape.back() + grp;
        uint32_t word = uint32_t(int64_t(zeros[size_t(at)]));
        zero = word >> (i % perWord * bits) & ((1u << bits) - 1);
      }
      (*values)[size_t(r * k + c)] =
          double(float(double(code - zero) * scale));
    }
  return true;
}

/// 8-bit integers `t` of weight `name` (I8, a piece `shape` [..., n, k],
/// each element its signed value), each times the scale of its row's group
/// in `<name>_scale` [..., n, ceil(k / group)] (group 0: k; the group of
/// input j from `<name>_g_idx` when there is one), rounded to f32 once.
static bool readIntValues(const st::Reader &reader, const st::TensorEntry &t,
                          const std::string &name, int64_t group,
                          const std::vector<int64_t> &shape,
                          std::vector<double> *values, std::string *err) {
  int64_t k = shape.back(), g = group ? group : k;
  int64_t groups = (k + g - 1) / g;
  std::vector<int64_t> scaleShape = shape;
  scaleShape.back() = groups;
  if (t.shape != shape) {
    *err = t.file + ": tensor " + t.name + " is I8 " + shapeText(t.shape) +
           ", expected " + shapeText(shape);
    return false;
  }
  std::vector<double> ints, scales, groupOf;
  const st::TensorEntry *s = nullptr;
  if (!readIntScales(reader, name, scaleShape, &scales, &s, err) ||
      !reader.read(t, &ints, err) ||
      !readGroupIndices(reader, name, shape, groups, &groupOf, err))
    return false;
  int64_t n = shape[shape.size() - 2];
  values->assign(ints.size(), 0.0);
  for (size_t e = 0; e < ints.size(); ++e) {
    int64_t row = int64_t(e) / k, col = int64_t(e) % k;
    int64_t grp = groupOf.empty() ? col / g
                                  : int64_t(groupOf[size_t(row / n * k + col)]);
    double scale = scales[size_t(row * groups + grp)];
    if (!std::isfinite(scale)) {
      *err = s->file + ": tensor " + s->name + ": a scale is not finite";
      return false;
    }
    (*values)[e] = double(float(ints[e] * scale));
  }
  return true;
}

/// GPTQ's Linear `<prefix>` of a piece `shape` [n, k]: element (i, j) is
/// (q - z) * s for the code q of `.qweight` (I32 [k / w, n]: word (j / w,
/// i), bits (j % w) * bits), the group g = g_idx[j] (or j / group), the
/// zero z of `.qzeros` (I32 [groups, n / w]: word (g, i / w), bits (i % w)
/// * bits) plus the format's offset, and the scale s of `.scales` [groups,
/// n], the product rounded to f32 once. AWQ's likewise, but q is in word
/// (j, i / 8) of `.qweight` [k, n / 8], and the field of element e of a
/// word's run (q's and z's) is the one AWQ's order gives it.
static bool readGPTQ(const st::Reader &reader, const std::string &prefix,
                     const LayerPlan &plan, const std::vector<int64_t> &shape,
                     std::vector<double> *values, std::string *err) {
  if (shape.size() != 2) {
    *err = prefix + ": GPTQ weights of rank " + std::to_string(shape.size()) +
           " are not read";
    return false;
  }
  int bits = plan.intBits;
  int64_t n = shape[0], k = shape[1], w = 32 / bits;
  int64_t group = plan.intGroup ? plan.intGroup : k;
  int64_t groups = (k + group - 1) / group;
  struct Want { std::string suffix; std::vector<int64_t> shape; bool ints; };
  std::vector<int64_t> words = plan.awq
                                   ? std::vector<int64_t>{k, (n + w - 1) / w}
                                   : std::vector<int64_t>{(k + w - 1) / w, n};
  std::vector<Want> wants = {
      {".qweight", words, true},
      {".scales", {groups, n}, false},
      {".qzeros", {groups, (n + w - 1) / w}, true}};
  std::vector<std::vector<double>> data(4);
  for (size_t i = 0; i < wants.size(); ++i) {
    const st::TensorEntry *t = reader.find(prefix + wants[i].suffix);
    if (!t) {
      *err = "the checkpoint has no tensor " + prefix + wants[i].suffix;
      return false;
    }
    bool ints = t->dtype == "I32";
    if (ints != wants[i].ints || t->shape != wants[i].shape) {
      *err = t->file + ": tensor " + t->name + " is " + t->dtype + " " +
             shapeText(t->shape) + ", expected " +
             (wants[i].ints ? "I32 " : "a float ") + shapeText(wants[i].shape);
      return false;
    }
    if (!reader.read(*t, &data[i], err)) return false;
  }
  std::vector<int64_t> groupOf(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) groupOf[size_t(j)] = j / group;
  if (const st::TensorEntry *g = reader.find(prefix + ".g_idx")) {
    if (g->dtype != "I32" || g->shape != std::vector<int64_t>{k}) {
      *err = g->file + ": tensor " + g->name + " is " + g->dtype + " " +
             shapeText(g->shape) + ", expected I32 [" + std::to_string(k) +
             "]";
      return false;
    }
    if (!reader.read(*g, &data[3], err)) return false;
    for (int64_t j = 0; j < k; ++j) {
      double v = data[3][size_t(j)];
      if (v < 0 || v >= double(groups)) {
        *err = g->file + ": tensor " + g->name + ": a group is out of range";
        return false;
      }
      groupOf[size_t(j)] = int64_t(v);
    }
  }
  // Element e of a word's run: field e, or AWQ's field holding it.
  const int awqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  auto field = [&](double word, int64_t e) {
    int64_t at = e;
    if (plan.awq)
      for (int p = 0; p < 8; ++p)
        if (awqOrder[p] == e) at = p;
    uint32_t u = uint32_t(int64_t(word));
    return int64_t(u >> (at * bits) & ((1u << bits) - 1));
  };
  values->assign(size_t(n * k), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) {
      int64_t g = groupOf[size_t(j)];
      int64_t q = plan.awq
                      ? field(data[0][size_t(j * ((n + w - 1) / w) + i / w)],
                              i % w)
                      : field(data[0][size_t((j / w) * n + i)], j % w);
      int64_t z = field(data[2][size_t(g * ((n + w - 1) / w) + i / w)], i % w) +
                  plan.gptqZeroOffset;
      double s = data[1][size_t(g * n + i)];
      if (!std::isfinite(s)) {
        *err = prefix + ".scales: a scale is not finite";
        return false;
      }
      (*values)[size_t(i * k + j)] = double(float(double(q - z) * s));
    }
  return true;
}

/// bitsandbytes' 4-bit weight `t` (Params4bit) of a piece `shape`, whose
/// state tensor `state` is `<name>.quant_state.bitsandbytes__<type>`: U8
/// bytes of a JSON object of quant_type, blocksize B, dtype (the weight's
/// own, returned in `dtype`) and shape, and with double quantization
/// nested_blocksize B2, nested_dtype and nested_offset. The N values of
/// the shape, in row-major order, are stored as codes in `t` (U8 [ceil(N /
/// 2), 1], element f in byte f / 2, the high nibble when f is even). Value
/// f is quant_map[code] times the scale of its block b = f / B, the
/// product rounded to f32 once, with `<name>.quant_map` F32 [16] and the
/// scale `<name>.absmax` F32 [ceil(N / B)]; with double quantization
/// `<name>.absmax` is U8 and the scale is nested_quant_map[absmax[b]] times
/// nested_absmax[b / B2] rounded to f32, plus (float) nested_offset, rounded
/// to f32 (`<name>.nested_quant_map` F32 [256], `<name>.nested_absmax` F32
/// [ceil(nblocks / B2)]).
static bool readBnb4(const st::Reader &reader, const st::TensorEntry &t,
                     const st::TensorEntry &state, const std::string &type,
                     const std::vector<int64_t> &shape, npy::DType *dtype,
                     std::vector<double> *values, std::string *err) {
  const std::string &name = t.name;
  std::string where = state.file + ": tensor " + state.name;
  if (state.dtype != "U8" || state.shape.size() != 1) {
    *err = where + " is " + state.dtype + " " + shapeText(state.shape) +
           ", expected U8 bytes of JSON";
    return false;
  }
  std::vector<double> bytes;
  if (!reader.read(state, &bytes, err)) return false;
  std::string text;
  for (double b : bytes) text += char(int(b));
  json::Value root;
  std::string why;
  if (!json::parse(text, &root, &why)) {
    *err = where + ": invalid JSON: " + why;
    return false;
  }
  if (root.kind != json::Value::Kind::Object) {
    *err = where + ": not a JSON object";
    return false;
  }
  Keys keys{root, where, err};
  std::string quantType, dtypeName;
  int64_t B = 0, B2 = 0;
  std::vector<int64_t> stated;
  if (!keys.text("quant_type", nullptr, &quantType) ||
      !keys.integer("blocksize", &B, 1) ||
      !keys.text("dtype", nullptr, &dtypeName) ||
      !keys.integers("shape", &stated))
    return false;
  if (quantType != "nf4" && quantType != "fp4")
    return keys.bad("unknown quant_type \"" + quantType + "\"");
  if (quantType != type)
    return keys.bad("quant_type \"" + quantType + "\" in the state of " +
                    type);
  if (dtypeName == "bfloat16") *dtype = npy::DType::BF16;
  else if (dtypeName == "float16") *dtype = npy::DType::F16;
  else if (dtypeName == "float32") *dtype = npy::DType::F32;
  else return keys.bad("dtype \"" + dtypeName + "\" is not read");
  if (!keys.find("shape"))
    return keys.bad("missing key \"shape\" (a list of integers)");
  if (!sameElements(stated, shape))
    return keys.bad("shape " + shapeText(stated) + ", expected " +
                    shapeText(shape));
  // Double quantization: the state's nested keys and the nested tensors.
  bool nested = keys.find("nested_blocksize") != nullptr;
  double offset = 0;
  if (nested) {
    std::string nestedType;
    if (!keys.integer("nested_blocksize", &B2, 1) ||
        !keys.text("nested_dtype", nullptr, &nestedType))
      return false;
    if (nestedType != "float32")
      return keys.bad("nested_dtype \"" + nestedType + "\" is not read");
    const json::Value *o = keys.find("nested_offset");
    if (!o || o->kind != json::Value::Kind::Number)
      return keys.bad("missing key \"nested_offset\" (a number)");
    offset = double(float(o->number));
  } else if (keys.find("nested_offset") || keys.find("nested_dtype")) {
    return keys.bad("nested_offset or nested_dtype without nested_blocksize");
  }
  int64_t N = 1;
  for (int64_t s : shape) N *= s;
  int64_t blocks = (N + B - 1) / B;
  int64_t nestedBlocks = nested ? (blocks + B2 - 1) / B2 : 0;
  if (t.dtype != "U8" || (t.shape != std::vector<int64_t>{(N + 1) / 2, 1} &&
                          t.shape != std::vector<int64_t>{(N + 1) / 2})) {
    *err = t.file + ": tensor " + name + " is " + t.dtype + " " +
           shapeText(t.shape) + ", expected the U8 codes of " +
           std::to_string(N) + " values, [" + std::to_string((N + 1) / 2) +
           ", 1]";
    return false;
  }
  struct Want { std::string suffix, dtype; int64_t size; };
  std::vector<Want> wants = {{".quant_map", "F32", 16},
                             {".absmax", nested ? "U8" : "F32", blocks}};
  if (nested) {
    wants.push_back({".nested_absmax", "F32", nestedBlocks});
    wants.push_back({".nested_quant_map", "F32", 256});
  } else {
    for (const char *suffix : {".nested_absmax", ".nested_quant_map"})
      if (reader.find(name + suffix))
        return keys.bad("no nested_blocksize, but the checkpoint has " +
                        name + suffix);
  }
  std::vector<std::vector<double>> data(wants.size());
  for (size_t i = 0; i < wants.size(); ++i) {
    const st::TensorEntry *e = reader.find(name + wants[i].suffix);
    if (!e) {
      *err = "the checkpoint has no tensor " + name + wants[i].suffix;
      return false;
    }
    if (e->dtype != wants[i].dtype ||
        e->shape != std::vector<int64_t>{wants[i].size}) {
      *err = e->file + ": tensor " + e->name + " is " + e->dtype + " " +
             shapeText(e->shape) + ", expected " + wants[i].dtype + " [" +
             std::to_string(wants[i].size) + "]";
      return false;
    }
    if (!reader.read(*e, &data[i], err)) return false;
  }
  const std::vector<double> &table = data[0], &absmax = data[1];
  std::vector<double> scales(size_t(blocks), 0.0);
  for (int64_t b = 0; b < blocks; ++b) {
    double scale = absmax[size_t(b)];
    if (nested) {
      double product =
          double(float(data[3][size_t(absmax[size_t(b)])] *
                       data[2][size_t(b / B2)]));
      scale = double(float(product + offset));
    }
    if (!std::isfinite(scale)) {
      *err = name + ": the scale of block " + std::to_string(b) +
             " is not finite";
      return false;
    }
    scales[size_t(b)] = scale;
  }
  std::vector<double> codes;
  if (!reader.read(t, &codes, err)) return false;
  values->assign(size_t(N), 0.0);
  for (int64_t f = 0; f < N; ++f) {
    unsigned byte = unsigned(codes[size_t(f / 2)]);
    unsigned code = f % 2 ? byte & 15 : byte >> 4;
    (*values)[size_t(f)] =
        double(float(table[code] * scales[size_t(f / B)]));
  }
  return true;
}

std::vector<Mat> perExpert(const npy::Array &a) {
  std::vector<Mat> ms;
  int64_t rows = a.shape[1], cols = a.shape[2];
  for (int64_t e = 0; e < a.shape[0]; ++e) {
    Mat m(rows, cols);
    std::copy(a.f.begin() + e * rows * cols, a.f.begin() + (e + 1) * rows * cols,
              m.v.begin());
    ms.push_back(std::move(m));
  }
  return ms;
}

Mat matrix(const npy::Array &a) {
  Mat m(a.shape[0], a.shape[1]);
  m.v = a.f;
  return m;
}

/// The object holding the text model's keys: `config`, or the text_config
/// of a multimodal Llama-4 checkpoint (whose tensors are under
/// language_model). Null with `err` set when that is missing.
const json::Value *textConfig(const json::Value &config,
                              const std::string &file, Model *m,
                              std::string *err) {
  const json::Value *type = config.get("model_type");
  if (!type || type->kind != json::Value::Kind::String ||
      (type->string != "llama4" && type->string != "qwen3_vl_moe" &&
       type->string != "qwen3_5_moe" && type->string != "glm4v_moe"))
    return &config;
  const json::Value *text = config.get("text_config");
  if (!text || text->kind != json::Value::Kind::Object) {
    *err = file + ": " + type->string + " without a text_config object";
    return nullptr;
  }
  bool llama4 = type->string == "llama4";
  m->type = llama4 ? "llama4_text" : type->string + "_text";
  m->prefix = llama4 ? "language_model.model.layers"
                     : "model.language_model.layers";
  return text;
}

} // namespace

bool sparseLayers(const json::Value &config, const std::string &file,
                  std::vector<int64_t> *layers, std::string *err) {
  Model m;
  const json::Value *root = textConfig(config, file, &m, err);
  if (!root) return false;
  Keys keys{*root, file, err};
  if (!readModel(keys, &m)) return false;
  layers->clear();
  for (int64_t l = 0; l < m.layers; ++l)
    if (m.sparse(l)) layers->push_back(l);
  return true;
}

/// How the FP8 weights are scaled: quant_method "fp8" (blocks of
/// weight_block_size, or one scale per tensor), or "compressed-tensors"
/// (the first config group with weights: per tensor, channel, group or
/// block).
static bool readQuantization(const json::Value &q, Keys &keys,
                             LayerPlan *p) {
  auto positive = [](const json::Value *v) {
    return v && v->isInteger && v->integer >= 1;
  };
  const json::Value *method = q.get("quant_method");
  if (method && method->string == "awq") {
    const json::Value *bits = q.get("bits");
    const json::Value *group = q.get("group_size");
    const json::Value *version = q.get("version");
    if (!bits || !bits->isInteger || bits->integer != 4 ||
        (version && version->string != "gemm" && version->string != "GEMM"))
      return keys.bad("quantization_config: AWQ other than 4 bits in the "
                      "gemm layout is not read");
    p->intBits = 4;
    p->intGroup = group && group->isInteger && group->integer > 0
                      ? group->integer : 0;
    p->awq = true;
    return true;
  }
  if (method && method->string == "gptq") {
    const json::Value *bits = q.get("bits");
    const json::Value *group = q.get("group_size");
    const json::Value *format = q.get("checkpoint_format");
    p->intBits = bits && bits->isInteger ? int(bits->integer) : 0;
    if (p->intBits != 4 && p->intBits != 8)
      return keys.bad("quantization_config: GPTQ of other than 4 or 8 bits "
                      "is not read");
    p->intGroup = group && group->isInteger && group->integer > 0
                      ? group->integer : 0;
    p->gptq = true;
    p->gptqZeroOffset = format && format->string == "gptq_v2" ? 0 : 1;
    return true;
  }
  if (method && method->string == "bitsandbytes") {
    // Its 4-bit weights carry their own states (readBnb4); LLM.int8's
    // 8-bit ones are not read.
    const json::Value *four = q.get("load_in_4bit");
    const json::Value *eight = q.get("load_in_8bit");
    if ((eight && eight->kind == json::Value::Kind::Bool && eight->boolean) ||
        !four || four->kind != json::Value::Kind::Bool || !four->boolean)
      return keys.bad("quantization_config: bitsandbytes other than "
                      "load_in_4bit is not read");
    p->bnb4 = true;
    return true;
  }
  if (method && method->string == "mxfp4") {
    if (!isGptOss(p->modelType))
      return keys.bad("quantization_config: mxfp4 is read for gpt_oss only");
    p->mxfp4 = true;
    return true;
  }
  if (method && method->string == "modelopt") {
    const json::Value *algo = q.get("quant_algo");
    std::string name = algo ? algo->string : "";
    if (algo && algo->kind == json::Value::Kind::Null)
      return true; // the KV cache's quantization only
    if (name == "NVFP4" || name == "W4A16_NVFP4") {
      p->nvfp4 = true;
      return true;
    }
    // Per module: the tensors' dtypes tell NVFP4 from FP8 per tensor.
    if (name == "MIXED_PRECISION") {
      p->nvfp4 = true;
      p->fp8 = true;
      p->fp8Suffix = "_scale";
      return true;
    }
    if (name != "FP8")
      return keys.bad("quantization_config: quant_algo \"" + name +
                      "\" is not read");
    p->fp8 = true; // one scale a tensor, <name>_scale
    p->fp8Suffix = "_scale";
    return true;
  }
  p->fp8 = true;
  if (method && method->string == "fbgemm_fp8") { // one an output channel
    p->fp8Block = {1, 0};
    p->fp8Suffix = "_scale";
    return true;
  }
  if (method && method->string == "compressed-tensors") {
    const json::Value *groups = q.get("config_groups");
    // The format is the config's, or the first config group's own.
    const json::Value *format = q.get("format");
    if (groups && !groups->object.empty() &&
        groups->object.front().second.get("format"))
      format = groups->object.front().second.get("format");
    if (format && format->string == "nvfp4-pack-quantized") {
      p->fp8 = false;
      p->nvfp4 = true; // <name>_packed, _scale and _global_scale (divides)
      p->nvfp4Compressed = true;
      return true;
    }
    if (format && format->string == "mxfp4-pack-quantized") {
      p->fp8 = false;
      p->mxfp4Compressed = true; // <name>_packed and _scale (E8M0)
      return true;
    }
    const json::Value *w = nullptr;
    if (groups)
      for (const auto &group : groups->object)
        if ((w = group.second.get("weights")) &&
            w->kind == json::Value::Kind::Object)
          break;
    if (!w || w->kind != json::Value::Kind::Object)
      return keys.bad("quantization_config has no config group of weights");
    const json::Value *strategy = w->get("strategy");
    std::string name = strategy ? strategy->string : "";
    const json::Value *group = w->get("group_size");
    // Integers: codes packed in words, or one value an I8 element
    // (int-quantized, or naive-quantized of type int: W8A8's weights).
    const json::Value *type = w->get("type");
    bool integers = type && type->kind == json::Value::Kind::String &&
                    type->string == "int";
    bool packed = format && format->string == "pack-quantized";
    bool values = format && (format->string == "int-quantized" ||
                             (format->string == "naive-quantized" && integers));
    if (packed || values) {
      const json::Value *bits = w->get("num_bits");
      const json::Value *symmetric = w->get("symmetric");
      int width = bits && bits->isInteger ? int(bits->integer) : 0;
      bool asymmetric = symmetric &&
                        symmetric->kind == json::Value::Kind::Bool &&
                        !symmetric->boolean;
      p->fp8 = false;
      if (packed) {
        p->intBits = width;
        p->intAsymmetric = asymmetric;
        if (width != 4 && width != 8)
          return keys.bad("quantization_config: pack-quantized weights of "
                          "other than 4 or 8 bits are not read");
      } else {
        p->intValues = true;
        if (width != 8)
          return keys.bad("quantization_config: int-quantized weights of "
                          "other than 8 bits are not read");
        if (asymmetric)
          return keys.bad("quantization_config: asymmetric int-quantized "
                          "weights are not read");
      }
      if (name == "group" && positive(group))
        p->intGroup = group->integer;
      else if (name != "channel")
        return keys.bad("quantization_config: integer weights of strategy \"" +
                        name + "\" are not read");
      return true;
    }
    const json::Value *block = w->get("block_structure");
    if (name == "tensor") p->fp8Block = {0, 0};
    else if (name == "channel") p->fp8Block = {1, 0};
    else if (name == "group" && positive(group))
      p->fp8Block = {1, group->integer};
    else if (name == "block" && block && block->array.size() == 2 &&
             positive(&block->array[0]) && positive(&block->array[1]))
      p->fp8Block = {block->array[0].integer, block->array[1].integer};
    else
      return keys.bad("quantization_config: weights of strategy \"" + name +
                      "\" are not read");
    p->fp8Suffix = "_scale";
    return true;
  }
  const json::Value *block = q.get("weight_block_size");
  if (block && block->kind != json::Value::Kind::Null) {
    if (block->kind != json::Value::Kind::Array || block->array.size() != 2 ||
        !positive(&block->array[0]) || !positive(&block->array[1]))
      return keys.bad("quantization_config.weight_block_size is not two "
                      "positive integers");
    p->fp8Block = {block->array[0].integer, block->array[1].integer};
    p->fp8Suffix = "_scale_inv";
  }
  return true;
}

bool planLayer(const json::Value &config, const std::string &file,
               int64_t layer, LayerPlan *plan, std::string *err) {
  if (config.kind != json::Value::Kind::Object) {
    *err = file + ": not a JSON object";
    return false;
  }
  Model m;
  const json::Value *root = textConfig(config, file, &m, err);
  if (!root) return false;
  Keys keys{*root, file, err};
  LayerPlan p;
  int64_t fs = 0;
  if (!readModel(keys, &m) || !readAct(keys, m, &p.cfg.act) ||
      !readRouting(keys, m, &p.cfg, &fs))
    return false;
  if (layer < 0 || layer >= m.layers)
    return keys.bad("layer " + std::to_string(layer) + " does not exist (" +
                    std::to_string(m.layers) + " layers)");
  if (!m.sparse(layer))
    return keys.bad("layer " + std::to_string(layer) +
                    " is dense, not a sparse MoE layer");
  p.modelType = m.type;
  p.layer = layer;
  p.d = m.d;
  p.E = m.E;
  p.f = m.f;
  p.operands = layerOperands(m, p.cfg, layer, fs);
  if (const json::Value *q = config.get("quantization_config"))
    if (!readQuantization(*q, keys, &p)) return false;
  *plan = std::move(p);
  return true;
}

void useStoredExpertLayout(const st::Reader &reader, LayerPlan *plan) {
  std::vector<Operand> &ops = plan->operands;
  // A projection's weight, llm-compressor's packed codes of it, or GPTQ's.
  auto has = [&](const std::string &name) {
    const size_t suffix = std::string(".weight").size();
    bool gptq = name.size() > suffix &&
                name.compare(name.size() - suffix, suffix, ".weight") == 0 &&
                reader.find(name.substr(0, name.size() - suffix) + ".qweight");
    return reader.find(name) || reader.find(name + "_packed") || gptq;
  };
  auto inOut = std::find_if(ops.begin(), ops.end(), [](const Operand &o) {
    return o.role == "gate_up" && o.transposed;
  });
  if (inOut != ops.end() && inOut + 1 < ops.end() &&
      !reader.find(inOut->names[0])) {
    // Llama-4's and Qwen3-VL's experts per expert, [out, in]:
    // "<p>.experts.gate_up_proj" becomes "<p>.experts.<e>.gate_proj.weight".
    std::string p = inOut->names[0].substr(
        0, inOut->names[0].size() - std::string("gate_up_proj").size());
    if (!has(p + "0.gate_proj.weight"))
      return;
    std::string block = p.substr(0, p.size() - std::string(".experts.").size());
    int64_t E = plan->E, f = plan->f, d = plan->d;
    inOut = ops.erase(inOut, inOut + 2);
    ops.insert(inOut, {experts("gate", block, "gate_proj.weight", E, {f, d}),
                       experts("up", block, "up_proj.weight", E, {f, d}),
                       experts("down", block, "down_proj.weight", E, {d, f})});
    return;
  }
  auto gate = std::find_if(ops.begin(), ops.end(), [](const Operand &o) {
    return o.role == "gate" && o.stacked;
  });
  if (gate == ops.end() || gate + 2 >= ops.end() || has(gate->names[0]))
    return;
  // names[0] is "<p>.experts.0.gate_proj.weight", or Mixtral's
  // "<layer>.block_sparse_moe.experts.0.w1.weight", whose fused layout
  // moves the whole block, router and bias too, to "<layer>.mlp".
  const std::string &first = gate->names[0];
  const std::string mixtral = ".block_sparse_moe.experts.0.w1.weight";
  std::string::size_type at = first.rfind(".experts.0.gate_proj.weight");
  bool moved = at == std::string::npos && first.size() > mixtral.size() &&
               first.compare(first.size() - mixtral.size(), mixtral.size(),
                             mixtral) == 0;
  if (at == std::string::npos && !moved) return;
  std::string layer =
      moved ? first.substr(0, first.size() - mixtral.size()) : "";
  std::string p = moved ? layer + ".mlp.experts."
                        : first.substr(0, at) + ".experts.";
  if (!reader.find(p + "gate_up_proj")) return;
  const std::string block = ".block_sparse_moe";
  if (moved)
    for (Operand &o : ops)
      if (o.role == "router" || o.role == "bias")
        o.names[0] =
            layer + ".mlp" + o.names[0].substr(layer.size() + block.size());
  int64_t E = plan->E, f = plan->f, d = plan->d;
  Operand gateUp = tensor("gate_up", p + "gate_up_proj", {E, 2 * f, d});
  Operand down = tensor("down", p + "down_proj", {E, d, f});
  gate = ops.erase(gate, gate + 3);
  gate = ops.insert(gate, down);
  ops.insert(gate, gateUp);
}

bool loadWeights(const st::Reader &reader, const LayerPlan &plan,
                 LayerWeights *weights, std::string *err) {
  weights->operands.clear();
  weights->dequantized.clear();
  bool haveType = false;
  for (const Operand &op : plan.operands) {
    npy::Array a;
    a.shape = op.shape;
    bool fp8 = false, plain = false; // the kinds of its tensors
    std::vector<int64_t> each = op.shape;
    if (op.stacked) each.erase(each.begin());
    // A transposed tensor holds each [rows, cols] matrix as [cols, rows].
    int64_t rows = each.size() >= 2 ? each[each.size() - 2] : 1;
    int64_t cols = each.back();
    if (op.transposed) std::swap(each[each.size() - 2], each.back());
    for (const std::string &name : op.names) {
      // MXFP4 unless the checkpoint holds the projection unquantized.
      if (plan.mxfp4 && (op.role == "gate_up" || op.role == "down") &&
          (reader.find(name + "_blocks") || !reader.find(name))) {
        // Stored [out, in]: the operand's own layout.
        std::vector<double> values;
        if (!readMXFP4(reader, name, op.shape, &values, err))
          return false;
        fp8 = true;
        a.dtype = weights->dtype;
        a.f.insert(a.f.end(), values.begin(), values.end());
        continue;
      }
      const st::TensorEntry *t = reader.find(name);
      if (!t && (plan.nvfp4Compressed || plan.mxfp4Compressed || plan.intBits))
        t = reader.find(name + "_packed");
      std::string gptqPrefix =
          name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0
              ? name.substr(0, name.size() - 7) : "";
      if (!t && (plan.gptq || plan.awq) && !gptqPrefix.empty() &&
          !op.transposed &&
          reader.find(gptqPrefix + ".qweight")) {
        std::vector<double> values;
        if (!readGPTQ(reader, gptqPrefix, plan, each, &values, err))
          return false;
        fp8 = true;
        a.dtype = weights->dtype;
        a.f.insert(a.f.end(), values.begin(), values.end());
        continue;
      }
      if (!t) {
        *err = "the checkpoint has no tensor " + name;
        return false;
      }
      // bitsandbytes' 4-bit weights, found by their state tensors.
      const std::string state = name + ".quant_state.bitsandbytes__";
      const st::TensorEntry *nf4 = reader.find(state + "nf4");
      const st::TensorEntry *fp4 = reader.find(state + "fp4");
      if (nf4 && fp4) {
        *err = "the checkpoint has two states of " + name + ", " + state +
               "nf4 and " + state + "fp4";
        return false;
      }
      if (nf4 || fp4) {
        if (op.transposed) {
          *err = name + ": bitsandbytes weights stored [in, out] are not read";
          return false;
        }
        const st::TensorEntry &s = nf4 ? *nf4 : *fp4;
        npy::DType type;
        std::vector<double> values;
        if (!readBnb4(reader, *t, s, nf4 ? "nf4" : "fp4", each, &type, &values,
                      err))
          return false;
        // The state's dtype is the weight's: the layer's, as a stored one.
        if (haveType && type != weights->dtype) {
          *err = s.file + ": tensor " + s.name + ": dtype " +
                 npy::dtypeName(type) + ", expected the layer's " +
                 npy::dtypeName(weights->dtype);
          return false;
        }
        if (!haveType) {
          weights->dtype = type;
          haveType = true;
        }
        fp8 = true;
        a.dtype = type;
        a.f.insert(a.f.end(), values.begin(), values.end());
        continue;
      }
      if (plan.bnb4 && t->dtype == "U8") {
        *err = t->file + ": tensor " + name + " is U8 without " + state +
               "nf4 or " + state + "fp4";
        return false;
      }
      if (plan.intValues && t->dtype == "I8" && !op.transposed) {
        std::vector<double> values;
        if (!readIntValues(reader, *t, name, plan.intGroup, each, &values,
                           err))
          return false;
        fp8 = true;
        a.dtype = weights->dtype;
        a.f.insert(a.f.end(), values.begin(), values.end());
        continue;
      }
      if (plan.intBits && t->dtype == "I32" && !op.transposed) {
        std::vector<double> values;
        if (!readPackedInts(reader, *t, name, plan.intBits, plan.intGroup,
                            plan.intAsymmetric, each, &values, err))
          return false;
        fp8 = true;
        a.dtype = weights->dtype;
        a.f.insert(a.f.end(), values.begin(), values.end());
        continue;
      }
      // 4-bit codes: llm-compressor's MXFP4, or NVFP4 (Model Optimizer's
      // global scale multiplies, llm-compressor's divides).
      if ((plan.mxfp4Compressed || plan.nvfp4) && t->dtype == "U8" &&
          !op.transposed) {
        std::string global = plan.mxfp4Compressed   ? ""
                             : plan.nvfp4Compressed ? "_global_scale"
                                                    : "_scale_2";
        std::vector<double> values;
        if (!readPackedE2M1(reader, *t, name, global, plan.nvfp4Compressed,
                            each, &values, err))
          return false;
        fp8 = true;
        a.dtype = weights->dtype;
        a.f.insert(a.f.end(), values.begin(), values.end());
        continue;
      }
      if (!sameElements(t->shape, each)) {
        *err = t->file + ": tensor " + name + " has shape " +
               shapeText(t->shape) + ", expected " + shapeText(each);
        return false;
      }
      std::vector<double> values;
      // A transposed tensor's values in the operand's layout.
      auto transpose = [&] {
        if (!op.transposed)
          return;
        std::vector<double> stored = values;
        for (size_t m = 0; m < values.size(); m += rows * cols)
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t c = 0; c < cols; ++c)
              values[m + r * cols + c] = stored[m + c * rows + r];
      };
      if (t->dtype == "F8_E4M3" && plan.fp8 && op.role != "router" &&
          !op.alwaysF32) {
        // The config's blocks are [out, in]; a tensor stored [in, out] has
        // them swapped.
        std::vector<int64_t> block = plan.fp8Block;
        if (op.transposed)
          std::swap(block[0], block[1]);
        if (!readFP8(reader, *t, block, plan.fp8Suffix, &values, err))
          return false;
        for (double &v : values) v = double(float(v));
        transpose();
        fp8 = true;
        a.dtype = weights->dtype;
        a.f.insert(a.f.end(), values.begin(), values.end());
        continue;
      }
      plain = true;
      npy::DType type;
      if (!dtypeOf(t->dtype, &type)) {
        *err = t->file + ": tensor " + name + " has dtype " + t->dtype +
               ", expected F32, F16 or BF16";
        return false;
      }
      // A correction bias counts in f32 whatever its stored dtype (the Hugging
      // Face routers add it to f32 scores); the other tensors share one.
      npy::DType expected = op.alwaysF32 || !haveType ? type : weights->dtype;
      if (type != expected) {
        *err = t->file + ": tensor " + name + " has dtype " + t->dtype +
               ", expected " + npy::dtypeName(expected);
        return false;
      }
      if (!op.alwaysF32 && !haveType) {
        weights->dtype = type;
        haveType = true;
      }
      a.dtype = op.alwaysF32 ? npy::DType::F32 : type;
      if (!reader.read(*t, &values, err)) return false;
      transpose();
      a.f.insert(a.f.end(), values.begin(), values.end());
    }
    if (fp8 && plain) {
      *err = "the tensors of " + op.names.front() + " and the others of " +
             op.role + " mix F8_E4M3 and other dtypes";
      return false;
    }
    if (op.interleaved) {  // index i < m from 2 i, m + i from 2 i + 1
      int64_t m = op.shape[1] / 2, inner = 1;
      for (size_t k = 2; k < op.shape.size(); ++k) inner *= op.shape[k];
      std::vector<double> stored = a.f;
      for (int64_t o = 0; o < op.shape[0]; ++o)
        for (int64_t i = 0; i < 2 * m; ++i)
          for (int64_t c = 0; c < inner; ++c)
            a.f[(o * 2 * m + i) * inner + c] =
                stored[(o * 2 * m + (i < m ? 2 * i : 2 * (i - m) + 1)) *
                           inner + c];
    }
    weights->operands.push_back(std::move(a));
    weights->dequantized.push_back(fp8);
  }
  return true;
}

moeref::LayerInputs layerInputs(const LayerPlan &plan,
                                const LayerWeights &weights, const Mat &x) {
  moeref::LayerInputs in;
  in.x = x;
  moeref::ExpertWeights &w = in.experts;
  w.kind = moeref::ExpertKind::Gated;
  w.act = plan.cfg.act;
  in.shared.kind = plan.cfg.shared;
  in.shared.act = plan.cfg.act;
  for (size_t i = 0; i < plan.operands.size(); ++i) {
    const std::string &role = plan.operands[i].role;
    const npy::Array &a = weights.operands[i];
    if (role == "router") {
      in.wg = matrix(a);
    } else if (role == "bias") {
      in.hasSelectionBias = true;
      in.selectionBias = a.f;
    } else if (role == "router_bias") {
      in.hasRouterBias = true;
      in.routerBias = a.f;
    } else if (role == "gate_up_bias" || role == "down_bias") {
      // Per expert: gate_up's gate half, then up; down's whole row.
      int64_t n = a.shape[1];
      for (int64_t e = 0; e < a.shape[0]; ++e) {
        auto row = a.f.begin() + e * n;
        if (role == "down_bias") {
          w.downBias.emplace_back(row, row + n);
        } else {
          w.gateBias.emplace_back(row, row + n / 2);
          w.upBias.emplace_back(row + n / 2, row + n);
        }
      }
    } else if (role == "gate") {
      w.gate = perExpert(a);
    } else if (role == "up") {
      w.up = perExpert(a);
    } else if (role == "down") {
      w.down = perExpert(a);
    } else if (role == "gate_up") {
      for (const Mat &gu : perExpert(a)) {
        Mat g, u;
        moeref::splitGateUp(gu, &g, &u);
        w.gate.push_back(g);
        w.up.push_back(u);
      }
    } else if (role == "shared_gate_up") {
      moeref::splitGateUp(matrix(a), &in.shared.gate, &in.shared.up);
    } else if (role == "shared_gate") {
      in.shared.gate = matrix(a);
    } else if (role == "shared_up") {
      in.shared.up = matrix(a);
    } else if (role == "shared_down") {
      in.shared.down = matrix(a);
    } else if (role == "shared_sigmoid_gate") {
      in.shared.gateWeight = matrix(a);
    }
  }
  return in;
}

} // namespace hf
