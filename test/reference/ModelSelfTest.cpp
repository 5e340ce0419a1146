//===- ModelSelfTest.cpp - Checks of the reference's checkpoint reading ---===//
//
// The JSON parser, the safetensors reader and the reading of Hugging Face
// configs, on small hand-made inputs; and two tiny models whose layer
// output is worked out by hand in the comments, from the files to y.
//
//===----------------------------------------------------------------------===//

#include "HfModel.h"
#include "Json.h"
#include "MoEReference.h"
#include "SafeTensorsReader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace moeref;

namespace {

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

json::Value parseOk(const std::string &text) {
  json::Value v;
  std::string err;
  EXPECT_TRUE(json::parse(text, &v, &err)) << text << ": " << err;
  return v;
}

std::string parseError(const std::string &text) {
  json::Value v;
  std::string err;
  EXPECT_FALSE(json::parse(text, &v, &err)) << "accepted: " << text;
  return err;
}

TEST(Json, ValuesAndNesting) {
  json::Value v = parseOk(
      " {\"a\": [1, -2.5e1, true, false, null, []], \"b\": {\"c\": \"x\"},"
      " \"e\": {}}\n");
  ASSERT_EQ(v.kind, json::Value::Kind::Object);
  ASSERT_EQ(v.object.size(), 3u);
  EXPECT_EQ(v.object[0].first, "a"); // file order is kept
  const json::Value *a = v.get("a");
  ASSERT_TRUE(a && a->kind == json::Value::Kind::Array);
  ASSERT_EQ(a->array.size(), 6u);
  EXPECT_TRUE(a->array[0].isInteger);
  EXPECT_EQ(a->array[0].integer, 1);
  EXPECT_FALSE(a->array[1].isInteger);
  EXPECT_EQ(a->array[1].number, -25.0);
  EXPECT_EQ(a->array[2].kind, json::Value::Kind::Bool);
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_FALSE(a->array[3].boolean);
  EXPECT_EQ(a->array[4].kind, json::Value::Kind::Null);
  EXPECT_TRUE(a->array[5].array.empty());
  EXPECT_EQ(v.get("b")->get("c")->string, "x");
  EXPECT_EQ(v.get("e")->kind, json::Value::Kind::Object);
  EXPECT_EQ(v.get("missing"), nullptr);
  EXPECT_EQ(a->get("x"), nullptr); // not an object
}

TEST(Json, Numbers) {
  EXPECT_EQ(parseOk("0").integer, 0);
  EXPECT_TRUE(parseOk("-0").isInteger);
  EXPECT_EQ(parseOk("-17").integer, -17);
  EXPECT_EQ(parseOk("9223372036854775807").integer, INT64_MAX);
  // Past int64: still a number, not an integer.
  json::Value big = parseOk("9223372036854775808");
  EXPECT_FALSE(big.isInteger);
  EXPECT_EQ(big.number, 9223372036854775808.0);
  // A fraction or an exponent makes a number non-integer even when its
  // value is whole (config ints must be written as ints).
  EXPECT_FALSE(parseOk("64.0").isInteger);
  EXPECT_FALSE(parseOk("1e2").isInteger);
  EXPECT_EQ(parseOk("1E+2").number, 100.0);
  EXPECT_EQ(parseOk("2.5e-1").number, 0.25);
  for (const char *bad : {"01", "+1", ".5", "1.", "1e", "-", "1.e3", "NaN",
                          "Infinity", "-Infinity", "0x10", "1e999"})
    parseError(bad);
}

TEST(Json, Strings) {
  json::Value v =
      parseOk("\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00\"");
  EXPECT_EQ(v.string, "q\" b\\ s/ \b\f\n\r\t \xc3\xa9 \xf0\x9f\x98\x80");
  for (const char *bad :
       {"\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud83d\"", "\"\\ude00\"",
        "\"a\nb\"", "'single'"})
    parseError(bad);
}

TEST(Json, Strictness) {
  EXPECT_NE(parseError("[1, 2,]").find("at byte 6"), std::string::npos);
  parseError("{\"a\": 1,}");
  parseError("{\"a\": 1 \"b\": 2}");
  parseError("{a: 1}");
  parseError("{\"a\" 1}");
  EXPECT_NE(parseError("{\"a\": 1, \"a\": 2}").find("duplicate key \"a\""),
            std::string::npos);
  parseError("{} x");
  parseError("");
  parseError("  ");
  parseError("// comment\n{}");
  parseError("tru");
  parseError("nul");
  parseError(std::string(65, '[') + std::string(65, ']'));
  parseOk(std::string(64, '[') + std::string(64, ']'));
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

/// A fresh directory for one test.
std::string tempDir(const std::string &name) {
  fs::path p = fs::temp_directory_path() /
               ("moe-reference-modeltest-" + std::to_string(getpid()) + "-" +
                name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

std::string f32Bytes(std::vector<float> values) {
  std::string s(values.size() * 4, '\0');
  std::memcpy(&s[0], values.data(), s.size()); // little-endian hosts
  return s;
}

std::string u16Bytes(std::vector<uint16_t> values) {
  std::string s(values.size() * 2, '\0');
  std::memcpy(&s[0], values.data(), s.size());
  return s;
}

/// A safetensors file with a hand-written header.
void writeSafetensors(const std::string &path, const std::string &header,
                      const std::string &data) {
  std::string h = header;
  while (h.size() % 8) h += ' ';
  std::string size(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) size[size_t(i)] = char((n >> (8 * i)) & 0xFF);
  writeBytes(path, size + h + data);
}

/// F32 tensors written one by one, then as one safetensors file.
struct F32Tensors {
  std::string header = "{", data;
  void add(const std::string &name, const std::string &shape,
           std::vector<float> values) {
    size_t begin = data.size();
    data += f32Bytes(values);
    header += std::string(header.size() > 1 ? "," : "") + "\"" + name +
              "\":{\"dtype\":\"F32\",\"shape\":" + shape +
              ",\"data_offsets\":[" + std::to_string(begin) + "," +
              std::to_string(data.size()) + "]}";
  }
  void write(const std::string &path) const {
    writeSafetensors(path, header + "}", data);
  }
};

TEST(SafeTensors, ReadsEveryComputeDType) {
  std::string dir = tempDir("dtypes");
  // a: F32 [2] = 1.5, -2; b: BF16 [1, 2] = 1 (0x3F80), -3 (0xC040);
  // c: F16 [] = 1 (0x3C00); d: I64 [1], listed but not readable.
  writeSafetensors(
      dir + "/model.safetensors",
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[8,12]},"
      "\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[12,14]},"
      "\"d\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[16,24]}}",
      f32Bytes({1.5f, -2.0f}) + u16Bytes({0x3F80, 0xC040}) +
          u16Bytes({0x3C00, 0}) + std::string(8, '\0'));
  st::Reader r;
  std::string err;
  ASSERT_TRUE(r.openDir(dir, &err)) << err;
  EXPECT_EQ(r.tensors().size(), 4u);
  std::vector<double> v;
  const st::TensorEntry *a = r.find("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2}));
  ASSERT_TRUE(r.read(*a, &v, &err)) << err;
  EXPECT_EQ(v, (std::vector<double>{1.5, -2.0}));
  ASSERT_TRUE(r.read(*r.find("b"), &v, &err)) << err;
  EXPECT_EQ(v, (std::vector<double>{1.0, -3.0}));
  EXPECT_EQ(r.find("b")->shape, (std::vector<int64_t>{1, 2}));
  ASSERT_TRUE(r.read(*r.find("c"), &v, &err)) << err;
  EXPECT_EQ(v, (std::vector<double>{1.0}));
  EXPECT_TRUE(r.find("c")->shape.empty());
  EXPECT_FALSE(r.read(*r.find("d"), &v, &err));
  EXPECT_NE(err.find("tensor d has dtype I64"), std::string::npos) << err;
  EXPECT_EQ(r.find("e"), nullptr);
  fs::remove_all(dir);
}

TEST(SafeTensors, RejectsBadHeaders) {
  std::string dir = tempDir("bad");
  std::string file = dir + "/model.safetensors";
  auto openError = [&](const std::string &header, const std::string &data) {
    writeSafetensors(file, header, data);
    st::Reader r;
    std::string err;
    EXPECT_FALSE(r.openDir(dir, &err)) << header;
    return err;
  };
  // Past the end of the data; size not matching dtype and shape; an
  // unknown dtype; a bad shape; not JSON.
  EXPECT_NE(openError("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                      "\"data_offsets\":[0,8]}}",
                      std::string(4, '\0'))
                .find("data_offsets outside the data section"),
            std::string::npos);
  EXPECT_NE(openError("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
                      "\"data_offsets\":[0,8]}}",
                      std::string(8, '\0'))
                .find("spans 8 bytes, expected 12"),
            std::string::npos);
  EXPECT_NE(openError("{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],"
                      "\"data_offsets\":[0,1]}}",
                      std::string(8, '\0'))
                .find("unknown dtype Q4"),
            std::string::npos);
  EXPECT_NE(openError("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],"
                      "\"data_offsets\":[0,4]}}",
                      std::string(8, '\0'))
                .find("a shape entry is not a count"),
            std::string::npos);
  EXPECT_NE(openError("{\"a\":", "").find("invalid header JSON"),
            std::string::npos);
  // A header size larger than the file.
  writeBytes(file, std::string("\xff\x00\x00\x00\x00\x00\x00\x00", 8));
  st::Reader r;
  std::string err;
  EXPECT_FALSE(r.openDir(dir, &err));
  EXPECT_NE(err.find("exceeds the file"), std::string::npos) << err;
  fs::remove_all(dir);
  EXPECT_FALSE(r.openDir(dir, &err));
  EXPECT_NE(err.find("no model.safetensors"), std::string::npos) << err;
}

TEST(SafeTensors, Shards) {
  std::string dir = tempDir("shards");
  writeSafetensors(dir + "/s1.safetensors",
                   "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],"
                   "\"data_offsets\":[0,4]}}",
                   f32Bytes({3.0f}));
  writeSafetensors(dir + "/s2.safetensors",
                   "{\"y\":{\"dtype\":\"F32\",\"shape\":[1],"
                   "\"data_offsets\":[0,4]}}",
                   f32Bytes({4.0f}));
  writeBytes(dir + "/model.safetensors.index.json",
             "{\"metadata\": {\"total_size\": 8}, \"weight_map\": "
             "{\"x\": \"s1.safetensors\", \"y\": \"s2.safetensors\"}}");
  st::Reader r;
  std::string err;
  ASSERT_TRUE(r.openDir(dir, &err)) << err;
  std::vector<double> v;
  ASSERT_TRUE(r.read(*r.find("y"), &v, &err)) << err;
  EXPECT_EQ(v, (std::vector<double>{4.0}));
  // The index must name the shard that holds each tensor.
  writeBytes(dir + "/model.safetensors.index.json",
             "{\"weight_map\": {\"x\": \"s2.safetensors\", \"y\": "
             "\"s2.safetensors\"}}");
  st::Reader r2;
  EXPECT_FALSE(r2.openDir(dir, &err));
  EXPECT_NE(err.find("maps x to s2.safetensors"), std::string::npos) << err;
  fs::remove_all(dir);
}

//===----------------------------------------------------------------------===//
// Configs
//===----------------------------------------------------------------------===//

hf::LayerPlan plan(const std::string &config, int64_t layer) {
  hf::LayerPlan p;
  std::string err;
  EXPECT_TRUE(hf::planLayer(parseOk(config), "config.json", layer, &p, &err))
      << err;
  return p;
}

std::string planError(const std::string &config, int64_t layer) {
  hf::LayerPlan p;
  std::string err;
  EXPECT_FALSE(hf::planLayer(parseOk(config), "config.json", layer, &p, &err));
  return err;
}

std::vector<std::string> roles(const hf::LayerPlan &p) {
  std::vector<std::string> r;
  for (const hf::Operand &o : p.operands) r.push_back(o.role);
  return r;
}

/// The sparse layers of the model with config.json `text`.
std::vector<int64_t> sparseLayersOf(const std::string &text) {
  std::vector<int64_t> layers;
  std::string err;
  EXPECT_TRUE(hf::sparseLayers(parseOk(text), "config.json", &layers, &err))
      << err;
  return layers;
}

const std::string kSizes = "\"hidden_size\": 4, \"num_hidden_layers\": 4, "
                           "\"num_experts_per_tok\": 2, ";

TEST(HfConfig, Mixtral) {
  hf::LayerPlan p = plan("{\"model_type\": \"mixtral\", " + kSizes +
                             "\"num_local_experts\": 3, "
                             "\"intermediate_size\": 5}",
                         3);
  EXPECT_EQ(p.E, 3);
  EXPECT_EQ(p.f, 5);
  EXPECT_TRUE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.routing.score, Score::Softmax);
  EXPECT_EQ(p.cfg.act, Act::Silu);
  EXPECT_EQ(roles(p), (std::vector<std::string>{"router", "gate", "up", "down"}));
  EXPECT_EQ(p.operands[0].names,
            (std::vector<std::string>{
                "model.layers.3.block_sparse_moe.gate.weight"}));
  EXPECT_EQ(p.operands[2].names,
            (std::vector<std::string>{
                "model.layers.3.block_sparse_moe.experts.0.w3.weight",
                "model.layers.3.block_sparse_moe.experts.1.w3.weight",
                "model.layers.3.block_sparse_moe.experts.2.w3.weight"}));
  EXPECT_EQ(p.operands[3].shape, (std::vector<int64_t>{3, 4, 5}));
}

TEST(HfConfig, MiniMaxM2) {
  // Mixtral's names and sizes, every layer sparse; MiniMaxM2TopKRouter's
  // sigmoid scores, the bias beside the router, renormalized, unscaled.
  // Routing keys in the file are not MiniMaxM2Config's and change nothing.
  std::string config = "{\"model_type\": \"minimax_m2\", " + kSizes +
                       "\"num_local_experts\": 3, "
                       "\"intermediate_size\": 5, "
                       "\"scoring_func\": \"softmax\", "
                       "\"norm_topk_prob\": false, "
                       "\"routed_scaling_factor\": 2.5}";
  EXPECT_EQ(sparseLayersOf(config), (std::vector<int64_t>{0, 1, 2, 3}));
  hf::LayerPlan p = plan(config, 2);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Sigmoid);
  EXPECT_EQ(r.select, Select::TopK);
  EXPECT_TRUE(r.renormalize);
  EXPECT_EQ(r.scale, 1.0);
  EXPECT_EQ(p.E, 3);
  EXPECT_EQ(p.f, 5);
  EXPECT_EQ(roles(p),
            (std::vector<std::string>{"router", "bias", "gate", "up", "down"}));
  EXPECT_EQ(p.operands[1].names,
            (std::vector<std::string>{
                "model.layers.2.block_sparse_moe.e_score_correction_bias"}));
  EXPECT_EQ(p.operands[1].shape, (std::vector<int64_t>{3}));
  EXPECT_TRUE(p.operands[1].alwaysF32);
  EXPECT_EQ(p.operands[4].names.back(),
            "model.layers.2.block_sparse_moe.experts.2.w2.weight");
}

TEST(HfConfig, Lfm2Moe) {
  // Lfm2MoeConfig's defaults: the first two layers dense, the expert bias,
  // renormalized, unscaled; the blocks under feed_forward with Mixtral's
  // expert names. A hidden_act is not read.
  std::string config = "{\"model_type\": \"lfm2_moe\", " + kSizes +
                       "\"num_experts\": 3, "
                       "\"moe_intermediate_size\": 5, "
                       "\"hidden_act\": \"tanh\"}";
  EXPECT_EQ(sparseLayersOf(config), (std::vector<int64_t>{2, 3}));
  hf::LayerPlan p = plan(config, 3);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Sigmoid);
  EXPECT_EQ(r.select, Select::TopK);
  EXPECT_TRUE(r.renormalize);
  EXPECT_EQ(r.scale, 1.0);
  EXPECT_EQ(p.cfg.act, Act::Silu);
  EXPECT_EQ(p.f, 5);
  EXPECT_EQ(roles(p),
            (std::vector<std::string>{"router", "bias", "gate", "up", "down"}));
  EXPECT_EQ(p.operands[0].names,
            (std::vector<std::string>{"model.layers.3.feed_forward.gate.weight"}));
  EXPECT_EQ(p.operands[1].names,
            (std::vector<std::string>{"model.layers.3.feed_forward.expert_bias"}));
  EXPECT_TRUE(p.operands[1].alwaysF32);
  EXPECT_EQ(p.operands[3].names.front(),
            "model.layers.3.feed_forward.experts.0.w3.weight");

  // Each key read: no bias, raw weights, scaled, one dense layer.
  std::string keys = "{\"model_type\": \"lfm2_moe\", " + kSizes +
                     "\"num_experts\": 3, "
                     "\"moe_intermediate_size\": 5, "
                     "\"num_dense_layers\": 1, "
                     "\"use_expert_bias\": false, "
                     "\"norm_topk_prob\": false, "
                     "\"routed_scaling_factor\": 2.0}";
  EXPECT_EQ(sparseLayersOf(keys), (std::vector<int64_t>{1, 2, 3}));
  p = plan(keys, 1);
  EXPECT_FALSE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.routing.scale, 2.0);
  EXPECT_EQ(roles(p), (std::vector<std::string>{"router", "gate", "up", "down"}));
}

