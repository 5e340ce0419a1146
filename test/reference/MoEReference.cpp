//===- MoEReference.cpp - f64 reference model of a sparse MoE layer -------===//
//
// Written from the specification text; see MoEReference.h. Each function is
// the direct transcription of one rule, with no attempt at speed.
//
//===----------------------------------------------------------------------===//

#include "MoEReference.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <set>

namespace moeref {

static const double kNaN = std::numeric_limits<double>::quiet_NaN();
static const double kInf = std::numeric_limits<double>::infinity();

//===----------------------------------------------------------------------===//
// Decision margins and the selection order
//===----------------------------------------------------------------------===//

void Margins::flag(const char *what, int64_t where, double a, double b) {
  ++count;
  if (notes.size() >= 8) return;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s at %lld: %.17g vs %.17g (diff %.3g)",
                what, static_cast<long long>(where), a, b, std::fabs(a - b));
  notes.push_back(buf);
}

bool nearButDistinct(double a, double b, double floor) {
  if (std::isnan(a) || std::isnan(b) || a == b) return false;
  if (std::isinf(a) || std::isinf(b)) return false;
  double margin = 1e-5 * std::max({floor, std::fabs(a), std::fabs(b)});
  return std::fabs(a - b) < margin;
}

bool keyAbove(double a, double b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a > b;
}

static bool sameKey(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

std::vector<int64_t> rankDescending(const Vec &keys,
                                    std::vector<int64_t> candidates) {
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](int64_t a, int64_t b) {
                     return keyAbove(keys[size_t(a)], keys[size_t(b)]);
                   });
  return candidates;
}

void checkPrefix(const Vec &keys, const std::vector<int64_t> &order, size_t m,
                 double floor, Margins *mg, const char *what, int64_t where) {
  if (!mg) return;
  size_t n = order.size();
  for (size_t i = 0; i < std::min(m, n); ++i) {
    double ki = keys[size_t(order[i])];
    size_t j = i + 1;
    while (j < n && sameKey(ki, keys[size_t(order[j])])) ++j;
    if (j < n && nearButDistinct(ki, keys[size_t(order[j])], floor)) {
      mg->flag(what, where, ki, keys[size_t(order[j])]);
      return;
    }
  }
}

void checkCut(const Vec &keys, const std::vector<int64_t> &order, size_t m,
              double floor, Margins *mg, const char *what, int64_t where) {
  size_t n = order.size();
  if (!mg || m == 0 || m >= n) return;
  double first = keys[size_t(order[m])]; // the best key left out
  for (size_t i = m; i-- > 0;) {
    double ki = keys[size_t(order[i])];
    size_t j = m;
    while (j < n && sameKey(ki, keys[size_t(order[j])])) ++j;
    if (j < n && nearButDistinct(ki, keys[size_t(order[j])], floor)) {
      mg->flag(what, where, ki, keys[size_t(order[j])]);
      return;
    }
    // Keys ranked before i are at least ki: farther from everything left out.
    if (!sameKey(ki, first)) return;
  }
}

//===----------------------------------------------------------------------===//
// Linear algebra and elementwise functions
//===----------------------------------------------------------------------===//

Vec matVec(const Mat &w, const Vec &x) {
  Vec y(size_t(w.rows), 0.0);
  for (int64_t o = 0; o < w.rows; ++o) {
    double acc = 0.0;
    for (int64_t i = 0; i < w.cols; ++i) acc += w.at(o, i) * x[size_t(i)];
    y[size_t(o)] = acc;
  }
  return y;
}

Mat linear(const Mat &x, const Mat &w) {
  Mat y(x.rows, w.rows);
  for (int64_t t = 0; t < x.rows; ++t) {
    Vec xt(x.row(t), x.row(t) + x.cols);
    Vec yt = matVec(w, xt);
    std::copy(yt.begin(), yt.end(), y.v.begin() + t * y.cols);
  }
  return y;
}

static double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

