//===- moe-reference.cpp - Test cases and an oracle for moe-mlir ----------===//
//
//   moe-reference emit --case "SPEC" --seed S --tokens 0,1,7,33 --dir D
//   moe-reference emit-model --model M --layer L --seed S --tokens 0,1,7,33 --dir D
//   moe-reference compare --dir D [--tol X]
//
// `emit` writes D/case.mlir (one public function @case), and for each token
// count a directory D/set<i> with the inputs arg<k>.npy, the expected
// outputs ref<k>.npy (f64 or i64) computed by the f64 reference model, and
// info.txt (op=layer: also coactivation.json, the selection's co-activated
// pairs); plus D/moe-run.args. `emit-model` writes such sets for the
// function @moe_layer_L that `moe-import` makes of layer L of a Hugging Face
// checkpoint: the hidden states arg0.npy and the output ref0.npy, computed
// from the checkpoint's config.json and weights as read by HfModel.h.
// `compare` checks the out<k>.npy files that moe-run wrote against the
// references.
//
// SPEC is a whitespace-separated list of key=value; see usage() below.
//
//===----------------------------------------------------------------------===//

#include "HfModel.h"
#include "Json.h"
#include "MoEReference.h"
#include "Npy.h"
#include "SafeTensorsReader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace moeref;
using npy::DType;

