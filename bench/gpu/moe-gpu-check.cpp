//===- moe-gpu-check.cpp - libmoe_gpu_kernels against an f64 reference ---===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Runs the layer and the experts of moe_gpu_kernels.h on a GPU and compares
// them with a reference written here, in f64, from the spec (sections 1-6:
// softmax scores, top-k with ties to the lower expert, weights renormalized
// over the k, every other routing of the library, capacities in each drop
// order, weights applied to the output or the input, gated experts of each
// activation, shared experts, LoRA experts of both kinds). The kernels
// round the activation between the two expert GEMMs to bf16, and so does
// the reference (and, for LoRA experts, the rank-r rows and each expert's
// output); everything else is f64 there and f32 on the GPU.
//
// Also checked: the expert counts of the layer (the group offsets) and the
// dropped counts, that two runs give bitwise the same output, and that a
// layer captured in a CUDA graph and replayed gives bitwise the output of a
// direct call.
//
//   moe-gpu-check [--quick]
//
// Prints one line per case and exits with 0 when all pass, 1 when one
// fails, 77 without a usable GPU. Inputs come from fixed seeds.
//
//===----------------------------------------------------------------------===//

#include "CudaApi.h"
#include "moe_gpu_kernels.h"

using namespace moe::gpubench;
using mlir::moe::Random;

