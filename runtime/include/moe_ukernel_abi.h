/*===- moe_ukernel_abi.h - the compiler's contract with the CPU kernels ---===*\
|*                                                                            *|
|* Part of the moe-mlir project, under the Apache License v2.0 with LLVM      *|
|* Exceptions. See LICENSE for license information.                          *|
|* SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception                    *|
|*                                                                            *|
|*===----------------------------------------------------------------------===*|
|*                                                                            *|
|* What convert-moe-to-cpu and convert-moe-ukernels emit and the runtime's    *|
|* CPU kernels decode: the packed weight layout, the dtype and activation     *|
|* codes, and the argument words of each kernel. Both sides include this      *|
|* header; it is the one place these numbers are written down.                *|
|*                                                                            *|
|* A call of kernel NAME is                                                   *|
|*   _mlir_ciface_moe_rt_ukernel_NAME(memref<?xi64> words)                    *|
|* where the words are, for each buffer operand (inputs, then outputs):       *|
|*   address, dtype code, rank, sizes[rank]                                   *|
|* followed by the kernel's configuration words. Buffers are dense and        *|
|* row-major; an absent optional operand is a buffer with zero elements.     *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_UKERNEL_ABI_H
#define MOE_UKERNEL_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of buffer operands. */
enum moe_uk_dtype {
  MOE_UK_F32 = 0,
  MOE_UK_F16 = 1,
  MOE_UK_BF16 = 2,
  MOE_UK_I32 = 3,
  MOE_UK_I64 = 4,
  MOE_UK_I8 = 5,
};

/* Expert activations (config word of expert_ffn); identity makes LoRA
 * adapters (A then B) two-layer experts without an activation; swiglu_oai
 * (GPT-OSS) combines gate and up itself. */
enum moe_uk_act {
  MOE_UK_SILU = 0,
  MOE_UK_GELU_TANH = 1,
  MOE_UK_GELU_ERF = 2,
  MOE_UK_RELU = 3,
  MOE_UK_IDENTITY = 4,
  MOE_UK_SWIGLU_OAI = 5,
};

/* Router score functions, selections and group scores (gate config). */
enum moe_uk_score {
  MOE_UK_SOFTMAX = 0,
  MOE_UK_SIGMOID = 1,
  MOE_UK_SQRT_SOFTPLUS = 2,
  MOE_UK_LOGITS = 3,
};
enum moe_uk_selection {
  MOE_UK_TOP_K = 0,
  MOE_UK_GROUPED_TOP_K = 1,
  MOE_UK_TOP_P = 2,
  MOE_UK_THRESHOLD = 3,
};
enum moe_uk_group_score { MOE_UK_GROUP_MAX = 0, MOE_UK_GROUP_SUM_TOP2 = 1 };

/* The packed layout of a weight matrix W [n, k] (rows are output columns
 * of the product x . W^T): panels of MOE_UK_PANEL rows of W, the last one
 * padded with zeros. An f32 panel stores, for each i < k, its 32 values
 * W[j, i] (j in the panel) contiguously: [k][32]. A bf16 panel stores
 * pairs along k, with k rounded up to a multiple of 32 in zeros:
 * [kp/2][32][2], kp = roundup(k, 32), so that AMX tiles of 32 k values
 * read it directly (16 pair rows, 64-byte halves of the 128-byte rows).
 * Stacked matrices [E, n, k] pack to E packed matrices one after the
 * other. Only f32 and bf16 panels exist; f16 weights pack to f32. */
#define MOE_UK_PANEL 32
#define MOE_UK_BF16_K_ALIGN 32

static inline int64_t moe_uk_packed_elements(int64_t n, int64_t k,
                                             int32_t bf16) {
  int64_t panels = (n + MOE_UK_PANEL - 1) / MOE_UK_PANEL;
  int64_t kp = (k + MOE_UK_BF16_K_ALIGN - 1) / MOE_UK_BF16_K_ALIGN *
               MOE_UK_BF16_K_ALIGN;
  return bf16 ? panels * kp * MOE_UK_PANEL : panels * k * MOE_UK_PANEL;
}

/* Kernel argument layouts (buffers; then config words):
 *
 * pack        ins(w [n_total, k] or [E, n_total, k])  outs(packed [*])
 *             config: first_row, rows
 *             Packs rows [first_row, first_row + rows) of each matrix.
 *
 * gate        ins(x [T, d], router (packed E x d), router_bias [E] f32,
 *                 selection_bias [E] f32, tau [1] f32)
 *             outs(ids [T, k] i32, weights [T, k] f32)
 *             config: E, score, selection, k, groups, topk_group,
 *                     group_score, top_p (f32 bits), tau (f32 bits),
 *                     softmax_selected, renormalize, scale (f32 bits)
 *
 * expert_ffn  ins(x [T, d], row_token [R] i32, group_sizes [E] i64,
 *                 row_weight [R] f32, slot_row [T, S] i32,
 *                 slot_weight [T, S] f32, gate (packed E x f x d),
 *                 up (same), down (packed E x o x f), shared_gate
 *                 (packed fs x d), shared_up (same), shared_down (packed
 *                 d x fs), shared_gate_weight [1, d], base (packed o x d))
 *             outs(y [T, o])
 *             config: f, act, fs, shared act, o, routed scale (f32 bits)
 *             y[t] = base(x[t]) + routed scale * sum over slots of
 *             weight * down(act(gate(row)) * up(row)) + shared(x[t]);
 *             o is the output width (d, or a LoRA base's d_out).
 */

#ifdef __cplusplus
}
#endif

#endif /* MOE_UKERNEL_ABI_H */
