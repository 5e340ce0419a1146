//===- MoEDialect.cpp - moe dialect ---------------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEDialect.h"
#include "moe/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;

#include "moe/IR/MoEDialect.cpp.inc"

void MoEDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "moe/IR/MoEOps.cpp.inc"
      >();
}
