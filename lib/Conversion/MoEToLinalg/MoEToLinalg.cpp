//===- MoEToLinalg.cpp - the convert-moe-to-linalg pass -------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "Patterns.h"
#include "moe/IR/MoEOps.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Transforms/DialectConversion.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOLINALG
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

void mlir::moe::populateMoEToLinalgPatterns(TypeConverter &converter,
                                            RewritePatternSet &patterns) {
  lowering::populateRoutingPatterns(converter, patterns);
  lowering::populateDispatchPatterns(converter, patterns);
  lowering::populateExpertPatterns(converter, patterns);
}

namespace {
struct ConvertMoEToLinalgPass
    : mlir::moe::impl::ConvertMoEToLinalgBase<ConvertMoEToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    TypeConverter converter;
    converter.addConversion([](Type type) { return type; });

    RewritePatternSet patterns(ctx);
    populateMoEDecomposePatterns(patterns);
    populateMoEUnfusePatterns(patterns);
    populateMoEToLinalgPatterns(converter, patterns);

    ConversionTarget target(*ctx);
    target.addIllegalDialect<MoEDialect>();
    // Runtime buffers (weights, and the knobs that a CUDA device entry
    // point reads in GPU memory) and kernel calls are lowered after
    // bufferization.
    target.addLegalOp<WeightBufferOp, KnobBufferOp, UKernelOp>();
    target.markUnknownOpDynamicallyLegal([](Operation *) { return true; });
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
