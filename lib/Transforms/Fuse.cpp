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

/// gather -> gated/mlp/lora experts -> combine (+ shared, + a LoRA base)
/// -> fused_experts.
struct FuseExpertIO : OpRewritePattern<CombineOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(CombineOp combine,
                                PatternRewriter &rewriter) const override {
    Operation *experts = combine.getRows().getDefiningOp();
    if (!experts || !experts->hasOneUse() ||
        !isa<GatedExpertsOp, MlpExpertsOp, LoraExpertsOp>(experts))
      return rewriter.notifyMatchFailure(combine, "rows not from experts");
    Value rows = experts->getOperand(0);
    auto gather = rows.getDefiningOp<GatherOp>();
    if (!gather || !gather->hasOneUse())
      return rewriter.notifyMatchFailure(combine, "expert rows not gathered");
    Value input = gather.getInput();

    ExpertKind kind;
    std::optional<Activation> act;
    std::optional<double> alpha;
    Value groupSizes;
    SmallVector<Value> weights, biases;
    if (auto gated = dyn_cast<GatedExpertsOp>(experts)) {
      kind = ExpertKind::Gated;
      act = gated.getAct();
      groupSizes = gated.getGroupSizes();
      biases = gated.getBiases();
      if (gated.getGateUp())
        weights = {gated.getGateUp(), gated.getDown()};
      else
        weights = {gated.getGate(), gated.getUp(), gated.getDown()};
    } else if (auto mlp = dyn_cast<MlpExpertsOp>(experts)) {
      kind = ExpertKind::Mlp;
      act = mlp.getAct();
      groupSizes = mlp.getGroupSizes();
      weights = {mlp.getW1(), mlp.getW2()};
    } else {
      auto lora = cast<LoraExpertsOp>(experts);
      kind = ExpertKind::Lora;
      alpha = lora.getAlpha().convertToDouble();
      groupSizes = lora.getGroupSizes();
      weights = {Value(), lora.getLoraA(), lora.getLoraB()};
    }

    // The always-on terms folded: a shared expert of the same input (and,
    // for gated/mlp experts, activation), and for LoRA experts the frozen
    // base `moe.linear` of the input, which LoRA requires. Anything else
    // keeps the chain apart.
    SmallVector<Value> terms;
    if (Value addend = combine.getAddend()) {
      if (auto sum = addend.getDefiningOp<arith::AddFOp>();
          sum && sum->hasOneUse())
        terms = {sum.getLhs(), sum.getRhs()};
      else
        terms = {addend};
    }
    SmallVector<Value> shared;
    Value base;
    for (Value term : terms) {
      Operation *def = term.getDefiningOp();
      if (auto linear = dyn_cast_or_null<LinearOp>(def);
          linear && linear->hasOneUse() && kind == ExpertKind::Lora && !base &&
          linear.getInput() == input) {
        base = linear.getWeight();
        continue;
      }
      auto sharedOp = dyn_cast_or_null<SharedExpertOp>(def);
      if (!sharedOp || !sharedOp->hasOneUse() || !shared.empty() ||
          sharedOp.getInput() != input || (act && sharedOp.getAct() != *act))
        return rewriter.notifyMatchFailure(combine, "addend not foldable");
      if (!act)
        act = sharedOp.getAct();
      shared = {sharedOp.getGate(), sharedOp.getUp(), sharedOp.getDown()};
      if (sharedOp.getGateWeight())
        shared.push_back(sharedOp.getGateWeight());
    }
    if (kind == ExpertKind::Lora) {
      if (!base)
        return rewriter.notifyMatchFailure(combine, "LoRA without its base");
      weights[0] = base;
    }

    auto attr = ExpertsAttr::get(
        rewriter.getContext(), kind, act.value_or(Activation::Silu),
        alpha ? std::optional<F64>(F64{*alpha}) : std::nullopt);
    rewriter.replaceOpWithNewOp<FusedExpertsOp>(
        combine, input, gather.getRowToken(), groupSizes, gather.getRowWeight(),
        combine.getSlotRow(), combine.getSlotWeight(), weights, biases, shared,
        attr);
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
