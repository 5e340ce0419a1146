//===- Passes.td - moe conversion passes --------------------*- tablegen -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower every moe op to linalg, tensor, arith, math and scf";
  let description = [{
    The reference lowering: plain, obviously correct code that the fast
    paths are checked against. `moe.layer` is first expanded as by
    `moe-decompose`; then every primitive op becomes upstream ops on
    tensors:

    - router, scores, gather and combine are `linalg.generic` ops; the
      combine sums each token's slots with the slot loop innermost, in slot
      order;
    - selection is a loop over tokens that picks the k experts one after the
      other, each pick the best candidate after the previous pick in the
      order of the spec (descending key, NaN lowest, ties to the lower
      index); top_p, threshold and the combine weights follow per token;
    - dispatch counts assignments, keeps the first C of each expert in the
      drop order, and lays the kept ones out by expert in token order;
    - expert computation loops over the experts and runs each expert on its
      own group of rows only (`tensor.extract_slice` of the group, f32
      accumulation, `tensor.insert_slice` back): never dense masking.

    Before:

    ```mlir
    %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
        : tensor<?x8xf32>
    ```

    After (abridged):

    ```mlir
    %max = linalg.generic ... // row max, exp, row sum, divide: the scores
    %r:2 = scf.for %t = %c0 to %T step %c1 iter_args(%ids0 = %init, ...) {
      %s:4 = scf.for %j = %c0 to %c2 step %c1 iter_args(...) {
        %pick:3 = scf.for %e = %c0 to %c8 step %c1 iter_args(...) {
          ... // is (key, e) after the previous pick and before the best?
        }
        ...
      }
      ...
    }
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
