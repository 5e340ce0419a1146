//===- KernelChoices.cpp - The kernel library's run-time choices ----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The choices of the CUDA kernel library that depend on the environment
// alone, compiled into both the CUDA runtime and the SIMT emulator, so
// that the two read them the same way. moe_gpu_use_wgmma, which also asks
// the device, is each library's own; so is failKernelChoice, which reports
// a bad setting in the library's words.
//
//===----------------------------------------------------------------------===//

#include "KernelChoices.h"

#define MOE_CHOICE_EXPORT extern "C" __attribute__((visibility("default")))

using namespace moe::rt::cuda;

/// The rows of the tiles of the kernel library's wgmma GEMMs: 64 (one
/// warpgroup a block) unless MOE_GPU_WGMMA_ROWS=128 (two).
MOE_CHOICE_EXPORT int32_t moe_gpu_wgmma_rows() {
  return readChoice("moe_gpu_wgmma_rows", wgmmaRows);
}

/// The weight rows of the blocks of the kernel library's wgmma GEMMs: 128
/// unless MOE_GPU_WGMMA_COLS=256.
MOE_CHOICE_EXPORT int32_t moe_gpu_wgmma_cols() {
  return readChoice("moe_gpu_wgmma_cols", wgmmaCols);
}

/// The k steps in shared memory of the kernel library's wgmma GEMMs on
/// tiles of `rows` x `cols`: 4, or MOE_GPU_WGMMA_STAGES where it fits.
MOE_CHOICE_EXPORT int32_t moe_gpu_wgmma_stages(int32_t rows, int32_t cols) {
  return static_cast<int32_t>(
      readChoice("moe_gpu_wgmma_stages", [&](std::string &bad) {
        return wgmmaStages(rows, cols, bad);
      }));
}

/// The tiles of a column that the kernel library's tensor-core GEMMs'
/// blocks take before the next column: 16, or MOE_GPU_GEMM_GROUP.
MOE_CHOICE_EXPORT int64_t moe_gpu_gemm_group() {
  return readChoice("moe_gpu_gemm_group", gemmGroup);
}

/// The most rows (over all groups of a call) for which the kernel
/// library's expert GEMMs take gemv_experts rather than the tensor cores:
/// max(16, 2 experts), or MOE_GPU_GEMV_ROWS.
MOE_CHOICE_EXPORT int64_t moe_gpu_gemv_max_rows(int64_t experts) {
  return readChoice("moe_gpu_gemv_max_rows", [&](std::string &bad) {
    return gemvMaxRows(experts, bad);
  });
}

/// Whether a GEMV without a gated activation on rows of `rowBytes` bytes
/// takes gemv_pairs: rows of at most 4 KiB, or MOE_GPU_GEMV_PAIRS.
MOE_CHOICE_EXPORT int32_t moe_gpu_gemv_pairs(int64_t rowBytes) {
  return readChoice("moe_gpu_gemv_pairs",
                    [&](std::string &bad) { return gemvPairs(rowBytes, bad); });
}

/// The grid's y (or z) for n blocks along y.
static int64_t gridSplit(const char *entry, int64_t n, bool z) {
  int64_t maxY = readChoice(entry, maxGridY);
  int64_t dims[2];
  splitGridY(n, maxY, dims[0], dims[1]);
  return dims[z];
}

MOE_CHOICE_EXPORT int64_t moe_gpu_grid_y(int64_t n) {
  return gridSplit("moe_gpu_grid_y", n, false);
}

MOE_CHOICE_EXPORT int64_t moe_gpu_grid_z(int64_t n) {
  return gridSplit("moe_gpu_grid_z", n, true);
}

/// The blocks of the dispatch's permutation for `slots` slots.
MOE_CHOICE_EXPORT int64_t moe_gpu_permutation_blocks(int64_t slots) {
  return readChoice("moe_gpu_permutation_blocks", [&](std::string &bad) {
    return permutationBlocks(slots, bad);
  });
}
