//===- LayerCost.h - parameters, FLOPs and bytes of an MoE layer -*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// What a moe.layer costs, sparse against dense: the parameters it holds and
// those one token uses, and for a batch of T tokens the multiply-add FLOPs
// and the weight bytes it reads. Used by moe-report and recorded by
// moe-compile in a compiled model's manifest.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_ANALYSIS_LAYERCOST_H
#define MOE_ANALYSIS_LAYERCOST_H

#include "moe/IR/MoEOps.h"

namespace mlir::moe {

struct LayerCost {
  int64_t experts = 0;      // E
  double slotsPerToken = 0; // k (the cap for top_p and threshold)
  int64_t routerParams = 0;
  /// Held per routed expert (for LoRA kinds: its adapters).
  int64_t expertParams = 0;
  /// Held once, applied per routed slot: the base FFN of lora_gated.
  int64_t baseParams = 0;
  /// Held once, applied once per token: shared experts, a LoRA base.
  int64_t alwaysParams = 0;
  int64_t elementBytes = 4; // of the expert weights

  int64_t totalParams() const {
    return routerParams + experts * expertParams + baseParams + alwaysParams;
  }
  /// The parameters one token reads.
  double activeParams() const {
    return routerParams + slotsPerToken * expertParams + baseParams +
           alwaysParams;
  }
  /// Multiply-add FLOPs (2 per weight use) for `tokens` tokens.
  double sparseFlops(double tokens) const {
    return 2 * tokens *
           (routerParams + slotsPerToken * (expertParams + baseParams) +
            alwaysParams);
  }
  /// The same layer with every expert on every token (dense masking).
  double denseFlops(double tokens) const {
    return 2 * tokens *
           (routerParams + experts * (expertParams + baseParams) +
            alwaysParams);
  }
  /// Experts that `tokens` tokens touch, expected under uniform routing.
  double touchedExperts(double tokens) const;
  /// Weight bytes read for `tokens` tokens: the router, the weights every
  /// token uses and each touched expert once.
  double sparseBytes(double tokens) const;
  double denseBytes() const {
    return static_cast<double>(totalParams()) * elementBytes;
  }
};

/// The cost of `layer`, or failure when its weight shapes are not static.
FailureOr<LayerCost> analyzeLayer(LayerOp layer);

} // namespace mlir::moe

#endif // MOE_ANALYSIS_LAYERCOST_H
