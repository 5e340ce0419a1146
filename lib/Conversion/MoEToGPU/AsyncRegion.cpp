//===- AsyncRegion.cpp - gpu-async-region for functions without streams ---===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// moe-gpu-async-region: the upstream gpu-async-region on the functions whose
// GPU operations are synchronous; functions that take or return a stream (a
// !gpu.async.token) or chain their operations by tokens already are left
// alone.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/Async/IR/Async.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUASYNCREGION
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

struct MoEGPUAsyncRegionPass
    : public moe::impl::MoEGPUAsyncRegionBase<MoEGPUAsyncRegionPass> {
  LogicalResult initialize(MLIRContext *) override {
    asyncRegion.addPass(createGpuAsyncRegionPass());
    return success();
  }

  void runOnOperation() override {
    if (managesItsStreams(getOperation()))
      return markAllAnalysesPreserved();
    if (failed(runPipeline(asyncRegion, getOperation())))
      signalPassFailure();
  }

  /// Whether `func` takes or returns a stream, or already chains its GPU
  /// operations by tokens: gpu-async-region would add a stream of its own
  /// and synchronize it around every call.
  static bool managesItsStreams(func::FuncOp func) {
    auto isToken = [](Type t) { return isa<gpu::AsyncTokenType>(t); };
    FunctionType type = func.getFunctionType();
    if (llvm::any_of(type.getInputs(), isToken) ||
        llvm::any_of(type.getResults(), isToken))
      return true;
    WalkResult found = func.walk([&](Operation *op) {
      return llvm::any_of(op->getResultTypes(), isToken)
                 ? WalkResult::interrupt()
                 : WalkResult::advance();
    });
    return found.wasInterrupted();
  }

  OpPassManager asyncRegion{func::FuncOp::getOperationName()};
};

} // namespace
