//===- LoweringUtils.h - builders shared by the moe lowerings ---*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Small builders that keep the reference lowering readable: constants, loops
// with iter_args, the selection order of the spec, activations and
// f32-accumulated projections. All build on tensors.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLINALG_LOWERINGUTILS_H
#define MOE_LIB_CONVERSION_MOETOLINALG_LOWERINGUTILS_H

#include "moe/IR/MoEOps.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::moe::lowering {

using LocBuilder = ImplicitLocOpBuilder;

//===----------------------------------------------------------------------===//
// Constants and casts
//===----------------------------------------------------------------------===//

Value constIndex(LocBuilder &b, int64_t value);
Value constI1(LocBuilder &b, bool value);
Value constI32(LocBuilder &b, int32_t value);
Value constI64(LocBuilder &b, int64_t value);
Value constF32(LocBuilder &b, double value);

/// Size of dimension `dim` of `tensor`, as an index.
Value dimSize(LocBuilder &b, Value tensor, int64_t dim);
/// The sizes of `tensor`: attributes for static sizes, values otherwise.
SmallVector<OpFoldResult> sizesOf(LocBuilder &b, Value tensor);
/// The sizes of `type`, taking its dynamic sizes from `dynamicSizes` (one
/// per dimension, used only where `type` is dynamic).
SmallVector<OpFoldResult> sizesOf(LocBuilder &b, Type type,
                                  ArrayRef<Value> dynamicSizes);

Value indexToI64(LocBuilder &b, Value index);
Value indexToI32(LocBuilder &b, Value index);
Value intToIndex(LocBuilder &b, Value integer);
/// Widens any float to f32 (no-op for f32).
Value toF32(LocBuilder &b, Value value);
/// Rounds an f32 to `type` (no-op for f32).
Value fromF32(LocBuilder &b, Value value, Type type);

//===----------------------------------------------------------------------===//
// Tensors
//===----------------------------------------------------------------------===//

/// A tensor of `sizes` filled with `value`.
Value filledTensor(LocBuilder &b, ArrayRef<OpFoldResult> sizes, Value value);

Value extract(LocBuilder &b, Value tensor, ValueRange indices);
Value insert(LocBuilder &b, Value value, Value tensor, ValueRange indices);

/// A linalg.generic over the shape of the first input (all operands share
/// it) computing one scalar per element; the body sees the input elements.
Value mapElements(LocBuilder &b, ValueRange inputs, Type resultElementType,
                  function_ref<Value(LocBuilder &, ValueRange)> body);

/// `matrix [R, C] + vector [C]` (a bias per column), in f32.
Value addColumnBias(LocBuilder &b, Value matrix, Value bias);

/// Row-wise reduction of a 2-D f32 tensor into a 1-D tensor.
Value reduceRows(LocBuilder &b, Value matrix, Value init,
                 function_ref<Value(LocBuilder &, Value acc, Value x)> combine);

//===----------------------------------------------------------------------===//
// Control flow
//===----------------------------------------------------------------------===//

using LoopBody =
    function_ref<SmallVector<Value>(LocBuilder &, Value iv, ValueRange iterArgs)>;

/// scf.for iv = lb to ub with `init` iter_args; `body` returns the values
/// yielded to the next iteration.
SmallVector<Value> forLoop(LocBuilder &b, Value lb, Value ub, ValueRange init,
                           LoopBody body);

using Branch = function_ref<SmallVector<Value>(LocBuilder &)>;

/// scf.if yielding the values its branches return.
SmallVector<Value> ifThenElse(LocBuilder &b, Value condition, Branch thenBranch,
                              Branch elseBranch);

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

/// True when (keyA, indexA) comes before (keyB, indexB) in the selection
/// order of the spec: descending keys, NaN below every number, equal keys
/// to the lower index.
Value comesBefore(LocBuilder &b, Value keyA, Value indexA, Value keyB,
                  Value indexB);

/// One step of a selection scan over candidates 0..count-1.
struct Pick {
  Value found; // i1
  Value key;   // f32
  Value index; // index
};

/// The first candidate in selection order that is allowed and comes after
/// `previous` (the pick of the previous step). `allowed` may be null.
Pick pickNext(LocBuilder &b, Value count,
              function_ref<Value(LocBuilder &, Value)> key,
              function_ref<Value(LocBuilder &, Value)> allowed,
              std::optional<Pick> previous);

//===----------------------------------------------------------------------===//
// Math
//===----------------------------------------------------------------------===//

/// The activation of spec section 5 on an f32 scalar.
Value activation(LocBuilder &b, Activation act, Value x);
Value sigmoid(LocBuilder &b, Value x);

/// `rows [n, in]` times `weight` accumulated in f32: `weight` is
/// `[out, in]` when `weightOutIn`, else `[in, out]`. Returns `[n, out]` f32.
Value linear(LocBuilder &b, Value rows, Value weight, bool weightOutIn = true);

/// Scores of spec section 1 on f32 logits `[T, E]`.
Value scores(LocBuilder &b, ScoreFunc score, Value logits);

/// The capacity of spec section 4 for `numTokens` tokens with `slots`
/// assignments each over `numExperts` experts, as an index. `factor` (f64),
/// when given, replaces the attribute's factor.
Value capacity(LocBuilder &b, CapacityAttr attr, Value numTokens, int64_t slots,
               int64_t numExperts, Value factor = Value());

} // namespace mlir::moe::lowering

#endif // MOE_LIB_CONVERSION_MOETOLINALG_LOWERINGUTILS_H
