//===- PlacementTest.cpp - expert placement on devices --------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Planted co-activation groups must be found, small instances are checked
// against exhaustive search, and the bounds hold at the edges.
//
//===----------------------------------------------------------------------===//

#include "moe/Placement/Placement.h"

#include "gtest/gtest.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>

using namespace mlir::moe::placement;

namespace {

/// E = 16 experts in four groups of four contiguous experts that co-activate
/// strongly within the group and weakly across groups. Round robin (e mod 4)
/// puts every member of a group on a different device. Group loads are equal,
/// but the loads inside a group are skewed so that round robin is also
/// unbalanced: device d gets the d-th member of every group.
LayerStats plantedGroups() {
  LayerStats stats;
  const int64_t memberLoad[4] = {40, 30, 20, 10};
  // Group 1 shifts one unit from its lightest member to its heaviest.
  for (unsigned e = 0; e < 16; ++e)
    stats.loads.push_back(memberLoad[e % 4] + (e == 4 ? 1 : 0) -
                          (e == 7 ? 1 : 0));
  for (unsigned i = 0; i < 16; ++i)
    for (unsigned j = i + 1; j < 16; ++j) {
      if (i / 4 == j / 4)
        stats.coactivation.push_back({i, j, int64_t(50 + (i * 7 + j) % 13)});
      else if ((i + 2 * j) % 5 == 0)
        stats.coactivation.push_back({i, j, int64_t(1 + (i + j) % 3)});
    }
  return stats;
}

/// Checks the bounds and that loads, cut and ratio match the assignment.
void expectConsistent(const LayerStats &stats, const PlacementOptions &options,
                      const Placement &p) {
  unsigned numExperts = stats.loads.size();
  ASSERT_EQ(p.deviceOfExpert.size(), numExperts);
  std::vector<unsigned> count(options.numDevices, 0);
  for (unsigned d : p.deviceOfExpert) {
    ASSERT_LT(d, options.numDevices);
    ++count[d];
  }
  for (unsigned c : count)
    EXPECT_LE(c, maxExpertsPerDevice(numExperts, options));
  Placement again = evaluate(stats, options.numDevices, p.deviceOfExpert);
  EXPECT_EQ(p.deviceLoad, again.deviceLoad);
  EXPECT_EQ(p.cut, again.cut);
  EXPECT_DOUBLE_EQ(p.maxLoadRatio, again.maxLoadRatio);
}

int64_t total(const std::vector<int64_t> &xs) {
  int64_t sum = 0;
  for (int64_t x : xs)
    sum += x;
  return sum;
}

TEST(PlacementTest, RecoversPlantedGroups) {
  LayerStats stats = plantedGroups();
  PlacementOptions options;
  options.numDevices = 4;
  ASSERT_EQ(checkStats(stats), "");
  ASSERT_EQ(checkOptions(16, options), "");

  Placement robin = roundRobin(stats, 4);
  Placement placed = place(stats, options);
  expectConsistent(stats, options, placed);

  // Every group on one device, each device one group.
  std::set<unsigned> used;
  for (unsigned g = 0; g < 4; ++g) {
    unsigned d = placed.deviceOfExpert[4 * g];
    for (unsigned m = 1; m < 4; ++m)
      EXPECT_EQ(placed.deviceOfExpert[4 * g + m], d) << "group " << g;
    used.insert(d);
  }
  EXPECT_EQ(used.size(), 4u);

  // The cut is then exactly the cross-group noise.
  int64_t noise = 0;
  for (const Coactivation &c : stats.coactivation)
    if (c.first / 4 != c.second / 4)
      noise += c.count;
  EXPECT_EQ(placed.cut, noise);
  EXPECT_LT(placed.cut, robin.cut);
  EXPECT_LE(placed.maxLoad(), robin.maxLoad());
  EXPECT_EQ(placed.maxLoad(), 100);
  EXPECT_EQ(robin.maxLoad(), 161);
  EXPECT_DOUBLE_EQ(robin.maxLoadRatio, 1.61);
}

TEST(PlacementTest, Deterministic) {
  LayerStats stats = plantedGroups();
  PlacementOptions options;
  options.numDevices = 4;
  Placement first = place(stats, options);
  Placement second = place(stats, options);
  EXPECT_EQ(first.deviceOfExpert, second.deviceOfExpert);
  // The input order of the pairs does not matter either.
  std::reverse(stats.coactivation.begin(), stats.coactivation.end());
  EXPECT_EQ(place(stats, options).deviceOfExpert, first.deviceOfExpert);
}

TEST(PlacementTest, PlantedGroupsUnderPermutation) {
  // The same groups with scrambled expert numbers: the result must not lean
  // on neighboring indices.
  LayerStats planted = plantedGroups();
  auto rename = [](unsigned e) { return (e * 5 + 3) % 16; };
  LayerStats stats;
  stats.loads.assign(16, 0);
  for (unsigned e = 0; e < 16; ++e)
    stats.loads[rename(e)] = planted.loads[e];
  for (const Coactivation &c : planted.coactivation) {
    unsigned i = rename(c.first), j = rename(c.second);
    stats.coactivation.push_back({std::min(i, j), std::max(i, j), c.count});
  }
  PlacementOptions options;
  options.numDevices = 4;
  Placement placed = place(stats, options);
  expectConsistent(stats, options, placed);
  for (unsigned g = 0; g < 4; ++g)
    for (unsigned m = 1; m < 4; ++m)
      EXPECT_EQ(placed.deviceOfExpert[rename(4 * g + m)],
                placed.deviceOfExpert[rename(4 * g)]);
  EXPECT_EQ(placed.cut, place(planted, options).cut);
}

/// A small pseudo-random instance from a fixed linear congruential stream.
LayerStats smallInstance(unsigned numExperts, uint64_t seed) {
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  auto next = [&](uint64_t range) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return int64_t((state >> 33) % range);
  };
  LayerStats stats;
  for (unsigned e = 0; e < numExperts; ++e)
    stats.loads.push_back(1 + next(seed % 3 == 0 ? 100 : 20));
  for (unsigned i = 0; i < numExperts; ++i)
    for (unsigned j = i + 1; j < numExperts; ++j)
      if (next(4) != 0)
        stats.coactivation.push_back({i, j, next(30)});
  return stats;
}