double activation(Act a, double x) {
  switch (a) {
  case Act::Silu: return x / (1.0 + std::exp(-x));
  case Act::GeluTanh: {
    const double pi = 3.14159265358979323846;
    const double c = std::sqrt(2.0 / pi);
    return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
  }
  case Act::GeluErf: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
  case Act::Relu:
    // max(x, 0); a NaN stays NaN (IEEE arithmetic on the non-finite input).
    return std::isnan(x) ? x : (x > 0.0 ? x : 0.0);
  case Act::SwigluOai:
    break;  // gates up itself: gatedValue
  }
  return kNaN;
}

double gatedValue(Act act, double g, double u) {
  if (act != Act::SwigluOai) return activation(act, g) * u;
  // GPT-OSS: alpha 1.702, limit 7; a NaN stays NaN through the clamps.
  const double alpha = 1.702, limit = 7.0;
  if (std::isnan(g) || std::isnan(u)) return kNaN;
  double gc = std::min(g, limit);
  double uc = std::max(std::min(u, limit), -limit);
  return (uc + 1.0) * gc * sigmoid(alpha * gc);
}

/// Softmax of a vector; a NaN anywhere makes every entry NaN, and so do
/// +inf entries (exp(inf - inf)), as IEEE arithmetic gives.
static Vec softmaxVec(const Vec &z) {
  double m = -kInf;
  bool nan = false;
  for (double v : z) {
    if (std::isnan(v)) nan = true;
    else m = std::max(m, v);
  }
  Vec out(z.size(), kNaN);
  if (nan) return out;
  double sum = 0.0;
  for (size_t i = 0; i < z.size(); ++i) {
    out[i] = std::exp(z[i] - m);
    sum += out[i];
  }
  for (double &v : out) v /= sum;
  return out;
}

/// log(sum(exp(z))) with the max shifted out; NaN propagates.
static double logSumExp(const Vec &z) {
  double m = -kInf;
  for (double v : z) {
    if (std::isnan(v)) return kNaN;
    m = std::max(m, v);
  }
  double sum = 0.0;
  for (double v : z) sum += std::exp(v - m);
  return m + std::log(sum);
}

static Vec rowOf(const Mat &m, int64_t r) {
  return Vec(m.row(r), m.row(r) + m.cols);
}

//===----------------------------------------------------------------------===//
// Router and scores
//===----------------------------------------------------------------------===//

Mat routerLogits(const Mat &x, const Mat &wg, const Vec *bias) {
  Mat z = linear(x, wg);
  if (bias)
    for (int64_t t = 0; t < z.rows; ++t)
      for (int64_t e = 0; e < z.cols; ++e) z.at(t, e) += (*bias)[size_t(e)];
  return z;
}

Mat softmaxRows(const Mat &z) {
  Mat s(z.rows, z.cols);
  for (int64_t t = 0; t < z.rows; ++t) {
    Vec r = softmaxVec(rowOf(z, t));
    std::copy(r.begin(), r.end(), s.v.begin() + t * s.cols);
  }
  return s;
}

Mat scores(const Mat &z, Score sf) {
  if (sf == Score::Softmax) return softmaxRows(z);
  Mat s = z;
  for (double &v : s.v) {
    switch (sf) {
    case Score::Sigmoid: v = sigmoid(v); break;
    case Score::SqrtSoftplus: {
      // softplus(z) = log(1 + exp(z)), written in its overflow-free form.
      double sp = std::isnan(v) ? v
                                : std::max(v, 0.0) +
                                      std::log1p(std::exp(-std::fabs(v)));
      v = std::sqrt(sp);
      break;
    }
    default: break; // logits: s = z
    }
  }
  return s;
}

double keyFloor(const RoutingConfig &r, bool hasSelectionBias) {
  bool relative = (r.score == Score::Softmax || r.score == Score::Sigmoid) &&
                  !hasSelectionBias;
  return relative ? 0.0 : 1.0;
}

double weightFloor(const RoutingConfig &r) {
  bool relative = r.score == Score::Softmax || r.score == Score::Sigmoid ||
                  r.weights == Weights::SoftmaxSelected;
  return relative ? 0.0 : 1.0;
}

//===----------------------------------------------------------------------===//
// Selection and combine weights
//===----------------------------------------------------------------------===//

