/*===- capi_errors.c - the C API rejects bad arguments cleanly ------------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#define _GNU_SOURCE
#include "model.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>

#define EXPECT(call, expected)                                                 \
  do {                                                                         \
    moe_status s = (call);                                                     \
    printf("%s -> %d: %s\n", #call, s, moe_last_error());                      \
    if (s != (expected))                                                       \
      return 1;                                                                \
  } while (0)

/* Where the driver API captures in this process (the emulator that a
 * cuda-emu library links), a layer that is not in GPU memory yet cannot
 * start in a capture (its first call copies synchronously): the call is
 * refused, and accepted after moe_model_upload. */
static int capture_checks(const char *checkpoint) {
  int (*begin)(void *, int) = dlsym(RTLD_DEFAULT, "cuStreamBeginCapture_v2");
  int (*end)(void *, void **) = dlsym(RTLD_DEFAULT, "cuStreamEndCapture");
  int (*destroy)(void *) = dlsym(RTLD_DEFAULT, "cuGraphDestroy");
  void *(*create)(void) = dlsym(RTLD_DEFAULT, "mgpuStreamCreate");
  void *(*alloc)(uint64_t, void *, bool) = dlsym(RTLD_DEFAULT, "mgpuMemAlloc");
  if (!begin || !end || !destroy || !create || !alloc)
    return 0;
  moe_model *fresh = NULL;
  EXPECT(moe_model_load(checkpoint, &fresh), MOE_OK);
  void *stream = create(), *graph = NULL;
  void *dx = alloc(256, NULL, false), *dy = alloc(256, NULL, false);
  begin(stream, /*CU_STREAM_CAPTURE_MODE_THREAD_LOCAL=*/1);
  EXPECT(moe_model_run_layer_async(fresh, 0, dx, 1, dy, stream),
         MOE_ERROR_INVALID_ARGUMENT);
  end(stream, &graph);
  destroy(graph);
  EXPECT(moe_model_upload(fresh), MOE_OK);
  begin(stream, 1);
  EXPECT(moe_model_run_layer_async(fresh, 0, dx, 1, dy, stream), MOE_OK);
  end(stream, &graph);
  destroy(graph);
  moe_model_free(fresh);
  return 0;
}

int main(int argc, char **argv) {
  moe_model *model = NULL;
  _Alignas(16) float x[64] = {0};
  _Alignas(16) float y[64];
  int64_t load[8];
  moe_layer_info info;
  EXPECT(moe_model_load(argv[1], NULL), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_load(argv[1], &model), MOE_OK);
  EXPECT(moe_model_run_layer(NULL, 0, x, 1, y), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_run_layer(model, 7, x, 1, y), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_run_layer(model, -1, x, 1, y), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_run_layer(model, 0, x, -3, y), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_run_layer(model, 0, NULL, 1, y), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_run_layer(model, 0, NULL, 0, NULL), MOE_OK);
  EXPECT(moe_model_layer_info(model, 0, NULL), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_layer_info(model, 0, &info), MOE_OK);
  EXPECT(moe_model_layer_stats(model, 3, load, NULL, NULL, NULL),
         MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_reset_stats(NULL), MOE_ERROR_INVALID_ARGUMENT);
  /* 0 (no limit) for a CPU library; beyond the limit of a CUDA one, the
   * call is refused before it reads x. */
  int64_t max = moe_model_max_tokens(model, 0);
  printf("max tokens: %lld %lld %lld\n", (long long)max,
         (long long)moe_model_max_tokens(model, 1),
         (long long)moe_model_max_tokens(NULL, 0));
  if (max > 0)
    EXPECT(moe_model_run_layer(model, 0, x, max + 1, y),
           MOE_ERROR_INVALID_ARGUMENT);
  /* Device buffers: a CPU library refuses them; a CUDA one checks the
   * call before it enqueues anything (x + 1 is misaligned). */
  if (max > 0) {
    EXPECT(moe_model_run_layer_async(model, 0, x + 1, 1, y, NULL),
           MOE_ERROR_INVALID_ARGUMENT);
    EXPECT(moe_model_run_layer_async(model, 0, x, max + 1, y, NULL),
           MOE_ERROR_INVALID_ARGUMENT);
    EXPECT(moe_model_run_layer_async(model, 0, NULL, 0, NULL, NULL), MOE_OK);
    /* A fresh model puts its weights and statistics table on the GPU. */
    moe_model *fresh = NULL;
    EXPECT(moe_model_load(argv[1], &fresh), MOE_OK);
    EXPECT(moe_model_upload(fresh), MOE_OK);
    moe_model_free(fresh);
    if (capture_checks(argv[1]))
      return 1;
  } else {
    EXPECT(moe_model_run_layer_async(model, 0, x, 1, y, NULL),
           MOE_ERROR_INVALID_ARGUMENT);
    EXPECT(moe_model_upload(model), MOE_ERROR_INVALID_ARGUMENT);
  }
  EXPECT(moe_model_upload(NULL), MOE_ERROR_INVALID_ARGUMENT);
  EXPECT(moe_model_run_layer_async(model, 2, x, 1, y, NULL),
         MOE_ERROR_INVALID_ARGUMENT);
  printf("find: %lld %lld\n", (long long)moe_model_find_layer(model, "nope"),
         (long long)moe_model_find_layer(model, info.name));
  moe_model_free(model);
  moe_model_free(NULL);
  (void)argc;
  return 0;
}