namespace {

struct Dims {
  int64_t T, d, f, E, k;
  int act = MOE_GPU_ACT_SILU; // of the experts
  bool mlp = false;           // plain MLP experts: no up projection
  bool fused = false;         // gate and up as one gate_up [E, 2f, d]
  int lora = 0;               // LoRA experts: 1 lora (d_out = f), 2 lora_gated
  int64_t rank = 8;           // of the LoRA pairs
  bool biases = false;        // GPT-OSS's expert biases (gated experts)
};

/// The LoRA scale numerator of every LoRA case: deltas scaled by alpha / r.
constexpr double loraAlpha = 16.0;

/// The width of a layer's output: d, or d_out = f for kind lora.
int64_t outDim(const Dims &s) { return s.lora == 1 ? s.f : s.d; }

/// The fused gate_up [E, 2f, d] of gate and up [E, f, d]: each expert's
/// gate rows, then its up rows (GraniteMoE's layout).
std::vector<uint16_t> fuseGateUp(const Dims &s, const std::vector<uint16_t> &g,
                                 const std::vector<uint16_t> &u) {
  std::vector<uint16_t> gu;
  size_t block = static_cast<size_t>(s.f * s.d);
  for (int64_t e = 0; e < s.E; ++e) {
    gu.insert(gu.end(), g.begin() + e * block, g.begin() + (e + 1) * block);
    gu.insert(gu.end(), u.begin() + e * block, u.begin() + (e + 1) * block);
  }
  return gu;
}

/// The gated experts' activation, as the CPU lowering defines it.
double activation(int act, double a) {
  switch (act) {
  case MOE_GPU_ACT_GELU_TANH:
    return 0.5 * a *
           (1.0 +
            std::tanh(std::sqrt(2.0 / M_PI) * (a + 0.044715 * a * a * a)));
  case MOE_GPU_ACT_GELU_ERF:
    return 0.5 * a * (1.0 + std::erf(a / std::sqrt(2.0)));
  case MOE_GPU_ACT_RELU:
    return std::max(a, 0.0);
  default:
    return a / (1.0 + std::exp(-a));
  }
}

/// The gated experts' h for gate sum a and up sum b (b = 1 for plain MLP
/// experts): act(a) * b, or GPT-OSS's swiglu_oai, which clamps both.
double gatedUnit(int act, double a, double b) {
  if (act != MOE_GPU_ACT_SWIGLU_OAI)
    return activation(act, a) * b;
  double g = std::min(a, 7.0), u = std::max(-7.0, std::min(b, 7.0));
  return (u + 1.0) * g / (1.0 + std::exp(-1.702 * g));
}

/// The experts' weights. LoRA experts: wg, wu, wd are the frozen
/// projections [f, d], [f, d], [d, f] (kind lora: wg is the base [d_out, d])
/// and the pairs A [E, r, in], B [E, out, r] of gate, up and down.
struct Weights {
  std::vector<uint16_t> wr, wg, wu, wd;
  std::vector<uint16_t> ga, gb, ua, ub, da, db;
  /// Expert biases (Dims::biases): gate and up [E, f], down [E, d].
  std::vector<uint16_t> bgate, bup, bdown;
};

Weights makeWeights(const Dims &s, uint64_t seed) {
  Random r(seed);
  double sw = 1.0 / std::sqrt(static_cast<double>(s.d));
  double sf = 1.0 / std::sqrt(static_cast<double>(s.f));
  double sr = 1.0 / std::sqrt(static_cast<double>(s.rank));
  Weights w;
  w.wr = randomBF16(r, s.E * s.d, 2.0 * sw);
  int64_t experts = s.lora ? 1 : s.E;
  w.wg = randomBF16(r, experts * s.f * s.d, sw);
  if (!s.mlp && s.lora != 1)
    w.wu = randomBF16(r, experts * s.f * s.d, sw);
  if (s.lora != 1)
    w.wd = randomBF16(r, experts * s.d * s.f, sf);
  if (s.lora) {
    w.ga = randomBF16(r, s.E * s.rank * s.d, sw);
    w.gb = randomBF16(r, s.E * s.f * s.rank, sr);
  }
  if (s.lora == 2) {
    w.ua = randomBF16(r, s.E * s.rank * s.d, sw);
    w.ub = randomBF16(r, s.E * s.f * s.rank, sr);
    w.da = randomBF16(r, s.E * s.rank * s.f, sf);
    w.db = randomBF16(r, s.E * s.d * s.rank, sr);
  }
  if (s.biases) {
    // Wide enough that swiglu_oai's clamps at 7 take some of the sums.
    w.bgate = randomBF16(r, s.E * s.f, 8.0);
    w.bup = randomBF16(r, s.E * s.f, 8.0);
    w.bdown = randomBF16(r, s.E * s.d, 1.0);
  }
  return w;
}

/// v [n] times m^T for m [rows, n] (bf16), in f64; `mag` gets the sums of
/// the products' magnitudes.
std::vector<double> product(const double *v, int64_t n, const uint16_t *m,
                            int64_t rows, std::vector<double> *mag = nullptr) {
  std::vector<double> out(rows, 0.0);
  if (mag)
    mag->assign(rows, 0.0);
  for (int64_t j = 0; j < rows; ++j)
    for (int64_t i = 0; i < n; ++i) {
      double t = v[i] * fromBF16(m[j * n + i]);
      out[j] += t;
      if (mag)
        (*mag)[j] += std::fabs(t);
    }
  return out;
}

double roundBF16(double v) { return fromBF16(toBF16(static_cast<float>(v))); }

/// The LoRA delta B_e bf16(A_e v) of expert e (A [E, r, n], B [E, out, r]),
/// the rank-r rows rounded to bf16 as the kernels round them.
std::vector<double> loraDelta(const Dims &s, const std::vector<uint16_t> &a,
                              const std::vector<uint16_t> &b, int64_t e,
                              const double *v, int64_t n, int64_t out,
                              std::vector<double> &mag) {
  std::vector<double> t =
      product(v, n, &a[e * s.rank * n], s.rank);
  for (double &q : t)
    q = roundBF16(q);
  return product(t.data(), s.rank, &b[e * out * s.rank], out, &mag);
}

/// One LoRA expert on one row (spec section 5), rounded as the kernels
/// round it: kind lora bf16(s B_e bf16(A_e x)), kind lora_gated (MixLoRA)
/// h = bf16(act(x G^T + s Dg) * (x U^T + s Du)), bf16(h D^T + s Dd).
/// Adds w * out into y and |w| * (|terms| + 2 |out|) into mag: the last
/// rounding may flip by one bf16 step.
void loraRow(const Dims &s, const Weights &w, int64_t e, const uint16_t *xb,
             double weight, double scale, double *y, double *mag) {
  std::vector<double> x(s.d), m1, m2, m3;
  for (int64_t i = 0; i < s.d; ++i)
    x[i] = fromBF16(xb[i]);
  std::vector<double> out, terms;
  if (s.lora == 1) {
    out = loraDelta(s, w.ga, w.gb, e, x.data(), s.d, s.f, terms);
    for (int64_t c = 0; c < s.f; ++c) {
      out[c] = roundBF16(scale * out[c]);
      terms[c] *= std::fabs(scale);
    }
  } else {
    std::vector<double> g = product(x.data(), s.d, w.wg.data(), s.f, &m1);
    std::vector<double> u = product(x.data(), s.d, w.wu.data(), s.f, &m2);
    std::vector<double> dg = loraDelta(s, w.ga, w.gb, e, x.data(), s.d, s.f, m1);
    std::vector<double> du = loraDelta(s, w.ua, w.ub, e, x.data(), s.d, s.f, m2);
    std::vector<double> h(s.f);
    for (int64_t j = 0; j < s.f; ++j)
      h[j] = roundBF16(activation(s.act, g[j] + scale * dg[j]) *
                       (u[j] + scale * du[j]));
    out = product(h.data(), s.f, w.wd.data(), s.d, &terms);
    std::vector<double> dd = loraDelta(s, w.da, w.db, e, h.data(), s.f, s.d, m3);
    for (int64_t c = 0; c < s.d; ++c) {
      out[c] = roundBF16(out[c] + scale * dd[c]);
      terms[c] += std::fabs(scale) * m3[c];
    }
  }
  for (size_t c = 0; c < out.size(); ++c) {
    y[c] += weight * out[c];
    mag[c] += std::fabs(weight) * (terms[c] + 2.0 * std::fabs(out[c]));
  }
}

/// One expert on one row, f64, the activation rounded to bf16 as the
/// kernels do: act(x g) * (x u), or act(x g) for plain MLP experts (no u).
/// Adds w * out into y and w * |terms| into mag.
void expertRow(const Dims &s, const Weights &w, int64_t e, const uint16_t *x,
               double weight, double *y, double *mag) {
  if (s.lora)
    return loraRow(s, w, e, x, weight, loraAlpha / s.rank, y, mag);
  std::vector<double> h(s.f);
  const uint16_t *g = &w.wg[e * s.f * s.d];
  const uint16_t *u = w.wu.empty() ? nullptr : &w.wu[e * s.f * s.d];
  for (int64_t j = 0; j < s.f; ++j) {
    double a = 0, b = u ? 0.0 : 1.0;
    for (int64_t i = 0; i < s.d; ++i) {
      double xi = fromBF16(x[i]);
      a += xi * fromBF16(g[j * s.d + i]);
      if (u)
        b += xi * fromBF16(u[j * s.d + i]);
    }
    if (!w.bgate.empty()) {
      a += fromBF16(w.bgate[e * s.f + j]);
      b += fromBF16(w.bup[e * s.f + j]);
    }
    h[j] = fromBF16(toBF16(static_cast<float>(gatedUnit(s.act, a, b))));
  }
  const uint16_t *dn = &w.wd[e * s.d * s.f];
  for (int64_t c = 0; c < s.d; ++c) {
    double o = 0, m = 0;
    for (int64_t j = 0; j < s.f; ++j) {
      double t = h[j] * fromBF16(dn[c * s.f + j]);
      o += t;
      m += std::fabs(t);
    }
    if (!w.bdown.empty()) {
      o += fromBF16(w.bdown[e * s.d + c]);
      m += std::fabs(fromBF16(w.bdown[e * s.d + c]));
    }
    y[c] += weight * o;
    mag[c] += std::fabs(weight) * m;
  }
}

/// Whether |got - want| is within the tolerance of an f32 computation with
/// one bf16 rounding of the activation: 2^-8 of the sum of magnitudes.
bool close(double got, double want, double mag) {
  return std::fabs(got - want) <= 0x1p-8 * mag + 1e-6 && std::isfinite(got);
}

int failures = 0;

void report(bool ok, const std::string &what, const std::string &detail) {
  std::printf("%s: %s%s%s\n", ok ? "PASS" : "FAIL", what.c_str(),
              detail.empty() ? "" : ": ", detail.c_str());
  std::fflush(stdout);
  if (!ok)
    ++failures;
}

std::string name(const char *what, const Dims &s) {
  static const char *const acts[] = {"", " act=gelu_tanh", " act=gelu_erf",
                                     " act=relu", " act=swiglu_oai"};
  std::string act = std::string(acts[s.act]) + (s.mlp ? " mlp" : "") +
                    (s.fused ? " fused" : "") + (s.biases ? " biases" : "") +
                    (s.lora == 1   ? " lora r=" + std::to_string(s.rank)
                     : s.lora == 2 ? " lora_gated r=" + std::to_string(s.rank)
                                   : "");
  char buf[200];
  std::snprintf(buf, sizeof(buf), "%s T=%lld d=%lld f=%lld E=%lld k=%lld%s",
                what, (long long)s.T, (long long)s.d, (long long)s.f,
                (long long)s.E, (long long)s.k, act.c_str());
  return buf;
}

/// A routing and its biases on the host (empty: none), and the inner size
/// of a shared expert (0: none) and whether it is gated.
struct Routing {
  const char *name;
  moe_gpu_routing r;
  std::vector<float> routerBias, selectionBias;
  int64_t sharedFfn = 0;
  bool sharedGate = false;
  /// When > 0, token t is a copy of token t % repeat: scores tie exactly,
  /// and the selection must break the ties as the spec says.
  int64_t repeat = 0;
};

/// A shared expert as one expert of inner size fs ({T, d, fs, 1, k}), and
/// its gate vector [d] (empty when not gated).
struct Shared {
  Dims dims;
  Weights w;
  std::vector<uint16_t> gate;
};

Shared makeShared(const Dims &s, const Routing &rt, uint64_t seed) {
  Shared sh{{s.T, s.d, rt.sharedFfn, 1, s.k, s.act}, {}, {}};
  if (!rt.sharedFfn)
    return sh;
  sh.w = makeWeights(sh.dims, seed);
  if (rt.sharedGate) {
    Random r(seed + 1);
    sh.gate = randomBF16(r, s.d, 2.0 / std::sqrt(static_cast<double>(s.d)));
  }
  return sh;
}

Routing makeRouting(const char *name, moe_gpu_routing r, int64_t E,
                    bool routerBias, bool selectionBias, uint64_t seed) {
  Routing out{name, r, {}, {}};
  Random rng(seed);
  if (routerBias)
    for (int64_t e = 0; e < E; ++e)
      out.routerBias.push_back(
          static_cast<float>(0.5 * (2.0 * rng.uniform() - 1.0)));
  if (selectionBias)
    for (int64_t e = 0; e < E; ++e)
      out.selectionBias.push_back(
          static_cast<float>(0.1 * (2.0 * rng.uniform() - 1.0)));
  return out;
}

/// The device copies of a layer's operands.
struct DeviceLayer {
  DeviceArray<uint16_t> x, wr, wg, wu, wd, ga, gb, ua, ub, da, db;
  DeviceArray<uint16_t> bgate, bup, bdown;
  DeviceArray<float> rb, sb;
  DeviceArray<int32_t> off, dropped;
  DeviceArray<float> y;
  DeviceArray<uint16_t> sg, su, sd, sgate;
  moe_gpu_routing routing;
  moe_gpu_shared_expert shared{};
  bool hasShared;
  DeviceLayer(const Dims &s, const std::vector<uint16_t> &hx, const Weights &w,
              const Routing &r, const Shared &sh)
      // With a fused gate_up, wg holds gate and up.
      : x(hx.size()), wr(w.wr.size()),
        wg(w.wg.size() + (s.fused ? w.wu.size() : 0)),
        wu(s.fused ? 0 : w.wu.size()), wd(w.wd.size()), ga(w.ga.size()),
        gb(w.gb.size()), ua(w.ua.size()), ub(w.ub.size()), da(w.da.size()),
        db(w.db.size()), bgate(w.bgate.size() + (s.fused ? w.bup.size() : 0)),
        bup(s.fused ? 0 : w.bup.size()), bdown(w.bdown.size()),
        rb(r.routerBias.size()), sb(r.selectionBias.size()), off(s.E + 1),
        dropped(s.E), y(s.T * outDim(s)), sg(sh.w.wg.size()),
        su(sh.w.wu.size()), sd(sh.w.wd.size()), sgate(sh.gate.size()),
        routing(r.r), hasShared(r.sharedFfn > 0) {
    if (hasShared) {
      sg.upload(sh.w.wg);
      su.upload(sh.w.wu);
      sd.upload(sh.w.wd);
      shared = {r.sharedFfn, sg.get(), su.get(), sd.get(), nullptr};
      if (!sh.gate.empty()) {
        sgate.upload(sh.gate);
        shared.gate_vector = sgate.get();
      }
    }
    x.upload(hx);
    wr.upload(w.wr);
    if (s.fused) {
      wg.upload(fuseGateUp(s, w.wg, w.wu));
    } else {
      wg.upload(w.wg);
      wu.upload(w.wu);
    }
    // A fused gate_up's biases [E, 2f] are each expert's gate biases, then
    // its up biases, as its rows (fuseGateUp of one row each).
    if (s.fused && s.biases) {
      Dims row = s;
      row.d = 1;
      bgate.upload(fuseGateUp(row, w.bgate, w.bup));
    } else if (s.biases) {
      bgate.upload(w.bgate);
      bup.upload(w.bup);
    }
    if (s.biases)
      bdown.upload(w.bdown);
    wd.upload(w.wd);
    ga.upload(w.ga);
    gb.upload(w.gb);
    ua.upload(w.ua);
    ub.upload(w.ub);
    da.upload(w.da);
    db.upload(w.db);
    routing.router_bias = nullptr;
    routing.selection_bias = nullptr;
    if (!r.routerBias.empty()) {
      rb.upload(r.routerBias);
      routing.router_bias = rb.get();
    }
    if (!r.selectionBias.empty()) {
      sb.upload(r.selectionBias);
      routing.selection_bias = sb.get();
    }
  }
  void enqueue(const Dims &s, CUstream stream) {
    moe_gpu_layer_dims dims{s.T, s.d, s.f, s.E, s.k, s.act};
    const void *up = s.mlp ? nullptr : s.fused ? wg.get() : wu.get();
    moe_gpu_expert_biases biases = {
        bgate.get(), s.fused ? bgate.get() : bup.get(), bdown.get()};
    moe_gpu_lora_experts lora = {s.lora == 2, s.rank,
                                 static_cast<float>(loraAlpha),
                                 wg.get(),    wu.get(), wd.get(),
                                 ga.get(),    gb.get(), ua.get(),
                                 ub.get(),    da.get(), db.get()};
    int status =
        s.lora
            ? moe_gpu_lora_layer_enqueue(&dims, &routing, x.get(), wr.get(),
                                         &lora, hasShared ? &shared : nullptr,
                                         off.get(), dropped.get(), y.get(),
                                         stream)
            : moe_gpu_layer_enqueue_biased(
                  &dims, &routing, x.get(), wr.get(), wg.get(), up, wd.get(),
                  s.biases ? &biases : nullptr, hasShared ? &shared : nullptr,
                  off.get(), dropped.get(), y.get(), stream);
    if (status) {
      std::fprintf(stderr, "moe-gpu-check: %s\n", moe_gpu_last_error());
      std::exit(1);
    }
  }
};

/// The spec's routing of one token (sections 1-3), in f64: the experts of
/// the k slots (-1 for unused ones) and their weights. `fragile` is set
/// when a comparison that decides the routing is closer than f32 logits
/// can be trusted to repeat.
void referenceRoute(const Dims &s, const Routing &rt, const double *z,
                    std::vector<int64_t> &ids, std::vector<double> &w,
                    bool &fragile) {
  const moe_gpu_routing &r = rt.r;
  const double margin = 1e-5;
  int64_t E = s.E;
  double zmax = -INFINITY, sum = 0;
  for (int64_t e = 0; e < E; ++e)
    zmax = std::max(zmax, z[e]);
  for (int64_t e = 0; e < E; ++e)
    sum += std::exp(z[e] - zmax);
  std::vector<double> sc(E), key(E);
  for (int64_t e = 0; e < E; ++e) {
    double v = z[e];
    switch (r.score) {
    case MOE_GPU_SCORE_SOFTMAX:
      sc[e] = std::exp(v - zmax) / sum;
      break;
    case MOE_GPU_SCORE_SIGMOID:
      sc[e] = 1.0 / (1.0 + std::exp(-v));
      break;
    case MOE_GPU_SCORE_SQRT_SOFTPLUS:
      sc[e] = std::sqrt(std::max(v, 0.0) + std::log1p(std::exp(-std::fabs(v))));
      break;
    default:
      sc[e] = v;
    }
    key[e] = sc[e] + (rt.selectionBias.empty() ? 0.0 : rt.selectionBias[e]);
  }
  auto byKey = [&](std::vector<int64_t> &v, const std::vector<double> &k) {
    std::stable_sort(v.begin(), v.end(),
                     [&](int64_t a, int64_t b) { return k[a] > k[b]; });
  };
  std::vector<int64_t> cand;
  if (r.selection == MOE_GPU_SELECT_GROUPED_TOP_K) {
    int64_t G = r.groups, gs = E / G;
    std::vector<double> gscore(G);
    for (int64_t g = 0; g < G; ++g) {
      std::vector<int64_t> in;
      for (int64_t e = g * gs; e < g * gs + gs; ++e)
        in.push_back(e);
      byKey(in, key);
      gscore[g] = key[in[0]] + (r.group_score_sum_top2 ? key[in[1]] : 0.0);
    }
    std::vector<int64_t> gorder;
    for (int64_t g = 0; g < G; ++g)
      gorder.push_back(g);
    byKey(gorder, gscore);
    if (r.topk_group < G &&
        gscore[gorder[r.topk_group - 1]] - gscore[gorder[r.topk_group]] <
            margin)
      fragile = true;
    for (int64_t i = 0; i < r.topk_group; ++i)
      for (int64_t e = gorder[i] * gs; e < gorder[i] * gs + gs; ++e)
        cand.push_back(e);
    std::sort(cand.begin(), cand.end());
  } else {
    for (int64_t e = 0; e < E; ++e)
      cand.push_back(e);
  }
  byKey(cand, key);
  if (int64_t(cand.size()) > s.k &&
      key[cand[s.k - 1]] - key[cand[s.k]] < margin)
    fragile = true;
  ids.assign(s.k, -1);
  w.assign(s.k, 0.0);
  double cum = 0;
  for (int64_t j = 0; j < s.k; ++j) {
    int64_t e = cand[j];
    if (j > 0 && r.selection == MOE_GPU_SELECT_TOP_P) {
      fragile |= std::fabs(cum - r.threshold) < margin;
      if (!(cum < r.threshold))
        break;
    }
    if (j > 0 && r.selection == MOE_GPU_SELECT_THRESHOLD) {
      fragile |= std::fabs(sc[e] - r.threshold) < margin;
      if (sc[e] < r.threshold)
        continue;
    }
    ids[j] = e;
    cum += sc[e];
  }
  if (r.softmax_selected) {
    double m = -INFINITY, t = 0;
    for (int64_t j = 0; j < s.k; ++j)
      if (ids[j] >= 0)
        m = std::max(m, z[ids[j]]);
    for (int64_t j = 0; j < s.k; ++j)
      if (ids[j] >= 0)
        t += std::exp(z[ids[j]] - m);
    for (int64_t j = 0; j < s.k; ++j)
      if (ids[j] >= 0)
        w[j] = std::exp(z[ids[j]] - m) / t;
  } else {
    for (int64_t j = 0; j < s.k; ++j)
      if (ids[j] >= 0)
        w[j] = sc[ids[j]];
  }
  if (r.renormalize) {
    double t = 0;
    for (int64_t j = 0; j < s.k; ++j)
      t += w[j];
    for (int64_t j = 0; j < s.k; ++j)
      w[j] /= t + 1e-20;
  }
  for (int64_t j = 0; j < s.k; ++j)
    w[j] *= r.scale;
}

/// Expert-choice routing (spec section 2), in f64: softmax scores over the
/// experts, then each expert takes the min(C, T) tokens with the largest
/// score (ties to the lower token); C is the capacity, or ceil(T k / E).
/// Slot e of a token is expert e when that expert took it. A token is
/// fragile when a cut it is near could go either way in f32.
void referenceExpertChoice(const Dims &s, const Routing &rt,
                           const std::vector<std::vector<double>> &z,
                           std::vector<std::vector<int64_t>> &ids,
                           std::vector<std::vector<double>> &w,
                           std::vector<bool> &fragile) {
  int64_t T = s.T, E = s.E;
  std::vector<std::vector<double>> sc(T, std::vector<double>(E));
  for (int64_t t = 0; t < T; ++t) {
    double m = -INFINITY, sum = 0;
    for (double v : z[t])
      m = std::max(m, v);
    for (double v : z[t])
      sum += std::exp(v - m);
    for (int64_t e = 0; e < E; ++e)
      sc[t][e] = std::exp(z[t][e] - m) / sum;
    ids[t].assign(E, -1);
    w[t].assign(E, 0.0);
  }
  int64_t cap = rt.r.capacity > 0 ? rt.r.capacity : (T * s.k + E - 1) / E;
  int64_t taken = std::min(cap, T);
  for (int64_t e = 0; e < E; ++e) {
    std::vector<int64_t> order(T);
    for (int64_t t = 0; t < T; ++t)
      order[t] = t;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return sc[a][e] > sc[b][e]; });
    for (int64_t i = 0; i < taken; ++i) {
      ids[order[i]][e] = e;
      w[order[i]][e] = sc[order[i]][e];
    }
    // Equal scores come from equal tokens and tie on the device too.
    double gap = taken > 0 && taken < T
                     ? sc[order[taken - 1]][e] - sc[order[taken]][e]
                     : 1.0;
    if (gap > 0 && gap < 1e-6) {
      fragile[order[taken - 1]] = true;
      fragile[order[taken]] = true;
    }
  }
}

