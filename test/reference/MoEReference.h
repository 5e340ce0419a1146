//===- MoEReference.h - f64 reference model of a sparse MoE layer -*- C++ -*-===//
//
// An independent reference implementation of the sparse Mixture-of-Experts
// layer of the project specification (the semantics of the moe dialect) with
// the readings of docs/semantics.md, computed in double precision. It is the
// test oracle of moe-mlir and shares no code with the compiler: it uses the
// C++ standard library only.
//
// Conventions: T tokens, d hidden size, E experts, k (or S) slots per token,
// f expert inner size. Weights are [out, in] (checkpoint convention).
// Matrices are row-major. Expert ids are int64 here; -1 marks an unused slot.
//
// Besides values, every function that makes a discrete decision reports its
// DECISION MARGINS: when two values that a comparison decides between differ
// by less than 1e-5 * max(floor, |a|, |b|), the result could flip under f32
// rounding, and the case is "ambiguous". Exactly equal values are not
// ambiguous (both sides see the same tie and break it by index), and a NaN
// never is (NaN orders below every number).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_REFERENCE_MOEREFERENCE_H
#define MOE_REFERENCE_MOEREFERENCE_H

#include <cstdint>
#include <string>
#include <vector>

namespace moeref {

//===----------------------------------------------------------------------===//
// Configuration
//===----------------------------------------------------------------------===//

enum class Score { Softmax, Sigmoid, SqrtSoftplus, Logits };
enum class Select { TopK, GroupedTopK, TopP, Threshold, ExpertChoice };
enum class GroupScore { Max, SumTop2 };
enum class Weights { Scores, SoftmaxSelected };
enum class Apply { Output, Input };
enum class CapKind { None, Count, Factor };
enum class DropOrder { ChoiceMajor, TokenMajor, Score };
enum class ExpertKind { Gated, Mlp, Lora, LoraGated };
/// SwigluOai: GPT-OSS's clamped SwiGLU, which combines gate and up itself
/// (see gatedValue); `activation` of it alone is not defined.
enum class Act { Silu, GeluTanh, GeluErf, Relu, SwigluOai };
enum class SharedKind { None, Plain, Gated };
enum class AuxConv { Switch, AllK, AllKMean };

struct RoutingConfig {
  Score score = Score::Softmax;
  Select select = Select::TopK;
  int64_t k = 2;
  int64_t groups = 1;
  int64_t topkGroup = 1;
  GroupScore groupScore = GroupScore::Max;
  double topP = 1.0;
  double tau = 0.0; // the parameter, or the value of the tau operand
  Weights weights = Weights::Scores;
  bool renormalize = false;
  double scale = 1.0;
  Apply apply = Apply::Output;
};

struct CapacityConfig {
  CapKind kind = CapKind::None;
  int64_t count = 0;
  double factor = 1.0;
  int64_t min = 0;
  int64_t align = 1;
  DropOrder order = DropOrder::ChoiceMajor;
  bool renormalizeAfterDrop = false;
};

struct LayerConfig {
  RoutingConfig routing;
  CapacityConfig capacity;
  ExpertKind kind = ExpertKind::Gated;
  Act act = Act::Silu;
  double alpha = 8.0; // LoRA scale numerator
  SharedKind shared = SharedKind::None;
};

//===----------------------------------------------------------------------===//
// Data
//===----------------------------------------------------------------------===//

/// A row-major matrix [rows, cols] of doubles.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<double> v;
  Mat() = default;
  Mat(int64_t r, int64_t c, double fill = 0.0)
      : rows(r), cols(c), v(size_t(r * c), fill) {}
  double &at(int64_t r, int64_t c) { return v[size_t(r * cols + c)]; }
  double at(int64_t r, int64_t c) const { return v[size_t(r * cols + c)]; }
  const double *row(int64_t r) const { return v.data() + r * cols; }
};

using Vec = std::vector<double>;

