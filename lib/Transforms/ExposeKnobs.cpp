//===- ExposeKnobs.cpp - routing constants as run-time knobs --------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEEXPOSEKNOBS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {
struct MoEExposeKnobsPass
    : mlir::moe::impl::MoEExposeKnobsBase<MoEExposeKnobsPass> {
  void runOnOperation() override {
    forEachNamedLayer(getOperation(), [](LayerOp layer, StringRef name) {
      OpBuilder builder(layer);
      Location loc = layer.getLoc();
      RoutingAttr routing = layer.getRouting();
      auto knob = [&](StringRef knobName, double value, Type type) -> Value {
        return KnobOp::create(builder, loc, type,
                              builder.getStringAttr(knobName),
                              builder.getStringAttr(name),
                              builder.getF64FloatAttr(value));
      };
      if (routing.getSelection() == Selection::Threshold && !layer.getTau() &&
          routing.getTau()) {
        // The value moves from the attribute to the knob's default.
        layer.getTauMutable().assign(
            knob("tau", routing.getTau()->value, builder.getF32Type()));
        layer.setRoutingAttr(RoutingAttr::get(
            routing.getContext(), routing.getScore(), routing.getSelection(),
            routing.getK(), routing.getGroups(), routing.getTopkGroup(),
            routing.getGroupScore(), routing.getTopP(), /*tau=*/std::nullopt,
            routing.getWeights(), routing.getRenormalize(), routing.getScale(),
            routing.getApplyWeight()));
      }
      CapacityAttr capacity = layer.getCapacityAttr();
      if (capacity && capacity.getFactor() && !layer.getCapacityFactor() &&
          routing.getSelection() != Selection::ExpertChoice)
        layer.getCapacityFactorMutable().assign(knob(
            "capacity_factor", capacity.getFactor()->value,
            builder.getF64Type()));
    });
  }
};
} // namespace
