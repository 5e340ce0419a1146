/*===-- moe_gpu_kernels.h - A MoE layer on a CUDA stream ----------*- C -*-===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                           *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* libmoe_gpu_kernels: the CUDA kernel library of moe-mlir (lib/GPU/Kernels)  *|
|* compiled for one GPU architecture, for programs that keep their tensors    *|
|* on the device. Every function enqueues its work on the caller's stream    *|
|* and returns without synchronizing; temporaries are allocated and freed in  *|
|* stream order, from the runtime's memory pool (moe_cuda.h). A call can      *|
|* therefore be captured in a CUDA graph, and weights stay resident across    *|
|* calls.                                                                     *|
|*                                                                            *|
|* All pointers are device pointers of the current CUDA context (the device's *|
|* primary context, which the CUDA runtime API uses too), row-major and       *|
|* 16-byte aligned. bf16 tensors are passed as void pointers.                 *|
|* The library needs libmoe_cuda_runtime (the CUDA driver through dlopen).    *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_GPU_KERNELS_H
#define MOE_GPU_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most experts a layer of the kernel library may have: the router and
 * the permutation keep per-warp tables of the experts in shared memory (48
 * E and 32 E bytes), within every sm_80 and newer GPU's limit at 2048. */
#define MOE_GPU_MAX_EXPERTS 2048

/* The activation of the experts: act(x gate_w^T) * (x up_w^T), or
 * act(x gate_w^T) for plain MLP experts. MOE_GPU_ACT_SWIGLU_OAI is
 * GPT-OSS's clamped SwiGLU, which combines gate g and up u itself:
 * (clamp(u, -7, 7) + 1) * g' * sigmoid(1.702 g') with g' = min(g, 7); it
 * takes gated experts (up_w not NULL), and no LoRA experts. */
typedef enum moe_gpu_activation {
  MOE_GPU_ACT_SILU = 0,
  MOE_GPU_ACT_GELU_TANH = 1,
  MOE_GPU_ACT_GELU_ERF = 2,
  MOE_GPU_ACT_RELU = 3,
  MOE_GPU_ACT_SWIGLU_OAI = 4
} moe_gpu_activation;

/* The shape of a layer: T tokens of hidden size d, E experts with inner
 * size f, k experts per token; and the experts' activation (zero: SiLU). */
typedef struct moe_gpu_layer_dims {
  int64_t tokens; /* T >= 0 */
  int64_t hidden; /* d > 0, a multiple of 8 */
  int64_t ffn;    /* f > 0, a multiple of 8 */
  int64_t experts; /* 1 <= E <= MOE_GPU_MAX_EXPERTS */
  int64_t top_k;  /* 1 <= k <= E */
  int activation; /* moe_gpu_activation, of the routed and shared experts */
} moe_gpu_layer_dims;

/* The routing of a layer (spec sections 1-3). Zero-initialized, it is
 * softmax scores, top-k selection, raw weights: set renormalize = 1 and
 * scale = 1 for Mixtral and Qwen3 (moe_gpu_routing_default()). */
typedef enum moe_gpu_score {
  MOE_GPU_SCORE_SOFTMAX = 0,
  MOE_GPU_SCORE_SIGMOID = 1,
  MOE_GPU_SCORE_SQRT_SOFTPLUS = 2,
  MOE_GPU_SCORE_LOGITS = 3
} moe_gpu_score;

typedef enum moe_gpu_selection {
  MOE_GPU_SELECT_TOP_K = 0,
  MOE_GPU_SELECT_GROUPED_TOP_K = 1,
  MOE_GPU_SELECT_TOP_P = 2,     /* threshold = p in (0, 1]; k caps */
  MOE_GPU_SELECT_THRESHOLD = 3, /* threshold = tau; slot 0 always kept */
  MOE_GPU_SELECT_EXPERT_CHOICE = 4 /* each expert takes `capacity` tokens
                                      by its softmax score; the weights are
                                      those scores */
} moe_gpu_selection;

/* Which assignments keep their slot when an expert receives more than its
 * capacity (spec section 4). */
typedef enum moe_gpu_drop_order {
  MOE_GPU_DROP_CHOICE_MAJOR = 0, /* all first choices in token order, then
                                    all second choices, ... (the spec's
                                    default) */
  MOE_GPU_DROP_TOKEN_MAJOR = 1,  /* flattened slot order t * k + j */
  MOE_GPU_DROP_SCORE = 2         /* larger weight first, ties to the lower
                                    t * k + j */
} moe_gpu_drop_order;

