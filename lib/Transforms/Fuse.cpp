//===- Fuse.cpp - moe-fuse-gating and moe-fuse-expert-io ------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFUSEGATING
#define GEN_PASS_DEF_MOEFUSEEXPERTIO
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// router + route -> gate, when the route is the logits' only reader.
struct FuseGating : OpRewritePattern<RouteOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(RouteOp route,
                                PatternRewriter &rewriter) const override {
    auto router = route.getLogits().getDefiningOp<RouterOp>();
    if (!router)
      return rewriter.notifyMatchFailure(route, "logits not from moe.router");
    if (!router.getLogits().hasOneUse())
      return rewriter.notifyMatchFailure(route, "logits have other readers");
    rewriter.replaceOpWithNewOp<GateOp>(
        route, router.getInput(), router.getWeight(), router.getBias(),
        route.getSelectionBias(), route.getTau(), route.getRouting());
    return success();
  }
};

/// gather -> gated/mlp experts -> combine (+ shared) -> fused_experts.
struct FuseExpertIO : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp combine,
                                PatternRewriter &rewriter) const override {
    Operation *experts = combine.getRows().getDefiningOp();
    if (!experts || !experts->hasOneUse() ||
        !isa<GatedExpertsOp, MlpExpertsOp>(experts))
      return rewriter.notifyMatchFailure(combine, "rows not from experts");
    Value rows = experts->getOperand(0);
    auto gather = rows.getDefiningOp<GatherOp>();
    if (!gather || !gather->hasOneUse())
      return rewriter.notifyMatchFailure(combine, "expert rows not gathered");

    ExpertKind kind;
    Activation act;
    Value groupSizes;
    SmallVector<Value> weights;
    if (auto gated = dyn_cast<GatedExpertsOp>(experts)) {
      kind = ExpertKind::Gated;
      act = gated.getAct();
      groupSizes = gated.getGroupSizes();
      if (gated.getGateUp())
        weights = {gated.getGateUp(), gated.getDown()};
      else
        weights = {gated.getGate(), gated.getUp(), gated.getDown()};
    } else {
      auto mlp = cast<MlpExpertsOp>(experts);
      kind = ExpertKind::Mlp;
      act = mlp.getAct();
      groupSizes = mlp.getGroupSizes();
      weights = {mlp.getW1(), mlp.getW2()};
    }

    // The only always-on term folded is a shared expert of the same input
    // and activation; anything else keeps the chain apart.
    SmallVector<Value> shared;
    if (Value addend = combine.getAddend()) {
      auto sharedOp = addend.getDefiningOp<SharedExpertOp>();
      if (!sharedOp || !sharedOp->hasOneUse() ||
          sharedOp.getInput() != gather.getInput() || sharedOp.getAct() != act)
        return rewriter.notifyMatchFailure(combine, "addend not foldable");
      shared = {sharedOp.getGate(), sharedOp.getUp(), sharedOp.getDown()};
      if (sharedOp.getGateWeight())
        shared.push_back(sharedOp.getGateWeight());
    }

    auto attr = ExpertsAttr::get(rewriter.getContext(), kind, act,
                                 std::nullopt);
    rewriter.replaceOpWithNewOp<FusedExpertsOp>(
        combine, gather.getInput(), gather.getRowToken(), groupSizes,
        gather.getRowWeight(), combine.getSlotRow(), combine.getSlotWeight(),
        weights, shared, attr);
    return success();
  }
};

/// gate -> router + route.
struct UnfuseGate : OpRewritePattern<GateOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GateOp gate,
                                PatternRewriter &rewriter) const override {
    Location loc = gate.getLoc();
    Value logits = RouterOp::create(rewriter, loc, gate.getInput(),
                                    gate.getWeight(), gate.getBias());
    rewriter.replaceOpWithNewOp<RouteOp>(gate, logits, gate.getSelectionBias(),
                                         gate.getTau(), gate.getRouting());
    return success();
  }
};

/// fused_experts -> gather + experts (+ shared) + combine.
struct UnfuseExperts : OpRewritePattern<FusedExpertsOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(FusedExpertsOp fused,
                                PatternRewriter &rewriter) const override {
    Location loc = fused.getLoc();
    ValueRange w = fused.getExpertWeights();
    auto act =
        ActivationAttr::get(rewriter.getContext(), fused.getExperts().getAct());
    Value rows = GatherOp::create(rewriter, loc, fused.getInput(),
                                  fused.getRowToken(), fused.getRowWeight());
    Value out;
    if (fused.getExperts().getKind() == ExpertKind::Gated) {
      bool gateUp = w.size() == 2;
      out = GatedExpertsOp::create(rewriter, loc, rows, fused.getGroupSizes(),
                                   gateUp ? Value() : w[0],
                                   gateUp ? Value() : w[1],
                                   gateUp ? w[0] : Value(), w.back(), act);
    } else {
      out = MlpExpertsOp::create(rewriter, loc, rows, fused.getGroupSizes(),
                                 w[0], w[1], act);
    }
    Value addend;
    ValueRange shared = fused.getSharedWeights();
    if (!shared.empty())
      addend = SharedExpertOp::create(rewriter, loc, fused.getInput(),
                                      shared[0], shared[1], shared[2],
                                      shared.size() == 4 ? shared[3] : Value(),
                                      act);
    rewriter.replaceOpWithNewOp<CombineOp>(fused, out, fused.getSlotRow(),
                                           fused.getSlotWeight(), addend);
    return success();
  }
};

struct MoEFuseGatingPass
    : mlir::moe::impl::MoEFuseGatingBase<MoEFuseGatingPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseGating>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

struct MoEFuseExpertIOPass
    : mlir::moe::impl::MoEFuseExpertIOBase<MoEFuseExpertIOPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseExpertIO>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void mlir::moe::populateMoEUnfusePatterns(RewritePatternSet &patterns) {
  patterns.add<UnfuseGate, UnfuseExperts>(patterns.getContext());
}