/// A multimodal Qwen config of model type `type`: its text model's keys
/// (3 experts, f = 5, norm_topk_prob false, layer 1 in mlp_only_layers)
/// in text_config, of model type `type`_text.
std::string qwenMultimodalConfig(const std::string &type) {
  return "{\"model_type\": \"" + type + "\", \"text_config\": "
         "{\"model_type\": \"" + type + "_text\", " + kSizes +
         "\"num_experts\": 3, \"moe_intermediate_size\": 5, "
         "\"norm_topk_prob\": false, \"mlp_only_layers\": [1]}}";
}

TEST(HfConfig, Qwen3VLMoe) {
  // The text model's keys nested, its tensors under model.language_model;
  // Qwen3-MoE's routing always renormalized (norm_topk_prob not read);
  // Llama-4's fused experts stored [in, out]; no shared expert.
  std::string config = qwenMultimodalConfig("qwen3_vl_moe");
  EXPECT_EQ(sparseLayersOf(config), (std::vector<int64_t>{0, 2, 3}));
  hf::LayerPlan p = plan(config, 2);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Softmax);
  EXPECT_EQ(r.select, Select::TopK);
  EXPECT_TRUE(r.renormalize);
  EXPECT_EQ(p.cfg.shared, SharedKind::None);
  EXPECT_EQ(roles(p), (std::vector<std::string>{"router", "gate_up", "down"}));
  EXPECT_EQ(p.operands[0].names[0],
            "model.language_model.layers.2.mlp.gate.weight");
  EXPECT_EQ(p.operands[1].names[0],
            "model.language_model.layers.2.mlp.experts.gate_up_proj");
  EXPECT_EQ(p.operands[1].shape, (std::vector<int64_t>{3, 10, 4}));
  EXPECT_TRUE(p.operands[1].transposed);
  EXPECT_TRUE(p.operands[2].transposed);
  EXPECT_NE(planError("{\"model_type\": \"qwen3_vl_moe\"}", 0).find(
                "text_config"),
            std::string::npos);
}

