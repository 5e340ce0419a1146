//===- moe-bench.cpp - one MoE layer against the machine and its peers ----===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Times one gated (SwiGLU) MoE layer, compiled by moe-cpu-pipeline from a
// checkpoint (weights packed at load time), against, in the same process:
//   (a) the project's reference lowering,
//   (b) a dense all-experts layer (every expert on every token, masked),
//   (c) a gathered MoE on OpenBLAS (gather each expert's rows, one sgemm
//       per projection, scatter-add),
//   (d) the same on oneDNN (per-expert matmul primitives),
// and against the machine: the f32 GEMM ceiling (best of oneDNN and
// OpenBLAS on 2048^3) and the streaming read bandwidth, both measured here.
//
// Every timed call runs with a cold cache: a buffer larger than the last
// level cache is streamed before it, as a real model's other layers would
// evict this layer's weights. Times are medians over repeated calls.
//
//===----------------------------------------------------------------------===//

#include "moe/Checkpoint/SafeTensors.h"
#include "moe/Runner/Runner.h"

#include "Model.h"
#include "cpu/Elements.h"
#include "cpu/ThreadPool.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cblas.h>
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <thread>
#include <unistd.h>

using namespace mlir;
namespace ckpt = mlir::moe::checkpoint;
namespace npy = mlir::moe::npy;

namespace {

llvm::cl::opt<int> threads("num-threads", llvm::cl::desc("Threads of every system"),
                           llvm::cl::init(2));
llvm::cl::opt<int> repeats("repeats",
                           llvm::cl::desc("Timed calls per measurement "
                                          "(at least; slow ones stop at 3)"),
                           llvm::cl::init(15));
llvm::cl::opt<bool> quick("quick",
                          llvm::cl::desc("Only the first shape's rows, fewer "
                                         "repeats (a smoke run)"));
llvm::cl::opt<bool> skipReference(
    "skip-reference", llvm::cl::desc("Do not time the reference lowering"));
llvm::cl::opt<bool> overheadOnly(
    "stats-overhead-only",
    llvm::cl::desc("Only measure what statistics cost (no peers, no "
                   "reference)"));
llvm::cl::opt<std::string> only("only",
                                llvm::cl::desc("Only rows whose label "
                                               "contains this string"));

//===----------------------------------------------------------------------===//
// Timing
//===----------------------------------------------------------------------===//

double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Streams a buffer larger than the last-level cache (at least 256 MB), so
/// that the next call finds none of its weights in cache.
class Evictor {
public:
  Evictor() {
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    bytes = std::max<size_t>(256u << 20, l3 > 0 ? 2 * size_t(l3) : 0);
    data.assign(bytes / sizeof(float), 1.0f);
  }
  void operator()() {
    float acc = 0.0f;
    for (size_t i = 0; i < data.size(); i += 16)
      acc += data[i];
    sink = acc;
    data[static_cast<size_t>(acc) % data.size()] += 1.0f;
  }
  size_t size() const { return bytes; }

private:
  size_t bytes;
  std::vector<float> data;
  volatile float sink = 0.0f;
};

/// Median milliseconds of `call` over cold-cache calls: `repeats`, or at
/// least 3 when one call takes long.
double timeCold(Evictor &evict, const std::function<void()> &call,
                int wanted) {
  evict();
  call(); // warm-up (first-touch allocations, primitive caches)
  std::vector<double> times;
  double spent = 0.0;
  for (int i = 0; i < wanted; ++i) {
    evict();
    double t0 = now();
    call();
    double dt = now() - t0;
    times.push_back(dt * 1e3);
    spent += dt;
    if (i >= 2 && spent > 20.0)
      break;
  }
  return median(times);
}

//===----------------------------------------------------------------------===//
// The layer's data
//===----------------------------------------------------------------------===//

struct Shape {
  std::string name;
  int64_t d, f, E, k;
  std::vector<int64_t> tokens;
  bool skewed = false;
};

struct Layer {
  Shape shape;
  std::vector<float> router; // [E, d]
  std::vector<float> w1, w3; // [E, f, d]
  std::vector<float> w2;     // [E, d, f]

