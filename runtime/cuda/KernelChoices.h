//===- KernelChoices.h - The kernel library's run-time choices --*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The environment variables with which a user overrides the kernels the
// CUDA kernel library picks, read the same way by the CUDA runtime and by
// the SIMT emulator (KernelChoices.cpp, compiled into both, defines the
// moe_gpu_* functions that read them, but for moe_gpu_use_wgmma, which
// each library defines; each reports a bad value its own way):
//
//   MOE_GPU_WGMMA=0|1       the sm_90a (wgmma) GEMMs off or on
//   MOE_GPU_WGMMA_ROWS=64|128
//                           the rows of the wgmma GEMMs' tiles: one
//                           warpgroup a block (64, the default) or two
//   MOE_GPU_WGMMA_COLS=128|256
//                           the weight rows of the wgmma GEMMs' blocks,
//                           which the warpgroups share: 128 (the default)
//                           or 256 (the output columns of a block; half as
//                           many for the gated GEMM, gate and up)
//   MOE_GPU_WGMMA_STAGES=N  the k steps of the wgmma GEMMs' shared memory
//                           (3..8, default 4; the copies run N - 2 steps
//                           ahead), as many as the tile's fit in a block's
//                           227 KiB
//   MOE_GPU_GEMM_GROUP=N    the tiles of a column the tensor-core GEMMs'
//                           blocks take before the next column (default
//                           16; 1: the columns fastest, as launched)
//   MOE_GPU_GEMV_ROWS=N     gemv_experts for at most N rows (default
//                           max(16, 2 E)), the tensor-core GEMMs above
//   MOE_GPU_GEMV_PAIRS=0|1  those GEMVs without a gated activation on
//                           gemv_experts (one column a warp) or gemv_pairs
//                           (two); default: gemv_pairs for weight rows of
//                           at most 4 KiB
//   MOE_GPU_MAX_GRID_Y=N    at most N blocks in a grid's y dimension, the
//                           rest in z (default and largest 65535, the
//                           limit of every CUDA device; smaller values
//                           exercise the split in tests)
//   MOE_GPU_DEPENDENT_LAUNCH=0|1
//                           the kernels of modules compiled for sm_90 and
//                           newer launched with programmatic stream
//                           serialization, each overlapping its launch
//                           with the kernel before it (1), or not (0, the
//                           default); no effect on other devices, on other
//                           GPU code or in the emulator
//   MOE_GPU_PERMUTATION_SLOTS=N
//                           the slots a block of the dispatch's
//                           permutation takes (default 4096; one block,
//                           build_permutation, up to N slots, else the
//                           segmented kernels on ceil(slots / N) blocks, at
//                           most 1024)
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CUDA_KERNELCHOICES_H
#define MOE_RUNTIME_CUDA_KERNELCHOICES_H

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