namespace {

[[noreturn]] void fail(const std::string &msg) {
  std::cerr << "moe-reference: error: " << msg << "\n";
  std::exit(1);
}

const char *kUsage = R"(usage:
  moe-reference emit --case "SPEC" --seed S --tokens T0,T1,... --dir D
  moe-reference emit-model --model M --layer L --seed S --tokens T0,T1,...
      --dir D [--weights-as-args 0|1] [--dtype f32|f16|bf16]
      (cases for @moe_layer_L of `moe-import --model M`: hidden states drawn
       in the checkpoint's dtype, the reference from M's config.json and
       weights; with --weights-as-args 1 also the weights as arg1.npy, ...
       for `moe-import --weights-as-arguments`; with --dtype, for
       `moe-import --dtype`: the weights rounded to it, the hidden states
       drawn in it; FP8 weights are their f32 products with their scales,
       rounded to the layer's dtype)
  moe-reference compare --dir D [--tol X]
  moe-reference mock-run --dir D [--perturb SET:OUT:INDEX] [--nan SET:OUT:INDEX]
      (writes the out<k>.npy a correct moe-run would write: the references
       rounded to the result types; for testing `compare`)

SPEC: whitespace-separated key=value pairs (defaults in brackets):
  op=layer|route|expert_choice|dispatch|losses|grouped_matmul [layer]
  E [8] d [32] f [48] k [2] r [4] d_out [=d] fs [64] dtype=f32|f16|bf16 [f32]
  wdtype=f32|f16|bf16 [=dtype] (the weights' element type)
  score=softmax|sigmoid|sqrt_softplus|logits [softmax]
  select=top_k|grouped_top_k|top_p|threshold|expert_choice [top_k]
  groups [1] topk_group group_score=max|sum_top2 top_p tau tau_operand=0|1
  weights=scores|softmax_selected renormalize=0|1 scale [1.0]
  apply=output|input router_bias=0|1 selection_bias=0|1
  capacity=none|count:N|factor:F cap_min [0] cap_align [1]
  drop_order=choice_major|token_major|score renorm_after_drop=0|1
  experts=gated|gated_fused|mlp|lora|lora_gated
  act=silu|gelu_tanh|gelu_erf|relu|swiglu_oai (swiglu_oai: gated experts)
  expert_bias=0|1 (gated experts: a bias on every projection, GPT-OSS)
  alpha [8.0] shared=none|plain|plain_fused|gated
  data=random|ties|one_expert|nonfinite [random] bias0 [30.0] (one_expert bias)
  transpose=0|1 (grouped_matmul: rhs [E, M, K])
)";

//===----------------------------------------------------------------------===//
// The case specification
//===----------------------------------------------------------------------===//

struct Spec {
  std::string text;
  std::string op = "layer";
  int64_t E = 8, d = 32, f = 48, k = 2, r = 4, dOut = -1, fs = 64;
  DType dtype = DType::F32;
  std::optional<DType> wdtype; // weights, when not `dtype`
  LayerConfig cfg;
  bool fused = false;
  /// shared=plain_fused: the shared expert's gate and up as one [2 fs, d].
  bool sharedFused = false;
  /// expert_bias=1: a bias [E, n] for each expert weight [E, n, k].
  bool expertBias = false;
  bool tauOperand = false, routerBias = false, selectionBias = false;
  bool dropOrderGiven = false;
  std::string data = "random";
  double bias0 = 30.0;
  bool transpose = false;
};

int64_t parseInt(const std::string &key, const std::string &v) {
  size_t pos = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos != v.size() || v.empty())
    fail("`" + key + "` expects an integer, found `" + v + "`");
  return x;
}

double parseFloat(const std::string &key, const std::string &v) {
  size_t pos = 0;
  double x = 0;
  try {
    x = std::stod(v, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos != v.size() || v.empty() || !std::isfinite(x))
    fail("`" + key + "` expects a finite number, found `" + v + "`");
  return x;
}

bool parseBool(const std::string &key, const std::string &v) {
  if (v == "0" || v == "false") return false;
  if (v == "1" || v == "true") return true;
  fail("`" + key + "` expects 0 or 1, found `" + v + "`");
}

template <typename T>
T parseEnum(const std::string &key, const std::string &v,
            const std::vector<std::pair<const char *, T>> &cases) {
  for (auto &c : cases)
    if (v == c.first) return c.second;
  std::string all;
  for (auto &c : cases) all += std::string(all.empty() ? "" : "|") + c.first;
  fail("`" + key + "` expects one of " + all + ", found `" + v + "`");
}

const char *name(Select x);

Spec parseSpec(const std::string &text) {
  Spec s;
  s.text = text;
  RoutingConfig &rt = s.cfg.routing;
  CapacityConfig &cap = s.cfg.capacity;
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    size_t eq = tok.find('=');
    if (eq == std::string::npos || eq == 0)
      fail("expected key=value in the case spec, found `" + tok + "`");
    std::string key = tok.substr(0, eq);
    if (kv.count(key)) fail("`" + key + "` given twice");
    kv[key] = tok.substr(eq + 1);
  }
  bool haveTopP = false, haveTau = false, haveTopkGroup = false;
  bool haveGroupKeys = false, haveRenormAfterDrop = false;
  for (auto &[key, v] : kv) {
    if (key == "op") {
      if (v != "layer" && v != "route" && v != "expert_choice" &&
          v != "dispatch" && v != "losses" && v != "grouped_matmul")
        fail("unknown op `" + v + "`");
      s.op = v;
    } else if (key == "E") s.E = parseInt(key, v);
    else if (key == "d") s.d = parseInt(key, v);
    else if (key == "f") s.f = parseInt(key, v);
    else if (key == "k") s.k = parseInt(key, v);
    else if (key == "r") s.r = parseInt(key, v);
    else if (key == "d_out") s.dOut = parseInt(key, v);
    else if (key == "fs") s.fs = parseInt(key, v);
    else if (key == "dtype")
      s.dtype = parseEnum<DType>(key, v, {{"f32", DType::F32},
                                          {"f16", DType::F16},
                                          {"bf16", DType::BF16}});
    else if (key == "wdtype")
      s.wdtype = parseEnum<DType>(key, v, {{"f32", DType::F32},
                                           {"f16", DType::F16},
                                           {"bf16", DType::BF16}});
    else if (key == "score")
      rt.score = parseEnum<Score>(key, v, {{"softmax", Score::Softmax},
                                           {"sigmoid", Score::Sigmoid},
                                           {"sqrt_softplus", Score::SqrtSoftplus},
                                           {"logits", Score::Logits}});
    else if (key == "select")
      rt.select = parseEnum<Select>(key, v,
                                    {{"top_k", Select::TopK},
                                     {"grouped_top_k", Select::GroupedTopK},
                                     {"top_p", Select::TopP},
                                     {"threshold", Select::Threshold},
                                     {"expert_choice", Select::ExpertChoice}});
    else if (key == "groups") {
      rt.groups = parseInt(key, v);
      haveGroupKeys = true;
    } else if (key == "topk_group") {
      rt.topkGroup = parseInt(key, v);
      haveTopkGroup = haveGroupKeys = true;
    } else if (key == "group_score") {
      rt.groupScore = parseEnum<GroupScore>(
          key, v, {{"max", GroupScore::Max}, {"sum_top2", GroupScore::SumTop2}});
      haveGroupKeys = true;
    } else if (key == "top_p") {
      rt.topP = parseFloat(key, v);
      haveTopP = true;
    } else if (key == "tau") {
      rt.tau = parseFloat(key, v);
      haveTau = true;
    } else if (key == "tau_operand") s.tauOperand = parseBool(key, v);
    else if (key == "weights")
      rt.weights = parseEnum<Weights>(
          key, v, {{"scores", Weights::Scores},
                   {"softmax_selected", Weights::SoftmaxSelected}});
    else if (key == "renormalize") rt.renormalize = parseBool(key, v);
    else if (key == "scale") rt.scale = parseFloat(key, v);
    else if (key == "apply")
      rt.apply = parseEnum<Apply>(key, v, {{"output", Apply::Output},
                                           {"input", Apply::Input}});
    else if (key == "router_bias") s.routerBias = parseBool(key, v);
    else if (key == "selection_bias") s.selectionBias = parseBool(key, v);
    else if (key == "capacity") {
      if (v == "none") cap.kind = CapKind::None;
      else if (v.rfind("count:", 0) == 0) {
        cap.kind = CapKind::Count;
        cap.count = parseInt(key, v.substr(6));
      } else if (v.rfind("factor:", 0) == 0) {
        cap.kind = CapKind::Factor;
        cap.factor = parseFloat(key, v.substr(7));
      } else fail("`capacity` expects none, count:N or factor:F, found `" + v + "`");
    } else if (key == "cap_min") cap.min = parseInt(key, v);
    else if (key == "cap_align") cap.align = parseInt(key, v);
    else if (key == "drop_order") {
      cap.order = parseEnum<DropOrder>(key, v,
                                       {{"choice_major", DropOrder::ChoiceMajor},
                                        {"token_major", DropOrder::TokenMajor},
                                        {"score", DropOrder::Score}});
      s.dropOrderGiven = true;
    } else if (key == "renorm_after_drop") {
      cap.renormalizeAfterDrop = parseBool(key, v);
      haveRenormAfterDrop = true;
    } else if (key == "experts") {
      s.fused = v == "gated_fused";
      s.cfg.kind = parseEnum<ExpertKind>(key, v,
                                         {{"gated", ExpertKind::Gated},
                                          {"gated_fused", ExpertKind::Gated},
                                          {"mlp", ExpertKind::Mlp},
                                          {"lora", ExpertKind::Lora},
                                          {"lora_gated", ExpertKind::LoraGated}});
    } else if (key == "act")
      s.cfg.act = parseEnum<Act>(key, v, {{"silu", Act::Silu},
                                          {"gelu_tanh", Act::GeluTanh},
                                          {"gelu_erf", Act::GeluErf},
                                          {"relu", Act::Relu},
                                          {"swiglu_oai", Act::SwigluOai}});
    else if (key == "expert_bias") s.expertBias = parseBool(key, v);
    else if (key == "alpha") s.cfg.alpha = parseFloat(key, v);
    else if (key == "shared") {
      s.sharedFused = v == "plain_fused";
      s.cfg.shared = parseEnum<SharedKind>(key, v,
                                           {{"none", SharedKind::None},
                                            {"plain", SharedKind::Plain},
                                            {"plain_fused", SharedKind::Plain},
                                            {"gated", SharedKind::Gated}});
    }
    else if (key == "data") {
      if (v != "random" && v != "ties" && v != "one_expert" && v != "nonfinite")
        fail("`data` expects random|ties|one_expert|nonfinite, found `" + v + "`");
      s.data = v;
    } else if (key == "bias0") s.bias0 = parseFloat(key, v);
    else if (key == "transpose") s.transpose = parseBool(key, v);
    else fail("unknown key `" + key + "` in the case spec");
  }

  // Consistency: the dialect verifier checks the IR; these checks keep the
  // tool from emitting cases whose meaning the reference does not define.
  if (s.dOut < 0) s.dOut = s.d;
  if (s.E < 1 || s.d < 1 || s.f < 1 || s.k < 1 || s.r < 1 || s.fs < 1 ||
      s.dOut < 1)
    fail("sizes must be >= 1");
  if (s.op == "expert_choice") {
    if (kv.count("select") && rt.select != Select::ExpertChoice)
      fail("op=expert_choice selects by expert choice; drop `select`");
    rt.select = Select::ExpertChoice;
  }
  bool ec = rt.select == Select::ExpertChoice;
  if (s.op == "route" && ec)
    fail("op=route does not do expert choice; use op=expert_choice");
  if (s.op == "losses" && ec)
    fail("op=losses takes token-choice routing (top_k, grouped_top_k, top_p, "
         "threshold)");
  if (ec && rt.scale != 1.0)
    fail("scale with expert choice: the specification does not say whether "
         "`scale` multiplies expert-choice weights, so no case is emitted");
  if (ec && (s.dropOrderGiven || haveRenormAfterDrop))
    fail("drop_order and renorm_after_drop do not apply to expert choice");
  if (ec && (s.selectionBias || s.tauOperand))
    fail("expert choice takes no selection bias and no tau");
  if (ec && (rt.renormalize || rt.weights != Weights::Scores))
    fail("expert choice weighs each token by its score: renormalize and "
         "weights=softmax_selected do not apply");
  if ((ec || rt.select == Select::TopP) && rt.score != Score::Softmax)
    fail(std::string(name(rt.select)) + " ranks softmax scores: score must "
         "be softmax");
  if (s.op != "grouped_matmul" && s.k > s.E) fail("k must be <= E");
  if (rt.select == Select::GroupedTopK &&
      (rt.groups < 1 || rt.topkGroup < 1 || rt.topkGroup > rt.groups))
    fail("grouped_top_k needs 1 <= topk_group <= groups");
  if (rt.select == Select::GroupedTopK && rt.groups >= 1 && s.E % rt.groups == 0 &&
      s.k > rt.topkGroup * (s.E / rt.groups))
    fail("k must be <= topk_group * E / groups (the selectable experts)");
  if (rt.select == Select::GroupedTopK && rt.groupScore == GroupScore::SumTop2 &&
      rt.groups >= 1 && s.E / rt.groups < 2)
    fail("group_score=sum_top2 needs at least 2 experts per group");
  if (s.op == "layer" && cap.renormalizeAfterDrop && rt.scale != 1.0)
    fail("renorm_after_drop would cancel scale (moe.layer rejects both)");
  if (rt.scale <= 0.0) fail("scale must be > 0");
  if (rt.select == Select::TopP && !haveTopP) fail("select=top_p needs top_p");
  if (rt.select == Select::Threshold && !haveTau)
    fail("select=threshold needs tau");
  if (rt.select != Select::Threshold && (haveTau || s.tauOperand))
    fail("tau applies only to select=threshold");
  if (rt.select != Select::TopP && haveTopP)
    fail("top_p applies only to select=top_p");
  if (rt.select == Select::GroupedTopK && !haveTopkGroup)
    fail("select=grouped_top_k needs topk_group");
  if (rt.select != Select::GroupedTopK && haveGroupKeys)
    fail("groups, topk_group and group_score apply only to grouped_top_k");
  if (rt.select == Select::GroupedTopK && (rt.groups < 1 || s.E % rt.groups != 0))
    fail("groups must divide E");
  if (s.data == "one_expert") s.routerBias = true;
  if (s.dOut != s.d && s.cfg.kind != ExpertKind::Lora)
    fail("d_out != d needs experts=lora");
  if ((s.expertBias || s.cfg.act == Act::SwigluOai) &&
      s.cfg.kind != ExpertKind::Gated)
    fail("expert_bias and act=swiglu_oai need experts=gated or gated_fused");
  if (s.dOut != s.d && s.cfg.shared != SharedKind::None)
    fail("d_out != d with shared experts: their output [T, d] cannot be "
         "added to [T, d_out]");
  if (cap.kind == CapKind::None && (cap.min != 0 || cap.align != 1 ||
                                    s.dropOrderGiven || haveRenormAfterDrop))
    fail("cap_min, cap_align, drop_order and renorm_after_drop need a capacity");
  if (cap.align < 1 || cap.min < 0) fail("cap_align >= 1 and cap_min >= 0");
  if (s.op == "grouped_matmul" && (s.data == "ties" || s.data == "one_expert"))
    fail("data=" + s.data + " has no meaning for grouped_matmul");
  if (s.op == "layer" || s.op == "grouped_matmul") return s;
  // The ops below have no experts.
  if (s.cfg.shared != SharedKind::None || kv.count("experts"))
    fail("experts and shared apply to op=layer only");
  return s;
}

//===----------------------------------------------------------------------===//
// IR text
//===----------------------------------------------------------------------===//

/// Shortest round-trip spelling of a double, always with a dot (MLIR
/// float literals need one): 1.0, 2.5, 1.0e-05.
std::string fmtFloat(double x) {
  char buf[64];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::string s = buf;
  if (s.find('.') == std::string::npos) {
    size_t e = s.find('e');
    if (e == std::string::npos) s += ".0";
    else s.insert(e, ".0");
  }
  return s;
}

const char *elemType(DType t) {
  switch (t) {
  case DType::F32: return "f32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::I32: return "i32";
  case DType::I64: return "i64";
  case DType::F64: return "f64";
  }
  return "?";
}

/// tensor<?x32xf32>; -1 is the dynamic token dimension; {} is a 0-d tensor.
std::string tensorType(const std::vector<int64_t> &dims, DType t) {
  std::string s = "tensor<";
  for (int64_t x : dims) s += (x < 0 ? "?" : std::to_string(x)) + "x";
  return s + elemType(t) + ">";
}

const char *name(Score x) {
  const char *n[] = {"softmax", "sigmoid", "sqrt_softplus", "logits"};
  return n[int(x)];
}
const char *name(Select x) {
  const char *n[] = {"top_k", "grouped_top_k", "top_p", "threshold",
                     "expert_choice"};
  return n[int(x)];
}
const char *name(DropOrder x) {
  const char *n[] = {"choice_major", "token_major", "score"};
  return n[int(x)];
}
const char *name(Act x) {
  const char *n[] = {"silu", "gelu_tanh", "gelu_erf", "relu", "swiglu_oai"};
  return n[int(x)];
}
const char *name(ExpertKind x) {
  const char *n[] = {"gated", "mlp", "lora", "lora_gated"};
  return n[int(x)];
}

std::string routingParams(const Spec &s) {
  const RoutingConfig &r = s.cfg.routing;
  std::string p = std::string("score = ") + name(r.score) +
                  ", selection = " + name(r.select) +
                  ", k = " + std::to_string(s.k);
  if (r.select == Select::GroupedTopK)
    p += ", groups = " + std::to_string(r.groups) +
         ", topk_group = " + std::to_string(r.topkGroup) + ", group_score = " +
         (r.groupScore == GroupScore::Max ? "max" : "sum_top2");
  if (r.select == Select::TopP) p += ", top_p = " + fmtFloat(r.topP);
  if (r.select == Select::Threshold && !s.tauOperand)
    p += ", tau = " + fmtFloat(r.tau);
  if (r.weights == Weights::SoftmaxSelected) p += ", weights = softmax_selected";
  if (r.renormalize) p += ", renormalize = true";
  if (r.scale != 1.0) p += ", scale = " + fmtFloat(r.scale);
  if (r.apply == Apply::Input) p += ", apply_weight = input";
  return p;
}

/// The parameters of #moe.capacity<...>, or "" without a capacity.
std::string capacityParams(const Spec &s) {
  const CapacityConfig &c = s.cfg.capacity;
  if (c.kind == CapKind::None) return "";
  std::string p = c.kind == CapKind::Count
                      ? "count = " + std::to_string(c.count)
                      : "factor = " + fmtFloat(c.factor);
  if (c.min != 0) p += ", min = " + std::to_string(c.min);
  if (c.align != 1) p += ", align = " + std::to_string(c.align);
  if (s.dropOrderGiven) p += std::string(", drop_order = ") + name(c.order);
  if (c.renormalizeAfterDrop) p += ", renormalize_after_drop = true";
  return p;
}

//===----------------------------------------------------------------------===//
// Function arguments and their random contents
//===----------------------------------------------------------------------===//

enum class ArgKind { Normal, Scalar, GroupSizes };

struct ArgSpec {
  std::string ssa;
  DType dtype;
  std::vector<int64_t> dims; // -1: the token dimension T
  double stddev = 1.0;
  ArgKind kind = ArgKind::Normal;
};

struct Case {
  Spec spec;
  std::vector<ArgSpec> args;
  std::map<std::string, size_t> index;
  void add(const std::string &ssa, DType t, std::vector<int64_t> dims,
           double fanIn, ArgKind kind = ArgKind::Normal) {
    index[ssa] = args.size();
    args.push_back({ssa, t, std::move(dims), 1.0 / std::sqrt(fanIn), kind});
  }
  bool has(const std::string &ssa) const { return index.count(ssa) != 0; }
};

Case buildArgs(const Spec &s) {
  Case c;
  c.spec = s;
  DType t = s.wdtype.value_or(s.dtype); // weights
  int64_t E = s.E, d = s.d, f = s.f, r = s.r;
  if (s.op == "grouped_matmul") {
    c.add("lhs", s.dtype, {-1, d}, 1.0);
    c.add("rhs", t, s.transpose ? std::vector<int64_t>{E, f, d}
                                : std::vector<int64_t>{E, d, f},
          double(d));
    c.add("sizes", DType::I64, {E}, 1.0, ArgKind::GroupSizes);
    return c;
  }
  c.add("x", s.dtype, {-1, d}, 1.0);
  c.add("wg", t, {E, d}, double(d));
  if (s.routerBias) c.add("bg", t, {E}, 4.0); // N(0, 1/2)
  if (s.selectionBias) c.add("sb", DType::F32, {E}, 25.0); // N(0, 1/5)
  if (s.tauOperand) c.add("tau", DType::F32, {}, 1.0, ArgKind::Scalar);
  if (s.op != "layer") return c;
  switch (s.cfg.kind) {
  case ExpertKind::Gated:
    if (s.fused) {
      c.add("gate_up", t, {E, 2 * f, d}, double(d));
    } else {
      c.add("gate", t, {E, f, d}, double(d));
      c.add("up", t, {E, f, d}, double(d));
    }
    c.add("down", t, {E, d, f}, double(f));
    // Wide biases (sd about 3), so that swiglu_oai's clamps at +-7 bite.
    if (s.expertBias && s.fused) {
      c.add("bgate_up", t, {E, 2 * f}, 0.1);
    } else if (s.expertBias) {
      c.add("bgate", t, {E, f}, 0.1);
      c.add("bup", t, {E, f}, 0.1);
    }
    if (s.expertBias) c.add("bdown", t, {E, d}, 0.1);
    break;
  case ExpertKind::Mlp:
    c.add("w1", t, {E, f, d}, double(d));
    c.add("w2", t, {E, d, f}, double(f));
    break;
  case ExpertKind::Lora:
    c.add("base", t, {s.dOut, d}, double(d));
    c.add("lora_a", t, {E, r, d}, double(d));
    c.add("lora_b", t, {E, s.dOut, r}, double(r));
    break;
  case ExpertKind::LoraGated:
    c.add("gate", t, {f, d}, double(d));
    c.add("up", t, {f, d}, double(d));
    c.add("down", t, {d, f}, double(f));
    c.add("a_gate", t, {E, r, d}, double(d));
    c.add("b_gate", t, {E, f, r}, double(r));
    c.add("a_up", t, {E, r, d}, double(d));
    c.add("b_up", t, {E, f, r}, double(r));
    c.add("a_down", t, {E, r, f}, double(f));
    c.add("b_down", t, {E, d, r}, double(r));
    break;
  }
  if (s.sharedFused) {  // gate rows, then up rows
    c.add("sgate_up", t, {2 * s.fs, d}, double(d));
    c.add("sdown", t, {d, s.fs}, double(s.fs));
  } else if (s.cfg.shared != SharedKind::None) {
    c.add("sgate", t, {s.fs, d}, double(d));
    c.add("sup", t, {s.fs, d}, double(d));
    c.add("sdown", t, {d, s.fs}, double(s.fs));
    if (s.cfg.shared == SharedKind::Gated) c.add("sw", t, {1, d}, double(d));
  }
  return c;
}

/// The names of the expert (or shared) operands of moe.layer, in order.
std::vector<std::string> expertOperands(const Case &c) {
  std::vector<std::string> names;
  for (const char *n : {"gate_up", "gate", "up", "down", "w1", "w2", "base",
                        "lora_a", "lora_b", "a_gate", "b_gate", "a_up", "b_up",
                        "a_down", "b_down"})
    if (c.has(n)) names.push_back(n);
  return names;
}

std::string argType(const Case &c, const std::string &ssa) {
  const ArgSpec &a = c.args[c.index.at(ssa)];
  if (a.kind == ArgKind::Scalar) return "f32";
  return tensorType(a.dims, a.dtype);
}

/// "(%a, %b : ta, tb)"
std::string operandList(const Case &c, const std::vector<std::string> &ssa) {
  std::string vals, types;
  for (size_t i = 0; i < ssa.size(); ++i) {
    vals += (i ? ", %" : "%") + ssa[i];
    types += (i ? ", " : "") + argType(c, ssa[i]);
  }
  return "(" + vals + " : " + types + ")";
}

struct Body {
  std::string text;
  std::vector<std::string> results, resultTypes;
  std::vector<DType> resultDTypes; // element types of the results
};

/// %z = moe.router ... and, for token choice, %ids, %w = moe.route ...
void emitRouting(const Case &c, Body &b, bool route) {
  const Spec &s = c.spec;
  std::string xt = argType(c, "x"), wt = argType(c, "wg");
  std::string zt = tensorType({-1, s.E}, DType::F32);
  b.text += "  %z = moe.router %x, %wg";
  if (c.has("bg")) b.text += " bias(%bg : " + argType(c, "bg") + ")";
  b.text += " : " + xt + ", " + wt + "\n";
  if (!route) return;
  if (s.cfg.routing.select == Select::ExpertChoice) {
    b.text += "  %tok, %tw, %ids, %w = moe.expert_choice %z k = " +
              std::to_string(s.k);
    std::string cp = capacityParams(s);
    if (!cp.empty()) b.text += " capacity <" + cp + ">";
    b.text += " : " + zt + "\n";
    return;
  }
  b.text += "  %ids, %w = moe.route %z";
  if (c.has("sb")) b.text += " bias(%sb : " + argType(c, "sb") + ")";
  if (c.has("tau")) b.text += " tau(%tau)";
  b.text += " <" + routingParams(s) + "> : " + zt + "\n";
}

/// The body of @case: its ops, results and result types.
Body buildBody(const Case &c) {
  const Spec &s = c.spec;
  bool ec = s.cfg.routing.select == Select::ExpertChoice;
  int64_t S = ec ? s.E : s.k;
  std::string zt = tensorType({-1, s.E}, DType::F32);
  std::string idt = tensorType({-1, S}, DType::I32);
  std::string wt = tensorType({-1, S}, DType::F32);
  std::string et = tensorType({s.E}, DType::I64);
  std::string scalar = tensorType({}, DType::F32);
  Body b;
  if (s.op == "layer") {
    b.text += "  %y, %load, %dropped = moe.layer %x router" +
              operandList(c, c.has("bg") ? std::vector<std::string>{"wg", "bg"}
                                         : std::vector<std::string>{"wg"});
    if (c.has("sb")) b.text += " bias(%sb : " + argType(c, "sb") + ")";
    if (c.has("tau")) b.text += " tau(%tau)";
    b.text += "\n      experts" + operandList(c, expertOperands(c));
    if (s.expertBias) {
      std::vector<std::string> biases;
      for (const char *n : {"bgate_up", "bgate", "bup", "bdown"})
        if (c.has(n)) biases.push_back(n);
      b.text += "\n      expert_biases" + operandList(c, biases);
    }
    if (s.cfg.shared != SharedKind::None) {
      std::vector<std::string> sh =
          s.sharedFused ? std::vector<std::string>{"sgate_up", "sdown"}
                        : std::vector<std::string>{"sgate", "sup", "sdown"};
      if (c.has("sw")) sh.push_back("sw");
      b.text += "\n      shared" + operandList(c, sh);
    }
    b.text += "\n      {routing = #moe.routing<" + routingParams(s) + ">";
    std::string cp = capacityParams(s);
    if (!cp.empty()) b.text += ",\n       capacity = #moe.capacity<" + cp + ">";
    b.text += std::string(",\n       experts = #moe.experts<kind = ") +
              name(s.cfg.kind) + ", act = " + name(s.cfg.act);
    if (s.cfg.kind == ExpertKind::Lora || s.cfg.kind == ExpertKind::LoraGated)
      b.text += ", alpha = " + fmtFloat(s.cfg.alpha);
    b.text += ">} : " + argType(c, "x") + "\n";
    b.results = {"%y", "%load", "%dropped"};
    b.resultTypes = {tensorType({-1, s.dOut}, s.dtype), et, et};
    b.resultDTypes = {s.dtype, DType::I64, DType::I64};
  } else if (s.op == "route") {
    emitRouting(c, b, true);
    b.results = {"%z", "%ids", "%w"};
    b.resultTypes = {zt, idt, wt};
    b.resultDTypes = {DType::F32, DType::I32, DType::F32};
  } else if (s.op == "expert_choice") {
    emitRouting(c, b, true);
    int64_t C = s.cfg.capacity.kind == CapKind::Count
                    ? expertChoiceCapacity(s.cfg.capacity, 0, s.k, s.E)
                    : -1;
    b.results = {"%tok", "%tw", "%ids", "%w"};
    b.resultTypes = {tensorType({s.E, C}, DType::I32),
                     tensorType({s.E, C}, DType::F32), idt, wt};
    b.resultDTypes = {DType::I32, DType::F32, DType::I32, DType::F32};
  } else if (s.op == "dispatch") {
    emitRouting(c, b, true);
    b.text += "  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped = "
              "moe.dispatch %ids, %w experts = " + std::to_string(s.E);
    std::string cp = capacityParams(s);
    if (!cp.empty() && !ec) b.text += " capacity <" + cp + ">";
    b.text += " : " + idt + ", " + wt + "\n";
    b.results = {"%rt", "%rw", "%sr", "%sw", "%sizes", "%offsets", "%dropped"};
    b.resultTypes = {tensorType({-1}, DType::I32), tensorType({-1}, DType::F32),
                     idt, wt, et, et, et};
    b.resultDTypes = {DType::I32, DType::F32, DType::I32, DType::F32,
                      DType::I64, DType::I64, DType::I64};
  } else if (s.op == "losses") {
    emitRouting(c, b, true);
    for (const char *conv : {"switch", "all_k", "all_k_mean"})
      b.text += std::string("  %aux_") + conv + " = moe.aux_loss %z, %ids "
                "convention = " + conv + " : " + zt + ", " + idt + "\n";
    b.text += "  %zl = moe.z_loss %z : " + zt + "\n";
    b.text += "  %load = moe.expert_load %ids experts = " + std::to_string(s.E) +
              " : " + idt + "\n";
    b.results = {"%aux_switch", "%aux_all_k", "%aux_all_k_mean", "%zl", "%load"};
    b.resultTypes = {scalar, scalar, scalar, scalar, et};
    b.resultDTypes = {DType::F32, DType::F32, DType::F32, DType::F32,
                      DType::I64};
  } else { // grouped_matmul
    b.text += "  %res = moe.grouped_matmul %lhs, %rhs, %sizes";
    if (s.transpose) b.text += " transpose_rhs";
    b.text += " : " + argType(c, "lhs") + ", " + argType(c, "rhs") + ", " +
              argType(c, "sizes") + "\n";
    b.results = {"%res"};
    b.resultTypes = {tensorType({-1, s.f}, s.dtype)};
    b.resultDTypes = {s.dtype};
  }
  return b;
}

std::string functionText(const Case &c) {
  const Spec &s = c.spec;
  Body b = buildBody(c);

  std::string sig;
  for (size_t i = 0; i < c.args.size(); ++i)
    sig += (i ? ", %" : "%") + c.args[i].ssa + ": " + argType(c, c.args[i].ssa);
  std::string res, resTypes;
  for (size_t i = 0; i < b.results.size(); ++i) {
    res += (i ? ", " : "") + b.results[i];
    resTypes += (i ? ", " : "") + b.resultTypes[i];
  }
  return "// Generated by moe-reference from the case spec:\n//   " + s.text +
         "\nfunc.func @case(" + sig + ")\n    -> (" + resTypes +
         ") attributes {llvm.emit_c_interface} {\n" + b.text + "  return " +
         res + " : " + resTypes + "\n}\n";
}

//===----------------------------------------------------------------------===//
// Random inputs
//===----------------------------------------------------------------------===//

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Portable random numbers: std::mt19937_64 is specified bit for bit; the
/// distributions are ours (the std ones differ between libraries).
struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(g() >> 11) * (1.0 / 9007199254740992.0); }
  /// Approximately N(0, 1): the Irwin-Hall sum of 12 uniforms, minus 6
  /// (exact IEEE arithmetic, so identical everywhere).
  double normal() {
    double s = 0.0;
    for (int i = 0; i < 12; ++i) s += uniform();
    return s - 6.0;
  }
  int64_t below(int64_t n) { return n <= 0 ? 0 : int64_t(g() % uint64_t(n)); }
};

