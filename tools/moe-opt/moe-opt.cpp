//===- moe-opt.cpp - moe optimizer driver ---------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// mlir-opt with the moe dialect, its passes and pipelines, and every upstream
// dialect, pass, extension and GPU translation registered.
//
//===----------------------------------------------------------------------===//

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

#include "moe/InitMoE.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  mlir::moe::registerAllMoEPasses();

  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllGPUToLLVMIRTranslations(registry);
  mlir::moe::registerAllMoEDialects(registry);

  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "moe-mlir optimizer driver\n", registry));
}
