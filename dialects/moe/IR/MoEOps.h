//===- MoEOps.h - moe dialect operations ------------------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEOPS_H
#define MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "moe/IR/MoEAttrs.h"
#include "moe/IR/MoEDialect.h"

#define GET_OP_CLASSES
#include "moe/IR/MoEOps.h.inc"

#endif // MOE_IR_MOEOPS_H