namespace moe::rt::cuda {

/// The environment variable `name` that turns something off or on: nullopt
/// when it is unset or empty, else 0 or 1; any other value is put in `bad`
/// (and nullopt returned).
inline std::optional<int> switchChoice(const char *name, std::string &bad) {
  const char *env = std::getenv(name);
  std::string value = env ? env : "";
  if (value.empty())
    return std::nullopt;
  if (value == "0" || value == "1")
    return value == "1";
  bad = std::string(name) + " must be 0 or 1, found '" + value + "'";
  return std::nullopt;
}

/// MOE_GPU_WGMMA: nullopt when unset or empty, else 0 or 1; any other value
/// is put in `bad` (and nullopt returned).
inline std::optional<int> wgmmaChoice(std::string &bad) {
  return switchChoice("MOE_GPU_WGMMA", bad);
}

/// MOE_GPU_DEPENDENT_LAUNCH: 0 (off) when unset or empty, else 0 or 1; any
/// other value is put in `bad` (and 0 returned).
inline int32_t dependentLaunch(std::string &bad) {
  return switchChoice("MOE_GPU_DEPENDENT_LAUNCH", bad).value_or(0);
}

/// The value of the environment variable `name` that picks one of two
/// sizes: `first` when it is unset or empty, else `first` or `second` as
/// written. Any other value is put in `bad` (and `first` returned).
inline int32_t sizeChoice(const char *name, int32_t first, int32_t second,
                          std::string &bad) {
  const char *env = std::getenv(name);
  std::string value = env ? env : "";
  if (value.empty() || value == std::to_string(first))
    return first;
  if (value == std::to_string(second))
    return second;
  bad = std::string(name) + " must be " + std::to_string(first) + " or " +
        std::to_string(second) + ", found '" + value + "'";
  return first;
}

/// The rows of the wgmma GEMMs' tiles: MOE_GPU_WGMMA_ROWS, 64 (the
/// default) or 128.
inline int32_t wgmmaRows(std::string &bad) {
  return sizeChoice("MOE_GPU_WGMMA_ROWS", 64, 128, bad);
}

/// The weight rows of the wgmma GEMMs' blocks: MOE_GPU_WGMMA_COLS, 128 (the
/// default) or 256.
inline int32_t wgmmaCols(std::string &bad) {
  return sizeChoice("MOE_GPU_WGMMA_COLS", 128, 256, bad);
}

/// Whether a GEMV without a gated activation on weight rows of `rowBytes`
/// bytes takes gemv_pairs (two output columns a warp) rather than
/// gemv_experts: MOE_GPU_GEMV_PAIRS, 0 or 1, or, when it is unset or empty,
/// rows of at most 4 KiB (short rows make many short-lived blocks of one
/// column a warp). Any other value is put in `bad` (and the default
/// returned).
inline int32_t gemvPairs(int64_t rowBytes, std::string &bad) {
  return switchChoice("MOE_GPU_GEMV_PAIRS", bad).value_or(rowBytes <= 4096);
}

/// The environment variable `name` as an integer in `lo`..`limit` (lo >=
/// 0), or `fallback` when it is unset or empty. Any other value is put in
/// `bad` (and `fallback` returned).
inline int64_t boundedChoice(const char *name, int64_t fallback, int64_t lo,
                             int64_t limit, std::string &bad) {
  const char *env = std::getenv(name);
  std::string value = env ? env : "";
  if (value.empty())
    return fallback;
  // No more digits than the limit has, so the value fits before it is
  // range-checked.
  bool digits = value.size() <= std::to_string(limit).size() &&
                value.find_first_not_of("0123456789") == std::string::npos;
  int64_t v = digits ? std::strtoll(value.c_str(), nullptr, 10) : 0;
  if (!digits || v < lo || v > limit) {
    bad = std::string(name) + " must be an integer in " + std::to_string(lo) +
          ".." + std::to_string(limit) + ", found '" + value + "'";
    return fallback;
  }
  return v;
}

/// The tiles of a column that the tensor-core GEMMs' blocks take before
/// the next column: MOE_GPU_GEMM_GROUP in 1..65535 (1: the columns
/// fastest), or 16 when it is unset or empty. Any other value is put in
/// `bad` (and 16 returned).
inline int64_t gemmGroup(std::string &bad) {
  return boundedChoice("MOE_GPU_GEMM_GROUP", 16, 1, 65535, bad);
}

/// The most dynamic shared memory a block may opt in to on the devices that
/// run the wgmma GEMMs (compute capability 9.0): 227 KiB.
constexpr int64_t kWgmmaSharedLimit = 227 * 1024;

/// The dynamic shared memory of the wgmma GEMMs on tiles of `rows` rows and
/// `cols` weight rows with `stages` k steps of 64 in flight: a buffer of
/// (rows + cols) rows of 128 bytes a step, and 1 KiB to align the buffers
/// to 1024 bytes (@wgmma_shared_bytes of the kernel library computes the
/// same).
inline int64_t wgmmaSharedBytes(int64_t rows, int64_t cols, int64_t stages) {
  return (rows + cols) * 128 * stages + 1024;
}

/// The k steps that the wgmma GEMMs on tiles of `rows` x `cols` keep in
/// shared memory: MOE_GPU_WGMMA_STAGES in 3..8, or 4 when it is unset or
/// empty. A value out of range, or one whose buffers do not fit in
/// kWgmmaSharedLimit, is put in `bad` (and 4 returned; 4 fits every tile).
inline int64_t wgmmaStages(int64_t rows, int64_t cols, std::string &bad) {
  int64_t stages = boundedChoice("MOE_GPU_WGMMA_STAGES", 4, 3, 8, bad);
  int64_t bytes = wgmmaSharedBytes(rows, cols, stages);
  if (bad.empty() && bytes > kWgmmaSharedLimit)
    bad = "MOE_GPU_WGMMA_STAGES=" + std::to_string(stages) + " does not fit " +
          std::to_string(rows) + " x " + std::to_string(cols) +
          " wgmma tiles: " + std::to_string((bytes + 1023) / 1024) +
          " KiB of shared memory a block, at most " +
          std::to_string(kWgmmaSharedLimit / 1024);
  return bad.empty() ? stages : 4;
}

/// The most rows (over all groups) that gemv_experts takes instead of the
/// tensor-core kernels for `experts` experts: MOE_GPU_GEMV_ROWS, or
/// max(16, 2 experts), about two rows a group, when it is unset or empty.
/// A value that is not a non-negative integer is put in `bad` (and the
/// default returned).
inline int64_t gemvMaxRows(int64_t experts, std::string &bad) {
  int64_t fallback = experts * 2 > 16 ? experts * 2 : 16;
  const char *env = std::getenv("MOE_GPU_GEMV_ROWS");
  std::string value = env ? env : "";
  if (value.empty())
    return fallback;
  if (value.find_first_not_of("0123456789") != std::string::npos) {
    bad = "MOE_GPU_GEMV_ROWS must be a non-negative integer, found '" +
          value + "'";
    return fallback;
  }
  // Digits only; past the range, the largest count (every call a GEMV).
  return static_cast<int64_t>(std::strtoll(value.c_str(), nullptr, 10));
}

/// The most blocks a launch of the kernel library puts in the grid's y
/// dimension: MOE_GPU_MAX_GRID_Y in 1..65535, or 65535 when it is unset or
/// empty. Any other value is put in `bad` (and 65535 returned).
inline int64_t maxGridY(std::string &bad) {
  return boundedChoice("MOE_GPU_MAX_GRID_Y", 65535, 1, 65535, bad);
}

/// The blocks of the dispatch's permutation for `slots` slots: ceil(slots /
/// N) in 1..1024, N from MOE_GPU_PERMUTATION_SLOTS (a positive integer) or
/// 4096 when it is unset or empty. Any other value is put in `bad` (and
/// the default used).
inline int64_t permutationBlocks(int64_t slots, std::string &bad) {
  constexpr int64_t maxBlocks = 1024;
  int64_t per =
      boundedChoice("MOE_GPU_PERMUTATION_SLOTS", 4096, 1, 999999999, bad);
  int64_t blocks = slots <= 0 ? 1 : (slots + per - 1) / per;
  return blocks < maxBlocks ? blocks : maxBlocks;
}

/// The first bad setting among all the variables above, or an empty string
/// when every one is unset or valid (the stages checked against the tile
/// that MOE_GPU_WGMMA_ROWS and MOE_GPU_WGMMA_COLS pick). Programs call it
/// before their first GPU layer, so that a bad setting is an error they
/// report, not the abort of the kernel library's first read of it.
inline std::string kernelChoicesError() {
  std::string bad;
  wgmmaChoice(bad);
  int64_t rows = bad.empty() ? wgmmaRows(bad) : 0;
  int64_t cols = bad.empty() ? wgmmaCols(bad) : 0;
  if (bad.empty())
    wgmmaStages(rows, cols, bad);
  if (bad.empty())
    gemmGroup(bad);
  if (bad.empty())
    gemvMaxRows(1, bad);
  if (bad.empty())
    gemvPairs(0, bad);
  if (bad.empty())
    maxGridY(bad);
  if (bad.empty())
    permutationBlocks(1, bad);
  if (bad.empty())
    dependentLaunch(bad);
  return bad;
}

/// Reports a bad setting of `entry` and aborts: defined by each library that
/// compiles KernelChoices.cpp (the CUDA runtime, the emulator), in its own
/// words.
[[noreturn]] void failKernelChoice(const char *entry, const std::string &bad);

/// `read(bad)`, one of the readers above, for the library entry `entry`; a
/// bad setting goes to failKernelChoice.
template <typename Read> auto readChoice(const char *entry, Read read) {
  std::string bad;
  auto value = read(bad);
  if (!bad.empty())
    failKernelChoice(entry, bad);
  return value;
}

/// The grid's (y, z) for `n` blocks along y: y = min(n, maxY) and z =
/// ceil(n / y); (0, 0) for none.
inline void splitGridY(int64_t n, int64_t maxY, int64_t &y, int64_t &z) {
  if (n <= 0) {
    y = z = 0;
    return;
  }
  y = n < maxY ? n : maxY;
  z = (n + y - 1) / y;
}

} // namespace moe::rt::cuda

#endif // MOE_RUNTIME_CUDA_KERNELCHOICES_H
