//===- ModelConfig.cpp - config.json of Hugging Face MoE models -----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Derives a layer's routing, experts and the sparse-layer rule from a
// config.json, one family at a time, following each family's Hugging Face
// modeling code (see Importer.h for the readings).
//
//===----------------------------------------------------------------------===//

#include "moe/Import/Importer.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <limits>

using namespace mlir::moe;
using namespace mlir::moe::import;
using llvm::StringRef;
using llvm::Twine;

//===----------------------------------------------------------------------===//
// Typed access to config keys
//===----------------------------------------------------------------------===//

namespace {
/// Reads keys of a config object. The first error is kept and later reads
/// return their fallback, so a family's reader is a straight list of reads
/// followed by one check.
class ConfigReader {
public:
  ConfigReader(const llvm::json::Object &object, StringRef path)
      : object(object), path(path.str()) {}

  /// The key's value; null counts as absent (Python's None).
  const llvm::json::Value *find(StringRef key) const {
    const llvm::json::Value *value = object.get(key);
    if (!value || value->kind() == llvm::json::Value::Null)
      return nullptr;
    return value;
  }

  /// Whether the key is present with the value null.
  bool isNull(StringRef key) const {
    const llvm::json::Value *value = object.get(key);
    return value && value->kind() == llvm::json::Value::Null;
  }

  /// An integer >= `min`; required unless `fallback` is given.
  int64_t getInt(StringRef key, std::optional<int64_t> fallback, int64_t min) {
    const llvm::json::Value *value = find(key);
    if (!value) {
      if (!fallback)
        missing(key, "an integer");
      return fallback.value_or(min);
    }
    std::optional<int64_t> result = value->getAsInteger();
    if (!result) {
      mistyped(key, "an integer", *value);
      return fallback.value_or(min);
    }
    if (*result < min) {
      fail("key \"" + key + "\" must be at least " + Twine(min) + ", found " +
           Twine(*result));
      return min;
    }
    return *result;
  }

  bool getBool(StringRef key, bool fallback) {
    const llvm::json::Value *value = find(key);
    if (!value)
      return fallback;
    if (std::optional<bool> result = value->getAsBoolean())
      return *result;
    mistyped(key, "a boolean", *value);
    return fallback;
  }

  /// A finite number > 0 that can only be `only` (the one value moe-import
  /// supports): another is an error saying `why`.
  void requireOnly(StringRef key, double fallback, double only,
                   const Twine &why) {
    double value = getPositive(key, fallback);
    if (!failed() && value != only)
      fail(key + " = " + llvm::formatv("{0}", llvm::json::Value(value)).str() +
           " is not supported (" + why + ")");
  }

  /// A finite number > 0.
  double getPositive(StringRef key, double fallback) {
    const llvm::json::Value *value = find(key);
    if (!value)
      return fallback;
    std::optional<double> result = value->getAsNumber();
    if (!result) {
      mistyped(key, "a number", *value);
      return fallback;
    }
    if (!std::isfinite(*result) || *result <= 0.0) {
      fail("key \"" + key + "\" must be a finite number > 0, found " +
           std::to_string(*result));
      return fallback;
    }
    return *result;
  }

  std::string getString(StringRef key, std::optional<StringRef> fallback) {
    const llvm::json::Value *value = find(key);
    if (!value) {
      if (!fallback)
        missing(key, "a string");
      return fallback.value_or("").str();
    }
    if (std::optional<StringRef> result = value->getAsString())
      return result->str();
    mistyped(key, "a string", *value);
    return fallback.value_or("").str();
  }

  /// A list whose items `convert` reads (std::nullopt: the wrong type,
  /// which `what` names); absent means empty.
  template <typename T, typename Convert>
  std::vector<T> getList(StringRef key, StringRef what, Convert convert) {
    std::vector<T> result;
    const llvm::json::Value *value = find(key);
    if (!value)
      return result;
    const llvm::json::Array *array = value->getAsArray();
    if (!array) {
      mistyped(key, what, *value);
      return result;
    }
    for (const llvm::json::Value &item : *array) {
      std::optional<T> converted = convert(item);
      if (!converted) {
        mistyped(key, what, item);
        return {};
      }
      result.push_back(std::move(*converted));
    }
    return result;
  }
  std::vector<int64_t> getIntList(StringRef key) {
    return getList<int64_t>(
        key, "a list of integers",
        [](const llvm::json::Value &item) { return item.getAsInteger(); });
  }
  std::vector<std::string> getStringList(StringRef key) {
    return getList<std::string>(
        key, "a list of strings",
        [](const llvm::json::Value &item) -> std::optional<std::string> {
          if (std::optional<StringRef> text = item.getAsString())
            return text->str();
          return std::nullopt;
        });
  }

  /// An object, or null when absent.
  const llvm::json::Object *getObject(StringRef key) {
    const llvm::json::Value *value = find(key);
    if (!value)
      return nullptr;
    if (const llvm::json::Object *result = value->getAsObject())
      return result;
    mistyped(key, "an object", *value);
    return nullptr;
  }

  /// An object that must be there: its absence is an error that says
  /// `what` it holds (empty: nothing more than "an object").
  const llvm::json::Object *requireObject(StringRef key, StringRef what) {
    const llvm::json::Object *result = getObject(key);
    if (!result && !failed())
      missing(key, what.empty() ? "an object" : ("an object: " + what).str());
    return result;
  }

  /// A reader of `value`, the object under `key`, whose errors name the
  /// key's path.
  ConfigReader nested(const llvm::json::Object &value, StringRef key) const {
    return ConfigReader(value, path + "." + key.str());
  }
  /// Takes over the first error of a nested reader.
  void adopt(const ConfigReader &inner) {
    if (error.empty())
      error = inner.error;
  }

  /// Records an error about the file (the first one wins).
  void fail(const Twine &message) {
    if (error.empty())
      error = path + ": " + message.str();
  }
  bool failed() const { return !error.empty(); }
  /// The file and key path that errors name.
  StringRef where() const { return path; }
  llvm::Error takeError() {
    if (error.empty())
      return llvm::Error::success();
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
  }

private:
  static StringRef describe(const llvm::json::Value &value) {
    switch (value.kind()) {
    case llvm::json::Value::Null:
      return "null";
    case llvm::json::Value::Boolean:
      return "a boolean";
    case llvm::json::Value::Number:
      return "a number";
    case llvm::json::Value::String:
      return "a string";
    case llvm::json::Value::Array:
      return "an array";
    case llvm::json::Value::Object:
      return "an object";
    }
    return "a value";
  }
  void missing(StringRef key, StringRef what) {
    fail("missing key \"" + key + "\" (" + what + ")");
  }
  void mistyped(StringRef key, StringRef what, const llvm::json::Value &found) {
    // The number as JSON writes it: 1 rather than 1.000000, 1e+308 rather
    // than its 309 digits.
    std::string detail;
    if (found.kind() == llvm::json::Value::Number)
      detail = " (" + llvm::formatv("{0}", found).str() + ")";
    fail("key \"" + key + "\" must be " + what + ", found " + describe(found) +
         detail);
  }

  const llvm::json::Object &object;
  std::string path;
  std::string error;
};

/// What differs between families in the keys that size a layer.
struct FamilyInfo {
  StringRef modelType;
  Family family;
  StringRef expertsKey; // number of routed experts
  StringRef sizeKey;    // inner size of a routed expert
  StringRef topKKey = "num_experts_per_tok";
};
} // namespace

