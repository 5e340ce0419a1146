//===- DispatchLowering.cpp - dispatch, gather and combine to linalg/scf --===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Dispatch decides which assignments each expert keeps (all of them, or the
// first C in the drop order), then lays the kept ones out grouped by expert
// in token order. Gather and combine are gathers indexed by that layout;
// combine sums each token's slots in slot order, so its result does not
// depend on the layout.
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"
#include "Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

namespace {

/// `0 <= id < numExperts`.
Value isExpert(LocBuilder &b, Value id, int64_t numExperts) {
  return arith::AndIOp::create(
      b, arith::CmpIOp::create(b, arith::CmpIPredicate::sge, id, constI32(b, 0)),
      arith::CmpIOp::create(b, arith::CmpIPredicate::slt, id,
                            constI32(b, numExperts)));
}

/// for t in [0, T): for j in [0, S): body(t, j, args) -> args, or the slot
/// loop outside when `slotMajor`.
SmallVector<Value> forEachSlot(LocBuilder &b, Value numTokens, Value numSlots,
                               bool slotMajor, ValueRange init,
                               function_ref<SmallVector<Value>(
                                   LocBuilder &, Value t, Value j, ValueRange)>
                                   body) {
  Value zero = constIndex(b, 0);
  Value outerEnd = slotMajor ? numSlots : numTokens;
  Value innerEnd = slotMajor ? numTokens : numSlots;
  return forLoop(
      b, zero, outerEnd, init,
      [&](LocBuilder &ob, Value outer, ValueRange oArgs) -> SmallVector<Value> {
        return forLoop(ob, constIndex(ob, 0), innerEnd, oArgs,
                       [&](LocBuilder &ib, Value inner,
                           ValueRange iArgs) -> SmallVector<Value> {
                         return slotMajor ? body(ib, inner, outer, iArgs)
                                          : body(ib, outer, inner, iArgs);
                       });
      });
}

struct DispatchLowering : OpConversionPattern<DispatchOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(DispatchOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value ids = adaptor.getExpertIds();
    Value weights = adaptor.getWeights();
    auto idsType = cast<RankedTensorType>(ids.getType());
    if (idsType.isDynamicDim(1))
      return rewriter.notifyMatchFailure(op, "needs a static slot count");
    int64_t numSlots = idsType.getDimSize(1);
    int64_t numExperts = op.getNumExperts();
    Value numTokens = dimSize(b, ids, 0);
    Value slots = constIndex(b, numSlots);

    Value keep = keptAssignments(b, op.getCapacityAttr(),
                                 adaptor.getCapacityFactor(), ids, weights,
                                 numExperts);
    Value assigned = countWhere(b, ids, nullptr, numExperts);
    Value kept = countWhere(b, ids, keep, numExperts);
    Value dropped = mapElements(b, {assigned, kept}, b.getI64Type(),
                                [](LocBuilder &nb, ValueRange v) {
                                  return arith::SubIOp::create(nb, v[0], v[1])
                                      .getResult();
                                });
    CapacityAttr capacity = op.getCapacityAttr();
    Value slotWeight =
        survivingWeights(b, weights, keep,
                         capacity && capacity.getRenormalizeAfterDrop());

    // Group sizes by layout: the kept assignments (ragged), rounded up to
    // a multiple of the block (aligned), or the capacity (padded).
    Value numRows = arith::MulIOp::create(b, numTokens, slots);
    Value sizes = kept;
    switch (op.getLayoutKind()) {
    case GroupLayout::Ragged:
      break;
    case GroupLayout::Aligned: {
      int64_t block = op.getLayoutAttr().getBlock();
      sizes = mapElements(b, {kept}, b.getI64Type(),
                          [&](LocBuilder &nb, ValueRange v) -> Value {
                            Value up = arith::AddIOp::create(
                                nb, v[0], constI64(nb, block - 1));
                            return arith::MulIOp::create(
                                nb,
                                arith::DivUIOp::create(nb, up,
                                                       constI64(nb, block)),
                                constI64(nb, block));
                          });
      numRows = arith::AddIOp::create(
          b, numRows, constIndex(b, numExperts * (block - 1)));
      break;
    }
    case GroupLayout::Padded: {
      Value c =
          lowering::capacity(b, capacity, numTokens, numSlots, numExperts);
      sizes = filledTensor(b, {b.getIndexAttr(numExperts)},
                           indexToI64(b, c));
      numRows = arith::MulIOp::create(b, c, constIndex(b, numExperts));
      break;
    }
    }

    // Exclusive prefix sum of the group sizes.
    Value offsets =
        filledTensor(b, {b.getIndexAttr(numExperts)}, constI64(b, 0));
    offsets = forLoop(
        b, constIndex(b, 0), constIndex(b, numExperts),
        {offsets, constI64(b, 0)},
        [&](LocBuilder &nb, Value e, ValueRange args) -> SmallVector<Value> {
          Value next = arith::AddIOp::create(nb, args[1],
                                             extract(nb, sizes, e));
          return {insert(nb, args[1], args[0], e), next};
        })[0];

    // Lay the kept assignments out, grouped by expert, in token order;
    // padding rows (token -1) fill each group up to its size.
    Value rowToken = filledTensor(
        b, sizesOf(b, op.getRowToken().getType(), {numRows}),
        constI32(b, -1));
    Value rowWeight = filledTensor(
        b, sizesOf(b, op.getRowWeight().getType(), {numRows}),
        constF32(b, 0.0));
    Value slotRow = filledTensor(
        b, sizesOf(b, op.getSlotRow().getType(), {numTokens, Value()}),
        constI32(b, -1));
    SmallVector<Value> layout = forEachSlot(
        b, numTokens, slots, /*slotMajor=*/false,
        {offsets, rowToken, rowWeight, slotRow},
        [&](LocBuilder &nb, Value t, Value j,
            ValueRange args) -> SmallVector<Value> {
          return ifThenElse(
              nb, extract(nb, keep, {t, j}),
              [&](LocBuilder &ib) -> SmallVector<Value> {
                Value e = intToIndex(ib, extract(ib, ids, {t, j}));
                Value row64 = extract(ib, args[0], e);
                Value row = intToIndex(ib, row64);
                Value next = arith::AddIOp::create(ib, row64, constI64(ib, 1));
                return {insert(ib, next, args[0], e),
                        insert(ib, indexToI32(ib, t), args[1], row),
                        insert(ib, extract(ib, slotWeight, {t, j}), args[2],
                               row),
                        insert(ib, indexToI32(ib, row), args[3], {t, j})};
              },
              [&](LocBuilder &) -> SmallVector<Value> {
                return SmallVector<Value>(args);
              });
        });

    rewriter.replaceOp(op, {layout[1], layout[2], layout[3], slotWeight, sizes,
                            offsets, dropped});
    return success();
  }

private:
  /// `keep [T, S]` (i1): the assignments that keep their slot.
  static Value keptAssignments(LocBuilder &b, CapacityAttr capacityAttr,
                               Value factor,
                               Value ids, Value weights, int64_t numExperts) {
    Value numTokens = dimSize(b, ids, 0);
    int64_t numSlots = cast<RankedTensorType>(ids.getType()).getDimSize(1);
    Value slots = constIndex(b, numSlots);
    Value keep = filledTensor(b, sizesOf(b, ids), constI1(b, false));
    if (!capacityAttr) {
      return forEachSlot(
          b, numTokens, slots, false, keep,
          [&](LocBuilder &nb, Value t, Value j,
              ValueRange args) -> SmallVector<Value> {
            Value valid = isExpert(nb, extract(nb, ids, {t, j}), numExperts);
            return {insert(nb, valid, args[0], {t, j})};
          })[0];
    }
    Value capacity = indexToI64(
        b, lowering::capacity(b, capacityAttr, numTokens, numSlots,
                              numExperts, factor));
    DropOrder order = capacityAttr.getDropOrderOrDefault();

    if (order == DropOrder::Score) {
      // Kept iff fewer than C assignments of the same expert come first
      // (larger weight, then lower t * S + j).
      return forEachSlot(
          b, numTokens, slots, false, keep,
          [&](LocBuilder &nb, Value t, Value j,
              ValueRange args) -> SmallVector<Value> {
            Value id = extract(nb, ids, {t, j});
            Value w = extract(nb, weights, {t, j});
            Value flat = arith::AddIOp::create(
                nb, arith::MulIOp::create(nb, t, slots), j);
            Value ahead = forEachSlot(
                nb, numTokens, slots, false, constI64(nb, 0),
                [&](LocBuilder &cb, Value t2, Value j2,
                    ValueRange count) -> SmallVector<Value> {
                  Value same = arith::CmpIOp::create(
                      cb, arith::CmpIPredicate::eq, extract(cb, ids, {t2, j2}),
                      id);
                  Value flat2 = arith::AddIOp::create(
                      cb, arith::MulIOp::create(cb, t2, slots), j2);
                  Value first = comesBefore(
                      cb, extract(cb, weights, {t2, j2}), flat2, w, flat);
                  Value counts = arith::AndIOp::create(cb, same, first);
                  Value inc = arith::ExtUIOp::create(cb, cb.getI64Type(),
                                                     counts);
                  return {arith::AddIOp::create(cb, count[0], inc)};
                })[0];
            Value fits = arith::CmpIOp::create(nb, arith::CmpIPredicate::slt,
                                               ahead, capacity);
            Value valid = isExpert(nb, id, numExperts);
            return {insert(nb, arith::AndIOp::create(nb, valid, fits),
                           args[0], {t, j})};
          })[0];
    }

    // choice_major visits slot 0 of every token first; token_major visits
    // the slots of token 0 first. Each expert keeps the first C it sees.
    Value seen = filledTensor(b, {b.getIndexAttr(numExperts)}, constI64(b, 0));
    return forEachSlot(
        b, numTokens, slots, order == DropOrder::ChoiceMajor, {keep, seen},
        [&](LocBuilder &nb, Value t, Value j,
            ValueRange args) -> SmallVector<Value> {
          Value id = extract(nb, ids, {t, j});
          return ifThenElse(
              nb, isExpert(nb, id, numExperts),
              [&](LocBuilder &ib) -> SmallVector<Value> {
                Value e = intToIndex(ib, id);
                Value count = extract(ib, args[1], e);
                Value fits = arith::CmpIOp::create(
                    ib, arith::CmpIPredicate::slt, count, capacity);
                Value next =
                    arith::AddIOp::create(ib, count, constI64(ib, 1));
                return {insert(ib, fits, args[0], {t, j}),
                        insert(ib, next, args[1], e)};
              },
              [&](LocBuilder &) -> SmallVector<Value> {
                return SmallVector<Value>(args);
              });
        })[0];
  }

