//===- Passes.h - moe conversion passes -------------------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_H
#define MOE_CONVERSION_PASSES_H

#include "moe/Conversion/MoEToLinalg/MoEToLinalg.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Pass/Pass.h"

namespace mlir::moe {

#define GEN_PASS_DECL
#include "moe/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "moe/Conversion/Passes.h.inc"

class LayerOp;

/// The most tokens one call of `op` may take once moe-cuda-pipeline lowers
/// it to the kernel library (lib/GPU/Kernels/layer.mlir), whose slots, rows
/// and tokens are 32-bit: (2^31 - 1) / k, or / E with expert_choice.
int64_t cudaMaxTokens(LayerOp op);

/// The compute capability of an NVVM chip name, 10 major + minor (`sm_90`
/// and `sm_90a` are 90), or 0 when `chip` is not `sm_<N>` or `sm_<N>a`.
unsigned cudaChipArchitecture(StringRef chip);

/// The declaration of runtime function `name` in `module`, added private
/// with the C interface (memrefs by descriptor pointer) on first use.
func::FuncOp declareRuntimeFunction(ModuleOp module, SymbolTable &symbols,
                                    StringRef name, FunctionType type);

} // namespace mlir::moe

#endif // MOE_CONVERSION_PASSES_H
