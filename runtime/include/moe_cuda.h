/*===-- moe_cuda.h - is there a usable CUDA GPU, and which --------*- C -*-===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* libmoe_cuda_runtime implements the mgpu* functions that code compiled by   *|
|* MLIR's GPU pipeline calls. It opens the CUDA driver (libcuda.so.1) when    *|
|* first needed, so a program linked with it starts on any machine. These    *|
|* functions ask, without ever aborting, whether the driver and a GPU are     *|
|* there; the mgpu* functions abort with a one-line message when they are    *|
|* not, or when a driver call fails, unless the thread catches failures      *|
|* (moe_cuda_catch_begin).                                                    *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_CUDA_H
#define MOE_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the CUDA driver (CUDA 12.0 or newer) loads and sees at least one
 * device; otherwise 0, and *reason (when reason is not NULL) says why, e.g.
 * "libcuda.so.1 not found: ...", "no CUDA device" or "driver too old: needs
 * CUDA 12.0+, has 11.8". On success *reason is "". The answer is computed
 * once per process; the string lives as long as the process. */
int moe_cuda_available(const char **reason);

/* The number of devices the driver sees; 0 without a usable driver. */
int moe_cuda_device_count(void);

typedef struct moe_cuda_device_props {
  char name[256];
  int compute_capability_major; /* 9 and 0 for sm_90 */
  int compute_capability_minor;
  int multiprocessor_count;
  int max_threads_per_block;
  int warp_size;
  int max_shared_memory_per_block; /* bytes, with the kernel's opt-in */
  int l2_cache_bytes;
  uint64_t total_memory_bytes;
  int driver_version; /* the CUDA version the driver supports: 12040 = 12.4 */
} moe_cuda_device_props;

/* Fills *info for device `device` (0 <= device < moe_cuda_device_count()).
 * Returns 1, or 0 (leaving *info zeroed) without a usable driver, for a bad
 * ordinal or a NULL info. */
int moe_cuda_device_info(int device, moe_cuda_device_props *info);

/* Writes the name of the device that the mgpu* functions use (device 0
 * unless mgpuSetDefaultDevice chose another) into buf, NUL-terminated and
 * cut to len bytes. Returns 1, or 0 (buf empty when len > 0) without a
 * usable GPU, with a NULL buf or with len <= 0. */
int moe_cuda_device_name(char *buf, int len);

/* Memory that the mgpu* functions allocate on a stream (gpu.alloc async:
 * the temporaries of the kernel library's layers) comes from a memory pool
 * of the runtime's own on each device, which keeps the memory freed in it
 * for later allocations instead of returning it to the driver at each
 * synchronization, as the driver's pools do by default: a layer called
 * again allocates without the driver mapping memory. The environment
 * variable MOE_CUDA_POOL_RELEASE_THRESHOLD sets the bytes a pool keeps
 * across synchronizations (unset: all of them; 0: the driver's default;
 * anything but a number of bytes is an error of the first allocation on a
 * stream, fatal unless caught as below). When the device is out of memory, an
 * allocation gives the pool's free memory back and tries once more.
 *
 * moe_cuda_release_memory gives the free memory of every pool back to the
 * driver now, e.g. before a phase of the program that needs it elsewhere,
 * and returns the bytes released (0 without a usable driver or a pool).
 * Memory freed on a stream whose work the host has not yet seen complete
 * may stay in the pool until a later call. */
uint64_t moe_cuda_release_memory(void);

/* Failures that a C API returns as a status rather than stopping the
 * process. Between moe_cuda_catch_begin and moe_cuda_catch_end on one
 * thread, a failure of an mgpu* function (a driver call that fails: out of
 * memory, a kernel that faulted earlier on the context; or no usable GPU)
 * does not abort: the first one is kept, and the thread's later mgpu* calls
 * that enqueue work or allocate do nothing and return NULL or 0, while those
 * that free or destroy still run. The work enqueued before the failure
 * stays enqueued. moe_cuda_catch_end returns 0 when nothing failed, else
 * the failed driver call's CUresult (2: CUDA_ERROR_OUT_OF_MEMORY), or -1
 * for a failure of no driver call; message (cut to size bytes) then says
 * "<call> failed: <why>"; moe_cuda_caught returns the same code without
 * ending the scope. Scopes nest: the outermost end clears the failure.
 * Bad MOE_GPU_* settings of moe_gpu_wgmma_rows and the functions below stay
 * fatal (moe_cuda_check reports them first). The
 * SIMT emulator exports both functions, and its failures (a kernel's bad
 * access) stay fatal. */
void moe_cuda_catch_begin(void);
int32_t moe_cuda_caught(void);
int32_t moe_cuda_catch_end(char *message, int32_t size);

/* Kernel times: with the environment variable MOE_CUDA_PROFILE=1 the
 * runtime records a pair of events around every kernel it launches on a
 * stream that is not being captured, and at exit writes to stderr, for
 * each kernel and grid, the launches, their total GPU time and the median
 * and mean of one launch (MOE_CUDA_PROFILE=<path> appends the report to
 * that file instead; unset, empty or 0: nothing is recorded, and launches
 * cost what they cost without it). Reading the events waits for the
 * kernels, so a profiled program's host runs behind its GPU.
 *
 * moe_cuda_profile_report writes the report of the launches since the
 * last one now (a program reports its phases apart) and returns how many
 * launches it reported; 0 when MOE_CUDA_PROFILE is off. */
