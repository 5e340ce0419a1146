/*===-- moe-c/Dialects.h - C API of the moe dialect ---------------*- C -*-===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Registers the moe dialect and its passes from C (and from every binding    *|
|* built on the MLIR C API).                                                  *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_C_DIALECTS_H
#define MOE_C_DIALECTS_H

#include "mlir-c/IR.h"
#include "mlir-c/Support.h"

#ifdef __cplusplus
extern "C" {
#endif

/// The handle of the moe dialect: `mlirDialectHandleRegisterDialect`,
/// `mlirDialectHandleLoadDialect` and `mlirDialectHandleInsertDialect`
/// accept it.
MLIR_DECLARE_CAPI_DIALECT_REGISTRATION(MoE, moe);

/// Registers every moe pass and pipeline with the global pass registry, so
/// that `mlirParsePassPipeline` knows them.
MLIR_CAPI_EXPORTED void mlirRegisterMoEPasses(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_C_DIALECTS_H */