  const float *gate(int64_t e) const { return &w1[e * shape.f * shape.d]; }
  const float *up(int64_t e) const { return &w3[e * shape.f * shape.d]; }
  const float *down(int64_t e) const { return &w2[e * shape.d * shape.f]; }
};

void fill(std::vector<float> &v, size_t n, uint64_t seed, float scale) {
  v.resize(n);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  for (float &x : v)
    x = dist(rng);
}

Layer makeLayer(const Shape &s, uint64_t seed) {
  Layer l;
  l.shape = s;
  fill(l.router, s.E * s.d, seed, 1.0f / std::sqrt(float(s.d)));
  fill(l.w1, s.E * s.f * s.d, seed + 1, 1.0f / std::sqrt(float(s.d)));
  fill(l.w3, s.E * s.f * s.d, seed + 2, 1.0f / std::sqrt(float(s.d)));
  fill(l.w2, s.E * s.d * s.f, seed + 3, 1.0f / std::sqrt(float(s.f)));
  if (s.skewed) {
    // Expert 0's router row is a strong direction u; half of the tokens
    // carry +u (expert 0 first), the other half -u (expert 0 last).
    for (int64_t i = 0; i < s.d; ++i)
      l.router[i] = (i % 2 ? 1.0f : -1.0f) * 4.0f / std::sqrt(float(s.d));
  }
  return l;
}

std::vector<float> makeInput(const Layer &l, int64_t tokens, uint64_t seed) {
  const Shape &s = l.shape;
  std::vector<float> x;
  fill(x, tokens * s.d, seed, 1.0f);
  if (s.skewed)
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t i = 0; i < s.d; ++i)
        x[t * s.d + i] += (t % 2 ? -1.0f : 1.0f) * (i % 2 ? 1.0f : -1.0f);
  return x;
}

//===----------------------------------------------------------------------===//
// Routing of the baselines: softmax, top-k, renormalized (as the layer)
//===----------------------------------------------------------------------===//

struct Routing {
  std::vector<int32_t> ids; // [T, k]
  std::vector<float> weights;
};

using Gemm = std::function<void(int64_t m, int64_t n, int64_t k,
                                const float *a, const float *bT, float *c)>;

Routing route(const Layer &l, const float *x, int64_t tokens,
              const Gemm &gemm) {
  const Shape &s = l.shape;
  std::vector<float> logits(tokens * s.E);
  gemm(tokens, s.E, s.d, x, l.router.data(), logits.data());
  Routing r;
  r.ids.resize(tokens * s.k);
  r.weights.resize(tokens * s.k);
  for (int64_t t = 0; t < tokens; ++t) {
    const float *z = &logits[t * s.E];
    float mx = *std::max_element(z, z + s.E), sum = 0.0f;
    std::vector<float> p(s.E);
    for (int64_t e = 0; e < s.E; ++e)
      sum += p[e] = std::exp(z[e] - mx);
    std::vector<int32_t> order(s.E);
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + s.k, order.end(),
                      [&](int32_t a, int32_t b) {
                        return p[a] > p[b] || (p[a] == p[b] && a < b);
                      });
    float kept = 0.0f;
    for (int64_t j = 0; j < s.k; ++j)
      kept += p[order[j]] / sum;
    for (int64_t j = 0; j < s.k; ++j) {
      r.ids[t * s.k + j] = order[j];
      r.weights[t * s.k + j] = p[order[j]] / sum / kept;
    }
  }
  return r;
}

float silu(float v) { return v / (1.0f + std::exp(-v)); }

//===----------------------------------------------------------------------===//
// Baselines
//===----------------------------------------------------------------------===//

/// Gathered MoE: per expert, gather its rows, three GEMMs, scatter-add.
void gatheredLayer(const Layer &l, const float *x, int64_t tokens, float *y,
                   const Gemm &gemm,
                   const std::function<void(int64_t, int64_t, int64_t,
                                            const float *, int64_t,
                                            float *)> &expertGemm) {
  const Shape &s = l.shape;
  Routing r = route(l, x, tokens, gemm);
  std::vector<std::vector<std::pair<int32_t, float>>> rows(s.E);
  for (int64_t i = 0; i < tokens * s.k; ++i)
    rows[r.ids[i]].push_back({int32_t(i / s.k), r.weights[i]});
  std::fill(y, y + tokens * s.d, 0.0f);
  std::vector<float> xe, g, u, ye;
  for (int64_t e = 0; e < s.E; ++e) {
    int64_t m = rows[e].size();
    if (!m)
      continue;
    xe.resize(m * s.d);
    g.resize(m * s.f);
    u.resize(m * s.f);
    ye.resize(m * s.d);
    for (int64_t i = 0; i < m; ++i)
      std::memcpy(&xe[i * s.d], x + rows[e][i].first * s.d, s.d * 4);
    expertGemm(e, 0, m, xe.data(), s.d, g.data());
    expertGemm(e, 1, m, xe.data(), s.d, u.data());
#pragma omp parallel for
    for (int64_t i = 0; i < m * s.f; ++i)
      g[i] = silu(g[i]) * u[i];
    expertGemm(e, 2, m, g.data(), s.f, ye.data());
    for (int64_t i = 0; i < m; ++i) {
      float w = rows[e][i].second;
      float *dst = y + rows[e][i].first * s.d;
      const float *src = &ye[i * s.d];
      for (int64_t c = 0; c < s.d; ++c)
        dst[c] += w * src[c];
    }
  }
}