uint64_t subSeed(uint64_t seed, uint64_t set, uint64_t redraw) {
  return splitmix64(seed ^ splitmix64((set << 20) + redraw));
}

std::vector<int64_t> concreteShape(const ArgSpec &a, int64_t T) {
  std::vector<int64_t> s = a.dims;
  for (int64_t &x : s)
    if (x < 0) x = T;
  return s;
}

/// Copies row `from` of a 2-D (or 1-D: element) array onto row `to`.
void copyRow(npy::Array &a, int64_t from, int64_t to) {
  int64_t n = a.shape.size() > 1 ? a.shape[1] : 1;
  if (from >= a.shape[0] || to >= a.shape[0]) return;
  for (int64_t c = 0; c < n; ++c)
    a.f[size_t(to * n + c)] = a.f[size_t(from * n + c)];
}

std::vector<npy::Array> drawInputs(const Case &c, int64_t T, Rng &rng) {
  const Spec &s = c.spec;
  std::vector<npy::Array> arrays;
  for (const ArgSpec &a : c.args) {
    npy::Array arr;
    arr.dtype = a.dtype;
    arr.shape = concreteShape(a, T);
    int64_t n = arr.numElements();
    if (a.kind == ArgKind::GroupSizes) {
      // Sizes summing to at most N = T, some groups empty, a few rows of
      // padding at the end.
      int64_t total = T - rng.below(std::min<int64_t>(T, 3) + 1);
      std::vector<int64_t> cuts;
      for (int64_t e = 0; e + 1 < n; ++e) cuts.push_back(rng.below(total + 1));
      cuts.push_back(0);
      cuts.push_back(total);
      std::sort(cuts.begin(), cuts.end());
      for (size_t e = 0; e + 1 < cuts.size(); ++e)
        arr.i.push_back(cuts[e + 1] - cuts[e]);
    } else if (a.kind == ArgKind::Scalar) {
      arr.f = {s.cfg.routing.tau};
    } else {
      for (int64_t q = 0; q < n; ++q) arr.f.push_back(rng.normal() * a.stddev);
    }
    arrays.push_back(std::move(arr));
  }
  auto get = [&](const char *ssa) -> npy::Array * {
    return c.has(ssa) ? &arrays[c.index.at(ssa)] : nullptr;
  };
  if (s.data == "ties") {
    // Identical router rows (and biases): experts 1 and 2, 3 and 6 tie
    // exactly for every token. Identical tokens 1 and 3, 2 and 5 tie in
    // expert choice and in the score drop order.
    for (const char *w : {"wg", "bg", "sb"})
      if (npy::Array *a = get(w)) {
        if (s.E > 2) copyRow(*a, 1, 2);
        if (s.E > 6) copyRow(*a, 3, 6);
      }
    copyRow(*get("x"), 1, 3);
    copyRow(*get("x"), 2, 5);
  }
  if (s.data == "one_expert") get("bg")->f[0] += s.bias0;
  if (s.data == "nonfinite") {
    npy::Array *x = get(s.op == "grouped_matmul" ? "lhs" : "x");
    int64_t d = x->shape[1];
    if (T > 1) x->f[size_t(d)] = std::numeric_limits<double>::quiet_NaN();
    if (T > 2)
      x->f[size_t(2 * d + std::min<int64_t>(1, d - 1))] =
          std::numeric_limits<double>::infinity();
  }
  for (npy::Array &a : arrays)
    for (double &v : a.f) v = npy::roundTo(a.dtype, v);
  return arrays;
}