struct Optimum {
  int64_t bestMaxLoad = std::numeric_limits<int64_t>::max();
  /// Smallest cut among placements within the load bound, if any.
  int64_t bestCut = std::numeric_limits<int64_t>::max();
};

/// Exhaustive search over all D^E assignments within the expert-count bound.
Optimum exhaustive(const LayerStats &stats, const PlacementOptions &options) {
  unsigned numExperts = stats.loads.size(), d = options.numDevices;
  unsigned capacity = maxExpertsPerDevice(numExperts, options);
  int64_t bound = loadBound(total(stats.loads), d, options.imbalance);
  Optimum best;
  std::vector<unsigned> device(numExperts, 0);
  for (;;) {
    std::vector<unsigned> count(d, 0);
    for (unsigned x : device)
      ++count[x];
    if (*std::max_element(count.begin(), count.end()) <= capacity) {
      Placement p = evaluate(stats, d, device);
      best.bestMaxLoad = std::min(best.bestMaxLoad, p.maxLoad());
      if (p.maxLoad() <= bound)
        best.bestCut = std::min(best.bestCut, p.cut);
    }
    unsigned k = 0;
    while (k < numExperts && ++device[k] == d)
      device[k++] = 0;
    if (k == numExperts)
      return best;
  }
}

TEST(PlacementTest, OptimalOnSmallInstances) {
  // E = 6 on 2 and 3 devices: whenever some placement meets the load bound,
  // ours does too and has the smallest cut among those that do.
  unsigned withinBound = 0;
  for (unsigned devices : {2u, 3u})
    for (uint64_t seed = 0; seed < 40; ++seed) {
      LayerStats stats = smallInstance(6, seed);
      PlacementOptions options;
      options.numDevices = devices;
      options.imbalance = seed % 2 ? 0.05 : 0.25;
      Optimum optimum = exhaustive(stats, options);
      Placement placed = place(stats, options);
      expectConsistent(stats, options, placed);
      int64_t bound = loadBound(total(stats.loads), devices, options.imbalance);
      if (optimum.bestMaxLoad <= bound) {
        ++withinBound;
        EXPECT_LE(placed.maxLoad(), bound) << "seed " << seed;
        EXPECT_EQ(placed.cut, optimum.bestCut) << "seed " << seed;
      } else {
        // No placement meets the bound: the max load comes first.
        EXPECT_EQ(placed.maxLoad(), optimum.bestMaxLoad) << "seed " << seed;
      }
    }
  // The instances exercise both cases.
  EXPECT_GT(withinBound, 10u);
  EXPECT_LT(withinBound, 80u);
}

TEST(PlacementTest, UnreachableBoundMinimizesMaxLoad) {
  // One expert outweighs the mean device load: with two experts per device
  // the best is 100 + 1.
  LayerStats stats;
  stats.loads = {100, 1, 1, 1};
  stats.coactivation = {{0, 3, 5}, {1, 2, 9}};
  PlacementOptions options;
  options.numDevices = 2;
  Placement placed = place(stats, options);
  expectConsistent(stats, options, placed);
  EXPECT_EQ(placed.maxLoad(), 101);
  EXPECT_EQ(placed.cut, 0);
  EXPECT_EQ(placed.deviceOfExpert[0], placed.deviceOfExpert[3]);
}

