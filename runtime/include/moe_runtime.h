/*===-- moe_runtime.h - C API of compiled moe models ---------------*- C
-*-===*\
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
|* In a CUDA library a failed GPU operation (out of device memory, a kernel   *|
|* that faulted earlier on the context) is the error of the function that     *|
|* met it: MOE_ERROR_OUT_OF_MEMORY or MOE_ERROR_GPU. Its output is then      *|
|* undefined, the work it enqueued before the failure stays enqueued, and    *|
|* nothing it made on the GPU is kept (weights not copied are copied at the   *|
|* next call; a knob that did not reach the GPU keeps its value).             *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_H
#define MOE_RUNTIME_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOE_RUNTIME_ABI_VERSION 5

typedef enum moe_status {
  MOE_OK = 0,
  MOE_ERROR_INVALID_ARGUMENT = 1, /* a null pointer, a bad index or size */
  MOE_ERROR_CHECKPOINT = 2,       /* missing, corrupt or mismatched weights */
  MOE_ERROR_OUT_OF_MEMORY = 3,
  MOE_ERROR_NO_STATISTICS = 4, /* compiled without statistics */
  MOE_ERROR_INTERNAL = 5,
  MOE_ERROR_NO_GPU = 6, /* a CUDA library, and no usable GPU (moe_last_error
                           says why: no driver, a driver too old, no device) */
  MOE_ERROR_GPU = 7     /* a CUDA operation failed (moe_last_error names the
                           driver call and its error; out of device memory is
                           MOE_ERROR_OUT_OF_MEMORY) */
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
 * uses the checkpoint recorded at compile time. A library built with
 * moe-compile --target cuda also checks here that the process has a usable
 * GPU that runs the library's kernels (their --cuda-chip and --cuda-format;
 * else MOE_ERROR_NO_GPU) and the MOE_GPU_* settings of the environment
 * (docs/cuda.md): a bad one is MOE_ERROR_INVALID_ARGUMENT, named by
 * moe_last_error. */
moe_status moe_model_load(const char *checkpoint_dir, moe_model **model);
void moe_model_free(moe_model *model);

int64_t moe_model_num_layers(const moe_model *model);
moe_status moe_model_layer_info(const moe_model *model, int64_t layer,
                                moe_layer_info *info);
/* The index of the layer compiled as function `name`, or -1. */
int64_t moe_model_find_layer(const moe_model *model, const char *name);

/* Runs layer `layer` on `tokens` rows of `x` ([tokens, hidden_size], C
 * order, the layer's dtype) into `y` ([tokens, output_size]). Any token
 * count from 0 to moe_model_max_tokens works; `x` and `y` may be NULL when
 * it is 0. */
moe_status moe_model_run_layer(moe_model *model, int64_t layer,
                               const void *x, int64_t tokens, void *y);

/* Libraries built with moe-compile --target cuda: runs layer `layer` on
 * device buffers, enqueued on `stream` (a CUstream; NULL for the default
 * stream), and returns without waiting. `x` [tokens, hidden_size] and `y`
 * [tokens, output_size] (the layer's dtype, C order, 16-byte aligned) are in
 * GPU memory: bf16, or f32 or f16 for a layer compiled with
 * --narrow-to-bf16, which the call rounds into bf16 temporaries and back
 * on the stream (allocated and freed in stream order);
 * nothing is copied to or from the host and nothing synchronizes, so the
 * call can be captured in a CUDA graph. The first call of a layer copies
 * its weights, knobs and statistics table to the GPU synchronously: make it, or
 * moe_model_upload, before a capture (inside one it is refused). The tau and
 * capacity_factor knobs are read on the GPU as the call runs (a replayed graph
 * follows moe_model_set_knob). The statistics count the call when the stream
 * reaches it, and each replay of a captured graph. Results are bitwise those of
 * moe_model_run_layer. Fails for CPU libraries and for a layer whose function
 * is more than one moe.layer (moe-compile warns). */
moe_status moe_model_run_layer_async(moe_model *model, int64_t layer,
                                     const void *x, int64_t tokens, void *y,
                                     void *stream);

/* Libraries built with moe-compile --target cuda: copies the weights the
 * layers read on the GPU, and the statistics tables, to GPU memory now,
 * synchronously, with the copies of the knobs the layers read there,
 * which the first call of each layer does otherwise. Call it before
 * capturing moe_model_run_layer_async in a CUDA graph. */
moe_status moe_model_upload(moe_model *model);

/* The most tokens one call of moe_model_run_layer takes for `layer`: 0
 * when any number works (CPU libraries), else the GPU kernels' limit of
 * 32-bit slots, (2^31 - 1) / k (or / E with expert_choice; docs/cuda.md).
 * -1 for an invalid model or layer. */
int64_t moe_model_max_tokens(const moe_model *model, int64_t layer);

