//===- moe-gpu-bench.cpp - MoE layers on a GPU against cuBLAS -------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Times libmoe_gpu_kernels (moe_gpu_kernels.h) on Mixtral-like (d 4096,
// f 14336, E 8, k 2) and Qwen3-like (d 2048, f 768, E 128, k 8) bf16 layers
// at T = 1, 16, 256, 4096 tokens, and in the same process:
//
//   layer        moe_gpu_layer_enqueue: router, dispatch, experts, combine
//   experts      moe_gpu_expert_ffn_enqueue on the layer's own routing (the
//                group sizes its offsets give): fused gate/up + SwiGLU,
//                down projection; on compute capability 9.0 the wgmma
//                kernels, and the mma.sync ones again (MOE_GPU_WGMMA=0),
//                and where the experts take the tensor cores (prefill,
//                and decoding above the GEMV's rows) the wgmma kernels on
//                128-row tiles of two warpgroups (MOE_GPU_WGMMA_ROWS=128),
//                with 128 and with 256 weight rows a block
//                (MOE_GPU_WGMMA_COLS=256), on 128 x 128 tiles with 6 k
//                steps in shared memory instead of 4
//                (MOE_GPU_WGMMA_STAGES=6: the copies 4 steps ahead of the
//                tensor cores rather than 2, one block an SM either way),
//                and on 64 x 128 tiles with 8 (96 KiB of weights in flight
//                an SM, where two blocks of 4 have 64);
//                for T >= 256 with the blocks launched columns fastest
//                (MOE_GPU_GEMM_GROUP=1, against 16 tiles of a column at
//                a time by default);
//                for T <= 16 also on the path (gemv_experts or the tensor
//                cores) that the row threshold did not pick
//                (MOE_GPU_GEMV_ROWS)
//   graph        for T <= 16, the layer and the experts each captured in a
//                CUDA graph and replayed: the kernels without the host's
//                enqueueing between them (launches, stream-ordered
//                allocations), as serving engines run decode steps
//   dependent    the layer and the experts with each kernel's launch
//                overlapping the kernel before it
//                (MOE_GPU_DEPENDENT_LAUNCH=1: programmatic stream
//                serialization, compute capability 9.0 and newer), on the
//                stream and, for T <= 16, replayed from a CUDA graph
//   host         for T <= 16, the host's time in one call of the layer
//                (its launches and stream-ordered allocations, on an idle
//                stream; the call does not wait for the GPU): when it
//                comes near the layer's time, decoding on a stream is
//                bound by the host
//   cublas-loop  the same expert GEMMs with one cublasGemmEx per expert and
//                projection (gate, up, down), without the SwiGLU between
//   cublas-grp   the same GEMMs with three cublasGemmGroupedBatchedEx calls
//                (one group per non-empty expert)
//   copy         a device-to-device copy of 2 GiB: the memory bandwidth
//   selection    for T >= 256, the layer again with expert_choice (C =
//                ceil(T k / E)), and with a capacity of ceil(T k / E) in the
//                score and choice_major drop orders: the selection kernels
//                and the second dispatch, against the dropless layer; each
//                layer (the dropless one too) also with the permutation on
//                one block (MOE_GPU_PERMUTATION_SLOTS), where the default
//                takes the segmented kernels past 4096 slots
//
// Every timing is the median of per-call CUDA event times over repeated
// calls, each after the L2 cache was overwritten (256 MiB memset), all on
// one stream. Weights live on the device for the whole run.
//
// TFLOP/s count 2 * rows * d * f * 3 (gate, up, down) over the experts'
// time; GB/s count the weights of the experts that received rows
// (3 * f * d * 2 bytes each) over the experts' time. The targets of the
// CUDA back end: prefill experts at least 0.8x the throughput of cuBLAS's
// grouped GEMM on the same work, decode reading the chosen experts'
// weights at 70% or more of the measured bandwidth (judged on the stream;
// the targets table adds the share replayed from a graph, and says "in a
// graph" when only that one reaches 70%).
//
//   moe-gpu-bench [--reps N] [--shapes mixtral,qwen3] [--tokens 1,16,...]
//                 [--profile]
//
// --profile, with MOE_CUDA_PROFILE set (moe_cuda.h), times nothing itself:
// for each shape and T it calls the layer, then the experts, N times
// each and writes the runtime's report of their kernels (launches, total,
// median and mean GPU time by kernel and grid) under a heading.
//
// --shapes kimi adds a Kimi-K2-like layer (d 7168, f 2048, E 384, k 8;
// 34 GB of expert weights), not run by default; --shapes tiny a layer of
// d 256, f 128, E 8, k 2, which measures nothing useful but runs every
// path of the benchmark in seconds (on the SIMT emulator too).
//
// Exits with 77 without a usable GPU.
//
//===----------------------------------------------------------------------===//

#include "CudaApi.h"
#include "moe_gpu_kernels.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <iterator>
#include <sstream>

using namespace moe::gpubench;
using mlir::moe::Random;