TEST(HfConfig, Qwen35Moe) {
  // The text model's keys nested, its tensors under model.language_model;
  // Qwen3-Next's block in every layer (mlp_only_layers and norm_topk_prob
  // are not read), always renormalized, the gated shared expert of 512 by
  // default; planned per expert until the checkpoint says otherwise.
  std::string config = qwenMultimodalConfig("qwen3_5_moe");
  EXPECT_EQ(sparseLayersOf(config), (std::vector<int64_t>{0, 1, 2, 3}));
  hf::LayerPlan p = plan(config, 1);
  EXPECT_TRUE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.shared, SharedKind::Gated);
  EXPECT_EQ(roles(p), (std::vector<std::string>{
                          "router", "gate", "up", "down", "shared_gate",
                          "shared_up", "shared_down", "shared_sigmoid_gate"}));
  EXPECT_EQ(p.operands[1].names[2],
            "model.language_model.layers.1.mlp.experts.2.gate_proj.weight");
  EXPECT_EQ(p.operands[4].names[0],
            "model.language_model.layers.1.mlp.shared_expert.gate_proj.weight");
  EXPECT_EQ(p.operands[4].shape, (std::vector<int64_t>{512, 4}));
}

TEST(HfConfig, Llama4) {
  // The multimodal config nests the text model's keys; its tensors are
  // under language_model; every second layer is sparse from layer 1.
  std::string text = "{\"model_type\": \"llama4_text\", " + kSizes +
                     "\"num_local_experts\": 3, "
                     "\"intermediate_size\": 5, "
                     "\"interleave_moe_layer_step\": 2}";
  std::string config =
      "{\"model_type\": \"llama4\", \"text_config\": " + text + "}";
  std::vector<int64_t> layers;
  std::string err;
  EXPECT_EQ(sparseLayersOf(config), (std::vector<int64_t>{1, 3}));
  hf::LayerPlan p = plan(config, 3);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Sigmoid);
  EXPECT_EQ(r.select, Select::TopK);
  EXPECT_FALSE(r.renormalize);
  EXPECT_EQ(r.apply, moeref::Apply::Input);
  EXPECT_EQ(p.cfg.shared, SharedKind::Plain);
  EXPECT_EQ(roles(p), (std::vector<std::string>{"router", "gate_up", "down",
                                                "shared_gate", "shared_up",
                                                "shared_down"}));
  EXPECT_EQ(p.operands[0].names[0],
            "language_model.model.layers.3.feed_forward.router.weight");
  EXPECT_EQ(p.operands[1].names[0],
            "language_model.model.layers.3.feed_forward.experts.gate_up_proj");
  EXPECT_EQ(p.operands[1].shape, (std::vector<int64_t>{3, 10, 4}));
  EXPECT_TRUE(p.operands[1].transposed);
  EXPECT_TRUE(p.operands[2].transposed);
  EXPECT_EQ(p.operands[5].shape, (std::vector<int64_t>{4, 5}));
  // Text-only: the same keys at the top, tensors under model; moe_layers
  // decides when given.
  ASSERT_TRUE(hf::sparseLayers(
      parseOk(text.substr(0, text.size() - 1) + ", \"moe_layers\": [0, 2]}"),
      "config.json", &layers, &err));
  EXPECT_EQ(layers, (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(plan(text, 1).operands[0].names[0],
            "model.layers.1.feed_forward.router.weight");
  EXPECT_NE(planError("{\"model_type\": \"llama4\"}", 0).find("text_config"),
            std::string::npos);
}

TEST(HfConfig, QwenSparseLayersAndSharedExpert) {
  std::string cfg = "{\"model_type\": \"qwen2_moe\", " + kSizes +
                    "\"num_experts\": 4, \"moe_intermediate_size\": 3, "
                    "\"shared_expert_intermediate_size\": 6, "
                    "\"decoder_sparse_step\": 2, \"mlp_only_layers\": [3], "
                    "\"hidden_act\": \"gelu\"}";
  // (L + 1) % 2 == 0 -> 1, 3; 3 is MLP-only -> 1.
  EXPECT_EQ(sparseLayersOf(cfg), (std::vector<int64_t>{1}));
  EXPECT_NE(planError(cfg, 3).find("layer 3 is dense"), std::string::npos);
  EXPECT_NE(planError(cfg, 4).find("layer 4 does not exist"),
            std::string::npos);
  hf::LayerPlan p = plan(cfg, 1);
  EXPECT_FALSE(p.cfg.routing.renormalize); // norm_topk_prob defaults to false
  EXPECT_EQ(p.cfg.act, Act::GeluErf);      // "gelu" is the erf form
  EXPECT_EQ(p.cfg.shared, SharedKind::Gated);
  EXPECT_EQ(roles(p),
            (std::vector<std::string>{"router", "gate", "up", "down",
                                      "shared_gate", "shared_up",
                                      "shared_down", "shared_sigmoid_gate"}));
  EXPECT_EQ(p.operands[4].names[0],
            "model.layers.1.mlp.shared_expert.gate_proj.weight");
  EXPECT_EQ(p.operands[4].shape, (std::vector<int64_t>{6, 4}));
  EXPECT_EQ(p.operands[7].names[0],
            "model.layers.1.mlp.shared_expert_gate.weight");
  EXPECT_NE(planError("{\"model_type\": \"qwen2_moe\", " + kSizes +
                          "\"num_experts\": 4, \"moe_intermediate_size\": 3}",
                      0)
                .find("missing key \"shared_expert_intermediate_size\""),
            std::string::npos);
}

TEST(HfConfig, Qwen3AndOlmoeFollowNormTopkProb) {
  std::string qwen3 = "{\"model_type\": \"qwen3_moe\", " + kSizes +
                      "\"num_experts\": 4, \"moe_intermediate_size\": 3, ";
  EXPECT_TRUE(plan(qwen3 + "\"norm_topk_prob\": true}", 0).cfg.routing.renormalize);
  EXPECT_FALSE(plan(qwen3 + "\"norm_topk_prob\": null}", 0).cfg.routing.renormalize);
  std::string olmoe = "{\"model_type\": \"olmoe\", " + kSizes +
                      "\"num_experts\": 4, \"intermediate_size\": 3, ";
  EXPECT_FALSE(plan(olmoe + "\"hidden_act\": \"silu\"}", 0).cfg.routing.renormalize);
  EXPECT_TRUE(plan(olmoe + "\"norm_topk_prob\": true}", 0).cfg.routing.renormalize);
  EXPECT_NE(planError(olmoe + "\"norm_topk_prob\": 1}", 0)
                .find("\"norm_topk_prob\" must be a boolean"),
            std::string::npos);
}

TEST(HfConfig, Granite) {
  hf::LayerPlan p = plan("{\"model_type\": \"granitemoe\", " + kSizes +
                             "\"num_local_experts\": 3, "
                             "\"intermediate_size\": 5, "
                             "\"hidden_act\": \"gelu_pytorch_tanh\"}",
                         0);
  EXPECT_EQ(p.cfg.routing.score, Score::Logits);
  EXPECT_EQ(p.cfg.routing.weights, Weights::SoftmaxSelected);
  EXPECT_FALSE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.act, Act::GeluTanh);
  EXPECT_EQ(roles(p), (std::vector<std::string>{"router", "gate_up", "down"}));
  EXPECT_EQ(p.operands[0].names[0],
            "model.layers.0.block_sparse_moe.router.layer.weight");
  EXPECT_EQ(p.operands[1].shape, (std::vector<int64_t>{3, 10, 4}));
  EXPECT_FALSE(p.operands[1].stacked);
}