static const FamilyInfo kFamilies[] = {
    {"mixtral", Family::Mixtral, "num_local_experts", "intermediate_size"},
    // MiniMax-M2's sparse block is Mixtral's (MiniMaxM2SparseMoeBlock
    // derives from MixtralSparseMoeBlock: its tensor names and config keys)
    // with another router: sigmoid scores and a selection bias. No preset
    // of spec section 9 names that routing.
    {"minimax_m2", Family::Mixtral, "num_local_experts", "intermediate_size"},
    // MiniMax-Text-01 and MiniMax-M1 (model type minimax): Mixtral's sparse
    // block and router (MiniMaxSparseMoeBlock derives from
    // MixtralSparseMoeBlock) in every layer, beside lightning attention.
    {"minimax", Family::Mixtral, "num_local_experts", "intermediate_size"},
    {"qwen2_moe", Family::Qwen2Moe, "num_experts", "moe_intermediate_size"},
    // Qwen3-Next's sparse block is Qwen2-MoE's (Qwen3NextSparseMoeBlock
    // derives from it): a gated shared expert; norm_topk_prob defaults to
    // true.
    {"qwen3_next", Family::Qwen2Moe, "num_experts", "moe_intermediate_size"},
    // Qwen3.5-MoE's sparse block is Qwen3-Next's (a gated shared expert) in
    // every layer, always renormalized; its text model's keys are in
    // text_config, and its released experts are fused.
    {"qwen3_5_moe", Family::Qwen2Moe, "num_experts", "moe_intermediate_size"},
    {"qwen3_moe", Family::Qwen3Moe, "num_experts", "moe_intermediate_size"},
    // Qwen3-VL-MoE's text model routes as Qwen3-MoE (always renormalized);
    // its experts are fused and stored [in, out], as Llama-4's.
    {"qwen3_vl_moe", Family::Qwen3Moe, "num_experts", "moe_intermediate_size"},
    {"olmoe", Family::Olmoe, "num_experts", "intermediate_size"},
    // FlexOlmo's sparse block is OLMoE's (FlexOlmoSparseMoeBlock derives
    // from OlmoeSparseMoeBlock), in every layer.
    {"flex_olmo", Family::Olmoe, "num_experts", "intermediate_size"},
    // Jamba: its own block (JambaSparseMoeBlock) under feed_forward, with a
    // router named `router`; no preset names its routing, and the family
    // only fills the field.
    {"jamba", Family::Olmoe, "num_experts", "intermediate_size"},
    {"granitemoe", Family::GraniteMoe, "num_local_experts",
     "intermediate_size"},
    // GraniteMoeShared and GraniteMoeHybrid (Granite 4.0): Granite's block
    // in every layer, plus a shared_mlp stored fused as Granite's experts.
    {"granitemoeshared", Family::GraniteMoe, "num_local_experts",
     "intermediate_size"},
    {"granitemoehybrid", Family::GraniteMoe, "num_local_experts",
     "intermediate_size"},
    {"deepseek_v2", Family::DeepseekV2, "n_routed_experts",
     "moe_intermediate_size"},
    {"deepseek_v3", Family::DeepseekV3, "n_routed_experts",
     "moe_intermediate_size"},
    // GLM-4.5's sparse block is DeepSeek-V3's (its Hugging Face router is
    // DeepseekV3TopkRouter); only its config's defaults differ. So is
    // dots.llm1's (Dots1MoE derives from DeepseekV3MoE).
    {"glm4_moe", Family::DeepseekV3, "n_routed_experts",
     "moe_intermediate_size"},
    {"dots1", Family::DeepseekV3, "n_routed_experts", "moe_intermediate_size"},
    // GLM-4.5V's text model: GLM-4.5's block (Glm4vMoeTextMoE derives from
    // Glm4MoeMoE) under Glm4vMoeTextConfig, which derives from Glm4MoeConfig;
    // its keys are in text_config.
    {"glm4v_moe", Family::DeepseekV3, "n_routed_experts",
     "moe_intermediate_size"},
    // Kimi K2 is DeepSeek-V3's architecture under its own model type (its
    // config class is DeepSeek's DeepseekV3Config).
    {"kimi_k2", Family::DeepseekV3, "n_routed_experts",
     "moe_intermediate_size"},
    // DeepSeek-V3.2 adds sparse attention to DeepSeek-V3 and keeps its
    // sparse block; GLM-4.7-Flash (glm4_moe_lite) and GLM-5 (glm_moe_dsa)
    // share it. Their config classes say which layers are sparse in
    // mlp_layer_types and route as DeepSeek-V3 without routing keys.
    {"deepseek_v32", Family::DeepseekV3, "n_routed_experts",
     "moe_intermediate_size"},
    {"glm4_moe_lite", Family::DeepseekV3, "n_routed_experts",
     "moe_intermediate_size"},
    {"glm_moe_dsa", Family::DeepseekV3, "n_routed_experts",
     "moe_intermediate_size"},
    // ERNIE-4.5-MoE: its own block (Ernie4_5_MoeSparseMoeBlock) with
    // DeepSeek-V2's tensor names (an ungated shared_experts FFN); no preset
    // names its routing, and the family only fills the field.
    {"ernie4_5_moe", Family::DeepseekV2, "moe_num_experts",
     "moe_intermediate_size", "moe_k"},
    // LFM2-MoE: its own block (Lfm2MoeSparseMoeBlock) with Mixtral's expert
    // names; no preset names its routing, and the family only fills the
    // field.
    {"lfm2_moe", Family::Mixtral, "num_experts", "moe_intermediate_size"},
    // Llama-4: its own block (Llama4TextMoe), which no preset names; the
    // family only fills the field. llama4 is the multimodal checkpoint,
    // whose text model's keys are under text_config.
    {"llama4", Family::Mixtral, "num_local_experts", "intermediate_size"},
    {"llama4_text", Family::Mixtral, "num_local_experts", "intermediate_size"},
    // DBRX: its own block (DbrxFFN) under ffn, which routes as Mixtral's when
    // it divides the top-k weights by their sum; its block's keys are in
    // ffn_config.
    {"dbrx", Family::Mixtral, "moe_num_experts", "ffn_hidden_size",
     "moe_top_k"},
    // GPT-OSS: its own block (GptOssMLP), whose routing is Granite's (the
    // top k of the logits, a softmax over them) with the router's bias,
    // and whose experts have biases and a clamped SwiGLU; no preset names
    // it, and the family only fills the field.
    {"gpt_oss", Family::GraniteMoe, "num_local_experts", "intermediate_size"},
};

StringRef mlir::moe::import::supportedModelTypes() {
  return "mixtral, minimax, minimax_m2, qwen2_moe, qwen3_moe, qwen3_next, "
         "qwen3_vl_moe, qwen3_5_moe, olmoe, flex_olmo, granitemoe, "
         "granitemoeshared, granitemoehybrid, jamba, deepseek_v2, "
         "deepseek_v3, deepseek_v32, kimi_k2, glm4_moe, glm4v_moe, "
         "glm4_moe_lite, glm_moe_dsa, dots1, ernie4_5_moe, lfm2_moe, "
         "llama4, "
         "llama4_text, dbrx, gpt_oss";
}

/// The inner size of `count` shared experts of inner size `size` (key
/// `key`), when it fits in 64 bits; else the reader fails.
static int64_t sharedExpertsSize(ConfigReader &reader, StringRef key,
                                 int64_t count, int64_t size) {
  int64_t product = 0;
  if (llvm::MulOverflow(count, size, product)) {
    reader.fail("key \"" + key + "\" = " + Twine(count) +
                " times the experts' inner size " + Twine(size) + " overflows");
    return 0;
  }
  return product;
}

static bool isQwen(Family f) {
  return f == Family::Qwen2Moe || f == Family::Qwen3Moe;
}
static bool isDeepSeek(Family f) {
  return f == Family::DeepseekV2 || f == Family::DeepseekV3;
}

//===----------------------------------------------------------------------===//
// Family readers
//===----------------------------------------------------------------------===//

static void readActivation(ConfigReader &reader, ModelConfig &m) {
  // DBRX names it in ffn_config's ffn_act_fn, {"name": ...} (default silu).
  std::string key = m.isDbrx() ? "ffn_act_fn.name" : "hidden_act";
  std::string act = "silu";
  if (!m.isDbrx()) {
    act = reader.getString("hidden_act", StringRef("silu"));
  } else if (const llvm::json::Object *fn = reader.getObject("ffn_act_fn")) {
    ConfigReader inner = reader.nested(*fn, "ffn_act_fn");
    act = inner.getString("name", StringRef("silu"));
    reader.adopt(inner);
  }
  std::optional<Activation> parsed =
      llvm::StringSwitch<std::optional<Activation>>(act)
          .Cases({"silu", "swish"}, Activation::Silu)
          .Case("gelu", Activation::GeluErf)
          .Cases({"gelu_new", "gelu_pytorch_tanh", "gelu_fast"},
                 Activation::GeluTanh)
          .Case("relu", Activation::Relu)
          .Default(std::nullopt);
  if (!parsed && !reader.failed())
    reader.fail("unsupported " + key + " \"" + act +
                "\" (supported: silu, swish, gelu, gelu_new, "
                "gelu_pytorch_tanh, gelu_fast, relu)");
  m.act = parsed.value_or(Activation::Silu);
}

