//===- Dialects.cpp - C API of the moe dialect ----------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe-c/Dialects.h"

#include "moe/IR/MoEDialect.h"
#include "moe/InitMoE.h"

#include "mlir/CAPI/Registration.h"

MLIR_DEFINE_CAPI_DIALECT_REGISTRATION(MoE, moe, mlir::moe::MoEDialect)

void mlirRegisterMoEPasses(void) { mlir::moe::registerAllMoEPasses(); }
