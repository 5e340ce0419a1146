//===- Stats.h - expert statistics: snapshots, metrics, exports -*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// What the runtime's counters say about a model's layers: a consistent
// snapshot of every layer that ran, the derived load metrics of
// docs/monitoring.md, and the JSON and Prometheus text forms of a snapshot.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_STATS_H
#define MOE_RUNTIME_STATS_H

#include "LoadMetrics.h"
#include "Model.h"

#include <string>
#include <vector>

namespace moe::rt {

LoadMetrics computeMetrics(const Counters &counters);

struct LayerStats {
  std::string function;
  Counters counters;
  LoadMetrics metrics;
};

/// Every layer that was called at least once, in compilation order, with
/// all counters read at one instant.
std::vector<LayerStats> snapshotStats(const Model &model);

/// The snapshot format of docs/monitoring.md, on one line.
std::string statsToJSON(const std::vector<LayerStats> &layers);
/// The Prometheus text exposition format (version 0.0.4).
std::string statsToPrometheus(const std::vector<LayerStats> &layers);

} // namespace moe::rt

#endif // MOE_RUNTIME_STATS_H