/// DeepSeek's expert groups: n_group groups of E / n_group experts, of
/// which topk_group are kept. `fallback` and `topkFallback` are the config
/// class's defaults of the two keys, when it has them.
static void readGroups(ConfigReader &reader, ModelConfig &m,
                       int64_t minPerGroup, std::optional<int64_t> fallback,
                       std::optional<int64_t> topkFallback) {
  m.groups = reader.getInt("n_group", fallback, 1);
  m.topkGroup = reader.getInt("topk_group", topkFallback, 1);
  if (reader.failed())
    return;
  if (m.numExperts % m.groups != 0)
    return reader.fail("n_group = " + Twine(m.groups) +
                       " does not divide the " + Twine(m.numExperts) +
                       " experts (n_routed_experts)");
  int64_t perGroup = m.numExperts / m.groups;
  if (perGroup < minPerGroup)
    return reader.fail("n_group = " + Twine(m.groups) + " leaves " +
                       Twine(perGroup) + " expert(s) per group; " +
                       m.modelType + " scores a group by its " +
                       Twine(minPerGroup) + " best experts");
  if (*m.topkGroup > m.groups)
    return reader.fail("topk_group = " + Twine(*m.topkGroup) +
                       " exceeds n_group = " + Twine(m.groups));
  if (m.topK > *m.topkGroup * perGroup)
    return reader.fail("num_experts_per_tok = " + Twine(m.topK) +
                       " exceeds the " + Twine(*m.topkGroup * perGroup) +
                       " experts of the topk_group = " + Twine(*m.topkGroup) +
                       " kept groups");
}

/// mlp_layer_types: "dense" or "sparse" for each layer; the sparse ones
/// become moe_layers.
static void readMlpLayerTypes(ConfigReader &reader, ModelConfig &m) {
  std::vector<std::string> types = reader.getStringList("mlp_layer_types");
  if (reader.failed())
    return;
  if (static_cast<int64_t>(types.size()) != m.numLayers)
    return reader.fail("mlp_layer_types has " + Twine(types.size()) +
                       " entries, expected one a layer (num_hidden_layers = " +
                       Twine(m.numLayers) + ")");
  std::vector<int64_t> sparse;
  for (auto [layer, type] : llvm::enumerate(types)) {
    if (type != "dense" && type != "sparse")
      return reader.fail("mlp_layer_types[" + Twine(layer) + "] is \"" + type +
                         "\", expected \"dense\" or \"sparse\"");
    if (type == "sparse")
      sparse.push_back(static_cast<int64_t>(layer));
  }
  m.moeLayers = std::move(sparse);
  m.moeLayersKey = "mlp_layer_types";
}

static void readDeepSeek(ConfigReader &reader, ModelConfig &m) {
  bool v3 = m.family == Family::DeepseekV3;
  // glm4_moe and dots1: their config classes' defaults; their modeling
  // code has no moe_layer_freq and always routes as DeepSeek-V3 (the keys
  // scoring_func and topk_method are not read). Dots1Config defaults
  // norm_topk_prob to false and n_group and topk_group to 1.
  bool glm = m.modelType == "glm4_moe" || m.modelType == "glm4v_moe";
  bool dots = m.modelType == "dots1";
  // deepseek_v32, glm_moe_dsa and glm4_moe_lite: their config classes
  // (transformers' DeepseekV32Config, GlmMoeDsaConfig, Glm4MoeLiteConfig)
  // route as DeepSeek-V3 too, list their sparse layers in mlp_layer_types
  // (by default the first first_k_dense_replace layers dense, 3; or only
  // layer 0, for glm4_moe_lite) and default to one shared expert.
  bool v32 = m.modelType == "deepseek_v32";
  bool dsa = v32 || m.modelType == "glm_moe_dsa";
  bool flash = m.modelType == "glm4_moe_lite";
  bool lite = dsa || flash;
  // kimi_k2: DeepSeek's own DeepseekV3Config, whose routing defaults are
  // DeepSeek-V2's (softmax, greedy): its releases give every routing key,
  // and moe-import asks for them rather than assume either class's.
  bool kimi = m.modelType == "kimi_k2";
  bool fixedRouter = glm || dots || lite;
  if (kimi)
    for (StringRef key :
         {"scoring_func", "topk_method", "n_group", "topk_group",
          "routed_scaling_factor", "norm_topk_prob"})
      if (!reader.failed() && !reader.find(key))
        reader.fail("missing key \"" + key +
                    "\" (kimi_k2's config class has DeepSeek-V2's routing "
                    "defaults, so moe-import reads its routing from the "
                    "config only)");
  // n_shared_experts = null means none (Python None); an absent key is an
  // error, since the config classes disagree on its default, except for
  // the classes of mlp_layer_types, which all default to one.
  int64_t sharedExperts =
      reader.isNull("n_shared_experts")
          ? 0
          : reader.getInt("n_shared_experts",
                          lite ? std::optional<int64_t>(1) : std::nullopt, 0);
  m.sharedSize = sharedExpertsSize(reader, "n_shared_experts", sharedExperts,
                                   m.expertSize);
  // Glm4MoeLiteConfig has no first_k_dense_replace: layer 0 is dense.
  int64_t denseDefault = glm ? 1 : dsa ? 3 : 0;
  m.firstKDenseReplace =
      flash ? 1 : reader.getInt("first_k_dense_replace", denseDefault, 0);
  if (lite && reader.find("mlp_layer_types"))
    readMlpLayerTypes(reader, m);
  m.moeLayerFreq = fixedRouter ? 1 : reader.getInt("moe_layer_freq", 1, 1);
  double factor = reader.getPositive("routed_scaling_factor",
                                     flash                         ? 1.8
                                     : v3 && (!fixedRouter || dsa) ? 2.5
                                                                   : 1.0);
  bool norm = reader.getBool("norm_topk_prob", v3 && !dots);
  StringRef defaultScoring = v3 ? "sigmoid" : "softmax";
  StringRef defaultMethod = v3 ? "noaux_tc" : "greedy";
  std::string scoring = fixedRouter
                            ? defaultScoring.str()
                            : reader.getString("scoring_func", defaultScoring);
  std::string method = fixedRouter
                           ? defaultMethod.str()
                           : reader.getString("topk_method", defaultMethod);
  if (reader.failed())
    return;

  if (!v3) {
    // DeepSeek-V2: softmax; greedy or group-limited greedy; the published
    // code renormalizes (k > 1 and norm_topk_prob) or else scales.
    if (scoring != "softmax")
      return reader.fail("scoring_func \"" + scoring +
                         "\" is not supported for deepseek_v2 (supported: "
                         "softmax)");
    if (method == "group_limited_greedy") {
      m.selection = Selection::GroupedTopK;
      m.groupScore = GroupScore::Max;
      readGroups(reader, m, 1, std::nullopt, std::nullopt);
    } else if (method != "greedy") {
      return reader.fail("topk_method \"" + method +
                         "\" is not supported for deepseek_v2 (supported: "
                         "greedy, group_limited_greedy)");
    }
    m.renormalize = norm && m.topK > 1;
    m.scale = m.renormalize ? 1.0 : factor;
    return;
  }
  // DeepSeek-V3: sigmoid scores plus the correction bias for selection,
  // groups scored by their two best experts, always scaled.
  if (scoring != "sigmoid")
    return reader.fail("scoring_func \"" + scoring +
                       "\" is not supported for deepseek_v3 (supported: "
                       "sigmoid)");
  if (method != "noaux_tc")
    return reader.fail("topk_method \"" + method +
                       "\" is not supported for deepseek_v3 (supported: "
                       "noaux_tc)");
  m.score = ScoreFunc::Sigmoid;
  m.selection = Selection::GroupedTopK;
  m.groupScore = GroupScore::SumTop2;
  m.selectionBias = true;
  // Dots1Config, Glm4MoeLiteConfig and GlmMoeDsaConfig default to one
  // group, DeepseekV32Config to 8 groups of which 4 are kept.
  std::optional<int64_t> groups, kept;
  if (dots || (lite && !v32))
    groups = kept = 1;
  if (v32) {
    groups = 8;
    kept = 4;
  }
  readGroups(reader, m, 2, groups, kept);
  m.renormalize = norm;
  m.scale = factor;
}

