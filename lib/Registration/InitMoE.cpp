//===- InitMoE.cpp - register the moe dialect and passes ------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/InitMoE.h"

#include "moe/IR/MoEDialect.h"
#include "moe/Conversion/Passes.h"
#include "moe/Pipelines/Pipelines.h"
#include "moe/Transforms/BufferizableOpInterfaceImpl.h"
#include "moe/Transforms/Passes.h"

#include "mlir/IR/DialectRegistry.h"

void mlir::moe::registerAllMoEDialects(DialectRegistry &registry) {
  registry.insert<MoEDialect>();
  registerBufferizableOpInterfaceExternalModels(registry);
}

void mlir::moe::registerAllMoEPasses() {
  registerMoETransformsPasses();
  registerMoEConversionPasses();
  registerMoEPipelines();
}
