//===- Placement.cpp - placing the experts of a layer on devices ----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Several starting placements (load-only, round robin, clusters of strongly
// co-activated experts) are each made to respect the bounds and then refined
// by Kernighan-Lin passes of moves and pair swaps; the one with the smallest
// cut wins. The co-activation graph is a Boost.Graph adjacency_list whose
// edge weights are the counts; the clusters come from its connected
// components and its maximum-weight spanning forest.
//
//===----------------------------------------------------------------------===//

#include "moe/Placement/Placement.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/connected_components.hpp>
#include <boost/graph/kruskal_min_spanning_tree.hpp>
#include <boost/property_map/function_property_map.hpp>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <tuple>
#include <utility>

using namespace mlir::moe::placement;

// Totals stay exact in a double and far from overflowing the gains.
static constexpr int64_t kMaxTotal = int64_t(1) << 53;

int64_t Placement::maxLoad() const {
  return deviceLoad.empty()
             ? 0
             : *std::max_element(deviceLoad.begin(), deviceLoad.end());
}

unsigned
mlir::moe::placement::maxExpertsPerDevice(unsigned numExperts,
                                          const PlacementOptions &options) {
  if (options.maxExpertsPerDevice != 0)
    return options.maxExpertsPerDevice;
  if (options.numDevices == 0)
    return numExperts;
  return (numExperts + options.numDevices - 1) / options.numDevices;
}

int64_t mlir::moe::placement::loadBound(int64_t totalLoad, unsigned numDevices,
                                        double imbalance) {
  long double bound = (long double)totalLoad * (1.0L + imbalance) / numDevices;
  // A bound that is an integer in exact arithmetic may come out a hair
  // below it.
  bound = std::floor(bound * (1.0L + 1e-12L));
  return bound >= (long double)kMaxTotal ? kMaxTotal : (int64_t)bound;
}

std::string
mlir::moe::placement::checkOptions(unsigned numExperts,
                                   const PlacementOptions &options) {
  unsigned devices = options.numDevices;
  if (devices < 1)
    return "expected at least 1 device, found 0";
  if (devices > numExperts)
    return "expected at most " + std::to_string(numExperts) +
           " devices (one per expert), found " + std::to_string(devices);
  if (!std::isfinite(options.imbalance) || options.imbalance < 0)
    return "expected an imbalance >= 0, found " +
           std::to_string(options.imbalance);
  uint64_t capacity = maxExpertsPerDevice(numExperts, options);
  if (capacity * devices < numExperts)
    return std::to_string(devices) + " devices of at most " +
           std::to_string(capacity) + " experts each cannot hold " +
           std::to_string(numExperts) + " experts";
  return "";
}

std::string mlir::moe::placement::checkStats(const LayerStats &stats) {
  size_t numExperts = stats.loads.size();
  int64_t total = 0;
  for (size_t e = 0; e < numExperts; ++e) {
    int64_t load = stats.loads[e];
    if (load < 0)
      return "load of expert " + std::to_string(e) + " is negative (" +
             std::to_string(load) + ")";
    if (load > kMaxTotal - total)
      return "the loads sum to more than 2^53";
    total += load;
  }
  std::vector<std::pair<unsigned, unsigned>> pairs;
  int64_t totalCount = 0;
  for (const Coactivation &c : stats.coactivation) {
    std::string pair =
        "[" + std::to_string(c.first) + ", " + std::to_string(c.second) + "]";
    if (c.first >= c.second || c.second >= numExperts)
      return "co-activation pair " + pair + " is not i < j < " +
             std::to_string(numExperts);
    if (c.count < 0)
      return "co-activation count of " + pair + " is negative";
    if (c.count > kMaxTotal - totalCount)
      return "the co-activation counts sum to more than 2^53";
    totalCount += c.count;
    pairs.emplace_back(c.first, c.second);
  }
  std::sort(pairs.begin(), pairs.end());
  auto repeated = std::adjacent_find(pairs.begin(), pairs.end());
  if (repeated != pairs.end())
    return "co-activation pair [" + std::to_string(repeated->first) + ", " +
           std::to_string(repeated->second) + "] is listed twice";
  return "";
}

