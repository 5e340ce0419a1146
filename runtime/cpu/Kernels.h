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
  Identity = MOE_UK_IDENTITY,
  SwigluOai = MOE_UK_SWIGLU_OAI,
};

/// One tile of a product with a packed panel:
///   c[m, 0:32] (+)= sum_{i < k} rows[m][i] * panel[i][0:32], m < numRows
/// (numRows <= kMaxTileRows). Rows are f32 or bf16 like the panel, given
/// by pointers (`rows`) or, when `rows` is null, packed: `packed` holds
/// the tile's rows interleaved, element (m, i) at [i * numRows + m] for
/// f32 and at [((i / 2) * numRows + m) * 2 + i % 2] for bf16 (a zero
/// completing the last pair of an odd k).
/// `accumulate` adds to c instead of overwriting it, so that a caller can
/// split k into blocks. With `prefetch`, step i also asks for the cache line
/// at prefetch + i * prefetchStep to be brought into L2: callers spread the
/// next block of a panel stream over the tiles of the current one, so that
/// memory keeps streaming while the tiles compute.
struct Tile {
  const void *const *rows = nullptr;
  const void *packed = nullptr;
  int numRows = 0;
  const void *panel = nullptr;
  int64_t k = 0;
  float *c = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
  const char *prefetch = nullptr;
  int64_t prefetchStep = 0;
};
using PanelFn = void (*)(const Tile &tile);
/// An AMX product: c[0:m, 0:32] = a[0:m, 0:k] . panel, with `a` bf16
/// row-major (row stride lda elements, m a multiple of 16, zero rows
/// allowed), `panel` one packed bf16 panel (k a multiple of 32, as the
/// packed layout pads it), c f32 with row stride ldc. `next` (optional) is
/// prefetched into L2 as the panel streams: the stream that follows.
struct AmxProduct {
  const uint16_t *a = nullptr;
  int64_t lda = 0;
  int64_t m = 0;
  const uint16_t *panel = nullptr;
  int64_t k = 0;
  float *c = nullptr;
  int64_t ldc = 0;
  const char *next = nullptr;
};
using AmxFn = void (*)(const AmxProduct &product);

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
  PanelFn panelF32;
  PanelFn panelBF16;
  ActivationFn activation;
  ToBF16Fn toBF16;
  FromBF16Fn fromBF16;
  AxpyFn axpy;
  /// bf16 products on AMX tiles; null where the CPU (or the OS) has none.
  AmxFn amxBF16 = nullptr;
};

/// The kernels for this CPU; MOE_CPU_ISA=generic|avx2|avx512|amx overrides
/// the choice (for tests of every variant on one machine).
const Kernels &kernels();

const Kernels &genericKernels();
const Kernels *avx2Kernels();   // null when not built in
const Kernels *avx512Kernels(); // null when not built in
const Kernels *amxKernels();    // null when not built in

/// Scalar reference of an activation, used by every variant for tails
/// (swiglu_oai, which needs up too, is activationScalars').
float activationScalar(Act act, float x);

/// g[i] = act(g[i]) * u[i] (act(g[i]) when u is null) for i in [from, n);
/// swiglu_oai: (clamp(u, -7, 7) + 1) * g' * sigmoid(1.702 g') with
/// g' = min(g, 7). Every variant's tail, and its whole loop for the
/// activations it does not vectorize.
void activationScalars(Act act, float *g, const float *u, int64_t from,
                       int64_t n);

} // namespace moe::rt::cpu

#endif // MOE_RUNTIME_CPU_KERNELS_H
