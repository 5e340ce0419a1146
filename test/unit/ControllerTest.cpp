//===- ControllerTest.cpp - the adaptive controller on a synthetic router -===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The controller's policy on scripted quantities (knobs and log computed by
// hand), and the controller closing the loop around a router written here
// in f64 (softmax, top_k, threshold, capacity) whose skew drifts. With
// MOE_CONTROLLER_TRACE set in the environment the closed-loop tests print
// every interval.
//
//===----------------------------------------------------------------------===//

#include "Controller.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>

using namespace moe::rt;

namespace {

//===----------------------------------------------------------------------===//
// A synthetic router
//===----------------------------------------------------------------------===//

/// Standard normal numbers by Box-Muller over mt19937_64, whose output the
/// C++ standard fixes bit for bit (std::normal_distribution's is not).
class Normal {
public:
  explicit Normal(uint64_t seed) : rng(seed) {}
  double next() {
    if (haveSpare) {
      haveSpare = false;
      return spare;
    }
    const double twoPi = 6.283185307179586;
    double u1 = double((rng() >> 11) + 1) * 0x1.0p-53; // (0, 1]
    double u2 = double(rng() >> 11) * 0x1.0p-53;       // [0, 1)
    double r = std::sqrt(-2 * std::log(u1));
    spare = r * std::sin(twoPi * u2);
    haveSpare = true;
    return r * std::cos(twoPi * u2);
  }

private:
  std::mt19937_64 rng;
  bool haveSpare = false;
  double spare = 0;
};

/// Per token: logits = N(0, 1) + skew * favor[e], softmax, top_k, then
/// slots j >= 1 with a score below tau dropped; then each expert keeps at
/// most C = ceil(factor * T * k / E) (at least 1) assignments in token-major
/// order. A factor <= 0 means no capacity.
class Router {
public:
  static constexpr int64_t kTokens = 2048, kExperts = 16, kTopK = 4;

  explicit Router(uint64_t seed) : noise(seed) {}

  IntervalStats run(double skew, double tau, double factor) {
    IntervalStats stats;
    stats.tokens = kTokens;
    stats.assignments.assign(kExperts, 0);
    stats.dropped.assign(kExperts, 0);
    int64_t capacity = kTokens * kTopK;
    if (factor > 0)
      capacity = std::max<int64_t>(
          1, int64_t(std::ceil(factor * kTokens * kTopK / kExperts)));
    std::vector<int64_t> kept(kExperts, 0);
    std::vector<double> score(kExperts);
    std::vector<int> order(kExperts);
    for (int64_t t = 0; t < kTokens; ++t) {
      double maxLogit = -HUGE_VAL;
      for (int64_t e = 0; e < kExperts; ++e) {
        score[e] = noise.next() + skew * favor(e);
        maxLogit = std::max(maxLogit, score[e]);
      }
      double sum = 0;
      for (double &s : score)
        sum += s = std::exp(s - maxLogit);
      for (double &s : score)
        s /= sum;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return score[a] > score[b]; });
      for (int j = 0; j < kTopK; ++j) {
        int e = order[j];
        if (j > 0 && score[e] < tau)
          continue;
        ++stats.assignments[e];
        if (kept[e] < capacity)
          ++kept[e];
        else
          ++stats.dropped[e];
      }
    }
    return stats;
  }

private:
  /// Two experts are favored, the first one more.
  static double favor(int64_t e) { return e < 2 ? 1.0 - 0.5 * e : 0.0; }

  Normal noise;
};

//===----------------------------------------------------------------------===//
// Closed-loop runs
//===----------------------------------------------------------------------===//

/// A stretch of intervals with the same kind of skew; a drift event starts
/// each one.
struct Phase {
  int begin, end;
  /// Whether the skew stays constant during the phase (else it drifts).
  bool constant;
  /// Whether the setpoint can be reached in the phase.
  bool reachable = true;
};

struct Trace {
  std::vector<double> quantity;
  std::vector<Decision> decisions;
};