/// Capacity (spec section 4) after a per-token routing, in f64: the
/// assignments past `r.capacity` per expert in the drop order lose their
/// slot (id -1), the kept weights are renormalized when asked, and the
/// dropped count of each expert is returned. In score order a cut between
/// weights closer than f32 can separate marks both tokens fragile.
std::vector<int64_t> referenceCapacity(const Dims &s, const moe_gpu_routing &r,
                                       std::vector<std::vector<int64_t>> &ids,
                                       std::vector<std::vector<double>> &w,
                                       std::vector<bool> &fragile) {
  struct Slot {
    int64_t t, j;
  };
  std::vector<Slot> order;
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t j = 0; j < s.k; ++j)
      if (ids[t][j] >= 0)
        order.push_back({t, j});
  // `order` is token_major; the others are stable sorts of it.
  if (r.drop_order == MOE_GPU_DROP_CHOICE_MAJOR)
    std::stable_sort(order.begin(), order.end(),
                     [](const Slot &a, const Slot &b) { return a.j < b.j; });
  if (r.drop_order == MOE_GPU_DROP_SCORE)
    std::stable_sort(order.begin(), order.end(),
                     [&](const Slot &a, const Slot &b) {
                       return w[a.t][a.j] > w[b.t][b.j];
                     });
  std::vector<int64_t> dropped(s.E, 0);
  std::vector<std::vector<Slot>> taken(s.E);
  for (const Slot &a : order)
    taken[ids[a.t][a.j]].push_back(a);
  for (int64_t e = 0; e < s.E; ++e) {
    std::vector<Slot> &v = taken[e];
    int64_t n = static_cast<int64_t>(v.size());
    if (n <= r.capacity)
      continue;
    dropped[e] = n - r.capacity;
    if (r.drop_order == MOE_GPU_DROP_SCORE && r.capacity > 0) {
      const Slot &in = v[r.capacity - 1], &out = v[r.capacity];
      double gap = w[in.t][in.j] - w[out.t][out.j];
      if (gap > 0 && gap < 1e-6)
        fragile[in.t] = fragile[out.t] = true;
    }
    for (int64_t i = r.capacity; i < n; ++i) {
      ids[v[i].t][v[i].j] = -1;
      w[v[i].t][v[i].j] = 0.0;
    }
  }
  if (r.renormalize_after_drop)
    for (int64_t t = 0; t < s.T; ++t) {
      double sum = 0;
      for (int64_t j = 0; j < s.k; ++j)
        sum += w[t][j];
      for (int64_t j = 0; j < s.k; ++j)
        w[t][j] /= sum + 1e-20;
    }
  return dropped;
}