namespace {

struct Shape {
  const char *name;
  int64_t d, f, E, k;
};

Cublas blas;
cublasHandle_t handle = nullptr;
bool haveBlas = false;

/// Median milliseconds of `call` over `reps` calls, each timed by events
/// after `flush` overwrote the L2 cache.
double timeMs(CUstream stream, int reps, const std::function<void()> &flush,
              const std::function<void()> &call) {
  CUevent start, stop;
  CU_CHECK(cu().cuEventCreate(&start, CU_EVENT_DEFAULT));
  CU_CHECK(cu().cuEventCreate(&stop, CU_EVENT_DEFAULT));
  for (int i = 0; i < 2; ++i)
    call();
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    flush();
    CU_CHECK(cu().cuEventRecord(start, stream));
    call();
    CU_CHECK(cu().cuEventRecord(stop, stream));
    CU_CHECK(cu().cuEventSynchronize(stop));
    float t = 0;
    CU_CHECK(cu().cuEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  CU_CHECK(cu().cuEventDestroy(start));
  CU_CHECK(cu().cuEventDestroy(stop));
  return median(ms);
}

/// Median microseconds the host spends in `call`, which enqueues work on
/// `stream` without waiting for it, each call on an idle stream.
double hostUs(CUstream stream, int reps, const std::function<void()> &call) {
  std::vector<double> us;
  for (int i = 0; i < reps + 2; ++i) {
    CU_CHECK(cu().cuStreamSynchronize(stream));
    auto start = std::chrono::steady_clock::now();
    call();
    auto stop = std::chrono::steady_clock::now();
    if (i >= 2)
      us.push_back(
          std::chrono::duration<double, std::micro>(stop - start).count());
  }
  CU_CHECK(cu().cuStreamSynchronize(stream));
  return median(us);
}

/// Median milliseconds of `call` captured once in a CUDA graph and
/// replayed, each replay timed as timeMs times a call: the GPU's time
/// without the host's enqueueing, as a serving engine runs its decode steps.
double graphMs(CUstream stream, int reps, const std::function<void()> &flush,
               const std::function<void()> &call) {
  CU_CHECK(
      cu().cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  call();
  CUgraph graph;
  CU_CHECK(cu().cuStreamEndCapture(stream, &graph));
  CUgraphExec exec;
  CU_CHECK(cu().cuGraphInstantiateWithFlags(&exec, graph, 0));
  double ms = timeMs(stream, reps, flush,
                     [&] { CU_CHECK(cu().cuGraphLaunch(exec, stream)); });
  CU_CHECK(cu().cuStreamSynchronize(stream));
  CU_CHECK(cu().cuGraphExecDestroy(exec));
  CU_CHECK(cu().cuGraphDestroy(graph));
  return ms;
}

/// moe_cuda_profile_report of the CUDA runtime (moe_cuda.h), looked up when
/// the bench runs rather than linked: with the emulator's libraries first on
/// the library path, a direct reference would bind the kernel library's
/// other runtime calls to the CUDA runtime instead of the emulator.
int64_t profileReport() {
  using Report = int64_t (*)();
  static Report report =
      reinterpret_cast<Report>(dlsym(RTLD_DEFAULT, "moe_cuda_profile_report"));
  return report ? report() : 0;
}

/// --profile: `call` `reps` times after a warm-up call, each after `flush`,
/// then the report of their kernels' times (MOE_CUDA_PROFILE) under a
/// heading.
void profileCalls(CUstream stream, int reps, const std::function<void()> &flush,
                  const std::function<void()> &call, const char *shape,
                  int64_t T, const char *what) {
  call();
  CU_CHECK(cu().cuStreamSynchronize(stream));
  profileReport(); // the warm-up call's, left out
  for (int i = 0; i < reps; ++i) {
    flush();
    call();
  }
  CU_CHECK(cu().cuStreamSynchronize(stream));
  std::printf("\n== %s T=%lld: %s, %d calls\n", shape,
              static_cast<long long>(T), what, reps);
  std::fflush(stdout);
  profileReport();
  std::fflush(stderr);
}

void checkBlas(cublasStatus_t s, const char *what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "moe-gpu-bench: %s failed: cuBLAS status %d\n", what,
                 static_cast<int>(s));
    std::exit(1);
  }
}

/// Fills `n` bf16 values of `dst` from a pool of random values, at an
/// offset that depends on `salt`: distinct tensors without generating
/// gigabytes on the host.
void fillFromPool(CUdeviceptr dst, size_t n, const DeviceArray<uint16_t> &pool,
                  uint64_t salt, CUstream stream) {
  size_t chunk = pool.count / 2;
  size_t done = 0;
  uint64_t r = salt * 0x9e3779b97f4a7c15ull;
  while (done < n) {
    size_t len = std::min(chunk, n - done);
    size_t from = (r >> 17) % (pool.count - chunk);
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    CU_CHECK(cu().cuMemcpyDtoDAsync(dst + done * 2, pool.ptr + from * 2,
                                    len * 2, stream));
    done += len;
  }
}

struct Row {
  std::string shape;
  int64_t T, rows, active;
  // ms; < 0 when not measured. expertsMma: the experts on the mma.sync
  // kernels where `experts` took the wgmma ones; expertsWide: prefill on
  // the wgmma kernels with 128-row tiles, expertsDeep on the same with 6
  // stages, expertsDeepNarrow on 64-row tiles with 8 (the most weight
  // bytes in flight an SM), expertsWider on 128 x 256 tiles,
  // expertsColumns with the GEMM blocks in launch order (columns fastest);
  // expertsOther: decoding (T <= 16) on the path the row threshold did not
  // pick (otherPath); expertsPairing: decoding with the down projection's
  // GEMV on the other kernel (pairingPath: gemv_pairs, two columns a warp,
  // or gemv_experts, one) than the runtime's choice; layerGraph,
  // expertsGraph: decoding, the call captured in a CUDA graph and replayed;
  // layerHostUs: decoding, the host's microseconds in a call of the layer.
  double layerHostUs = -1;
  // layerDependent, expertsDependent, expertsGraphDependent: with
  // MOE_GPU_DEPENDENT_LAUNCH=1 (the graph for T <= 16 only).
  double layerDependent = -1, expertsDependent = -1, expertsGraphDependent = -1;
  double layer, experts, expertsMma, expertsWide, expertsDeep,
      expertsDeepNarrow, expertsWider, expertsColumns, expertsOther,
      expertsPairing, layerGraph, expertsGraph, loop, grouped;
  std::string otherPath, pairingPath;
  // Each variant timed above, as (its time, the settings that pick it).
  std::vector<std::pair<double, std::string>> variants;
  std::string groupedNote;
  int64_t d = 0, f = 0;
};

/// The fastest of the experts' variants that `r` measured besides the
/// default, as the settings that pick it, and its time in `ms`; empty (and
/// `ms` < 0) when it measured none.
std::string fastestVariant(const Row &r, double &ms) {
  ms = -1;
  std::string best;
  for (const auto &[time, setting] : r.variants)
    if (time > 0 && (ms < 0 || time < ms)) {
      ms = time;
      best = setting;
    }
  return best;
}

/// The targets of the CUDA back end, row by row: prefill (T >= 256) the
/// experts' time at most 1.25x cuBLAS's grouped GEMM on the same work;
/// decode (T <= 16) the chosen experts' weights read at 70% or more of the
/// measured bandwidth. The last column says "yes" when the default kernels
/// meet the target; else "with" the settings of the fastest variant the
/// bench timed, where that one meets it (one flip of a default away), or
/// for decoding "in a graph" when only a CUDA graph's replay meets it
/// ("with MOE_GPU_DEPENDENT_LAUNCH=1" when only its replay with dependent
/// launches does).
void printTargets(const std::vector<Row> &rows, double copyGBs) {
  std::printf("\n| shape | T | target | measured | met |\n"
              "|---|---|---|---|---|\n");
  for (const Row &r : rows) {
    if (r.T >= 256) {
      if (r.grouped <= 0) {
        std::printf("| %s | %lld | experts <= 1.25x cuBLAS grouped | "
                    "not measured | - |\n",
                    r.shape.c_str(), (long long)r.T);
        continue;
      }
      double ratio = r.experts / r.grouped;
      char wide[160] = "", columns[64] = "";
      if (r.expertsWide > 0 && r.expertsDeep > 0 && r.expertsDeepNarrow > 0 &&
          r.expertsWider > 0)
        std::snprintf(wide, sizeof(wide),
                      " (wgmma tiles 128 x 128: %.2fx, with 6 stages: "
                      "%.2fx, 64 x 128 with 8 stages: %.2fx, 128 x 256: "
                      "%.2fx)",
                      r.expertsWide / r.grouped, r.expertsDeep / r.grouped,
                      r.expertsDeepNarrow / r.grouped,
                      r.expertsWider / r.grouped);
      if (r.expertsColumns > 0)
        std::snprintf(columns, sizeof(columns), " (columns fastest: %.2fx)",
                      r.expertsColumns / r.grouped);
      double bestMs;
      std::string best = fastestVariant(r, bestMs);
      std::string met = ratio <= 1.25 ? "yes"
                        : bestMs > 0 && bestMs / r.grouped <= 1.25
                            ? "with " + best
                            : "no";
      std::printf("| %s | %lld | experts <= 1.25x cuBLAS grouped | %.2fx%s%s "
                  "| %s |\n",
                  r.shape.c_str(), (long long)r.T, ratio, wide, columns,
                  met.c_str());
    } else {
      // Met on the stream, or only when the experts are replayed from a
      // CUDA graph (no host enqueueing between the kernels).
      double bytes = 3.0 * r.active * r.f * r.d * 2;
      double share = bytes / r.experts * 1e-6 / copyGBs;
      // The faster graph replay: launched as by default, or with dependent
      // launches.
      double graphTime = r.expertsGraph;
      if (r.expertsGraphDependent > 0 &&
          (graphTime <= 0 || r.expertsGraphDependent < graphTime))
        graphTime = r.expertsGraphDependent;
      double graphShare =
          graphTime > 0 ? bytes / graphTime * 1e-6 / copyGBs : 0.0;
      char graph[96] = "";
      if (r.expertsGraph > 0 && r.expertsGraphDependent > 0)
        std::snprintf(graph, sizeof(graph),
                      " (in a CUDA graph: %.0f%%, with dependent launches: "
                      "%.0f%%)",
                      100.0 * bytes / r.expertsGraph * 1e-6 / copyGBs,
                      100.0 * bytes / r.expertsGraphDependent * 1e-6 / copyGBs);
      else if (r.expertsGraph > 0)
        std::snprintf(graph, sizeof(graph), " (in a CUDA graph: %.0f%%)",
                      100.0 * graphShare);
      double bestMs;
      std::string best = fastestVariant(r, bestMs);
      double bestShare = bestMs > 0 ? bytes / bestMs * 1e-6 / copyGBs : 0.0;
      char variant[160] = "";
      if (bestMs > 0)
        std::snprintf(variant, sizeof(variant),
                      " (fastest variant, %s: %.0f%%)", best.c_str(),
                      100.0 * bestShare);
      bool dependentGraph = graphTime > 0 && graphTime != r.expertsGraph;
      std::string met = share >= 0.7       ? "yes"
                        : bestShare >= 0.7 ? "with " + best
                        : graphShare >= 0.7
                            ? dependentGraph
                                  ? "in a graph with MOE_GPU_DEPENDENT_LAUNCH=1"
                                  : "in a graph"
                            : "no";
      std::printf("| %s | %lld | weights at >= 70%% of %.0f GB/s | %.0f%%%s%s "
                  "| %s |\n",
                  r.shape.c_str(), (long long)r.T, copyGBs, 100.0 * share,
                  graph, variant, met.c_str());
    }
  }
  std::fflush(stdout);
}

void printRow(const Row &r, double copyGBs, int64_t d, int64_t f) {
  double flops = 2.0 * r.rows * d * f * 3;
  double bytes = 3.0 * r.active * f * d * 2;
  auto tf = [&](double ms) { return ms > 0 ? flops / ms * 1e-9 : 0.0; };
  std::printf(
      "| %s | %lld | %lld | %lld | %.4f | %.4f | %.1f | %.0f (%.0f%%) "
      "| %.4f | %.4f | %.1f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f "
      "| %.4f | %.4f | %.4f "
      "| %.4f%s "
      "| %.4f%s | %.4f | %.4f | %.2f |%s\n",
      r.shape.c_str(), (long long)r.T, (long long)r.rows, (long long)r.active,
      r.layer, r.experts, tf(r.experts), bytes / r.experts * 1e-6,
      100.0 * bytes / r.experts * 1e-6 / copyGBs, r.layerGraph, r.expertsGraph,
      r.layerHostUs, r.layerDependent, r.expertsDependent,
      r.expertsGraphDependent, r.expertsMma, r.expertsWide, r.expertsDeep,
      r.expertsDeepNarrow, r.expertsWider, r.expertsColumns, r.expertsOther,
      r.otherPath.c_str(), r.expertsPairing, r.pairingPath.c_str(), r.loop,
      r.grouped, r.grouped > 0 ? r.experts / r.grouped : 0.0,
      r.groupedNote.c_str());
  std::fflush(stdout);
}

/// `run()` with the environment variable `name` set to `value` (the
/// kernel library reads its overrides on every call), then restored.
double withEnv(const char *name, const char *value,
               const std::function<double()> &run) {
  const char *was = std::getenv(name);
  std::string saved = was ? was : "";
  setenv(name, value, 1);
  double result = run();
  if (was)
    setenv(name, saved.c_str(), 1);
  else
    unsetenv(name);
  return result;
}

/// `run()` with `settings` ("NAME=VALUE", space-separated) in the
/// environment, then restored.
double withSettings(const std::string &settings,
                    const std::function<double()> &run) {
  size_t start = settings.find_first_not_of(' ');
  if (start == std::string::npos)
    return run();
  size_t end = settings.find(' ', start);
  std::string setting = settings.substr(start, end - start);
  size_t eq = setting.find('=');
  std::string rest = end == std::string::npos ? "" : settings.substr(end);
  return withEnv(setting.substr(0, eq).c_str(), setting.substr(eq + 1).c_str(),
                 [&] { return withSettings(rest, run); });
}

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    out.push_back(item);
  return out;
}

} // namespace