//===----------------------------------------------------------------------===//
// The reference outputs
//===----------------------------------------------------------------------===//

Mat toMat(const npy::Array &a) {
  Mat m(a.shape[0], a.shape[1]);
  m.v = a.f;
  return m;
}

std::vector<Mat> toMats(const npy::Array &a) {
  std::vector<Mat> ms;
  int64_t per = a.shape[1] * a.shape[2];
  for (int64_t e = 0; e < a.shape[0]; ++e) {
    Mat m(a.shape[1], a.shape[2]);
    std::copy(a.f.begin() + e * per, a.f.begin() + (e + 1) * per, m.v.begin());
    ms.push_back(m);
  }
  return ms;
}

npy::Array floats(std::vector<int64_t> shape, Vec v) {
  npy::Array a;
  a.dtype = DType::F64;
  a.shape = std::move(shape);
  a.f = std::move(v);
  return a;
}

npy::Array ints(std::vector<int64_t> shape, std::vector<int64_t> v) {
  npy::Array a;
  a.dtype = DType::I64;
  a.shape = std::move(shape);
  a.i = std::move(v);
  return a;
}

struct Reference {
  std::vector<npy::Array> outputs;
  /// op=layer: the co-activation counts of the selection, [E * E].
  std::vector<int64_t> coactivation;
  Margins margins;
  std::string violation; // a requested data property that the draw lacks
};