/// Dense: every expert on every token, then the routing mask.
void denseLayer(const Layer &l, const float *x, int64_t tokens, float *y,
                const Gemm &gemm) {
  const Shape &s = l.shape;
  Routing r = route(l, x, tokens, gemm);
  std::vector<float> mask(tokens * s.E, 0.0f);
  for (int64_t i = 0; i < tokens * s.k; ++i)
    mask[(i / s.k) * s.E + r.ids[i]] = r.weights[i];
  std::fill(y, y + tokens * s.d, 0.0f);
  std::vector<float> g(tokens * s.f), u(tokens * s.f), ye(tokens * s.d);
  for (int64_t e = 0; e < s.E; ++e) {
    gemm(tokens, s.f, s.d, x, l.gate(e), g.data());
    gemm(tokens, s.f, s.d, x, l.up(e), u.data());
#pragma omp parallel for
    for (int64_t i = 0; i < tokens * s.f; ++i)
      g[i] = silu(g[i]) * u[i];
    gemm(tokens, s.d, s.f, g.data(), l.down(e), ye.data());
    for (int64_t t = 0; t < tokens; ++t) {
      float w = mask[t * s.E + e];
      for (int64_t c = 0; c < s.d; ++c)
        y[t * s.d + c] += w * ye[t * s.d + c];
    }
  }
}

Gemm openblasGemm() {
  return [](int64_t m, int64_t n, int64_t k, const float *a, const float *bT,
            float *c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k,
                bT, k, 0.0f, c, n);
  };
}

Gemm onednnGemm() {
  return [](int64_t m, int64_t n, int64_t k, const float *a, const float *bT,
            float *c) {
    dnnl_sgemm('N', 'T', m, n, k, 1.0f, a, k, bT, k, 0.0f, c, n);
  };
}

/// Per-expert oneDNN matmul primitives with a run-time row count and the
/// weights reordered once into the layout oneDNN picks.
class OneDNNExperts {
public:
  explicit OneDNNExperts(const Layer &l) : layer(l), engine(dnnl::engine::kind::cpu, 0), stream(engine) {
    using md = dnnl::memory::desc;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const Shape &s = l.shape;
    auto make = [&](int64_t k, int64_t n) {
      md src({DNNL_RUNTIME_DIM_VAL, k}, dt::f32, tag::ab);
      md wAny({k, n}, dt::f32, tag::any);
      md dst({DNNL_RUNTIME_DIM_VAL, n}, dt::f32, tag::ab);
      try {
        return dnnl::matmul::primitive_desc(
            dnnl::matmul::desc(src, wAny, dst), engine);
      } catch (const dnnl::error &) {
        return dnnl::matmul::primitive_desc(
            dnnl::matmul::desc(src, md({k, n}, dt::f32, tag::ba), dst),
            engine);
      }
    };
    upDesc = make(s.d, s.f);
    downDesc = make(s.f, s.d);
    up = dnnl::matmul(upDesc);
    down = dnnl::matmul(downDesc);
    // W [n, k] row-major is the [k, n] matrix in `ba` order.
    auto reorder = [&](const float *w, int64_t k, int64_t n,
                       const dnnl::matmul::primitive_desc &pd) {
      dnnl::memory plain(md({k, n}, dt::f32, tag::ba), engine,
                         const_cast<float *>(w));
      dnnl::memory packed(pd.weights_desc(), engine);
      dnnl::reorder(plain, packed).execute(stream, plain, packed);
      stream.wait();
      return packed;
    };
    for (int64_t e = 0; e < s.E; ++e) {
      weights.push_back(reorder(l.gate(e), s.d, s.f, upDesc));
      weights.push_back(reorder(l.up(e), s.d, s.f, upDesc));
      weights.push_back(reorder(l.down(e), s.f, s.d, downDesc));
    }
  }

