//===- LoweringUtils.cpp - builders shared by the moe lowerings -----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "LoweringUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::lowering;

//===----------------------------------------------------------------------===//
// Constants and casts
//===----------------------------------------------------------------------===//

Value lowering::constIndex(LocBuilder &b, int64_t value) {
  return arith::ConstantIndexOp::create(b, value);
}

Value lowering::constI1(LocBuilder &b, bool value) {
  return arith::ConstantIntOp::create(b, value, 1);
}

Value lowering::constI32(LocBuilder &b, int32_t value) {
  return arith::ConstantIntOp::create(b, value, 32);
}

Value lowering::constI64(LocBuilder &b, int64_t value) {
  return arith::ConstantIntOp::create(b, value, 64);
}

Value lowering::constF32(LocBuilder &b, double value) {
  return arith::ConstantFloatOp::create(b, b.getF32Type(),
                                        APFloat(static_cast<float>(value)));
}

Value lowering::dimSize(LocBuilder &b, Value tensor, int64_t dim) {
  return tensor::DimOp::create(b, tensor, dim);
}

Value lowering::indexToI64(LocBuilder &b, Value index) {
  return arith::IndexCastOp::create(b, b.getI64Type(), index);
}

Value lowering::indexToI32(LocBuilder &b, Value index) {
  return arith::IndexCastOp::create(b, b.getI32Type(), index);
}

Value lowering::intToIndex(LocBuilder &b, Value integer) {
  return arith::IndexCastOp::create(b, b.getIndexType(), integer);
}

Value lowering::toF32(LocBuilder &b, Value value) {
  if (value.getType().isF32())
    return value;
  return arith::ExtFOp::create(b, b.getF32Type(), value);
}

Value lowering::fromF32(LocBuilder &b, Value value, Type type) {
  if (type.isF32())
    return value;
  return arith::TruncFOp::create(b, type, value);
}

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

Value lowering::filledTensor(LocBuilder &b, ArrayRef<OpFoldResult> sizes,
                             Value value) {
  Value empty = tensor::EmptyOp::create(b, sizes, value.getType());
  return linalg::FillOp::create(b, value, empty).getResult(0);
}

Value lowering::extract(LocBuilder &b, Value tensor, ValueRange indices) {
  return tensor::ExtractOp::create(b, tensor, indices);
}

Value lowering::insert(LocBuilder &b, Value value, Value tensor,
                       ValueRange indices) {
  return tensor::InsertOp::create(b, value, tensor, indices);
}

SmallVector<OpFoldResult> lowering::sizesOf(LocBuilder &b, Type type,
                                           ArrayRef<Value> dynamicSizes) {
  auto ranked = cast<RankedTensorType>(type);
  SmallVector<OpFoldResult> sizes;
  for (int64_t i = 0, e = ranked.getRank(); i < e; ++i) {
    if (ranked.isDynamicDim(i))
      sizes.push_back(dynamicSizes[i]);
    else
      sizes.push_back(b.getIndexAttr(ranked.getDimSize(i)));
  }
  return sizes;
}

SmallVector<OpFoldResult> lowering::sizesOf(LocBuilder &b, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<OpFoldResult> sizes;
  for (int64_t i = 0, e = type.getRank(); i < e; ++i) {
    if (type.isDynamicDim(i))
      sizes.push_back(dimSize(b, tensor, i));
    else
      sizes.push_back(b.getIndexAttr(type.getDimSize(i)));
  }
  return sizes;
}

Value lowering::mapElements(LocBuilder &b, ValueRange inputs,
                            Type resultElementType,
                            function_ref<Value(LocBuilder &, ValueRange)> body) {
  Value first = inputs.front();
  int64_t rank = cast<RankedTensorType>(first.getType()).getRank();
  Value init = tensor::EmptyOp::create(b, sizesOf(b, first), resultElementType);
  SmallVector<AffineMap> maps(inputs.size() + 1,
                              b.getMultiDimIdentityMap(rank));
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, init.getType(), inputs, init, maps, iterators,
      [&](OpBuilder &nested, Location loc, ValueRange args) {
        LocBuilder nb(loc, nested);
        linalg::YieldOp::create(nb, body(nb, args.drop_back()));
      });
  return generic.getResult(0);
}

