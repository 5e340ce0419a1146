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
// the SIMT emulator (each defines moe_gpu_use_wgmma and
// moe_gpu_gemv_max_rows, and reports a bad value its own way):
//
//   MOE_GPU_WGMMA=0|1       the sm_90a (wgmma) GEMMs off or on
//   MOE_GPU_GEMV_ROWS=N     gemv_experts for at most N rows (default
//                           max(16, 2 E)), the tensor-core GEMMs above
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CUDA_KERNELCHOICES_H
#define MOE_RUNTIME_CUDA_KERNELCHOICES_H

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

namespace moe::rt::cuda {

/// MOE_GPU_WGMMA: nullopt when unset or empty, else 0 or 1; any other value
/// is put in `bad` (and nullopt returned).
inline std::optional<int> wgmmaChoice(std::string &bad) {
  const char *env = std::getenv("MOE_GPU_WGMMA");
  std::string value = env ? env : "";
  if (value.empty())
    return std::nullopt;
  if (value == "0" || value == "1")
    return value == "1";
  bad = "MOE_GPU_WGMMA must be 0 or 1, found '" + value + "'";
  return std::nullopt;
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

} // namespace moe::rt::cuda

#endif // MOE_RUNTIME_CUDA_KERNELCHOICES_H
