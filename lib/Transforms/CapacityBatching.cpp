//===- CapacityBatching.cpp - the moe-capacity-batching pass --------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>
#include <limits>

namespace mlir::moe {
#define GEN_PASS_DEF_MOECAPACITYBATCHING
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

int64_t roundUp(int64_t n, int64_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

struct MoECapacityBatchingPass
    : mlir::moe::impl::MoECapacityBatchingBase<MoECapacityBatchingPass> {
  using Base::Base;

  void runOnOperation() override {
    if (tileRows < 1 || expectedTokens < 1 || repackCost < 0 ||
        groupCost < 0) {
      getOperation()->emitError()
          << "moe-capacity-batching expects tile-rows >= 1, expected-tokens "
             ">= 1, repack-cost >= 0 and group-cost >= 0";
      return signalPassFailure();
    }
    getOperation()->walk([&](DispatchOp op) {
      if (!op.getLayoutAttr())
        choose(op);
    });
  }

  void choose(DispatchOp op) {
    auto ids = cast<RankedTensorType>(op.getExpertIds().getType());
    if (ids.isDynamicDim(1))
      return;
    int64_t tokens = ids.isDynamicDim(0) ? expectedTokens : ids.getDimSize(0);
    int64_t slots = ids.getDimSize(1);
    int64_t experts = static_cast<int64_t>(op.getNumExperts());
    int64_t block = tileRows;

    // Expected kept assignments per expert under uniform routing.
    double expected = static_cast<double>(tokens * slots) / experts;
    CapacityAttr capacity = op.getCapacityAttr();
    int64_t c = capacity ? capacity.computeCapacity(tokens, slots, experts)
                         : -1;
    if (capacity)
      expected = std::min(expected, static_cast<double>(c));
    int64_t kept = static_cast<int64_t>(std::ceil(expected));

    double tiled = static_cast<double>(experts * roundUp(kept, block)) +
                   experts * groupCost;
    double ragged = tiled + (block > 1 ? experts * repackCost : 0.0);
    double aligned = tiled;
    // Padding needs a capacity known when compiling: not a run-time factor.
    double padded = capacity && !op.getCapacityFactor()
                        ? static_cast<double>(experts * roundUp(c, block))
                        : std::numeric_limits<double>::infinity();

    GroupLayout kind = GroupLayout::Ragged;
    double best = ragged;
    if (aligned < best) {
      kind = GroupLayout::Aligned;
      best = aligned;
    }
    if (padded < best)
      kind = GroupLayout::Padded;

    if (kind == GroupLayout::Ragged)
      return;
    MLIRContext *ctx = op.getContext();
    LayoutAttr layout =
        LayoutAttr::get(ctx, kind, kind == GroupLayout::Aligned ? block : 1);
    // The layout changes the row count N. Users keep the types they have
    // (through a cast) when N was dynamic; a static N would change the
    // static shapes downstream, so the dispatch stays ragged.
    auto rowType = cast<RankedTensorType>(op.getRowToken().getType());
    int64_t rows = DispatchOp::numRows(ids.getDimSize(0), slots, experts,
                                       capacity, layout);
    if (!rowType.isDynamicDim(0) && rowType.getDimSize(0) != rows) {
      op.emitRemark() << "kept the ragged layout: the " << stringifyGroupLayout(kind)
                      << " layout would change the static row count "
                      << rowType.getDimSize(0) << " to " << rows;
      return;
    }
    op.setLayoutAttr(layout);
    OpBuilder builder(op->getContext());
    builder.setInsertionPointAfter(op);
    for (Value result : {op.getRowToken(), op.getRowWeight()}) {
      auto old = cast<RankedTensorType>(result.getType());
      auto updated = old.clone({rows});
      if (updated == old)
        continue;
      result.setType(updated);
      auto cast = tensor::CastOp::create(builder, op.getLoc(), old, result);
      result.replaceAllUsesExcept(cast, cast);
    }
  }
};

} // namespace
