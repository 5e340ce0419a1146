//===- Controller.cpp - adaptive control of a routing knob ----------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "Controller.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>

using namespace moe::rt;

const char *moe::rt::quantityName(ControlTarget target) {
  switch (target) {
  case ControlTarget::MeanExpertsPerToken:
    return "mean_experts_per_token";
  case ControlTarget::MaxLoadRatio:
    return "max_kept_load_ratio";
  }
  return "?";
}

const char *moe::rt::knobName(ControlTarget target) {
  switch (target) {
  case ControlTarget::MeanExpertsPerToken:
    return "tau";
  case ControlTarget::MaxLoadRatio:
    return "capacity_factor";
  }
  return "?";
}

const char *moe::rt::reasonName(DecisionReason reason) {
  switch (reason) {
  case DecisionReason::NoData:
    return "no data";
  case DecisionReason::InsideBand:
    return "inside band";
  case DecisionReason::AboveBand:
    return "above band";
  case DecisionReason::BelowBand:
    return "below band";
  case DecisionReason::AtBound:
    return "at bound";
  case DecisionReason::Settled:
    return "settled";
  }
  return "?";
}

/// A number as logs and messages print it: the shortest of %g's forms with
/// 6 significant digits, which is the same text on every platform.
static std::string num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", x);
  return buf;
}

static std::string num(int64_t x) { return std::to_string(x); }

//===----------------------------------------------------------------------===//
// Validation and measurement
//===----------------------------------------------------------------------===//

std::string ControllerConfig::validate(double initialKnob) const {
  auto positive = [](const char *name, double x) -> std::string {
    if (std::isfinite(x) && x > 0)
      return "";
    return std::string(name) + " must be a finite number > 0, got " + num(x);
  };
  for (auto [name, x] : {std::pair<const char *, double>{"setpoint", setpoint},
                         {"band", band},
                         {"initialStep", initialStep},
                         {"minStep", minStep},
                         {"maxStep", maxStep}})
    if (std::string error = positive(name, x); !error.empty())
      return error;
  if (!std::isfinite(minValue) || !std::isfinite(maxValue) ||
      !(minValue < maxValue))
    return "knob bounds must be finite with minValue < maxValue, got [" +
           num(minValue) + ", " + num(maxValue) + "]";
  if (target == ControlTarget::MaxLoadRatio && !(minValue > 0))
    return std::string(knobName(target)) + " minValue must be > 0, got " +
           num(minValue);
  if (!(minStep <= initialStep && initialStep <= maxStep))
    return "steps must satisfy minStep <= initialStep <= maxStep, got " +
           num(minStep) + ", " + num(initialStep) + ", " + num(maxStep);
  if (!std::isfinite(initialKnob) || initialKnob < minValue ||
      initialKnob > maxValue)
    return std::string("initial ") + knobName(target) + " must lie in [" +
           num(minValue) + ", " + num(maxValue) + "], got " + num(initialKnob);
  return "";
}

std::string IntervalStats::validate() const {
  if (tokens < 0)
    return "tokens must be >= 0, got " + num(tokens);
  if (dropped.size() != assignments.size())
    return "dropped has " + num(int64_t(dropped.size())) +
           " entries, expected " + num(int64_t(assignments.size())) +
           " (one per expert, as assignments)";
  for (size_t e = 0; e < assignments.size(); ++e) {
    std::string at = "[" + num(int64_t(e)) + "]";
    if (assignments[e] < 0)
      return "assignments" + at + " must be >= 0, got " + num(assignments[e]);
    if (dropped[e] < 0 || dropped[e] > assignments[e])
      return "dropped" + at + " must lie in [0, assignments" + at + " = " +
             num(assignments[e]) + "], got " + num(dropped[e]);
  }
  return "";
}

