//===- Passes.h - moe transformation passes ---------------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_H
#define MOE_TRANSFORMS_PASSES_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/Pass.h"

#include "moe/IR/MoEOps.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "moe/Transforms/Passes.h.inc"

/// Adds the pattern that expands `moe.layer` into primitive moe ops.
void populateMoEDecomposePatterns(RewritePatternSet &patterns);

/// Patterns that expand the fused ops (`moe.gate`, `moe.fused_experts`)
/// back into the primitive ops they stand for, for the reference lowering.
void populateMoEUnfusePatterns(RewritePatternSet &patterns);

/// Calls `fn` on every `moe.layer` under `root` with the name that the
/// runtime knows it by: the enclosing function's name, with `#i` appended
/// when the function holds several layers (statistics and knobs).
void forEachNamedLayer(Operation *root,
                       llvm::function_ref<void(LayerOp, StringRef)> fn);

#define GEN_PASS_REGISTRATION
#include "moe/Transforms/Passes.h.inc"

} // namespace mlir::moe

#endif // MOE_TRANSFORMS_PASSES_H
