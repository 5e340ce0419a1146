//===- consumer.cpp - a program built against the installed package ------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "moe/InitMoE.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

static const char *kLayer = R"mlir(
func.func @layer(%x: tensor<?x16xf32>, %wg: tensor<4x16xf32>,
                 %w1: tensor<4x32x16xf32>, %w2: tensor<4x16x32xf32>)
    -> tensor<?x16xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<4x16xf32>)
      experts(%w1, %w2 : tensor<4x32x16xf32>, tensor<4x16x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 1>,
       capacity = #moe.capacity<factor = 1.0, drop_order = token_major>,
       experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}
)mlir";

int main() {
  mlir::DialectRegistry registry;
  registry.insert<mlir::func::FuncDialect>();
  mlir::moe::registerAllMoEDialects(registry);
  mlir::moe::registerAllMoEPasses();
  mlir::MLIRContext context(registry);

  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(kLayer, &context);
  if (!module)
    return 1;
  auto pm = mlir::PassManager::on<mlir::ModuleOp>(&context);
  if (mlir::failed(mlir::parsePassPipeline("moe-decompose",
                                           pm)) ||
      mlir::failed(pm.run(*module)))
    return 1;
  module->print(llvm::outs());
  llvm::outs() << "\n";
  int numDispatch = 0;
  module->walk([&](mlir::moe::DispatchOp) { ++numDispatch; });
  llvm::outs() << "dispatch ops: " << numDispatch << "\n";
  return numDispatch == 1 ? 0 : 1;
}