TEST(HfConfig, GraniteSharedMlp) {
  // GraniteMoeShared: a shared_mlp when shared_intermediate_size (default
  // 0) is positive; GraniteMoeHybrid: default 1024. Stored fused as the
  // experts are, and split into gate and up rows.
  std::string sizes = kSizes + "\"num_local_experts\": 3, "
                               "\"intermediate_size\": 5";
  hf::LayerPlan none =
      plan("{\"model_type\": \"granitemoeshared\", " + sizes + "}", 1);
  EXPECT_EQ(none.cfg.shared, SharedKind::None);
  EXPECT_EQ(roles(none),
            (std::vector<std::string>{"router", "gate_up", "down"}));
  hf::LayerPlan hybrid =
      plan("{\"model_type\": \"granitemoehybrid\", " + sizes + "}", 2);
  EXPECT_EQ(hybrid.cfg.shared, SharedKind::Plain);
  EXPECT_EQ(hybrid.cfg.routing.weights, Weights::SoftmaxSelected);
  EXPECT_EQ(roles(hybrid),
            (std::vector<std::string>{"router", "gate_up", "down",
                                      "shared_gate_up", "shared_down"}));
  EXPECT_EQ(hybrid.operands[3].names[0],
            "model.layers.2.shared_mlp.input_linear.weight");
  EXPECT_EQ(hybrid.operands[3].shape, (std::vector<int64_t>{2048, 4}));
  EXPECT_EQ(hybrid.operands[4].shape, (std::vector<int64_t>{4, 1024}));
  hf::LayerPlan sized = plan("{\"model_type\": \"granitemoeshared\", " +
                                 sizes + ", \"shared_intermediate_size\": 6}",
                             0);
  EXPECT_EQ(sized.cfg.shared, SharedKind::Plain);
  EXPECT_EQ(sized.operands[4].names[0],
            "model.layers.0.shared_mlp.output_linear.weight");
  EXPECT_EQ(sized.operands[4].shape, (std::vector<int64_t>{4, 6}));
}

TEST(HfConfig, DeepSeekV2) {
  std::string base = "{\"model_type\": \"deepseek_v2\", " + kSizes +
                     "\"n_routed_experts\": 8, \"moe_intermediate_size\": 3, "
                     "\"first_k_dense_replace\": 1, \"moe_layer_freq\": 2, "
                     "\"routed_scaling_factor\": 16.0, ";
  EXPECT_EQ(sparseLayersOf(base + "\"n_shared_experts\": 2}"), (std::vector<int64_t>{2})); // >= 1 and even
  hf::LayerPlan p = plan(base + "\"n_shared_experts\": 2, \"topk_method\": "
                                "\"group_limited_greedy\", \"n_group\": 4, "
                                "\"topk_group\": 2}",
                         2);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.select, Select::GroupedTopK);
  EXPECT_EQ(r.groupScore, GroupScore::Max);
  EXPECT_EQ(r.groups, 4);
  EXPECT_EQ(r.topkGroup, 2);
  EXPECT_FALSE(r.renormalize);
  EXPECT_EQ(r.scale, 16.0); // raw weights are scaled
  EXPECT_EQ(p.cfg.shared, SharedKind::Plain);
  EXPECT_EQ(p.operands.back().names[0],
            "model.layers.2.mlp.shared_experts.down_proj.weight");
  EXPECT_EQ(p.operands.back().shape, (std::vector<int64_t>{4, 6})); // 2 * 3
  // Renormalizing replaces scaling; with k = 1 the published code scales.
  hf::LayerPlan n = plan(base + "\"n_shared_experts\": null, "
                                "\"norm_topk_prob\": true}",
                         2);
  EXPECT_EQ(n.cfg.routing.select, Select::TopK); // greedy
  EXPECT_TRUE(n.cfg.routing.renormalize);
  EXPECT_EQ(n.cfg.routing.scale, 1.0);
  EXPECT_EQ(n.cfg.shared, SharedKind::None);
  EXPECT_EQ(roles(n), (std::vector<std::string>{"router", "gate", "up", "down"}));
  std::string k1 = base;
  k1.replace(k1.find("\"num_experts_per_tok\": 2"), 24,
             "\"num_experts_per_tok\": 1");
  hf::LayerPlan one = plan(k1 + "\"n_shared_experts\": 0, "
                                "\"norm_topk_prob\": true}",
                           2);
  EXPECT_FALSE(one.cfg.routing.renormalize);
  EXPECT_EQ(one.cfg.routing.scale, 16.0);
  EXPECT_NE(planError(base + "\"topk_method\": \"greedy\"}", 2)
                .find("missing key \"n_shared_experts\""),
            std::string::npos);
}