std::optional<double> moe::rt::measure(ControlTarget target,
                                       const IntervalStats &stats) {
  if (!stats.validate().empty() || stats.tokens == 0)
    return std::nullopt;
  int64_t routed = 0, maxKept = 0;
  for (size_t e = 0; e < stats.assignments.size(); ++e) {
    routed += stats.assignments[e];
    maxKept = std::max(maxKept, stats.assignments[e] - stats.dropped[e]);
  }
  if (routed == 0)
    return std::nullopt;
  switch (target) {
  case ControlTarget::MeanExpertsPerToken:
    return double(routed) / double(stats.tokens);
  case ControlTarget::MaxLoadRatio:
    return double(maxKept) * double(stats.assignments.size()) / double(routed);
  }
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Controller
//===----------------------------------------------------------------------===//

std::optional<Controller> Controller::create(const ControllerConfig &config,
                                             double initialKnob,
                                             std::string &error) {
  error = config.validate(initialKnob);
  if (!error.empty())
    return std::nullopt;
  return Controller(config, initialKnob);
}

Controller::Controller(const ControllerConfig &config, double initialKnob)
    : cfg(config), value(initialKnob), stepLen(config.initialStep) {
  assert(config.validate(initialKnob).empty() && "invalid controller config");
}

Decision Controller::step(const IntervalStats &stats) {
  Decision decision;
  decision.step = numSteps++;
  decision.knobBefore = decision.knobAfter = value;
  std::optional<double> quantity = measure(cfg.target, stats);
  if (!quantity)
    return decision; // NoData: an empty interval leaves the state alone.
  decision.quantity = *quantity;
  double error = *quantity - cfg.setpoint;

  // Hysteresis: start acting outside the band, stop within half of it, so
  // noise at the band's edge does not start and stop an action by turns.
  if (!isActing) {
    if (std::fabs(error) <= cfg.band) {
      decision.reason = DecisionReason::InsideBand;
      return decision;
    }
    isActing = true;
  } else if (std::fabs(error) <= cfg.band / 2) {
    isActing = false;
    lastDirection = 0;
    justReversed = false;
    stepLen = cfg.initialStep;
    pinned = false;
    decision.reason = DecisionReason::Settled;
    entries.push_back(decision);
    return decision;
  }

  // The quantity falls as tau rises and rises with the capacity factor.
  int sign = error > 0 ? 1 : -1;
  int direction = cfg.target == ControlTarget::MaxLoadRatio ? -sign : sign;
  decision.reason =
      error > 0 ? DecisionReason::AboveBand : DecisionReason::BelowBand;
  return move(decision, direction, std::fabs(error) <= cfg.band);
}

Decision Controller::move(Decision decision, int direction, bool near) {
  double bound = direction > 0 ? cfg.maxValue : cfg.minValue;
  if (value == bound) {
    // Pinned: log the first time only; the step does not adapt, since
    // nothing moved.
    decision.reason = DecisionReason::AtBound;
    if (!pinned) {
      pinned = true;
      entries.push_back(decision);
    }
    return decision;
  }

  // The step doubles while the direction holds and the quantity is outside
  // the band (far from the setpoint), up to maxStep; it halves on a
  // reversal (overshoot), down to minStep. Inside the band (near the
  // setpoint) it halves down to the initial step, so that an action does
  // not cross the band with a step grown far away. The first move after a
  // reversal keeps the halved step: doubling it at once would repeat the
  // overshoot, and halving and doubling by turns would cycle.
  if (lastDirection != 0) {
    bool reversal = direction != lastDirection;
    if (reversal)
      stepLen = std::max(stepLen / 2, cfg.minStep);
    else if (near)
      stepLen = std::max(stepLen / 2, std::min(stepLen, cfg.initialStep));
    else if (!justReversed)
      stepLen = std::min(stepLen * 2, cfg.maxStep);
    justReversed = reversal;
  }
  lastDirection = direction;

  double next = value + direction * stepLen;
  pinned = direction > 0 ? next >= bound : next <= bound;
  if (pinned) {
    next = bound;
    decision.reason = DecisionReason::AtBound;
  }
  value = next;
  decision.knobAfter = next;
  ++numChanges;
  entries.push_back(decision);
  return decision;
}

std::string Controller::formatLog() const {
  const char *quantity = quantityName(cfg.target);
  const char *knob = knobName(cfg.target);
  std::string text = std::string("controller: ") + quantity + " setpoint " +
                     num(cfg.setpoint) + " band " + num(cfg.band) + ", " +
                     knob + " in [" + num(cfg.minValue) + ", " +
                     num(cfg.maxValue) + "], step " + num(cfg.initialStep) +
                     " in [" + num(cfg.minStep) + ", " + num(cfg.maxStep) +
                     "]\n";
  for (const Decision &d : entries) {
    text += "step " + num(d.step) + ": " + quantity + " " + num(d.quantity) +
            " " + reasonName(d.reason) + ": " + knob + " " + num(d.knobBefore);
    if (d.changed())
      text += " -> " + num(d.knobAfter);
    text += "\n";
  }
  return text;
}