/// Llama4TextMoe: the top k of the logits, each chosen expert's input scaled
/// by the sigmoid of its logit (no renormalization), an ungated shared
/// expert of the routed experts' size, and the sparse layers listed in
/// moe_layers or every interleave_moe_layer_step-th one.
static void readLlama4(ConfigReader &reader, ModelConfig &m) {
  m.score = ScoreFunc::Sigmoid;
  m.apply = ApplyWeight::Input;
  m.sharedSize = m.expertSize;
  m.hasPreset = false;
  if (reader.find("moe_layers")) {
    m.moeLayers = reader.getIntList("moe_layers");
    for (int64_t layer : *m.moeLayers)
      if (layer < 0 || layer >= m.numLayers)
        return reader.fail(
            "moe_layers names layer " + Twine(layer) +
            ", outside [0, num_hidden_layers = " + Twine(m.numLayers) + ")");
    return;
  }
  m.moeLayerFreq = reader.getInt("interleave_moe_layer_step", 1, 1);
}

/// Ernie4_5_MoeSparseMoeBlock: softmax scores; the top k of the scores plus
/// the block's moe_statics.e_score_correction_bias; the unbiased scores of
/// the chosen experts, always renormalized; an ungated shared FFN of
/// moe_num_shared_experts * moe_intermediate_size. Layer l is sparse when
/// (l + 1) % moe_layer_interval == 0 and moe_layer_start_index <= l <=
/// moe_layer_end_index (-1: the last layer). The defaults are
/// Ernie4_5_MoeConfig's.
static void readErnie(ConfigReader &reader, ModelConfig &m) {
  m.score = ScoreFunc::Softmax;
  m.selectionBias = true;
  m.renormalize = true;
  m.sharedSize = sharedExpertsSize(
      reader, "moe_num_shared_experts",
      reader.getInt("moe_num_shared_experts", 2, 0), m.expertSize);
  m.firstKDenseReplace = reader.getInt("moe_layer_start_index", 1, 0);
  int64_t end = reader.getInt("moe_layer_end_index", -1, -1);
  m.moeLayerEnd = end == -1 ? m.numLayers - 1 : end;
  m.moeLayerFreq = reader.getInt("moe_layer_interval", 1, 1);
  if (reader.getBool("use_bias", false) && !reader.failed())
    reader.fail("use_bias = true is not supported (it adds a bias to every "
                "projection of the experts, which moe layers do not have)");
  m.hasPreset = false;
}

/// JambaSparseMoeBlock: softmax scores, the top k, never renormalized nor
/// scaled; layer l is sparse when l % expert_layer_period ==
/// expert_layer_offset. The defaults are JambaConfig's.
static void readJamba(ConfigReader &reader, ModelConfig &m) {
  m.score = ScoreFunc::Softmax;
  m.renormalize = false;
  m.moeLayerFreq = reader.getInt("expert_layer_period", 2, 1);
  m.moeLayerOffset = reader.getInt("expert_layer_offset", 1, 0);
  if (!reader.failed() && m.moeLayerOffset >= m.moeLayerFreq)
    reader.fail(
        "expert_layer_offset = " + Twine(m.moeLayerOffset) +
        " must be less than expert_layer_period = " + Twine(m.moeLayerFreq));
  m.hasPreset = false;
}

/// Lfm2MoeSparseMoeBlock: sigmoid scores; with use_expert_bias, the top k
/// of the scores plus expert_bias (else of the scores); the unbiased scores
/// of the chosen experts, renormalized with norm_topk_prob, times
/// routed_scaling_factor; the first num_dense_layers layers dense. The
/// defaults are Lfm2MoeConfig's. Its MLPs are always SiLU-gated.
static void readLfm2(ConfigReader &reader, ModelConfig &m) {
  m.score = ScoreFunc::Sigmoid;
  m.selectionBias = reader.getBool("use_expert_bias", true);
  m.renormalize = reader.getBool("norm_topk_prob", true);
  m.scale = reader.getPositive("routed_scaling_factor", 1.0);
  m.firstKDenseReplace = reader.getInt("num_dense_layers", 2, 0);
  m.act = Activation::Silu;
  m.hasPreset = false;
}

/// DbrxFFN: softmax scores, the top k divided by their p-norm for p =
/// moe_normalize_expert_weights (DbrxFFNConfig's default 1; null: not
/// divided). The scores are positive, so p = 1 divides by their sum: the
/// renormalization of the mixtral preset. Other norms are refused. `reader`
/// reads ffn_config.
static void readDbrx(ConfigReader &reader, ModelConfig &m) {
  if (reader.getBool("uniform_expert_assignment", false))
    return reader.fail("uniform_expert_assignment = true is not supported "
                       "(it replaces the router's choice by a fixed "
                       "assignment)");
  m.score = ScoreFunc::Softmax;
  m.renormalize = !reader.isNull("moe_normalize_expert_weights");
  if (!m.renormalize) {
    m.matchesPreset = false;
    m.presetNote = "moe_normalize_expert_weights = null keeps the raw top-k "
                   "weights, which the mixtral preset renormalizes";
    return;
  }
  reader.requireOnly("moe_normalize_expert_weights", 1.0, 1.0,
                     "the top-k weights are divided by their sum, 1, or not "
                     "at all, null");
}

/// GptOssMLP: the top k of the router's logits (its bias included), a
/// softmax over them; experts with biases gated by GPT-OSS's clamped
/// SwiGLU, whose limit is swiglu_limit (GptOssConfig's default 7, the only
/// value the swiglu_oai activation has); every layer sparse. hidden_act is
/// not read.
static void readGptOss(ConfigReader &reader, ModelConfig &m) {
  m.score = ScoreFunc::Logits;
  m.weights = CombineWeights::SoftmaxSelected;
  m.act = Activation::SwigluOai;
  m.hasPreset = false;
  reader.requireOnly("swiglu_limit", 7.0, 7.0,
                     "the swiglu_oai activation clamps at 7, as the released "
                     "GPT-OSS models do");
}

static void readFamily(ConfigReader &reader, ModelConfig &m) {
  if (m.isGptOss())
    return readGptOss(reader, m);
  if (m.isDbrx())
    return readDbrx(reader, m);
  if (m.isLlama4())
    return readLlama4(reader, m);
  if (m.isLfm2())
    return readLfm2(reader, m);
  if (m.isErnie())
    return readErnie(reader, m);
  if (m.isJamba())
    return readJamba(reader, m);
  switch (m.family) {
  case Family::Mixtral:
    m.renormalize = true;
    if (m.modelType == "minimax_m2") {
      // MiniMaxM2TopKRouter: sigmoid scores, the top k of scores plus
      // e_score_correction_bias, the unbiased scores renormalized. Its
      // config has no routing keys (a scoring_func or norm_topk_prob in the
      // file is not read), and no preset names this routing.
      m.score = ScoreFunc::Sigmoid;
      m.selectionBias = true;
      m.hasPreset = false;
    }
    return;
  case Family::GraniteMoe:
    m.score = ScoreFunc::Logits;
    m.weights = CombineWeights::SoftmaxSelected;
    // GraniteMoeShared and GraniteMoeHybrid (Granite 4.0) add the
    // ungated shared_mlp of every layer, which the granitemoe preset does
    // not have; GraniteMoeHybrid builds it whatever its size (0: no
    // output).
    if (m.modelType != "granitemoe") {
      int64_t fs =
          reader.getInt("shared_intermediate_size",
                        m.modelType == "granitemoehybrid" ? 1024 : 0, 0);
      // Stored fused: 2 * shared_intermediate_size rows.
      if (fs > std::numeric_limits<int64_t>::max() / 2)
        reader.fail("key \"shared_intermediate_size\" = " + Twine(fs) +
                    " is too large (its fused tensor has twice as many rows)");
      m.sharedSize = reader.failed() ? 0 : fs;
      m.hasPreset = m.sharedSize == 0;
    }
    return;
  case Family::Olmoe:
    m.renormalize = reader.getBool("norm_topk_prob", false);
    if (m.renormalize) {
      m.matchesPreset = false;
      m.presetNote = "norm_topk_prob = true renormalizes the top-k weights, "
                     "which the olmoe preset does not";
    }
    return;
  case Family::Qwen2Moe:
  case Family::Qwen3Moe:
    // Qwen3VLMoeTextSparseMoeBlock and Qwen3_5MoeSparseMoeBlock always
    // renormalize: they do not read norm_topk_prob. Qwen3.5-MoE's config
    // has neither decoder_sparse_step nor mlp_only_layers: every layer is
    // sparse.
    m.renormalize =
        m.isQwen3VL() || m.isQwen35() ||
        reader.getBool("norm_topk_prob", m.modelType == "qwen3_next");
    if (!m.isQwen35()) {
      m.decoderSparseStep = reader.getInt("decoder_sparse_step", 1, 1);
      m.mlpOnlyLayers = reader.getIntList("mlp_only_layers");
    }
    if (m.family == Family::Qwen2Moe) {
      m.sharedSize = reader.getInt(
          "shared_expert_intermediate_size",
          m.isQwen35() ? std::optional<int64_t>(512) : std::nullopt, 1);
      m.sharedGate = true;
    } else if (!m.renormalize) {
      m.matchesPreset = false;
      m.presetNote = "norm_topk_prob = false (or absent) keeps the raw top-k "
                     "weights, which the qwen3_moe preset renormalizes";
    }
    return;
  case Family::DeepseekV2:
  case Family::DeepseekV3:
    return readDeepSeek(reader, m);
  case Family::Switch:
    break;
  }
  reader.fail("model family without a reader");
}