TEST(HfConfig, DeepSeekV3) {
  hf::LayerPlan p = plan("{\"model_type\": \"deepseek_v3\", " + kSizes +
                             "\"n_routed_experts\": 8, "
                             "\"moe_intermediate_size\": 3, "
                             "\"n_shared_experts\": 1, \"n_group\": 4, "
                             "\"topk_group\": 2}",
                         0);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Sigmoid);
  EXPECT_EQ(r.select, Select::GroupedTopK);
  EXPECT_EQ(r.groupScore, GroupScore::SumTop2);
  EXPECT_TRUE(r.renormalize); // the defaults of DeepseekV3Config
  EXPECT_EQ(r.scale, 2.5);
  EXPECT_EQ(roles(p),
            (std::vector<std::string>{"router", "bias", "gate", "up", "down",
                                      "shared_gate", "shared_up",
                                      "shared_down"}));
  EXPECT_EQ(p.operands[1].names[0],
            "model.layers.0.mlp.gate.e_score_correction_bias");
  EXPECT_TRUE(p.operands[1].alwaysF32);
  EXPECT_NE(planError("{\"model_type\": \"deepseek_v3\", " + kSizes +
                          "\"n_routed_experts\": 8, "
                          "\"moe_intermediate_size\": 3, "
                          "\"n_shared_experts\": 1, \"n_group\": 8, "
                          "\"topk_group\": 2}",
                      0)
                .find("at least 2 experts per group"),
            std::string::npos);
}

TEST(HfConfig, Qwen3Next) {
  // Qwen2-MoE's block: the gated shared expert; norm_topk_prob defaults to
  // true (Qwen3NextConfig).
  hf::LayerPlan p = plan("{\"model_type\": \"qwen3_next\", " + kSizes +
                             "\"num_experts\": 8, "
                             "\"moe_intermediate_size\": 3, "
                             "\"shared_expert_intermediate_size\": 5}",
                         0);
  EXPECT_TRUE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.shared, SharedKind::Gated);
  EXPECT_EQ(p.operands.back().names[0],
            "model.layers.0.mlp.shared_expert_gate.weight");
  EXPECT_EQ(p.operands[p.operands.size() - 2].shape,
            (std::vector<int64_t>{4, 5}));
}

TEST(HfConfig, Glm4Moe) {
  // Glm4MoeConfig's defaults: the first layer dense, no scaling, the top-k
  // weights renormalized; moe_layer_freq, scoring_func and topk_method are
  // not part of GLM-4.5's modeling code, whatever the file says.
  std::string base = "{\"model_type\": \"glm4_moe\", " + kSizes +
                     "\"n_routed_experts\": 8, \"moe_intermediate_size\": 3, "
                     "\"n_shared_experts\": 1, \"n_group\": 2, "
                     "\"topk_group\": 1, \"moe_layer_freq\": 2, "
                     "\"scoring_func\": \"softmax\", "
                     "\"topk_method\": \"greedy\"";
  EXPECT_EQ(sparseLayersOf(base + "}"), (std::vector<int64_t>{1, 2, 3})); // every one from 1
  hf::LayerPlan p = plan(base + "}", 1);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Sigmoid);
  EXPECT_EQ(r.select, Select::GroupedTopK);
  EXPECT_EQ(r.groupScore, GroupScore::SumTop2);
  EXPECT_EQ(r.groups, 2);
  EXPECT_EQ(r.topkGroup, 1);
  EXPECT_TRUE(r.renormalize);
  EXPECT_EQ(r.scale, 1.0);
  EXPECT_EQ(p.operands[1].names[0],
            "model.layers.1.mlp.gate.e_score_correction_bias");
  EXPECT_TRUE(p.operands[1].alwaysF32);
  EXPECT_EQ(p.operands.back().names[0],
            "model.layers.1.mlp.shared_experts.down_proj.weight");
  hf::LayerPlan scaled =
      plan(base + ", \"routed_scaling_factor\": 2.5, "
                  "\"first_k_dense_replace\": 0}",
           0);
  EXPECT_EQ(scaled.cfg.routing.scale, 2.5);
}

TEST(HfConfig, Glm4vMoe) {
  // GLM-4.5V: GLM-4.5's block and defaults (Glm4vMoeTextConfig derives
  // from Glm4MoeConfig), read from text_config, the tensors under
  // model.language_model.
  std::string text = "{\"model_type\": \"glm4v_moe_text\", " + kSizes +
                     "\"n_routed_experts\": 8, \"moe_intermediate_size\": 3, "
                     "\"n_shared_experts\": 1, \"n_group\": 1, "
                     "\"topk_group\": 1}";
  std::string config =
      "{\"model_type\": \"glm4v_moe\", \"text_config\": " + text + "}";
  EXPECT_EQ(sparseLayersOf(config), (std::vector<int64_t>{1, 2, 3}));
  hf::LayerPlan p = plan(config, 2);
  EXPECT_EQ(p.modelType, "glm4v_moe_text");
  EXPECT_EQ(p.cfg.routing.score, Score::Sigmoid);
  EXPECT_EQ(p.cfg.routing.groupScore, GroupScore::SumTop2);
  EXPECT_TRUE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.routing.scale, 1.0);
  EXPECT_EQ(p.operands[0].names[0],
            "model.language_model.layers.2.mlp.gate.weight");
  EXPECT_EQ(p.operands.back().names[0],
            "model.language_model.layers.2.mlp.shared_experts.down_proj."
            "weight");
  EXPECT_NE(planError("{\"model_type\": \"glm4v_moe\"}", 1)
                .find("without a text_config object"),
            std::string::npos);
}

TEST(HfConfig, Dots1) {
  // Dots1Config's defaults: no dense layer, one group, raw weights, no
  // scaling; DeepSeek-V3's router, which reads neither scoring_func nor
  // topk_method, and no moe_layer_freq.
  std::string base = "{\"model_type\": \"dots1\", " + kSizes +
                     "\"n_routed_experts\": 8, \"moe_intermediate_size\": 3, "
                     "\"n_shared_experts\": 2, \"moe_layer_freq\": 2, "
                     "\"scoring_func\": \"noaux_tc\", "
                     "\"topk_method\": \"greedy\"";
  EXPECT_EQ(sparseLayersOf(base + "}"), (std::vector<int64_t>{0, 1, 2, 3}));
  hf::LayerPlan p = plan(base + "}", 1);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Sigmoid);
  EXPECT_EQ(r.select, Select::GroupedTopK);
  EXPECT_EQ(r.groupScore, GroupScore::SumTop2);
  EXPECT_EQ(r.groups, 1);
  EXPECT_EQ(r.topkGroup, 1);
  EXPECT_FALSE(r.renormalize);
  EXPECT_EQ(r.scale, 1.0);
  EXPECT_EQ(p.operands[1].names[0],
            "model.layers.1.mlp.gate.e_score_correction_bias");
  EXPECT_EQ(p.operands.back().shape, (std::vector<int64_t>{4, 6}));
  hf::LayerPlan keyed =
      plan(base + ", \"norm_topk_prob\": true, \"routed_scaling_factor\": "
                  "2.5, \"first_k_dense_replace\": 1, \"n_group\": 2, "
                  "\"topk_group\": 1}",
           1);
  EXPECT_TRUE(keyed.cfg.routing.renormalize);
  EXPECT_EQ(keyed.cfg.routing.scale, 2.5);
  EXPECT_EQ(keyed.cfg.routing.groups, 2);
  EXPECT_NE(planError(base + ", \"first_k_dense_replace\": 1}", 0)
                .find("dense"),
            std::string::npos);
}

