//===- LoadMetrics.cpp - derived metrics of expert load -------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "LoadMetrics.h"

#include <algorithm>
#include <cmath>

using namespace moe::rt;

LoadMetrics moe::rt::computeMetrics(const std::vector<int64_t> &assignments,
                                    const std::vector<int64_t> &dropped,
                                    int64_t tokens) {
  LoadMetrics m;
  size_t numExperts = assignments.size();
  double total = 0, droppedTotal = 0, squares = 0, maxLoad = 0;
  for (size_t e = 0; e < numExperts; ++e) {
    double load = static_cast<double>(assignments[e]);
    total += load;
    droppedTotal += static_cast<double>(dropped[e]);
    squares += load * load;
    maxLoad = std::max(maxLoad, load);
  }
  if (total <= 0)
    return m;
  double experts = static_cast<double>(numExperts);
  m.meanExpertsPerToken =
      tokens > 0 ? total / static_cast<double>(tokens) : 0;
  m.meanLoad = total / experts;
  m.maxLoad = maxLoad;
  m.maxLoadRatio = maxLoad / m.meanLoad;
  double variance = 0, entropy = 0;
  for (size_t e = 0; e < numExperts; ++e) {
    double load = static_cast<double>(assignments[e]);
    variance += (load - m.meanLoad) * (load - m.meanLoad);
    if (load > 0) {
      double p = load / total;
      entropy -= p * std::log(p);
    }
  }
  m.loadCV = std::sqrt(variance / experts) / m.meanLoad;
  m.normalizedEntropy = numExperts > 1 ? entropy / std::log(experts) : 1.0;
  m.jainFairness = total * total / (experts * squares);
  m.dropRate = droppedTotal / total;
  return m;
}