Value lowering::addColumnBias(LocBuilder &b, Value matrix, Value bias) {
  MLIRContext *ctx = b.getContext();
  AffineExpr r, c;
  bindDims(ctx, r, c);
  Value init = tensor::EmptyOp::create(b, sizesOf(b, matrix), b.getF32Type());
  SmallVector<AffineMap> maps = {AffineMap::get(2, 0, {r, c}, ctx),
                                 AffineMap::get(2, 0, {c}, ctx),
                                 AffineMap::get(2, 0, {r, c}, ctx)};
  return linalg::GenericOp::create(
             b, init.getType(), ValueRange{matrix, bias}, init, maps,
             {utils::IteratorType::parallel, utils::IteratorType::parallel},
             [&](OpBuilder &nested, Location loc, ValueRange args) {
               LocBuilder nb(loc, nested);
               linalg::YieldOp::create(
                   nb, arith::AddFOp::create(nb, toF32(nb, args[0]),
                                             toF32(nb, args[1]))
                           .getResult());
             })
      .getResult(0);
}

Value lowering::reduceRows(
    LocBuilder &b, Value matrix, Value init,
    function_ref<Value(LocBuilder &, Value acc, Value x)> combine) {
  Value rows = filledTensor(b, {sizesOf(b, matrix)[0]}, init);
  MLIRContext *ctx = b.getContext();
  AffineExpr r, c;
  bindDims(ctx, r, c);
  SmallVector<AffineMap> maps = {AffineMap::get(2, 0, {r, c}, ctx),
                                 AffineMap::get(2, 0, {r}, ctx)};
  auto generic = linalg::GenericOp::create(
      b, rows.getType(), matrix, rows, maps,
      {utils::IteratorType::parallel, utils::IteratorType::reduction},
      [&](OpBuilder &nested, Location loc, ValueRange args) {
        LocBuilder nb(loc, nested);
        linalg::YieldOp::create(nb, combine(nb, args[1], args[0]));
      });
  return generic.getResult(0);
}

/// `body(matrix[r, c], vector[r])` for every element of a 2-D matrix.
static Value mapWithRowValue(LocBuilder &b, Value matrix, Value vector,
                             function_ref<Value(LocBuilder &, Value, Value)> body) {
  MLIRContext *ctx = b.getContext();
  AffineExpr r, c;
  bindDims(ctx, r, c);
  auto elementType = cast<RankedTensorType>(matrix.getType()).getElementType();
  Value init = tensor::EmptyOp::create(b, sizesOf(b, matrix), elementType);
  SmallVector<AffineMap> maps = {AffineMap::get(2, 0, {r, c}, ctx),
                                 AffineMap::get(2, 0, {r}, ctx),
                                 AffineMap::get(2, 0, {r, c}, ctx)};
  auto generic = linalg::GenericOp::create(
      b, init.getType(), ValueRange{matrix, vector}, init, maps,
      {utils::IteratorType::parallel, utils::IteratorType::parallel},
      [&](OpBuilder &nested, Location loc, ValueRange args) {
        LocBuilder nb(loc, nested);
        linalg::YieldOp::create(nb, body(nb, args[0], args[1]));
      });
  return generic.getResult(0);
}

//===----------------------------------------------------------------------===//
// Control flow
//===----------------------------------------------------------------------===//

SmallVector<Value> lowering::forLoop(LocBuilder &b, Value lb, Value ub,
                                     ValueRange init, LoopBody body) {
  Value one = constIndex(b, 1);
  auto loop = scf::ForOp::create(
      b, lb, ub, one, init,
      [&](OpBuilder &nested, Location loc, Value iv, ValueRange args) {
        LocBuilder nb(loc, nested);
        scf::YieldOp::create(nb, body(nb, iv, args));
      });
  return SmallVector<Value>(loop.getResults());
}

SmallVector<Value> lowering::ifThenElse(LocBuilder &b, Value condition,
                                        Branch thenBranch, Branch elseBranch) {
  auto ifOp = scf::IfOp::create(
      b, condition,
      [&](OpBuilder &nested, Location loc) {
        LocBuilder nb(loc, nested);
        scf::YieldOp::create(nb, thenBranch(nb));
      },
      [&](OpBuilder &nested, Location loc) {
        LocBuilder nb(loc, nested);
        scf::YieldOp::create(nb, elseBranch(nb));
      });
  return SmallVector<Value>(ifOp.getResults());
}

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

