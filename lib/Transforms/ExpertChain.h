//===- ExpertChain.h - gather, experts and combine, matched -----*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The experts' half of a MoE block written as ops, read back from its
// `moe.combine`: what moe-fuse-expert-io folds into `moe.fused_experts` and
// moe-form-layers into `moe.layer`.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_TRANSFORMS_EXPERTCHAIN_H
#define MOE_LIB_TRANSFORMS_EXPERTCHAIN_H

#include "moe/IR/MoEOps.h"

#include "llvm/ADT/SetVector.h"

#include <optional>
#include <string>

namespace mlir::moe {

/// `moe.gather` of `input`, one expert op on the gathered rows, and
/// `moe.combine` of its rows, whose addend may be a `moe.shared_expert` of
/// `input`, the `moe.linear` base of LoRA experts, or their sum: the
/// operands and attributes of `moe.fused_experts` (and of `moe.layer`'s
/// experts), and the ops they come from.
struct ExpertChain {
  Value input, rowToken, rowWeight, groupSizes, slotRow, slotWeight;
  ExpertKind kind = ExpertKind::Gated;
  /// The experts' or the shared expert's activation; none for LoRA experts
  /// without a shared expert, which use none.
  std::optional<Activation> act;
  std::optional<double> alpha;
  /// In the order of `moe.layer`'s `experts(...)` for `kind` (LoRA: the
  /// base first), `expert_biases(...)` and `shared(gate, up, down[, gate
  /// weight])`.
  SmallVector<Value> weights, biases, shared;
  /// The combine, the expert op, the gather and the addend's ops.
  llvm::SetVector<Operation *> ops;
};

/// Records `reason` in `why` and fails: the reasons of the matchers here
/// and of moe-form-layers.
inline LogicalResult refuse(std::string &why, const llvm::Twine &reason) {
  why = reason.str();
  return failure();
}

/// The chain that ends in `combine`, or failure with the reason in `why`.
/// Each op of the chain but the combine must be read by the chain alone;
/// LoRA experts need their base.
FailureOr<ExpertChain> matchExpertChain(CombineOp combine, std::string &why);

} // namespace mlir::moe

#endif // MOE_LIB_TRANSFORMS_EXPERTCHAIN_H
