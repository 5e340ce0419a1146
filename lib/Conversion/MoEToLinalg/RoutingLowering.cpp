//===- RoutingLowering.cpp - router, selection, losses to linalg/scf ------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Selection is written the plain way: for each token, the k experts are
// picked one after the other, each pick the best candidate that comes after
// the previous pick in the order of the spec. Nothing is sorted and no mask
// is kept, so the code reads like the spec.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// The "before everything" pick that starts a chain of pickNext.
Pick chainStart(LocBuilder &b) {
  return {constI1(b, true), constF32(b, kInf), constIndex(b, -1)};
}

/// Counts of valid expert ids per expert: `counts[e]` = number of slots
/// among columns [firstSlot, lastSlot) of `ids [T, S]` that hold e.
Value countAssignments(LocBuilder &b, Value ids, int64_t numExperts,
                       int64_t firstSlot, int64_t lastSlot) {
  Value counts = filledTensor(b, {b.getIndexAttr(numExperts)}, constI64(b, 0));
  Value numTokens = dimSize(b, ids, 0);
  return forLoop(
      b, constIndex(b, 0), numTokens, counts,
      [&](LocBuilder &tb, Value t, ValueRange tArgs) -> SmallVector<Value> {
        return forLoop(
            tb, constIndex(tb, firstSlot), constIndex(tb, lastSlot), tArgs,
            [&](LocBuilder &jb, Value j, ValueRange jArgs) -> SmallVector<Value> {
              Value e = extract(jb, ids, {t, j});
              Value valid = arith::AndIOp::create(
                  jb,
                  arith::CmpIOp::create(jb, arith::CmpIPredicate::sge, e,
                                        constI32(jb, 0)),
                  arith::CmpIOp::create(jb, arith::CmpIPredicate::slt, e,
                                        constI32(jb, numExperts)));
              return ifThenElse(
                  jb, valid,
                  [&](LocBuilder &ib) -> SmallVector<Value> {
                    Value idx = intToIndex(ib, e);
                    Value old = extract(ib, jArgs[0], idx);
                    Value inc =
                        arith::AddIOp::create(ib, old, constI64(ib, 1));
                    return {insert(ib, inc, jArgs[0], idx)};
                  },
                  [&](LocBuilder &) -> SmallVector<Value> { return {jArgs[0]}; });
            });
      })[0];
}

//===----------------------------------------------------------------------===//
// moe.router
//===----------------------------------------------------------------------===//

struct RouterLowering : OpConversionPattern<RouterOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RouterOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value logits = linear(b, adaptor.getInput(), adaptor.getWeight());
    if (adaptor.getBias())
      logits = addColumnBias(b, logits, adaptor.getBias());
    rewriter.replaceOp(op, logits);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// moe.route
//===----------------------------------------------------------------------===//

