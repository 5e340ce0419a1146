//===- LoadMetrics.h - derived metrics of expert load ------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The metrics of docs/monitoring.md ("Metrics") from a layer's counts; no
// dependency beyond the standard library, so that tools reading statistics
// files compute exactly what the runtime does.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_LOADMETRICS_H
#define MOE_RUNTIME_LOADMETRICS_H

#include <cstdint>
#include <vector>

namespace moe::rt {

/// All 0 when the layer has no assignments.
struct LoadMetrics {
  double meanExpertsPerToken = 0;
  double meanLoad = 0;
  double maxLoad = 0;
  double maxLoadRatio = 0;
  double loadCV = 0;
  double normalizedEntropy = 0;
  double jainFairness = 0;
  double dropRate = 0;
};

/// The metrics of `assignments` and `dropped` per expert over `tokens`.
LoadMetrics computeMetrics(const std::vector<int64_t> &assignments,
                           const std::vector<int64_t> &dropped,
                           int64_t tokens);

} // namespace moe::rt

#endif // MOE_RUNTIME_LOADMETRICS_H
