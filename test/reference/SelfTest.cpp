//===- SelfTest.cpp - Hand-computed checks of the reference model ---------===//
//
// Every expected value below is worked out by hand in the comment next to
// it, from the specification text, not from the model.
//
//===----------------------------------------------------------------------===//

#include "MoEReference.h"
#include "Npy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

using namespace moeref;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

Mat mat(int64_t r, int64_t c, std::vector<double> v) {
  Mat m(r, c);
  m.v = std::move(v);
  return m;
}

RoutingConfig topK(int64_t k, Score s = Score::Softmax) {
  RoutingConfig r;
  r.score = s;
  r.k = k;
  return r;
}

std::vector<int64_t> ids(const Assignments &a, int64_t t) {
  return std::vector<int64_t>(a.ids.begin() + t * a.S,
                              a.ids.begin() + (t + 1) * a.S);
}

//===----------------------------------------------------------------------===//
// A whole layer worked out by hand
//===----------------------------------------------------------------------===//

// Two tokens, four experts, d = 2, mlp experts with f = 1 and relu:
//   x0 = [1, 0], x1 = [0, 1]
//   Wg column 0 = [ln 4, ln 2, 0, 0], column 1 = [0, 0, ln 2, ln 2]
//   z0 = [ln 4, ln 2, 0, 0] -> softmax [4, 2, 1, 1] / 8 = [.5, .25, .125, .125]
//   z1 = [0, 0, ln 2, ln 2] -> softmax [1, 1, 2, 2] / 6
//   top-2: token 0 -> experts 0, 1; token 1 -> experts 2, 3 (a tie, lower
//   index first), weights 1/3 and 1/3.
//   Expert e: w1 = [[e+1, e+1]], w2 = [[1], [-1]] -> E_e(x) = (e+1) [1, -1]
//   for both tokens (w1 x = e + 1 > 0).
//   Raw weights:  y0 = .5 * 1 + .25 * 2 = 1,      y1 = (3 + 4) / 3 = 7/3.
//   Renormalized: y0 = 2/3 * 1 + 1/3 * 2 = 4/3,   y1 = (3 + 4) / 2 = 3.5.
LayerInputs handLayerInputs() {
  LayerInputs in;
  in.x = mat(2, 2, {1, 0, 0, 1});
  double l2 = std::log(2.0), l4 = std::log(4.0);
  in.wg = mat(4, 2, {l4, 0, l2, 0, 0, l2, 0, l2});
  in.experts.kind = ExpertKind::Mlp;
  in.experts.act = Act::Relu;
  for (int e = 0; e < 4; ++e) {
    in.experts.gate.push_back(mat(1, 2, {e + 1.0, e + 1.0}));
    in.experts.down.push_back(mat(2, 1, {1, -1}));
  }
  return in;
}

LayerConfig handLayerConfig(bool renormalize) {
  LayerConfig cfg;
  cfg.routing = topK(2);
  cfg.routing.renormalize = renormalize;
  cfg.kind = ExpertKind::Mlp;
  cfg.act = Act::Relu;
  return cfg;
}