Placement mlir::moe::placement::evaluate(const LayerStats &stats,
                                         unsigned numDevices,
                                         std::vector<unsigned> deviceOfExpert) {
  assert(deviceOfExpert.size() == stats.loads.size() &&
         "one device per expert");
  Placement result;
  result.deviceLoad.assign(numDevices, 0);
  int64_t total = 0;
  for (size_t e = 0; e < deviceOfExpert.size(); ++e) {
    assert(deviceOfExpert[e] < numDevices && "device out of range");
    result.deviceLoad[deviceOfExpert[e]] += stats.loads[e];
    total += stats.loads[e];
  }
  for (const Coactivation &c : stats.coactivation)
    if (deviceOfExpert[c.first] != deviceOfExpert[c.second])
      result.cut += c.count;
  if (total > 0)
    result.maxLoadRatio = (double)result.maxLoad() * numDevices / total;
  result.deviceOfExpert = std::move(deviceOfExpert);
  return result;
}

Placement mlir::moe::placement::roundRobin(const LayerStats &stats,
                                           unsigned numDevices) {
  std::vector<unsigned> device(stats.loads.size());
  for (size_t e = 0; e < device.size(); ++e)
    device[e] = e % numDevices;
  return evaluate(stats, numDevices, std::move(device));
}

//===----------------------------------------------------------------------===//
// The co-activation graph and a partition of it
//===----------------------------------------------------------------------===//

namespace {

struct CoactivationEdge {
  int64_t count;
  /// Position in (first, second) order: ties between equal counts go to the
  /// lower pair.
  unsigned index;
};

using Graph =
    boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS,
                          boost::no_property, CoactivationEdge>;
using GraphEdge = boost::graph_traits<Graph>::edge_descriptor;

Graph buildGraph(const LayerStats &stats) {
  std::vector<Coactivation> sorted;
  for (const Coactivation &c : stats.coactivation)
    if (c.count > 0)
      sorted.push_back(c);
  std::sort(sorted.begin(), sorted.end(),
            [](const Coactivation &a, const Coactivation &b) {
              return std::tie(a.first, a.second) < std::tie(b.first, b.second);
            });
  Graph graph(stats.loads.size());
  for (size_t k = 0; k < sorted.size(); ++k)
    boost::add_edge(sorted[k].first, sorted[k].second,
                    CoactivationEdge{sorted[k].count, unsigned(k)}, graph);
  return graph;
}

constexpr unsigned kNone = ~0u;

/// Experts on devices (possibly some not yet placed), with the per-device
/// loads and counts and, for each expert and device, the co-activation
/// between the expert and the device's experts, kept up to date so that a
/// move or swap is priced in constant time.
class Partition {
public:
  Partition(const Graph &graph, const std::vector<int64_t> &loads,
            unsigned numDevices)
      : graph(&graph), weight(&loads), numDevices(numDevices),
        device(loads.size(), kNone), load(numDevices, 0), count(numDevices, 0),
        link(loads.size() * numDevices, 0) {}

  unsigned size() const { return device.size(); }
  unsigned devices() const { return numDevices; }
  unsigned deviceOf(unsigned v) const { return device[v]; }
  int64_t loadOf(unsigned d) const { return load[d]; }
  unsigned countOf(unsigned d) const { return count[d]; }
  int64_t weightOf(unsigned v) const { return (*weight)[v]; }
  int64_t cut() const { return cutWeight; }
  const Graph &coactivation() const { return *graph; }
  const std::vector<unsigned> &assignment() const { return device; }

  /// Co-activation between `v` and the experts on device `d`.
  int64_t linkTo(unsigned v, unsigned d) const {
    return link[size_t(v) * numDevices + d];
  }

  /// The device with the largest load, the lowest of equals.
  unsigned heaviest() const {
    return std::max_element(load.begin(), load.end()) - load.begin();
  }
  int64_t maxLoad() const { return load[heaviest()]; }

