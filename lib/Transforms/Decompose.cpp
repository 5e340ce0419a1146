//===- Decompose.cpp - expand moe.layer into primitive ops ----------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEDECOMPOSE
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// The routed experts of `layer` applied to the grouped `rows`, and the
/// always-on term its kind adds to every token (the LoRA base), if any.
struct RoutedExperts {
  Value rows;
  Value addend;
};

RoutedExperts buildRoutedExperts(PatternRewriter &rewriter, LayerOp layer,
                                 Value rows, Value groupSizes) {
  Location loc = layer.getLoc();
  ValueRange w = layer.getExpertWeights();
  ExpertsAttr experts = layer.getExperts();
  auto act = ActivationAttr::get(rewriter.getContext(), experts.getAct());
  switch (experts.getKind()) {
  case ExpertKind::Gated: {
    bool fused = w.size() == 2;
    Value out = GatedExpertsOp::create(
        rewriter, loc, rows, groupSizes, fused ? Value() : w[0],
        fused ? Value() : w[1], fused ? w[0] : Value(), w.back(),
        layer.getExpertBiases(), act);
    return {out, Value()};
  }
  case ExpertKind::Mlp:
    return {MlpExpertsOp::create(rewriter, loc, rows, groupSizes, w[0], w[1],
                                 act),
            Value()};
  case ExpertKind::Lora: {
    FloatAttr alpha = rewriter.getF64FloatAttr(*experts.getAlpha());
    Value delta =
        LoraExpertsOp::create(rewriter, loc, rows, groupSizes, w[1], w[2],
                              alpha);
    Value base = LinearOp::create(rewriter, loc, layer.getInput(), w[0]);
    return {delta, base};
  }
  case ExpertKind::LoraGated: {
    FloatAttr alpha = rewriter.getF64FloatAttr(*experts.getAlpha());
    Value out = LoraGatedExpertsOp::create(
        rewriter, loc, rows, groupSizes, w[0], w[1], w[2], w[3], w[4], w[5],
        w[6], w[7], w[8], act, alpha);
    return {out, Value()};
  }
  }
  llvm_unreachable("unknown expert kind");
}

struct DecomposeLayer : OpRewritePattern<LayerOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LayerOp layer,
                                PatternRewriter &rewriter) const override {
    Location loc = layer.getLoc();
    RoutingAttr routing = layer.getRouting();
    int64_t numExperts = layer.getNumExperts();
    Value input = layer.getInput();

    Value logits = RouterOp::create(rewriter, loc, input,
                                    layer.getRouterWeight(),
                                    layer.getRouterBias());

    // Expert choice bounds each expert by construction; token choice drops
    // in dispatch.
    Value expertIds, weights;
    CapacityAttr dispatchCapacity = layer.getCapacityAttr();
    if (routing.getSelection() == Selection::ExpertChoice) {
      auto choice = ExpertChoiceOp::create(rewriter, loc, logits,
                                           routing.getK(),
                                           layer.getCapacityAttr());
      expertIds = choice.getExpertIds();
      weights = choice.getWeights();
      dispatchCapacity = nullptr;
    } else {
      auto route = RouteOp::create(rewriter, loc, logits,
                                   layer.getSelectionBias(), layer.getTau(),
                                   routing);
      expertIds = route.getExpertIds();
      weights = route.getWeights();
    }

    auto dispatch = DispatchOp::create(
        rewriter, loc, expertIds, weights, layer.getCapacityFactor(),
        numExperts, dispatchCapacity, /*layout=*/LayoutAttr());
    bool weightInput = routing.getApplyWeight() == ApplyWeight::Input;
    Value rows = GatherOp::create(
        rewriter, loc, input, dispatch.getRowToken(),
        weightInput ? dispatch.getRowWeight() : Value());

    RoutedExperts routed =
        buildRoutedExperts(rewriter, layer, rows, dispatch.getGroupSizes());
    Value addend = routed.addend;
    SmallVector<Value> shared(layer.getSharedWeights());
    if (shared.size() == 2) {
      // A fused gate_up [2 fs, d]: its gate rows, then its up rows. A
      // back end packs the slices of a checkpoint weight when it loads.
      // Sizes that are not static come from the operands: fs is also
      // down's dim 1.
      auto type = cast<RankedTensorType>(shared[0].getType());
      OpFoldResult fs =
          ShapedType::isDynamic(type.getDimSize(0))
              ? tensor::getMixedSize(rewriter, loc, shared[1], 1)
              : OpFoldResult(rewriter.getIndexAttr(type.getDimSize(0) / 2));
      OpFoldResult d = tensor::getMixedSize(rewriter, loc, shared[0], 1);
      OpFoldResult zero = rewriter.getIndexAttr(0),
                   one = rewriter.getIndexAttr(1);
      auto rows = [&](OpFoldResult first) -> Value {
        return tensor::ExtractSliceOp::create(
            rewriter, loc, shared[0], {first, zero}, {fs, d}, {one, one});
      };
      shared = {rows(zero), rows(fs), shared[1]};
    }
    if (!shared.empty()) {
      auto act =
          ActivationAttr::get(rewriter.getContext(), layer.getExperts().getAct());
      Value sharedOut = SharedExpertOp::create(
          rewriter, loc, input, shared[0], shared[1], shared[2],
          shared.size() == 4 ? shared[3] : Value(), act);
      addend = addend ? arith::AddFOp::create(rewriter, loc, addend, sharedOut)
                            .getResult()
                      : sharedOut;
    }

    Value output = CombineOp::create(
        rewriter, loc, routed.rows, dispatch.getSlotRow(),
        weightInput ? Value() : dispatch.getSlotWeight(), addend);
    Value assignments =
        ExpertLoadOp::create(rewriter, loc, expertIds, numExperts);
    // Records that asked for co-activation counts get the layer's ids.
    for (Operation *user : layer.getAssignments().getUsers()) {
      auto record = dyn_cast<RecordStatsOp>(user);
      if (record && record.getWithCoactivation() && !record.getExpertIds())
        rewriter.modifyOpInPlace(record, [&] {
          record.getExpertIdsMutable().assign(expertIds);
          record.setWithCoactivation(false);
        });
    }
    rewriter.replaceOp(layer, {output, assignments, dispatch.getDropped()});
    return success();
  }
};

struct MoEDecomposePass
    : mlir::moe::impl::MoEDecomposeBase<MoEDecomposePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateMoEDecomposePatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateMoEDecomposePatterns(RewritePatternSet &patterns) {
  patterns.add<DecomposeLayer>(patterns.getContext());
}