TEST(Layer, SoftmaxTop2ByHand) {
  Margins mg;
  LayerResult r = layer(handLayerConfig(false), handLayerInputs(), &mg);
  EXPECT_EQ(mg.count, 0);
  EXPECT_EQ(ids(r.routing, 0), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(ids(r.routing, 1), (std::vector<int64_t>{2, 3}));
  EXPECT_NEAR(r.routing.w[0], 0.5, 1e-15);
  EXPECT_NEAR(r.routing.w[1], 0.25, 1e-15);
  EXPECT_NEAR(r.routing.w[2], 1.0 / 3, 1e-15);
  EXPECT_NEAR(r.y.at(0, 0), 1.0, 1e-15);
  EXPECT_NEAR(r.y.at(0, 1), -1.0, 1e-15);
  EXPECT_NEAR(r.y.at(1, 0), 7.0 / 3, 1e-15);
  EXPECT_NEAR(r.y.at(1, 1), -7.0 / 3, 1e-15);
  EXPECT_EQ(r.assignments, (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(r.dropped, (std::vector<int64_t>{0, 0, 0, 0}));
}

TEST(Layer, RenormalizedAndScaled) {
  LayerConfig cfg = handLayerConfig(true);
  LayerResult r = layer(cfg, handLayerInputs(), nullptr);
  EXPECT_NEAR(r.y.at(0, 0), 4.0 / 3, 1e-15);
  EXPECT_NEAR(r.y.at(1, 1), -3.5, 1e-15);
  cfg.routing.scale = 2.0; // scale multiplies after renormalizing
  r = layer(cfg, handLayerInputs(), nullptr);
  EXPECT_NEAR(r.y.at(0, 0), 8.0 / 3, 1e-15);
  EXPECT_NEAR(r.y.at(1, 1), -7.0, 1e-15);
}

TEST(Layer, ApplyWeightToInput) {
  // relu experts are positively homogeneous: E(w x) = w E(x) for w > 0,
  // so apply_weight = input gives the same output here.
  LayerConfig cfg = handLayerConfig(false);
  cfg.routing.apply = Apply::Input;
  LayerResult r = layer(cfg, handLayerInputs(), nullptr);
  EXPECT_NEAR(r.y.at(0, 0), 1.0, 1e-15);
  EXPECT_NEAR(r.y.at(1, 0), 7.0 / 3, 1e-15);
  // With a bias in the expert the difference shows: use gated experts,
  // act(g) * u is quadratic in x, so E(w x) = w^2 E(x).
  LayerInputs in = handLayerInputs();
  in.experts.kind = ExpertKind::Gated;
  in.experts.up = in.experts.gate;
  cfg.kind = ExpertKind::Gated;
  // E_e(x) = (e+1)^2 [1, -1]; token 0: .5^2 * 1 + .25^2 * 4 = .5
  r = layer(cfg, in, nullptr);
  EXPECT_NEAR(r.y.at(0, 0), 0.5, 1e-15);
}

TEST(Layer, SharedExpertsPlainAndGated) {
  // One shared expert, fs = 1: gate = up = [[1, 1]], down = [[1], [1]],
  // relu: S(x) = (x0 + x1)^2 [1, 1] = [1, 1] for both tokens.
  // Gated with ws = [[ln 3, 0]]: g(x0) = sigmoid(ln 3) = 3/4, g(x1) = 1/2.
  LayerConfig cfg = handLayerConfig(false);
  LayerInputs in = handLayerInputs();
  cfg.shared = SharedKind::Plain;
  in.shared.kind = SharedKind::Plain;
  in.shared.act = Act::Relu;
  in.shared.gate = mat(1, 2, {1, 1});
  in.shared.up = mat(1, 2, {1, 1});
  in.shared.down = mat(2, 1, {1, 1});
  LayerResult r = layer(cfg, in, nullptr);
  EXPECT_NEAR(r.y.at(0, 0), 2.0, 1e-15);
  EXPECT_NEAR(r.y.at(1, 1), -7.0 / 3 + 1, 1e-15);
  cfg.shared = in.shared.kind = SharedKind::Gated;
  in.shared.gateWeight = mat(1, 2, {std::log(3.0), 0});
  r = layer(cfg, in, nullptr);
  EXPECT_NEAR(r.y.at(0, 0), 1.75, 1e-15);
  EXPECT_NEAR(r.y.at(1, 0), 7.0 / 3 + 0.5, 1e-15);
}

TEST(Layer, Lora) {
  // E = 1, k = 1 (the score is 1), d = d_out = r = 1:
  // base 2, A 1, B 3, alpha 2 -> y = 2x + (2/1) * 3 * 1 * x = 8x.
  LayerConfig cfg;
  cfg.routing = topK(1);
  cfg.kind = ExpertKind::Lora;
  cfg.alpha = 2.0;
  LayerInputs in;
  in.x = mat(1, 1, {0.5});
  in.wg = mat(1, 1, {0.7});
  in.experts.kind = ExpertKind::Lora;
  in.experts.alpha = 2.0;
  in.experts.base = mat(1, 1, {2});
  in.experts.a = {mat(1, 1, {1})};
  in.experts.b = {mat(1, 1, {3})};
  LayerResult r = layer(cfg, in, nullptr);
  EXPECT_NEAR(r.y.at(0, 0), 4.0, 1e-15);
  // d_out = 2 != d: base [[1], [0]], B [[0], [1]] -> y = [x, 2 x]
  in.experts.base = mat(2, 1, {1, 0});
  in.experts.b = {mat(2, 1, {0, 1})};
  r = layer(cfg, in, nullptr);
  ASSERT_EQ(r.y.cols, 2);
  EXPECT_NEAR(r.y.at(0, 0), 0.5, 1e-15);
  EXPECT_NEAR(r.y.at(0, 1), 1.0, 1e-15);
}

TEST(Layer, LoraGated) {
  // f = d = r = 1, E = 1, relu, alpha = 1: every projection P_e(x) =
  // 1 * x + (1/1) * 1 * (1 * x) = 2x. x = 1: g = u = 2, h = relu(2) * 2 = 4,
  // out = 2 * 4 = 8.
  ExpertWeights w;
  w.kind = ExpertKind::LoraGated;
  w.act = Act::Relu;
  w.alpha = 1.0;
  w.baseGate = w.baseUp = w.baseDown = mat(1, 1, {1});
  w.aGate = w.bGate = w.aUp = w.bUp = w.aDown = w.bDown = {mat(1, 1, {1})};
  Vec y = expertForward(w, 0, {1.0});
  EXPECT_NEAR(y[0], 8.0, 1e-15);
}

TEST(Experts, FusedGateUpRowsGateFirst) {
  Mat gu = mat(4, 2, {1, 2, 3, 4, 5, 6, 7, 8}), g, u;
  splitGateUp(gu, &g, &u);
  EXPECT_EQ(g.v, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(u.v, (std::vector<double>{5, 6, 7, 8}));
}

TEST(Experts, Activations) {
  EXPECT_NEAR(activation(Act::Silu, 1.0), 0.7310585786300049, 1e-15);
  EXPECT_NEAR(activation(Act::GeluErf, 1.0), 0.8413447460685429, 1e-15);
  // 0.5 (1 + tanh(sqrt(2/pi) * 1.044715))
  EXPECT_NEAR(activation(Act::GeluTanh, 1.0), 0.8411919906082768, 1e-15);
  // GPT-OSS's clamped SwiGLU: (clamp(u, -7, 7) + 1) g' sigmoid(1.702 g'),
  // g' = min(g, 7); by hand: 3 * 1 * sigmoid(1.702), the clamps of
  // (10, -10) at (7, -7), and a negative gate; NaN stays NaN.
  EXPECT_NEAR(gatedValue(Act::SwigluOai, 1.0, 2.0), 2.537387297798464, 1e-14);
  EXPECT_NEAR(gatedValue(Act::SwigluOai, 10.0, -10.0), -41.99971876981991,
              1e-12);
  EXPECT_NEAR(gatedValue(Act::SwigluOai, -3.0, 0.5), -0.027106964561678954,
              1e-15);
  EXPECT_TRUE(std::isnan(gatedValue(Act::SwigluOai, kNaN, 1.0)));
  EXPECT_EQ(gatedValue(Act::Silu, 2.0, 3.0), activation(Act::Silu, 2.0) * 3.0);
  EXPECT_EQ(activation(Act::Relu, -2.0), 0.0);
  EXPECT_EQ(activation(Act::Relu, 3.0), 3.0);
  EXPECT_TRUE(std::isnan(activation(Act::Relu, kNaN)));
}

TEST(Experts, GroupedMatmul) {
  // lhs rows [1, 0], [0, 1], [1, 1]; groups {2, 0, 0}... sizes [1, 1]:
  // row 0 uses rhs[0] = [[1, 2], [3, 4]] (K x M), row 1 rhs[1] =
  // [[5, 6], [7, 8]], row 2 is past the groups: zero.
  Mat lhs = mat(3, 2, {1, 0, 0, 1, 1, 1});
  std::vector<Mat> rhs = {mat(2, 2, {1, 2, 3, 4}), mat(2, 2, {5, 6, 7, 8})};
  Mat out = groupedMatmul(lhs, rhs, {1, 1}, false);
  EXPECT_EQ(out.v, (std::vector<double>{1, 2, 7, 8, 0, 0}));
  // Transposed: rhs[e] is [M, K]; row 0 -> column 0 of rhs[0] = [1, 3].
  out = groupedMatmul(lhs, rhs, {1, 1}, true);
  EXPECT_EQ(out.v, (std::vector<double>{1, 3, 6, 8, 0, 0}));
}

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

TEST(Selection, NaNOrdersBelowEverything) {
  // Descending, NaN below -inf, NaN ties to the lower index.
  Vec keys = {kNaN, -kInf, 1.0, kNaN, 0.5};
  EXPECT_EQ(rankDescending(keys, {0, 1, 2, 3, 4}),
            (std::vector<int64_t>{2, 4, 1, 0, 3}));
  // Through route with score = logits (s = z): weights are the keys.
  Assignments a = route(mat(1, 5, keys), topK(5, Score::Logits), nullptr,
                        nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{2, 4, 1, 0, 3}));
  EXPECT_EQ(a.w[2], -kInf);
  EXPECT_TRUE(std::isnan(a.w[3]));
}

TEST(Selection, NonFiniteSoftmaxRows) {
  // A NaN or +inf logit makes the whole softmax row NaN: experts 0..k-1
  // with NaN weights. A -inf logit scores 0 and is chosen last.
  Mat z = mat(3, 3, {0, kNaN, 0, kInf, 0, 0, 0, -kInf, 0});
  Assignments a = route(z, topK(3), nullptr, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(ids(a, 1), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_TRUE(std::isnan(a.w[0]) && std::isnan(a.w[3]));
  EXPECT_EQ(ids(a, 2), (std::vector<int64_t>{0, 2, 1}));
  EXPECT_EQ(a.w[8], 0.0);
  // top_p: the sum of NaN scores is never below p: only slot 0.
  RoutingConfig p = topK(3);
  p.select = Select::TopP;
  p.topP = 0.9;
  a = route(z, p, nullptr, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{0, -1, -1}));
  // threshold: NaN < tau is false, so NaN slots are kept.
  RoutingConfig th = topK(3);
  th.select = Select::Threshold;
  th.tau = 0.4;
  a = route(z, th, nullptr, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(ids(a, 2), (std::vector<int64_t>{0, 2, -1})); // 0 < 0.4
}

TEST(Selection, TopP) {
  // Four equal logits: scores exactly 1/4 each.
  Mat z = mat(1, 4, {0, 0, 0, 0});
  RoutingConfig r = topK(4);
  r.select = Select::TopP;
  r.topP = 0.5; // take slot 0 (sum 0), slot 1 (.25 < .5), stop (.5 < .5 false)
  Assignments a = route(z, r, nullptr, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{0, 1, -1, -1}));
  EXPECT_EQ(a.w, (Vec{0.25, 0.25, 0, 0}));
  r.topP = 0.6; // slot 2 too (.5 < .6), not slot 3 (.75)
  r.renormalize = true;
  a = route(z, r, nullptr, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{0, 1, 2, -1}));
  EXPECT_NEAR(a.w[0], 1.0 / 3, 1e-15);
  EXPECT_EQ(a.w[3], 0.0);
  r.topP = 1.0;
  r.k = 2; // never more than k
  a = route(z, r, nullptr, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{0, 1}));
  // A sum within the margin of p is ambiguous.
  Margins mg;
  r.k = 4;
  r.topP = 0.5 + 1e-7;
  route(z, r, nullptr, &mg);
  EXPECT_GT(mg.count, 0);
}

TEST(Selection, ThresholdKeepsSlotPositions) {
  // score = logits so s = z exactly. s = [.6, .1, .2, .05], selection bias
  // [0, .8, .5, 0] -> keys [.6, .9, .7, .05]: order 1, 2, 0. tau = .3:
  // slot 0 (expert 1) always kept, slot 1 (expert 2, s .2) unused, slot 2
  // (expert 0, s .6) kept.
  RoutingConfig r = topK(3, Score::Logits);
  r.select = Select::Threshold;
  r.tau = 0.3;
  r.renormalize = true;
  Vec bias = {0, 0.8, 0.5, 0};
  Assignments a = route(mat(1, 4, {0.6, 0.1, 0.2, 0.05}), r, &bias, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{1, -1, 0}));
  // Weights from the unbiased s over the kept slots: .1/.7 and .6/.7.
  EXPECT_NEAR(a.w[0], 0.1 / 0.7, 1e-15);
  EXPECT_EQ(a.w[1], 0.0);
  EXPECT_NEAR(a.w[2], 0.6 / 0.7, 1e-15);
}

TEST(Selection, GroupedTopK) {
  RoutingConfig r = topK(2, Score::Logits);
  r.select = Select::GroupedTopK;
  r.groups = 2;
  r.topkGroup = 1;
  Mat z = mat(1, 4, {0.1, 0.4, 0.3, 0.35});
  // max: group 0 = .4, group 1 = .35 -> group 0 -> experts 1, 0.
  EXPECT_EQ(ids(route(z, r, nullptr, nullptr), 0),
            (std::vector<int64_t>{1, 0}));
  // sum_top2: group 0 = .5, group 1 = .65 -> group 1 -> experts 3, 2.
  r.groupScore = GroupScore::SumTop2;
  EXPECT_EQ(ids(route(z, r, nullptr, nullptr), 0),
            (std::vector<int64_t>{3, 2}));
  // An excluded group is never chosen, even when kept keys are lower:
  // keys [-1, -2, -.5, -10], max -> group 1 -> experts 2 and 3 (-10 beats
  // the excluded -1).
  r.groupScore = GroupScore::Max;
  EXPECT_EQ(ids(route(mat(1, 4, {-1, -2, -0.5, -10}), r, nullptr, nullptr), 0),
            (std::vector<int64_t>{2, 3}));
  // Tied group scores go to the lower group.
  EXPECT_EQ(ids(route(mat(1, 4, {0.1, 0.5, 0.5, 0.2}), r, nullptr, nullptr), 0),
            (std::vector<int64_t>{1, 0}));
}

TEST(Selection, SoftmaxSelectedUsesLogits) {
  // Granite: softmax over the selected logits [2, 1] (ln-free check):
  // e^2 / (e^2 + e) = e / (e + 1).
  RoutingConfig r = topK(2, Score::Logits);
  r.weights = Weights::SoftmaxSelected;
  Assignments a = route(mat(1, 3, {1, 2, 0}), r, nullptr, nullptr);
  EXPECT_EQ(ids(a, 0), (std::vector<int64_t>{1, 0}));
  double e = std::exp(1.0);
  EXPECT_NEAR(a.w[0], e / (e + 1), 1e-15);
  EXPECT_NEAR(a.w[1], 1 / (e + 1), 1e-15);
}

TEST(Selection, SelectionBiasSelectsButDoesNotWeigh) {
  // sigmoid(0) = .5, sigmoid(ln 3) = .75; bias [1, 0] makes expert 0 win
  // the single slot, with its unbiased weight .5.
  Vec bias = {1.0, 0.0};
  Assignments a = route(mat(1, 2, {0, std::log(3.0)}), topK(1, Score::Sigmoid),
                        &bias, nullptr);
  EXPECT_EQ(a.ids[0], 0);
  EXPECT_EQ(a.w[0], 0.5);
}

TEST(Selection, Margins) {
  Margins mg;
  route(mat(1, 3, {0.3, 0.3 + 1e-7, 0.1}), topK(1, Score::Logits), nullptr,
        &mg);
  EXPECT_EQ(mg.count, 1);
  // Exactly equal keys are a tie, not an ambiguity: the lower index wins.
  Margins none;
  Assignments a = route(mat(1, 3, {0.3, 0.3, 0.1}), topK(1, Score::Logits),
                        nullptr, &none);
  EXPECT_EQ(none.count, 0);
  EXPECT_EQ(a.ids[0], 0);
  // Relative margins for softmax/sigmoid keys, absolute below 1 otherwise.
  EXPECT_FALSE(nearButDistinct(1e-13, 1.1e-13, 0.0));
  EXPECT_TRUE(nearButDistinct(1e-13, 1.1e-13, 1.0));
  EXPECT_TRUE(nearButDistinct(1000.0, 1000.001, 1.0));
  EXPECT_FALSE(nearButDistinct(kNaN, 1.0, 1.0));
  EXPECT_FALSE(nearButDistinct(kInf, 1e300, 1.0));
  // A cut between tied keys looks past the tie.
  Vec keys = {0.9, 0.5, 0.5, 0.5 - 1e-8};
  Margins cut;
  checkCut(keys, {0, 1, 2, 3}, 2, 1.0, &cut, "cut", 0);
  EXPECT_EQ(cut.count, 1);
  Margins clean;
  checkCut(Vec{0.9, 0.5, 0.5, 0.4}, {0, 1, 2, 3}, 2, 1.0, &clean, "cut", 0);
  EXPECT_EQ(clean.count, 0);
}

//===----------------------------------------------------------------------===//
// Expert choice
//===----------------------------------------------------------------------===//

TEST(ExpertChoice, ByHand) {
  // T = 3, E = 2, k = 1: C = ceil(3 / 2) = 2. Scores per token:
  // t0 [.5, .5], t1 [.75, .25], t2 [.25, .75].
  // Expert 0 ranks t1 (.75), t0 (.5); expert 1 ranks t2, t0.
  double l3 = std::log(3.0);
  Margins mg;
  ExpertChoiceResult r = expertChoice(mat(3, 2, {0, 0, l3, 0, 0, l3}), 1,
                                      CapacityConfig(), 2, &mg);
  EXPECT_EQ(mg.count, 0);
  ASSERT_EQ(r.C, 2);
  EXPECT_EQ(r.tokenIds, (std::vector<int64_t>{1, 0, 2, 0}));
  EXPECT_NEAR(r.tokenWeights[0], 0.75, 1e-15);
  EXPECT_NEAR(r.tokenWeights[1], 0.5, 1e-15);
  EXPECT_EQ(r.slots.ids, (std::vector<int64_t>{0, 1, 0, -1, -1, 1}));
  EXPECT_NEAR(r.slots.w[2], 0.75, 1e-15);
  EXPECT_EQ(r.slots.w[3], 0.0);
}

TEST(ExpertChoice, TiesAndCapacityAboveT) {
  // Two identical tokens: every expert takes token 0 first. count = 3,
  // align = 2 -> C = 4 > T = 2: the last slots hold -1 and weight 0.
  CapacityConfig c;
  c.kind = CapKind::Count;
  c.count = 3;
  c.align = 2;
  ExpertChoiceResult r = expertChoice(mat(2, 2, {1, 0, 1, 0}), 1, c, 2,
                                      nullptr);
  ASSERT_EQ(r.C, 4);
  EXPECT_EQ(r.tokenIds, (std::vector<int64_t>{0, 1, -1, -1, 0, 1, -1, -1}));
  EXPECT_EQ(r.tokenWeights[2], 0.0);
}

TEST(ExpertChoice, NearTiesThatDoNotChooseAreNotFlaggedForLayers) {
  // T = 2, E = 2, k = 1: C = 1. Each expert's scores for the two tokens
  // are about 2.5e-15 apart (0.5 and 0.5 + 2.5e-15). With C = 1 < T that
  // near-tie decides the choice: flagged, ranked (the op's token ids list
  // the ranks) or not. With C = T = 2 every expert takes both tokens:
  // only their order is near-tied, which a layer does not observe.
  Mat z = mat(2, 2, {1e-14, 0, 0, 0});
  Margins ranked, chosen;
  expertChoice(z, 1, CapacityConfig(), 2, &ranked);
  expertChoice(z, 1, CapacityConfig(), 2, &chosen, /*ranked=*/false);
  EXPECT_GT(ranked.count, 0);
  EXPECT_GT(chosen.count, 0);
  CapacityConfig all;
  all.kind = CapKind::Count;
  all.count = 2;
  Margins rankedAll, chosenAll;
  ExpertChoiceResult r = expertChoice(z, 1, all, 2, &rankedAll);
  expertChoice(z, 1, all, 2, &chosenAll, /*ranked=*/false);
  ASSERT_EQ(r.C, 2);
  EXPECT_GT(rankedAll.count, 0);
  EXPECT_EQ(chosenAll.count, 0);
}

//===----------------------------------------------------------------------===//
// Capacity and dropping
//===----------------------------------------------------------------------===//

// Assignments of 3 tokens to 3 experts (q = t*2 + j):
//   t0: expert 1 (.6), expert 0 (.3)
//   t1: expert 0 (.5), expert 1 (.4)
//   t2: expert 0 (.7), expert 2 (.2)
// Expert 0 receives q = 1 (t0, j1, .3), q = 2 (t1, j0, .5), q = 4 (t2, j0, .7);
// expert 1 q = 0 (.6), q = 3 (.4); expert 2 q = 5 (.2). With C = 1:
//   choice_major keeps q 2 (first choices first, token order) for expert 0,
//   token_major keeps q 1, score keeps q 4; expert 1 keeps q 0 in all three.
Assignments table() {
  Assignments a;
  a.T = 3;
  a.S = 2;
  a.ids = {1, 0, 0, 1, 0, 2};
  a.w = {0.6, 0.3, 0.5, 0.4, 0.7, 0.2};
  return a;
}

CapacityConfig countCap(int64_t n, DropOrder o) {
  CapacityConfig c;
  c.kind = CapKind::Count;
  c.count = n;
  c.order = o;
  return c;
}

TEST(Dispatch, Dropless) {
  DispatchResult d = dispatch(table(), 3, CapacityConfig(), 0.0, nullptr);
  EXPECT_EQ(d.groupSizes, (std::vector<int64_t>{3, 2, 1}));
  EXPECT_EQ(d.groupOffsets, (std::vector<int64_t>{0, 3, 5}));
  // Rows of each expert in token order.
  EXPECT_EQ(d.rowToken, (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(d.rowWeight, (Vec{0.3, 0.5, 0.7, 0.6, 0.4, 0.2}));
  EXPECT_EQ(d.slotRow, (std::vector<int64_t>{3, 0, 1, 4, 2, 5}));
  EXPECT_EQ(d.dropped, (std::vector<int64_t>{0, 0, 0}));
}

TEST(Dispatch, ChoiceMajor) {
  DispatchResult d =
      dispatch(table(), 3, countCap(1, DropOrder::ChoiceMajor), 0.0, nullptr);
  EXPECT_EQ(d.dropped, (std::vector<int64_t>{2, 1, 0}));
  EXPECT_EQ(d.groupSizes, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(d.rowToken, (std::vector<int64_t>{1, 0, 2, -1, -1, -1}));
  EXPECT_EQ(d.slotRow, (std::vector<int64_t>{1, -1, 0, -1, -1, 2}));
  EXPECT_EQ(d.slotWeight, (Vec{0.6, 0, 0.5, 0, 0, 0.2}));
  EXPECT_EQ(d.rowWeight, (Vec{0.5, 0.6, 0.2, 0, 0, 0}));
}

TEST(Dispatch, TokenMajor) {
  DispatchResult d =
      dispatch(table(), 3, countCap(1, DropOrder::TokenMajor), 0.0, nullptr);
  EXPECT_EQ(d.rowToken, (std::vector<int64_t>{0, 0, 2, -1, -1, -1}));
  EXPECT_EQ(d.slotRow, (std::vector<int64_t>{1, 0, -1, -1, -1, 2}));
}

TEST(Dispatch, ScoreAndRenormalizeAfterDrop) {
  CapacityConfig c = countCap(1, DropOrder::Score);
  DispatchResult d = dispatch(table(), 3, c, 0.0, nullptr);
  EXPECT_EQ(d.rowToken, (std::vector<int64_t>{2, 0, 2, -1, -1, -1}));
  EXPECT_EQ(d.slotRow, (std::vector<int64_t>{1, -1, -1, -1, 0, 2}));
  // Surviving weights over their sum: t0 [.6] -> 1; t1 none -> 0, 0;
  // t2 [.7, .2] -> 7/9, 2/9.
  c.renormalizeAfterDrop = true;
  d = dispatch(table(), 3, c, 0.0, nullptr);
  EXPECT_NEAR(d.slotWeight[0], 1.0, 1e-15);
  EXPECT_EQ(d.slotWeight[2], 0.0);
  EXPECT_EQ(d.slotWeight[3], 0.0);
  EXPECT_NEAR(d.slotWeight[4], 7.0 / 9, 1e-15);
  EXPECT_NEAR(d.slotWeight[5], 2.0 / 9, 1e-15);
  EXPECT_NEAR(d.rowWeight[0], 7.0 / 9, 1e-15); // the row of (t2, expert 0)
}

TEST(Dispatch, ScoreOrderNaNAndTies) {
  // Expert 0 gets three assignments with weights NaN, .5, .5; C = 1:
  // NaN is lowest; the tie goes to the lower flat index (t1).
  Assignments a;
  a.T = 3;
  a.S = 1;
  a.ids = {0, 0, 0};
  a.w = {kNaN, 0.5, 0.5};
  Margins mg;
  DispatchResult d = dispatch(a, 1, countCap(1, DropOrder::Score), 0.0, &mg);
  EXPECT_EQ(d.slotRow, (std::vector<int64_t>{-1, 0, -1}));
  EXPECT_EQ(mg.count, 0);
  // A near-tie at the cut is ambiguous.
  a.w = {0.1, 0.5, 0.5 + 1e-9};
  dispatch(a, 1, countCap(1, DropOrder::Score), 0.0, &mg);
  EXPECT_EQ(mg.count, 1);
}

TEST(Dispatch, UnusedSlotsAreNotAssignments) {
  Assignments a;
  a.T = 2;
  a.S = 2;
  a.ids = {0, -1, 1, -1};
  a.w = {1, 0, 1, 0};
  DispatchResult d = dispatch(a, 2, CapacityConfig(), 0.0, nullptr);
  EXPECT_EQ(d.groupSizes, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(d.slotRow, (std::vector<int64_t>{0, -1, 1, -1}));
  EXPECT_EQ(d.rowToken, (std::vector<int64_t>{0, 1, -1, -1}));
  EXPECT_EQ(expertLoad(a, 2), (std::vector<int64_t>{1, 1}));
}

TEST(Dispatch, CapacityFormula) {
  CapacityConfig c;
  c.kind = CapKind::Factor;
  c.factor = 1.25; // T = 10, S = 2, E = 8: ceil(1.25 * 20 / 8) = ceil(3.125)
  EXPECT_EQ(dispatchCapacity(c, 10, 2, 8), 4);
  c.min = 5; // then max(., min)
  EXPECT_EQ(dispatchCapacity(c, 10, 2, 8), 5);
  c.align = 4; // then up to a multiple of align
  EXPECT_EQ(dispatchCapacity(c, 10, 2, 8), 8);
  // In f64, in that order: 2.2 * 25 = 55.00000000000001, / 5 ->
  // 11.000000000000002 -> ceil 12 (the decimal 2.2 * 25 / 5 is 11, and so
  // is the f64 2.2 * (25 / 5)).
  CapacityConfig f;
  f.kind = CapKind::Factor;
  f.factor = 2.2;
  ASSERT_GT(2.2 * 25.0 / 5.0, 11.0);
  EXPECT_EQ(dispatchCapacity(f, 25, 1, 5), 12);
  EXPECT_EQ(dispatchCapacity(f, 0, 2, 7), 0);
  CapacityConfig n = countCap(3, DropOrder::ChoiceMajor);
  n.min = 5;
  n.align = 2; // max(3, 5) = 5 -> 6
  EXPECT_EQ(dispatchCapacity(n, 100, 2, 8), 6);
  // Expert choice without a capacity: ceil(T k / E).
  EXPECT_EQ(expertChoiceCapacity(CapacityConfig(), 7, 2, 8), 2);
  EXPECT_EQ(expertChoiceCapacity(CapacityConfig(), 0, 2, 8), 0);
}

//===----------------------------------------------------------------------===//
// Losses
//===----------------------------------------------------------------------===//

TEST(Losses, ByHand) {
  // z = 0: P = [.5, .5]. ids t0 [0, 1], t1 [0, -1], S = 2:
  //   switch: f = [1, 0] -> 2 * (.5) = 1
  //   all_k: F = [2/2, 1/2] -> 2 * (.5 + .25) = 1.5; all_k_mean = .75
  //   z_loss = (ln 2)^2
  Mat z = mat(2, 2, {0, 0, 0, 0});
  Assignments a;
  a.T = 2;
  a.S = 2;
  a.ids = {0, 1, 0, -1};
  a.w = {0.5, 0.5, 0.5, 0};
  EXPECT_NEAR(auxLoss(z, a, AuxConv::Switch), 1.0, 1e-15);
  EXPECT_NEAR(auxLoss(z, a, AuxConv::AllK), 1.5, 1e-15);
  EXPECT_NEAR(auxLoss(z, a, AuxConv::AllKMean), 0.75, 1e-15);
  EXPECT_NEAR(zLoss(z), std::log(2.0) * std::log(2.0), 1e-15);
  EXPECT_EQ(expertLoad(a, 2), (std::vector<int64_t>{2, 1}));
  // T = 0: every loss is 0.
  Assignments empty;
  empty.S = 2;
  EXPECT_EQ(auxLoss(Mat(0, 2), empty, AuxConv::AllK), 0.0);
  EXPECT_EQ(zLoss(Mat(0, 2)), 0.0);
  // A NaN token makes the losses NaN.
  EXPECT_TRUE(std::isnan(zLoss(mat(1, 2, {kNaN, 0}))));
}

//===----------------------------------------------------------------------===//
// .npy
//===----------------------------------------------------------------------===//

std::string tempPath(const std::string &name) {
  return (std::filesystem::temp_directory_path() /
          ("moe-reference-selftest-" + name))
      .string();
}

npy::Array roundTrip(const npy::Array &a, const std::string &name) {
  std::string err, path = tempPath(name + ".npy");
  EXPECT_TRUE(npy::write(path, a, &err)) << err;
  npy::Array b;
  EXPECT_TRUE(npy::read(path, &b, &err)) << err;
  std::filesystem::remove(path);
  return b;
}

TEST(Npy, RoundTripEveryType) {
  for (npy::DType t : {npy::DType::F32, npy::DType::F64, npy::DType::F16,
                       npy::DType::BF16}) {
    npy::Array a;
    a.dtype = t;
    a.shape = {2, 3};
    a.f = {1.0, -2.5, 0.0, 0.375, kInf, -kInf};
    npy::Array b = roundTrip(a, npy::dtypeName(t));
    EXPECT_EQ(b.dtype, t);
    EXPECT_EQ(b.shape, a.shape);
    EXPECT_EQ(b.f, a.f) << npy::dtypeName(t);
  }
  for (npy::DType t : {npy::DType::I32, npy::DType::I64}) {
    npy::Array a;
    a.dtype = t;
    a.shape = {4};
    a.i = {0, -1, 7, 2147483647};
    npy::Array b = roundTrip(a, npy::dtypeName(t));
    EXPECT_EQ(b.i, a.i);
  }
}

TEST(Npy, ZeroDimAndEmpty) {
  npy::Array s;
  s.dtype = npy::DType::F32;
  s.f = {0.25}; // shape ()
  npy::Array b = roundTrip(s, "scalar");
  EXPECT_TRUE(b.shape.empty());
  ASSERT_EQ(b.f.size(), 1u);
  EXPECT_EQ(b.f[0], 0.25);
  npy::Array e;
  e.dtype = npy::DType::F64;
  e.shape = {0, 32};
  b = roundTrip(e, "empty");
  EXPECT_EQ(b.shape, (std::vector<int64_t>{0, 32}));
  EXPECT_TRUE(b.f.empty());
}

TEST(Npy, NaNSurvives) {
  for (npy::DType t : {npy::DType::F32, npy::DType::F16, npy::DType::BF16}) {
    npy::Array a;
    a.dtype = t;
    a.shape = {1};
    a.f = {kNaN};
    EXPECT_TRUE(std::isnan(roundTrip(a, "nan").f[0])) << npy::dtypeName(t);
  }
}

TEST(Npy, Bf16RoundsToNearestEven) {
  // bf16 keeps 7 fraction bits: spacing 2^-7 above 1.
  EXPECT_EQ(npy::roundTo(npy::DType::BF16, 1 + std::ldexp(1, -8)), 1.0);
  EXPECT_EQ(npy::roundTo(npy::DType::BF16, 1 + 3 * std::ldexp(1, -8)),
            1 + std::ldexp(1, -6));
  EXPECT_EQ(npy::roundTo(npy::DType::BF16, 1 + std::ldexp(1, -8) +
                                               std::ldexp(1, -20)),
            1 + std::ldexp(1, -7));
  EXPECT_EQ(npy::f32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(npy::f32ToBf16(-2.0f), 0xC000);
  EXPECT_EQ(npy::f32ToBf16(3.4028235e38f), 0x7F80); // rounds up to inf
}

TEST(Npy, F16RoundsToNearestEven) {
  EXPECT_EQ(npy::f64ToF16(1.0), 0x3C00);
  EXPECT_EQ(npy::f64ToF16(1 + std::ldexp(1, -11)), 0x3C00);     // tie, even
  EXPECT_EQ(npy::f64ToF16(1 + 3 * std::ldexp(1, -11)), 0x3C02); // tie, even
  EXPECT_EQ(npy::f64ToF16(65504.0), 0x7BFF);
  EXPECT_EQ(npy::f64ToF16(65519.0), 0x7BFF);
  EXPECT_EQ(npy::f64ToF16(65520.0), 0x7C00); // the midpoint to 2^16: inf
  EXPECT_EQ(npy::f64ToF16(std::ldexp(1, -24)), 0x0001);
  EXPECT_EQ(npy::f64ToF16(std::ldexp(1, -25)), 0x0000);     // tie, even
  EXPECT_EQ(npy::f64ToF16(3 * std::ldexp(1, -25)), 0x0002); // tie, even
  EXPECT_EQ(npy::f64ToF16(std::ldexp(1023, -24)), 0x03FF);
  EXPECT_EQ(npy::f64ToF16(std::ldexp(2047, -25)), 0x0400); // up to normal
  EXPECT_EQ(npy::f64ToF16(-0.0), 0x8000);
  EXPECT_EQ(npy::f16ToF64(0x3555), 0.333251953125);
  EXPECT_EQ(npy::f16ToF64(0xFC00), -kInf);
}

TEST(Npy, ReadsNumpyHeaders) {
  // The header as numpy 1.x writes it (v1.0), shape (2,), and a v2.0 file.
  for (int version : {1, 2}) {
    std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    size_t pre = version == 1 ? 10 : 12;
    dict.append(128 - pre - dict.size() - 1, ' ');
    dict += '\n';
    std::string data = "\x93NUMPY";
    data += char(version);
    data += char(0);
    data += char(dict.size());
    data += char(0);
    if (version == 2) data += std::string(2, '\0');
    data += dict;
    float v[2] = {1.5f, -3.0f};
    data.append(reinterpret_cast<const char *>(v), 8); // little-endian host
    std::string path = tempPath("numpy-header.npy");
    std::ofstream(path, std::ios::binary) << data;
    npy::Array a;
    std::string err;
    ASSERT_TRUE(npy::read(path, &a, &err)) << err;
    EXPECT_EQ(a.shape, (std::vector<int64_t>{2}));
    EXPECT_EQ(a.f, (Vec{1.5, -3.0}));
    std::filesystem::remove(path);
  }
  npy::Array a;
  std::string err;
  EXPECT_FALSE(npy::read(tempPath("does-not-exist.npy"), &a, &err));
}

} // namespace