  void put(unsigned v, unsigned d) {
    assert(device[v] == kNone && "expert already placed");
    for (auto [it, end] = boost::out_edges(v, *graph); it != end; ++it) {
      unsigned u = boost::target(*it, *graph);
      int64_t w = (*graph)[*it].count;
      link[size_t(u) * numDevices + d] += w;
      if (device[u] != kNone && device[u] != d)
        cutWeight += w;
    }
    device[v] = d;
    load[d] += (*weight)[v];
    ++count[d];
  }

  void take(unsigned v) {
    unsigned d = device[v];
    for (auto [it, end] = boost::out_edges(v, *graph); it != end; ++it) {
      unsigned u = boost::target(*it, *graph);
      int64_t w = (*graph)[*it].count;
      link[size_t(u) * numDevices + d] -= w;
      if (device[u] != kNone && device[u] != d)
        cutWeight -= w;
    }
    device[v] = kNone;
    load[d] -= (*weight)[v];
    --count[d];
  }

  void move(unsigned v, unsigned d) {
    take(v);
    put(v, d);
  }

  void swap(unsigned u, unsigned v) {
    unsigned du = device[u], dv = device[v];
    move(u, dv);
    move(v, du);
  }

  /// How much the cut drops when `v` moves to device `d`.
  int64_t moveGain(unsigned v, unsigned d) const {
    return linkTo(v, d) - linkTo(v, device[v]);
  }

private:
  // Pointers, not references, so that partitions can be copied and assigned.
  const Graph *graph;
  const std::vector<int64_t> *weight;
  unsigned numDevices;
  std::vector<unsigned> device;
  std::vector<int64_t> load;
  std::vector<unsigned> count;
  std::vector<int64_t> link;
  int64_t cutWeight = 0;
};

/// The co-activation of any two experts, for pricing swaps: each expert's
/// edges sorted by neighbor, searched by bisection.
class PairWeights {
public:
  explicit PairWeights(const Graph &graph)
      : neighbors(boost::num_vertices(graph)) {
    for (unsigned v = 0; v < neighbors.size(); ++v) {
      for (auto [it, end] = boost::out_edges(v, graph); it != end; ++it)
        neighbors[v].emplace_back(boost::target(*it, graph), graph[*it].count);
      std::sort(neighbors[v].begin(), neighbors[v].end());
    }
  }

