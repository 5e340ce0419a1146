/*===- capi_gpu_failures.c - failed GPU operations are C API errors -------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Runs on the stand-in driver with one driver call made to fail             *|
|* (FAKE_CUDA_FAIL=symbol:code:n): each C API call prints its status and     *|
|* moe_last_error, and the program goes on after a failure, as a server      *|
|* would; the same call again succeeds. argv[2] picks what runs first:       *|
|*   upload  moe_model_upload, twice, then a layer                           *|
|*   run     moe_model_run_layer, twice, then the layer's statistics         *|
|*   async   moe_model_run_layer_async, twice, then the same                 *|
|*   knob    moe_model_set_knob on a layer with a device knob, twice         *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "model.h"

#include <stdio.h>
#include <string.h>

static void show(const char *call, moe_status status) {
  printf("%s -> %d: %s\n", call, status, moe_last_error());
  fflush(stdout);
}

#define SHOW(call) show(#call, (call))

/* Layer 0's statistics: a failed call counts nothing. (The stand-in
   driver runs no kernel: the assignments it gives are not the layer's.) */
static void show_stats(moe_model *model) {
  int64_t tokens = 0, calls = 0;
  SHOW(moe_model_layer_stats(model, 0, NULL, NULL, &tokens, &calls));
  printf("stats: %lld calls, %lld tokens\n", (long long)calls,
         (long long)tokens);
}

int main(int argc, char **argv) {
  if (argc != 3)
    return 2;
  moe_model *model = NULL;
  _Alignas(16) float x[64] = {0};
  _Alignas(16) float y[64];
  SHOW(moe_model_load(argv[1], &model));
  if (!model)
    return 1;
  const char *mode = argv[2];
  if (!strcmp(mode, "upload")) {
    SHOW(moe_model_upload(model));
    SHOW(moe_model_upload(model));
    SHOW(moe_model_run_layer(model, 0, x, 1, y));
  } else if (!strcmp(mode, "run")) {
    SHOW(moe_model_run_layer(model, 0, x, 1, y));
    SHOW(moe_model_run_layer(model, 0, x, 1, y));
    show_stats(model);
  } else if (!strcmp(mode, "async")) {
    SHOW(moe_model_run_layer_async(model, 0, x, 1, y, NULL));
    SHOW(moe_model_run_layer_async(model, 0, x, 1, y, NULL));
    show_stats(model);
  } else if (!strcmp(mode, "knob")) {
    moe_layer_info info;
    double tau = 0;
    SHOW(moe_model_layer_info(model, 0, &info));
    SHOW(moe_model_upload(model));
    SHOW(moe_model_set_knob(model, info.name, "tau", 0.25));
    SHOW(moe_model_get_knob(model, info.name, "tau", &tau));
    printf("tau: %g\n", tau);
    SHOW(moe_model_set_knob(model, info.name, "tau", 0.25));
    SHOW(moe_model_get_knob(model, info.name, "tau", &tau));
    printf("tau: %g\n", tau);
  } else {
    return 2;
  }
  moe_model_free(model);
  printf("freed\n");
  return 0;
}
