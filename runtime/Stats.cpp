//===- Stats.cpp - expert statistics: snapshots, metrics, exports ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "Stats.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>

using namespace moe::rt;
namespace json = llvm::json;

LoadMetrics moe::rt::computeMetrics(const Counters &counters) {
  return computeMetrics(counters.assignments, counters.dropped,
                        counters.tokens);
}

std::vector<LayerStats> moe::rt::snapshotStats(const Model &model) {
  std::vector<Counters> all = model.snapshotAll();
  std::vector<LayerStats> layers;
  for (const StatsEntry &entry : model.manifest().stats) {
    Counters &counters = all[entry.id];
    if (counters.calls == 0)
      continue;
    LoadMetrics metrics = computeMetrics(counters);
    layers.push_back({entry.layer, std::move(counters), metrics});
  }
  return layers;
}

std::string moe::rt::statsToJSON(const std::vector<LayerStats> &layers) {
  json::Array array;
  for (const LayerStats &layer : layers) {
    const Counters &c = layer.counters;
    int64_t numExperts = static_cast<int64_t>(c.assignments.size());
    json::Object object{
        {"function", layer.function},
        {"num_experts", numExperts},
        {"calls", c.calls},
        {"tokens", c.tokens},
        {"assignments", json::Array(c.assignments)},
        {"dropped", json::Array(c.dropped)},
        {"mean_experts_per_token", layer.metrics.meanExpertsPerToken},
        {"mean_load", layer.metrics.meanLoad},
        {"max_load", static_cast<int64_t>(layer.metrics.maxLoad)},
        {"max_load_ratio", layer.metrics.maxLoadRatio},
        {"load_cv", layer.metrics.loadCV},
        {"normalized_entropy", layer.metrics.normalizedEntropy},
        {"jain_fairness", layer.metrics.jainFairness},
        {"drop_rate", layer.metrics.dropRate}};
    if (c.countsCoactivation) {
      json::Array pairs;
      for (int64_t i = 0; i < numExperts; ++i)
        for (int64_t j = i + 1; j < numExperts; ++j)
          if (int64_t count =
                  c.coactivation[Counters::pairIndex(i, j, numExperts)])
            pairs.push_back(json::Array{i, j, count});
      object["coactivation"] = std::move(pairs);
    }
    array.push_back(std::move(object));
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  os << json::Value(json::Object{{"version", 1}, {"layers", std::move(array)}});
  return text;
}

/// A Prometheus label value: backslash, quote and newline escaped.
static std::string labelValue(llvm::StringRef value) {
  std::string out;
  for (char ch : value) {
    if (ch == '\\' || ch == '"')
      out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out;
}

std::string moe::rt::statsToPrometheus(const std::vector<LayerStats> &layers) {
  std::string text;
  llvm::raw_string_ostream os(text);
  auto family = [&](llvm::StringRef name, llvm::StringRef type,
                    llvm::StringRef help) {
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " "
       << type << "\n";
  };
  auto perExpert = [&](llvm::StringRef name, llvm::StringRef help,
                       auto member) {
    family(name, "counter", help);
    for (const LayerStats &layer : layers) {
      const std::vector<int64_t> &values = layer.counters.*member;
      for (size_t e = 0; e < values.size(); ++e)
        os << name << "{layer=\"" << labelValue(layer.function)
           << "\",expert=\"" << e << "\"} " << values[e] << "\n";
    }
  };
  auto perLayer = [&](llvm::StringRef name, llvm::StringRef type,
                      llvm::StringRef help, auto value) {
    family(name, type, help);
    for (const LayerStats &layer : layers)
      os << name << "{layer=\"" << labelValue(layer.function) << "\"} "
         << llvm::format("%.9g", static_cast<double>(value(layer))) << "\n";
  };
  perExpert("moe_expert_assignments_total",
            "Routed (token, expert) assignments, before capacity.",
            &Counters::assignments);
  perExpert("moe_expert_dropped_total",
            "Assignments dropped by the expert's capacity.",
            &Counters::dropped);
  perLayer("moe_layer_tokens_total", "counter", "Tokens the layer saw.",
           [](const LayerStats &l) { return l.counters.tokens; });
  perLayer("moe_layer_calls_total", "counter", "Calls of the layer.",
           [](const LayerStats &l) { return l.counters.calls; });
  perLayer("moe_layer_mean_experts_per_token", "gauge",
           "Assignments per token.",
           [](const LayerStats &l) { return l.metrics.meanExpertsPerToken; });
  perLayer("moe_layer_max_load_ratio", "gauge",
           "Largest expert load over the mean expert load.",
           [](const LayerStats &l) { return l.metrics.maxLoadRatio; });
  perLayer("moe_layer_load_cv", "gauge",
           "Coefficient of variation of the expert loads.",
           [](const LayerStats &l) { return l.metrics.loadCV; });
  perLayer("moe_layer_load_entropy", "gauge",
           "Entropy of the load distribution over ln(experts).",
           [](const LayerStats &l) { return l.metrics.normalizedEntropy; });
  perLayer("moe_layer_jain_fairness", "gauge",
           "Jain's fairness index of the expert loads.",
           [](const LayerStats &l) { return l.metrics.jainFairness; });
  perLayer("moe_layer_drop_rate", "gauge",
           "Dropped assignments over all assignments.",
           [](const LayerStats &l) { return l.metrics.dropRate; });
  return text;
}