/// Group scores `[T, G]` of grouped_top_k: the best key of each group
/// (`max`) or the sum of its two best keys (`sum_top2`), in the selection
/// order (NaN lowest).
Value groupScores(LocBuilder &b, Value keys, int64_t numGroups,
                  GroupScore groupScore) {
  MLIRContext *ctx = b.getContext();
  Value numTokens = dimSize(b, keys, 0);
  Value groupSize = arith::DivUIOp::create(b, dimSize(b, keys, 1),
                                          constIndex(b, numGroups));
  Value nan = constF32(b, std::numeric_limits<double>::quiet_NaN());
  SmallVector<OpFoldResult> shape = {numTokens, b.getIndexAttr(numGroups)};
  Value best = filledTensor(b, shape, nan);
  Value second = filledTensor(b, shape, nan);
  // A shapeless input that only gives the loop over a group its extent.
  Value extent = tensor::EmptyOp::create(b, {OpFoldResult(groupSize)},
                                         b.getI1Type());
  AffineExpr t, g, j;
  bindDims(ctx, t, g, j);
  SmallVector<AffineMap> maps = {AffineMap::get(3, 0, {j}, ctx),
                                 AffineMap::get(3, 0, {t, g}, ctx),
                                 AffineMap::get(3, 0, {t, g}, ctx)};
  auto generic = linalg::GenericOp::create(
      b, TypeRange{best.getType(), second.getType()}, extent,
      ValueRange{best, second}, maps,
      {utils::IteratorType::parallel, utils::IteratorType::parallel,
       utils::IteratorType::reduction},
      [&](OpBuilder &nested, Location loc, ValueRange args) {
        LocBuilder nb(loc, nested);
        Value tt = linalg::IndexOp::create(nb, 0);
        Value gg = linalg::IndexOp::create(nb, 1);
        Value jj = linalg::IndexOp::create(nb, 2);
        Value e = arith::AddIOp::create(
            nb, arith::MulIOp::create(nb, gg, groupSize), jj);
        Value x = extract(nb, keys, {tt, e});
        // Values only: equal keys are interchangeable here.
        Value zero = constIndex(nb, 0), one = constIndex(nb, 1);
        Value overBest = comesBefore(nb, x, zero, args[1], one);
        Value overSecond = comesBefore(nb, x, zero, args[2], one);
        Value newBest = arith::SelectOp::create(nb, overBest, x, args[1]);
        Value demoted = arith::SelectOp::create(nb, overSecond, x, args[2]);
        Value newSecond =
            arith::SelectOp::create(nb, overBest, args[1], demoted);
        linalg::YieldOp::create(nb, ValueRange{newBest, newSecond});
      });
  if (groupScore == GroupScore::Max)
    return generic.getResult(0);
  return mapElements(b, generic.getResults(), b.getF32Type(),
                     [](LocBuilder &nb, ValueRange v) {
                       return arith::AddFOp::create(nb, v[0], v[1])
                           .getResult();
                     });
}

struct RouteLowering : OpConversionPattern<RouteOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(RouteOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    RoutingAttr routing = op.getRouting();
    Value logits = adaptor.getLogits();
    Value score = scores(b, routing.getScore(), logits);
    Value keys = adaptor.getSelectionBias()
                     ? addColumnBias(b, score, adaptor.getSelectionBias())
                     : score;
    Value gs;
    if (routing.getSelection() == Selection::GroupedTopK)
      gs = groupScores(b, keys, routing.getGroups(), routing.getGroupScore());

    Value numTokens = dimSize(b, logits, 0);
    SmallVector<OpFoldResult> shape =
        sizesOf(b, op.getExpertIds().getType(), {numTokens, Value()});
    Value ids = filledTensor(b, shape, constI32(b, -1));
    Value weights = filledTensor(b, shape, constF32(b, 0.0));
    SmallVector<Value> result = forLoop(
        b, constIndex(b, 0), numTokens, {ids, weights},
        [&](LocBuilder &tb, Value t, ValueRange args) -> SmallVector<Value> {
          Value tokenIds = selectExperts(tb, routing, keys, gs, t, args[0]);
          tokenIds = dropSlots(tb, routing, adaptor.getTau(), score, t,
                               tokenIds);
          Value tokenWeights =
              combineWeights(tb, routing, logits, score, t, tokenIds, args[1]);
          return {tokenIds, tokenWeights};
        });
    rewriter.replaceOp(op, result);
    return success();
  }