TEST(HfConfig, Ernie45Moe) {
  // Ernie4_5_MoeConfig's defaults: sparse from layer 1 to the last, every
  // layer; two experts' worth of shared FFN; k in moe_k; softmax scores
  // renormalized, the correction bias in moe_statics.
  std::string base = "{\"model_type\": \"ernie4_5_moe\", "
                     "\"hidden_size\": 4, \"num_hidden_layers\": 6, "
                     "\"moe_k\": 2, \"moe_num_experts\": 8, "
                     "\"moe_intermediate_size\": 3";
  EXPECT_EQ(sparseLayersOf(base + "}"), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  hf::LayerPlan p = plan(base + "}", 1);
  const RoutingConfig &r = p.cfg.routing;
  EXPECT_EQ(r.score, Score::Softmax);
  EXPECT_EQ(r.select, Select::TopK);
  EXPECT_EQ(r.k, 2);
  EXPECT_TRUE(r.renormalize);
  EXPECT_EQ(r.scale, 1.0);
  EXPECT_EQ(p.cfg.shared, SharedKind::Plain);
  EXPECT_EQ(p.operands[1].names[0],
            "model.layers.1.mlp.moe_statics.e_score_correction_bias");
  EXPECT_EQ(p.operands[1].shape, (std::vector<int64_t>{8}));
  EXPECT_EQ(p.operands[2].names[7],
            "model.layers.1.mlp.experts.7.gate_proj.weight");
  EXPECT_EQ(p.operands.back().names[0],
            "model.layers.1.mlp.shared_experts.down_proj.weight");
  EXPECT_EQ(p.operands.back().shape, (std::vector<int64_t>{4, 6}));
  // Each key: the start, end and interval of the sparse layers, and the
  // shared experts.
  std::string keyed = base + ", \"moe_layer_start_index\": 0, "
                             "\"moe_layer_end_index\": 4, "
                             "\"moe_layer_interval\": 2, "
                             "\"moe_num_shared_experts\": 0}";
  EXPECT_EQ(sparseLayersOf(keyed), (std::vector<int64_t>{1, 3}));
  hf::LayerPlan unshared = plan(keyed, 3);
  EXPECT_EQ(unshared.cfg.shared, SharedKind::None);
  EXPECT_EQ(unshared.operands.back().names[0],
            "model.layers.3.mlp.experts.0.down_proj.weight");
  EXPECT_NE(planError(keyed, 5).find("dense"), std::string::npos);
  EXPECT_NE(planError(base + ", \"use_bias\": true}", 1).find("use_bias"),
            std::string::npos);
  std::string tooMany = base;
  tooMany.replace(tooMany.find("\"moe_k\": 2"), 10, "\"moe_k\": 9");
  EXPECT_NE(planError(tooMany + "}", 1).find("moe_k exceeds"),
            std::string::npos);
}

TEST(HfConfig, MiniMaxIsMixtral) {
  // MiniMax-Text-01 and -M1: Mixtral's block and router in every layer.
  std::string config = "{\"model_type\": \"minimax\", " + kSizes +
                       "\"num_local_experts\": 3, \"intermediate_size\": 5}";
  EXPECT_EQ(sparseLayersOf(config), (std::vector<int64_t>{0, 1, 2, 3}));
  hf::LayerPlan p = plan(config, 2);
  EXPECT_TRUE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.routing.score, Score::Softmax);
  EXPECT_EQ(roles(p),
            (std::vector<std::string>{"router", "gate", "up", "down"}));
  EXPECT_EQ(p.operands[3].names[2],
            "model.layers.2.block_sparse_moe.experts.2.w2.weight");
}

TEST(HfConfig, FlexOlmoIsOlmoe) {
  // FlexOlmo: OLMoE's block in every layer; norm_topk_prob false by
  // default.
  std::string base = "{\"model_type\": \"flex_olmo\", " + kSizes +
                     "\"num_experts\": 7, \"intermediate_size\": 5";
  hf::LayerPlan p = plan(base + "}", 3);
  EXPECT_EQ(p.E, 7);
  EXPECT_FALSE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.operands[0].names[0], "model.layers.3.mlp.gate.weight");
  EXPECT_EQ(p.operands[1].names[6],
            "model.layers.3.mlp.experts.6.gate_proj.weight");
  EXPECT_TRUE(plan(base + ", \"norm_topk_prob\": true}", 0)
                  .cfg.routing.renormalize);
}

TEST(HfConfig, Jamba) {
  // JambaConfig's defaults: every second layer sparse from layer 1; softmax
  // scores, the top k as they are; the router named router, under
  // feed_forward.
  std::string base = "{\"model_type\": \"jamba\", \"hidden_size\": 4, "
                     "\"num_hidden_layers\": 6, \"num_experts_per_tok\": 2, "
                     "\"num_experts\": 8, \"intermediate_size\": 3";
  EXPECT_EQ(sparseLayersOf(base + "}"), (std::vector<int64_t>{1, 3, 5}));
  hf::LayerPlan p = plan(base + ", \"norm_topk_prob\": true}", 1);
  EXPECT_EQ(p.cfg.routing.score, Score::Softmax);
  EXPECT_EQ(p.cfg.routing.select, Select::TopK);
  EXPECT_FALSE(p.cfg.routing.renormalize);  // not a key of Jamba's
  EXPECT_EQ(p.cfg.routing.scale, 1.0);
  EXPECT_EQ(p.cfg.shared, SharedKind::None);
  EXPECT_EQ(roles(p),
            (std::vector<std::string>{"router", "gate", "up", "down"}));
  EXPECT_EQ(p.operands[0].names[0],
            "model.layers.1.feed_forward.router.weight");
  EXPECT_EQ(p.operands[3].names[7],
            "model.layers.1.feed_forward.experts.7.down_proj.weight");
  std::string keyed = base + ", \"expert_layer_period\": 3, "
                             "\"expert_layer_offset\": 0}";
  EXPECT_EQ(sparseLayersOf(keyed), (std::vector<int64_t>{0, 3}));
  EXPECT_NE(planError(keyed, 1).find("dense"), std::string::npos);
  EXPECT_NE(planError(base + ", \"expert_layer_offset\": 2}", 1)
                .find("expert_layer_offset must be less than"),
            std::string::npos);
}

TEST(HfConfig, Dbrx) {
  // DbrxConfig's own size names and ffn_config; DbrxFFNConfig's defaults:
  // silu, the top k divided by their sum (moe_normalize_expert_weights 1).
  std::string base = "{\"model_type\": \"dbrx\", \"d_model\": 4, "
                     "\"n_layers\": 2, \"ffn_config\": {"
                     "\"moe_num_experts\": 3, \"moe_top_k\": 2, "
                     "\"ffn_hidden_size\": 5";
  EXPECT_EQ(sparseLayersOf(base + "}}"), (std::vector<int64_t>{0, 1}));
  hf::LayerPlan p = plan(base + "}}", 1);
  EXPECT_EQ(p.E, 3);
  EXPECT_EQ(p.f, 5);
  EXPECT_EQ(p.d, 4);
  EXPECT_EQ(p.cfg.routing.score, Score::Softmax);
  EXPECT_TRUE(p.cfg.routing.renormalize);
  EXPECT_EQ(p.cfg.act, Act::Silu);
  EXPECT_EQ(roles(p),
            (std::vector<std::string>{"router", "gate", "up", "down"}));
  EXPECT_EQ(p.operands[0].names[0],
            "transformer.blocks.1.ffn.router.layer.weight");
  EXPECT_EQ(p.operands[1].names[0], "transformer.blocks.1.ffn.experts.mlp.w1");
  EXPECT_EQ(p.operands[2].names[0], "transformer.blocks.1.ffn.experts.mlp.v1");
  EXPECT_EQ(p.operands[3].names[0], "transformer.blocks.1.ffn.experts.mlp.w2");
  EXPECT_FALSE(p.operands[1].stacked);
  EXPECT_TRUE(p.operands[3].transposed);
  EXPECT_EQ(p.operands[3].shape, (std::vector<int64_t>{3, 4, 5}));
  EXPECT_FALSE(
      plan(base + ", \"moe_normalize_expert_weights\": null}}", 0)
          .cfg.routing.renormalize);
  EXPECT_EQ(plan(base + ", \"ffn_act_fn\": {\"name\": \"gelu\"}}}", 0).cfg.act,
            Act::GeluErf);
  EXPECT_NE(planError(base + ", \"moe_normalize_expert_weights\": 2}}", 0)
                .find("moe_normalize_expert_weights other than 1 or null"),
            std::string::npos);
  EXPECT_NE(planError("{\"model_type\": \"dbrx\", \"d_model\": 4, "
                      "\"n_layers\": 2}",
                      0)
                .find("without an ffn_config object"),
            std::string::npos);
  EXPECT_NE(planError("{\"model_type\": \"dbrx\", \"d_model\": 4, "
                      "\"n_layers\": 2, \"ffn_config\": {"
                      "\"moe_num_experts\": 3, \"ffn_hidden_size\": 5}}",
                      0)
                .find("config.json: ffn_config: missing key \"moe_top_k\""),
            std::string::npos);
}

