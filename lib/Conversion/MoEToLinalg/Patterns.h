//===- Patterns.h - pattern groups of convert-moe-to-linalg -----*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLINALG_PATTERNS_H
#define MOE_LIB_CONVERSION_MOETOLINALG_PATTERNS_H

namespace mlir {
class RewritePatternSet;
class TypeConverter;
namespace moe::lowering {

/// moe.router, moe.route, moe.expert_choice, losses and statistics.
void populateRoutingPatterns(TypeConverter &converter,
                             RewritePatternSet &patterns);

/// moe.dispatch, moe.gather and moe.combine.
void populateDispatchPatterns(TypeConverter &converter,
                              RewritePatternSet &patterns);

/// Expert computation: grouped matmul, expert FFNs, shared experts, linear.
void populateExpertPatterns(TypeConverter &converter,
                            RewritePatternSet &patterns);

} // namespace moe::lowering
} // namespace mlir

#endif // MOE_LIB_CONVERSION_MOETOLINALG_PATTERNS_H