/// Token-choice assignments [T, S]: expert ids (-1 = unused) and weights.
struct Assignments {
  int64_t T = 0, S = 0;
  std::vector<int64_t> ids;
  Vec w;
  int64_t id(int64_t t, int64_t j) const { return ids[size_t(t * S + j)]; }
  double weight(int64_t t, int64_t j) const { return w[size_t(t * S + j)]; }
};

/// Collected decision margins. `count` > 0 means the case is ambiguous.
struct Margins {
  int count = 0;
  std::vector<std::string> notes; // the first few, for humans
  /// Records that `what` (at token or expert `where`) compared a and b.
  void flag(const char *what, int64_t where, double a, double b);
};

/// True when a and b are different numbers that differ by less than
/// 1e-5 * max(floor, |a|, |b|). NaNs and exact equality are never near.
bool nearButDistinct(double a, double b, double floor);

/// The selection order: a ranks above b when a > b, NaN below every number
/// (including -inf); equal keys (and NaNs) are equivalent.
bool keyAbove(double a, double b);
/// Indices `candidates` (ascending) sorted by descending key, NaN last,
/// equal keys in index order.
std::vector<int64_t> rankDescending(const Vec &keys,
                                    std::vector<int64_t> candidates);
/// Flags when the first m entries of `order`, in order, could change: some
/// key among them is near a different key ranked after it.
void checkPrefix(const Vec &keys, const std::vector<int64_t> &order, size_t m,
                 double floor, Margins *mg, const char *what, int64_t where);
/// Flags when the SET of the first m entries of `order` could change: a key
/// ranked before position m is near a different key ranked from m on.
void checkCut(const Vec &keys, const std::vector<int64_t> &order, size_t m,
              double floor, Margins *mg, const char *what, int64_t where);

//===----------------------------------------------------------------------===//
// Stages
//===----------------------------------------------------------------------===//

/// x [T, in], w [out, in] -> [T, out].
Mat linear(const Mat &x, const Mat &w);
/// w [out, in] times the vector x [in].
Vec matVec(const Mat &w, const Vec &x);
double activation(Act a, double x);

/// Router logits z = x Wg^T (+ bias), [T, E].
Mat routerLogits(const Mat &x, const Mat &wg, const Vec *bias);
/// Score function applied to the logits, [T, E].
Mat scores(const Mat &z, Score s);
/// Softmax over all experts of each row.
Mat softmaxRows(const Mat &z);

/// Margin floor of the per-token selection keys: 0 (relative margin) when
/// the keys are softmax or sigmoid scores without a selection bias (their
/// rounding error is relative), else 1.
double keyFloor(const RoutingConfig &r, bool hasSelectionBias);
/// Margin floor of the combine weights (used by the score drop order).
double weightFloor(const RoutingConfig &r);

/// Token-choice routing (top_k, grouped_top_k, top_p, threshold) with the
/// combine weights: slot order, -1 and weight 0 for unused slots.
Assignments route(const Mat &z, const RoutingConfig &r, const Vec *selBias,
                  Margins *mg);

/// Per-expert capacity of dispatch: count or ceil(factor * (T*S) / E) in
/// f64, then max(., min), then rounded up to a multiple of align.
int64_t dispatchCapacity(const CapacityConfig &c, int64_t T, int64_t S,
                         int64_t E);
/// Capacity of expert choice: as dispatchCapacity with S = k, and
/// ceil(T*k/E) without a capacity.
int64_t expertChoiceCapacity(const CapacityConfig &c, int64_t T, int64_t k,
                             int64_t E);

struct ExpertChoiceResult {
  int64_t C = 0;
  std::vector<int64_t> tokenIds; // [E, C], -1 past T
  Vec tokenWeights;              // [E, C]
  Assignments slots;             // [T, E] slot form
};
/// `mg` flags the near-ties that decide the result: with `ranked`, the
/// order of each expert's chosen tokens (tokenIds lists them by rank);
/// without, only which tokens each expert chooses (a layer's output and
/// counts depend on nothing else).
ExpertChoiceResult expertChoice(const Mat &z, int64_t k,
                                const CapacityConfig &c, int64_t numExperts,
                                Margins *mg, bool ranked = true);

