//===- BufferizableOpInterfaceImpl.cpp - bufferization of moe ops ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/BufferizableOpInterfaceImpl.h"

#include "moe/IR/MoEOps.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"
#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::bufferization;
using namespace mlir::moe;

namespace {
struct UKernelOpInterface
    : DstBufferizableOpInterfaceExternalModel<UKernelOpInterface, UKernelOp> {
  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    auto kernel = cast<UKernelOp>(op);
    if (kernel.getNumResults() == 0)
      return success(); // Already on buffers.
    auto toBuffers = [&](ValueRange values,
                         SmallVectorImpl<Value> &buffers) -> LogicalResult {
      for (Value value : values) {
        if (!isa<TensorType>(value.getType())) {
          buffers.push_back(value);
          continue;
        }
        FailureOr<Value> buffer = getBuffer(rewriter, value, options, state);
        if (failed(buffer))
          return failure();
        buffers.push_back(*buffer);
      }
      return success();
    };
    SmallVector<Value> inputs, outputs;
    if (failed(toBuffers(kernel.getInputs(), inputs)) ||
        failed(toBuffers(kernel.getOutputs(), outputs)))
      return failure();
    rewriter.setInsertionPoint(op);
    UKernelOp::create(rewriter, op->getLoc(), TypeRange(),
                      kernel.getNameAttr(), inputs, outputs,
                      kernel.getConfigAttr());
    replaceOpWithBufferizedValues(rewriter, op, outputs);
    return success();
  }
};
} // namespace

void mlir::moe::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, MoEDialect *) {
    UKernelOp::attachInterface<UKernelOpInterface>(*ctx);
  });
}