  int64_t operator()(unsigned u, unsigned v) const {
    const auto &list = neighbors[u];
    auto it = std::lower_bound(list.begin(), list.end(),
                               std::make_pair(v, int64_t(0)));
    return it != list.end() && it->first == v ? it->second : 0;
  }

private:
  std::vector<std::vector<std::pair<unsigned, int64_t>>> neighbors;
};

/// The bounds a placement must respect.
struct Bounds {
  unsigned maxExperts;
  int64_t maxLoad;
};

//===----------------------------------------------------------------------===//
// Starting placements
//===----------------------------------------------------------------------===//

/// Experts by decreasing load, the lower index first among equals.
std::vector<unsigned> byDecreasingLoad(const std::vector<int64_t> &loads,
                                       std::vector<unsigned> experts) {
  std::stable_sort(experts.begin(), experts.end(),
                   [&](unsigned a, unsigned b) { return loads[a] > loads[b]; });
  return experts;
}

/// The least loaded device with room for one more expert.
unsigned leastLoadedWithRoom(const Partition &p, unsigned maxExperts) {
  unsigned best = kNone;
  for (unsigned d = 0; d < p.devices(); ++d)
    if (p.countOf(d) < maxExperts &&
        (best == kNone || p.loadOf(d) < p.loadOf(best)))
      best = d;
  assert(best != kNone && "the expert-count bound holds every expert");
  return best;
}

/// Longest processing time first: each expert, heaviest first, goes to the
/// least loaded device with room.
void placeByLoad(Partition &p, const std::vector<unsigned> &experts,
                 unsigned maxExperts) {
  std::vector<int64_t> loads(p.size());
  for (unsigned v : experts)
    loads[v] = p.weightOf(v);
  for (unsigned v : byDecreasingLoad(loads, experts))
    p.put(v, leastLoadedWithRoom(p, maxExperts));
}

/// Lowers the largest device load by moves and swaps off the heaviest device
/// while one helps. Each step lowers the sum of squared device loads, so this
/// ends.
void balanceLoads(Partition &p, unsigned maxExperts) {
  for (;;) {
    unsigned heavy = p.heaviest();
    int64_t bestPeak = p.loadOf(heavy);
    unsigned bestU = kNone, bestV = kNone, bestDevice = kNone;
    for (unsigned u = 0; u < p.size(); ++u) {
      if (p.deviceOf(u) != heavy)
        continue;
      for (unsigned d = 0; d < p.devices(); ++d) {
        if (d == heavy || p.countOf(d) >= maxExperts)
          continue;
        int64_t peak = std::max(p.loadOf(heavy) - p.weightOf(u),
                                p.loadOf(d) + p.weightOf(u));
        if (peak < bestPeak)
          std::tie(bestPeak, bestU, bestV, bestDevice) =
              std::make_tuple(peak, u, kNone, d);
      }
      for (unsigned v = 0; v < p.size(); ++v) {
        unsigned d = p.deviceOf(v);
        int64_t delta = p.weightOf(u) - p.weightOf(v);
        if (d == heavy || delta <= 0)
          continue;
        int64_t peak = std::max(p.loadOf(heavy) - delta, p.loadOf(d) + delta);
        if (peak < bestPeak)
          std::tie(bestPeak, bestU, bestV, bestDevice) =
              std::make_tuple(peak, u, v, d);
      }
    }
    if (bestU == kNone)
      return;
    if (bestV == kNone)
      p.move(bestU, bestDevice);
    else
      p.swap(bestU, bestV);
  }
}

/// Clusters of strongly co-activated experts: the maximum-weight spanning
/// forest of the co-activation graph, heaviest edge first, joins the clusters
/// at its ends while the joined cluster stays within the bounds. Returns the
/// cluster of each expert, numbered by lowest member.
std::vector<unsigned> agglomerate(const Partition &p, const Bounds &bounds) {
  const Graph &graph = p.coactivation();
  // Kruskal on (-count, index): the maximum spanning forest, unique because
  // no two keys are equal.
  auto key =
      boost::make_function_property_map<GraphEdge>([&graph](GraphEdge e) {
        return std::make_pair(-graph[e].count, graph[e].index);
      });
  std::vector<GraphEdge> forest;
  boost::kruskal_minimum_spanning_tree(graph, std::back_inserter(forest),
                                       boost::weight_map(key));
  std::sort(forest.begin(), forest.end(),
            [&](GraphEdge a, GraphEdge b) { return key[a] < key[b]; });

  unsigned n = p.size();
  std::vector<unsigned> parent(n), members(n, 1);
  std::vector<int64_t> clusterLoad(n);
  std::iota(parent.begin(), parent.end(), 0u);
  for (unsigned v = 0; v < n; ++v)
    clusterLoad[v] = p.weightOf(v);
  auto find = [&](unsigned v) {
    while (parent[v] != v)
      v = parent[v] = parent[parent[v]];
    return v;
  };
  for (GraphEdge e : forest) {
    unsigned a = find(boost::source(e, graph));
    unsigned b = find(boost::target(e, graph));
    if (members[a] + members[b] > bounds.maxExperts ||
        clusterLoad[a] + clusterLoad[b] > bounds.maxLoad)
      continue;
    if (b < a)
      std::swap(a, b);
    parent[b] = a;
    members[a] += members[b];
    clusterLoad[a] += clusterLoad[b];
  }
  std::vector<unsigned> cluster(n);
  for (unsigned v = 0; v < n; ++v)
    cluster[v] = find(v);
  return cluster;
}

/// Places the members of a cluster together on the device they are most
/// co-activated with (the least loaded of equals) that has room for all of
/// them within the bounds. Returns false, placing nothing, when none has.
bool placeTogether(Partition &p, const std::vector<unsigned> &members,
                   const Bounds &bounds) {
  int64_t clusterLoad = 0;
  for (unsigned v : members)
    clusterLoad += p.weightOf(v);
  unsigned best = kNone;
  int64_t bestLink = 0;
  for (unsigned d = 0; d < p.devices(); ++d) {
    if (p.countOf(d) + members.size() > bounds.maxExperts ||
        p.loadOf(d) + clusterLoad > bounds.maxLoad)
      continue;
    int64_t link = 0;
    for (unsigned v : members)
      link += p.linkTo(v, d);
    if (best == kNone || link > bestLink ||
        (link == bestLink && p.loadOf(d) < p.loadOf(best)))
      std::tie(best, bestLink) = std::make_pair(d, link);
  }
  if (best == kNone)
    return false;
  for (unsigned v : members)
    p.put(v, best);
  return true;
}

/// Places one expert on the device it is most co-activated with among those
/// with room within the bounds, or on the least loaded device with room.
void placeAlone(Partition &p, unsigned v, const Bounds &bounds) {
  unsigned best = kNone;
  for (unsigned d = 0; d < p.devices(); ++d) {
    if (p.countOf(d) >= bounds.maxExperts ||
        p.loadOf(d) + p.weightOf(v) > bounds.maxLoad)
      continue;
    if (best == kNone || p.linkTo(v, d) > p.linkTo(v, best) ||
        (p.linkTo(v, d) == p.linkTo(v, best) && p.loadOf(d) < p.loadOf(best)))
      best = d;
  }
  p.put(v, best != kNone ? best : leastLoadedWithRoom(p, bounds.maxExperts));
}

/// Clusters first, one connected component after the other (the heaviest
/// component first, its heaviest cluster first), so that each cluster meets
/// the already placed clusters it is linked to; then the experts without
/// co-activation, by load, into the gaps.
void placeByClusters(Partition &p, const Bounds &bounds) {
  const Graph &graph = p.coactivation();
  unsigned n = p.size();
  std::vector<unsigned> component(n);
  unsigned numComponents = boost::connected_components(
      graph, boost::make_iterator_property_map(
                 component.begin(), boost::get(boost::vertex_index, graph)));
  std::vector<unsigned> cluster = agglomerate(p, bounds);

  std::vector<int64_t> componentLoad(numComponents, 0), clusterLoad(n, 0);
  std::vector<std::vector<unsigned>> members(n);
  std::vector<unsigned> isolated;
  for (unsigned v = 0; v < n; ++v) {
    if (boost::out_degree(v, graph) == 0) {
      isolated.push_back(v);
      continue;
    }
    componentLoad[component[v]] += p.weightOf(v);
    clusterLoad[cluster[v]] += p.weightOf(v);
    members[cluster[v]].push_back(v);
  }
  std::vector<unsigned> order;
  for (unsigned c = 0; c < n; ++c)
    if (!members[c].empty())
      order.push_back(c);
  std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
    unsigned ca = component[a], cb = component[b];
    return std::make_tuple(-componentLoad[ca], ca, -clusterLoad[a]) <
           std::make_tuple(-componentLoad[cb], cb, -clusterLoad[b]);
  });
  for (unsigned c : order) {
    if (placeTogether(p, members[c], bounds))
      continue;
    std::vector<int64_t> loads(n);
    for (unsigned v : members[c])
      loads[v] = p.weightOf(v);
    for (unsigned v : byDecreasingLoad(loads, members[c]))
      placeAlone(p, v, bounds);
  }
  placeByLoad(p, isolated, bounds.maxExperts);
}

