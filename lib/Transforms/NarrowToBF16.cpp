//===- NarrowToBF16.cpp - f32 and f16 layers computed in bf16 -------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOENARROWTOBF16
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// Whether `value` is a tensor of f32 or f16, which the pass rounds.
bool isWide(Value value) {
  Type element = cast<ShapedType>(value.getType()).getElementType();
  return element.isF32() || element.isF16();
}

struct MoENarrowToBF16Pass
    : mlir::moe::impl::MoENarrowToBF16Base<MoENarrowToBF16Pass> {
  void runOnOperation() override {
    SmallVector<LayerOp> layers;
    getOperation()->walk([&](LayerOp layer) { layers.push_back(layer); });
    for (LayerOp layer : layers)
      narrow(layer);
    // Checkpoint weights that only the narrowed layers read.
    for (WeightOp weight : replacedWeights)
      if (weight->use_empty())
        weight->erase();
    roundings.clear();
    replacedWeights.clear();
  }

private:
  void narrow(LayerOp layer);
  Value narrowed(OpBuilder &b, Value value);

  /// The bf16 value of each operand rounded so far, shared by the layers
  /// that read it.
  DenseMap<Value, Value> roundings;
  SetVector<WeightOp> replacedWeights;
};

/// The bf16 version of `value`: a checkpoint weight rounded by the runtime
/// at load time, anything else by an arith.truncf after its definition.
Value MoENarrowToBF16Pass::narrowed(OpBuilder &b, Value value) {
  if (Value known = roundings.lookup(value))
    return known;
  auto type = cast<RankedTensorType>(value.getType());
  Type bf16 = b.getBF16Type();
  Value result;
  if (auto weight = value.getDefiningOp<WeightOp>()) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfter(weight);
    // The same tensors, rounded to bf16 by the runtime at load time.
    WeightOp rounded = weight.cloneWithElementType(b, bf16);
    replacedWeights.insert(weight);
    result = rounded.getResult();
  } else {
    OpBuilder::InsertionGuard guard(b);
    if (Operation *def = value.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(cast<BlockArgument>(value).getOwner());
    // f16 to bf16 through f32, exactly: one rounding.
    Location loc = value.getLoc();
    Value wide = value;
    if (type.getElementType().isF16())
      wide = arith::ExtFOp::create(b, loc, type.clone(b.getF32Type()), value);
    result = arith::TruncFOp::create(b, loc, type.clone(bf16), wide);
  }
  roundings[value] = result;
  return result;
}

void MoENarrowToBF16Pass::narrow(LayerOp layer) {
  OpBuilder b(layer);
  // The tensors the layer computes with; the router and selection biases
  // are added to the f32 logits in f32.
  SmallVector<OpOperand *> operands = {&layer.getInputMutable(),
                                       &layer.getRouterWeightsMutable()[0]};
  for (MutableOperandRange range :
       {layer.getExpertWeightsMutable(), layer.getExpertBiasesMutable(),
        layer.getSharedWeightsMutable()})
    for (OpOperand &operand : range)
      operands.push_back(&operand);
  bool changed = false;
  for (OpOperand *operand : operands) {
    if (!isWide(operand->get()))
      continue;
    operand->set(narrowed(b, operand->get()));
    changed = true;
  }
  if (!changed)
    return;

  // The output follows the input's type (the verifier's rule); widened
  // back where the input was.
  Value output = layer.getOutput();
  auto outType = cast<RankedTensorType>(output.getType());
  Type element = cast<ShapedType>(layer.getInput().getType()).getElementType();
  if (element == outType.getElementType())
    return;
  output.setType(outType.clone(element));
  b.setInsertionPointAfter(layer);
  // bf16 to f16 through f32 (exact), rounded once.
  Location loc = layer.getLoc();
  Operation *first =
      arith::ExtFOp::create(b, loc, outType.clone(b.getF32Type()), output);
  Value widened = first->getResult(0);
  if (!outType.getElementType().isF32())
    widened = arith::TruncFOp::create(b, loc, outType, widened);
  output.replaceAllUsesExcept(widened, first);
}

} // namespace
