//===- InsertStats.cpp - record expert statistics of every layer ----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEINSERTSTATS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::forEachNamedLayer(
    Operation *root, llvm::function_ref<void(LayerOp, StringRef)> fn) {
  root->walk([&](FunctionOpInterface function) {
    SmallVector<LayerOp> layers;
    function.walk([&](LayerOp layer) { layers.push_back(layer); });
    for (auto [i, layer] : llvm::enumerate(layers)) {
      std::string name = function.getName().str();
      if (layers.size() > 1)
        name += "#" + std::to_string(i);
      fn(layer, name);
    }
  });
}

namespace {
struct MoEInsertStatsPass
    : mlir::moe::impl::MoEInsertStatsBase<MoEInsertStatsPass> {
  using Base::Base;

  void runOnOperation() override {
    forEachNamedLayer(getOperation(), [&](LayerOp layer, StringRef name) {
      bool recorded = llvm::any_of(layer.getAssignments().getUsers(),
                                   llvm::IsaPred<RecordStatsOp>);
      if (recorded)
        return;
      OpBuilder builder(layer->getContext());
      builder.setInsertionPointAfter(layer);
      Location loc = layer.getLoc();
      Value tokens = tensor::DimOp::create(builder, loc, layer.getInput(), 0);
      RecordStatsOp::create(builder, loc, layer.getAssignments(),
                            layer.getDropped(), tokens,
                            /*expert_ids=*/Value(), builder.getStringAttr(name),
                            /*with_coactivation=*/coactivation);
    });
  }
};
} // namespace