Value lowering::comesBefore(LocBuilder &b, Value keyA, Value indexA, Value keyB,
                            Value indexB) {
  using P = arith::CmpFPredicate;
  Value aNan = arith::CmpFOp::create(b, P::UNO, keyA, keyA);
  Value bNan = arith::CmpFOp::create(b, P::UNO, keyB, keyB);
  Value greater = arith::CmpFOp::create(b, P::OGT, keyA, keyB);
  Value equal = arith::CmpFOp::create(b, P::OEQ, keyA, keyB);
  Value lowerIndex =
      arith::CmpIOp::create(b, arith::CmpIPredicate::slt, indexA, indexB);
  Value aNumber = arith::XOrIOp::create(b, aNan, constI1(b, true));
  // A number beats NaN; two NaNs and two equal numbers go by index.
  Value numberOverNan = arith::AndIOp::create(b, aNumber, bNan);
  Value bothNan = arith::AndIOp::create(b, aNan, bNan);
  Value tie = arith::OrIOp::create(b, bothNan, equal);
  Value tieBreak = arith::AndIOp::create(b, tie, lowerIndex);
  Value result = arith::OrIOp::create(b, numberOverNan, greater);
  return arith::OrIOp::create(b, result, tieBreak);
}

Pick lowering::pickNext(LocBuilder &b, Value count,
                        function_ref<Value(LocBuilder &, Value)> key,
                        function_ref<Value(LocBuilder &, Value)> allowed,
                        std::optional<Pick> previous) {
  SmallVector<Value> init = {constI1(b, false), constF32(b, 0.0),
                             constIndex(b, 0)};
  SmallVector<Value> result = forLoop(
      b, constIndex(b, 0), count, init,
      [&](LocBuilder &nb, Value i, ValueRange best) -> SmallVector<Value> {
        Value k = key(nb, i);
        Value ok = allowed ? allowed(nb, i) : constI1(nb, true);
        if (previous) {
          Value after =
              comesBefore(nb, previous->key, previous->index, k, i);
          ok = arith::AndIOp::create(
              nb, ok, arith::AndIOp::create(nb, previous->found, after));
        }
        Value notFound = arith::XOrIOp::create(nb, best[0], constI1(nb, true));
        Value better = arith::OrIOp::create(
            nb, notFound, comesBefore(nb, k, i, best[1], best[2]));
        Value take = arith::AndIOp::create(nb, ok, better);
        return {arith::OrIOp::create(nb, best[0], take),
                arith::SelectOp::create(nb, take, k, best[1]),
                arith::SelectOp::create(nb, take, i, best[2])};
      });
  return {result[0], result[1], result[2]};
}

//===----------------------------------------------------------------------===//
// Math
//===----------------------------------------------------------------------===//

Value lowering::sigmoid(LocBuilder &b, Value x) {
  Value one = constF32(b, 1.0);
  Value expNeg = math::ExpOp::create(b, arith::NegFOp::create(b, x));
  return arith::DivFOp::create(b, one, arith::AddFOp::create(b, one, expNeg));
}

Value lowering::activation(LocBuilder &b, Activation act, Value x) {
  switch (act) {
  case Activation::Silu:
    return arith::MulFOp::create(b, x, sigmoid(b, x));
  case Activation::Relu:
    return arith::MaximumFOp::create(b, x, constF32(b, 0.0));
  case Activation::GeluTanh: {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    Value x3 = arith::MulFOp::create(b, x, arith::MulFOp::create(b, x, x));
    Value inner = arith::AddFOp::create(
        b, x, arith::MulFOp::create(b, constF32(b, 0.044715), x3));
    Value scaled = arith::MulFOp::create(
        b, constF32(b, std::sqrt(2.0 / M_PI)), inner);
    Value t = math::TanhOp::create(b, scaled);
    Value half = arith::MulFOp::create(b, constF32(b, 0.5), x);
    return arith::MulFOp::create(
        b, half, arith::AddFOp::create(b, constF32(b, 1.0), t));
  }
  case Activation::GeluErf: {
    // 0.5 x (1 + erf(x / sqrt(2)))
    Value e = math::ErfOp::create(
        b, arith::MulFOp::create(b, x, constF32(b, 1.0 / std::sqrt(2.0))));
    Value half = arith::MulFOp::create(b, constF32(b, 0.5), x);
    return arith::MulFOp::create(
        b, half, arith::AddFOp::create(b, constF32(b, 1.0), e));
  }
  case Activation::SwigluOai:
    // Gates up itself: the verifiers keep it to gated experts, whose
    // lowering combines gate and up (ExpertLowering.cpp).
    break;
  }
  llvm_unreachable("unknown activation");
}

