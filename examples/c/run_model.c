/*===- run_model.c - run a model compiled by moe-compile ------------------===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Loads the model (weights from a checkpoint directory), runs every MoE      *|
|* layer on the same generated hidden states, and prints each layer's output  *|
|* summary, its time per call (median of repeated calls), the FLOPs it saves  *|
|* against the dense layer, and its expert load.                              *|
|*                                                                            *|
|*   cc run_model.c -I<dir of model.h> -L<dir of libmodel.so> -lmodel         *|
|*   ./run_model [CHECKPOINT_DIR] [TOKENS] [REPEATS]                          *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Elements are f32, or the upper half of an f32 (bf16), or IEEE half. */
static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f,
           man = h & 0x3ff, bits;
  if (exp == 0x1f)
    bits = sign | 0x7f800000 | (man << 13);
  else if (exp == 0) {
    float v = ldexpf((float)man, -24);
    return sign ? -v : v;
  } else
    bits = sign | ((exp + 112) << 23) | (man << 13);
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static float get(const void *data, moe_dtype dtype, int64_t i) {
  if (dtype == MOE_DTYPE_F32)
    return ((const float *)data)[i];
  uint16_t h = ((const uint16_t *)data)[i];
  if (dtype == MOE_DTYPE_F16)
    return half_to_float(h);
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static void set(void *data, moe_dtype dtype, int64_t i, float value) {
  if (dtype == MOE_DTYPE_F32) {
    ((float *)data)[i] = value;
    return;
  }
  uint32_t bits;
  memcpy(&bits, &value, 4);
  if (dtype == MOE_DTYPE_BF16) {
    ((uint16_t *)data)[i] = (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
    return;
  }
  /* f16 inputs: values here are small and normal, so truncation is fine. */
  uint32_t sign = (bits >> 16) & 0x8000;
  int32_t exp = (int32_t)((bits >> 23) & 0xff) - 112;
  uint16_t h = exp <= 0 ? (uint16_t)sign
                        : (uint16_t)(sign | (exp << 10) | ((bits >> 13) & 0x3ff));
  ((uint16_t *)data)[i] = h;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int check(moe_status status, const char *what) {
  if (status == MOE_OK)
    return 0;
  fprintf(stderr, "run_model: %s failed (status %d): %s\n", what, status,
          moe_last_error());
  return 1;
}

int main(int argc, char **argv) {
  const char *checkpoint = argc > 1 ? argv[1] : NULL;
  int64_t tokens = argc > 2 ? atoll(argv[2]) : 64;
  int repeats = argc > 3 ? atoi(argv[3]) : 10;
  if (tokens < 0 || repeats < 1) {
    fprintf(stderr, "usage: %s [CHECKPOINT_DIR] [TOKENS] [REPEATS]\n", argv[0]);
    return 2;
  }

  moe_model *model;
  if (check(moe_model_load(checkpoint, &model), "moe_model_load"))
    return 1;
  printf("model: %lld layers\n", (long long)moe_model_num_layers(model));

  for (int64_t layer = 0; layer < moe_model_num_layers(model); ++layer) {
    moe_layer_info info;
    if (check(moe_model_layer_info(model, layer, &info), "moe_model_layer_info"))
      return 1;
    size_t element = info.dtype == MOE_DTYPE_F32 ? 4 : 2;
    void *x = malloc((size_t)(tokens * info.hidden_size) * element + 1);
    void *y = malloc((size_t)(tokens * info.output_size) * element + 1);
    /* Deterministic hidden states in [-1, 1). */
    uint64_t state = 12345;
    for (int64_t i = 0; i < tokens * info.hidden_size; ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      set(x, info.dtype, i, (float)((state >> 40) / 8388608.0 - 1.0));
    }

    double *times = malloc(sizeof(double) * (size_t)repeats);
    if (check(moe_model_run_layer(model, layer, x, tokens, y), "warm-up"))
      return 1;
    for (int r = 0; r < repeats; ++r) {
      double start = now_ms();
      if (check(moe_model_run_layer(model, layer, x, tokens, y),
                "moe_model_run_layer"))
        return 1;
      times[r] = now_ms() - start;
    }
    qsort(times, (size_t)repeats, sizeof(double), compare_doubles);

    double sum = 0, absmax = 0;
    for (int64_t i = 0; i < tokens * info.output_size; ++i) {
      double v = get(y, info.dtype, i);
      sum += v;
      if (fabs(v) > absmax)
        absmax = fabs(v);
    }
    printf("%s: %lld tokens x %lld -> %lld, mean %.6g absmax %.6g, "
           "median %.3f ms (min %.3f, max %.3f)\n",
           info.name, (long long)tokens, (long long)info.hidden_size,
           (long long)info.output_size,
           tokens ? sum / (double)(tokens * info.output_size) : 0.0, absmax,
           times[repeats / 2], times[0], times[repeats - 1]);
    if (info.dense_flops_per_token > 0) {
      double sparse = info.flops_per_token * (double)tokens;
      double dense = info.dense_flops_per_token * (double)tokens;
      double ms = times[repeats / 2];
      printf("  %.4g GFLOP per call (%.1f GFLOP/s); the dense layer would "
             "do %.4g: %.1f%% saved\n",
             sparse / 1e9, ms > 0 ? sparse / ms / 1e6 : 0.0, dense / 1e9,
             100.0 * (1.0 - sparse / dense));
    }

    if (info.num_experts > 0) {
      int64_t *load = calloc((size_t)info.num_experts, sizeof(int64_t));
      int64_t *dropped = calloc((size_t)info.num_experts, sizeof(int64_t));
      int64_t seen = 0, calls = 0;
      if (check(moe_model_layer_stats(model, layer, load, dropped, &seen,
                                      &calls),
                "moe_model_layer_stats"))
        return 1;
      printf("  expert load over %lld calls, %lld tokens:", (long long)calls,
             (long long)seen);
      for (int64_t e = 0; e < info.num_experts; ++e)
        printf(" %lld", (long long)load[e]);
      int64_t total_dropped = 0;
      for (int64_t e = 0; e < info.num_experts; ++e)
        total_dropped += dropped[e];
      printf("\n  dropped: %lld\n", (long long)total_dropped);
      free(load);
      free(dropped);
    }
    free(times);
    free(x);
    free(y);
  }
  moe_model_free(model);
  return 0;
}