private:
  /// Writes the top-k experts of token `t` into row t of `ids`, in order.
  static Value selectExperts(LocBuilder &b, RoutingAttr routing, Value keys,
                             Value groupScores, Value t, Value ids) {
    Value numExperts = dimSize(b, keys, 1);
    auto key = [&](LocBuilder &nb, Value e) { return extract(nb, keys, {t, e}); };

    // grouped_top_k: an expert is allowed when its group is among the
    // topk_group best, i.e. does not come after the last kept group.
    std::function<Value(LocBuilder &, Value)> allowed;
    if (groupScores) {
      Value numGroups = dimSize(b, groupScores, 1);
      auto groupKey = [&](LocBuilder &nb, Value g) {
        return extract(nb, groupScores, {t, g});
      };
      Pick last = chainStart(b);
      for (int64_t i = 0; i < *routing.getTopkGroup(); ++i)
        last = pickNext(b, numGroups, groupKey, nullptr, last);
      Value groupSize = arith::DivUIOp::create(b, numExperts, numGroups);
      allowed = [=](LocBuilder &nb, Value e) -> Value {
        Value g = arith::DivUIOp::create(nb, e, groupSize);
        Value isLast = arith::CmpIOp::create(nb, arith::CmpIPredicate::eq, g,
                                             last.index);
        Value before = comesBefore(nb, extract(nb, groupScores, {t, g}), g,
                                   last.key, last.index);
        return arith::OrIOp::create(nb, isLast, before);
      };
    }

    Pick start = chainStart(b);
    return forLoop(
        b, constIndex(b, 0), constIndex(b, routing.getK()),
        {ids, start.found, start.key, start.index},
        [&](LocBuilder &jb, Value j, ValueRange args) -> SmallVector<Value> {
          Pick previous{args[1], args[2], args[3]};
          Pick pick = pickNext(jb, numExperts, key,
                               allowed ? function_ref<Value(LocBuilder &, Value)>(
                                             allowed)
                                       : nullptr,
                               previous);
          Value id = arith::SelectOp::create(
              jb, pick.found, indexToI32(jb, pick.index), constI32(jb, -1));
          return {insert(jb, id, args[0], {t, j}), pick.found, pick.key,
                  pick.index};
        })[0];
  }

  /// top_p and threshold: marks the slots they do not take as unused.
  static Value dropSlots(LocBuilder &b, RoutingAttr routing, Value tauOperand,
                         Value score, Value t, Value ids) {
    Selection selection = routing.getSelection();
    if (selection != Selection::TopP && selection != Selection::Threshold)
      return ids;
    Value p = selection == Selection::TopP
                  ? constF32(b, routing.getTopP()->value)
                  : Value();
    Value tau = tauOperand ? tauOperand
                : routing.getTau() ? constF32(b, routing.getTau()->value)
                                   : Value();
    // iter_args: ids, sum of the scores taken so far, still taking (top_p).
    return forLoop(
        b, constIndex(b, 0), constIndex(b, routing.getK()),
        {ids, constF32(b, 0.0), constI1(b, true)},
        [&](LocBuilder &jb, Value j, ValueRange args) -> SmallVector<Value> {
          Value e = extract(jb, args[0], {t, j});
          Value valid = arith::CmpIOp::create(jb, arith::CmpIPredicate::sge,
                                              e, constI32(jb, 0));
          Value safe = arith::SelectOp::create(jb, valid, e, constI32(jb, 0));
          Value s = extract(jb, score, {t, intToIndex(jb, safe)});
          Value first = arith::CmpIOp::create(jb, arith::CmpIPredicate::eq, j,
                                              constIndex(jb, 0));
          Value keep, taking = args[2];
          if (selection == Selection::TopP) {
            Value below = arith::CmpFOp::create(jb, arith::CmpFPredicate::OLT,
                                                args[1], p);
            taking = arith::AndIOp::create(jb, args[2], below);
            keep = arith::OrIOp::create(jb, first, taking);
          } else {
            Value below = arith::CmpFOp::create(jb, arith::CmpFPredicate::OLT,
                                                s, tau);
            Value notBelow =
                arith::XOrIOp::create(jb, below, constI1(jb, true));
            keep = arith::OrIOp::create(jb, first, notBelow);
          }
          keep = arith::AndIOp::create(jb, keep, valid);
          Value id = arith::SelectOp::create(jb, keep, e, constI32(jb, -1));
          Value taken = arith::SelectOp::create(jb, keep, s, constF32(jb, 0.0));
          return {insert(jb, id, args[0], {t, j}),
                  arith::AddFOp::create(jb, args[1], taken), taking};
        })[0];
  }

  /// The combine weights of token t's kept slots (spec section 3).
  static Value combineWeights(LocBuilder &b, RoutingAttr routing, Value logits,
                              Value score, Value t, Value ids,
                              Value weights) {
    bool softmaxSelected =
        routing.getWeights() == CombineWeights::SoftmaxSelected;
    Value zero = constIndex(b, 0);
    Value numSlots = constIndex(b, routing.getK());

    // Visits the kept slots: f(builder, slot, expert) -> weight, summed.
    auto forKept = [&](Value init, Value sumInit,
                       function_ref<Value(LocBuilder &, Value, Value, Value)> f) {
      return forLoop(
          b, zero, numSlots, {init, sumInit},
          [&](LocBuilder &jb, Value j, ValueRange args) -> SmallVector<Value> {
            Value e = extract(jb, ids, {t, j});
            Value valid = arith::CmpIOp::create(
                jb, arith::CmpIPredicate::sge, e, constI32(jb, 0));
            Value safe = intToIndex(
                jb, arith::SelectOp::create(jb, valid, e, constI32(jb, 0)));
            Value w = f(jb, j, safe, args[0]);
            w = arith::SelectOp::create(jb, valid, w, constF32(jb, 0.0));
            return {insert(jb, w, args[0], {t, j}),
                    arith::AddFOp::create(jb, args[1], w)};
          });
    };

    // Raw weights: the unbiased scores, or the softmax over the kept logits.
    SmallVector<Value> raw;
    if (softmaxSelected) {
      Value max = forLoop(
          b, zero, numSlots, {constF32(b, -kInf)},
          [&](LocBuilder &jb, Value j, ValueRange args) -> SmallVector<Value> {
            Value e = extract(jb, ids, {t, j});
            Value valid = arith::CmpIOp::create(
                jb, arith::CmpIPredicate::sge, e, constI32(jb, 0));
            Value safe = intToIndex(
                jb, arith::SelectOp::create(jb, valid, e, constI32(jb, 0)));
            Value z = extract(jb, logits, {t, safe});
            Value m = arith::MaximumFOp::create(jb, args[0], z);
            return {arith::SelectOp::create(jb, valid, m, args[0])};
          })[0];
      SmallVector<Value> exps = forKept(
          weights, constF32(b, 0.0),
          [&](LocBuilder &jb, Value, Value e, Value) -> Value {
            Value z = extract(jb, logits, {t, e});
            return math::ExpOp::create(jb, arith::SubFOp::create(jb, z, max));
          });
      raw = forKept(exps[0], constF32(b, 0.0),
                    [&](LocBuilder &jb, Value j, Value, Value w) -> Value {
                      return arith::DivFOp::create(
                          jb, extract(jb, w, {t, j}), exps[1]);
                    });
    } else {
      raw = forKept(weights, constF32(b, 0.0),
                    [&](LocBuilder &jb, Value, Value e, Value) -> Value {
                      return extract(jb, score, {t, e});
                    });
    }

    // Renormalize over the kept slots, then scale.
    Value denominator =
        routing.getRenormalize()
            ? arith::AddFOp::create(b, raw[1], constF32(b, 1e-20)).getResult()
            : Value();
    Value scale = constF32(b, routing.getScale().value);
    return forKept(raw[0], constF32(b, 0.0),
                   [&](LocBuilder &jb, Value j, Value, Value w) -> Value {
                     Value x = extract(jb, w, {t, j});
                     if (denominator)
                       x = arith::DivFOp::create(jb, x, denominator);
                     return arith::MulFOp::create(jb, x, scale);
                   })[0];
  }
};