Reference computeReference(const Case &c, const std::vector<npy::Array> &in,
                           int64_t T) {
  const Spec &s = c.spec;
  RoutingConfig rt = s.cfg.routing;
  rt.k = s.k;
  Reference ref;
  auto arg = [&](const char *ssa) -> const npy::Array & {
    return in[c.index.at(ssa)];
  };
  if (s.op == "grouped_matmul") {
    Mat out = groupedMatmul(toMat(arg("lhs")), toMats(arg("rhs")),
                            arg("sizes").i, s.transpose);
    ref.outputs.push_back(floats({T, s.f}, out.v));
    return ref;
  }
  if (c.has("tau")) rt.tau = arg("tau").f[0]; // the f32 value of the operand
  Mat x = toMat(arg("x"));
  Mat wg = toMat(arg("wg"));
  const Vec *bg = c.has("bg") ? &arg("bg").f : nullptr;
  const Vec *sb = c.has("sb") ? &arg("sb").f : nullptr;
  Margins *mg = &ref.margins;
  Assignments routing;

  if (s.op == "layer") {
    LayerConfig cfg = s.cfg;
    cfg.routing = rt;
    LayerInputs li;
    li.x = x;
    li.wg = wg;
    li.hasRouterBias = bg != nullptr;
    if (bg) li.routerBias = *bg;
    li.hasSelectionBias = sb != nullptr;
    if (sb) li.selectionBias = *sb;
    ExpertWeights &w = li.experts;
    w.kind = cfg.kind;
    w.act = cfg.act;
    w.alpha = cfg.alpha;
    if (c.has("gate_up")) {
      for (const Mat &gu : toMats(arg("gate_up"))) {
        Mat g, u;
        splitGateUp(gu, &g, &u);
        w.gate.push_back(g);
        w.up.push_back(u);
      }
      w.down = toMats(arg("down"));
    } else if (cfg.kind == ExpertKind::Gated) {
      w.gate = toMats(arg("gate"));
      w.up = toMats(arg("up"));
      w.down = toMats(arg("down"));
    } else if (cfg.kind == ExpertKind::Mlp) {
      w.gate = toMats(arg("w1"));
      w.down = toMats(arg("w2"));
    } else if (cfg.kind == ExpertKind::Lora) {
      w.base = toMat(arg("base"));
      w.a = toMats(arg("lora_a"));
      w.b = toMats(arg("lora_b"));
    } else {
      w.baseGate = toMat(arg("gate"));
      w.baseUp = toMat(arg("up"));
      w.baseDown = toMat(arg("down"));
      w.aGate = toMats(arg("a_gate"));
      w.bGate = toMats(arg("b_gate"));
      w.aUp = toMats(arg("a_up"));
      w.bUp = toMats(arg("b_up"));
      w.aDown = toMats(arg("a_down"));
      w.bDown = toMats(arg("b_down"));
    }
    // Expert biases: rows of [E, n] (a fused gate_up's: gate, then up).
    auto rowsOf = [&](const char *n, int64_t first, int64_t count) {
      const npy::Array &a = arg(n);
      std::vector<Vec> rows;
      for (int64_t e = 0; e < a.shape[0]; ++e)
        rows.emplace_back(a.f.begin() + e * a.shape[1] + first,
                          a.f.begin() + e * a.shape[1] + first + count);
      return rows;
    };
    if (c.has("bgate_up")) {
      w.gateBias = rowsOf("bgate_up", 0, s.f);
      w.upBias = rowsOf("bgate_up", s.f, s.f);
    } else if (c.has("bgate")) {
      w.gateBias = rowsOf("bgate", 0, s.f);
      w.upBias = rowsOf("bup", 0, s.f);
    }
    if (c.has("bdown")) w.downBias = rowsOf("bdown", 0, s.d);
    li.shared.kind = cfg.shared;
    li.shared.act = cfg.act;
    if (c.has("sgate_up")) {
      splitGateUp(toMat(arg("sgate_up")), &li.shared.gate, &li.shared.up);
    } else if (cfg.shared != SharedKind::None) {
      li.shared.gate = toMat(arg("sgate"));
      li.shared.up = toMat(arg("sup"));
    }
    if (cfg.shared != SharedKind::None) {
      li.shared.down = toMat(arg("sdown"));
      if (cfg.shared == SharedKind::Gated) li.shared.gateWeight = toMat(arg("sw"));
    }
    LayerResult res = layer(cfg, li, mg);
    routing = res.routing;
    ref.outputs.push_back(floats({T, s.dOut}, res.y.v));
    ref.outputs.push_back(ints({s.E}, res.assignments));
    ref.outputs.push_back(ints({s.E}, res.dropped));
    ref.coactivation = coactivation(res.routing, s.E);
  } else {
    Mat z = routerLogits(x, wg, bg);
    if (rt.select == Select::ExpertChoice) {
      ExpertChoiceResult ec = expertChoice(z, s.k, s.cfg.capacity, s.E, mg);
      routing = ec.slots;
      if (s.op == "expert_choice") {
        ref.outputs.push_back(ints({s.E, ec.C}, ec.tokenIds));
        ref.outputs.push_back(floats({s.E, ec.C}, ec.tokenWeights));
        ref.outputs.push_back(ints({T, s.E}, routing.ids));
        ref.outputs.push_back(floats({T, s.E}, routing.w));
      }
    } else {
      routing = route(z, rt, sb, mg);
    }
    int64_t S = routing.S;
    if (s.op == "route") {
      ref.outputs.push_back(floats({T, s.E}, z.v));
      ref.outputs.push_back(ints({T, S}, routing.ids));
      ref.outputs.push_back(floats({T, S}, routing.w));
    } else if (s.op == "dispatch") {
      CapacityConfig cap = rt.select == Select::ExpertChoice ? CapacityConfig()
                                                             : s.cfg.capacity;
      DispatchResult d = dispatch(routing, s.E, cap, weightFloor(rt), mg);
      ref.outputs.push_back(ints({T * S}, d.rowToken));
      ref.outputs.push_back(floats({T * S}, d.rowWeight));
      ref.outputs.push_back(ints({T, S}, d.slotRow));
      ref.outputs.push_back(floats({T, S}, d.slotWeight));
      ref.outputs.push_back(ints({s.E}, d.groupSizes));
      ref.outputs.push_back(ints({s.E}, d.groupOffsets));
      ref.outputs.push_back(ints({s.E}, d.dropped));
    } else if (s.op == "losses") {
      for (AuxConv conv : {AuxConv::Switch, AuxConv::AllK, AuxConv::AllKMean})
        ref.outputs.push_back(floats({}, {auxLoss(z, routing, conv)}));
      ref.outputs.push_back(floats({}, {zLoss(z)}));
      ref.outputs.push_back(ints({s.E}, expertLoad(routing, s.E)));
    }
  }

  if (s.data == "one_expert" && rt.select != Select::ExpertChoice)
    for (int64_t t = 0; t < T; ++t)
      if (routing.id(t, 0) != 0) {
        ref.violation = "token " + std::to_string(t) +
                        " does not choose expert 0 first";
        break;
      }
  for (size_t i = 0; i < in.size(); ++i) {
    const npy::Array &a = in[i];
    if (a.isInt() || a.f.empty() || c.args[i].kind == ArgKind::Scalar) continue;
    if (std::all_of(a.f.begin(), a.f.end(), [](double v) { return v == 0.0; }))
      ref.violation = "input %" + c.args[i].ssa + " is all zeros";
  }
  return ref;
}

