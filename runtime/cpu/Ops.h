//===- Ops.h - the fast CPU operations of the runtime ------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// What the fast CPU lowering calls: weight packing, the fused gating, and
// the fused expert computation (gather, expert FFNs, shared expert, and
// the combine in slot order). Each is a plain C++ function over host
// buffers; UKernels.cpp decodes the calls of generated code into them.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CPU_OPS_H
#define MOE_RUNTIME_CPU_OPS_H

#include "Kernels.h"

#include "moe_runtime.h"
#include "moe_ukernel_abi.h"

#include <cstdint>

namespace moe::rt::cpu {

/// Elements of one packed [n, k] matrix in `dtype` (F32 or BF16 panels).
int64_t packedElements(int64_t n, int64_t k, moe_dtype dtype);

/// Packs `count` matrices of [n, k] elements of `src`, the i-th starting
/// at `w + i * matrixStride` elements, into consecutive packed matrices.
void packPanels(const void *w, moe_dtype src, int64_t count, int64_t n,
                int64_t k, int64_t matrixStride, void *out, moe_dtype dst);

/// The fused expert computation of `moe.fused_experts`.
struct ExpertFFN {
  // Hidden states x [tokens, hidden] and the output y [tokens, hidden].
  const void *x = nullptr;
  void *y = nullptr;
  moe_dtype xType = MOE_DTYPE_F32;
  int64_t tokens = 0, hidden = 0;
  // The grouped layout of dispatch.
  const int32_t *rowToken = nullptr;
  int64_t rows = 0;
  const int64_t *groupSizes = nullptr;
  int64_t experts = 0;
  const float *rowWeight = nullptr;  // apply_weight = input
  const int32_t *slotRow = nullptr;  // [tokens, slots]
  const float *slotWeight = nullptr; // [tokens, slots], apply_weight = output
  int64_t slots = 0;
  // Routed experts, packed: gate and up [E] x packed(inner, hidden), down
  // [E] x packed(hidden, inner); up is null for MLP experts.
  moe_dtype wType = MOE_DTYPE_F32;
  Act act = Act::Silu;
  int64_t inner = 0;
  const void *gate = nullptr, *up = nullptr, *down = nullptr;
  // Gated experts' biases (GPT-OSS), f32, or null: expert e adds
  // gateBias[e * biasStride + i] (and upBias[...]) to column i < inner of
  // its gate (up) product, and downBias[e * outWidth + i] to its output.
  const float *gateBias = nullptr, *upBias = nullptr, *downBias = nullptr;
  int64_t biasStride = 0;
  // The shared expert (gated), if any, packed like one routed expert, and
  // its sigmoid gate [hidden] (in sharedGateWeightType), if any.
  const void *sharedGate = nullptr, *sharedUp = nullptr,
             *sharedDown = nullptr;
  int64_t sharedInner = 0;
  Act sharedAct = Act::Silu;
  const void *sharedGateWeight = nullptr;
  moe_dtype sharedGateWeightType = MOE_DTYPE_F32;
  // The output: `outWidth` columns (0: hidden), y[t] = base x[t] (if
  // `base`, packed(outWidth, hidden)) + routedScale * the routed slots +
  // the shared expert. LoRA experts are A (as gate, inner = r) and B (as
  // down) with Act::Identity, routedScale alpha / r, and their frozen base.
  int64_t outWidth = 0;
  float routedScale = 1.0f;
  const void *base = nullptr;
};

void runExpertFFN(const ExpertFFN &problem);

/// The fused gating of `moe.gate`: router logits, scores, selection and
/// combine weights, token by token.
struct Gate {
  const void *x = nullptr;
  moe_dtype xType = MOE_DTYPE_F32;
  int64_t tokens = 0, hidden = 0;
  const void *router = nullptr; // packed(experts, hidden) in wType
  moe_dtype wType = MOE_DTYPE_F32;
  int64_t experts = 0;
  const float *routerBias = nullptr;    // [experts]
  const float *selectionBias = nullptr; // [experts]
  // Routing (the moe dialect's enums as integers).
  int64_t score = 0, selection = 0, k = 1, groups = 1, topkGroup = 1,
          groupScore = 0;
  float topP = 1.0f, tau = 0.0f, scale = 1.0f;
  bool softmaxSelected = false, renormalize = false;
  int32_t *ids = nullptr; // [tokens, k]
  float *weights = nullptr;
};

void runGate(const Gate &problem);

} // namespace moe::rt::cpu

#endif // MOE_RUNTIME_CPU_OPS_H