TEST(PlacementTest, LoadOnlyWithoutCoactivation) {
  LayerStats stats;
  stats.loads = {10, 1, 1, 8};
  PlacementOptions options;
  options.numDevices = 2;
  Placement placed = place(stats, options);
  EXPECT_EQ(placed.deviceLoad, (std::vector<int64_t>{11, 9}));
  EXPECT_EQ(placed.cut, 0);
  EXPECT_DOUBLE_EQ(placed.maxLoadRatio, 1.1);
}

TEST(PlacementTest, OneDevice) {
  LayerStats stats = plantedGroups();
  PlacementOptions options;
  options.numDevices = 1;
  Placement placed = place(stats, options);
  EXPECT_EQ(placed.deviceOfExpert, std::vector<unsigned>(16, 0));
  EXPECT_EQ(placed.deviceLoad, std::vector<int64_t>{total(stats.loads)});
  EXPECT_EQ(placed.cut, 0);
  EXPECT_DOUBLE_EQ(placed.maxLoadRatio, 1.0);
}

TEST(PlacementTest, OneExpertPerDevice) {
  LayerStats stats = plantedGroups();
  PlacementOptions options;
  options.numDevices = 16;
  Placement placed = place(stats, options);
  expectConsistent(stats, options, placed);
  std::set<unsigned> devices(placed.deviceOfExpert.begin(),
                             placed.deviceOfExpert.end());
  EXPECT_EQ(devices.size(), 16u);
  EXPECT_EQ(placed.cut, roundRobin(stats, 16).cut);
  EXPECT_EQ(placed.maxLoad(), 41);
}

TEST(PlacementTest, LooserExpertBound) {
  // With room for eight experts per device and a loose load bound, two
  // devices take two whole groups each.
  LayerStats stats = plantedGroups();
  PlacementOptions options;
  options.numDevices = 2;
  options.maxExpertsPerDevice = 8;
  options.imbalance = 0.5;
  Placement placed = place(stats, options);
  expectConsistent(stats, options, placed);
  for (unsigned e = 0; e < 16; ++e)
    EXPECT_EQ(placed.deviceOfExpert[e], placed.deviceOfExpert[e / 4 * 4]);
}

TEST(PlacementTest, ZeroLoads) {
  LayerStats stats;
  stats.loads = {0, 0, 0};
  PlacementOptions options;
  options.numDevices = 3;
  Placement placed = place(stats, options);
  EXPECT_EQ(placed.maxLoadRatio, 0.0);
  EXPECT_EQ(placed.deviceLoad, (std::vector<int64_t>{0, 0, 0}));
}

TEST(PlacementTest, RejectsBadProblems) {
  PlacementOptions options;
  options.numDevices = 0;
  EXPECT_EQ(checkOptions(4, options), "expected at least 1 device, found 0");
  options.numDevices = 5;
  EXPECT_EQ(checkOptions(4, options),
            "expected at most 4 devices (one per expert), found 5");
  options.numDevices = 2;
  options.maxExpertsPerDevice = 1;
  EXPECT_EQ(checkOptions(4, options),
            "2 devices of at most 1 experts each cannot hold 4 experts");
  options.maxExpertsPerDevice = 0;
  options.imbalance = -0.5;
  EXPECT_NE(checkOptions(4, options), "");

  LayerStats stats;
  stats.loads = {1, 2, 3};
  stats.coactivation = {{0, 2, 1}, {1, 1, 1}};
  EXPECT_EQ(checkStats(stats), "co-activation pair [1, 1] is not i < j < 3");
  stats.coactivation = {{0, 3, 1}};
  EXPECT_EQ(checkStats(stats), "co-activation pair [0, 3] is not i < j < 3");
  stats.coactivation = {{0, 2, -1}};
  EXPECT_EQ(checkStats(stats), "co-activation count of [0, 2] is negative");
  stats.coactivation = {{0, 2, 1}, {1, 2, 1}, {0, 2, 4}};
  EXPECT_EQ(checkStats(stats), "co-activation pair [0, 2] is listed twice");
  stats.coactivation.clear();
  stats.loads = {1, -2};
  EXPECT_EQ(checkStats(stats), "load of expert 1 is negative (-2)");
  stats.loads = {int64_t(1) << 52, int64_t(1) << 52, 1};
  EXPECT_EQ(checkStats(stats), "the loads sum to more than 2^53");
}

TEST(PlacementTest, LoadBound) {
  EXPECT_EQ(loadBound(100, 1, 0.05), 105);
  EXPECT_EQ(loadBound(400, 4, 0.05), 105);
  EXPECT_EQ(loadBound(10, 3, 0.0), 3);
  EXPECT_EQ(loadBound(0, 3, 0.05), 0);
}

} // namespace