void checkLayer(const Dims &s, const Routing &rt, uint64_t seed,
                CUstream stream, bool graphToo) {
  Weights w = makeWeights(s, seed);
  Random inputs(seed + 1);
  std::vector<uint16_t> x = randomBF16(inputs, s.T * s.d, 1.0);
  if (rt.repeat > 0)
    for (int64_t t = rt.repeat; t < s.T; ++t)
      std::copy_n(&x[(t % rt.repeat) * s.d], s.d, &x[t * s.d]);
  Shared sh = makeShared(s, rt, seed + 7);
  DeviceLayer dev(s, x, w, rt, sh);
  dev.enqueue(s, stream);
  CU_CHECK(cu().cuStreamSynchronize(stream));
  std::vector<float> y = dev.y.download();
  std::vector<int32_t> off = dev.off.download();
  std::vector<int32_t> dropped = dev.dropped.download();

  // Reference: logits, routing, counts, output.
  std::vector<std::vector<double>> z(s.T, std::vector<double>(s.E));
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t e = 0; e < s.E; ++e) {
      double a = rt.routerBias.empty() ? 0.0 : rt.routerBias[e];
      for (int64_t i = 0; i < s.d; ++i)
        a += fromBF16(x[t * s.d + i]) * fromBF16(w.wr[e * s.d + i]);
      z[t][e] = a;
    }
  bool expertChoice = rt.r.selection == MOE_GPU_SELECT_EXPERT_CHOICE;
  int64_t slots = expertChoice ? s.E : s.k;
  std::vector<std::vector<int64_t>> ids(s.T);
  std::vector<std::vector<double>> wts(s.T);
  std::vector<bool> fragile(s.T, false);
  if (expertChoice)
    referenceExpertChoice(s, rt, z, ids, wts, fragile);
  else
    for (int64_t t = 0; t < s.T; ++t) {
      bool tie = false;
      referenceRoute(s, rt, z[t].data(), ids[t], wts[t], tie);
      fragile[t] = tie;
    }
  std::vector<int64_t> refDropped(s.E, 0);
  if (!expertChoice && rt.r.capacity > 0) {
    // A token routed differently moves the cut of its experts for every
    // other token: then no token is compared.
    bool anyTie =
        std::find(fragile.begin(), fragile.end(), true) != fragile.end();
    refDropped = referenceCapacity(s, rt.r, ids, wts, fragile);
    if (anyTie)
      fragile.assign(s.T, true);
  }

  std::vector<int64_t> counts(s.E, 0);
  int64_t nearTies = 0, bad = 0, used = 0;
  double worst = 0;
  for (int64_t t = 0; t < s.T; ++t) {
    const uint16_t *xt = &x[t * s.d];
    nearTies += fragile[t];
    int64_t out = outDim(s);
    std::vector<double> ref(out, 0.0), mag(out, 0.0);
    for (int64_t j = 0; j < slots; ++j) {
      if (ids[t][j] < 0)
        continue;
      ++counts[ids[t][j]];
      ++used;
      if (!rt.r.apply_to_input) {
        expertRow(s, w, ids[t][j], xt, wts[t][j], ref.data(), mag.data());
        continue;
      }
      // The weight applied to the input: bf16(x * w), then weight 1.
      std::vector<uint16_t> scaled(s.d);
      for (int64_t i = 0; i < s.d; ++i)
        scaled[i] = toBF16(static_cast<float>(fromBF16(xt[i]) * wts[t][j]));
      expertRow(s, w, ids[t][j], scaled.data(), 1.0, ref.data(), mag.data());
    }
    if (s.lora == 1) {
      // The frozen base on the token, rounded to bf16 (moe.linear).
      std::vector<double> xd(s.d), terms;
      for (int64_t i = 0; i < s.d; ++i)
        xd[i] = fromBF16(xt[i]);
      std::vector<double> base = product(xd.data(), s.d, w.wg.data(), out, &terms);
      for (int64_t c = 0; c < out; ++c) {
        double b = roundBF16(base[c]);
        ref[c] += b;
        mag[c] += terms[c] + 2.0 * std::fabs(b);
      }
    }
    if (rt.sharedFfn) {
      double g = 1.0;
      if (rt.sharedGate) {
        double a = 0;
        for (int64_t i = 0; i < s.d; ++i)
          a += fromBF16(xt[i]) * fromBF16(sh.gate[i]);
        g = 1.0 / (1.0 + std::exp(-a));
      }
      expertRow(sh.dims, sh.w, 0, xt, g, ref.data(), mag.data());
    }
    if (fragile[t])
      continue;
    for (int64_t c = 0; c < out; ++c) {
      double got = y[t * out + c];
      if (!close(got, ref[c], mag[c]))
        ++bad;
      worst = std::max(worst, std::fabs(got - ref[c]) / (mag[c] + 1e-30));
    }
  }
  int64_t countDiff = 0;
  bool offsetsOk = off[0] == 0;
  for (int64_t e = 0; e < s.E; ++e)
    countDiff += std::llabs((off[e + 1] - off[e]) - counts[e]);
  offsetsOk &= std::llabs(off[s.E] - used) <= slots * nearTies;
  int64_t droppedDiff = 0, droppedAll = 0;
  for (int64_t e = 0; e < s.E; ++e) {
    droppedDiff += std::llabs(dropped[e] - refDropped[e]);
    droppedAll += dropped[e];
  }
  char detail[240];
  std::snprintf(detail, sizeof(detail),
                "%lld elements out of tolerance, worst |err|/sum|terms| "
                "%.2e, count differences %lld, dropped differences %lld "
                "(near-ties %lld), %lld of %lld slots used, %lld dropped",
                (long long)bad, worst, (long long)countDiff,
                (long long)droppedDiff, (long long)nearTies,
                (long long)off[s.E], (long long)(s.T * slots),
                (long long)droppedAll);
  report(bad == 0 && offsetsOk && countDiff <= 2 * slots * nearTies &&
             droppedDiff <= 2 * slots * nearTies && nearTies < s.T,
         name(rt.name, s), detail);

  // Bitwise the same on a second run.
  dev.enqueue(s, stream);
  CU_CHECK(cu().cuStreamSynchronize(stream));
  std::vector<float> again = dev.y.download();
  report(std::memcmp(again.data(), y.data(), y.size() * 4) == 0,
         name((std::string(rt.name) + " run twice, bitwise equal").c_str(), s),
         "");

  if (!graphToo)
    return;
  // Captured in a CUDA graph, replayed twice.
  CU_CHECK(cu().cuMemsetD32Async(dev.y.ptr, 0, y.size(), stream));
  CU_CHECK(
      cu().cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  dev.enqueue(s, stream);
  CUgraph graph;
  CU_CHECK(cu().cuStreamEndCapture(stream, &graph));
  CUgraphExec exec;
  CU_CHECK(cu().cuGraphInstantiateWithFlags(&exec, graph, 0));
  bool same = true;
  for (int replay = 0; replay < 2; ++replay) {
    CU_CHECK(cu().cuMemsetD32Async(dev.y.ptr, 0, y.size(), stream));
    CU_CHECK(cu().cuGraphLaunch(exec, stream));
    CU_CHECK(cu().cuStreamSynchronize(stream));
    std::vector<float> g = dev.y.download();
    same &= std::memcmp(g.data(), y.data(), y.size() * 4) == 0;
  }
  CU_CHECK(cu().cuGraphExecDestroy(exec));
  CU_CHECK(cu().cuGraphDestroy(graph));
  report(
      same,
      name((std::string(rt.name) + " captured in a CUDA graph, replayed twice")
               .c_str(),
           s),
      "");
}