static std::vector<int64_t> iota(int64_t begin, int64_t end) {
  std::vector<int64_t> v(size_t(std::max<int64_t>(end - begin, 0)));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

/// The experts of one token in slot order (-1 for unused slots).
static std::vector<int64_t> selectToken(const RoutingConfig &r, const Vec &s,
                                        const Vec &keys, int64_t t, double kf,
                                        Margins *mg) {
  int64_t E = int64_t(keys.size());
  size_t S = size_t(r.k);
  std::vector<int64_t> chosen(S, -1);
  std::vector<int64_t> order;
  if (r.select == Select::GroupedTopK) {
    int64_t G = r.groups, gs = E / G;
    Vec gscore(static_cast<size_t>(G));
    for (int64_t g = 0; g < G; ++g) {
      std::vector<int64_t> in = rankDescending(keys, iota(g * gs, g * gs + gs));
      double best = keys[size_t(in[0])];
      gscore[size_t(g)] = r.groupScore == GroupScore::Max
                              ? best
                              : best + keys[size_t(in[1])];
    }
    std::vector<int64_t> gorder = rankDescending(gscore, iota(0, G));
    checkCut(gscore, gorder, size_t(r.topkGroup), kf, mg, "group selection", t);
    std::vector<int64_t> kept;
    for (size_t i = 0; i < size_t(r.topkGroup); ++i)
      for (int64_t e = gorder[i] * gs; e < gorder[i] * gs + gs; ++e)
        kept.push_back(e);
    std::sort(kept.begin(), kept.end());
    order = rankDescending(keys, kept);
  } else {
    order = rankDescending(keys, iota(0, E));
  }
  checkPrefix(keys, order, S, kf, mg, "expert selection", t);

  double cum = 0.0; // top_p: unbiased scores already taken
  for (size_t j = 0; j < S; ++j) {
    int64_t e = order[j];
    double se = s[size_t(e)];
    if (r.select == Select::TopP && j > 0) {
      if (mg && nearButDistinct(cum, r.topP, 1.0))
        mg->flag("top_p crossing", t, cum, r.topP);
      if (!(cum < r.topP)) break;
    }
    if (r.select == Select::Threshold && j > 0) {
      if (mg && nearButDistinct(se, r.tau, 1.0))
        mg->flag("threshold", t, se, r.tau);
      if (se < r.tau) continue; // unused slot; later slots judged alone
    }
    chosen[j] = e;
    cum += se;
  }
  return chosen;
}

/// Flags a renormalization of `t`'s weights whose sum is small against the
/// sum of their magnitudes (signed scores: logits). Dividing by it
/// multiplies the rounding errors of any f32 implementation (those of the
/// logits' dot products, about 1e-6 of their size) by that ratio, past the
/// f32 outputs' tolerance (1e-5) beyond 10, so such a case would not test
/// the implementation.
static void checkRenormalization(double sum, double magnitude, Margins *mg,
                                 int64_t t) {
  if (mg && std::isfinite(sum) && std::isfinite(magnitude) &&
      std::fabs(sum) * 10.0 < magnitude)
    mg->flag("renormalization by a sum near zero (sum vs sum of magnitudes)", t,
             sum, magnitude);
}

/// Combine weights of one token's kept slots (spec section 3).
static Vec combineWeights(const RoutingConfig &r, const Vec &s, const Vec &z,
                          const std::vector<int64_t> &chosen, Margins *mg,
                          int64_t t) {
  Vec raw(chosen.size(), 0.0);
  if (r.weights == Weights::SoftmaxSelected) {
    Vec zs;
    for (int64_t e : chosen)
      if (e >= 0) zs.push_back(z[size_t(e)]);
    Vec p = softmaxVec(zs);
    for (size_t j = 0, q = 0; j < chosen.size(); ++j)
      if (chosen[j] >= 0) raw[j] = p[q++];
  } else {
    for (size_t j = 0; j < chosen.size(); ++j)
      if (chosen[j] >= 0) raw[j] = s[size_t(chosen[j])];
  }
  if (r.renormalize) {
    double sum = 0.0, magnitude = 0.0;
    for (size_t j = 0; j < chosen.size(); ++j)
      if (chosen[j] >= 0) {
        sum += raw[j];
        magnitude += std::fabs(raw[j]);
      }
    checkRenormalization(sum, magnitude, mg, t);
    for (size_t j = 0; j < chosen.size(); ++j)
      if (chosen[j] >= 0) raw[j] = raw[j] / (sum + 1e-20);
  }
  for (size_t j = 0; j < chosen.size(); ++j)
    if (chosen[j] >= 0) raw[j] *= r.scale;
  return raw;
}

Assignments route(const Mat &z, const RoutingConfig &r, const Vec *selBias,
                  Margins *mg) {
  Mat s = scores(z, r.score);
  double kf = keyFloor(r, selBias != nullptr);
  Assignments a;
  a.T = z.rows;
  a.S = r.k;
  a.ids.assign(size_t(a.T * a.S), -1);
  a.w.assign(size_t(a.T * a.S), 0.0);
  for (int64_t t = 0; t < z.rows; ++t) {
    Vec st = rowOf(s, t), keys = st;
    if (selBias)
      for (size_t e = 0; e < keys.size(); ++e) keys[e] += (*selBias)[e];
    std::vector<int64_t> chosen = selectToken(r, st, keys, t, kf, mg);
    Vec w = combineWeights(r, st, rowOf(z, t), chosen, mg, t);
    for (int64_t j = 0; j < a.S; ++j) {
      a.ids[size_t(t * a.S + j)] = chosen[size_t(j)];
      a.w[size_t(t * a.S + j)] = w[size_t(j)];
    }
  }
  return a;
}

//===----------------------------------------------------------------------===//
// Capacity, expert choice, dispatch
//===----------------------------------------------------------------------===//

static int64_t minAlign(const CapacityConfig &c, int64_t C) {
  C = std::max(C, c.min);
  return (C + c.align - 1) / c.align * c.align;
}

int64_t dispatchCapacity(const CapacityConfig &c, int64_t T, int64_t S,
                         int64_t E) {
  int64_t C = c.count;
  if (c.kind == CapKind::Factor) {
    int64_t assignments = T * S; // an integer first
    C = int64_t(std::ceil(c.factor * double(assignments) / double(E)));
  }
  return minAlign(c, C);
}

int64_t expertChoiceCapacity(const CapacityConfig &c, int64_t T, int64_t k,
                             int64_t E) {
  if (c.kind == CapKind::None) return (T * k + E - 1) / E;
  return dispatchCapacity(c, T, k, E);
}

ExpertChoiceResult expertChoice(const Mat &z, int64_t k,
                                const CapacityConfig &c, int64_t E, Margins *mg,
                                bool ranked) {
  int64_t T = z.rows;
  Mat s = softmaxRows(z);
  ExpertChoiceResult r;
  r.C = expertChoiceCapacity(c, T, k, E);
  r.tokenIds.assign(size_t(E * r.C), -1);
  r.tokenWeights.assign(size_t(E * r.C), 0.0);
  r.slots.T = T;
  r.slots.S = E;
  r.slots.ids.assign(size_t(T * E), -1);
  r.slots.w.assign(size_t(T * E), 0.0);
  for (int64_t e = 0; e < E; ++e) {
    Vec col(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) col[size_t(t)] = s.at(t, e);
    std::vector<int64_t> order = rankDescending(col, iota(0, T));
    size_t m = size_t(std::min(r.C, T));
    if (ranked)
      checkPrefix(col, order, m, 0.0, mg, "expert choice of expert", e);
    else
      checkCut(col, order, m, 0.0, mg, "expert choice of expert", e);
    for (size_t c2 = 0; c2 < m; ++c2) {
      int64_t t = order[c2];
      r.tokenIds[size_t(e * r.C) + c2] = t;
      r.tokenWeights[size_t(e * r.C) + c2] = s.at(t, e);
      r.slots.ids[size_t(t * E + e)] = e;
      r.slots.w[size_t(t * E + e)] = s.at(t, e);
    }
  }
  return r;
}

/// Assignment indices q = t*S + j of expert e, in the priority order of
/// the drop rule.
static std::vector<int64_t> priorityOrder(const Assignments &a, int64_t e,
                                          DropOrder order) {
  std::vector<int64_t> qs;
  for (int64_t q = 0; q < a.T * a.S; ++q)
    if (a.ids[size_t(q)] == e) qs.push_back(q); // token-major order
  switch (order) {
  case DropOrder::TokenMajor: return qs;
  case DropOrder::ChoiceMajor:
    std::stable_sort(qs.begin(), qs.end(), [&](int64_t x, int64_t y) {
      return x % a.S < y % a.S; // by slot j, then token t
    });
    return qs;
  case DropOrder::Score: return rankDescending(a.w, qs);
  }
  return qs;
}

DispatchResult dispatch(const Assignments &a, int64_t E,
                        const CapacityConfig &c, double wFloor, Margins *mg) {
  int64_t T = a.T, S = a.S, N = T * S;
  DispatchResult d;
  d.C = c.kind == CapKind::None ? -1 : dispatchCapacity(c, T, S, E);
  std::vector<char> kept(size_t(N), 0);
  d.groupSizes.assign(size_t(E), 0);
  d.dropped.assign(size_t(E), 0);
  for (int64_t e = 0; e < E; ++e) {
    std::vector<int64_t> prio = priorityOrder(a, e, c.order);
    size_t keep = prio.size();
    if (d.C >= 0 && int64_t(keep) > d.C) {
      keep = size_t(d.C);
      if (c.order == DropOrder::Score)
        checkCut(a.w, prio, keep, wFloor, mg, "score drop cutoff of expert", e);
    }
    for (size_t i = 0; i < keep; ++i) kept[size_t(prio[i])] = 1;
    d.groupSizes[size_t(e)] = int64_t(keep);
    d.dropped[size_t(e)] = int64_t(prio.size() - keep);
  }

  // Final weights: dropped slots are 0; optionally renormalized per token.
  Vec fw(size_t(N), 0.0);
  for (int64_t q = 0; q < N; ++q)
    if (kept[size_t(q)]) fw[size_t(q)] = a.w[size_t(q)];
  if (c.kind != CapKind::None && c.renormalizeAfterDrop) {
    for (int64_t t = 0; t < T; ++t) {
      double sum = 0.0, magnitude = 0.0;
      for (int64_t j = 0; j < S; ++j)
        if (kept[size_t(t * S + j)]) {
          sum += a.w[size_t(t * S + j)];
          magnitude += std::fabs(a.w[size_t(t * S + j)]);
        }
      checkRenormalization(sum, magnitude, mg, t);
      for (int64_t j = 0; j < S; ++j)
        if (kept[size_t(t * S + j)])
          fw[size_t(t * S + j)] = a.w[size_t(t * S + j)] / (sum + 1e-20);
    }
  }

  // Grouped layout: expert e owns rows [offset, offset + size), its kept
  // assignments in token order; the rest is padding.
  d.groupOffsets.assign(size_t(E), 0);
  for (int64_t e = 1; e < E; ++e)
    d.groupOffsets[size_t(e)] =
        d.groupOffsets[size_t(e - 1)] + d.groupSizes[size_t(e - 1)];
  d.rowToken.assign(size_t(N), -1);
  d.rowWeight.assign(size_t(N), 0.0);
  d.slotRow.assign(size_t(N), -1);
  d.slotWeight.assign(size_t(N), 0.0);
  for (int64_t e = 0; e < E; ++e) {
    int64_t row = d.groupOffsets[size_t(e)];
    for (int64_t q = 0; q < N; ++q) {
      if (a.ids[size_t(q)] != e || !kept[size_t(q)]) continue;
      d.rowToken[size_t(row)] = q / S;
      d.rowWeight[size_t(row)] = fw[size_t(q)];
      d.slotRow[size_t(q)] = row;
      d.slotWeight[size_t(q)] = fw[size_t(q)];
      ++row;
    }
  }
  return d;
}

//===----------------------------------------------------------------------===//
// Statistics and losses
//===----------------------------------------------------------------------===//

std::vector<int64_t> expertLoad(const Assignments &a, int64_t E) {
  std::vector<int64_t> load(size_t(E), 0);
  for (int64_t id : a.ids)
    if (id >= 0 && id < E) ++load[size_t(id)];
  return load;
}

std::vector<int64_t> coactivation(const Assignments &a, int64_t E) {
  std::vector<int64_t> pairs(size_t(E * E), 0);
  for (int64_t t = 0; t < a.T; ++t) {
    std::set<int64_t> chose;
    for (int64_t j = 0; j < a.S; ++j)
      if (a.id(t, j) >= 0 && a.id(t, j) < E) chose.insert(a.id(t, j));
    for (auto i = chose.begin(); i != chose.end(); ++i)
      for (auto k = std::next(i); k != chose.end(); ++k)
        ++pairs[size_t(*i * E + *k)];
  }
  return pairs;
}

double auxLoss(const Mat &z, const Assignments &a, AuxConv conv) {
  int64_t T = z.rows, E = z.cols;
  if (T == 0) return 0.0;
  Mat p = softmaxRows(z);
  Vec P(size_t(E), 0.0), F(size_t(E), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t e = 0; e < E; ++e) P[size_t(e)] += p.at(t, e) / double(T);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < (conv == AuxConv::Switch ? 1 : a.S); ++j) {
      int64_t e = a.id(t, j);
      if (e >= 0) F[size_t(e)] += 1.0 / double(T);
    }
  double sum = 0.0;
  for (int64_t e = 0; e < E; ++e) sum += F[size_t(e)] * P[size_t(e)];
  double loss = double(E) * sum;
  if (conv == AuxConv::AllKMean) loss /= double(a.S);
  return loss;
}