  void operator()(int64_t e, int which, int64_t m, const float *a, int64_t k,
                  float *c) {
    using md = dnnl::memory::desc;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    int64_t n = which == 2 ? layer.shape.d : layer.shape.f;
    dnnl::memory src(md({m, k}, dt::f32, tag::ab), engine,
                     const_cast<float *>(a));
    dnnl::memory dst(md({m, n}, dt::f32, tag::ab), engine, c);
    (which == 2 ? down : up)
        .execute(stream, {{DNNL_ARG_SRC, src},
                          {DNNL_ARG_WEIGHTS, weights[e * 3 + which]},
                          {DNNL_ARG_DST, dst}});
    stream.wait();
  }

private:
  const Layer &layer;
  dnnl::engine engine;
  dnnl::stream stream;
  dnnl::matmul::primitive_desc upDesc, downDesc;
  dnnl::matmul up, down;
  std::vector<dnnl::memory> weights;
};

//===----------------------------------------------------------------------===//
// moe-mlir: the layer from a checkpoint, JIT-compiled
//===----------------------------------------------------------------------===//

std::string layerModule(const Shape &s, const std::string &checkpoint,
                        const std::string &dtype) {
  std::string d = std::to_string(s.d), f = std::to_string(s.f),
              e = std::to_string(s.E);
  std::string x = "tensor<?x" + d + "xf32>";
  std::string wg = "tensor<" + e + "x" + d + "x" + dtype + ">";
  std::string w13 = "tensor<" + e + "x" + f + "x" + d + "x" + dtype + ">";
  std::string w2 = "tensor<" + e + "x" + d + "x" + f + "x" + dtype + ">";
  return "module attributes {moe.checkpoint = \"" + checkpoint + "\"} {\n"
         "func.func @layer(%x: " + x + ") -> " + x + " {\n"
         "  %wg = moe.weight \"router\" : " + wg + "\n"
         "  %w1 = moe.weight \"w1\" : " + w13 + "\n"
         "  %w3 = moe.weight \"w3\" : " + w13 + "\n"
         "  %w2 = moe.weight \"w2\" : " + w2 + "\n"
         "  %y, %load, %dropped = moe.layer %x router(%wg : " + wg + ")\n"
         "      experts(%w1, %w3, %w2 : " + w13 + ", " + w13 + ", " + w2 + ")\n"
         "      {routing = #moe.routing<score = softmax, selection = top_k, k = " +
         std::to_string(s.k) + ", renormalize = true>,\n"
         "       experts = #moe.experts<kind = gated, act = silu>} : " + x + "\n"
         "  return %y : " + x + "\n}\n}\n";
}