typedef struct moe_gpu_routing {
  int score;              /* moe_gpu_score */
  int selection;          /* moe_gpu_selection */
  int softmax_selected;   /* raw weights: 0 the scores, 1 a softmax over the
                             kept slots' logits */
  int renormalize;        /* divide by the sum over the kept slots + 1e-20 */
  float scale;            /* routed_scaling_factor */
  float threshold;        /* p of top_p, tau of threshold */
  int groups;             /* grouped_top_k: groups dividing E (>= 1) */
  int topk_group;         /* grouped_top_k: groups kept, 1..groups */
  int group_score_sum_top2; /* grouped_top_k: 0 max, 1 sum of the top two */
  const float *router_bias;    /* [E] f32 device pointer added to the
                                  logits, or NULL */
  const float *selection_bias; /* [E] f32 device pointer added to the
                                  scores for selection only, or NULL */
  int64_t capacity;       /* expert_choice: tokens per expert (at most T are
                             taken); 0: ceil(T * top_k / E).
                             Other selections: 0 dropless; > 0 each expert
                             keeps at most `capacity` assignments and the
                             others are dropped (they contribute nothing) */
  int drop_order;         /* moe_gpu_drop_order, with a capacity */
  int renormalize_after_drop; /* with a capacity: divide each token's kept
                                 weights by their sum + 1e-20 */
  int apply_to_input;     /* 0: y = sum w * E(x); 1: y = sum E(bf16(w * x))
                             (the weights applied to the expert input) */
} moe_gpu_routing;

/* A shared expert (spec section 5), applied to every token and added to
 * the routed sum: y += g(x) * S(x), S(x) = (act(x gate_w^T) * (x up_w^T))
 * down_w^T with the routed experts' act, g(x) = sigmoid(gate_vector . x) (Qwen2-MoE) or 1 when
 * gate_vector is NULL (DeepSeek). g(x) * S(x) is rounded to bf16 before it
 * is added, as moe.shared_expert's bf16 result is. */
typedef struct moe_gpu_shared_expert {
  int64_t ffn;             /* fs > 0, a multiple of 8 */
  const void *gate_w;      /* [fs, d] bf16 */
  const void *up_w;        /* [fs, d] bf16 */
  const void *down_w;      /* [d, fs] bf16 */
  const void *gate_vector; /* [d] bf16, or NULL */
} moe_gpu_shared_expert;

/* Softmax, top_k, renormalized, scale 1: Mixtral, Qwen3. */
moe_gpu_routing moe_gpu_routing_default(void);

/* A MoE layer: router logits, scores, a per-token selection and combine
 * weights as `routing` says (NULL: moe_gpu_routing_default()), a capacity
 * if it sets one, gated experts (dims->activation) and an optional shared
 * expert (spec sections 1-6):
 *
 *   x        [T, d]     bf16  tokens
 *   router_w [E, d]     bf16  router weight
 *   gate_w   [E, f, d]  bf16  gate projections (checkpoint layout), or the
 *                             fused gate_up [E, 2f, d] (gate rows first;
 *                             GraniteMoE) when up_w is the same pointer
 *   up_w     [E, f, d]  bf16  up projections, or NULL for plain MLP experts
 *                             act(x gate_w^T) down_w^T (Switch)
 *   down_w   [E, d, f]  bf16  down projections
 *   shared             a shared expert added to every token, or NULL
 *   offsets  [E + 1]    i32   out: the grouped layout's offsets; expert e
 *                             computed offsets[e + 1] - offsets[e] rows,
 *                             offsets[E] rows in all (fewer than T * k
 *                             when top_p or threshold leave slots unused
 *                             or a capacity drops some; E * min(capacity,
 *                             T) with expert_choice)
 *   dropped  [E]        i32   out: the assignments each expert dropped for
 *                             its capacity (0 when dropless), or NULL; the
 *                             assignments before dropping are the rows
 *                             plus these
 *   y        [T, d]     f32   out: the layer's output
 *
 * Every expert GEMM accumulates in f32; the activation between the two is
 * rounded to bf16. Results are deterministic (bitwise) run to run.
 * Returns 0, or -1 without enqueuing anything when the dimensions or
 * pointers are invalid (moe_gpu_last_error() says why). A CUDA operation
 * that fails during the call (out of memory, a kernel that faulted earlier
 * on the context) is also -1, its driver call named by
 * moe_gpu_last_error(): the work enqueued before it stays enqueued, y is
 * undefined, and the temporaries are freed. */