Value lowering::linear(LocBuilder &b, Value rows, Value weight,
                       bool weightOutIn) {
  MLIRContext *ctx = b.getContext();
  AffineExpr i, o, k;
  bindDims(ctx, i, o, k);
  int64_t outDim = weightOutIn ? 0 : 1;
  auto weightType = cast<RankedTensorType>(weight.getType());
  OpFoldResult outSize =
      weightType.isDynamicDim(outDim)
          ? OpFoldResult(dimSize(b, weight, outDim))
          : OpFoldResult(b.getIndexAttr(weightType.getDimSize(outDim)));
  Value init = filledTensor(b, {sizesOf(b, rows)[0], outSize},
                            constF32(b, 0.0));
  SmallVector<AffineMap> maps = {
      AffineMap::get(3, 0, {i, k}, ctx),
      AffineMap::get(3, 0, weightOutIn ? ArrayRef<AffineExpr>{o, k}
                                       : ArrayRef<AffineExpr>{k, o},
                     ctx),
      AffineMap::get(3, 0, {i, o}, ctx)};
  auto generic = linalg::GenericOp::create(
      b, init.getType(), ValueRange{rows, weight}, init, maps,
      {utils::IteratorType::parallel, utils::IteratorType::parallel,
       utils::IteratorType::reduction},
      [&](OpBuilder &nested, Location loc, ValueRange args) {
        LocBuilder nb(loc, nested);
        Value product = arith::MulFOp::create(nb, toF32(nb, args[0]),
                                              toF32(nb, args[1]));
        linalg::YieldOp::create(nb,
                                arith::AddFOp::create(nb, args[2], product)
                                    .getResult());
      });
  return generic.getResult(0);
}

Value lowering::scores(LocBuilder &b, ScoreFunc score, Value logits) {
  Type f32 = b.getF32Type();
  switch (score) {
  case ScoreFunc::Logits:
    return logits;
  case ScoreFunc::Sigmoid:
    return mapElements(b, logits, f32, [](LocBuilder &nb, ValueRange v) {
      return sigmoid(nb, v[0]);
    });
  case ScoreFunc::SqrtSoftplus:
    // softplus(z) = max(z, 0) + log1p(exp(-|z|)) does not overflow.
    return mapElements(b, logits, f32, [](LocBuilder &nb, ValueRange v) {
      Value z = v[0];
      Value absZ = math::AbsFOp::create(nb, z);
      Value tail = math::Log1pOp::create(
          nb, math::ExpOp::create(nb, arith::NegFOp::create(nb, absZ)));
      Value pos = arith::MaximumFOp::create(nb, z, constF32(nb, 0.0));
      return math::SqrtOp::create(nb, arith::AddFOp::create(nb, pos, tail))
          .getResult();
    });
  case ScoreFunc::Softmax: {
    Value max = reduceRows(
        b, logits, constF32(b, -std::numeric_limits<double>::infinity()),
        [](LocBuilder &nb, Value acc, Value x) {
          return arith::MaximumFOp::create(nb, acc, x).getResult();
        });
    Value exps = mapWithRowValue(b, logits, max,
                                 [](LocBuilder &nb, Value z, Value m) {
                                   return math::ExpOp::create(
                                              nb, arith::SubFOp::create(nb, z,
                                                                        m))
                                       .getResult();
                                 });
    Value sums = reduceRows(b, exps, constF32(b, 0.0),
                            [](LocBuilder &nb, Value acc, Value x) {
                              return arith::AddFOp::create(nb, acc, x)
                                  .getResult();
                            });
    return mapWithRowValue(b, exps, sums, [](LocBuilder &nb, Value e, Value s) {
      return arith::DivFOp::create(nb, e, s).getResult();
    });
  }
  }
  llvm_unreachable("unknown score function");
}

Value lowering::capacity(LocBuilder &b, CapacityAttr attr, Value numTokens,
                         int64_t slots, int64_t numExperts, Value factor) {
  Value c;
  if (attr.getCount()) {
    c = constIndex(b, *attr.getCount());
  } else {
    // ceil(factor * (T * S) / E) in f64, exactly as CapacityAttr computes.
    Type f64 = b.getF64Type();
    Value assignments = indexToI64(
        b, arith::MulIOp::create(b, numTokens, constIndex(b, slots)));
    Value asFloat = arith::SIToFPOp::create(b, f64, assignments);
    if (!factor)
      factor = arith::ConstantFloatOp::create(
          b, b.getF64Type(), APFloat(attr.getFactor()->value));
    Value experts = arith::ConstantFloatOp::create(
        b, b.getF64Type(), APFloat(static_cast<double>(numExperts)));
    Value ratio = arith::DivFOp::create(
        b, arith::MulFOp::create(b, factor, asFloat), experts);
    Value ceil = math::CeilOp::create(b, ratio);
    c = intToIndex(b, arith::FPToSIOp::create(b, b.getI64Type(), ceil));
  }
  c = arith::MaxSIOp::create(b, c, constIndex(b, attr.getMin()));
  Value align = constIndex(b, attr.getAlign());
  return arith::MulIOp::create(b, arith::CeilDivSIOp::create(b, c, align),
                               align);
}