TEST(HfConfig, GptOss) {
  // GptOssMLP: the router's bias, the top k of the logits and a softmax
  // over them; the fused experts [in, out] with gate and up interleaved,
  // their biases, the clamped SwiGLU; every layer sparse.
  std::string base = "{\"model_type\": \"gpt_oss\", " + kSizes +
                     "\"num_local_experts\": 4, \"intermediate_size\": 3";
  EXPECT_EQ(sparseLayersOf(base + "}"), (std::vector<int64_t>{0, 1, 2, 3}));
  hf::LayerPlan p = plan(base + "}", 2);
  EXPECT_EQ(p.cfg.routing.score, Score::Logits);
  EXPECT_EQ(p.cfg.routing.weights, Weights::SoftmaxSelected);
  EXPECT_EQ(p.cfg.act, Act::SwigluOai);
  EXPECT_EQ(roles(p), (std::vector<std::string>{"router", "router_bias",
                                                "gate_up", "down",
                                                "gate_up_bias", "down_bias"}));
  EXPECT_EQ(p.operands[1].names[0], "model.layers.2.mlp.router.bias");
  EXPECT_TRUE(p.operands[2].transposed && p.operands[2].interleaved);
  EXPECT_TRUE(p.operands[3].transposed && !p.operands[3].interleaved);
  EXPECT_TRUE(p.operands[4].interleaved && !p.operands[4].transposed);
  EXPECT_EQ(p.operands[4].shape, (std::vector<int64_t>{4, 6}));
  EXPECT_NE(planError(base + ", \"swiglu_limit\": 8}", 0)
                .find("swiglu_limit other than 7"),
            std::string::npos);
}