//===----------------------------------------------------------------------===//
// moe.expert_choice
//===----------------------------------------------------------------------===//

struct ExpertChoiceLowering : OpConversionPattern<ExpertChoiceOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ExpertChoiceOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value logits = adaptor.getLogits();
    Value score = scores(b, ScoreFunc::Softmax, logits);
    Value numTokens = dimSize(b, logits, 0);
    Value numExperts = dimSize(b, logits, 1);
    auto logitsType = cast<RankedTensorType>(logits.getType());
    if (logitsType.isDynamicDim(1))
      return rewriter.notifyMatchFailure(op, "needs a static expert count");
    int64_t staticExperts = logitsType.getDimSize(1);
    int64_t k = op.getK();

    Value cap;
    if (CapacityAttr attr = op.getCapacityAttr()) {
      cap = capacity(b, attr, numTokens, k, staticExperts);
    } else {
      Value assignments = arith::MulIOp::create(b, numTokens, constIndex(b, k));
      cap = arith::CeilDivSIOp::create(b, assignments, numExperts);
    }
    Value taken = arith::MinSIOp::create(b, cap, numTokens);

    SmallVector<OpFoldResult> perExpert =
        sizesOf(b, op.getTokenIds().getType(), {numExperts, cap});
    SmallVector<OpFoldResult> perToken =
        sizesOf(b, op.getExpertIds().getType(), {numTokens, numExperts});
    Value tokenIds = filledTensor(b, perExpert, constI32(b, -1));
    Value tokenWeights = filledTensor(b, perExpert, constF32(b, 0.0));
    Value ids = filledTensor(b, perToken, constI32(b, -1));
    Value weights = filledTensor(b, perToken, constF32(b, 0.0));

    SmallVector<Value> result = forLoop(
        b, constIndex(b, 0), numExperts,
        {tokenIds, tokenWeights, ids, weights},
        [&](LocBuilder &eb, Value e, ValueRange eArgs) -> SmallVector<Value> {
          auto key = [&](LocBuilder &nb, Value t) {
            return extract(nb, score, {t, e});
          };
          Pick start = chainStart(eb);
          SmallVector<Value> init(eArgs);
          init.append({start.found, start.key, start.index});
          return SmallVector<Value>(
              ArrayRef<Value>(forLoop(
                                  eb, constIndex(eb, 0), taken, init,
                                  [&](LocBuilder &cb, Value c, ValueRange args)
                                      -> SmallVector<Value> {
                                    Pick pick = pickNext(
                                        cb, numTokens, key, nullptr,
                                        Pick{args[4], args[5], args[6]});
                                    Value tok = pick.index;
                                    Value s = extract(cb, score, {tok, e});
                                    return {insert(cb, indexToI32(cb, tok),
                                                   args[0], {e, c}),
                                            insert(cb, s, args[1], {e, c}),
                                            insert(cb, indexToI32(cb, e),
                                                   args[2], {tok, e}),
                                            insert(cb, s, args[3], {tok, e}),
                                            pick.found, pick.key, pick.index};
                                  }))
                  .take_front(4));
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Losses and statistics
//===----------------------------------------------------------------------===//

/// `value / numTokens`, and 0 when there are no tokens.
Value perToken(LocBuilder &b, Value value, Value numTokens) {
  Value count = arith::SIToFPOp::create(b, b.getF32Type(),
                                        indexToI64(b, numTokens));
  Value empty = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, numTokens,
                                      constIndex(b, 0));
  Value quotient = arith::DivFOp::create(b, value, count);
  return arith::SelectOp::create(b, empty, constF32(b, 0.0), quotient);
}

Value scalarTensor(LocBuilder &b, Value value) {
  return tensor::FromElementsOp::create(
      b, RankedTensorType::get({}, b.getF32Type()), value);
}

struct AuxLossLowering : OpConversionPattern<AuxLossOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(AuxLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value logits = adaptor.getLogits();
    Value ids = adaptor.getExpertIds();
    auto logitsType = cast<RankedTensorType>(logits.getType());
    auto idsType = cast<RankedTensorType>(ids.getType());
    if (logitsType.isDynamicDim(1) || idsType.isDynamicDim(1))
      return rewriter.notifyMatchFailure(op, "needs static E and S");
    int64_t numExperts = logitsType.getDimSize(1);
    int64_t numSlots = idsType.getDimSize(1);
    Value numTokens = dimSize(b, logits, 0);

    // P[e] * T: the column sums of the softmax.
    Value probs = scores(b, ScoreFunc::Softmax, logits);
    MLIRContext *ctx = b.getContext();
    AffineExpr t, e;
    bindDims(ctx, t, e);
    Value sums =
        filledTensor(b, {b.getIndexAttr(numExperts)}, constF32(b, 0.0));
    sums = linalg::GenericOp::create(
               b, sums.getType(), probs, sums,
               SmallVector<AffineMap>{AffineMap::get(2, 0, {t, e}, ctx),
                                      AffineMap::get(2, 0, {e}, ctx)},
               {utils::IteratorType::reduction, utils::IteratorType::parallel},
               [&](OpBuilder &nested, Location loc, ValueRange args) {
                 LocBuilder nb(loc, nested);
                 linalg::YieldOp::create(
                     nb, arith::AddFOp::create(nb, args[1], args[0])
                             .getResult());
               })
               .getResult(0);

    bool firstOnly = op.getConvention() == AuxLossConvention::Switch;
    Value counts = countAssignments(b, ids, numExperts, 0,
                                    firstOnly ? 1 : numSlots);
    Value total = forLoop(
        b, constIndex(b, 0), constIndex(b, numExperts), {constF32(b, 0.0)},
        [&](LocBuilder &nb, Value ei, ValueRange args) -> SmallVector<Value> {
          Value f = arith::SIToFPOp::create(nb, nb.getF32Type(),
                                            extract(nb, counts, ei));
          Value p = extract(nb, sums, ei);
          return {arith::AddFOp::create(nb, args[0],
                                        arith::MulFOp::create(nb, f, p))};
        })[0];
    // E * sum_e (count_e / T) (psum_e / T)
    Value loss = perToken(b, perToken(b, total, numTokens), numTokens);
    double factor = static_cast<double>(numExperts);
    if (op.getConvention() == AuxLossConvention::AllKMean)
      factor /= static_cast<double>(numSlots);
    loss = arith::MulFOp::create(b, loss, constF32(b, factor));
    rewriter.replaceOp(op, scalarTensor(b, loss));
    return success();
  }
};

