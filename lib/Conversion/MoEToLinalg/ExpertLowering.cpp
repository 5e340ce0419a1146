//===- ExpertLowering.cpp - expert computation to linalg/scf --------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Each expert runs on its own rows only: a loop over the experts slices the
// expert's group out of the grouped rows, applies the expert's weights, and
// writes the group back. Rows outside every group stay zero. Products
// accumulate in f32 and intermediate activations stay f32.
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

/// `weights[e]` of a `[E, a, b]` tensor (or its rows [rowBegin, rowBegin +
/// numRows)), as an `[a, b]` tensor.
Value expertMatrix(LocBuilder &b, Value weights, Value e, int64_t rowBegin = 0,
                   std::optional<int64_t> numRows = std::nullopt) {
  auto type = cast<RankedTensorType>(weights.getType());
  int64_t rows = numRows ? *numRows : type.getDimSize(1);
  auto resultType = RankedTensorType::get({rows, type.getDimSize(2)},
                                          type.getElementType());
  SmallVector<OpFoldResult> offsets = {e, b.getIndexAttr(rowBegin),
                                       b.getIndexAttr(0)};
  SmallVector<OpFoldResult> sizes = {b.getIndexAttr(1), b.getIndexAttr(rows),
                                     b.getIndexAttr(type.getDimSize(2))};
  SmallVector<OpFoldResult> strides(3, b.getIndexAttr(1));
  return tensor::ExtractSliceOp::create(b, resultType, weights, offsets, sizes,
                                        strides);
}

/// An f32 matrix rounded to `type`.
Value roundTo(LocBuilder &b, Value matrix, Type type) {
  if (type.isF32())
    return matrix;
  return mapElements(b, matrix, type, [&](LocBuilder &nb, ValueRange v) {
    return fromF32(nb, v[0], type);
  });
}

/// GPT-OSS's constants (its Hugging Face code's alpha, and its configs'
/// swiglu_limit).
constexpr double kSwigluOaiAlpha = 1.702, kSwigluOaiLimit = 7.0;

/// GPT-OSS's clamped SwiGLU of one gate and up value:
/// `(clamp(u, -7, 7) + 1) * g' * sigmoid(1.702 g')`, `g' = min(g, 7)`
/// (NaN propagates through the clamps).
Value swigluOai(LocBuilder &b, Value g, Value u) {
  Value limit = constF32(b, kSwigluOaiLimit);
  Value clampedG = arith::MinimumFOp::create(b, g, limit);
  Value clampedU = arith::MaximumFOp::create(
      b, arith::MinimumFOp::create(b, u, limit), constF32(b, -kSwigluOaiLimit));
  Value glu = arith::MulFOp::create(
      b, clampedG,
      sigmoid(
          b, arith::MulFOp::create(b, clampedG, constF32(b, kSwigluOaiAlpha))));
  return arith::MulFOp::create(
      b, arith::AddFOp::create(b, clampedU, constF32(b, 1.0)), glu);
}

/// `act(gate) * up` elementwise (swiglu_oai: its own combination), in f32.
Value gatedActivation(LocBuilder &b, Activation act, Value gate, Value up) {
  return mapElements(b, {gate, up}, b.getF32Type(),
                     [&](LocBuilder &nb, ValueRange v) {
                       if (act == Activation::SwigluOai)
                         return swigluOai(nb, v[0], v[1]);
                       return arith::MulFOp::create(
                                  nb, activation(nb, act, v[0]), v[1])
                           .getResult();
                     });
}