/// Runs `controller` for `steps` intervals; `interval(i, knob)` gives the
/// statistics of interval i measured with `knob`.
Trace closeLoop(Controller &controller, int steps,
                const std::function<IntervalStats(int, double)> &interval) {
  Trace trace;
  for (int i = 0; i < steps; ++i) {
    IntervalStats stats = interval(i, controller.knob());
    trace.quantity.push_back(*measure(controller.config().target, stats));
    trace.decisions.push_back(controller.step(stats));
  }
  if (std::getenv("MOE_CONTROLLER_TRACE"))
    for (int i = 0; i < steps; ++i)
      std::printf("%3d q %.4f knob %.5f -> %.5f %s\n", i, trace.quantity[i],
                  trace.decisions[i].knobBefore, trace.decisions[i].knobAfter,
                  reasonName(trace.decisions[i].reason));
  return trace;
}

bool acted(const Decision &d) {
  return d.reason == DecisionReason::AboveBand ||
         d.reason == DecisionReason::BelowBand ||
         d.reason == DecisionReason::AtBound;
}

bool atRest(const Decision &d) {
  return d.reason == DecisionReason::InsideBand ||
         d.reason == DecisionReason::Settled;
}

/// What the closed-loop tests demand, in intervals and counts.
struct Bounds {
  /// From a drift event to rest, in a constant phase.
  int settle = 12;
  /// Reversals of the knob's direction in a phase.
  int reversals = 3;
  /// Once at rest in a constant phase, intervals outside the band (noise
  /// can push a quantity that rests near the band's edge out), and the
  /// intervals from each such excursion back to rest.
  int excursions = 1;
  int recover = 4;
};

/// The tracking properties: in each constant, reachable phase the
/// controller is at rest (so the quantity inside the band) within
/// `settle` intervals of the drift event, and then stays inside the band
/// but for rare excursions, each corrected at once; in every phase the
/// knob's moves reverse direction at most `reversals` times; the knob never
/// moves within half the band, and never starts moving (from rest) inside
/// the band.
void expectTracks(const Trace &trace, const ControllerConfig &config,
                  const std::vector<Phase> &phases, Bounds bounds = {}) {
  auto inside = [&](int i, double band) {
    return std::fabs(trace.quantity[i] - config.setpoint) <= band;
  };
  for (const Phase &phase : phases) {
    SCOPED_TRACE("phase [" + std::to_string(phase.begin) + ", " +
                 std::to_string(phase.end) + ")");
    if (phase.constant && phase.reachable) {
      auto restFrom = [&](int i) {
        while (i < phase.end && !atRest(trace.decisions[i]))
          ++i;
        return i;
      };
      int first = restFrom(phase.begin);
      EXPECT_LE(first - phase.begin, bounds.settle);
      int excursions = 0;
      for (int i = first; i < phase.end; ++i) {
        if (inside(i, config.band))
          continue;
        ++excursions;
        int back = restFrom(i);
        EXPECT_LE(back - i, bounds.recover) << "excursion at interval " << i;
        i = back;
      }
      EXPECT_LE(excursions, bounds.excursions);
    }
    int reversals = 0, lastDirection = 0;
    for (int i = phase.begin; i < phase.end; ++i) {
      const Decision &d = trace.decisions[i];
      if (!d.changed())
        continue;
      int direction = d.knobAfter > d.knobBefore ? 1 : -1;
      reversals += lastDirection != 0 && direction != lastDirection;
      lastDirection = direction;
    }
    EXPECT_LE(reversals, bounds.reversals);
  }
  for (size_t i = 0; i < trace.decisions.size(); ++i) {
    if (!trace.decisions[i].changed())
      continue;
    EXPECT_FALSE(inside(i, config.band / 2)) << "interval " << i;
    if (inside(i, config.band)) {
      EXPECT_TRUE(i > 0 && acted(trace.decisions[i - 1])) << "interval " << i;
    }
  }
}

/// Skew of the mean-experts scenario: constant, a ramp up, constant, a
/// jump, constant, an exponential relaxation, constant.
double drift(int i) {
  if (i < 40)
    return 1.0;
  if (i < 60)
    return 1.0 + (i - 40) * 0.1;
  if (i < 100)
    return 3.0;
  if (i < 140)
    return 5.0;
  if (i < 160)
    return 2.0 + 3.0 * std::exp(-(i - 140) / 4.0);
  return 2.0;
}

const std::vector<Phase> kDriftPhases = {{0, 40, true},     {40, 60, false},
                                         {60, 100, true},   {100, 140, true},
                                         {140, 160, false}, {160, 200, true}};

ControllerConfig meanExpertsConfig() {
  ControllerConfig config;
  config.target = ControlTarget::MeanExpertsPerToken;
  config.setpoint = 2.0;
  config.band = 0.15;
  config.minValue = 0.0;
  config.maxValue = 0.5;
  config.initialStep = 0.002;
  config.minStep = 0.0005;
  config.maxStep = 0.032;
  return config;
}