llvm::Error writeCheckpoint(const Layer &l, const std::string &path,
                            bool bf16) {
  const Shape &s = l.shape;
  std::vector<std::vector<uint16_t>> halves;
  auto tensor = [&](const std::string &name, const std::vector<float> &v,
                    llvm::SmallVector<int64_t> shape) {
    if (!bf16)
      return ckpt::TensorData{name, ckpt::DType::F32, shape,
                              {reinterpret_cast<const char *>(v.data()),
                               v.size() * 4}};
    halves.emplace_back(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      halves.back()[i] = ::moe::rt::cpu::toBF16Scalar(v[i]);
    return ckpt::TensorData{name, ckpt::DType::BF16, shape,
                            {reinterpret_cast<const char *>(halves.back().data()),
                             v.size() * 2}};
  };
  halves.reserve(4);
  std::vector<ckpt::TensorData> tensors = {
      tensor("router", l.router, {s.E, s.d}),
      tensor("w1", l.w1, {s.E, s.f, s.d}),
      tensor("w3", l.w3, {s.E, s.f, s.d}),
      tensor("w2", l.w2, {s.E, s.d, s.f})};
  return ckpt::writeSafeTensors(path, tensors);
}

class CompiledLayer {
public:
  /// Statistics the layer records: none, the counts (the default), or the
  /// counts and co-activated pairs.
  enum class Stats { Off, On, Coactivation };

  static std::unique_ptr<CompiledLayer> create(MLIRContext &ctx,
                                               const Layer &l,
                                               const std::string &dir,
                                               bool bf16, bool reference,
                                               Stats stats = Stats::On) {
    std::string file = dir + (bf16 ? "/bf16.safetensors" : "/f32.safetensors");
    if (!llvm::sys::fs::exists(file))
      if (llvm::Error e = writeCheckpoint(l, file, bf16)) {
        llvm::errs() << "moe-bench: " << llvm::toString(std::move(e)) << "\n";
        return nullptr;
      }
    auto module = parseSourceString<ModuleOp>(
        layerModule(l.shape, file, bf16 ? "bf16" : "f32"), &ctx);
    if (!module)
      return nullptr;
    mlir::moe::RunnerOptions options;
    options.reference = reference;
    options.stats = stats != Stats::Off;
    options.coactivation = stats == Stats::Coactivation;
    auto fn = mlir::moe::CompiledFunction::compile(*module, "layer", options);
    if (!fn) {
      llvm::errs() << "moe-bench: " << llvm::toString(fn.takeError()) << "\n";
      return nullptr;
    }
    std::unique_ptr<CompiledLayer> layer(new CompiledLayer);
    layer->function = std::move(*fn);
    return layer;
  }

  void run(const npy::Array &x) {
    auto out = function->call({&x});
    if (!out) {
      llvm::errs() << "moe-bench: " << llvm::toString(out.takeError()) << "\n";
      std::exit(1);
    }
    result = std::move((*out)[0]);
  }

  const float *output() const {
    return static_cast<const float *>(result->data());
  }

  /// Experts that received at least one assignment in the last calls.
  int64_t touchedExperts() const {
    ::moe::rt::Model *model = function->model();
    if (!model || model->manifest().stats.empty())
      return -1;
    ::moe::rt::Counters c = model->snapshot(0);
    return std::count_if(c.assignments.begin(), c.assignments.end(),
                         [](int64_t a) { return a > 0; });
  }
  void resetStats() {
    if (::moe::rt::Model *model = function->model())
      model->resetStats();
  }

private:
  std::unique_ptr<mlir::moe::CompiledFunction> function;
  std::optional<npy::Array> result;
};

//===----------------------------------------------------------------------===//
// The machine
//===----------------------------------------------------------------------===//

double gemmCeiling(const char *which) {
  const int64_t n = 2048;
  std::vector<float> a, b, c(n * n);
  fill(a, n * n, 7, 1.0f);
  fill(b, n * n, 8, 1.0f);
  Gemm gemm = std::strcmp(which, "onednn") ? openblasGemm() : onednnGemm();
  std::vector<double> times;
  gemm(n, n, n, a.data(), b.data(), c.data());
  for (int i = 0; i < 7; ++i) {
    double t0 = now();
    gemm(n, n, n, a.data(), b.data(), c.data());
    times.push_back(now() - t0);
  }
  return 2.0 * n * n * n / median(times) / 1e9;
}

/// Streaming read bandwidth in GB/s with `threads` threads, from a buffer
/// four times the eviction buffer.
double readBandwidth(size_t bytes) {
  std::vector<float> data(bytes / 4, 1.0f);
  std::vector<double> times;
  for (int rep = 0; rep < 7; ++rep) {
    double t0 = now();
    std::vector<float> sums(threads, 0.0f);
#pragma omp parallel num_threads(int(threads))
    {
      int id = omp_get_thread_num(), n = omp_get_num_threads();
      size_t chunk = data.size() / n;
      const float *p = data.data() + id * chunk;
      float acc[16] = {};
      for (size_t i = 0; i + 16 <= chunk; i += 16)
        for (int j = 0; j < 16; ++j)
          acc[j] += p[i + j];
      float s = 0.0f;
      for (float v : acc)
        s += v;
      sums[id] = s;
    }
    times.push_back(now() - t0);
    if (sums[0] == 42.0f)
      std::printf(" ");
  }
  return bytes / median(times) / 1e9;
}

std::string cpuName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0)
      return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string isaFlags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, out;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      for (const char *f : {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
        if (line.find(std::string(" ") + f) != std::string::npos)
          out += std::string(out.empty() ? "" : " ") + f;
      break;
    }
  return out;
}

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

/// Overhead of statistics: the layer with and without them, calls
/// interleaved (the order rotating) so that drift hits all alike. The
/// calls are warm: what statistics cost does not depend on where the
/// weights are, and a warm layer is faster, so the ratio is an upper bound
/// of the cold one with far less noise.
struct OverheadRow {
  std::string label;
  int64_t tokens;
  double off, on, coactivation; // median ms
  double onRatio, coactivationRatio; // medians of the paired ratios
  double recordUs, coactivationUs; // the runtime calls alone
};

/// Median times of `calls`, and the median ratio of each call's time to
/// the first's in the same round.
std::pair<std::vector<double>, std::vector<double>>
pairedTimes(std::vector<std::function<void()>> calls, int rounds) {
  std::vector<std::vector<double>> times(calls.size()), ratios(calls.size());
  for (auto &call : calls)
    call();
  for (int i = 0; i < rounds; ++i) {
    std::vector<double> round(calls.size());
    for (size_t j = 0; j < calls.size(); ++j) {
      // Rotated, so that no call follows itself (it would find its
      // weights in cache) and every call follows each other one as often.
      size_t which = (i + j) % calls.size();
      double t0 = now();
      calls[which]();
      round[which] = (now() - t0) * 1e3;
    }
    for (size_t j = 0; j < calls.size(); ++j) {
      times[j].push_back(round[j]);
      ratios[j].push_back(round[j] / round[0]);
    }
  }
  std::vector<double> medians, medianRatios;
  for (size_t j = 0; j < calls.size(); ++j) {
    medians.push_back(median(times[j]));
    medianRatios.push_back(median(ratios[j]));
  }
  return {medians, medianRatios};
}