/// The weights' scheme of llm-compressor's quantization_config
/// (quant_method "compressed-tensors"): FP8 E4M3 scaled per tensor,
/// channel, group or block (formats float-quantized and naive-quantized),
/// NVFP4 (format nvfp4-pack-quantized), MXFP4 (mxfp4-pack-quantized),
/// integers of 4 or 8 bits scaled per channel or group, symmetric or with
/// zero points (pack-quantized), or 8-bit integers one an element, scaled
/// per channel or group (int-quantized, or naive-quantized of integers:
/// W8A8's weights; the activations' quantization is not applied).
/// The format is the config's, or a config group's own (as under
/// "mixed-precision"); every config group that quantizes weights must use
/// the same scheme.
static void readCompressedTensors(ConfigReader &keys, ModelConfig &m) {
  std::string topFormat =
      keys.getString("format", StringRef("float-quantized"));
  // Rotations change what the weights multiply; a sparse format stores
  // tensors of its own.
  if (const llvm::json::Object *transforms = keys.getObject("transform_config");
      transforms && !transforms->empty())
    keys.fail("key \"transform_config\" is not supported (moe-import reads "
              "compressed-tensors checkpoints without transforms)");
  if (const llvm::json::Object *sparsity = keys.getObject("sparsity_config")) {
    ConfigReader sparse = keys.nested(*sparsity, "sparsity_config");
    std::string sparseFormat = sparse.getString("format", StringRef("dense"));
    if (!sparse.failed() && sparseFormat != "dense")
      sparse.fail("format \"" + sparseFormat +
                  "\" is not supported (moe-import reads dense weights)");
    keys.adopt(sparse);
  }
  const llvm::json::Object *groups = keys.requireObject("config_groups", "");
  if (keys.failed())
    return;
  // The scheme of the first group that quantizes weights: its format and,
  // for FP8, its blocks.
  std::optional<std::pair<std::string, ModelConfig::FP8Scales>> scheme;
  std::string schemeGroup;
  int64_t schemeBits = 0;
  bool schemeSymmetric = true;
  // In name order, so that the diagnostic of a mixed scheme is stable.
  llvm::SmallVector<StringRef> names;
  for (const auto &entry : *groups)
    names.push_back(entry.first);
  llvm::sort(names);
  for (StringRef name : names) {
    std::string key = ("config_groups." + name).str();
    const llvm::json::Object *group = groups->getObject(name);
    if (!group) {
      keys.fail("key \"" + key + "\" must be an object");
      return;
    }
    ConfigReader groupKeys = keys.nested(*group, key);
    const llvm::json::Object *weights = groupKeys.getObject("weights");
    std::string format = groupKeys.getString("format", StringRef(topFormat));
    keys.adopt(groupKeys);
    if (!weights || keys.failed()) // a group of activations only
      continue;
    bool nvfp4 = format == "nvfp4-pack-quantized";
    bool mxfp4 = format == "mxfp4-pack-quantized";
    bool ints = format == "pack-quantized";
    if (format != "float-quantized" && format != "naive-quantized" &&
        format != "int-quantized" && !nvfp4 && !mxfp4 && !ints) {
      keys.fail("format \"" + format +
                "\" is not supported (compressed-tensors checkpoints are read "
                "in the formats float-quantized and naive-quantized, of FP8 "
                "weights, int-quantized and naive-quantized, of 8-bit "
                "integers, nvfp4-pack-quantized, mxfp4-pack-quantized and "
                "pack-quantized)");
      return;
    }
    ConfigReader w = groupKeys.nested(*weights, "weights");
    std::string type = w.getString("type", std::nullopt);
    // One integer an element: int-quantized, or naive-quantized of
    // integers (the same compressor). Read as that one format.
    bool bytes = format == "int-quantized" ||
                 (format == "naive-quantized" && type == "int");
    if (bytes)
      format = "int-quantized";
    int64_t bits = w.getInt("num_bits", std::nullopt, 1);
    std::string strategy = w.getString("strategy", std::nullopt);
    bool symmetric = w.getBool("symmetric", true);
    bool dynamic = w.getBool("dynamic", false);
    ModelConfig::FP8Scales scales;
    bool fp4 = nvfp4 || mxfp4;
    if (!w.failed() && ints && (type != "int" || (bits != 4 && bits != 8)))
      w.fail("weights of type \"" + type + "\" and " + Twine(bits) +
             " bits are not supported in format \"" + format +
             "\" (moe-import reads integer weights there: type \"int\", "
             "num_bits 4 or 8)");
    if (!w.failed() && bytes && (type != "int" || bits != 8))
      w.fail("weights of type \"" + type + "\" and " + Twine(bits) +
             " bits are not supported in format \"" + format +
             "\" (moe-import reads 8-bit integers there, one an I8 "
             "element)");
    if (!w.failed() && !ints && !bytes &&
        (type != "float" || bits != (fp4 ? 4 : 8)))
      w.fail("weights of type \"" + type + "\" and " + Twine(bits) +
             " bits are not supported in format \"" + format +
             "\" (moe-import reads " +
             (fp4 ? "4-bit float weights there: type \"float\", num_bits 4"
                  : "FP8 weights there: type \"float\", num_bits 8") +
             ")");
    // Integer weights may be asymmetric: their zero points are read.
    if (!w.failed() && dynamic)
      w.fail("dynamic weights are not supported");
    if (!w.failed() && !symmetric && !ints)
      w.fail("asymmetric weights are not supported in format \"" + format +
             "\" (moe-import reads the zero points of packed integer "
             "weights, format \"pack-quantized\")");
    if (!w.failed() && (ints || bytes) && strategy != "group" &&
        strategy != "channel")
      w.fail("strategy \"" + strategy + "\" is not supported in format \"" +
             format + "\" (integer weights are scaled per channel or group)");
    if (!w.failed() && fp4) {
      // NVFP4: an E4M3 scale a group of 16 of each row, under one global
      // scale a tensor; MXFP4: an E8M0 scale a group of 32.
      int64_t size = w.getInt("group_size", std::nullopt, 1);
      StringRef want = nvfp4 ? "tensor_group" : "group";
      int64_t wantSize = nvfp4 ? checkpoint::Checkpoint::kNVFP4Block
                               : checkpoint::Checkpoint::kMXFP4Block;
      if (!w.failed() && (strategy != want || size != wantSize))
        w.fail("strategy \"" + strategy + "\" with group_size " + Twine(size) +
               " is not supported in format \"" + format + "\" (" +
               (nvfp4 ? "NVFP4" : "MXFP4") +
               " weights are scaled by strategy \"" + want + "\", group_size " +
               Twine(wantSize) + ")");
    } else if (!w.failed()) {
      if (strategy == "channel") {
        scales.block = {1, 0};
      } else if (strategy == "group") {
        scales.block = {1, w.getInt("group_size", std::nullopt, 1)};
        // Activation order "group" stores the group of each input
        // (weight_g_idx), which the integers' loader reads.
        const llvm::json::Value *order = w.find("actorder");
        if (!ints && !bytes && order &&
            order->getAsString() == std::optional<StringRef>("group"))
          w.fail("actorder \"group\" is not supported for FP8 weights (its "
                 "weight_g_idx permutes the groups)");
      } else if (strategy == "block") {
        std::vector<int64_t> block = w.getIntList("block_structure");
        if (!w.failed() && (block.size() != 2 || block[0] < 1 || block[1] < 1))
          w.fail("key \"block_structure\" must be two positive integers "
                 "[rows, columns]");
        if (!w.failed())
          scales.block = {block[0], block[1]};
      } else if (strategy != "tensor") {
        w.fail("strategy \"" + strategy +
               "\" is not supported (FP8 weights are scaled per tensor, "
               "channel, group or block)");
      }
    }
    keys.adopt(w);
    if (keys.failed())
      return;
    scales.description =
        "quant_method \"compressed-tensors\", strategy \"" + strategy + "\"";
    if (scheme &&
        (scheme->first != format || scheme->second.block != scales.block ||
         schemeBits != bits || schemeSymmetric != symmetric)) {
      keys.fail("config groups \"" + schemeGroup + "\" and \"" + name +
                "\" scale their weights differently; moe-import reads one "
                "scheme a checkpoint");
      return;
    }
    scheme.emplace(format, std::move(scales));
    schemeGroup = name.str();
    schemeBits = bits;
    schemeSymmetric = symmetric;
  }
  if (!scheme)
    return;
  std::string description =
      "quant_method \"compressed-tensors\", format \"" + scheme->first + "\"";
  if (scheme->first == "nvfp4-pack-quantized")
    m.packedFP4 = {"_packed", "_scale", "_global_scale", /*inverse=*/true,
                   description};
  else if (scheme->first == "mxfp4-pack-quantized")
    m.packedFP4 = {"_packed", "_scale", "", /*inverse=*/false, description};
  else if (scheme->first != "pack-quantized" &&
           scheme->first != "int-quantized")
    m.fp8 = std::move(scheme->second);
  if (scheme->first != "pack-quantized" && scheme->first != "int-quantized")
    return;
  ModelConfig::PackedInts ints;
  ints.bytes = scheme->first == "int-quantized";
  ints.bits = static_cast<unsigned>(schemeBits);
  ints.group = scheme->second.block[1];
  ints.zeroPoints = !schemeSymmetric;
  ints.description = description + ", int" + std::to_string(schemeBits) +
                     (schemeSymmetric ? "" : " asymmetric");
  m.packedInts = std::move(ints);
}

