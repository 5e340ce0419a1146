/*===- layer_graph.c - a compiled layer on GPU buffers, in a CUDA graph ---===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* What a serving engine does with a library of moe-compile --target cuda:   *|
|* its activations stay in GPU memory, and a decode step is captured once in *|
|* a CUDA graph and replayed. For the first layer of the model:              *|
|*                                                                            *|
|*   1. moe_model_upload, then moe_model_run_layer_async on cudaMalloc'ed     *|
|*      buffers captured on a stream into a graph;                            *|
|*   2. with NAME=VALUE, the layer's knob NAME (tau or capacity_factor) set  *|
|*      to VALUE after the capture: the replays read it on the device;       *|
|*   3. the host entry point (moe_model_run_layer) on the same tokens, the    *|
|*      expected output, and its statistics; then its wall time a call       *|
|*      (copies and synchronization included);                               *|
|*   4. REPLAYS replays; the last one's output against the host's (bitwise), *|
|*      and the statistics they add against REPLAYS times the host call's.   *|
|*                                                                            *|
|*   cc layer_graph.c -I<dir of model.h> -I$CUDA/include -L<dir of           *|
|*      libmodel.so> -lmodel -L$CUDA/lib64 -lcudart_static -ldl -lpthread -lrt
*|
|*   ./layer_graph CHECKPOINT_DIR [TOKENS] [REPLAYS] [NAME=VALUE]             *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "model.h"

#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CUDA_CHECK(call)                                                       \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      fprintf(stderr, "layer_graph: %s: %s\n", #call, cudaGetErrorString(e_)); \
      return 1;                                                                \
    }                                                                          \
  } while (0)

#define MOE_CHECK(call)                                                        \
  do {                                                                         \
    if ((call) != MOE_OK) {                                                    \
      fprintf(stderr, "layer_graph: %s: %s\n", #call, moe_last_error());       \
      return 1;                                                                \
    }                                                                          \
  } while (0)

/* bf16 of a float, rounded to nearest even (the inputs are finite). */
static uint16_t to_bf16(float f) {
  uint32_t bits;
  memcpy(&bits, &f, 4);
  bits += 0x7fff + ((bits >> 16) & 1);
  return (uint16_t)(bits >> 16);
}

struct stats {
  int64_t assignments[1024], dropped[1024], tokens, calls;
};

int main(int argc, char **argv) {
  if (argc < 2 || argc > 5) {
    fprintf(stderr, "usage: layer_graph CHECKPOINT_DIR [TOKENS] [REPLAYS] "
                    "[NAME=VALUE]\n");
    return 2;
  }
  char knob[64] = "";
  const char *value = NULL;
  if (argc > 4) {
    const char *eq = strchr(argv[4], '=');
    if (!eq || eq == argv[4] || (size_t)(eq - argv[4]) >= sizeof(knob)) {
      fprintf(stderr, "layer_graph: expected NAME=VALUE, found %s\n", argv[4]);
      return 2;
    }
    memcpy(knob, argv[4], (size_t)(eq - argv[4]));
    value = eq + 1;
  }
  int64_t tokens = argc > 2 ? atoll(argv[2]) : 64;
  int replays = argc > 3 ? atoi(argv[3]) : 10;
  if (tokens < 1 || replays < 1) {
    fprintf(stderr, "layer_graph: TOKENS and REPLAYS must be positive\n");
    return 2;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    fprintf(stderr, "layer_graph: no CUDA GPU\n");
    return 77;
  }

  moe_model *model;
  MOE_CHECK(moe_model_load(argv[1], &model));
  moe_layer_info info;
  MOE_CHECK(moe_model_layer_info(model, 0, &info));
  if (info.dtype != MOE_DTYPE_BF16 || info.num_experts > 1024) {
    fprintf(stderr, "layer_graph: expected a bf16 layer with statistics\n");
    return 1;
  }
  size_t xbytes = (size_t)(tokens * info.hidden_size) * 2;
  size_t ybytes = (size_t)(tokens * info.output_size) * 2;
  uint16_t *x = malloc(xbytes), *want = malloc(ybytes), *got = malloc(ybytes);
  uint64_t state = 42;
  for (int64_t i = 0; i < tokens * info.hidden_size; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = to_bf16((float)((state >> 40) & 0xffff) / 32768.0f - 1.0f);
  }

  /* 1. Device buffers and one capture. */
  void *dx, *dy;
  cudaStream_t stream;
  CUDA_CHECK(cudaMalloc(&dx, xbytes));
  CUDA_CHECK(cudaMalloc(&dy, ybytes));
  CUDA_CHECK(cudaMemcpy(dx, x, xbytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  MOE_CHECK(moe_model_upload(model));
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  MOE_CHECK(moe_model_run_layer_async(model, 0, dx, tokens, dy, stream));
  CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));

  /* 2. A knob turned after the capture. */
  if (value)
    MOE_CHECK(moe_model_set_knob(model, info.name, knob, atof(value)));

  /* 3. The host entry point: the expected output and one call's counts. */
  struct stats one, all;
  MOE_CHECK(moe_model_reset_stats(model));
  MOE_CHECK(moe_model_run_layer(model, 0, x, tokens, want));
  MOE_CHECK(moe_model_layer_stats(model, 0, one.assignments, one.dropped,
                                  &one.tokens, &one.calls));
  /* What the host entry point costs a caller whose tokens are on the GPU
     anyway: the copies in and out and a synchronization a call. */
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int r = 0; r < replays; ++r)
    MOE_CHECK(moe_model_run_layer(model, 0, x, tokens, got));
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double host_ms = ((double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                    (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6) /
                   replays;
  MOE_CHECK(moe_model_reset_stats(model));

  /* 4. REPLAYS replays. */
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  CUDA_CHECK(cudaEventRecord(start, stream));
  for (int r = 0; r < replays; ++r)
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
  CUDA_CHECK(cudaEventRecord(stop, stream));
  CUDA_CHECK(cudaMemcpyAsync(got, dy, ybytes, cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));

  /* The last replay's output, and the replays' counts. */
  int same = memcmp(got, want, ybytes) == 0;
  MOE_CHECK(moe_model_layer_stats(model, 0, all.assignments, all.dropped,
                                  &all.tokens, &all.calls));
  int64_t n = replays, routed = 0, dropped = 0;
  int counted = all.tokens == n * one.tokens && all.calls == n * one.calls;
  for (int64_t e = 0; e < info.num_experts; ++e) {
    counted = counted && all.assignments[e] == n * one.assignments[e] &&
              all.dropped[e] == n * one.dropped[e];
    routed += one.assignments[e];
    dropped += one.dropped[e];
  }
  printf("%s: %lld tokens, %d graph replays, %.4f ms a replay%s%s\n", info.name,
         (long long)tokens, replays, ms / replays,
         value ? ", set after the capture: " : "", value ? argv[4] : "");
  printf("host entry point: %.4f ms a call (host buffers)\n", host_ms);
  printf("output: %s the host entry point's\n",
         same ? "bitwise equal to" : "DIFFERENT from");
  printf("statistics: %lld calls, %lld tokens, %lld assignments (%lld a "
         "call, %lld of them dropped): %s\n",
         (long long)all.calls, (long long)all.tokens, (long long)(n * routed),
         (long long)routed, (long long)dropped,
         counted ? "as expected" : "WRONG");

  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  cudaFree(dx);
  cudaFree(dy);
  moe_model_free(model);
  free(x);
  free(want);
  free(got);
  return same && counted ? 0 : 1;
}
