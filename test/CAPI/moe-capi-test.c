/*===- moe-capi-test.c - use the moe dialect through the C API -----------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

// RUN: moe-capi-test 2>&1 | FileCheck %s

#include "mlir-c/IR.h"
#include "mlir-c/Pass.h"
#include "mlir-c/RegisterEverything.h"
#include "moe-c/Dialects.h"

#include <stdio.h>

static const char *kLayer =
    "func.func @mixtral(%x: tensor<?x16xf32>, %wg: tensor<4x16xf32>,\n"
    "    %w1: tensor<4x32x16xf32>, %w3: tensor<4x32x16xf32>,\n"
    "    %w2: tensor<4x16x32xf32>) -> tensor<?x16xf32> {\n"
    "  %y, %load, %dropped = moe.layer %x router(%wg : tensor<4x16xf32>)\n"
    "      experts(%w1, %w3, %w2 : tensor<4x32x16xf32>,\n"
    "              tensor<4x32x16xf32>, tensor<4x16x32xf32>)\n"
    "      {routing = #moe.routing<score = softmax, selection = top_k,\n"
    "                              k = 2, renormalize = true>,\n"
    "       experts = #moe.experts<kind = gated>} : tensor<?x16xf32>\n"
    "  return %y : tensor<?x16xf32>\n"
    "}\n";

static void printToStdout(MlirStringRef text, void *userData) {
  (void)userData;
  fwrite(text.data, 1, text.length, stdout);
}

int main(void) {
  MlirDialectRegistry registry = mlirDialectRegistryCreate();
  mlirRegisterAllDialects(registry);
  mlirDialectHandleInsertDialect(mlirGetDialectHandle__moe__(), registry);
  MlirContext ctx = mlirContextCreate();
  mlirContextAppendDialectRegistry(ctx, registry);
  mlirDialectRegistryDestroy(registry);
  mlirRegisterAllPasses();
  mlirRegisterMoEPasses();

  // CHECK: moe dialect loaded: 1
  MlirDialect moe =
      mlirDialectHandleLoadDialect(mlirGetDialectHandle__moe__(), ctx);
  printf("moe dialect loaded: %d\n", !mlirDialectIsNull(moe));

  MlirModule module =
      mlirModuleCreateParse(ctx, mlirStringRefCreateFromCString(kLayer));
  if (mlirModuleIsNull(module)) {
    fprintf(stderr, "parse failed\n");
    return 1;
  }

  MlirPassManager pm = mlirPassManagerCreate(ctx);
  MlirOpPassManager opm = mlirPassManagerGetAsOpPassManager(pm);
  MlirLogicalResult parsed = mlirParsePassPipeline(
      opm, mlirStringRefCreateFromCString("builtin.module(moe-decompose)"), printToStdout,
      NULL);
  if (mlirLogicalResultIsFailure(parsed)) {
    fprintf(stderr, "pipeline parse failed\n");
    return 1;
  }
  MlirLogicalResult ran =
      mlirPassManagerRunOnOp(pm, mlirModuleGetOperation(module));
  // CHECK: decompose: ok
  printf("decompose: %s\n", mlirLogicalResultIsSuccess(ran) ? "ok" : "failed");

  // CHECK-LABEL: func.func @mixtral
  // CHECK: moe.router
  // CHECK: moe.route
  // CHECK: moe.dispatch
  // CHECK: moe.gated_experts
  // CHECK: moe.combine
  // CHECK-NOT: moe.layer
  mlirOperationPrint(mlirModuleGetOperation(module), printToStdout, NULL);
  printf("\n");

  mlirPassManagerDestroy(pm);
  mlirModuleDestroy(module);
  mlirContextDestroy(ctx);
  return 0;
}