/// GPTQ's quantization_config (quant_method "gptq", as AutoGPTQ, GPTQModel
/// and transformers write it): 4 or 8 bits, a group_size (-1: one group a
/// column), symmetric or not (the zero points are read either way), and
/// checkpoint_format "gptq" (zero points stored minus one) or "gptq_v2".
/// desc_act needs nothing more: the g_idx tensors give each input's group.
static void readGPTQ(ConfigReader &keys, ModelConfig &m) {
  int64_t bits = keys.getInt("bits", std::nullopt, 1);
  int64_t group = keys.getInt("group_size", -1, -1);
  std::string format = keys.getString("checkpoint_format", StringRef("gptq"));
  if (keys.failed())
    return;
  if (bits != 4 && bits != 8)
    return keys.fail("bits " + Twine(bits) +
                     " is not supported (moe-import reads GPTQ weights of 4 "
                     "or 8 bits)");
  if (group == 0)
    return keys.fail("group_size 0 is not supported (a positive size, or -1 "
                     "for one group a column)");
  if (format != "gptq" && format != "gptq_v2")
    return keys.fail("checkpoint_format \"" + format +
                     "\" is not supported (moe-import reads \"gptq\" and "
                     "\"gptq_v2\")");
  ModelConfig::PackedInts ints;
  ints.bits = static_cast<unsigned>(bits);
  ints.group = group < 0 ? 0 : group;
  ints.layout = ModelConfig::PackedInts::Layout::GPTQ;
  ints.zeroOffset = format == "gptq" ? 1 : 0;
  ints.description = "quant_method \"gptq\", " + std::to_string(bits) +
                     " bits, checkpoint_format \"" + format + "\"";
  m.packedInts = std::move(ints);
}

/// AWQ's quantization_config (quant_method "awq", as AutoAWQ and
/// transformers write it): 4 bits, a group_size, zero points, and the
/// "gemm" layout (its words of outputs; the other versions lay the codes
/// out for their own kernels).
static void readAWQ(ConfigReader &keys, ModelConfig &m) {
  int64_t bits = keys.getInt("bits", std::nullopt, 1);
  int64_t group = keys.getInt("group_size", std::nullopt, -1);
  std::string version = keys.getString("version", StringRef("gemm"));
  bool zeroPoint = keys.getBool("zero_point", true);
  if (keys.failed())
    return;
  if (bits != 4)
    return keys.fail("bits " + Twine(bits) +
                     " is not supported (AWQ weights have 4 bits)");
  if (group == 0)
    return keys.fail("group_size 0 is not supported (a positive size, or -1 "
                     "for one group a column)");
  if (StringRef(version).lower() != "gemm")
    return keys.fail("version \"" + version +
                     "\" is not supported (moe-import reads AWQ's \"gemm\" "
                     "layout)");
  if (!zeroPoint)
    return keys.fail("zero_point false is not supported (moe-import reads "
                     "AWQ weights with their zero points)");
  ModelConfig::PackedInts ints;
  ints.bits = 4;
  ints.group = group < 0 ? 0 : group;
  ints.layout = ModelConfig::PackedInts::Layout::AWQ;
  ints.description = "quant_method \"awq\", version \"" + version + "\"";
  m.packedInts = std::move(ints);
}

/// bitsandbytes' quantization_config (quant_method "bitsandbytes", as
/// transformers writes it): 4-bit NF4 or FP4 codes stored as bytes
/// (load_in_4bit; LLM.int8's load_in_8bit is refused). Double quantization
/// and the block size are read from each tensor's state.
static void readBitsandbytes(ConfigReader &keys, ModelConfig &m) {
  bool in4 = keys.getBool("load_in_4bit", false);
  bool in8 = keys.getBool("load_in_8bit", false);
  std::string type = keys.getString("bnb_4bit_quant_type", StringRef("fp4"));
  std::string storage =
      keys.getString("bnb_4bit_quant_storage", StringRef("uint8"));
  if (keys.failed())
    return;
  if (in8)
    return keys.fail("load_in_8bit (LLM.int8's 8-bit weights) is not "
                     "supported (moe-import reads bitsandbytes' 4-bit "
                     "weights, load_in_4bit)");
  if (!in4)
    return keys.fail("expected load_in_4bit true (moe-import reads "
                     "bitsandbytes' 4-bit weights)");
  if (type != "nf4" && type != "fp4")
    return keys.fail("bnb_4bit_quant_type \"" + type +
                     "\" is not supported (\"nf4\" or \"fp4\")");
  if (storage != "uint8")
    return keys.fail("bnb_4bit_quant_storage \"" + storage +
                     "\" is not supported (moe-import reads codes stored "
                     "as bytes, \"uint8\")");
  m.bnb4 = ModelConfig::Bnb4{type};
}

/// Model Optimizer's NVFP4 tensor names.
static ModelConfig::FP4Tensors modelOptNVFP4() {
  return {"", "_scale", "_scale_2", /*inverse=*/false,
          "quant_method \"modelopt\", quant_algo \"NVFP4\""};
}

/// Model Optimizer's FP8 per tensor, whose scales it names as AutoFP8 does.
static ModelConfig::FP8Scales modelOptFP8() {
  ModelConfig::FP8Scales scales;
  scales.description = "quant_method \"modelopt\", quant_algo \"FP8\"";
  return scales;
}

