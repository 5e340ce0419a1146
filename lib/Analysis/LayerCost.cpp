//===- LayerCost.cpp - parameters, FLOPs and bytes of an MoE layer --------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Analysis/LayerCost.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

static std::optional<int64_t> elements(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape())
    return std::nullopt;
  return type.getNumElements();
}

double LayerCost::touchedExperts(double tokens) const {
  if (experts == 0)
    return 0;
  double share = std::min(1.0, slotsPerToken / experts);
  return experts * (1.0 - std::pow(1.0 - share, tokens));
}

double LayerCost::sparseBytes(double tokens) const {
  if (tokens <= 0)
    return 0;
  return (routerParams + alwaysParams + baseParams +
          touchedExperts(tokens) * static_cast<double>(expertParams)) *
         elementBytes;
}

FailureOr<LayerCost> mlir::moe::analyzeLayer(LayerOp layer) {
  LayerCost cost;
  cost.experts = layer.getNumExperts();
  cost.slotsPerToken = static_cast<double>(layer.getRouting().getK());
  for (Value w : layer.getRouterWeights()) {
    std::optional<int64_t> n = elements(w);
    if (!n)
      return failure();
    cost.routerParams += *n;
  }
  ValueRange weights = layer.getExpertWeights();
  auto add = [&](ValueRange values, int64_t &to, int64_t divideBy) -> bool {
    for (Value v : values) {
      std::optional<int64_t> n = elements(v);
      if (!n)
        return false;
      to += *n / divideBy;
    }
    return true;
  };
  int64_t e = cost.experts;
  switch (layer.getExperts().getKind()) {
  case ExpertKind::Gated:
  case ExpertKind::Mlp:
    if (!add(weights, cost.expertParams, e))
      return failure();
    break;
  case ExpertKind::Lora:
    // A frozen base every token uses, and per-expert adapters (A, B).
    if (!add(weights.take_front(1), cost.alwaysParams, 1) ||
        !add(weights.drop_front(1), cost.expertParams, e))
      return failure();
    break;
  case ExpertKind::LoraGated:
    // A base gated FFN every routed slot applies, with the three adapter
    // pairs of its expert.
    if (!add(weights.take_front(3), cost.baseParams, 1) ||
        !add(weights.drop_front(3), cost.expertParams, e))
      return failure();
    break;
  }
  if (!add(layer.getSharedWeights(), cost.alwaysParams, 1))
    return failure();
  auto weightType =
      cast<RankedTensorType>(layer.getExpertWeights().front().getType());
  cost.elementBytes =
      std::max<int64_t>(1, weightType.getElementTypeBitWidth() / 8);
  return cost;
}