Controller runMeanExperts(uint64_t seed, Trace *trace = nullptr) {
  Controller controller(meanExpertsConfig(), 0.0);
  Router router(seed);
  Trace t = closeLoop(controller, 200, [&](int i, double tau) {
    return router.run(drift(i), tau, 0.0);
  });
  if (trace)
    *trace = t;
  return controller;
}

//===----------------------------------------------------------------------===//
// Measurement and validation
//===----------------------------------------------------------------------===//

TEST(Controller, Measure) {
  IntervalStats stats{20, {10, 30, 20, 20}, {0, 8, 0, 0}};
  // A = 80 over T = 20 tokens; kept loads 10, 22, 20, 20 over 80 / 4.
  EXPECT_DOUBLE_EQ(*measure(ControlTarget::MeanExpertsPerToken, stats), 4.0);
  EXPECT_DOUBLE_EQ(*measure(ControlTarget::MaxLoadRatio, stats), 1.1);
  stats.dropped = {0, 12, 0, 0}; // the largest kept load is now 20
  EXPECT_DOUBLE_EQ(*measure(ControlTarget::MaxLoadRatio, stats), 1.0);

  EXPECT_FALSE(measure(ControlTarget::MeanExpertsPerToken,
                       IntervalStats{0, {0, 0}, {0, 0}}));
  EXPECT_FALSE(
      measure(ControlTarget::MaxLoadRatio, IntervalStats{5, {0, 0}, {0, 0}}));
  EXPECT_FALSE(measure(ControlTarget::MaxLoadRatio, IntervalStats{5, {}, {}}));
}

TEST(Controller, StatsValidation) {
  EXPECT_EQ(IntervalStats({4, {3, 5}, {0, 5}}).validate(), "");
  EXPECT_EQ(IntervalStats({-1, {3}, {0}}).validate(),
            "tokens must be >= 0, got -1");
  EXPECT_EQ(IntervalStats({4, {3, 5}, {0}}).validate(),
            "dropped has 1 entries, expected 2 (one per expert, as "
            "assignments)");
  EXPECT_EQ(IntervalStats({4, {3, -5}, {0, 0}}).validate(),
            "assignments[1] must be >= 0, got -5");
  EXPECT_EQ(IntervalStats({4, {3, 5}, {4, 0}}).validate(),
            "dropped[0] must lie in [0, assignments[0] = 3], got 4");
  // Inconsistent statistics are no data: the controller does nothing.
  EXPECT_FALSE(measure(ControlTarget::MeanExpertsPerToken,
                       IntervalStats{4, {3, 5}, {4, 0}}));
}

TEST(Controller, ConfigValidation) {
  ControllerConfig good = meanExpertsConfig();
  EXPECT_EQ(good.validate(0.1), "");

  auto errorOf = [&](const std::function<void(ControllerConfig &)> &edit,
                     double initial = 0.1) {
    ControllerConfig config = good;
    edit(config);
    std::string error;
    EXPECT_FALSE(Controller::create(config, initial, error));
    return error;
  };
  EXPECT_EQ(errorOf([](ControllerConfig &c) { c.band = 0; }),
            "band must be a finite number > 0, got 0");
  EXPECT_EQ(errorOf([](ControllerConfig &c) { c.setpoint = NAN; }),
            "setpoint must be a finite number > 0, got nan");
  EXPECT_EQ(errorOf([](ControllerConfig &c) { c.minStep = -0.5; }),
            "minStep must be a finite number > 0, got -0.5");
  EXPECT_EQ(errorOf([](ControllerConfig &c) { c.maxValue = 0; }),
            "knob bounds must be finite with minValue < maxValue, got [0, 0]");
  EXPECT_EQ(errorOf([](ControllerConfig &c) { c.maxValue = INFINITY; }),
            "knob bounds must be finite with minValue < maxValue, got [0, "
            "inf]");
  EXPECT_EQ(errorOf([](ControllerConfig &c) { c.minStep = 0.02; }),
            "steps must satisfy minStep <= initialStep <= maxStep, got 0.02, "
            "0.002, 0.032");
  EXPECT_EQ(errorOf([](ControllerConfig &) {}, 0.75),
            "initial tau must lie in [0, 0.5], got 0.75");
  EXPECT_EQ(errorOf([](ControllerConfig &c) {
              c.target = ControlTarget::MaxLoadRatio;
            }),
            "capacity_factor minValue must be > 0, got 0");

  std::string error = "stale";
  EXPECT_TRUE(Controller::create(good, 0.5, error));
  EXPECT_EQ(error, "");
}