double zLoss(const Mat &z) {
  if (z.rows == 0) return 0.0;
  double sum = 0.0;
  for (int64_t t = 0; t < z.rows; ++t) {
    double l = logSumExp(rowOf(z, t));
    sum += l * l;
  }
  return sum / double(z.rows);
}

//===----------------------------------------------------------------------===//
// Experts and the layer
//===----------------------------------------------------------------------===//

void splitGateUp(const Mat &gateUp, Mat *gate, Mat *up) {
  int64_t f = gateUp.rows / 2;
  *gate = Mat(f, gateUp.cols);
  *up = Mat(f, gateUp.cols);
  for (int64_t i = 0; i < f; ++i)
    for (int64_t c = 0; c < gateUp.cols; ++c) {
      gate->at(i, c) = gateUp.at(i, c);
      up->at(i, c) = gateUp.at(f + i, c);
    }
}

/// act(g) (.) u, elementwise (swiglu_oai: gatedValue).
static Vec gatedProduct(Act act, const Vec &g, const Vec &u) {
  Vec h(g.size());
  for (size_t i = 0; i < g.size(); ++i) h[i] = gatedValue(act, g[i], u[i]);
  return h;
}

/// v + b, or v when there is no bias (`b` empty).
static Vec plusBias(Vec v, const std::vector<Vec> &biases, size_t e) {
  if (biases.empty()) return v;
  for (size_t i = 0; i < v.size(); ++i) v[i] += biases[e][i];
  return v;
}

