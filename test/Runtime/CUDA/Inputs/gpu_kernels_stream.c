/*===- gpu_kernels_stream.c - moe_gpu_kernels.h on the caller's stream ----===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* Enqueues a layer and the experts alone on a stream of the program's own    *|
|* and on the null stream, then calls with invalid arguments; the stand-in    *|
|* driver logs what reaches it (built against the emulator's library, the    *|
|* kernels run).                                                              *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#include "moe_gpu_kernels.h"

#include <stdint.h>
#include <stdio.h>

void *mgpuStreamCreate(void);
void mgpuStreamSynchronize(void *stream);
void mgpuStreamDestroy(void *stream);
void *mgpuMemAlloc(int64_t size, void *stream, int8_t hostShared);

static void *device(int64_t bytes) { return mgpuMemAlloc(bytes, (void *)0, 0); }

static void report(const char *what, int status) {
  printf("%s: %d '%s'\n", what, status, moe_gpu_last_error());
  fflush(stdout);
}

int main(void) {
  /* T = 7, d = 32, f = 48, E = 8, k = 2 */
  moe_gpu_layer_dims dims = {7, 32, 48, 8, 2, MOE_GPU_ACT_SILU};
  void *x = device(7 * 32 * 2), *wr = device(8 * 32 * 2);
  void *wg = device(8 * 48 * 32 * 2), *wu = device(8 * 48 * 32 * 2);
  void *wd = device(8 * 32 * 48 * 2);
  int32_t *off = device(9 * 4);
  float *y = device(7 * 32 * 4);
  void *rows = device(14 * 32 * 2);
  float *ry = device(14 * 32 * 4);

  printf("== layer on the program's stream\n");
  fflush(stdout);
  void *stream = mgpuStreamCreate();
  report("layer",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, stream));
  printf("== experts on the program's stream\n");
  fflush(stdout);
  moe_gpu_layer_dims grouped = {14, 32, 48, 8, 0, MOE_GPU_ACT_SILU};
  report("experts", moe_gpu_expert_ffn_enqueue(&grouped, rows, wg, wu, wd, off,
                                               ry, stream));
  printf("== the program synchronizes\n");
  fflush(stdout);
  mgpuStreamSynchronize(stream);
  mgpuStreamDestroy(stream);

  printf("== DeepSeek-style routing on the null stream\n");
  fflush(stdout);
  float *bias = device(8 * 4);
  moe_gpu_routing deepseek = moe_gpu_routing_default();
  deepseek.score = MOE_GPU_SCORE_SIGMOID;
  deepseek.selection = MOE_GPU_SELECT_GROUPED_TOP_K;
  deepseek.groups = 4;
  deepseek.topk_group = 2;
  deepseek.group_score_sum_top2 = 1;
  deepseek.scale = 2.5f;
  deepseek.selection_bias = bias;
  report("deepseek",
         moe_gpu_layer_enqueue(&dims, &deepseek, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, (void *)0));

  moe_gpu_routing ec = moe_gpu_routing_default();
  ec.selection = MOE_GPU_SELECT_EXPERT_CHOICE;
  ec.capacity = 4;
  report("expert choice",
         moe_gpu_layer_enqueue(&dims, &ec, x, wr, wg, wu, wd, (void *)0, off,
                               (int32_t *)0, y, (void *)0));

  printf("== a capacity on the null stream\n");
  fflush(stdout);
  int32_t *dropped = device(8 * 4);
  moe_gpu_routing capped = moe_gpu_routing_default();
  capped.capacity = 2;
  capped.drop_order = MOE_GPU_DROP_SCORE;
  capped.renormalize_after_drop = 1;
  report("capacity",
         moe_gpu_layer_enqueue(&dims, &capped, x, wr, wg, wu, wd, (void *)0,
                               off, dropped, y, (void *)0));

  printf("== a gated shared expert on the null stream\n");
  fflush(stdout);
  moe_gpu_shared_expert shared = {64, device(64 * 32 * 2), device(64 * 32 * 2),
                                  device(32 * 64 * 2), device(32 * 2)};
  report("shared",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, wr, wg, wu, wd, &shared,
                               off, (int32_t *)0, y, (void *)0));

  printf("== GELU experts on the null stream\n");
  fflush(stdout);
  moe_gpu_layer_dims gelu = dims;
  gelu.activation = MOE_GPU_ACT_GELU_TANH;
  report("gelu",
         moe_gpu_layer_enqueue(&gelu, (void *)0, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, (void *)0));

  printf("== plain MLP experts on the null stream\n");
  fflush(stdout);
  moe_gpu_layer_dims mlp = dims;
  mlp.activation = MOE_GPU_ACT_RELU;
  report("mlp",
         moe_gpu_layer_enqueue(&mlp, (void *)0, x, wr, wg, (void *)0, wd,
                               (void *)0, off, (int32_t *)0, y, (void *)0));

  printf("== a fused gate_up on the null stream\n");
  fflush(stdout);
  void *gate_up = device(8 * 96 * 32 * 2);
  report("fused",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, wr, gate_up, gate_up, wd,
                               (void *)0, off, (int32_t *)0, y, (void *)0));

  printf("== LoRA experts on the null stream\n");
  fflush(stdout);
  /* lora: base [40, 32] (d_out = ffn = 40), A [8, 8, 32], B [8, 40, 8]. */
  moe_gpu_layer_dims loraDims = {7, 32, 40, 8, 2, MOE_GPU_ACT_SILU};
  moe_gpu_lora_experts lora = {0, 8, 16.0f, device(40 * 32 * 2), (void *)0,
                               (void *)0, device(8 * 8 * 32 * 2),
                               device(8 * 40 * 8 * 2), (void *)0, (void *)0,
                               (void *)0, (void *)0};
  float *ly = device(7 * 40 * 4);
  report("lora", moe_gpu_lora_layer_enqueue(&loraDims, (void *)0, x, wr, &lora,
                                            (void *)0, off, (int32_t *)0, ly,
                                            (void *)0));
  printf("== LoRA-gated experts on the null stream\n");
  fflush(stdout);
  /* lora_gated (MixLoRA): f = 48, r = 8. */
  moe_gpu_lora_experts mix = {
      1, 8, 16.0f, device(48 * 32 * 2), device(48 * 32 * 2),
      device(32 * 48 * 2), device(8 * 8 * 32 * 2), device(8 * 48 * 8 * 2),
      device(8 * 8 * 32 * 2), device(8 * 48 * 8 * 2), device(8 * 8 * 48 * 2),
      device(8 * 32 * 8 * 2)};
  report("lora_gated",
         moe_gpu_lora_layer_enqueue(&dims, (void *)0, x, wr, &mix, &shared,
                                    off, (int32_t *)0, y, (void *)0));

  printf("== layer on the null stream\n");
  fflush(stdout);
  report("null stream",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, (void *)0));
  printf("== no tokens\n");
  fflush(stdout);
  moe_gpu_layer_dims none = {0, 32, 48, 8, 2, MOE_GPU_ACT_SILU};
  report("no tokens",
         moe_gpu_layer_enqueue(&none, (void *)0, (void *)0, wr, wg, wu, wd,
                               (void *)0, off, dropped, (float *)0, (void *)0));

  printf("== invalid arguments\n");
  fflush(stdout);
  moe_gpu_layer_dims bad = dims;
  bad.hidden = 30;
  report("hidden", moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, wu, wd,
                                         (void *)0, off, (int32_t *)0, y, 0));
  bad = dims;
  bad.top_k = 9;
  report("top_k", moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, wu, wd,
                                        (void *)0, off, (int32_t *)0, y, 0));
  bad = dims;
  bad.experts = MOE_GPU_MAX_EXPERTS + 1;
  bad.top_k = 2;
  report("experts", moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, wu, wd,
                                          (void *)0, off, (int32_t *)0, y, 0));
  bad = dims;
  bad.tokens = -1;
  report("tokens", moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, wu, wd,
                                         (void *)0, off, (int32_t *)0, y, 0));
  /* Slots, rows and tokens are 32-bit on the device: 2^30 tokens of 2
   * slots, or 2^22 of 512, are one slot too many. */
  bad = dims;
  bad.tokens = (int64_t)1 << 30;
  report("many tokens",
         moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  bad.tokens = (int64_t)1 << 22;
  bad.experts = 512;
  bad.top_k = 512;
  report("many slots",
         moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  report("null x",
         moe_gpu_layer_enqueue(&dims, (void *)0, (void *)0, wr, wg, wu, wd,
                               (void *)0, off, (int32_t *)0, y, 0));
  report("unaligned",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, (char *)wr + 2, wg, wu, wd,
                               (void *)0, off, (int32_t *)0, y, 0));
  report("null dims",
         moe_gpu_layer_enqueue((void *)0, (void *)0, x, wr, wg, wu, wd,
                               (void *)0, off, (int32_t *)0, y, 0));
  lora.rank = 4;
  report("lora rank",
         moe_gpu_lora_layer_enqueue(&loraDims, (void *)0, x, wr, &lora,
                                    (void *)0, off, (int32_t *)0, ly, 0));
  lora.rank = 8;
  report("lora shared",
         moe_gpu_lora_layer_enqueue(&loraDims, (void *)0, x, wr, &lora,
                                    &shared, off, (int32_t *)0, ly, 0));
  mix.down_b = (void *)0;
  report("lora_gated down_b",
         moe_gpu_lora_layer_enqueue(&dims, (void *)0, x, wr, &mix, (void *)0,
                                    off, (int32_t *)0, y, 0));
  bad = grouped;
  bad.ffn = 0;
  report("experts ffn",
         moe_gpu_expert_ffn_enqueue(&bad, rows, wg, wu, wd, off, ry, 0));
  moe_gpu_routing routing = moe_gpu_routing_default();
  routing.selection = MOE_GPU_SELECT_GROUPED_TOP_K;
  routing.groups = 3;
  routing.topk_group = 1;
  report("groups", moe_gpu_layer_enqueue(&dims, &routing, x, wr, wg, wu, wd,
                                         (void *)0, off, (int32_t *)0, y, 0));
  routing.groups = 4;
  routing.topk_group = 5;
  report("topk_group",
         moe_gpu_layer_enqueue(&dims, &routing, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  routing = moe_gpu_routing_default();
  routing.selection = MOE_GPU_SELECT_TOP_P;
  routing.threshold = 0.0f;
  report("top_p", moe_gpu_layer_enqueue(&dims, &routing, x, wr, wg, wu, wd,
                                        (void *)0, off, (int32_t *)0, y, 0));
  routing.score = 7;
  report("score", moe_gpu_layer_enqueue(&dims, &routing, x, wr, wg, wu, wd,
                                        (void *)0, off, (int32_t *)0, y, 0));
  routing = moe_gpu_routing_default();
  routing.selection = MOE_GPU_SELECT_EXPERT_CHOICE;
  routing.score = MOE_GPU_SCORE_SIGMOID;
  report("expert choice sigmoid",
         moe_gpu_layer_enqueue(&dims, &routing, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  routing = moe_gpu_routing_default();
  routing.capacity = -1;
  report("negative capacity",
         moe_gpu_layer_enqueue(&dims, &routing, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  routing.capacity = 4;
  routing.drop_order = 3;
  report("drop order",
         moe_gpu_layer_enqueue(&dims, &routing, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  report("unaligned dropped",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)((char *)dropped + 2), y, 0));
  moe_gpu_shared_expert odd = shared;
  odd.ffn = 12;
  report("shared ffn",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, wr, wg, wu, wd, &odd, off,
                               (int32_t *)0, y, 0));
  odd = shared;
  odd.down_w = (void *)0;
  report("shared down",
         moe_gpu_layer_enqueue(&dims, (void *)0, x, wr, wg, wu, wd, &odd, off,
                               (int32_t *)0, y, 0));
  bad = dims;
  bad.activation = 5;
  report("activation",
         moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  /* swiglu_oai and expert biases take gated experts; the biases come all
   * three. */
  bad.activation = MOE_GPU_ACT_SWIGLU_OAI;
  report("swiglu_oai mlp",
         moe_gpu_layer_enqueue(&bad, (void *)0, x, wr, wg, (void *)0, wd,
                               (void *)0, off, (int32_t *)0, y, 0));
  moe_gpu_layer_dims oaiLora = loraDims;
  oaiLora.activation = MOE_GPU_ACT_SWIGLU_OAI;
  report("swiglu_oai lora",
         moe_gpu_lora_layer_enqueue(&oaiLora, (void *)0, x, wr, &lora,
                                    (void *)0, off, (int32_t *)0, ly, 0));
  moe_gpu_expert_biases biases = {wr, wr, (void *)0};
  report("biases down",
         moe_gpu_layer_enqueue_biased(&bad, (void *)0, x, wr, wg, wu, wd,
                                      &biases, (void *)0, off, (int32_t *)0,
                                      y, 0));
  biases.down = wr;
  report("biases mlp",
         moe_gpu_layer_enqueue_biased(&dims, (void *)0, x, wr, wg, (void *)0,
                                      wd, &biases, (void *)0, off,
                                      (int32_t *)0, y, 0));
  report("after an error, a success",
         moe_gpu_expert_ffn_enqueue(&grouped, rows, wg, wu, wd, off, ry, 0));
  /* groups means nothing outside grouped_top_k, even 0. */
  moe_gpu_routing no_groups = moe_gpu_routing_default();
  no_groups.groups = 0;
  no_groups.topk_group = 0;
  report("top_k, groups 0",
         moe_gpu_layer_enqueue(&dims, &no_groups, x, wr, wg, wu, wd, (void *)0,
                               off, (int32_t *)0, y, 0));
  return 0;
}
