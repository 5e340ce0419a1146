//===- CompiledModel.h - what moe-compile puts in a library -----*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The descriptor that moe-compile emits next to the compiled layers, and
// through which the C API (CApi.cpp) finds them. The layout is part of the
// runtime ABI (MOE_RUNTIME_ABI_VERSION): { i64 abi, ptr manifest, i64 count,
// ptr layers }, each layer { ptr name, ptr entry, ptr device_entry }.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_COMPILEDMODEL_H
#define MOE_RUNTIME_COMPILEDMODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct moe_compiled_layer {
  const char *name;
  /* _mlir_ciface_<name>(result descriptor *, input descriptor *) */
  void *entry;
  /* CUDA libraries: _mlir_ciface_<name>.device(input descriptor *, output
   * descriptor *, counts descriptor *, CUstream) -> CUstream, the layer on
   * device buffers (convert-moe-to-gpu-kernels{device-entries}); NULL when
   * the layer has none. */
  void *device_entry;
} moe_compiled_layer;

typedef struct moe_compiled_model {
  int64_t abi_version;
  const char *manifest; /* JSON, see Manifest.h */
  int64_t num_layers;
  const moe_compiled_layer *layers;
} moe_compiled_model;

/* Defined by the object that moe-compile emits. */
const moe_compiled_model *moe_compiled_model_descriptor(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_COMPILEDMODEL_H */