int moe_gpu_layer_enqueue(const moe_gpu_layer_dims *dims,
                          const moe_gpu_routing *routing, const void *x,
                          const void *router_w, const void *gate_w,
                          const void *up_w, const void *down_w,
                          const moe_gpu_shared_expert *shared,
                          int32_t *offsets, int32_t *dropped, float *y,
                          void *stream);

/* LoRA experts (spec section 5): frozen projections shared by all experts,
 * and per expert e low-rank deltas (alpha / r) B_e (A_e v) on them.
 *
 *   gated = 0 (kind lora): one projection of width d_out = dims->ffn,
 *     y = x base^T + sum over slots of w * (alpha / r) B_e (A_e x)
 *     base = gate_w [d_out, d], A_e = gate_a [E, r, d], B_e = gate_b
 *     [E, d_out, r]; up_*, down_* unused; y is [T, d_out].
 *   gated = 1 (kind lora_gated, MixLoRA): expert e is the frozen gated FFN
 *     gate_w, up_w [f, d], down_w [d, f] (f = dims->ffn) with a pair on each
 *     projection: gate_a, up_a [E, r, d], gate_b, up_b [E, f, r], down_a
 *     [E, r, f], down_b [E, d, r]; y is [T, d].
 *
 * A_e v is rounded to bf16 before B_e, the activation to bf16 before the
 * down projection, and each expert's output to bf16 before the combine. */
typedef struct moe_gpu_lora_experts {
  int gated;             /* 0 lora, 1 lora_gated */
  int64_t rank;          /* r > 0, a multiple of 8 */
  float alpha;           /* the deltas are scaled by alpha / r */
  const void *gate_w, *up_w, *down_w;
  const void *gate_a, *gate_b, *up_a, *up_b, *down_a, *down_b;
} moe_gpu_lora_experts;

/* The experts' biases (GPT-OSS), bf16, each added in f32 to its
 * projection's sums before what follows it (the activation; the combine's
 * weighting):
 *
 *   gate [E, f]   of gate_w, or the fused gate_up [E, 2f] (gate columns
 *                 first) when up is the same pointer
 *   up   [E, f]   of up_w
 *   down [E, d]   of down_w
 *
 * All three or none; gated experts only (up_w not NULL). */
typedef struct moe_gpu_expert_biases {
  const void *gate;
  const void *up;
  const void *down;
} moe_gpu_expert_biases;

/* moe_gpu_layer_enqueue with expert biases (NULL: none). */
int moe_gpu_layer_enqueue_biased(const moe_gpu_layer_dims *dims,
                                 const moe_gpu_routing *routing, const void *x,
                                 const void *router_w, const void *gate_w,
                                 const void *up_w, const void *down_w,
                                 const moe_gpu_expert_biases *biases,
                                 const moe_gpu_shared_expert *shared,
                                 int32_t *offsets, int32_t *dropped, float *y,
                                 void *stream);

/* A MoE layer of LoRA experts: the routing, capacity and shared expert of
 * moe_gpu_layer_enqueue (a shared expert needs d_out = d), the experts of
 * `lora`. Returns 0, or -1 without enqueuing anything. */
int moe_gpu_lora_layer_enqueue(const moe_gpu_layer_dims *dims,
                               const moe_gpu_routing *routing, const void *x,
                               const void *router_w,
                               const moe_gpu_lora_experts *lora,
                               const moe_gpu_shared_expert *shared,
                               int32_t *offsets, int32_t *dropped, float *y,
                               void *stream);

/* The gated experts alone, on rows already grouped by expert: the rows of
 * expert e are x[offsets[e] .. offsets[e + 1]), offsets non-decreasing
 * from 0 with offsets[E] <= rows. For each such row r,
 *
 *   y[r] = (act(x[r] gate_w[e]^T) * (x[r] up_w[e]^T)) down_w[e]^T
 *
 * or act(x[r] gate_w[e]^T) down_w[e]^T when up_w is NULL
 *
 * (f32; rows past offsets[E] are not written). dims->tokens is the number
 * of rows and dims->top_k is ignored. Returns 0 or -1 as above. */
int moe_gpu_expert_ffn_enqueue(const moe_gpu_layer_dims *dims, const void *x,
                               const void *gate_w, const void *up_w,
                               const void *down_w, const int32_t *offsets,
                               float *y, void *stream);

/* Why the last call on this thread returned -1; "" after a success. */
const char *moe_gpu_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_GPU_KERNELS_H */