/// Reads the group_size of NVFP4 weights, which must be 16.
static void readNVFP4GroupSize(ConfigReader &keys) {
  int64_t group =
      keys.getInt("group_size", checkpoint::Checkpoint::kNVFP4Block, 1);
  if (!keys.failed() && group != checkpoint::Checkpoint::kNVFP4Block)
    keys.fail("group_size " + Twine(group) +
              " is not supported (NVFP4 scales blocks of 16)");
}

/// Model Optimizer's export, from config.json's quantization_config or
/// hf_quant_config.json's quantization: quant_algo "NVFP4" (or
/// "W4A16_NVFP4", the same weights), "FP8" per tensor, or
/// "MIXED_PRECISION", whose quantized_layers give each quantized module its
/// own. Its input scales, for quantized activations, are not read, and a
/// quant_algo of null (the KV cache's quantization only) leaves the weights
/// unquantized.
static void readModelOpt(ConfigReader &keys, ModelConfig &m) {
  if (keys.isNull("quant_algo"))
    return;
  std::string algo = keys.getString("quant_algo", std::nullopt);
  if (keys.failed())
    return;
  if (algo == "NVFP4" || algo == "W4A16_NVFP4") {
    readNVFP4GroupSize(keys);
    m.packedFP4 = modelOptNVFP4();
    return;
  }
  if (algo == "FP8") {
    m.fp8 = modelOptFP8();
    return;
  }
  if (algo != "MIXED_PRECISION") {
    keys.fail("quant_algo \"" + algo +
              "\" is not supported (moe-import reads Model Optimizer's "
              "\"NVFP4\", \"W4A16_NVFP4\", \"FP8\" and \"MIXED_PRECISION\" "
              "of those)");
    return;
  }
  const llvm::json::Object *layers = keys.requireObject(
      "quantized_layers",
      "the quant_algo of each quantized module, with quant_algo "
      "\"MIXED_PRECISION\"");
  if (keys.failed())
    return;
  ModelConfig::ModelOptLayers mixed;
  mixed.where = (keys.where() + ".quantized_layers").str();
  for (const auto &[module, value] : *layers) {
    std::string key = ("quantized_layers." + module.str());
    const llvm::json::Object *object = value.getAsObject();
    if (!object) {
      keys.fail("key \"" + key + "\" must be an object");
      return;
    }
    ConfigReader layer = keys.nested(*object, key);
    std::string layerAlgo = layer.getString("quant_algo", std::nullopt);
    if (!layer.failed() && (layerAlgo == "NVFP4" || layerAlgo == "W4A16_NVFP4"))
      readNVFP4GroupSize(layer);
    keys.adopt(layer);
    if (keys.failed())
      return;
    // An algorithm that is not read is refused where a weight of the
    // layers imported has it, not here: it may quantize attention only.
    mixed.algos[module.str()] = layerAlgo;
  }
  m.modelOptLayers = std::move(mixed);
  m.packedFP4 = modelOptNVFP4();
  m.fp8 = modelOptFP8();
}

/// quantization_config. FP8 E4M3 weights are read:
/// - quant_method "fp8": scaled by blocks of weight_block_size
///   (DeepSeek-V3's format, and that of MiniMax-M2 and of the FP8 releases
///   of Qwen3), or per tensor without it (AutoFP8's format, as vLLM reads
///   it);
/// - quant_method "compressed-tensors" (llm-compressor's format): scaled
///   per tensor, channel, group or block, or its NVFP4 and MXFP4;
/// - quant_method "fbgemm_fp8" (Llama-4's FP8 release): one scale an output
///   channel;
/// - quant_method "mxfp4" (GPT-OSS's release): its experts in MXFP4;
/// - quant_method "modelopt" (Model Optimizer's export): quant_algo
///   "NVFP4" or "W4A16_NVFP4" (E2M1 codes, an E4M3 scale a block of 16 and
///   a global scale a tensor), "FP8" (scaled per tensor), or
///   "MIXED_PRECISION" of those, module by module (readModelOpt).
/// Integer weights too (quant_method "compressed-tensors", "gptq" and
/// "awq"), and bitsandbytes' NF4 and FP4 (quant_method "bitsandbytes").
/// Any other quantization is refused here, as its tensors are not weights
/// moe-import can bind.
///
/// Without a quantization_config, Model Optimizer's hf_quant_config.json
/// (`hfQuant`, at `hfQuantPath`), when there is one, is read: its
/// `quantization` as the quantization_config of quant_method "modelopt".
static llvm::Error readQuantization(ConfigReader &reader, ModelConfig &m,
                                    const llvm::json::Value *hfQuant,
                                    StringRef hfQuantPath) {
  const llvm::json::Object *object = reader.getObject("quantization_config");
  if (!object && !reader.failed() && hfQuant) {
    const llvm::json::Object *file = hfQuant->getAsObject();
    if (!file)
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     hfQuantPath + ": expected a JSON object");
    ConfigReader top(*file, hfQuantPath);
    const llvm::json::Object *quantization = top.requireObject(
        "quantization", "Model Optimizer's quantization of the checkpoint");
    if (top.failed())
      return top.takeError();
    ConfigReader keys(*quantization, (hfQuantPath + ": quantization").str());
    readModelOpt(keys, m);
    return keys.takeError();
  }
  if (!object)
    return reader.takeError();
  ConfigReader keys(*object, m.path + ": quantization_config");
  std::string method = keys.getString("quant_method", std::nullopt);
  if (!keys.failed() && method == "compressed-tensors") {
    readCompressedTensors(keys, m);
    return keys.takeError();
  }
  // GPT-OSS's release format: its experts' projections in MXFP4, the other
  // weights unquantized (modules_to_not_convert, which the tensors show).
  if (!keys.failed() && method == "mxfp4") {
    if (!m.isGptOss())
      keys.fail("quant_method \"mxfp4\" is read for gpt_oss checkpoints "
                "only (found model_type \"" +
                m.modelType + "\")");
    m.mxfp4 = true;
    return keys.takeError();
  }
  if (!keys.failed() && method == "modelopt") {
    readModelOpt(keys, m);
    return keys.takeError();
  }
  // FBGEMM's rowwise FP8: `<name>_scale`, f32, one an output channel. Its
  // activation_scale_ub bounds the FP8 activations of FBGEMM's kernels;
  // the layer computes in its dtype and quantizes none.
  if (!keys.failed() && method == "fbgemm_fp8") {
    ModelConfig::FP8Scales scales;
    scales.block = {1, 0};
    scales.description = "quant_method \"fbgemm_fp8\", per output channel";
    m.fp8 = std::move(scales);
    return keys.takeError();
  }
  if (!keys.failed() && method == "gptq") {
    readGPTQ(keys, m);
    return keys.takeError();
  }
  if (!keys.failed() && method == "awq") {
    readAWQ(keys, m);
    return keys.takeError();
  }
  if (!keys.failed() && method == "bitsandbytes") {
    readBitsandbytes(keys, m);
    return keys.takeError();
  }
  if (!keys.failed() && method != "fp8")
    keys.fail(
        "quant_method \"" + method +
        "\" is not supported (moe-import reads unquantized checkpoints; "
        "quant_method \"fp8\", scaled per tensor or by weight_block_size, "
        "and \"fbgemm_fp8\"; \"compressed-tensors\" of FP8, NVFP4, MXFP4 "
        "or integer weights; Model Optimizer's \"modelopt\" in NVFP4 or "
        "FP8; \"gptq\"; \"awq\"; \"bitsandbytes\" in 4 bits; and "
        "GPT-OSS's \"mxfp4\")");
  std::string format = keys.getString("fmt", StringRef("e4m3"));
  if (!keys.failed() && format != "e4m3" && format != "float8_e4m3fn")
    keys.fail("fmt \"" + format +
              "\" is not supported (FP8 weights are e4m3, float8_e4m3fn)");
  std::vector<int64_t> block = keys.getIntList("weight_block_size");
  if (!keys.failed() && !block.empty() &&
      (block.size() != 2 || block[0] < 1 || block[1] < 1))
    keys.fail("key \"weight_block_size\" must be two positive integers "
              "[rows, columns]");
  if (keys.failed())
    return keys.takeError();
  ModelConfig::FP8Scales scales;
  scales.description = "quant_method \"fp8\", per tensor";
  if (!block.empty()) {
    scales.block = {block[0], block[1]};
    scales.suffix = "_scale_inv";
    scales.description = "quant_method \"fp8\", weight_block_size";
  }
  m.fp8 = std::move(scales);
  return llvm::Error::success();
}