/// Microseconds per call of what the generated code calls to record one
/// layer call of `tokens` tokens with `k` slots over `experts` experts.
std::pair<double, double> recordCost(int64_t experts, int64_t tokens,
                                     int64_t k) {
  ::moe::rt::Manifest manifest;
  manifest.stats.push_back({0, "layer", experts});
  auto model = ::moe::rt::Model::load(manifest, "");
  if (!model) {
    llvm::consumeError(model.takeError());
    return {-1, -1};
  }
  std::vector<int64_t> counts(experts, 1), dropped(experts, 0);
  std::vector<int32_t> ids(tokens * k);
  for (int64_t i = 0; i < tokens * k; ++i)
    ids[i] = static_cast<int32_t>((i * 7 + i / k) % experts);
  const int reps = 2000;
  double t0 = now();
  for (int i = 0; i < reps; ++i)
    (*model)->record(0, counts.data(), 1, dropped.data(), 1, tokens);
  double record = (now() - t0) / reps * 1e6;
  t0 = now();
  for (int i = 0; i < reps; ++i)
    (*model)->recordCoactivation(0, ids.data(), tokens, k, k, 1);
  double pairs = (now() - t0) / reps * 1e6;
  return {record, pairs};
}

struct Row {
  std::string label;
  int64_t tokens;
  std::string dtype;
  double ours, reference = -1, dense = -1, openblas = -1, onednn = -1;
  double gflops, floorMs;
  std::string bound;
  double oursF32 = -1; // for bf16 rows
  double maxError = 0;
};

