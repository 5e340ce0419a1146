//===- MoEToLinalg.h - reference lowering of moe ops ------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
#define MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H

namespace mlir {
class RewritePatternSet;
class TypeConverter;
namespace moe {

/// Adds the patterns that lower every primitive moe op to linalg, tensor,
/// arith, math and scf on tensors. Types are unchanged (`converter` is the
/// identity for tensors); `moe.layer` needs `populateMoEDecomposePatterns`.
void populateMoEToLinalgPatterns(TypeConverter &converter,
                                 RewritePatternSet &patterns);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOLINALG_MOETOLINALG_H