struct ZLossLowering : OpConversionPattern<ZLossOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ZLossOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value logits = adaptor.getLogits();
    Value numTokens = dimSize(b, logits, 0);
    Value numExperts = dimSize(b, logits, 1);
    Value total = forLoop(
        b, constIndex(b, 0), numTokens, {constF32(b, 0.0)},
        [&](LocBuilder &tb, Value t, ValueRange args) -> SmallVector<Value> {
          Value max = forLoop(tb, constIndex(tb, 0), numExperts,
                              {constF32(tb, -kInf)},
                              [&](LocBuilder &eb, Value e, ValueRange acc)
                                  -> SmallVector<Value> {
                                return {arith::MaximumFOp::create(
                                    eb, acc[0], extract(eb, logits, {t, e}))};
                              })[0];
          Value sum = forLoop(
              tb, constIndex(tb, 0), numExperts, {constF32(tb, 0.0)},
              [&](LocBuilder &eb, Value e, ValueRange acc) -> SmallVector<Value> {
                Value z = extract(eb, logits, {t, e});
                Value x = math::ExpOp::create(
                    eb, arith::SubFOp::create(eb, z, max));
                return {arith::AddFOp::create(eb, acc[0], x)};
              })[0];
          Value lse = arith::AddFOp::create(tb, max,
                                            math::LogOp::create(tb, sum));
          return {arith::AddFOp::create(tb, args[0],
                                        arith::MulFOp::create(tb, lse, lse))};
        })[0];
    rewriter.replaceOp(op, scalarTensor(b, perToken(b, total, numTokens)));
    return success();
  }
};

struct ExpertLoadLowering : OpConversionPattern<ExpertLoadOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(ExpertLoadOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value ids = adaptor.getExpertIds();
    auto idsType = cast<RankedTensorType>(ids.getType());
    if (idsType.isDynamicDim(1))
      return rewriter.notifyMatchFailure(op, "needs a static slot count");
    rewriter.replaceOp(op, countAssignments(b, ids, op.getNumExperts(), 0,
                                            idsType.getDimSize(1)));
    return success();
  }
};

} // namespace

void mlir::moe::lowering::populateRoutingPatterns(
    TypeConverter &converter, RewritePatternSet &patterns) {
  patterns.add<RouterLowering, RouteLowering, ExpertChoiceLowering,
               AuxLossLowering, ZLossLowering, ExpertLoadLowering>(
      converter, patterns.getContext());
}