int main(int argc, char **argv) {
  int reps = 15;
  bool profile = false;
  std::vector<std::string> shapeNames = {"mixtral", "qwen3"};
  std::vector<int64_t> tokens = {1, 16, 256, 4096};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--reps" && i + 1 < argc)
      reps = std::atoi(argv[++i]);
    else if (a == "--profile")
      profile = true;
    else if (a == "--shapes" && i + 1 < argc)
      shapeNames = split(argv[++i]);
    else if (a == "--tokens" && i + 1 < argc) {
      tokens.clear();
      for (auto &t : split(argv[++i]))
        tokens.push_back(std::atoll(t.c_str()));
    } else {
      std::fprintf(stderr, "usage: moe-gpu-bench [--reps N] [--shapes "
                           "mixtral,qwen3,kimi,tiny] "
                           "[--tokens 1,16,256,4096] [--profile]\n");
      return 2;
    }
  }
  const Shape shapes[] = {{"mixtral", 4096, 14336, 8, 2},
                          {"qwen3", 2048, 768, 128, 8},
                          {"kimi", 7168, 2048, 384, 8},
                          {"tiny", 256, 128, 8, 2}};
  for (const std::string &name : shapeNames)
    if (std::none_of(std::begin(shapes), std::end(shapes),
                     [&](const Shape &s) { return name == s.name; })) {
      std::fprintf(stderr,
                   "moe-gpu-bench: unknown shape '%s' (mixtral, qwen3, "
                   "kimi, tiny)\n",
                   name.c_str());
      return 2;
    }
  for (int64_t t : tokens)
    if (t < 1) {
      std::fprintf(stderr, "moe-gpu-bench: expected token counts >= 1, "
                           "found %lld\n",
                   static_cast<long long>(t));
      return 2;
    }
  if (reps < 1) {
    std::fprintf(stderr, "moe-gpu-bench: expected --reps >= 1, found %d\n",
                 reps);
    return 2;
  }
  if (profile && !std::getenv("MOE_CUDA_PROFILE")) {
    std::fprintf(stderr, "moe-gpu-bench: --profile reports the kernel times "
                         "that MOE_CUDA_PROFILE records; set it (1: to "
                         "stderr)\n");
    return 2;
  }
  std::string device = initDevice("moe-gpu-bench");
  std::printf("device: %s\n", device.c_str());
  // The GEMMs of moe_gpu_expert_ffn_enqueue: wgmma on compute capability
  // 9.0, where the mma.sync kernels are timed too (MOE_GPU_WGMMA=0).
  bool wgmma = kernelsUseWgmma();
  std::printf("tensor-core GEMMs: %s\n",
              wgmma ? "wgmma (sm_90a), mma.sync timed alongside" : "mma.sync");
  std::string error;
  haveBlas = blas.open(error);
  if (!haveBlas)
    std::printf("cuBLAS: not measured (%s)\n", error.c_str());

  CUstream stream;
  CU_CHECK(cu().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  // A cuBLAS that loads but does not start (a driver it does not support,
  // the emulator) leaves its columns out rather than the whole run.
  if (haveBlas) {
    cublasStatus_t st = blas.cublasCreate(&handle);
    if (st != CUBLAS_STATUS_SUCCESS) {
      std::printf("cuBLAS: not measured (cublasCreate failed: status %d)\n",
                  static_cast<int>(st));
      haveBlas = false;
    } else {
      checkBlas(blas.cublasSetStream(handle, stream), "cublasSetStream");
    }
  }

  DeviceArray<uint32_t> l2(64u << 20); // 256 MiB
  auto flush = [&] {
    CU_CHECK(cu().cuMemsetD32Async(l2.ptr, 0, l2.count, stream));
  };

  // Memory bandwidth: read + write of a 2 GiB copy.
  double copyGBs;
  {
    size_t bytes = size_t(2) << 30;
    DeviceArray<uint8_t> a(bytes), b(bytes);
    double ms = timeMs(stream, 10, flush, [&] {
      CU_CHECK(cu().cuMemcpyDtoDAsync(b.ptr, a.ptr, bytes, stream));
    });
    copyGBs = 2.0 * bytes / ms * 1e-6;
    std::printf("copy: 2 GiB device to device in %.3f ms: %.0f GB/s (read + "
                "write)\n",
                ms, copyGBs);
  }

  Random random(1234);
  DeviceArray<uint16_t> pool(size_t(32) << 20);
  pool.upload(randomBF16(random, pool.count, 1.0 / 64));

  std::vector<Row> results;
  std::vector<std::string> selectionRows;
  if (!profile)
    std::printf(
        "\n| shape | T | rows | experts used | layer ms | experts ms | "
        "experts TFLOP/s | experts GB/s (of copy) | graph layer ms | graph "
        "experts ms | layer host us | dependent-launch layer ms | "
        "dependent-launch experts ms | graph dependent-launch experts ms | "
        "mma.sync experts "
        "ms | wgmma 128x128 experts ms | wgmma 128x128 6-stage experts ms | "
        "wgmma 64x128 8-stage experts ms | wgmma 128x256 experts ms | "
        "columns-fastest experts ms | "
        "other path ms | other down GEMV ms | cublas-loop ms | "
        "cublas-grouped ms | experts / grouped |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        "---|---|---|---|---|---|---|---|\n");
  for (const Shape &s : shapes) {
    if (std::find(shapeNames.begin(), shapeNames.end(), s.name) ==
        shapeNames.end())
      continue;
    int64_t d = s.d, f = s.f, E = s.E, k = s.k;
    int64_t maxT = *std::max_element(tokens.begin(), tokens.end());
    DeviceArray<uint16_t> wr(E * d), wg(E * f * d), wu(E * f * d),
        wd(E * d * f), x(maxT * d), xp(maxT * k * d), h(maxT * k * f),
        hu(maxT * k * f);
    DeviceArray<float> y(maxT * d), rows(maxT * k * d);
    DeviceArray<int32_t> off(E + 1);
    // Router weights and tokens at scales that spread the routing.
    Random routerValues(7), tokenValues(8);
    wr.upload(randomBF16(routerValues, wr.count, 2.0 / std::sqrt(double(d))));
    x.upload(randomBF16(tokenValues, x.count, 1.0));
    fillFromPool(wg.ptr, wg.count, pool, 1, stream);
    fillFromPool(wu.ptr, wu.count, pool, 2, stream);
    fillFromPool(wd.ptr, wd.count, pool, 3, stream);
    fillFromPool(xp.ptr, xp.count, pool, 4, stream);
    CU_CHECK(cu().cuStreamSynchronize(stream));

    for (int64_t T : tokens) {
      Row r;
      r.shape = s.name;
      r.T = T;
      moe_gpu_layer_dims dims{T, d, f, E, k};
      // The layer with `routing` (NULL: the default, top-k dropless).
      auto enqueue = [&](const moe_gpu_routing *routing) {
        if (moe_gpu_layer_enqueue(&dims, routing, x.get(), wr.get(), wg.get(),
                                  wu.get(), wd.get(), /*shared=*/nullptr,
                                  off.get(),
                                  /*dropped=*/nullptr, y.get(), stream)) {
          std::fprintf(stderr, "moe-gpu-bench: %s\n", moe_gpu_last_error());
          std::exit(1);
        }
      };
      auto layer = [&] { enqueue(nullptr); };
      if (profile) {
        profileCalls(stream, reps, flush, layer, s.name, T, "the layer");
        std::vector<int32_t> o = off.download();
        moe_gpu_layer_dims grouped{o[E], d, f, E, 0};
        profileCalls(
            stream, reps, flush,
            [&] {
              if (moe_gpu_expert_ffn_enqueue(&grouped, xp.get(), wg.get(),
                                             wu.get(), wd.get(), off.get(),
                                             rows.get(), stream)) {
                std::fprintf(stderr, "moe-gpu-bench: %s\n",
                             moe_gpu_last_error());
                std::exit(1);
              }
            },
            s.name, T, "the experts");
        continue;
      }
      r.layer = timeMs(stream, reps, flush, layer);
      CU_CHECK(cu().cuStreamSynchronize(stream));
      r.layerGraph = T <= 16 ? graphMs(stream, reps, flush, layer) : -1;
      if (T <= 16)
        r.layerHostUs = hostUs(stream, reps, layer);
      r.layerDependent = withEnv("MOE_GPU_DEPENDENT_LAUNCH", "1", [&] {
        return timeMs(stream, reps, flush, layer);
      });
      // Prefill: the selections that rank, through the same layer.
      if (T >= 256) {
        moe_gpu_routing ec = moe_gpu_routing_default();
        ec.selection = MOE_GPU_SELECT_EXPERT_CHOICE;
        ec.renormalize = 0;
        moe_gpu_routing score = moe_gpu_routing_default();
        score.capacity = (T * k + E - 1) / E;
        score.drop_order = MOE_GPU_DROP_SCORE;
        moe_gpu_routing choice = score;
        choice.drop_order = MOE_GPU_DROP_CHOICE_MAJOR;
        const std::pair<const char *, moe_gpu_routing> variants[] = {
            {"top_k (dropless)", moe_gpu_routing_default()},
            {"expert_choice", ec},
            {"capacity score", score},
            {"capacity choice_major", choice}};
        for (const auto &[what, routing] : variants) {
          double ms = timeMs(stream, reps, flush, [&] { enqueue(&routing); });
          double oneBlock =
              withEnv("MOE_GPU_PERMUTATION_SLOTS", "999999999", [&] {
                return timeMs(stream, reps, flush,
                              [&] { enqueue(&routing); });
              });
          char line[200];
          std::snprintf(line, sizeof(line),
                        "| %s | %lld | %s | %.3f | %.3f | %.3f |", s.name,
                        (long long)T, what, ms, ms / r.layer, oneBlock);
          selectionRows.push_back(line);
        }
        // The dropless layer's offsets again, for the rows below.
        layer();
        CU_CHECK(cu().cuStreamSynchronize(stream));
      }
      std::vector<int32_t> o = off.download();
      r.rows = o[E];
      r.active = 0;
      for (int64_t e = 0; e < E; ++e)
        r.active += o[e + 1] > o[e];

      moe_gpu_layer_dims grouped{r.rows, d, f, E, 0};
      auto experts = [&] {
        if (moe_gpu_expert_ffn_enqueue(&grouped, xp.get(), wg.get(), wu.get(),
                                       wd.get(), off.get(), rows.get(),
                                       stream)) {
          std::fprintf(stderr, "moe-gpu-bench: %s\n", moe_gpu_last_error());
          std::exit(1);
        }
      };
      auto timeExperts = [&] { return timeMs(stream, reps, flush, experts); };
      // The experts with the kernel library's choices set to `settings`,
      // recorded as a variant of the row.
      auto expertsWith = [&](const std::string &settings) {
        double ms = withSettings(settings, timeExperts);
        r.variants.push_back({ms, settings});
        return ms;
      };
      r.experts = timeExperts();
      r.expertsGraph = T <= 16 ? graphMs(stream, reps, flush, experts) : -1;
      r.expertsMma = r.expertsWide = r.expertsDeep = r.expertsDeepNarrow =
          r.expertsWider = r.expertsColumns = r.expertsOther =
              r.expertsPairing = -1;
      if (wgmma)
        r.expertsMma = expertsWith("MOE_GPU_WGMMA=0");
      r.expertsDependent = expertsWith("MOE_GPU_DEPENDENT_LAUNCH=1");
      if (T <= 16)
        r.expertsGraphDependent = withEnv("MOE_GPU_DEPENDENT_LAUNCH", "1", [&] {
          return graphMs(stream, reps, flush, experts);
        });
      // The wgmma variants wherever the experts take the tensor cores:
      // prefill, and decoding steps above the GEMV's rows (Mixtral-like at
      // T = 16), which stream their weights through the same pipeline.
      bool tensorCores = r.rows > kernelsGemvMaxRows(E);
      if (wgmma && tensorCores) {
        r.expertsWide = expertsWith("MOE_GPU_WGMMA_ROWS=128");
        r.expertsDeep =
            expertsWith("MOE_GPU_WGMMA_ROWS=128 MOE_GPU_WGMMA_STAGES=6");
        r.expertsDeepNarrow = expertsWith("MOE_GPU_WGMMA_STAGES=8");
        r.expertsWider =
            expertsWith("MOE_GPU_WGMMA_ROWS=128 MOE_GPU_WGMMA_COLS=256");
      }
      if (T >= 256)
        r.expertsColumns = expertsWith("MOE_GPU_GEMM_GROUP=1");
      // Decoding: the path the row threshold did not take, to place it.
      if (T <= 16) {
        bool gemv = r.rows <= kernelsGemvMaxRows(E);
        r.otherPath = gemv ? " (tensor cores)" : " (gemv)";
        std::string rows = gemv ? "0" : std::to_string(r.rows);
        r.expertsOther = expertsWith("MOE_GPU_GEMV_ROWS=" + rows);
        // The down projection's GEMV (rows of f bf16) on the kernel the
        // runtime did not pick.
        if (gemv) {
          bool pairs = kernelsGemvPairs(f * 2);
          r.pairingPath = pairs ? " (one column)" : " (pairs)";
          r.expertsPairing = expertsWith(pairs ? "MOE_GPU_GEMV_PAIRS=0"
                                               : "MOE_GPU_GEMV_PAIRS=1");
        }
      }

      r.loop = r.grouped = -1;
      if (haveBlas) {
        // Row-major X [n, d] times W[e]^T ([f, d] row-major) is, in
        // cuBLAS's column-major terms, C [f, n] = W^T(op T) [f, d] * X [d, n].
        const float one = 1.0f, zero = 0.0f;
        auto gemm = [&](int m, int n, int kk, CUdeviceptr a, CUdeviceptr b,
                        CUdeviceptr c, cudaDataType ct) {
          checkBlas(blas.cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n,
                                      kk, &one, (void *)a, CUDA_R_16BF, kk,
                                      (void *)b, CUDA_R_16BF, kk, &zero,
                                      (void *)c, ct, m, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT),
                    "cublasGemmEx");
        };
        r.loop = timeMs(stream, reps, flush, [&] {
          for (int64_t e = 0; e < E; ++e) {
            int n = o[e + 1] - o[e];
            if (!n)
              continue;
            CUdeviceptr xe = xp.ptr + size_t(o[e]) * d * 2;
            CUdeviceptr he = h.ptr + size_t(o[e]) * f * 2;
            CUdeviceptr ue = hu.ptr + size_t(o[e]) * f * 2;
            gemm(f, n, d, wg.ptr + size_t(e) * f * d * 2, xe, he, CUDA_R_16BF);
            gemm(f, n, d, wu.ptr + size_t(e) * f * d * 2, xe, ue, CUDA_R_16BF);
            gemm(d, n, f, wd.ptr + size_t(e) * d * f * 2, he,
                 rows.ptr + size_t(o[e]) * d * 4, CUDA_R_32F);
          }
        });

        // Grouped: one group of one problem per non-empty expert.
        std::vector<int> ns, size;
        std::vector<cublasOperation_t> ta, tb;
        std::vector<float> alpha, beta;
        std::vector<const void *> ag, au, ad, bx, bh;
        std::vector<void *> cg, cup, cd;
        for (int64_t e = 0; e < E; ++e) {
          int n = o[e + 1] - o[e];
          if (!n)
            continue;
          ns.push_back(n);
          ta.push_back(CUBLAS_OP_T);
          tb.push_back(CUBLAS_OP_N);
          alpha.push_back(1.0f);
          beta.push_back(0.0f);
          size.push_back(1);
          ag.push_back((void *)(wg.ptr + size_t(e) * f * d * 2));
          au.push_back((void *)(wu.ptr + size_t(e) * f * d * 2));
          ad.push_back((void *)(wd.ptr + size_t(e) * d * f * 2));
          bx.push_back((void *)(xp.ptr + size_t(o[e]) * d * 2));
          bh.push_back((void *)(h.ptr + size_t(o[e]) * f * 2));
          cg.push_back((void *)(h.ptr + size_t(o[e]) * f * 2));
          cup.push_back((void *)(hu.ptr + size_t(o[e]) * f * 2));
          cd.push_back((void *)(rows.ptr + size_t(o[e]) * d * 4));
        }
        int groups = static_cast<int>(ns.size());
        auto toDevice = [&](const auto &v) {
          DeviceArray<uint64_t> a(v.size());
          std::vector<uint64_t> bits(v.size());
          std::memcpy(bits.data(), v.data(), v.size() * 8);
          a.upload(bits);
          return a;
        };
        DeviceArray<uint64_t> dag = toDevice(ag), dau = toDevice(au),
                              dad = toDevice(ad), dbx = toDevice(bx),
                              dbh = toDevice(bh), dcg = toDevice(cg),
                              dcu = toDevice(cup), dcd = toDevice(cd);
        std::vector<int> fs(groups, int(f)), ds(groups, int(d));
        // C[g] = A[g]^T B[g] for every group g: m x n outputs, k deep.
        auto groupedGemm =
            [&](const std::vector<int> &m, const std::vector<int> &kk,
                const DeviceArray<uint64_t> &a, const DeviceArray<uint64_t> &b,
                const DeviceArray<uint64_t> &c, cudaDataType ct) {
              return blas.cublasGemmGroupedBatchedEx(
                  handle, ta.data(), tb.data(), m.data(), ns.data(), kk.data(),
                  alpha.data(), (const void *const *)a.get(), CUDA_R_16BF,
                  kk.data(), (const void *const *)b.get(), CUDA_R_16BF,
                  kk.data(), beta.data(), (void *const *)c.get(), ct, m.data(),
                  groups, size.data(), CUBLAS_COMPUTE_32F);
            };
        // Gate, up, down.
        auto grouped3 = [&](cudaDataType downType) {
          cublasStatus_t st = groupedGemm(fs, ds, dag, dbx, dcg, CUDA_R_16BF);
          if (st == CUBLAS_STATUS_SUCCESS)
            st = groupedGemm(fs, ds, dau, dbx, dcu, CUDA_R_16BF);
          if (st == CUBLAS_STATUS_SUCCESS)
            st = groupedGemm(ds, fs, dad, dbh, dcd, downType);
          return st;
        };
        // The down projection's output as ours (f32) where cuBLAS takes it,
        // else bf16 (fewer bytes written than ours).
        cudaDataType downType = CUDA_R_32F;
        cublasStatus_t st = grouped3(downType);
        if (st == CUBLAS_STATUS_NOT_SUPPORTED ||
            st == CUBLAS_STATUS_INVALID_VALUE) {
          downType = CUDA_R_16BF;
          r.groupedNote = " grouped down output bf16";
          st = grouped3(downType);
        }
        if (st != CUBLAS_STATUS_SUCCESS) {
          r.groupedNote = " cublasGemmGroupedBatchedEx: status " +
                          std::to_string(static_cast<int>(st));
        } else {
          r.grouped = timeMs(stream, reps, flush, [&] {
            checkBlas(grouped3(downType), "cublasGemmGroupedBatchedEx");
          });
        }
        CU_CHECK(cu().cuStreamSynchronize(stream));
      }
      printRow(r, copyGBs, d, f);
      r.d = d;
      r.f = f;
      results.push_back(r);
    }
  }
  if (!profile)
    printTargets(results, copyGBs);
  if (!selectionRows.empty()) {
    std::printf("\nSelections that rank (the whole layer; C = ceil(T k / E)),"
                " and each layer with its permutation on one block:\n\n"
                "| shape | T | selection | layer ms | / top-k layer | "
                "one-block permutation ms |\n"
                "|---|---|---|---|---|---|\n");
    for (const std::string &line : selectionRows)
      std::printf("%s\n", line.c_str());
  }
  if (haveBlas)
    blas.cublasDestroy(handle);
  CU_CHECK(cu().cuStreamDestroy(stream));
  return 0;
}