/// P x + (alpha / r) B (A x).
static Vec loraProject(const Mat &P, const Mat &A, const Mat &B, double alpha,
                       const Vec &x) {
  Vec y = matVec(P, x);
  Vec d = matVec(B, matVec(A, x));
  double s = alpha / double(A.rows);
  for (size_t i = 0; i < y.size(); ++i) y[i] += s * d[i];
  return y;
}

Vec expertForward(const ExpertWeights &w, int64_t e, const Vec &x) {
  size_t i = size_t(e);
  switch (w.kind) {
  case ExpertKind::Gated: {
    Vec g = plusBias(matVec(w.gate[i], x), w.gateBias, i);
    Vec u = plusBias(matVec(w.up[i], x), w.upBias, i);
    return plusBias(matVec(w.down[i], gatedProduct(w.act, g, u)), w.downBias,
                    i);
  }
  case ExpertKind::Mlp: {
    Vec h = matVec(w.gate[i], x);
    for (double &v : h) v = activation(w.act, v);
    return matVec(w.down[i], h);
  }
  case ExpertKind::Lora: {
    Vec d = matVec(w.b[i], matVec(w.a[i], x));
    double s = w.alpha / double(w.a[i].rows);
    for (double &v : d) v *= s;
    return d;
  }
  case ExpertKind::LoraGated: {
    Vec g = loraProject(w.baseGate, w.aGate[i], w.bGate[i], w.alpha, x);
    Vec u = loraProject(w.baseUp, w.aUp[i], w.bUp[i], w.alpha, x);
    Vec h = gatedProduct(w.act, g, u);
    return loraProject(w.baseDown, w.aDown[i], w.bDown[i], w.alpha, h);
  }
  }
  return {};
}

