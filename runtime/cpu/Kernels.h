//===- Kernels.h - CPU micro-kernels of the expert computation --*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The inner loops of the fast CPU path, one set per instruction set
// (AVX-512, AVX2, plain C++), chosen once from the host CPU's features.
//
// Weights are packed into panels of 32 output columns so that a panel is
// read contiguously: an f32 weight W [N, K] (out, in) becomes
// [ceil(N/32), K, 32]; a bf16 one becomes [ceil(N/32), ceil(K/2), 32, 2]
// (pairs of consecutive k, as AVX-512 BF16 dot products consume them).
// Padding columns and the odd k of a bf16 panel are zero.
//
// A micro-kernel computes a tile of up to maxRows rows by one panel,
// C[m][0..32) = sum_k A_m[k] * P[k][0..32), over the whole K. A rows are
// addressed by pointer, so routed rows are read in place (the gather is
// folded into the GEMM). Each output element is one sum in k order, so the
// result does not depend on how rows and panels are split across threads.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CPU_KERNELS_H
#define MOE_RUNTIME_CPU_KERNELS_H

#include "Elements.h"
#include "moe_ukernel_abi.h"

#include <cstdint>

namespace moe::rt::cpu {

constexpr int kPanel = MOE_UK_PANEL;
constexpr int kMaxTileRows = 14;

/// The activations of the expert FFNs (the moe dialect's Activation).
enum class Act : int64_t {
  Silu = MOE_UK_SILU,
  GeluTanh = MOE_UK_GELU_TANH,
  GeluErf = MOE_UK_GELU_ERF,
  Relu = MOE_UK_RELU,
};

using PanelF32Fn = void (*)(const float *const *rows, int numRows,
                            const float *panel, int64_t k, float *c,
                            int64_t ldc);
using PanelBF16Fn = void (*)(const uint16_t *const *rows, int numRows,
                             const uint16_t *panel, int64_t k, float *c,
                             int64_t ldc);
/// g[i] = act(g[i]) * u[i] for i < n (act(g[i]) alone when u is null).
using ActivationFn = void (*)(Act act, float *g, const float *u, int64_t n);
/// dst[i] = bf16(src[i]) (round to nearest even), and back.
using ToBF16Fn = void (*)(const float *src, uint16_t *dst, int64_t n);
using FromBF16Fn = void (*)(const uint16_t *src, float *dst, int64_t n);
/// acc[i] += w * x[i].
using AxpyFn = void (*)(int64_t n, float w, const float *x, float *acc);

struct Kernels {
  const char *name;
  /// Rows per tile that the micro-kernels handle best (at most
  /// kMaxTileRows; any count up to kMaxTileRows works).
  int tileRows;
  PanelF32Fn panelF32;
  PanelBF16Fn panelBF16;
  ActivationFn activation;
  ToBF16Fn toBF16;
  FromBF16Fn fromBF16;
  AxpyFn axpy;
};

/// The kernels for this CPU; MOE_CPU_ISA=generic|avx2|avx512 overrides the
/// choice (for tests of every variant on one machine).
const Kernels &kernels();

const Kernels &genericKernels();
const Kernels *avx2Kernels();   // null when not built in
const Kernels *avx512Kernels(); // null when not built in

/// Scalar reference of an activation, used by every variant for tails.
float activationScalar(Act act, float x);

} // namespace moe::rt::cpu

#endif // MOE_RUNTIME_CPU_KERNELS_H