//===----------------------------------------------------------------------===//
// The policy on scripted quantities
//===----------------------------------------------------------------------===//

/// An interval with `100 * q` assignments over 100 tokens; a negative `q`
/// gives an empty interval.
IntervalStats withMeanExperts(double q) {
  if (q < 0)
    return {0, {0, 0}, {0, 0}};
  int64_t a = std::llround(100 * q);
  return {100, {a / 2, a - a / 2}, {0, 0}};
}

TEST(Controller, ScriptedPolicy) {
  ControllerConfig config;
  config.target = ControlTarget::MeanExpertsPerToken;
  config.setpoint = 2.0;
  config.band = 0.2;
  config.minValue = 0.0;
  config.maxValue = 1.0;
  config.initialStep = 0.1;
  config.minStep = 0.025;
  config.maxStep = 0.4;
  Controller controller(config, 0.5);

  struct Expected {
    double q;
    DecisionReason reason;
    double knob; // after the step
    double stepSize;
  };
  using R = DecisionReason;
  const Expected script[] = {
      {2.1, R::InsideBand, 0.5, 0.1},   // within the band: at rest
      {2.5, R::AboveBand, 0.6, 0.1},    // leaves it: first move
      {2.4, R::AboveBand, 0.8, 0.2},    // same direction, far: step doubles
      {-1, R::NoData, 0.8, 0.2},        // empty interval: nothing changes
      {2.3, R::AtBound, 1.0, 0.4},      // 0.8 + 0.4 clamped to the bound
      {2.35, R::AtBound, 1.0, 0.4},     // pinned: no move, not logged
      {1.7, R::BelowBand, 0.8, 0.2},    // reversal: step halves
      {1.75, R::BelowBand, 0.6, 0.2},   // just reversed: step kept
      {1.85, R::BelowBand, 0.5, 0.1},   // near (inside the band): halves
      {2.15, R::AboveBand, 0.55, 0.05}, // reversal: halves
      {1.95, R::Settled, 0.55, 0.1},    // within half the band: step reset
      {2.15, R::InsideBand, 0.55, 0.1}, // at rest within the band
      {1.75, R::BelowBand, 0.45, 0.1},  // leaves it: first move
  };
  for (const Expected &e : script) {
    Decision d = controller.step(withMeanExperts(e.q));
    SCOPED_TRACE("step " + std::to_string(d.step));
    EXPECT_EQ(d.reason, e.reason);
    EXPECT_DOUBLE_EQ(d.knobAfter, e.knob);
    EXPECT_DOUBLE_EQ(controller.knob(), e.knob);
    EXPECT_DOUBLE_EQ(controller.stepSize(), e.stepSize);
  }
  EXPECT_EQ(controller.steps(), 13);
  EXPECT_EQ(controller.changes(), 8);
  EXPECT_EQ(controller.formatLog(),
            "controller: mean_experts_per_token setpoint 2 band 0.2, tau in "
            "[0, 1], step 0.1 in [0.025, 0.4]\n"
            "step 1: mean_experts_per_token 2.5 above band: tau 0.5 -> 0.6\n"
            "step 2: mean_experts_per_token 2.4 above band: tau 0.6 -> 0.8\n"
            "step 4: mean_experts_per_token 2.3 at bound: tau 0.8 -> 1\n"
            "step 6: mean_experts_per_token 1.7 below band: tau 1 -> 0.8\n"
            "step 7: mean_experts_per_token 1.75 below band: tau 0.8 -> 0.6\n"
            "step 8: mean_experts_per_token 1.85 below band: tau 0.6 -> 0.5\n"
            "step 9: mean_experts_per_token 2.15 above band: tau 0.5 -> 0.55\n"
            "step 10: mean_experts_per_token 1.95 settled: tau 0.55\n"
            "step 12: mean_experts_per_token 1.75 below band: tau 0.55 -> "
            "0.45\n");
}

//===----------------------------------------------------------------------===//
// Closed loop on the synthetic router
//===----------------------------------------------------------------------===//