Vec sharedForward(const SharedWeights &s, const Vec &x) {
  Vec y = matVec(s.down, gatedProduct(s.act, matVec(s.gate, x),
                                      matVec(s.up, x)));
  if (s.kind == SharedKind::Gated) {
    double g = sigmoid(matVec(s.gateWeight, x)[0]);
    for (double &v : y) v *= g;
  }
  return y;
}

LayerResult layer(const LayerConfig &cfg, const LayerInputs &in, Margins *mg) {
  const RoutingConfig &r = cfg.routing;
  int64_t T = in.x.rows, E = in.wg.rows;
  LayerResult res;
  res.logits = routerLogits(in.x, in.wg, in.hasRouterBias ? &in.routerBias
                                                           : nullptr);
  if (r.select == Select::ExpertChoice) {
    // Expert choice: the capacity bounds the experts; dispatch is dropless.
    // The layer depends on the tokens each expert chooses, not on their
    // ranks.
    res.routing = expertChoice(res.logits, r.k, cfg.capacity, E, mg,
                               /*ranked=*/false)
                      .slots;
    res.disp = dispatch(res.routing, E, CapacityConfig(), 0.0, mg);
  } else {
    res.routing = route(res.logits, r,
                        in.hasSelectionBias ? &in.selectionBias : nullptr, mg);
    res.disp = dispatch(res.routing, E, cfg.capacity, weightFloor(r), mg);
  }
  res.assignments = expertLoad(res.routing, E);
  res.dropped = res.disp.dropped;

  int64_t dOut = cfg.kind == ExpertKind::Lora ? in.experts.base.rows
                                                : in.x.cols;
  int64_t S = res.routing.S;
  res.y = Mat(T, dOut);
  for (int64_t t = 0; t < T; ++t) {
    Vec xt = rowOf(in.x, t);
    Vec yt(size_t(dOut), 0.0);
    for (int64_t j = 0; j < S; ++j) { // kept slots, in slot order
      if (res.disp.slotRow[size_t(t * S + j)] < 0) continue;
      int64_t e = res.routing.id(t, j);
      double w = res.disp.slotWeight[size_t(t * S + j)];
      Vec out;
      if (r.apply == Apply::Output) {
        out = expertForward(in.experts, e, xt);
        for (double &v : out) v *= w;
      } else {
        Vec xs = xt;
        for (double &v : xs) v *= w;
        out = expertForward(in.experts, e, xs);
      }
      for (int64_t o = 0; o < dOut; ++o) yt[size_t(o)] += out[size_t(o)];
    }
    if (cfg.kind == ExpertKind::Lora) { // the frozen base, for every token
      Vec b = matVec(in.experts.base, xt);
      for (int64_t o = 0; o < dOut; ++o) yt[size_t(o)] += b[size_t(o)];
    }
    if (cfg.shared != SharedKind::None) {
      Vec sh = sharedForward(in.shared, xt);
      for (int64_t o = 0; o < dOut; ++o) yt[size_t(o)] += sh[size_t(o)];
    }
    std::copy(yt.begin(), yt.end(), res.y.v.begin() + t * dOut);
  }
  return res;
}

Mat groupedMatmul(const Mat &lhs, const std::vector<Mat> &rhs,
                  const std::vector<int64_t> &sizes, bool transposeRhs) {
  int64_t N = lhs.rows;
  int64_t M = rhs.empty() ? 0 : (transposeRhs ? rhs[0].rows : rhs[0].cols);
  Mat out(N, M);
  int64_t row = 0;
  for (size_t e = 0; e < sizes.size(); ++e) {
    for (int64_t q = 0; q < sizes[e] && row < N; ++q, ++row) {
      for (int64_t m = 0; m < M; ++m) {
        double acc = 0.0;
        for (int64_t k = 0; k < lhs.cols; ++k)
          acc += lhs.at(row, k) *
                 (transposeRhs ? rhs[e].at(m, k) : rhs[e].at(k, m));
        out.at(row, m) = acc;
      }
    }
  }
  return out;
}

} // namespace moeref
