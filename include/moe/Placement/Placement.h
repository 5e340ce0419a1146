//===- Placement.h - placing the experts of a layer on devices --*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Assigns the E experts of one MoE layer to D devices from the statistics of
// a run: the load of each expert (its routed assignments) and, when recorded,
// how often two experts were chosen by the same token (co-activation).
//
// Every device holds at most `maxExpertsPerDevice` experts (a hard bound;
// ceil(E / D) by default, so that memory is balanced). Within that, the
// placement keeps the largest device load at or below
//
//   loadBound = floor((1 + imbalance) * totalLoad / D)
//
// and, under that bound, makes the co-activation cut (the co-activation
// counts of pairs on different devices) small. When the bound cannot be met,
// the largest device load is made as small as the load-only pass can, and the
// cut is minimized under that. See docs/monitoring.md, "Expert placement".
//
// Plain C++17: the graph algorithms come from Boost.Graph, inside the
// implementation only.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PLACEMENT_PLACEMENT_H
#define MOE_PLACEMENT_PLACEMENT_H

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::moe::placement {

/// Tokens that chose both `first` and `second` (first < second).
struct Coactivation {
  unsigned first = 0;
  unsigned second = 0;
  int64_t count = 0;
};

/// The statistics of one layer that a placement needs.
struct LayerStats {
  /// Load of each expert (>= 0); its size is the number of experts E.
  std::vector<int64_t> loads;
  /// Sparse co-activation counts: first < second < E, count >= 0, each pair
  /// at most once. Empty when not recorded.
  std::vector<Coactivation> coactivation;
};

struct PlacementOptions {
  unsigned numDevices = 1;
  /// At most this many experts per device; 0 means ceil(E / D).
  unsigned maxExpertsPerDevice = 0;
  /// Allowed excess of the largest device load over the mean (0.05 = 5%).
  double imbalance = 0.05;
};

/// A placement and what it achieves.
struct Placement {
  std::vector<unsigned> deviceOfExpert;
  std::vector<int64_t> deviceLoad;
  /// Sum of the co-activation counts of pairs on different devices.
  int64_t cut = 0;
  /// Largest device load over the mean device load (0 when all loads are 0).
  double maxLoadRatio = 0;

  int64_t maxLoad() const;
};

/// The expert-count bound in effect for `numExperts` experts.
unsigned maxExpertsPerDevice(unsigned numExperts,
                             const PlacementOptions &options);

/// floor((1 + imbalance) * totalLoad / numDevices), the balance bound.
int64_t loadBound(int64_t totalLoad, unsigned numDevices, double imbalance);

/// Why `options` admit no placement of `numExperts` experts (fewer than one
/// device, more devices than experts, an expert-count bound too small to hold
/// them all, a negative imbalance), or an empty string when they do.
std::string checkOptions(unsigned numExperts, const PlacementOptions &options);

/// Why `stats` are not valid (a negative load or count, a pair out of range,
/// out of order or repeated, totals beyond 2^53), or an empty string.
std::string checkStats(const LayerStats &stats);

/// Loads, cut and ratio of a given assignment of experts to devices.
Placement evaluate(const LayerStats &stats, unsigned numDevices,
                   std::vector<unsigned> deviceOfExpert);

/// The baseline: expert e on device e mod D.
Placement roundRobin(const LayerStats &stats, unsigned numDevices);

/// The placement described above. Deterministic: ties go to the lower index.
/// Requires checkStats(stats) and checkOptions(E, options) to be empty.
Placement place(const LayerStats &stats, const PlacementOptions &options);

} // namespace mlir::moe::placement

#endif // MOE_PLACEMENT_PLACEMENT_H