//===----------------------------------------------------------------------===//
// emit
//===----------------------------------------------------------------------===//

/// Co-activation counts [E * E] as the statistics snapshot lists them
/// (docs/monitoring.md): {"num_experts": E, "coactivation": [[i, j, count],
/// ...]} with i < j and count > 0, in (i, j) order.
std::string coactivationJSON(const std::vector<int64_t> &pairs, int64_t E) {
  std::string list;
  for (int64_t i = 0; i < E; ++i)
    for (int64_t j = i + 1; j < E; ++j)
      if (int64_t n = pairs[size_t(i * E + j)])
        list += (list.empty() ? "[" : ",[") + std::to_string(i) + "," +
                std::to_string(j) + "," + std::to_string(n) + "]";
  return "{\"num_experts\": " + std::to_string(E) + ", \"coactivation\": [" +
         list + "]}\n";
}

void writeFile(const fs::path &p, const std::string &text) {
  std::ofstream f(p);
  f << text;
  if (!f) fail("cannot write " + p.string());
}

void writeNpy(const fs::path &p, const npy::Array &a) {
  std::string err;
  if (!npy::write(p.string(), a, &err)) fail(err);
}

int emit(const std::string &specText, uint64_t seed,
         const std::vector<int64_t> &tokens, const std::string &dir) {
  Case c = buildArgs(parseSpec(specText));
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create " + dir + ": " + ec.message());
  writeFile(fs::path(dir) / "case.mlir", functionText(c));
  std::string runArgs;
  for (size_t i = 0; i < tokens.size(); ++i) {
    int64_t T = tokens[i];
    std::string setName = "set" + std::to_string(i);
    fs::path setDir = fs::path(dir) / setName;
    fs::create_directories(setDir, ec);
    if (ec) fail("cannot create " + setDir.string() + ": " + ec.message());
    std::string rejected;
    const int kMaxDraws = 101; // the first draw and up to 100 redraws
    int redraw = 0;
    std::vector<npy::Array> inputs;
    Reference ref;
    for (; redraw < kMaxDraws; ++redraw) {
      Rng rng(subSeed(seed, i, uint64_t(redraw)));
      inputs = drawInputs(c, T, rng);
      ref = computeReference(c, inputs, T);
      if (ref.margins.count == 0 && ref.violation.empty()) break;
      std::string why = ref.violation.empty()
                            ? std::to_string(ref.margins.count) +
                                  " ambiguous decision(s), first: " +
                                  ref.margins.notes[0]
                            : ref.violation;
      if (redraw < 10)
        rejected += "  draw " + std::to_string(redraw) + ": " + why + "\n";
    }
    if (redraw == kMaxDraws)
      fail(setName + " (T = " + std::to_string(T) + "): every one of " +
           std::to_string(kMaxDraws) + " draws was rejected:\n" + rejected);
    for (size_t a = 0; a < inputs.size(); ++a)
      writeNpy(setDir / ("arg" + std::to_string(a) + ".npy"), inputs[a]);
    for (size_t o = 0; o < ref.outputs.size(); ++o)
      writeNpy(setDir / ("ref" + std::to_string(o) + ".npy"), ref.outputs[o]);
    if (!ref.coactivation.empty())
      writeFile(setDir / "coactivation.json",
                coactivationJSON(ref.coactivation, c.spec.E));
    char seedBuf[32];
    std::snprintf(seedBuf, sizeof seedBuf, "0x%016llx",
                  static_cast<unsigned long long>(
                      subSeed(seed, i, uint64_t(redraw))));
    std::string info = "case: " + c.spec.text + "\nT = " + std::to_string(T) +
                       "\nseed = " + std::to_string(seed) + " (set " +
                       std::to_string(i) + ", draw " + std::to_string(redraw) +
                       ": mt19937_64 sub-seed " + seedBuf + ")\nredraws = " +
                       std::to_string(redraw) + "\n";
    if (!rejected.empty()) info += "rejected draws:\n" + rejected;
    writeFile(setDir / "info.txt", info);
    runArgs += " --case-dir=" + (fs::path(dir) / setName).string();
  }
  writeFile(fs::path(dir) / "moe-run.args", runArgs + "\n");
  std::cout << "emit: " << tokens.size() << " set(s) in " << dir << "\n";
  return 0;
}

//===----------------------------------------------------------------------===//
// emit-model
//===----------------------------------------------------------------------===//