TEST(Controller, MeanExpertsPerTokenFollowsDrift) {
  Trace trace;
  runMeanExperts(1, &trace);
  expectTracks(trace, meanExpertsConfig(), kDriftPhases);
  // The drift needed the knob: a strong skew concentrates the scores on
  // the favored expert, so the others fall below a smaller tau.
  EXPECT_LT(trace.decisions[139].knobAfter, trace.decisions[99].knobAfter);
  EXPECT_GT(trace.decisions[199].knobAfter, trace.decisions[139].knobAfter);
}

TEST(Controller, MaxLoadRatioFollowsDrift) {
  ControllerConfig config;
  config.target = ControlTarget::MaxLoadRatio;
  config.setpoint = 1.5;
  config.band = 0.1;
  config.minValue = 1.0;
  config.maxValue = 4.0;
  config.initialStep = 0.125;
  config.minStep = 1.0 / 64;
  config.maxStep = 1.0;
  Controller controller(config, 4.0);
  Router router(2);
  // tau = 0.05 makes the routed load depend on the skew too. The skew
  // relaxes to 0 at the end: the even load is below the band whatever the
  // factor, so the factor goes back to its upper bound.
  auto skew = [](int i) {
    if (i < 40)
      return 1.0;
    if (i < 60)
      return 1.0 + (i - 40) * 0.05;
    if (i < 100)
      return 2.0;
    if (i < 140)
      return 3.5;
    if (i < 160)
      return 3.5 * std::exp(-(i - 140) / 3.0);
    return 0.0;
  };
  Trace trace = closeLoop(controller, 200, [&](int i, double factor) {
    return router.run(skew(i), 0.05, factor);
  });
  std::vector<Phase> phases = {{0, 40, true},     {40, 60, false},
                               {60, 100, true},   {100, 140, true},
                               {140, 160, false}, {160, 200, true, false}};
  expectTracks(trace, config, phases);
  // A stronger skew drops more slots below tau: fewer routed assignments,
  // so a smaller factor gives the same ratio.
  EXPECT_LT(trace.decisions[139].knobAfter, trace.decisions[99].knobAfter);
  EXPECT_DOUBLE_EQ(controller.knob(), 4.0);
  EXPECT_EQ(controller.log().back().reason, DecisionReason::AtBound);
  for (int i = 160; i < 200; ++i)
    EXPECT_LT(trace.quantity[i], config.setpoint - config.band);
}

TEST(Controller, Deterministic) {
  std::string first = runMeanExperts(1).formatLog();
  EXPECT_EQ(runMeanExperts(1).formatLog(), first);
  EXPECT_GT(runMeanExperts(1).log().size(), 3u);
  // Another noise stream gives another log: the comparison can fail.
  EXPECT_NE(runMeanExperts(3).formatLog(), first);
}

/// Runs an unreachable setpoint and checks that the knob ends pinned at
/// `bound` with exactly one "at bound" entry, the last one.
void expectPinned(double setpoint, double initialTau, double bound) {
  ControllerConfig config = meanExpertsConfig();
  config.setpoint = setpoint;
  Controller controller(config, initialTau);
  Router router(4);
  Trace trace = closeLoop(controller, 60, [&](int, double tau) {
    return router.run(1.0, tau, 0.0);
  });
  EXPECT_DOUBLE_EQ(controller.knob(), bound);
  int atBound = 0;
  for (const Decision &d : controller.log())
    atBound += d.reason == DecisionReason::AtBound;
  EXPECT_EQ(atBound, 1);
  ASSERT_FALSE(controller.log().empty());
  const Decision &last = controller.log().back();
  EXPECT_EQ(last.reason, DecisionReason::AtBound);
  EXPECT_DOUBLE_EQ(last.knobAfter, bound);
  for (size_t i = last.step + 1; i < trace.decisions.size(); ++i) {
    EXPECT_FALSE(trace.decisions[i].changed());
    EXPECT_EQ(trace.decisions[i].reason, DecisionReason::AtBound);
  }
}

TEST(Controller, UnreachableTargetPinsTheBound) {
  // Slot 0 is always kept: at least one expert per token, whatever tau.
  expectPinned(/*setpoint=*/0.5, /*initialTau=*/0.05, /*bound=*/0.5);
  // k = 4 at most: already at tau = 0, the knob cannot move at all.
  expectPinned(/*setpoint=*/6.0, /*initialTau=*/0.0, /*bound=*/0.0);
}

} // namespace
