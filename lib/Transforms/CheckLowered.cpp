//===- CheckLowered.cpp - the backend contract of the moe pipelines -------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringExtras.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOECHECKLOWERED
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {
struct MoECheckLoweredPass
    : mlir::moe::impl::MoECheckLoweredBase<MoECheckLoweredPass> {
  using MoECheckLoweredBase::MoECheckLoweredBase;

  void runOnOperation() override {
    SmallVector<std::string> allowed(dialects.begin(), dialects.end());
    if (allowed.empty())
      allowed = {"builtin", "llvm"};
    WalkResult result = getOperation()->walk([&](Operation *op) {
      StringRef dialect = op->getName().getDialectNamespace();
      if (llvm::is_contained(allowed, dialect))
        return WalkResult::advance();
      op->emitError() << "'" << op->getName() << "' is left after " << stage
                      << ": expected only ops of the dialects "
                      << llvm::join(allowed, ", ");
      return WalkResult::interrupt();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }
};
} // namespace