std::string readText(const fs::path &p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail(p.string() + ": cannot read");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

/// Cases for the imported function @moe_layer_L of a Hugging Face model:
/// the weights come from the checkpoint (read by our own reader), the
/// hidden states are drawn; the reference output is computed from both.
/// With `weightsAsArgs`, each set also holds the weights as arg1.npy, ...
/// in moe.layer operand order (for `moe-import --weights-as-arguments`).
/// With `dtype`, the layer computes in that element type (`moe-import
/// --dtype`): the weights but the f32 bias are rounded to it, and the
/// hidden states are drawn in it.
int emitModel(const std::string &modelDir, int64_t layerIndex, uint64_t seed,
              const std::vector<int64_t> &tokens, const std::string &dir,
              bool weightsAsArgs, const DType *dtype) {
  fs::path configPath = fs::path(modelDir) / "config.json";
  std::string err;
  json::Value config;
  if (!json::parse(readText(configPath), &config, &err))
    fail(configPath.string() + ": invalid JSON: " + err);
  // A Model Optimizer export may describe its quantization only in
  // hf_quant_config.json: its "quantization" reads as a quantization_config
  // of quant_method "modelopt".
  fs::path hfQuantPath = fs::path(modelDir) / "hf_quant_config.json";
  if (config.kind == json::Value::Kind::Object &&
      !config.get("quantization_config") && fs::exists(hfQuantPath)) {
    json::Value hfQuant;
    if (!json::parse(readText(hfQuantPath), &hfQuant, &err))
      fail(hfQuantPath.string() + ": invalid JSON: " + err);
    const json::Value *quantization = hfQuant.get("quantization");
    if (!quantization || quantization->kind != json::Value::Kind::Object)
      fail(hfQuantPath.string() + ": no \"quantization\" object");
    json::Value q = *quantization;
    json::Value method;
    method.kind = json::Value::Kind::String;
    method.string = "modelopt";
    q.object.emplace_back("quant_method", std::move(method));
    config.object.emplace_back("quantization_config", std::move(q));
  }
  hf::LayerPlan plan;
  if (!hf::planLayer(config, configPath.string(), layerIndex, &plan, &err))
    fail(err);
  st::Reader reader;
  hf::LayerWeights weights;
  if (!reader.openDir(modelDir, &err)) fail(err);
  hf::useStoredExpertLayout(reader, &plan);
  if (!hf::loadWeights(reader, plan, &weights, &err)) fail(err);
  // The weights in the dtype the layer computes in: --dtype's, else the
  // checkpoint's; dequantized FP8 weights are rounded to it in either case.
  npy::DType layerType = dtype ? *dtype : weights.dtype;
  if (dtype || std::find(weights.dequantized.begin(),
                         weights.dequantized.end(),
                         true) != weights.dequantized.end()) {
    for (size_t a = 0; a < weights.operands.size(); ++a) {
      if (plan.operands[a].alwaysF32 || (!dtype && !weights.dequantized[a]))
        continue;
      npy::Array &w = weights.operands[a];
      const std::vector<std::string> &names = plan.operands[a].names;
      size_t perTensor = w.f.size() / names.size();
      for (size_t i = 0; i < w.f.size(); ++i) {
        double rounded = npy::roundTo(layerType, w.f[i]);
        if (std::isfinite(w.f[i]) && !std::isfinite(rounded))
          fail("tensor " + names[i / perTensor] + ": element " +
               std::to_string(i % perTensor) + " is out of the range of " +
               npy::dtypeName(layerType));
        w.f[i] = rounded;
      }
      w.dtype = layerType;
    }
    weights.dtype = layerType;
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("cannot create " + dir + ": " + ec.message());
  std::string runArgs;
  for (size_t i = 0; i < tokens.size(); ++i) {
    int64_t T = tokens[i];
    std::string setName = "set" + std::to_string(i);
    fs::path setDir = fs::path(dir) / setName;
    fs::create_directories(setDir, ec);
    if (ec) fail("cannot create " + setDir.string() + ": " + ec.message());
    const int kMaxDraws = 101; // the first draw and up to 100 redraws
    int redraw = 0;
    std::string rejected;
    npy::Array x;
    LayerResult res;
    for (; redraw < kMaxDraws; ++redraw) {
      Rng rng(subSeed(seed, i, uint64_t(redraw)));
      x = npy::Array();
      x.dtype = weights.dtype;
      x.shape = {T, plan.d};
      for (int64_t q = 0; q < T * plan.d; ++q)
        x.f.push_back(npy::roundTo(x.dtype, rng.normal()));
      Margins mg;
      res = layer(plan.cfg, hf::layerInputs(plan, weights, toMat(x)), &mg);
      if (mg.count == 0) break;
      if (redraw < 10)
        rejected += "  draw " + std::to_string(redraw) + ": " +
                    std::to_string(mg.count) + " ambiguous decision(s), " +
                    "first: " + mg.notes[0] + "\n";
    }
    if (redraw == kMaxDraws)
      fail(setName + " (T = " + std::to_string(T) + "): every one of " +
           std::to_string(kMaxDraws) + " draws was rejected:\n" + rejected);
    writeNpy(setDir / "arg0.npy", x);
    if (weightsAsArgs)
      for (size_t a = 0; a < weights.operands.size(); ++a)
        writeNpy(setDir / ("arg" + std::to_string(a + 1) + ".npy"),
                 weights.operands[a]);
    writeNpy(setDir / "ref0.npy", floats({T, plan.d}, res.y.v));
    std::string info = "model: " + modelDir + "\nlayer: " +
                       std::to_string(layerIndex) + " (" + plan.modelType +
                       ")\nT = " + std::to_string(T) + "\nseed = " +
                       std::to_string(seed) + " (set " + std::to_string(i) +
                       ", draw " + std::to_string(redraw) + ")\nredraws = " +
                       std::to_string(redraw) + "\n";
    if (!rejected.empty()) info += "rejected draws:\n" + rejected;
    writeFile(setDir / "info.txt", info);
    runArgs += " --case-dir=" + setDir.string();
  }
  writeFile(fs::path(dir) / "moe-run.args", runArgs + "\n");
  std::cout << "emit-model: layer " << layerIndex << " (" << plan.modelType
            << "), " << tokens.size() << " set(s) in " << dir << "\n";
  return 0;
}

//===----------------------------------------------------------------------===//
// compare
//===----------------------------------------------------------------------===//

std::string indexString(int64_t flat, const std::vector<int64_t> &shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t k = shape.size(); k-- > 0;) {
    idx[k] = shape[k] ? flat % shape[k] : 0;
    flat = shape[k] ? flat / shape[k] : 0;
  }
  return npy::shapeString(idx);
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

/// Compares one output; prints its line; returns true when it passes.
bool compareOne(const std::string &label, const fs::path &outPath,
                const fs::path &refPath, double tolOverride) {
  std::string err;
  npy::Array ref, out;
  if (!npy::read(refPath.string(), &ref, &err)) {
    std::cout << label << ": cannot read the reference: " << err << " FAILED\n";
    return false;
  }
  if (!fs::exists(outPath)) {
    std::cout << label << ": missing " << outPath.string() << " FAILED\n";
    return false;
  }
  if (!npy::read(outPath.string(), &out, &err)) {
    std::cout << label << ": " << err << " FAILED\n";
    return false;
  }
  std::string head = label + " " + npy::shapeString(out.shape) + " " +
                     npy::dtypeName(out.dtype) + ": ";
  if (out.shape != ref.shape) {
    std::cout << head << "shape " << npy::shapeString(out.shape)
              << " but the reference has " << npy::shapeString(ref.shape)
              << " FAILED\n";
    return false;
  }
  if (out.isInt() != ref.isInt()) {
    std::cout << head << (out.isInt() ? "integer" : "float")
              << " output but " << (ref.isInt() ? "integer" : "float")
              << " reference FAILED\n";
    return false;
  }
  int64_t n = ref.numElements();
  if (ref.isInt()) {
    int64_t bad = 0, first = -1;
    for (int64_t q = 0; q < n; ++q)
      if (out.i[size_t(q)] != ref.i[size_t(q)] && bad++ == 0) first = q;
    if (bad) {
      std::cout << head << bad << " of " << n << " differ (first at "
                << indexString(first, ref.shape) << ": got "
                << out.i[size_t(first)] << ", expected "
                << ref.i[size_t(first)] << ") FAILED\n";
      return false;
    }
    std::cout << head << "exact ok\n";
    return true;
  }
  double tol = tolOverride > 0 ? tolOverride
               : (out.dtype == DType::F16 || out.dtype == DType::BF16) ? 1e-2
                                                                        : 1e-5;
  double maxRef = 0.0, maxErr = 0.0;
  for (int64_t q = 0; q < n; ++q)
    if (std::isfinite(ref.f[size_t(q)]))
      maxRef = std::max(maxRef, std::fabs(ref.f[size_t(q)]));
  for (int64_t q = 0; q < n; ++q) {
    double o = out.f[size_t(q)], r = ref.f[size_t(q)];
    std::string at = indexString(q, ref.shape);
    if (std::isnan(r) != std::isnan(o)) {
      std::cout << head << (std::isnan(o) ? "NaN" : "a number (" + num(o) + ")")
                << " at " << at << " where the reference is "
                << (std::isnan(r) ? "NaN" : num(r)) << " FAILED\n";
      return false;
    }
    if (std::isnan(r)) continue;
    if (std::isinf(r) || std::isinf(o)) {
      if (o != r) {
        std::cout << head << "got " << num(o) << " at " << at
                  << " where the reference is " << num(r) << " FAILED\n";
        return false;
      }
      continue;
    }
    maxErr = std::max(maxErr, std::fabs(o - r));
  }
  double rel = maxErr / std::max(maxRef, 1e-30);
  char buf[160];
  std::snprintf(buf, sizeof buf, "max rel err %.2g (tol %.0e)", rel, tol);
  bool ok = rel <= tol;
  std::cout << head << buf << (ok ? " ok" : " FAILED") << "\n";
  return ok;
}

int compare(const std::string &dir, double tol) {
  int sets = 0, outputs = 0, failed = 0;
  for (;; ++sets) {
    fs::path setDir = fs::path(dir) / ("set" + std::to_string(sets));
    if (!fs::is_directory(setDir)) break;
    for (int k = 0;; ++k) {
      fs::path refPath = setDir / ("ref" + std::to_string(k) + ".npy");
      if (!fs::exists(refPath)) {
        if (k == 0) {
          std::cout << "set" << sets << ": no ref0.npy FAILED\n";
          ++failed;
        }
        break;
      }
      ++outputs;
      std::string label = "set" + std::to_string(sets) + " out" +
                          std::to_string(k);
      if (!compareOne(label, setDir / ("out" + std::to_string(k) + ".npy"),
                      refPath, tol))
        ++failed;
    }
  }
  if (sets == 0) {
    std::cout << "compare: FAILED: no set directories (set0, ...) in " << dir
              << "\n";
    return 1;
  }
  if (failed) {
    std::cout << "compare: FAILED: " << failed << " of " << outputs
              << " outputs in " << sets << " sets\n";
    return 1;
  }
  std::cout << "compare: " << sets << " sets, " << outputs
            << " outputs, all ok\n";
  return 0;
}

//===----------------------------------------------------------------------===//
// mock-run
//===----------------------------------------------------------------------===//

/// "S:K:I" -> {set, output, flat element index}.
std::vector<int64_t> parseSite(const std::string &opt, const std::string &v) {
  std::vector<int64_t> site;
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ':')) site.push_back(parseInt(opt, item));
  if (site.size() != 3) fail(opt + " expects SET:OUTPUT:INDEX, found `" + v + "`");
  return site;
}