  /// Per-expert counts of the valid assignments (where `mask` holds, if
  /// given).
  static Value countWhere(LocBuilder &b, Value ids, Value mask,
                          int64_t numExperts) {
    Value numTokens = dimSize(b, ids, 0);
    Value slots = dimSize(b, ids, 1);
    Value counts =
        filledTensor(b, {b.getIndexAttr(numExperts)}, constI64(b, 0));
    return forEachSlot(
        b, numTokens, slots, false, counts,
        [&](LocBuilder &nb, Value t, Value j,
            ValueRange args) -> SmallVector<Value> {
          Value id = extract(nb, ids, {t, j});
          Value counted = isExpert(nb, id, numExperts);
          if (mask)
            counted = arith::AndIOp::create(nb, counted,
                                            extract(nb, mask, {t, j}));
          return ifThenElse(
              nb, counted,
              [&](LocBuilder &ib) -> SmallVector<Value> {
                Value e = intToIndex(ib, id);
                Value next = arith::AddIOp::create(
                    ib, extract(ib, args[0], e), constI64(ib, 1));
                return {insert(ib, next, args[0], e)};
              },
              [&](LocBuilder &) -> SmallVector<Value> { return {args[0]}; });
        })[0];
  }

  /// The weights of the kept slots (0 elsewhere), renormalized over each
  /// token's surviving slots when asked.
  static Value survivingWeights(LocBuilder &b, Value weights, Value keep,
                                bool renormalize) {
    Value kept = mapElements(b, {weights, keep}, b.getF32Type(),
                             [](LocBuilder &nb, ValueRange v) {
                               return arith::SelectOp::create(
                                          nb, v[1], v[0], constF32(nb, 0.0))
                                   .getResult();
                             });
    if (!renormalize)
      return kept;
    Value sums = reduceRows(b, kept, constF32(b, 0.0),
                            [](LocBuilder &nb, Value acc, Value x) {
                              return arith::AddFOp::create(nb, acc, x)
                                  .getResult();
                            });
    Value numTokens = dimSize(b, weights, 0);
    Value slots = dimSize(b, weights, 1);
    return forEachSlot(
        b, numTokens, slots, false, kept,
        [&](LocBuilder &nb, Value t, Value j,
            ValueRange args) -> SmallVector<Value> {
          Value denominator = arith::AddFOp::create(
              nb, extract(nb, sums, t), constF32(nb, 1e-20));
          Value w = arith::DivFOp::create(nb, extract(nb, args[0], {t, j}),
                                          denominator);
          return {insert(nb, w, args[0], {t, j})};
        })[0];
  }
};

