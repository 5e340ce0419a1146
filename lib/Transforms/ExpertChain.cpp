//===- ExpertChain.cpp - gather, experts and combine, matched -------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "ExpertChain.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

using namespace mlir;
using namespace mlir::moe;

/// Reads the always-on terms of a combine's `addend` into `half`: a shared
/// expert of `half.input`, the `moe.linear` base of LoRA experts, or their
/// sum.
static LogicalResult matchAddend(Value addend, ExpertChain &half,
                                 std::string &why) {
  SmallVector<Value> terms = {addend};
  if (auto sum = addend.getDefiningOp<arith::AddFOp>();
      sum && sum->hasOneUse()) {
    terms = {sum.getLhs(), sum.getRhs()};
    half.ops.insert(sum);
  }
  Value base;
  for (Value term : terms) {
    Operation *def = term.getDefiningOp();
    if (!def || !def->hasOneUse() || !isa<LinearOp, SharedExpertOp>(def))
      return refuse(why, "the combine's addend is not a moe.shared_expert, "
                         "the moe.linear base of LoRA experts or their sum, "
                         "read by the combine alone");
    if (auto linear = dyn_cast<LinearOp>(def)) {
      if (half.kind != ExpertKind::Lora || base)
        return refuse(why, "a moe.linear addend belongs to LoRA experts "
                           "(kind = lora), once");
      if (linear.getInput() != half.input)
        return refuse(why, "the LoRA base reads another input than the "
                           "experts");
      base = linear.getWeight();
      half.ops.insert(linear);
      continue;
    }
    auto shared = cast<SharedExpertOp>(def);
    if (!half.shared.empty())
      return refuse(why, "the combine adds two shared experts");
    if (shared.getInput() != half.input)
      return refuse(why, "the shared expert reads another input than the "
                         "routed experts");
    if (half.act && shared.getAct() != *half.act)
      return refuse(why, "the shared expert's activation (" +
                             stringifyActivation(shared.getAct()) +
                             ") is not the routed experts' (" +
                             stringifyActivation(*half.act) + ")");
    half.act = shared.getAct();
    half.shared = {shared.getGate(), shared.getUp(), shared.getDown()};
    if (shared.getGateWeight())
      half.shared.push_back(shared.getGateWeight());
    half.ops.insert(shared);
  }
  if (half.kind == ExpertKind::Lora) {
    if (!base)
      return refuse(why, "LoRA experts without their moe.linear base");
    half.weights.insert(half.weights.begin(), base);
  }
  return success();
}

FailureOr<ExpertChain> mlir::moe::matchExpertChain(CombineOp combine,
                                                   std::string &why) {
  Operation *experts = combine.getRows().getDefiningOp();
  if (!experts || !experts->hasOneUse())
    return refuse(why, "the combined rows do not come from an expert op "
                       "that the combine alone reads");
  ExpertChain half;
  if (auto gated = dyn_cast<GatedExpertsOp>(experts)) {
    half.kind = ExpertKind::Gated;
    half.act = gated.getAct();
    if (gated.getGateUp())
      half.weights = {gated.getGateUp(), gated.getDown()};
    else
      half.weights = {gated.getGate(), gated.getUp(), gated.getDown()};
    half.biases = llvm::to_vector(gated.getBiases());
  } else if (auto mlp = dyn_cast<MlpExpertsOp>(experts)) {
    half.kind = ExpertKind::Mlp;
    half.act = mlp.getAct();
    half.weights = {mlp.getW1(), mlp.getW2()};
  } else if (auto lora = dyn_cast<LoraExpertsOp>(experts)) {
    half.kind = ExpertKind::Lora;
    half.alpha = lora.getAlpha().convertToDouble();
    half.weights = {lora.getLoraA(), lora.getLoraB()};
  } else if (auto mix = dyn_cast<LoraGatedExpertsOp>(experts)) {
    half.kind = ExpertKind::LoraGated;
    half.act = mix.getAct();
    half.alpha = mix.getAlpha().convertToDouble();
    half.weights = llvm::to_vector(mix->getOperands().drop_front(2));
  } else {
    return refuse(why, "the combined rows come from " + experts->getName().getStringRef() +
                           ", not from an expert op");
  }
  auto gather = experts->getOperand(0).getDefiningOp<GatherOp>();
  if (!gather || !gather->hasOneUse())
    return refuse(why, "the experts' rows are not a moe.gather that the "
                       "experts alone read");
  half.input = gather.getInput();
  half.rowToken = gather.getRowToken();
  half.rowWeight = gather.getRowWeight();
  half.groupSizes = experts->getOperand(1);
  half.slotRow = combine.getSlotRow();
  half.slotWeight = combine.getSlotWeight();
  for (Operation *op : {combine.getOperation(), experts, gather.getOperation()})
    half.ops.insert(op);
  if (Value addend = combine.getAddend()) {
    if (failed(matchAddend(addend, half, why)))
      return failure();
  } else if (half.kind == ExpertKind::Lora) {
    return refuse(why, "LoRA experts without their moe.linear base");
  }
  return half;
}