//===----------------------------------------------------------------------===//
// Repair and refinement
//===----------------------------------------------------------------------===//

/// A move of `u` to `device`, or a swap of `u` and `v`.
struct Step {
  unsigned u = kNone;
  unsigned v = kNone;
  unsigned device = kNone;
  int64_t gain = 0;

  bool isSwap() const { return v != kNone; }
};

void apply(Partition &p, const Step &step) {
  if (step.isSwap())
    p.swap(step.u, step.v);
  else
    p.move(step.u, step.device);
}

bool fitsMove(const Partition &p, unsigned v, unsigned d,
              const Bounds &bounds) {
  return p.countOf(d) < bounds.maxExperts &&
         p.loadOf(d) + p.weightOf(v) <= bounds.maxLoad;
}

/// How much the cut drops when `u` and `v` trade devices.
int64_t swapGain(const Partition &p, unsigned u, unsigned v,
                 const PairWeights &w) {
  unsigned du = p.deviceOf(u), dv = p.deviceOf(v);
  return p.moveGain(u, dv) + p.moveGain(v, du) - 2 * w(u, v);
}

/// Moves experts off devices above the load bound, where the cut suffers
/// least, until none is above it. Returns false when that gets stuck.
bool repair(Partition &p, const Bounds &bounds, const PairWeights &w) {
  while (p.maxLoad() > bounds.maxLoad) {
    unsigned heavy = p.heaviest();
    std::optional<Step> best;
    for (unsigned u = 0; u < p.size(); ++u) {
      if (p.deviceOf(u) != heavy || p.weightOf(u) == 0)
        continue;
      for (unsigned d = 0; d < p.devices(); ++d)
        if (d != heavy && fitsMove(p, u, d, bounds) &&
            (!best || p.moveGain(u, d) > best->gain))
          best = Step{u, kNone, d, p.moveGain(u, d)};
    }
    // Swaps only when no move helps.
    bool moves = best.has_value();
    for (unsigned u = 0; !moves && u < p.size(); ++u) {
      if (p.deviceOf(u) != heavy)
        continue;
      for (unsigned v = 0; v < p.size(); ++v) {
        unsigned d = p.deviceOf(v);
        if (d == heavy || p.weightOf(v) >= p.weightOf(u) ||
            p.loadOf(d) - p.weightOf(v) + p.weightOf(u) > bounds.maxLoad)
          continue;
        int64_t gain = swapGain(p, u, v, w);
        if (!best || gain > best->gain)
          best = Step{u, v, d, gain};
      }
    }
    if (!best)
      return false;
    apply(p, *best);
  }
  return true;
}