std::string fmt(double v, const char *f = "%.2f") {
  if (v < 0)
    return "-";
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

double relError(const float *a, const float *b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return den > 0 ? num / den : num;
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  llvm::cl::ParseCommandLineOptions(argc, argv,
                                    "moe-bench: one MoE layer against the "
                                    "machine's limits and CPU peers\n");
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();

  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  ::moe::rt::cpu::setNumThreads(threads);

  DialectRegistry registry;
  mlir::moe::registerRunnerDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();

  std::vector<Shape> shapes = {
      {"Mixtral-like d1024 f2816 E8 k2", 1024, 2816, 8, 2, {1, 16, 128, 512}},
      {"OLMoE-like d2048 f1024 E64 k8", 2048, 1024, 64, 8, {1, 32, 256}},
      {"Qwen3-like d2048 f768 E128 k8", 2048, 768, 128, 8, {1, 256}},
      {"skewed Mixtral-like (half the tokens to expert 0)", 1024, 2816, 8, 2,
       {512}, true}};
  if (quick) {
    shapes.resize(1);
    shapes[0].tokens = {1, 128};
  }
  int wanted = quick ? 5 : repeats;

  Evictor evict;
  std::printf("moe-bench: %d threads, cold cache (%zu MB streamed before "
              "each call), medians of up to %d calls\n",
              int(threads), evict.size() >> 20, wanted);
  double ceilingDnnl = gemmCeiling("onednn");
  double ceilingBlas = gemmCeiling("openblas");
  double ceiling = std::max(ceilingDnnl, ceilingBlas);
  double bandwidth = readBandwidth(4 * evict.size());
  std::time_t t = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%d", std::localtime(&t));
  std::printf("date %s; CPU %s (%s)\n", date, cpuName().c_str(),
              isaFlags().c_str());
  std::printf("f32 GEMM ceiling (2048^3): oneDNN %.0f GFLOP/s, OpenBLAS %.0f "
              "(OPENBLAS_CORETYPE=%s) -> %.0f\n",
              ceilingDnnl, ceilingBlas,
              getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE")
                                          : "unset",
              ceiling);
  std::printf("streaming read bandwidth: %.1f GB/s\n\n", bandwidth);
  std::fflush(stdout);

  llvm::SmallString<128> dir;
  if (llvm::sys::fs::createUniqueDirectory("moe-bench", dir)) {
    std::fprintf(stderr, "moe-bench: cannot create a temporary directory\n");
    return 1;
  }

  std::vector<Row> rows;
  std::vector<OverheadRow> overheads;
  uint64_t seed = 1;
  for (const Shape &shape : shapes) {
    Layer layer = makeLayer(shape, seed += 10);
    std::string shapeDir = (dir + "/" + std::to_string(seed)).str();
    llvm::sys::fs::create_directories(shapeDir);
    auto fast = CompiledLayer::create(ctx, layer, shapeDir, false, false);
    auto fastBF16 = CompiledLayer::create(ctx, layer, shapeDir, true, false);
    // The three variants of the overhead measurement are compiled (and
    // their weights packed) together, so that they differ only by what
    // they record.
    auto noStats = CompiledLayer::create(ctx, layer, shapeDir, false, false,
                                         CompiledLayer::Stats::Off);
    auto withStats = CompiledLayer::create(ctx, layer, shapeDir, false, false,
                                           CompiledLayer::Stats::On);
    auto coactivation = CompiledLayer::create(
        ctx, layer, shapeDir, false, false, CompiledLayer::Stats::Coactivation);
    if (!noStats || !withStats || !coactivation)
      return 1;
    std::unique_ptr<CompiledLayer> ref;
    bool timeReference = !skipReference && !overheadOnly;
    if (timeReference)
      ref = CompiledLayer::create(ctx, layer, shapeDir, false, true);
    if (!fast || !fastBF16 || (timeReference && !ref))
      return 1;
    OneDNNExperts dnnlExperts(layer);
    // The bf16 rows are checked against the same layer with its weights
    // rounded to bf16 (routing may legitimately differ from f32 weights).
    Layer rounded = layer;
    for (std::vector<float> *w : {&rounded.router, &rounded.w1, &rounded.w3,
                                  &rounded.w2})
      for (float &v : *w)
        v = ::moe::rt::cpu::fromBF16Scalar(::moe::rt::cpu::toBF16Scalar(v));
    OneDNNExperts dnnlRounded(rounded);
    Gemm blas = openblasGemm(), dnnl = onednnGemm();
    auto blasExperts = [&](int64_t e, int which, int64_t m, const float *a,
                           int64_t k, float *c) {
      const float *w = which == 0 ? layer.gate(e)
                       : which == 1 ? layer.up(e)
                                    : layer.down(e);
      blas(m, which == 2 ? shape.d : shape.f, k, a, w, c);
    };

    for (int64_t tokens : shape.tokens) {
      std::string label = shape.name;
      if (!only.empty() && label.find(only) == std::string::npos)
        continue;
      std::vector<float> xs = makeInput(layer, tokens, seed + tokens);
      npy::Array x(npy::DType::F32, {tokens, shape.d});
      std::memcpy(x.data(), xs.data(), xs.size() * 4);
      std::vector<float> y(tokens * shape.d), yRef(tokens * shape.d);

      if (!overheadOnly) {
        Row row;
        row.label = label;
        row.tokens = tokens;
        row.dtype = "f32";
        fast->resetStats();
        row.ours = timeCold(evict, [&] { fast->run(x); }, wanted);
        int64_t touched = fast->touchedExperts();
        double useful = 2.0 * tokens * shape.k * 3 * shape.d * shape.f +
                        2.0 * tokens * shape.d * shape.E;
        row.gflops = useful / (row.ours * 1e-3) / 1e9;
        double expertBytes = 3.0 * shape.d * shape.f * 4;
        double computeFloor = useful / (ceiling * 1e9) * 1e3;
        double memoryFloor =
            (touched * expertBytes + shape.E * shape.d * 4.0) / (bandwidth * 1e9) *
            1e3;
        row.floorMs = std::max(computeFloor, memoryFloor);
        row.bound = computeFloor >= memoryFloor
                        ? "compute"
                        : "memory, " + std::to_string(touched) + " experts";

        // Peers, in the same process; each result checked against oneDNN's.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        row.onednn = timeCold(
            evict,
            [&] { gatheredLayer(layer, xs.data(), tokens, yRef.data(), dnnl, dnnlExperts); },
            wanted);
        row.maxError = relError(fast->output(), yRef.data(), tokens * shape.d);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        row.openblas = timeCold(
            evict,
            [&] { gatheredLayer(layer, xs.data(), tokens, y.data(), blas, blasExperts); },
            wanted);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        row.dense = timeCold(
            evict, [&] { denseLayer(layer, xs.data(), tokens, y.data(), dnnl); },
            std::min(wanted, 5));
        if (ref)
          row.reference = timeCold(evict, [&] { ref->run(x); }, 3);
        rows.push_back(row);

        Row bf = row;
        bf.dtype = "bf16";
        bf.oursF32 = row.ours;
        bf.ours = timeCold(evict, [&] { fastBF16->run(x); }, wanted);
        bf.gflops = useful / (bf.ours * 1e-3) / 1e9;
        gatheredLayer(rounded, xs.data(), tokens, y.data(), dnnl, dnnlRounded);
        bf.maxError = relError(fastBF16->output(), y.data(), tokens * shape.d);
        bf.reference = bf.dense = bf.openblas = bf.onednn = -1;
        double bfMemory = (touched * expertBytes / 2 + shape.E * shape.d * 2.0) /
                          (bandwidth * 1e9) * 1e3;
        bf.floorMs = bfMemory;
        bf.bound = "memory (bf16 bytes)";
        rows.push_back(bf);

        std::printf("%-52s T=%-4lld f32 %8.2f ms  bf16 %8.2f ms  oneDNN %8.2f "
                    "OpenBLAS %8.2f dense %8.2f ref %9.2f  err %.1e/%.1e\n",
                    label.c_str(), (long long)tokens, row.ours, bf.ours,
                    row.onednn, row.openblas, row.dense, row.reference,
                    row.maxError, bf.maxError);
        std::fflush(stdout);
      }

      auto [medians, ratios] = pairedTimes(
          {[&] { noStats->run(x); }, [&] { withStats->run(x); },
           [&] { coactivation->run(x); }},
          std::max(wanted, 15));
      auto [recordUs, pairsUs] = recordCost(shape.E, tokens, shape.k);
      overheads.push_back({label, tokens, medians[0], medians[1], medians[2],
                           ratios[1], ratios[2], recordUs, recordUs + pairsUs});
      if (overheadOnly) {
        std::printf("%-52s T=%-4lld statistics %+.2f%%, with co-activation "
                    "%+.2f%%\n",
                    label.c_str(), (long long)tokens,
                    100.0 * (ratios[1] - 1.0), 100.0 * (ratios[2] - 1.0));
        std::fflush(stdout);
      }
    }
  }
  llvm::sys::fs::remove_directories(dir);

  // Markdown table.
  if (!rows.empty())
    std::printf("\n| shape | T | weights | moe-mlir ms | GFLOP/s | %% of ceiling "
              "| floor ms (bound) | x floor | vs reference | vs dense | vs "
              "OpenBLAS | vs oneDNN | target |\n");
  if (!rows.empty())
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Row &r : rows) {
    double ratio = r.ours / r.floorMs;
    std::string target;
    if (r.dtype == "f32") {
      bool floorOk = ratio <= 1.4;
      bool peerOk = r.tokens < 128 || r.ours <= r.onednn;
      target = floorOk && peerOk ? "met" : "missed (";
      if (!floorOk)
        target += "> 1.4x floor";
      if (!floorOk && !peerOk)
        target += ", ";
      if (!peerOk)
        target += "slower than oneDNN";
      if (!(floorOk && peerOk))
        target += ")";
    } else {
      double speedup = r.oursF32 / r.ours;
      target = fmt(speedup) + "x f32";
      if (r.tokens >= 128)
        target += speedup >= 1.6 ? ", met" : ", missed (< 1.6x)";
    }
    auto vs = [&](double other) {
      return other < 0 ? std::string("-") : fmt(other / r.ours) + "x";
    };
    std::printf("| %s | %lld | %s | %s | %s | %s | %s (%s) | %s | %s | %s | "
                "%s | %s | %s |\n",
                r.label.c_str(), (long long)r.tokens, r.dtype.c_str(),
                fmt(r.ours).c_str(), fmt(r.gflops, "%.0f").c_str(),
                fmt(100.0 * r.gflops / ceiling, "%.0f%%").c_str(),
                fmt(r.floorMs).c_str(), r.bound.c_str(), fmt(ratio).c_str(),
                vs(r.reference).c_str(), vs(r.dense).c_str(),
                vs(r.openblas).c_str(), vs(r.onednn).c_str(), target.c_str());
  }

  std::printf(
      "\nStatistics overhead (f32, warm calls interleaved, medians of the "
      "paired ratios; the runtime calls alone in us):\n\n"
      "| shape | T | no statistics ms | statistics | with co-activation | "
      "record call us | with co-activation us | target (< 2%%) |\n"
      "|---|---|---|---|---|---|---|---|\n");
  for (const OverheadRow &r : overheads) {
    double on = 100.0 * (r.onRatio - 1.0);
    double coact = 100.0 * (r.coactivationRatio - 1.0);
    std::printf("| %s | %lld | %.2f | %+.1f%% | %+.1f%% | %.2f | %.2f | %s |\n",
                r.label.c_str(), (long long)r.tokens, r.off, on, coact,
                r.recordUs, r.coactivationUs, on < 2.0 ? "met" : "missed");
  }
  return 0;
}