/// `index` clamped into [0, size) and whether it was in range.
std::pair<Value, Value> clampIndex(LocBuilder &b, Value index32, Value size) {
  Value index = intToIndex(b, index32);
  Value valid = arith::AndIOp::create(
      b,
      arith::CmpIOp::create(b, arith::CmpIPredicate::sge, index,
                            constIndex(b, 0)),
      arith::CmpIOp::create(b, arith::CmpIPredicate::slt, index, size));
  return {arith::SelectOp::create(b, valid, index, constIndex(b, 0)), valid};
}

struct GatherLowering : OpConversionPattern<GatherOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(GatherOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value input = adaptor.getInput();
    Value rowToken = adaptor.getRowToken();
    Value rowWeight = adaptor.getRowWeight();
    Type elementType = op.getType().getElementType();
    Value numTokens = dimSize(b, input, 0);
    Value init = tensor::EmptyOp::create(
        b,
        sizesOf(b, op.getType(),
                {dimSize(b, rowToken, 0), dimSize(b, input, 1)}),
        elementType);

    MLIRContext *ctx = b.getContext();
    AffineExpr r, i;
    bindDims(ctx, r, i);
    SmallVector<Value> inputs = {rowToken};
    SmallVector<AffineMap> maps = {AffineMap::get(2, 0, {r}, ctx)};
    if (rowWeight) {
      inputs.push_back(rowWeight);
      maps.push_back(AffineMap::get(2, 0, {r}, ctx));
    }
    maps.push_back(AffineMap::get(2, 0, {r, i}, ctx));
    Value result =
        linalg::GenericOp::create(
            b, init.getType(), inputs, init, maps,
            {utils::IteratorType::parallel, utils::IteratorType::parallel},
            [&](OpBuilder &nested, Location loc, ValueRange args) {
              LocBuilder nb(loc, nested);
              auto [token, valid] = clampIndex(nb, args[0], numTokens);
              Value col = linalg::IndexOp::create(nb, 1);
              Value x = extract(nb, input, {token, col});
              if (rowWeight)
                x = fromF32(nb,
                            arith::MulFOp::create(nb, toF32(nb, x), args[1]),
                            elementType);
              Value zero = arith::ConstantOp::create(
                  nb, elementType, nb.getFloatAttr(elementType, 0.0));
              linalg::YieldOp::create(
                  nb, arith::SelectOp::create(nb, valid, x, zero).getResult());
            })
            .getResult(0);
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct CombineLowering : OpConversionPattern<CombineOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(CombineOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value rows = adaptor.getRows();
    Value slotRow = adaptor.getSlotRow();
    Value slotWeight = adaptor.getSlotWeight();
    Value numTokens = dimSize(b, slotRow, 0);
    Value numRows = dimSize(b, rows, 0);
    Value acc = filledTensor(
        b, sizesOf(b, op.getType(), {numTokens, dimSize(b, rows, 1)}),
        constF32(b, 0.0));

    // acc[t, i] = sum over j (innermost, ascending: slot order) of
    // w[t, j] * rows[slot_row[t, j], i].
    MLIRContext *ctx = b.getContext();
    AffineExpr t, i, j;
    bindDims(ctx, t, i, j);
    SmallVector<Value> inputs = {slotRow};
    SmallVector<AffineMap> maps = {AffineMap::get(3, 0, {t, j}, ctx)};
    if (slotWeight) {
      inputs.push_back(slotWeight);
      maps.push_back(AffineMap::get(3, 0, {t, j}, ctx));
    }
    maps.push_back(AffineMap::get(3, 0, {t, i}, ctx));
    acc = linalg::GenericOp::create(
              b, acc.getType(), inputs, acc, maps,
              {utils::IteratorType::parallel, utils::IteratorType::parallel,
               utils::IteratorType::reduction},
              [&](OpBuilder &nested, Location loc, ValueRange args) {
                LocBuilder nb(loc, nested);
                auto [row, valid] = clampIndex(nb, args[0], numRows);
                Value col = linalg::IndexOp::create(nb, 1);
                Value x = toF32(nb, extract(nb, rows, {row, col}));
                if (slotWeight)
                  x = arith::MulFOp::create(nb, args[1], x);
                x = arith::SelectOp::create(nb, valid, x, constF32(nb, 0.0));
                linalg::YieldOp::create(
                    nb, arith::AddFOp::create(nb, args.back(), x).getResult());
              })
              .getResult(0);

    Type elementType = op.getType().getElementType();
    SmallVector<Value> terms = {acc};
    if (adaptor.getAddend())
      terms.push_back(adaptor.getAddend());
    Value result = mapElements(b, terms, elementType,
                               [&](LocBuilder &nb, ValueRange v) {
                                 Value y = v[0];
                                 if (v.size() > 1)
                                   y = arith::AddFOp::create(
                                       nb, y, toF32(nb, v[1]));
                                 return fromF32(nb, y, elementType);
                               });
    rewriter.replaceOp(op, result);
    return success();
  }
};

} // namespace

void mlir::moe::lowering::populateDispatchPatterns(
    TypeConverter &converter, RewritePatternSet &patterns) {
  patterns.add<DispatchLowering, GatherLowering, CombineLowering>(
      converter, patterns.getContext());
}
