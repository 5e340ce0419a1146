//===- InitMoE.h - register the moe dialect and passes ----------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The entry points a tool or another compiler calls to make moe-mlir
// available: the dialect (and the upstream dialects its lowerings produce),
// and every moe pass and pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_INITMOE_H
#define MOE_INITMOE_H

namespace mlir {
class DialectRegistry;
namespace moe {

/// Registers the moe dialect.
void registerAllMoEDialects(DialectRegistry &registry);

/// Registers every moe pass and pipeline with the global pass registry.
void registerAllMoEPasses();

} // namespace moe
} // namespace mlir

#endif // MOE_INITMOE_H
