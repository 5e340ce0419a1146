//===- Fuse.cpp - moe-fuse-gating and moe-fuse-expert-io ------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "ExpertChain.h"

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

/// gather -> gated/mlp/lora experts -> combine (+ shared, + a LoRA base)
/// -> fused_experts.
struct FuseExpertIO : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp combine,
                                PatternRewriter &rewriter) const override {
    std::string why;
    FailureOr<ExpertChain> chain = matchExpertChain(combine, why);
    if (failed(chain))
      return rewriter.notifyMatchFailure(combine, why);
    if (chain->kind == ExpertKind::LoraGated)
      return rewriter.notifyMatchFailure(combine,
                                         "lora_gated experts have no fused "
                                         "form");
    auto attr = ExpertsAttr::get(
        rewriter.getContext(), chain->kind,
        chain->act.value_or(Activation::Silu),
        chain->alpha ? std::optional<F64>(F64{*chain->alpha}) : std::nullopt);
    rewriter.replaceOpWithNewOp<FusedExpertsOp>(
        combine, chain->input, chain->rowToken, chain->groupSizes,
        chain->rowWeight, chain->slotRow, chain->slotWeight, chain->weights,
        chain->biases, chain->shared, attr);
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

/// fused_experts -> gather + experts (+ shared, + a LoRA base) + combine.
struct UnfuseExperts : OpRewritePattern<FusedExpertsOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(FusedExpertsOp fused,
                                PatternRewriter &rewriter) const override {
    Location loc = fused.getLoc();
    ValueRange w = fused.getExpertWeights();
    ExpertsAttr experts = fused.getExperts();
    auto act = ActivationAttr::get(rewriter.getContext(), experts.getAct());
    Value rows = GatherOp::create(rewriter, loc, fused.getInput(),
                                  fused.getRowToken(), fused.getRowWeight());
    Value out, addend;
    switch (experts.getKind()) {
    case ExpertKind::Gated: {
      bool gateUp = w.size() == 2;
      out = GatedExpertsOp::create(
          rewriter, loc, rows, fused.getGroupSizes(), gateUp ? Value() : w[0],
          gateUp ? Value() : w[1], gateUp ? w[0] : Value(), w.back(),
          fused.getExpertBiases(), act);
      break;
    }
    case ExpertKind::Mlp:
      out = MlpExpertsOp::create(rewriter, loc, rows, fused.getGroupSizes(),
                                 w[0], w[1], act);
      break;
    case ExpertKind::Lora:
      out = LoraExpertsOp::create(
          rewriter, loc, rows, fused.getGroupSizes(), w[1], w[2],
          rewriter.getF64FloatAttr(experts.getAlpha()->value));
      addend = LinearOp::create(rewriter, loc, fused.getInput(), w[0]);
      break;
    case ExpertKind::LoraGated:
      return rewriter.notifyMatchFailure(fused, "not a fused kind");
    }
    ValueRange shared = fused.getSharedWeights();
    if (!shared.empty()) {
      Value sharedOut = SharedExpertOp::create(
          rewriter, loc, fused.getInput(), shared[0], shared[1], shared[2],
          shared.size() == 4 ? shared[3] : Value(), act);
      addend = addend ? arith::AddFOp::create(rewriter, loc, addend, sharedOut)
                            .getResult()
                      : sharedOut;
    }
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