/* The layer's counters since load or the last reset: per expert, the
 * assignments routed to it and the ones it dropped (arrays of num_experts
 * entries, either may be NULL), the tokens it saw and its calls. */
moe_status moe_model_layer_stats(const moe_model *model, int64_t layer,
                                 int64_t *assignments, int64_t *dropped,
                                 int64_t *tokens, int64_t *calls);
moe_status moe_model_reset_stats(moe_model *model);

/* ---- Statistics snapshots (docs/monitoring.md) ---------------------------
 * A snapshot holds every layer's counters read at one instant, with the
 * derived metrics; it stays valid (and unchanged) until moe_stats_free. */

typedef struct moe_stats moe_stats;

typedef struct moe_layer_stats {
  const char *function;  /* the layer's statistics name, e.g. "moe_layer_3" */
  int64_t num_experts;
  int64_t calls;
  int64_t tokens;
  const int64_t *assignments; /* [num_experts], before capacity */
  const int64_t *dropped;     /* [num_experts] */
  /* Tokens that chose both experts i < j, the upper triangle row by row
   * (num_experts * (num_experts - 1) / 2 entries); NULL unless compiled
   * with co-activation counting. */
  const int64_t *coactivation;
  double mean_experts_per_token;
  double mean_load;
  double max_load;
  double max_load_ratio;
  double load_cv;
  double normalized_entropy;
  double jain_fairness;
  double drop_rate;
} moe_layer_stats;

/* Takes a snapshot of the layers called at least once since load or reset. */
moe_status moe_model_stats_snapshot(const moe_model *model, moe_stats **stats);
void moe_stats_free(moe_stats *stats);
int64_t moe_stats_num_layers(const moe_stats *stats);
moe_status moe_stats_layer(const moe_stats *stats, int64_t index,
                           moe_layer_stats *layer);
/* The snapshot as JSON (docs/monitoring.md) and in the Prometheus text
 * exposition format; the strings belong to the snapshot. */
const char *moe_stats_json(moe_stats *stats);
const char *moe_stats_prometheus(moe_stats *stats);

/* ---- Run-time knobs ------------------------------------------------------
 * Values that compiled layers read on every call (moe-expose-knobs): "tau"
 * of threshold routing and "capacity_factor" of token-choice capacity, per
 * layer. Setting one takes effect from the next call; no recompilation.
 * Safe to call while other threads run layers. */

int64_t moe_model_num_knobs(const moe_model *model);
/* The layer, name and default of knob `index` (strings owned by the model). */
moe_status moe_model_knob_info(const moe_model *model, int64_t index,
                               const char **layer, const char **name,
                               double *default_value);
moe_status moe_model_get_knob(const moe_model *model, const char *layer,
                              const char *name, double *value);
/* Rejects unknown knobs and invalid values (tau must be finite,
 * capacity_factor finite and > 0). */
moe_status moe_model_set_knob(moe_model *model, const char *layer,
                              const char *name, double value);

/* ---- Adaptive controller (docs/monitoring.md) -----------------------------
 * Holds one layer's measured quantity near a setpoint by turning one knob
 * after every interval of calls: a deadband with hysteresis, a step that
 * adapts to the quantity's response, bounds. Deterministic: the same
 * statistics give the same knob values and log. */

typedef enum moe_control_target {
  /* Routed assignments per token, turned with "tau" (threshold routing). */
  MOE_CONTROL_MEAN_EXPERTS_PER_TOKEN = 0,
  /* Largest kept load over the mean routed load, turned with
   * "capacity_factor". */
  MOE_CONTROL_MAX_LOAD_RATIO = 1
} moe_control_target;

typedef struct moe_controller_config {
  moe_control_target target;
  double setpoint;
  double band;                 /* act outside setpoint +- band, until +- band/2 */
  double min_value, max_value; /* bounds of the knob */
  double initial_step, min_step, max_step;
} moe_controller_config;

typedef struct moe_controller moe_controller;

/* A controller of `layer`'s knob, starting from the knob's current value.
 * The layer must record statistics and have the target's knob. */
moe_status moe_controller_create(moe_model *model, const char *layer,
                                 const moe_controller_config *config,
                                 moe_controller **controller);
/* Ends an interval: reads the layer's statistics since the previous step
 * (or creation), sets the knob for the next interval, and reports the
 * measured quantity (NaN when the interval had no tokens), the new knob and
 * whether it changed (any pointer may be NULL). */
moe_status moe_controller_step(moe_controller *controller, double *quantity,
                               double *knob, int *changed);
/* Every change so far, one line each; valid until the next call on the
 * controller. */
const char *moe_controller_log(moe_controller *controller);
void moe_controller_free(moe_controller *controller);

/* Threads that the CPU kernels of every model in the process use; 0 (or
 * less) restores the default: MOE_NUM_THREADS if set, else one per core.
 * Results are bitwise the same for every thread count. */
void moe_set_num_threads(int threads);
int moe_num_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_H */