TEST(HfConfig, Errors) {
  EXPECT_NE(planError("{\"model_type\": \"llama\"}", 0)
                .find("config.json: unsupported model_type \"llama\""),
            std::string::npos);
  EXPECT_NE(planError("{\"model_type\": \"mixtral\", \"hidden_size\": \"4\"}", 0)
                .find("\"hidden_size\" must be an integer, found a string"),
            std::string::npos);
  EXPECT_NE(planError("{\"model_type\": \"mixtral\", " + kSizes +
                          "\"num_local_experts\": 3}",
                      0)
                .find("missing key \"intermediate_size\""),
            std::string::npos);
  EXPECT_NE(planError("{\"model_type\": \"mixtral\", " + kSizes +
                          "\"num_local_experts\": 1, "
                          "\"intermediate_size\": 5}",
                      0)
                .find("num_experts_per_tok exceeds"),
            std::string::npos);
  EXPECT_NE(planError("{\"model_type\": \"mixtral\", " + kSizes +
                          "\"num_local_experts\": 3, "
                          "\"intermediate_size\": 5, \"hidden_act\": \"tanh\"}",
                      0)
                .find("unsupported hidden_act \"tanh\""),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Tiny models, from the files to y
//===----------------------------------------------------------------------===//

Mat mat(int64_t r, int64_t c, std::vector<double> v) {
  Mat m(r, c);
  m.v = std::move(v);
  return m;
}

/// Plans, reads and runs layer 0 of the model in `dir` on `x`.
LayerResult runModel(const std::string &dir, const Mat &x) {
  std::ifstream f(dir + "/config.json");
  std::string text((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  hf::LayerPlan p;
  st::Reader r;
  hf::LayerWeights w;
  std::string err;
  EXPECT_TRUE(hf::planLayer(parseOk(text), "config.json", 0, &p, &err) &&
              r.openDir(dir, &err) && hf::loadWeights(r, p, &w, &err))
      << err;
  return layer(p.cfg, hf::layerInputs(p, w, x), nullptr);
}

/// Writes a tiny model (its config.json and F32 tensors) to a directory of
/// its own, runs its layer 0 on `x`, and removes it.
LayerResult runTinyModel(const std::string &name, const std::string &config,
                         const F32Tensors &tensors, const Mat &x) {
  std::string dir = tempDir(name);
  writeBytes(dir + "/config.json", config);
  tensors.write(dir + "/model.safetensors");
  LayerResult res = runModel(dir, x);
  fs::remove_all(dir);
  return res;
}

// Mixtral, d = 2, E = 2, f = 1, k = 1, x = [1, 0]:
//   Wg = I -> z = [1, 0]: expert 0, softmax weight e / (e + 1), renormalized
//   over the one slot: 1.
//   Expert 0: w1 = [2, 0], w3 = [3, 0], w2 = [1, 0.5]^T:
//   gate x = 2, up x = 3, h = silu(2) * 3 = 3 * 2 / (1 + e^-2),
//   y = [h, h / 2] = [5.284782467867295, 2.6423912339336475].
// Expert 1 (all 9s) would give something else entirely.
TEST(TinyModel, MixtralByHand) {
  std::string config =
      "{\"model_type\": \"mixtral\", \"hidden_size\": 2, "
      "\"num_hidden_layers\": 1, \"num_local_experts\": 2, "
      "\"num_experts_per_tok\": 1, \"intermediate_size\": 1, "
      "\"hidden_act\": \"silu\"}";
  std::string p = "model.layers.0.block_sparse_moe.";
  F32Tensors tensors;
  tensors.add(p + "gate.weight", "[2,2]", {1, 0, 0, 1});
  tensors.add(p + "experts.0.w1.weight", "[1,2]", {2, 0});
  tensors.add(p + "experts.0.w3.weight", "[1,2]", {3, 0});
  tensors.add(p + "experts.0.w2.weight", "[2,1]", {1, 0.5});
  tensors.add(p + "experts.1.w1.weight", "[1,2]", {9, 9});
  tensors.add(p + "experts.1.w3.weight", "[1,2]", {9, 9});
  tensors.add(p + "experts.1.w2.weight", "[2,1]", {9, 9});
  LayerResult res =
      runTinyModel("mixtral", config, tensors, mat(1, 2, {1, 0}));
  double h = 3.0 * 2.0 / (1.0 + std::exp(-2.0));
  EXPECT_EQ(res.routing.id(0, 0), 0);
  EXPECT_NEAR(res.y.at(0, 0), h, 1e-14);
  EXPECT_NEAR(res.y.at(0, 1), h / 2, 1e-14);
  EXPECT_NEAR(h, 5.284782467867295, 1e-14);
}

// Granite, d = 2, E = 1, f = 1, k = 1, x = [1, 1]: input_linear [1, 2, 2]
// holds the gate row [1, 0] first, then the up row [0, 2]; output_linear
// [1, 2, 1] = [1, -1]. gate x = 1, up x = 2: h = silu(1) * 2 =
// 2 / (1 + e^-1) = 1.4621171572600098; the softmax over one selected logit
// is 1; y = [h, -h]. Swapping gate and up would give silu(2) * 1 = 1.7616.
TEST(TinyModel, GraniteFusedGateFirst) {
  std::string dir = tempDir("granite");
  writeBytes(dir + "/config.json",
             "{\"model_type\": \"granitemoe\", \"hidden_size\": 2, "
             "\"num_hidden_layers\": 1, \"num_local_experts\": 1, "
             "\"num_experts_per_tok\": 1, \"intermediate_size\": 1}");
  std::string p = "model.layers.0.block_sparse_moe.";
  writeSafetensors(
      dir + "/model.safetensors",
      "{\"" + p + "router.layer.weight\":{\"dtype\":\"BF16\",\"shape\":[1,2],"
      "\"data_offsets\":[0,4]},\"" + p + "input_linear.weight\":{\"dtype\":"
      "\"BF16\",\"shape\":[1,2,2],\"data_offsets\":[4,12]},\"" + p +
      "output_linear.weight\":{\"dtype\":\"BF16\",\"shape\":[1,2,1],"
      "\"data_offsets\":[12,16]}}",
      // bf16: 1 = 0x3F80, 2 = 0x4000, -1 = 0xBF80, 0.5 = 0x3F00.
      u16Bytes({0x3F00, 0x3F00, 0x3F80, 0, 0, 0x4000, 0x3F80, 0xBF80}));
  LayerResult res = runModel(dir, mat(1, 2, {1, 1}));
  double h = 2.0 / (1.0 + std::exp(-1.0));
  EXPECT_NEAR(res.y.at(0, 0), h, 1e-14);
  EXPECT_NEAR(res.y.at(0, 1), -h, 1e-14);
  EXPECT_NEAR(h, 1.4621171572600098, 1e-14);

  // A tensor of another dtype than the router's is refused.
  writeSafetensors(
      dir + "/model.safetensors",
      "{\"" + p + "router.layer.weight\":{\"dtype\":\"BF16\",\"shape\":[1,2],"
      "\"data_offsets\":[0,4]},\"" + p + "input_linear.weight\":{\"dtype\":"
      "\"F16\",\"shape\":[1,2,2],\"data_offsets\":[4,12]},\"" + p +
      "output_linear.weight\":{\"dtype\":\"BF16\",\"shape\":[1,2,1],"
      "\"data_offsets\":[12,16]}}",
      u16Bytes({0, 0, 0, 0, 0, 0, 0, 0}));
  std::ifstream f(dir + "/config.json");
  std::string text((std::istreambuf_iterator<char>(f)),
                   std::istreambuf_iterator<char>());
  hf::LayerPlan plan;
  st::Reader r;
  hf::LayerWeights w;
  std::string err;
  ASSERT_TRUE(hf::planLayer(parseOk(text), "config.json", 0, &plan, &err));
  ASSERT_TRUE(r.openDir(dir, &err)) << err;
  EXPECT_FALSE(hf::loadWeights(r, plan, &w, &err));
  EXPECT_NE(err.find("input_linear.weight has dtype F16, expected bf16"),
            std::string::npos)
      << err;
  fs::remove_all(dir);
}

// DBRX, d = 2, E = 2, f = 2, k = 1, x = [1, 0]: the router is I, so
// expert 0, weight 1. w1 and v1 stack the experts' [f, d] rows: expert 0's
// gate x = [2, 1] and up x = [3, 1], so h = [3 silu(2), silu(1)]. w2 stacks
// each expert's down projection stored [in, out]: expert 0's [[1, 2],
// [0, 4]] gives y = h W = [h0, 2 h0 + 4 h1]; read as [out, in] it would give
// [h0 + 2 h1, 4 h1]. Expert 1 (all 9s) would give something else entirely.
TEST(TinyModel, DbrxStackedExpertsDownInOut) {
  std::string config =
      "{\"model_type\": \"dbrx\", \"d_model\": 2, \"n_layers\": 1, "
      "\"ffn_config\": {\"moe_num_experts\": 2, \"moe_top_k\": 1, "
      "\"ffn_hidden_size\": 2}}";
  std::string p = "transformer.blocks.0.ffn.";
  F32Tensors tensors;
  tensors.add(p + "router.layer.weight", "[2,2]", {1, 0, 0, 1});
  tensors.add(p + "experts.mlp.w1", "[4,2]", {2, 0, 1, 0, 9, 9, 9, 9});
  tensors.add(p + "experts.mlp.v1", "[4,2]", {3, 0, 1, 0, 9, 9, 9, 9});
  tensors.add(p + "experts.mlp.w2", "[4,2]", {1, 2, 0, 4, 9, 9, 9, 9});
  LayerResult res =
      runTinyModel("dbrx", config, tensors, mat(1, 2, {1, 0}));
  double h0 = 3.0 * 2.0 / (1.0 + std::exp(-2.0));
  double h1 = 1.0 / (1.0 + std::exp(-1.0));
  EXPECT_EQ(res.routing.id(0, 0), 0);
  EXPECT_NEAR(res.y.at(0, 0), h0, 1e-14);
  EXPECT_NEAR(res.y.at(0, 1), 2 * h0 + 4 * h1, 1e-14);
  EXPECT_NEAR(2 * h0 + 4 * h1, 13.49379925025461, 1e-13);
}

// GPT-OSS, d = 1, E = 1, f = 2, k = 1, x = [1]: gate_up_proj [1, 1, 4]
// holds (gate, up) pairs, [g0, u0, g1, u1] = [1, 2, 3, 4], and its bias
// [0.5, -1, 0, 0.25] the same way: gate = [1.5, 3], up = [1, 4.25]. h =
// (clamp(u, -7, 7) + 1) g sigmoid(1.702 g) = [2.783324396894153,
// 15.655125624034124]; down_proj [1, 2, 1] = [1, -2] and its bias 0.125:
// y = h0 - 2 h1 + 0.125. Read without the interleaving (gate = [1, 2]) it
// would be something else.
TEST(TinyModel, GptOssInterleavedGateUp) {
  std::string config =
      "{\"model_type\": \"gpt_oss\", \"hidden_size\": 1, "
      "\"num_hidden_layers\": 1, \"num_local_experts\": 1, "
      "\"num_experts_per_tok\": 1, \"intermediate_size\": 2}";
  std::string p = "model.layers.0.mlp.";
  F32Tensors tensors;
  tensors.add(p + "router.weight", "[1,1]", {1});
  tensors.add(p + "router.bias", "[1]", {0});
  tensors.add(p + "experts.gate_up_proj", "[1,1,4]", {1, 2, 3, 4});
  tensors.add(p + "experts.gate_up_proj_bias", "[1,4]", {0.5, -1, 0, 0.25});
  tensors.add(p + "experts.down_proj", "[1,2,1]", {1, -2});
  tensors.add(p + "experts.down_proj_bias", "[1,1]", {0.125});
  LayerResult res =
      runTinyModel("gpt-oss", config, tensors, mat(1, 1, {1}));
  EXPECT_NEAR(res.y.at(0, 0), -28.401926851174096, 1e-12);
}

// The Granite layer above with block-scaled FP8 experts (blocks of 1 x 2,
// one scale per row): input_linear codes [1, 0; 0, 2] (0x38 = 1, 0x40 = 2)
// with scales [0.5; 2] hold the gate row [0.5, 0] and the up row [0, 4];
// output_linear codes [1; -1] (0xB8 = -1) with scales [1.5; 0.25] hold
// [1.5; -0.25]. gate x = 0.5, up x = 4: h = silu(0.5) * 4 =
// 2 / (1 + e^-0.5) = 1.2449186624037092; y = [1.5 h, -0.25 h].
TEST(TinyModel, BlockScaledFP8) {
  std::string dir = tempDir("fp8");
  writeBytes(dir + "/config.json",
             "{\"model_type\": \"granitemoe\", \"hidden_size\": 2, "
             "\"num_hidden_layers\": 1, \"num_local_experts\": 1, "
             "\"num_experts_per_tok\": 1, \"intermediate_size\": 1, "
             "\"quantization_config\": {\"quant_method\": \"fp8\", "
             "\"weight_block_size\": [1, 2]}}");
  std::string p = "model.layers.0.block_sparse_moe.";
  writeSafetensors(
      dir + "/model.safetensors",
      "{\"" + p + "router.layer.weight\":{\"dtype\":\"BF16\",\"shape\":[1,2],"
      "\"data_offsets\":[0,4]},\"" + p + "input_linear.weight\":{\"dtype\":"
      "\"F8_E4M3\",\"shape\":[1,2,2],\"data_offsets\":[4,8]},\"" + p +
      "input_linear.weight_scale_inv\":{\"dtype\":\"F32\",\"shape\":[1,2,1],"
      "\"data_offsets\":[8,16]},\"" + p + "output_linear.weight\":{\"dtype\":"
      "\"F8_E4M3\",\"shape\":[1,2,1],\"data_offsets\":[16,18]},\"" + p +
      "output_linear.weight_scale_inv\":{\"dtype\":\"F32\",\"shape\":[1,2,1],"
      "\"data_offsets\":[18,26]}}",
      u16Bytes({0x3F00, 0x3F00}) + std::string("\x38\x00\x00\x40", 4) +
          f32Bytes({0.5f, 2.0f}) + std::string("\x38\xB8", 2) +
          f32Bytes({1.5f, 0.25f}));
  LayerResult res = runModel(dir, mat(1, 2, {1, 1}));
  double h = 2.0 / (1.0 + std::exp(-0.5));
  EXPECT_NEAR(res.y.at(0, 0), 1.5 * h, 1e-14);
  EXPECT_NEAR(res.y.at(0, 1), -0.25 * h, 1e-14);
  EXPECT_NEAR(h, 1.2449186624037092, 1e-14);
  fs::remove_all(dir);
}

} // namespace