/// Writes what a correct moe-run writes: each ref<k>.npy rounded to the
/// element type of the function's result k, as out<k>.npy. `perturb` moves
/// one element far out of tolerance (integers: +1); `nan` makes one a NaN.
/// This tests `compare` without the compiler.
int mockRun(const std::string &dir, const std::string &perturb,
            const std::string &nan) {
  std::ifstream info(fs::path(dir) / "set0" / "info.txt");
  std::string line;
  if (!std::getline(info, line) || line.rfind("case: ", 0) != 0)
    fail("cannot read the case spec from " + dir + "/set0/info.txt");
  Case c = buildArgs(parseSpec(line.substr(6)));
  Body b = buildBody(c);
  std::vector<int64_t> pSite, nSite;
  if (!perturb.empty()) pSite = parseSite("--perturb", perturb);
  if (!nan.empty()) nSite = parseSite("--nan", nan);
  for (int64_t set = 0;; ++set) {
    fs::path setDir = fs::path(dir) / ("set" + std::to_string(set));
    if (!fs::is_directory(setDir)) break;
    for (size_t k = 0; k < b.resultDTypes.size(); ++k) {
      npy::Array a;
      std::string err;
      if (!npy::read((setDir / ("ref" + std::to_string(k) + ".npy")).string(),
                     &a, &err))
        fail(err);
      a.dtype = b.resultDTypes[k];
      if (a.isInt() != !a.i.empty() && a.numElements() > 0)
        fail("result " + std::to_string(k) + " changes between int and float");
      bool here = !pSite.empty() && pSite[0] == set && pSite[1] == int64_t(k);
      if (here && pSite[2] < a.numElements()) {
        size_t q = size_t(pSite[2]);
        if (a.isInt()) {
          a.i[q] += 1;
        } else {
          double m = 1.0;
          for (double v : a.f)
            if (std::isfinite(v)) m = std::max(m, std::fabs(v));
          a.f[q] += 0.1 * m;
        }
      }
      here = !nSite.empty() && nSite[0] == set && nSite[1] == int64_t(k);
      if (here && !a.isInt() && nSite[2] < a.numElements())
        a.f[size_t(nSite[2])] = std::numeric_limits<double>::quiet_NaN();
      writeNpy(setDir / ("out" + std::to_string(k) + ".npy"), a);
    }
  }
  return 0;
}

//===----------------------------------------------------------------------===//
// Command line
//===----------------------------------------------------------------------===//

/// Options --name VALUE or --name=VALUE.
std::map<std::string, std::string> parseOptions(int argc, char **argv) {
  std::map<std::string, std::string> opts;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) fail("unexpected argument `" + a + "`");
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      opts[a.substr(2, eq - 2)] = a.substr(eq + 1);
    } else {
      if (i + 1 >= argc) fail("option " + a + " needs a value");
      opts[a.substr(2)] = argv[++i];
    }
  }
  return opts;
}

/// "0,1,7,33" -> token counts.
std::vector<int64_t> parseTokens(const std::string &list) {
  std::vector<int64_t> tokens;
  std::stringstream ts(list);
  std::string item;
  while (std::getline(ts, item, ',')) {
    int64_t T = parseInt("--tokens", item);
    if (T < 0) fail("token counts must be >= 0");
    tokens.push_back(T);
  }
  if (tokens.empty()) fail("--tokens needs at least one count");
  return tokens;
}

std::string need(std::map<std::string, std::string> &o, const char *key) {
  auto it = o.find(key);
  if (it == o.end()) fail(std::string("missing --") + key + "\n" + kUsage);
  std::string v = it->second;
  o.erase(it);
  return v;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 1;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  std::map<std::string, std::string> opts = parseOptions(argc, argv);
  if (cmd == "emit") {
    std::string spec = need(opts, "case");
    int64_t seedValue = parseInt("--seed", need(opts, "seed"));
    std::vector<int64_t> tokens = parseTokens(need(opts, "tokens"));
    std::string dir = need(opts, "dir");
    if (!opts.empty()) fail("unknown option --" + opts.begin()->first);
    return emit(spec, uint64_t(seedValue), tokens, dir);
  }
  if (cmd == "emit-model") {
    std::string model = need(opts, "model");
    int64_t layerIndex = parseInt("--layer", need(opts, "layer"));
    int64_t seedValue = parseInt("--seed", need(opts, "seed"));
    std::vector<int64_t> tokens = parseTokens(need(opts, "tokens"));
    std::string dir = need(opts, "dir");
    bool weightsAsArgs = opts.count("weights-as-args") &&
                         parseBool("--weights-as-args",
                                   need(opts, "weights-as-args"));
    DType dtype = DType::F32;
    bool haveDType = opts.count("dtype");
    if (haveDType)
      dtype = parseEnum<DType>("--dtype", need(opts, "dtype"),
                               {{"f32", DType::F32},
                                {"f16", DType::F16},
                                {"bf16", DType::BF16}});
    if (!opts.empty()) fail("unknown option --" + opts.begin()->first);
    return emitModel(model, layerIndex, uint64_t(seedValue), tokens, dir,
                     weightsAsArgs, haveDType ? &dtype : nullptr);
  }
  if (cmd == "compare") {
    std::string dir = need(opts, "dir");
    double tol = -1.0;
    if (opts.count("tol")) tol = parseFloat("--tol", need(opts, "tol"));
    if (!opts.empty()) fail("unknown option --" + opts.begin()->first);
    return compare(dir, tol);
  }
  if (cmd == "mock-run") {
    std::string dir = need(opts, "dir");
    std::string perturb = opts.count("perturb") ? need(opts, "perturb") : "";
    std::string nan = opts.count("nan") ? need(opts, "nan") : "";
    if (!opts.empty()) fail("unknown option --" + opts.begin()->first);
    return mockRun(dir, perturb, nan);
  }
  std::cerr << "moe-reference: unknown command `" << cmd << "`\n" << kUsage;
  return 1;
}