llvm::Expected<ModelConfig> mlir::moe::import::parseModelConfig(
    const llvm::json::Value &config, StringRef path,
    const llvm::json::Value *hfQuantConfig, StringRef hfQuantPath) {
  const llvm::json::Object *object = config.getAsObject();
  if (!object)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   path + ": expected a JSON object");
  ConfigReader reader(*object, path);
  ModelConfig m;
  m.path = path.str();
  m.modelType = reader.getString("model_type", std::nullopt);
  if (reader.failed())
    return reader.takeError();
  const FamilyInfo *info = llvm::find_if(kFamilies, [&](const FamilyInfo &f) {
    return f.modelType == m.modelType;
  });
  if (info == std::end(kFamilies))
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        path + ": unsupported model_type \"" + m.modelType +
            "\" (supported: " + supportedModelTypes() + ")");
  m.family = info->family;
  if (llvm::Error err = readQuantization(reader, m, hfQuantConfig, hfQuantPath))
    return std::move(err);

  // The multimodal checkpoints keep their text model's keys in
  // text_config, and its tensors under language_model.model (Llama-4) or
  // model.language_model (Qwen3-VL).
  std::optional<ConfigReader> text;
  if (m.hasTextConfig()) {
    const llvm::json::Value *value = reader.find("text_config");
    const llvm::json::Object *textConfig =
        value ? value->getAsObject() : nullptr;
    if (!textConfig)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          path +
              ": key \"text_config\" must be an object (the text "
              "model's config of a " +
              m.modelType + " checkpoint)");
    text.emplace(*textConfig, (path + ": text_config").str());
    m.layerPrefix = m.isQwen3VL() || m.isQwen35() || m.isGlm4V()
                        ? "model.language_model.layers"
                        : "language_model.model.layers";
  }
  // DBRX names its sizes d_model and n_layers, keeps its block's keys in
  // ffn_config and its tensors under transformer.blocks.
  std::optional<ConfigReader> ffn;
  if (m.isDbrx()) {
    m.hiddenSize = reader.getInt("d_model", std::nullopt, 1);
    m.numLayers = reader.getInt("n_layers", std::nullopt, 1);
    const llvm::json::Object *ffnConfig = reader.requireObject(
        "ffn_config", "the sparse block's config of a dbrx checkpoint");
    if (reader.failed())
      return reader.takeError();
    ffn.emplace(*ffnConfig, (path + ": ffn_config").str());
    m.layerPrefix = "transformer.blocks";
  }
  ConfigReader &keys = ffn ? *ffn : text ? *text : reader;

  if (!m.isDbrx()) {
    m.hiddenSize = keys.getInt("hidden_size", std::nullopt, 1);
    m.numLayers = keys.getInt("num_hidden_layers", std::nullopt, 1);
  }
  m.numExperts = keys.getInt(info->expertsKey, std::nullopt, 1);
  m.topK = keys.getInt(info->topKKey, std::nullopt, 1);
  m.expertSize = keys.getInt(info->sizeKey, std::nullopt, 1);
  if (!keys.failed() && m.topK > m.numExperts)
    keys.fail(info->topKKey + " = " + Twine(m.topK) +
              " exceeds the number of experts (" + info->expertsKey + " = " +
              Twine(m.numExperts) + ")");
  // LFM2-MoE's MLPs are SiLU-gated whatever hidden_act says.
  if (!m.isLfm2())
    readActivation(keys, m);
  if (!keys.failed())
    readFamily(keys, m);
  if (keys.failed())
    return keys.takeError();
  return m;
}

/// The JSON of file `path`.
static llvm::Expected<llvm::json::Value> readJson(StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return llvm::createStringError(
        buffer.getError(),
        path + ": cannot read: " + buffer.getError().message());
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse((*buffer)->getBuffer());
  if (!json)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        path + ": invalid JSON: " + llvm::toString(json.takeError()));
  return json;
}

llvm::Expected<ModelConfig> mlir::moe::import::readModelConfig(StringRef path) {
  llvm::Expected<llvm::json::Value> json = readJson(path);
  if (!json)
    return json.takeError();
  // Model Optimizer's exports describe their quantization in a file of
  // their own next to config.json.
  llvm::SmallString<256> hfQuantPath = llvm::sys::path::parent_path(path);
  llvm::sys::path::append(hfQuantPath, "hf_quant_config.json");
  std::optional<llvm::json::Value> hfQuant;
  if (llvm::sys::fs::exists(hfQuantPath)) {
    llvm::Expected<llvm::json::Value> read = readJson(hfQuantPath);
    if (!read)
      return read.takeError();
    hfQuant = std::move(*read);
  }
  return parseModelConfig(*json, path, hfQuant ? &*hfQuant : nullptr,
                          hfQuantPath);
}

//===----------------------------------------------------------------------===//
// Sparse layers
//===----------------------------------------------------------------------===//

bool ModelConfig::isSparseLayer(int64_t layer) const {
  if (layer < 0 || layer >= numLayers)
    return false;
  if (moeLayers)
    return llvm::is_contained(*moeLayers, layer);
  if (isLlama4()) // interleave_moe_layer_step
    return layer % moeLayerFreq == moeLayerFreq - 1;
  if (isLfm2()) // num_dense_layers
    return layer >= firstKDenseReplace;
  if (isJamba()) // expert_layer_period and expert_layer_offset
    return layer % moeLayerFreq == moeLayerOffset;
  if (isErnie()) // moe_layer_start_index, _end_index and _interval
    return layer >= firstKDenseReplace && layer <= moeLayerEnd &&
           (layer + 1) % moeLayerFreq == 0;
  if (isQwen(family))
    return !llvm::is_contained(mlpOnlyLayers, layer) &&
           (layer + 1) % decoderSparseStep == 0;
  if (isDeepSeek(family))
    return layer >= firstKDenseReplace && layer % moeLayerFreq == 0;
  return true;
}

llvm::SmallVector<int64_t> ModelConfig::sparseLayers() const {
  llvm::SmallVector<int64_t> layers;
  for (int64_t l = 0; l < numLayers; ++l)
    if (isSparseLayer(l))
      layers.push_back(l);
  return layers;
}

std::string ModelConfig::denseReason(int64_t layer) const {
  std::string l = std::to_string(layer);
  if (moeLayers)
    return moeLayersKey == "mlp_layer_types"
               ? "mlp_layer_types[" + l + "] is \"dense\""
               : "it is not in moe_layers";
  if (isLlama4())
    return l + " % interleave_moe_layer_step (" + std::to_string(moeLayerFreq) +
           ") != " + std::to_string(moeLayerFreq - 1);
  if (isQwen(family)) {
    if (llvm::is_contained(mlpOnlyLayers, layer))
      return "it is in mlp_only_layers";
    return "(" + l + " + 1) % decoder_sparse_step (" +
           std::to_string(decoderSparseStep) + ") != 0";
  }
  if (isLfm2())
    return "num_dense_layers = " + std::to_string(firstKDenseReplace);
  if (isJamba())
    return l + " % expert_layer_period (" + std::to_string(moeLayerFreq) +
           ") != expert_layer_offset (" + std::to_string(moeLayerOffset) + ")";
  if (isErnie()) {
    if (layer < firstKDenseReplace)
      return "moe_layer_start_index = " + std::to_string(firstKDenseReplace);
    if (layer > moeLayerEnd)
      return "moe_layer_end_index = " + std::to_string(moeLayerEnd);
    return "(" + l + " + 1) % moe_layer_interval (" +
           std::to_string(moeLayerFreq) + ") != 0";
  }
  if (layer < firstKDenseReplace)
    return "first_k_dense_replace = " + std::to_string(firstKDenseReplace);
  return l + " % moe_layer_freq (" + std::to_string(moeLayerFreq) + ") != 0";
}