/// The experts on `groups` rows per expert (their sum <= rows).
void checkExperts(const Dims &s, const std::vector<int32_t> &groups,
                  uint64_t seed, CUstream stream) {
  Weights w = makeWeights(s, seed);
  Random inputs(seed + 1);
  std::vector<uint16_t> x = randomBF16(inputs, s.T * s.d, 1.0);
  std::vector<int32_t> off(s.E + 1, 0);
  for (int64_t e = 0; e < s.E; ++e)
    off[e + 1] = off[e] + groups[e];
  DeviceArray<uint16_t> dx(x.size()), dg(w.wg.size()), du(w.wu.size()),
      dd(w.wd.size());
  DeviceArray<int32_t> doff(off.size());
  DeviceArray<float> dy(s.T * s.d);
  dx.upload(x);
  dg.upload(w.wg);
  du.upload(w.wu);
  dd.upload(w.wd);
  doff.upload(off);
  // Rows past off[E] must stay as they are.
  CU_CHECK(cu().cuMemsetD32Async(dy.ptr, 0x7fc00000u, dy.count, stream));
  moe_gpu_layer_dims dims{s.T, s.d, s.f, s.E, 0, s.act};
  if (moe_gpu_expert_ffn_enqueue(&dims, dx.get(), dg.get(),
                                 w.wu.empty() ? nullptr : du.get(), dd.get(),
                                 doff.get(), dy.get(), stream)) {
    std::fprintf(stderr, "moe-gpu-check: %s\n", moe_gpu_last_error());
    std::exit(1);
  }
  CU_CHECK(cu().cuStreamSynchronize(stream));
  std::vector<float> y = dy.download();
  int64_t bad = 0;
  double worst = 0;
  for (int64_t e = 0; e < s.E; ++e)
    for (int64_t r = off[e]; r < off[e + 1]; ++r) {
      std::vector<double> ref(s.d, 0.0), mag(s.d, 0.0);
      expertRow(s, w, e, &x[r * s.d], 1.0, ref.data(), mag.data());
      for (int64_t c = 0; c < s.d; ++c) {
        double got = y[r * s.d + c];
        bad += !close(got, ref[c], mag[c]);
        worst = std::max(worst, std::fabs(got - ref[c]) / (mag[c] + 1e-30));
      }
    }
  int64_t touched = 0;
  for (int64_t i = off[s.E] * s.d; i < s.T * s.d; ++i)
    touched += !std::isnan(y[i]);
  char detail[160];
  std::snprintf(detail, sizeof(detail),
                "%lld elements out of tolerance, worst |err|/sum|terms| "
                "%.2e, %lld elements written past the groups",
                (long long)bad, worst, (long long)touched);
  report(bad == 0 && touched == 0, name("experts", s), detail);
}

} // namespace

