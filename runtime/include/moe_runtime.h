/*===-- moe_runtime.h - C API of compiled moe models ---------------*- C -*-===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* A library built by moe-compile exposes one model: its MoE layers, compiled *|
|* ahead of time, with the weights bound from a checkpoint directory when the *|
|* model is loaded (memory-mapped; per-expert tensors are packed once).       *|
|*                                                                            *|
|* Every function returns a status; on failure, moe_last_error() describes    *|
|* it. No function aborts the process. Functions are thread-safe: several     *|
|* threads may run layers of the same model at once.                          *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_H
#define MOE_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOE_RUNTIME_ABI_VERSION 2

typedef enum moe_status {
  MOE_OK = 0,
  MOE_ERROR_INVALID_ARGUMENT = 1, /* a null pointer, a bad index or size */
  MOE_ERROR_CHECKPOINT = 2,       /* missing, corrupt or mismatched weights */
  MOE_ERROR_OUT_OF_MEMORY = 3,
  MOE_ERROR_NO_STATISTICS = 4, /* compiled without statistics */
  MOE_ERROR_INTERNAL = 5
} moe_status;

typedef enum moe_dtype {
  MOE_DTYPE_F32 = 0,
  MOE_DTYPE_F16 = 1, /* IEEE half */
  MOE_DTYPE_BF16 = 2 /* the upper 16 bits of an f32 */
} moe_dtype;

typedef struct moe_model moe_model;

typedef struct moe_layer_info {
  const char *name;       /* the compiled function, e.g. "moe_layer_3" */
  int64_t hidden_size;    /* d: elements per input row */
  int64_t output_size;    /* elements per output row (d, or LoRA's d_out) */
  int64_t num_experts;    /* E; 0 when compiled without statistics */
  moe_dtype dtype;        /* element type of the input and output rows */
  /* Multiply-add FLOPs per token of the sparse layer, and of the same layer
   * running every expert on every token (dense); 0 when unknown. */
  double flops_per_token;
  double dense_flops_per_token;
} moe_layer_info;

/* Why the last call on this thread failed (empty after a success). The
 * string stays valid until the next call on the same thread. */
const char *moe_last_error(void);

/* Loads the model, binding its weights from `checkpoint_dir` (a directory
 * with config.json and safetensors files, or one .safetensors file); NULL
 * uses the checkpoint recorded at compile time. */
moe_status moe_model_load(const char *checkpoint_dir, moe_model **model);
void moe_model_free(moe_model *model);

int64_t moe_model_num_layers(const moe_model *model);
moe_status moe_model_layer_info(const moe_model *model, int64_t layer,
                                moe_layer_info *info);
/* The index of the layer compiled as function `name`, or -1. */
int64_t moe_model_find_layer(const moe_model *model, const char *name);

/* Runs layer `layer` on `tokens` rows of `x` ([tokens, hidden_size], C
 * order, the layer's dtype) into `y` ([tokens, output_size]). Any token
 * count >= 0 works; `x` and `y` may be NULL when it is 0. */
moe_status moe_model_run_layer(moe_model *model, int64_t layer,
                               const void *x, int64_t tokens, void *y);

/* The layer's counters since load or the last reset: per expert, the
 * assignments routed to it and the ones it dropped (arrays of num_experts
 * entries, either may be NULL), the tokens it saw and its calls. */
moe_status moe_model_layer_stats(const moe_model *model, int64_t layer,
                                 int64_t *assignments, int64_t *dropped,
                                 int64_t *tokens, int64_t *calls);
moe_status moe_model_reset_stats(moe_model *model);

/* Threads that the CPU kernels of every model in the process use; 0 (or
 * less) restores the default: MOE_NUM_THREADS if set, else one per core.
 * Results are bitwise the same for every thread count. */
void moe_set_num_threads(int threads);
int moe_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_H */