int64_t moe_cuda_profile_report(void);

/* Whether the expert GEMMs of the CUDA kernel library take their sm_90a
 * kernels (wgmma) on the device that the mgpu* functions use: 1 on a device
 * of compute capability 9.0 (the only one that runs sm_90a code), else 0.
 * The environment variable MOE_GPU_WGMMA=0 turns them off, and
 * MOE_GPU_WGMMA=1 asks for them (an error on any other device, fatal
 * unless caught as below). The kernel library calls this on every
 * layer; the device is asked once. */
int32_t moe_gpu_use_wgmma(void);

/* Whether the CUDA kernel library can run in this process, asked before its
 * first GPU operation (which aborts at a problem): 0 when it can; 1 without
 * a usable GPU (moe_cuda_available), 2 when a MOE_GPU_* setting of the
 * environment (docs/cuda.md) is bad, or bad for the device the mgpu*
 * functions use. message (cut to size bytes) then says why. The SIMT
 * emulator exports the same function (its settings only). */
int32_t moe_cuda_check(char *message, int32_t size);

/* Whether the device that the mgpu* functions use runs GPU code compiled
 * for `chip` ("sm_90", "sm_90a") embedded as `format` ("isa": PTX, which
 * the driver compiles for that architecture or a newer one; "bin": a
 * cubin, which runs on its major architecture from its minor one up;
 * "fatbin": both), as moe-compile's --cuda-chip and --cuda-format give
 * them; code for an architecture-specific target (sm_90a) runs on that
 * architecture only. 1, or 0 with why in message (cut to size bytes): an
 * unknown chip or format, or a device that cannot run it, with the
 * --cuda-chip that would. moe_model_load asks it of a CUDA library. The
 * SIMT emulator's answer is always 1. */
int32_t moe_cuda_can_run(const char *chip, const char *format, char *message,
                         int32_t size);

/* The tile of those sm_90a GEMMs: its rows, 64 (one warpgroup a block) or
 * 128 (two), from the environment variable MOE_GPU_WGMMA_ROWS; its weight
 * rows, 128 or 256, from MOE_GPU_WGMMA_COLS. Unset, 64 and 128; any other
 * value is an error, reported on stderr before an abort. */
int32_t moe_gpu_wgmma_rows(void);
int32_t moe_gpu_wgmma_cols(void);

/* The k steps of 64 that those GEMMs keep in shared memory on tiles of
 * `rows` x `cols` (their copies run stages - 2 steps ahead of the tensor
 * cores): 4, or the environment variable MOE_GPU_WGMMA_STAGES (3..8, as
 * many as fit in 227 KiB of shared memory with the tile: at most 7 for 128
 * x 128, 4 for 128 x 256; anything else is an error, reported on stderr
 * before an abort). */
int32_t moe_gpu_wgmma_stages(int32_t rows, int32_t cols);

/* The tiles of rows that the kernel library's tensor-core GEMM blocks take
 * of one column of the output before the next column, in launch order, so
 * that the blocks running at once share weight columns and rows in L2: 16,
 * or the environment variable MOE_GPU_GEMM_GROUP (1..65535; 1 launches the
 * columns fastest; anything else is an error, reported on stderr before an
 * abort). */
int64_t moe_gpu_gemm_group(void);

/* The most rows (over all expert groups of a call) for which the kernel
 * library's expert GEMMs take gemv_experts (one warp per output column,
 * for decoding) rather than the tensor cores: max(16, 2 * experts), about
 * two rows a group, unless the environment variable MOE_GPU_GEMV_ROWS
 * gives a non-negative integer (anything else is an error, reported on
 * stderr before an abort). The kernel library calls this on every call. */
int64_t moe_gpu_gemv_max_rows(int64_t experts);

/* Whether the kernel library's GEMVs without a gated activation (the down
 * projection at decoding) on weight rows of row_bytes bytes take
 * gemv_pairs, two output columns a warp, rather than gemv_experts, one:
 * 1 for rows of at most 4 KiB (short rows make many short-lived blocks),
 * unless the environment variable MOE_GPU_GEMV_PAIRS is 0 or 1 (anything
 * else is an error, reported on stderr before an abort). */
int32_t moe_gpu_gemv_pairs(int64_t row_bytes);

/* The grid the kernel library launches for n blocks along y, which CUDA
 * caps at 65535: y = min(n, 65535) blocks in y and z = ceil(n / y) in z
 * (0 and 0 for n <= 0); the kernels read their index as blockIdx.y +
 * gridDim.y * blockIdx.z and skip those past n. The environment variable
 * MOE_GPU_MAX_GRID_Y (1..65535) lowers the cap, which tests use to run
 * the split on small problems; anything else is an error, reported on
 * stderr before an abort. */
int64_t moe_gpu_grid_y(int64_t n);
int64_t moe_gpu_grid_z(int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* MOE_CUDA_H */
