//===- Controller.h - adaptive control of a routing knob --------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A Controller turns one run-time knob of an MoE layer (threshold routing's
// tau, or the capacity factor) after every statistics interval so that a
// measured quantity stays near a setpoint: a deadband with hysteresis, a
// step that grows while the direction holds and shrinks on a reversal, and
// bounds. It knows nothing about the model: it reads interval statistics
// and returns the knob for the next interval. It keeps no clock and draws
// no random numbers, so the same statistics give the same knobs and log.
// docs/monitoring.md ("Adaptive controller") describes the policy.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CONTROLLER_H
#define MOE_RUNTIME_CONTROLLER_H

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moe::rt {

/// What the controller holds at its setpoint, and so which knob it turns.
enum class ControlTarget {
  /// Routed assignments per token (A / T), turned with threshold routing's
  /// tau. The quantity falls when tau rises.
  MeanExpertsPerToken,
  /// The largest kept load over the mean routed load,
  /// max_e(assignments[e] - dropped[e]) / (A / E), turned with the capacity
  /// factor. The quantity rises with the factor.
  MaxLoadRatio,
};

/// The quantity's name in logs ("mean_experts_per_token",
/// "max_kept_load_ratio").
const char *quantityName(ControlTarget target);
/// The knob's name in logs ("tau", "capacity_factor").
const char *knobName(ControlTarget target);

struct ControllerConfig {
  ControlTarget target = ControlTarget::MeanExpertsPerToken;
  double setpoint = 0;
  /// Deadband half-width: at rest the controller does nothing while
  /// |q - setpoint| <= band; once it acts, it acts until
  /// |q - setpoint| <= band / 2.
  double band = 0;
  /// Bounds of the knob.
  double minValue = 0, maxValue = 0;
  /// Knob steps: the first move of an action, and the limits of the
  /// adapted step.
  double initialStep = 0, minStep = 0, maxStep = 0;

  /// An empty string when the configuration and a starting knob are
  /// usable, else what is wrong with them.
  std::string validate(double initialKnob) const;
};

/// Statistics of one interval of one layer: counts since the previous
/// interval, not cumulative counters.
struct IntervalStats {
  int64_t tokens = 0;
  /// Routed (token, expert) pairs per expert, before any capacity limit.
  std::vector<int64_t> assignments;
  /// Of those, the ones the expert dropped for capacity.
  std::vector<int64_t> dropped;

  /// An empty string when the counts are consistent (same length, none
  /// negative, dropped <= assignments), else the first inconsistency.
  std::string validate() const;
};

/// The quantity `target` measures in `stats`, or nothing when the interval
/// says nothing about it (no tokens, no assignments) or is inconsistent.
std::optional<double> measure(ControlTarget target, const IntervalStats &stats);

enum class DecisionReason {
  /// No statistics in the interval (or inconsistent ones): nothing done.
  NoData,
  /// At rest and inside the band: nothing done.
  InsideBand,
  /// The quantity is above (below) the band, or was and has not come back
  /// to half the band yet: the knob moved.
  AboveBand,
  BelowBand,
  /// The move would leave the knob's range: the knob went to the bound, or
  /// already sits there and stays.
  AtBound,
  /// Back within half the band: the controller stops acting.
  Settled,
};

const char *reasonName(DecisionReason reason);

/// The outcome of one interval.
struct Decision {
  /// Index of the interval, from 0, counting every call of step().
  int64_t step = 0;
  DecisionReason reason = DecisionReason::NoData;
  /// The measured quantity (0 for NoData).
  double quantity = 0;
  double knobBefore = 0, knobAfter = 0;

  bool changed() const { return knobAfter != knobBefore; }
};

class Controller {
public:
  /// Returns nothing, and sets `error`, when `config.validate(initialKnob)`
  /// fails.
  static std::optional<Controller> create(const ControllerConfig &config,
                                          double initialKnob,
                                          std::string &error);
  /// `config` must be valid for `initialKnob` (see create()).
  Controller(const ControllerConfig &config, double initialKnob);

  /// Reads one interval's statistics, measured with the current knob, and
  /// sets the knob for the next interval.
  Decision step(const IntervalStats &stats);

  const ControllerConfig &config() const { return cfg; }
  /// The knob for the next interval.
  double knob() const { return value; }
  /// The current adapted step size.
  double stepSize() const { return stepLen; }
  /// Whether the controller is acting (left the band, not settled yet).
  bool acting() const { return isActing; }
  /// Intervals seen, and intervals in which the knob changed.
  int64_t steps() const { return numSteps; }
  int64_t changes() const { return numChanges; }

  /// Every change of the knob, and the events that do not change it but
  /// change the controller's state: settling, and first meeting a bound
  /// while the knob already sits on it. Quiet intervals are not logged.
  const std::vector<Decision> &log() const { return entries; }
  /// The log as text, one line per entry after a header line; the same
  /// log gives the same text on every platform.
  std::string formatLog() const;

private:
  /// Moves the knob one step in `direction` (+1 up, -1 down); `near` says
  /// that the quantity is inside the band.
  Decision move(Decision decision, int direction, bool near);

  ControllerConfig cfg;
  double value;
  double stepLen;
  /// Direction of the previous move of the current action (0: none yet).
  int lastDirection = 0;
  /// Whether the previous move reversed the direction.
  bool justReversed = false;
  bool isActing = false;
  /// Whether "at bound" was logged for the bound the knob sits on.
  bool pinned = false;
  int64_t numSteps = 0;
  int64_t numChanges = 0;
  std::vector<Decision> entries;
};

} // namespace moe::rt

#endif // MOE_RUNTIME_CONTROLLER_H