int main(int argc, char **argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::string device = initDevice("moe-gpu-check");
  std::printf("device: %s\n", device.c_str());
  std::printf("tensor-core GEMMs: %s\n",
              kernelsUseWgmma() ? "wgmma (sm_90a)" : "mma.sync");
  CUstream stream;
  CU_CHECK(cu().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));

  // Experts: empty groups, a group of one row, groups across 64-row tiles,
  // f and d not multiples of 64, rows past the last group.
  checkExperts({1, 64, 64, 4, 0}, {0, 1, 0, 0}, 11, stream);
  checkExperts({140, 256, 200, 8, 0}, {0, 37, 0, 64, 1, 28, 0, 0}, 12, stream);
  checkExperts({300, 512, 1032, 16, 0},
               {20, 0, 7, 65, 3, 0, 0, 44, 1, 63, 0, 12, 30, 0, 9, 46}, 13,
               stream);
  if (!quick)
    checkExperts({96, 1024, 2816, 8, 0}, {10, 0, 30, 2, 0, 40, 0, 14}, 14,
                 stream);
  // The other activations of the epilogue.
  checkExperts({140, 256, 200, 8, 0, MOE_GPU_ACT_GELU_TANH},
               {0, 37, 0, 64, 1, 28, 0, 0}, 15, stream);
  checkExperts({140, 256, 200, 8, 0, MOE_GPU_ACT_GELU_ERF},
               {5, 30, 0, 60, 1, 28, 0, 10}, 16, stream);
  checkExperts({140, 256, 200, 8, 0, MOE_GPU_ACT_RELU},
               {20, 20, 20, 20, 20, 20, 0, 10}, 17, stream);
  // Plain MLP experts (no up projection).
  checkExperts({140, 256, 200, 8, 0, MOE_GPU_ACT_RELU, /*mlp=*/true},
               {0, 37, 0, 64, 1, 28, 0, 0}, 18, stream);
  checkExperts({60, 128, 96, 4, 0, MOE_GPU_ACT_SWIGLU_OAI}, {3, 20, 0, 30}, 19,
               stream);

  // Layers: Mixtral/Qwen3 routing at several sizes, then every other
  // per-token routing the library computes.
  moe_gpu_routing def = moe_gpu_routing_default();
  Routing mixtral =
      makeRouting("layer softmax top_k renormalized", def, 0, false, false, 0);
  checkLayer({1, 64, 64, 4, 2}, mixtral, 21, stream, /*graphToo=*/false);
  checkLayer({37, 256, 128, 16, 4}, mixtral, 22, stream, /*graphToo=*/true);
  checkLayer({200, 512, 256, 128, 8}, mixtral, 23, stream, false);
  // Decoding sizes (at most max(16, 2 E) rows): gemv_experts, groups of
  // several rows (row chunks of 4), a fused gate_up, plain MLP experts.
  checkLayer({8, 256, 192, 8, 2}, mixtral, 26, stream, true);
  checkLayer({16, 512, 256, 64, 8}, mixtral, 27, stream, false);
  Dims decodeFused{5, 128, 64, 4, 2};
  decodeFused.fused = true;
  checkLayer(decodeFused, mixtral, 28, stream, false);
  checkLayer({6, 128, 96, 8, 1, MOE_GPU_ACT_RELU, /*mlp=*/true}, mixtral, 29,
             stream, false);
  checkExperts({13, 256, 200, 4, 0}, {0, 9, 1, 3}, 15, stream);
  if (!quick) {
    checkLayer({513, 1024, 512, 8, 2}, mixtral, 24, stream, true);
    // Many slots per warp of the permutation (12000 slots, 1500 a warp).
    checkLayer({1500, 128, 64, 64, 8}, mixtral, 25, stream, false);
  }

  moe_gpu_routing v3 = def;
  v3.score = MOE_GPU_SCORE_SIGMOID;
  v3.selection = MOE_GPU_SELECT_GROUPED_TOP_K;
  v3.groups = 4;
  v3.topk_group = 2;
  v3.group_score_sum_top2 = 1;
  v3.scale = 2.5f;
  checkLayer({64, 256, 128, 32, 4},
             makeRouting("layer sigmoid grouped_top_k sum_top2 bias scale", v3,
                         32, false, true, 31),
             32, stream, true);
  moe_gpu_routing v2 = def;
  v2.selection = MOE_GPU_SELECT_GROUPED_TOP_K;
  v2.groups = 4;
  v2.topk_group = 2;
  v2.renormalize = 0;
  checkLayer({50, 128, 64, 16, 3},
             makeRouting("layer softmax grouped_top_k max raw", v2, 16, false,
                         false, 33),
             34, stream, false);
  // 128 groups of 2 experts (more groups than a 64-bit mask holds).
  moe_gpu_routing many = v3;
  many.groups = 128;
  many.topk_group = 8;
  many.scale = 1.0f;
  checkLayer({40, 128, 64, 256, 8},
             makeRouting("layer grouped_top_k 128 groups", many, 256, false,
                         true, 35),
             36, stream, false);
  moe_gpu_routing topp = def;
  topp.selection = MOE_GPU_SELECT_TOP_P;
  topp.threshold = 0.3f;
  checkLayer({60, 128, 64, 16, 4},
             makeRouting("layer top_p", topp, 16, false, false, 35), 36, stream,
             true);
  moe_gpu_routing thr = def;
  thr.selection = MOE_GPU_SELECT_THRESHOLD;
  thr.threshold = 0.15f;
  checkLayer({60, 128, 64, 8, 4},
             makeRouting("layer threshold", thr, 8, false, false, 37), 38,
             stream, false);
  moe_gpu_routing granite = def;
  granite.score = MOE_GPU_SCORE_LOGITS;
  granite.softmax_selected = 1;
  granite.renormalize = 0;
  checkLayer({40, 128, 64, 8, 2},
             makeRouting("layer logits softmax_selected", granite, 8, false,
                         false, 39),
             40, stream, false);
  // GPT-OSS: its routing (the router's bias, a softmax over the selected
  // logits), expert biases and swiglu_oai, on the tensor cores with
  // separate gate and up and a shared expert, then decoding (the GEMV) with
  // a fused gate_up and its fused biases.
  Routing oss = makeRouting("layer gpt-oss", granite, 8, true, false, 41);
  oss.sharedFfn = 32;
  Dims ossPrefill{9, 128, 64, 8, 4, MOE_GPU_ACT_SWIGLU_OAI};
  ossPrefill.biases = true;
  checkLayer(ossPrefill, oss, 42, stream, /*graphToo=*/true);
  Dims ossDecode{3, 64, 64, 8, 2, MOE_GPU_ACT_SWIGLU_OAI};
  ossDecode.fused = ossDecode.biases = true;
  oss.sharedFfn = 0;
  checkLayer(ossDecode, oss, 43, stream, false);
  moe_gpu_routing ssp = def;
  ssp.score = MOE_GPU_SCORE_SQRT_SOFTPLUS;
  checkLayer(
      {40, 128, 64, 16, 2},
      makeRouting("layer sqrt_softplus router bias", ssp, 16, true, false, 41),
      42, stream, false);
  // More than 256 experts: Kimi-K2-like routing (sigmoid scores, a
  // selection bias, 8 of 384, scaled) and 512 experts with many slots, so
  // that the scans over experts (two a thread) and the tile map cover
  // experts past 256.
  moe_gpu_routing kimi = def;
  kimi.score = MOE_GPU_SCORE_SIGMOID;
  kimi.scale = 2.827f;
  checkLayer({40, 128, 64, 384, 8},
             makeRouting("layer 384 experts sigmoid selection bias", kimi, 384,
                         false, true, 83),
             84, stream, false);
  checkLayer({300, 128, 64, 512, 8}, mixtral, 85, stream, false);
  moe_gpu_routing ec = def;
  ec.selection = MOE_GPU_SELECT_EXPERT_CHOICE;
  ec.renormalize = 0;
  checkLayer({100, 128, 64, 8, 2},
             makeRouting("layer expert_choice", ec, 8, false, false, 45), 46,
             stream, true);
  ec.capacity = 40;
  checkLayer({30, 128, 64, 16, 2},
             makeRouting("layer expert_choice capacity > T router bias", ec, 16,
                         true, false, 47),
             48, stream, false);
  // Columns of three tiles of the ranking, the last one partial.
  ec.capacity = 0;
  checkLayer({600, 128, 64, 8, 2},
             makeRouting("layer expert_choice 600 tokens", ec, 8, false, false,
                         49),
             50, stream, false);
  // 700 tokens, copies of 13: each expert's scores tie in groups of about
  // 54, and its cut of 175 tokens falls inside one (ties to the lower
  // token).
  Routing ecRepeat = makeRouting("layer expert_choice 700 tokens, 13 distinct",
                                 ec, 8, false, false, 0);
  ecRepeat.repeat = 13;
  checkLayer({700, 128, 64, 8, 2}, ecRepeat, 81, stream, false);
  // Capacities (spec section 4): every drop order, with and without the
  // renormalization, a run where most assignments are dropped, and one
  // where none is.
  struct Capped {
    const char *name;
    int order, renormalize;
    int64_t capacity;
  };
  const Capped capped[] = {
      {"layer capacity token_major", MOE_GPU_DROP_TOKEN_MAJOR, 0, 12},
      {"layer capacity choice_major", MOE_GPU_DROP_CHOICE_MAJOR, 0, 12},
      {"layer capacity score renormalize_after_drop", MOE_GPU_DROP_SCORE, 1,
       12},
      {"layer capacity 1 token_major renormalize_after_drop",
       MOE_GPU_DROP_TOKEN_MAJOR, 1, 1},
      {"layer capacity above every load", MOE_GPU_DROP_SCORE, 0, 1000},
  };
  uint64_t cseed = 51;
  for (const Capped &c : capped) {
    moe_gpu_routing r = def;
    r.capacity = c.capacity;
    r.drop_order = c.order;
    r.renormalize_after_drop = c.renormalize;
    checkLayer({60, 128, 64, 8, 2}, makeRouting(c.name, r, 8, false, false, 0),
               cseed, stream, c.order == MOE_GPU_DROP_SCORE);
    cseed += 2;
  }
  // 700 tokens, copies of 13, a capacity of 100 for about 175 assignments
  // per expert: the drop orders that rank, with the cut inside groups of
  // equal weights (ties to the lower slot t k + j).
  for (int order : {MOE_GPU_DROP_CHOICE_MAJOR, MOE_GPU_DROP_SCORE}) {
    moe_gpu_routing r = def;
    r.capacity = 100;
    r.drop_order = order;
    Routing repeated = makeRouting(
        order == MOE_GPU_DROP_SCORE
            ? "layer capacity score 700 tokens, 13 distinct"
            : "layer capacity choice_major 700 tokens, 13 distinct",
        r, 8, false, false, 0);
    repeated.repeat = 13;
    checkLayer({700, 128, 64, 8, 2}, repeated, cseed, stream, false);
    cseed += 2;
  }
  // Shared experts (spec section 5): DeepSeek's (always on) and
  // Qwen2-MoE's (sigmoid gate), the second with a capacity too.
  Routing deepseekShared =
      makeRouting("layer shared expert", def, 0, false, false, 0);
  deepseekShared.sharedFfn = 96;
  checkLayer({45, 128, 64, 8, 2}, deepseekShared, 61, stream, true);
  moe_gpu_routing qwen2 = def;
  qwen2.renormalize = 0;
  qwen2.capacity = 14;
  qwen2.drop_order = MOE_GPU_DROP_TOKEN_MAJOR;
  Routing qwen2Shared = makeRouting("layer gated shared expert capacity", qwen2,
                                    0, false, false, 0);
  qwen2Shared.sharedFfn = 256;
  qwen2Shared.sharedGate = true;
  checkLayer({70, 256, 64, 16, 4}, qwen2Shared, 63, stream, false);
  // GELU experts with a GELU shared expert (the layer's activation is
  // theirs too).
  Routing geluShared =
      makeRouting("layer shared expert", def, 0, false, false, 0);
  geluShared.sharedFfn = 64;
  checkLayer({33, 128, 64, 8, 2, MOE_GPU_ACT_GELU_TANH}, geluShared, 65, stream,
             false);
  // Weights applied to the expert input (rows scaled before the experts).
  moe_gpu_routing onInput = def;
  onInput.apply_to_input = 1;
  checkLayer({50, 128, 64, 16, 4},
             makeRouting("layer weights applied to the input", onInput, 16,
                         false, false, 0),
             67, stream, false);
  // Switch: plain MLP experts (relu), top-1, a capacity in token order.
  moe_gpu_routing switchRouting = def;
  switchRouting.renormalize = 0;
  switchRouting.capacity = 10;
  switchRouting.drop_order = MOE_GPU_DROP_TOKEN_MAJOR;
  checkLayer({64, 128, 256, 8, 1, MOE_GPU_ACT_RELU, /*mlp=*/true},
             makeRouting("layer switch mlp capacity", switchRouting, 8, false,
                         false, 0),
             69, stream, true);
  // GraniteMoE: logits, softmax over the kept slots, a fused gate_up.
  Dims fusedDims{40, 128, 64, 8, 2};
  fusedDims.fused = true;
  checkLayer(fusedDims,
             makeRouting("layer fused gate_up", granite, 8, false, false, 0),
             71, stream, false);
  // LoRA experts: kind lora with d_out = 96 != d and its base on every
  // token; the same with the weights applied to the input and a capacity;
  // MixLoRA (lora_gated, GELU) with a gated shared expert.
  Dims loraDims{50, 128, 96, 8, 2};
  loraDims.lora = 1;
  loraDims.rank = 16;
  checkLayer(loraDims,
             makeRouting("layer lora experts", def, 8, false, false, 0), 73,
             stream, true);
  moe_gpu_routing loraInput = def;
  loraInput.apply_to_input = 1;
  loraInput.capacity = 14;
  loraInput.drop_order = MOE_GPU_DROP_SCORE;
  checkLayer(loraDims,
             makeRouting("layer lora experts on the input capacity", loraInput,
                         8, false, false, 0),
             75, stream, false);
  Dims mixDims{45, 128, 64, 16, 4, MOE_GPU_ACT_GELU_TANH};
  mixDims.lora = 2;
  Routing mixShared = makeRouting("layer lora_gated experts gated shared",
                                  def, 16, false, false, 0);
  mixShared.sharedFfn = 64;
  mixShared.sharedGate = true;
  checkLayer(mixDims, mixShared, 77, stream, true);
  moe_gpu_routing olmoe = def;
  olmoe.renormalize = 0;
  checkLayer(
      {70, 256, 64, 64, 8},
      makeRouting("layer softmax top_k raw", olmoe, 64, false, false, 43), 44,
      stream, false);

  CU_CHECK(cu().cuStreamDestroy(stream));
  std::printf("%s: %d failed\n", failures ? "FAILED" : "ALL PASSED", failures);
  return failures ? 1 : 0;
}