/// `matrix` [n, m] plus row `e` of `biases` [E, m] (its columns [first,
/// first + m)), in f32; `matrix` itself without biases.
Value addBias(LocBuilder &b, Value matrix, Value biases, Value e,
              int64_t first = 0) {
  if (!biases)
    return matrix;
  auto type = cast<RankedTensorType>(matrix.getType());
  int64_t cols = type.getDimSize(1);
  Value row = tensor::ExtractSliceOp::create(
      b, RankedTensorType::get({cols}, getElementTypeOrSelf(biases.getType())),
      biases, ArrayRef<OpFoldResult>{e, b.getIndexAttr(first)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(cols)},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  return addColumnBias(b, matrix, row);
}

Value scaleBy(LocBuilder &b, Value matrix, double factor) {
  Value c = constF32(b, factor);
  return mapElements(b, matrix, b.getF32Type(), [&](LocBuilder &nb, ValueRange v) {
    return arith::MulFOp::create(nb, v[0], c).getResult();
  });
}

Value addMatrices(LocBuilder &b, Value lhs, Value rhs) {
  return mapElements(b, {lhs, rhs}, b.getF32Type(),
                     [](LocBuilder &nb, ValueRange v) {
                       return arith::AddFOp::create(nb, v[0], v[1]).getResult();
                     });
}

/// `P x + (alpha / r) B (A x)`: a projection with its LoRA delta.
Value loraProjection(LocBuilder &b, Value rows, Value base, Value a, Value bMat,
                     double scale) {
  Value delta = linear(b, linear(b, rows, a), bMat);
  Value projected = linear(b, rows, base);
  return addMatrices(b, projected, scaleBy(b, delta, scale));
}

double loraScale(double alpha, Value a) {
  auto type = cast<RankedTensorType>(a.getType());
  return alpha / static_cast<double>(type.getDimSize(1));
}

/// Applies `expert(e, rows of group e)` -> `[n, out]` f32 to every group of
/// `rows` and assembles the `resultType` tensor; rows outside the groups
/// are zero.
using ExpertFn = function_ref<Value(LocBuilder &, Value e, Value groupRows)>;

Value forEachGroup(LocBuilder &b, RankedTensorType resultType, Value rows,
                   Value groupSizes, ExpertFn expert) {
  Type elementType = resultType.getElementType();
  Value numRows = dimSize(b, rows, 0);
  Value zero = arith::ConstantOp::create(b, elementType,
                                         b.getFloatAttr(elementType, 0.0));
  Value result = filledTensor(
      b, sizesOf(b, resultType, {numRows, Value()}), zero);
  int64_t inDim = cast<RankedTensorType>(rows.getType()).getDimSize(1);
  int64_t outDim = resultType.getDimSize(1);
  return forLoop(
      b, constIndex(b, 0), dimSize(b, groupSizes, 0),
      {result, constIndex(b, 0)},
      [&](LocBuilder &eb, Value e, ValueRange args) -> SmallVector<Value> {
        Value offset = args[1];
        // Group sizes come from data: keep the slice inside the rows.
        Value size = intToIndex(eb, extract(eb, groupSizes, e));
        Value room = arith::SubIOp::create(eb, numRows, offset);
        size = arith::MaxSIOp::create(
            eb, arith::MinSIOp::create(eb, size, room), constIndex(eb, 0));
        SmallVector<OpFoldResult> offsets = {offset, eb.getIndexAttr(0)};
        SmallVector<OpFoldResult> strides(2, eb.getIndexAttr(1));
        Value group = tensor::ExtractSliceOp::create(
            eb, rows, offsets,
            ArrayRef<OpFoldResult>{size, eb.getIndexAttr(inDim)}, strides);
        Value out = roundTo(eb, expert(eb, e, group), elementType);
        Value next = tensor::InsertSliceOp::create(
            eb, out, args[0], offsets,
            ArrayRef<OpFoldResult>{size, eb.getIndexAttr(outDim)}, strides);
        return {next, arith::AddIOp::create(eb, offset, size)};
      })[0];
}

struct GroupedMatmulLowering : OpConversionPattern<GroupedMatmulOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(GroupedMatmulOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value rhs = adaptor.getRhs();
    bool transposed = op.getTransposeRhs();
    Value result = forEachGroup(
        b, op.getType(), adaptor.getLhs(), adaptor.getGroupSizes(),
        [&](LocBuilder &eb, Value e, Value rows) {
          return linear(eb, rows, expertMatrix(eb, rhs, e), transposed);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct GatedExpertsLowering : OpConversionPattern<GatedExpertsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(GatedExpertsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    int64_t inner = op.getInnerSize();
    Value result = forEachGroup(
        b, op.getType(), adaptor.getRows(), adaptor.getGroupSizes(),
        [&](LocBuilder &eb, Value e, Value rows) {
          Value gate, up;
          if (Value fused = adaptor.getGateUp()) {
            gate = expertMatrix(eb, fused, e, 0, inner);
            up = expertMatrix(eb, fused, e, inner, inner);
          } else {
            gate = expertMatrix(eb, adaptor.getGate(), e);
            up = expertMatrix(eb, adaptor.getUp(), e);
          }
          // Biases mirror the weights: (gate, up, down) or (gate_up, down).
          ValueRange biases = adaptor.getBiases();
          Value gateBias, upBias, downBias;
          int64_t upFirst = 0;
          if (biases.size() == 3) {
            gateBias = biases[0];
            upBias = biases[1];
          } else if (biases.size() == 2) {
            gateBias = upBias = biases[0];
            upFirst = inner;
          }
          if (!biases.empty())
            downBias = biases.back();
          Value g = addBias(eb, linear(eb, rows, gate), gateBias, e);
          Value u = addBias(eb, linear(eb, rows, up), upBias, e, upFirst);
          Value h = gatedActivation(eb, op.getAct(), g, u);
          return addBias(eb,
                         linear(eb, h, expertMatrix(eb, adaptor.getDown(), e)),
                         downBias, e);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct MlpExpertsLowering : OpConversionPattern<MlpExpertsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(MlpExpertsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Activation act = op.getAct();
    Value result = forEachGroup(
        b, op.getType(), adaptor.getRows(), adaptor.getGroupSizes(),
        [&](LocBuilder &eb, Value e, Value rows) {
          Value h = linear(eb, rows, expertMatrix(eb, adaptor.getW1(), e));
          h = mapElements(eb, h, eb.getF32Type(),
                          [&](LocBuilder &nb, ValueRange v) {
                            return activation(nb, act, v[0]);
                          });
          return linear(eb, h, expertMatrix(eb, adaptor.getW2(), e));
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct LoraExpertsLowering : OpConversionPattern<LoraExpertsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LoraExpertsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    double scale =
        loraScale(op.getAlpha().convertToDouble(), adaptor.getLoraA());
    Value result = forEachGroup(
        b, op.getType(), adaptor.getRows(), adaptor.getGroupSizes(),
        [&](LocBuilder &eb, Value e, Value rows) {
          Value down = linear(eb, rows, expertMatrix(eb, adaptor.getLoraA(), e));
          Value up = linear(eb, down, expertMatrix(eb, adaptor.getLoraB(), e));
          return scaleBy(eb, up, scale);
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct LoraGatedExpertsLowering : OpConversionPattern<LoraGatedExpertsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LoraGatedExpertsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    double scale =
        loraScale(op.getAlpha().convertToDouble(), adaptor.getGateA());
    Value result = forEachGroup(
        b, op.getType(), adaptor.getRows(), adaptor.getGroupSizes(),
        [&](LocBuilder &eb, Value e, Value rows) {
          auto project = [&](Value x, Value base, Value a, Value bMat) {
            return loraProjection(eb, x, base, expertMatrix(eb, a, e),
                                  expertMatrix(eb, bMat, e), scale);
          };
          Value gate = project(rows, adaptor.getGate(), adaptor.getGateA(),
                               adaptor.getGateB());
          Value up = project(rows, adaptor.getUp(), adaptor.getUpA(),
                             adaptor.getUpB());
          Value h = gatedActivation(eb, op.getAct(), gate, up);
          return project(h, adaptor.getDown(), adaptor.getDownA(),
                         adaptor.getDownB());
        });
    rewriter.replaceOp(op, result);
    return success();
  }
};

struct SharedExpertLowering : OpConversionPattern<SharedExpertOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(SharedExpertOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value x = adaptor.getInput();
    Value h = gatedActivation(b, op.getAct(), linear(b, x, adaptor.getGate()),
                              linear(b, x, adaptor.getUp()));
    Value y = linear(b, h, adaptor.getDown());
    if (Value gateWeight = adaptor.getGateWeight()) {
      // y[t, :] *= sigmoid(gate_weight . x[t])
      Value logit = linear(b, x, gateWeight);
      MLIRContext *ctx = b.getContext();
      AffineExpr t, i;
      bindDims(ctx, t, i);
      Value init = tensor::EmptyOp::create(b, sizesOf(b, y), b.getF32Type());
      SmallVector<AffineMap> maps = {
          AffineMap::get(2, 0, {t, i}, ctx),
          AffineMap::get(2, 0, {t, getAffineConstantExpr(0, ctx)}, ctx),
          AffineMap::get(2, 0, {t, i}, ctx)};
      y = linalg::GenericOp::create(
              b, init.getType(), ValueRange{y, logit}, init, maps,
              {utils::IteratorType::parallel, utils::IteratorType::parallel},
              [&](OpBuilder &nested, Location loc, ValueRange args) {
                LocBuilder nb(loc, nested);
                linalg::YieldOp::create(
                    nb, arith::MulFOp::create(nb, args[0],
                                              sigmoid(nb, args[1]))
                            .getResult());
              })
              .getResult(0);
    }
    rewriter.replaceOp(op, roundTo(b, y, op.getType().getElementType()));
    return success();
  }
};

struct LinearLowering : OpConversionPattern<LinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(LinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    LocBuilder b(op.getLoc(), rewriter);
    Value y = linear(b, adaptor.getInput(), adaptor.getWeight());
    rewriter.replaceOp(op, roundTo(b, y, op.getType().getElementType()));
    return success();
  }
};

} // namespace

void mlir::moe::lowering::populateExpertPatterns(TypeConverter &converter,
                                                 RewritePatternSet &patterns) {
  patterns.add<GroupedMatmulLowering, GatedExpertsLowering,
               MlpExpertsLowering, LoraExpertsLowering,
               LoraGatedExpertsLowering, SharedExpertLowering,
               LinearLowering>(converter, patterns.getContext());
}
