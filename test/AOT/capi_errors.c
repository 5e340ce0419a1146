/*===- capi_errors.c - the C API rejects bad arguments cleanly ------------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "model.h"

#include <stdio.h>

#define EXPECT(call, expected)                                                 \
  do {                                                                         \
    moe_status s = (call);                                                     \
    printf("%s -> %d: %s\n", #call, s, moe_last_error());                      \
    if (s != (expected))                                                       \
      return 1;                                                                \
  } while (0)

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