/// The unlocked move or swap that lowers the cut most within the bounds:
/// moves before swaps, then lower indices first among equals.
std::optional<Step> bestStep(const Partition &p,
                             const std::vector<char> &locked,
                             const Bounds &bounds, const PairWeights &w) {
  std::optional<Step> best;
  // The best move gain of each unlocked expert, feasible or not.
  std::vector<std::pair<int64_t, unsigned>> order;
  for (unsigned v = 0; v < p.size(); ++v) {
    if (locked[v] || p.devices() == 1)
      continue;
    int64_t top = std::numeric_limits<int64_t>::min();
    for (unsigned d = 0; d < p.devices(); ++d) {
      if (d == p.deviceOf(v))
        continue;
      top = std::max(top, p.moveGain(v, d));
      if (fitsMove(p, v, d, bounds) && (!best || p.moveGain(v, d) > best->gain))
        best = Step{v, kNone, d, p.moveGain(v, d)};
    }
    order.emplace_back(top, v);
  }

  // A swap of u and v gains at most top(u) + top(v). Visiting the experts by
  // decreasing top lets the search stop once no swap left can beat the best
  // step; comparing indices on equal gains keeps the plain search's answer.
  std::sort(order.begin(), order.end(), [](const auto &a, const auto &b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  auto beats = [&](int64_t gain, unsigned u, unsigned v) {
    return !best || gain > best->gain ||
           (gain == best->gain && best->isSwap() &&
            std::make_pair(u, v) < std::make_pair(best->u, best->v));
  };
  for (size_t a = 0; a + 1 < order.size(); ++a) {
    auto [topU, u] = order[a];
    if (best && topU + order[a + 1].first < best->gain)
      break;
    unsigned du = p.deviceOf(u);
    for (size_t b = a + 1; b < order.size(); ++b) {
      auto [topV, v] = order[b];
      if (best && topU + topV < best->gain)
        break;
      unsigned dv = p.deviceOf(v);
      int64_t delta = p.weightOf(u) - p.weightOf(v);
      if (dv == du || p.loadOf(du) - delta > bounds.maxLoad ||
          p.loadOf(dv) + delta > bounds.maxLoad)
        continue;
      // The pair's own co-activation only lowers the gain: look it up only
      // for swaps that could win without it.
      unsigned first = std::min(u, v), second = std::max(u, v);
      int64_t gain = p.moveGain(u, dv) + p.moveGain(v, du);
      if (!beats(gain, first, second))
        continue;
      gain -= 2 * w(u, v);
      if (beats(gain, first, second))
        best = Step{first, second, kNone, gain};
    }
  }
  return best;
}

/// Steps a pass takes past its lowest cut before it gives up: a long climb
/// out of a local minimum rarely pays, and stopping bounds the cost of a pass
/// on large layers.
constexpr size_t kMaxClimb = 32;

/// One Kernighan-Lin pass: take the best step even when it raises the cut,
/// lock the experts it moved, until no step is left (or kMaxClimb steps
/// passed the lowest cut); then undo the steps after the point where the cut
/// was lowest. Returns whether the cut dropped.
bool refinePass(Partition &p, const Bounds &bounds, const PairWeights &w) {
  std::vector<char> locked(p.size(), 0);
  std::vector<std::pair<Step, unsigned>> steps;
  int64_t gain = 0, bestGain = 0;
  size_t bestLength = 0;
  while (std::optional<Step> step = bestStep(p, locked, bounds, w)) {
    steps.emplace_back(*step, p.deviceOf(step->u));
    apply(p, *step);
    locked[step->u] = 1;
    if (step->isSwap())
      locked[step->v] = 1;
    gain += step->gain;
    if (gain > bestGain)
      std::tie(bestGain, bestLength) = std::make_pair(gain, steps.size());
    if (steps.size() - bestLength >= kMaxClimb)
      break;
  }
  while (steps.size() > bestLength) {
    auto [step, from] = steps.back();
    steps.pop_back();
    if (step.isSwap())
      p.swap(step.u, step.v);
    else
      p.move(step.u, from);
  }
  return bestGain > 0;
}

} // namespace

//===----------------------------------------------------------------------===//
// The placement
//===----------------------------------------------------------------------===//

Placement mlir::moe::placement::place(const LayerStats &stats,
                                      const PlacementOptions &options) {
  unsigned n = stats.loads.size();
  unsigned numDevices = options.numDevices;
  assert(checkStats(stats).empty() && checkOptions(n, options).empty() &&
         "invalid placement problem");
  Graph graph = buildGraph(stats);
  unsigned maxExperts = maxExpertsPerDevice(n, options);
  std::vector<unsigned> all(n);
  std::iota(all.begin(), all.end(), 0u);

  // Load first: the load bound is the balance bound, or what balancing by
  // load alone reaches when that is more.
  Partition byLoad(graph, stats.loads, numDevices);
  placeByLoad(byLoad, all, maxExperts);
  balanceLoads(byLoad, maxExperts);
  int64_t total =
      std::accumulate(stats.loads.begin(), stats.loads.end(), int64_t(0));
  Bounds bounds{maxExperts,
                std::max(loadBound(total, numDevices, options.imbalance),
                         byLoad.maxLoad())};

  std::vector<Partition> starts;
  starts.push_back(byLoad);
  Partition robin(graph, stats.loads, numDevices);
  for (unsigned v = 0; v < n; ++v)
    robin.put(v, v % numDevices);
  starts.push_back(robin);
  if (boost::num_edges(graph) != 0) {
    Partition clusters(graph, stats.loads, numDevices);
    placeByClusters(clusters, bounds);
    starts.push_back(clusters);
  }

  PairWeights w(graph);
  std::optional<Partition> best;
  for (Partition &p : starts) {
    if (!repair(p, bounds, w))
      continue;
    while (refinePass(p, bounds, w))
      ;
    if (!best ||
        std::make_tuple(p.cut(), p.maxLoad(), p.assignment()) <
            std::make_tuple(best->cut(), best->maxLoad(), best->assignment()))
      best = p;
  }
  assert(best && "the load-only placement is within the bounds");

  // Devices are interchangeable: number them in order of first use, so that
  // equivalent placements read the same.
  std::vector<unsigned> label(numDevices, kNone), device = best->assignment();
  unsigned used = 0;
  for (unsigned &d : device) {
    if (label[d] == kNone)
      label[d] = used++;
    d = label[d];
  }
  return evaluate(stats, numDevices, std::move(device));
}