struct DispatchResult {
  int64_t C = -1; // -1: dropless
  std::vector<int64_t> rowToken; // [T*S]
  Vec rowWeight;                 // [T*S]
  std::vector<int64_t> slotRow;  // [T, S]
  Vec slotWeight;                // [T, S]
  std::vector<int64_t> groupSizes, groupOffsets, dropped; // [E]
};
/// Groups the assignments by expert with the optional capacity.
DispatchResult dispatch(const Assignments &a, int64_t E,
                        const CapacityConfig &c, double wFloor, Margins *mg);

/// Assignments per expert before dropping (unused slots not counted).
std::vector<int64_t> expertLoad(const Assignments &a, int64_t E);
/// Co-activation counts before dropping, [E * E] row-major: entry (i, j),
/// i < j, is the number of tokens whose selection holds both i and j (the
/// rest 0).
std::vector<int64_t> coactivation(const Assignments &a, int64_t E);
double auxLoss(const Mat &z, const Assignments &a, AuxConv conv);
double zLoss(const Mat &z);

//===----------------------------------------------------------------------===//
// Experts and the layer
//===----------------------------------------------------------------------===//

/// Routed expert weights, per expert e (vectors indexed by e).
struct ExpertWeights {
  ExpertKind kind = ExpertKind::Gated;
  Act act = Act::Silu;
  double alpha = 8.0;
  // gated: gate, up [f, d], down [d, f]; mlp: w1 in `gate`, w2 in `down`.
  std::vector<Mat> gate, up, down;
  // gated, optional (GPT-OSS): biases of gate, up [f] and down [d], added
  // to each projection's output.
  std::vector<Vec> gateBias, upBias, downBias;
  // lora: base [d_out, d], A [r, d], B [d_out, r].
  Mat base;
  std::vector<Mat> a, b;
  // lora_gated: the frozen base FFN and the LoRA pairs of each projection.
  Mat baseGate, baseUp, baseDown;
  std::vector<Mat> aGate, bGate, aUp, bUp, aDown, bDown;
};

/// The gated combination of one gate value g and up value u: act(g) * u,
/// or for swiglu_oai (clamp(u, -7, 7) + 1) * g' * sigmoid(1.702 g') with
/// g' = min(g, 7).
double gatedValue(Act act, double g, double u);

/// Splits a fused gate_up[e] [2f, d] into gate (rows 0..f-1) and up.
void splitGateUp(const Mat &gateUp, Mat *gate, Mat *up);

/// The routed expert e applied to one token (for lora: only the delta).
Vec expertForward(const ExpertWeights &w, int64_t e, const Vec &x);

struct SharedWeights {
  SharedKind kind = SharedKind::None;
  Act act = Act::Silu;
  Mat gate, up, down; // [fs, d], [fs, d], [d, fs]
  Mat gateWeight;     // [1, d] when kind == Gated
};
Vec sharedForward(const SharedWeights &s, const Vec &x);

struct LayerInputs {
  Mat x;  // [T, d]
  Mat wg; // [E, d]
  bool hasRouterBias = false;
  Vec routerBias;
  bool hasSelectionBias = false;
  Vec selectionBias;
  ExpertWeights experts;
  SharedWeights shared;
};

struct LayerResult {
  Mat y; // [T, d_out]
  std::vector<int64_t> assignments, dropped;
  // Intermediate stages, for inspection.
  Mat logits;
  Assignments routing;
  DispatchResult disp;
};
LayerResult layer(const LayerConfig &cfg, const LayerInputs &in, Margins *mg);

/// moe.grouped_matmul: rows of lhs [N, K] in consecutive groups of sizes;
/// group e times rhs[e] ([K, M], or [M, K] when transposed); rows past the
/// groups are zero.
Mat groupedMatmul(const Mat &lhs, const std::vector<Mat> &rhs,
                  const std::vector<int64_t> &sizes, bool transposeRhs);

} // namespace moeref

#endif // MOE_REFERENCE_MOEREFERENCE_H
