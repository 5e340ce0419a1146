//===- KernelsAVX512.cpp - AVX-512 micro-kernels --------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma
// and used only when the CPU has those features. A tile of M rows keeps
// M x 2 accumulators (32 columns) in registers: 28 of the 32 zmm for M = 14.
// bf16 tiles use VDPBF16PS: two k per instruction, f32 accumulation.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <immintrin.h>

#include <cstring>

using namespace moe::rt::cpu;

namespace {

/// k steps between a panel row's prefetch and its use (2 cache lines per
/// step for f32): the first tile over a panel block reads it from memory.
constexpr int64_t kPrefetchF32 = 24;

/// The M x 32 accumulators of a tile: C's values when accumulating, else 0.
template <int M>
inline void loadAccumulators(const Tile &t, __m512 (&acc)[M][2]) {
  for (int m = 0; m < M; ++m)
    for (int h = 0; h < 2; ++h)
      acc[m][h] = t.accumulate ? _mm512_loadu_ps(t.c + m * t.ldc + 16 * h)
                               : _mm512_setzero_ps();
}

template <int M>
inline void storeAccumulators(const Tile &t, const __m512 (&acc)[M][2]) {
  for (int m = 0; m < M; ++m)
    for (int h = 0; h < 2; ++h)
      _mm512_storeu_ps(t.c + m * t.ldc + 16 * h, acc[m][h]);
}

/// Rows come through pointers (Packed = false) or as one tile-interleaved
/// block a[i * M + m] (Packed = true): one stream instead of M.
template <int M, bool Packed>
void tileF32(const Tile &t) {
  auto panel = static_cast<const float *>(t.panel);
  const int64_t k = t.k;
  const char *far = t.prefetch;
  const int64_t farStep = t.prefetchStep;
  __m512 acc[M][2];
  loadAccumulators<M>(t, acc);
  const float *a[M];
  const float *packed = static_cast<const float *>(t.packed);
  if (!Packed)
    for (int m = 0; m < M; ++m)
      a[m] = static_cast<const float *>(t.rows[m]);
  for (int64_t i = 0; i < k; ++i) {
    // The panel streams from memory the first time: fetch ahead into L1;
    // the spread prefetch brings what follows into L2.
    _mm_prefetch(reinterpret_cast<const char *>(panel + (i + kPrefetchF32) * kPanel),
                 _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char *>(panel + (i + kPrefetchF32) * kPanel + 16),
                 _MM_HINT_T0);
    if (far)
      _mm_prefetch(far + i * farStep, _MM_HINT_T1);
    __m512 b0 = _mm512_loadu_ps(panel + i * kPanel);
    __m512 b1 = _mm512_loadu_ps(panel + i * kPanel + 16);
#pragma GCC unroll 14
    for (int m = 0; m < M; ++m) {
      __m512 x = _mm512_set1_ps(Packed ? packed[i * M + m] : a[m][i]);
      acc[m][0] = _mm512_fmadd_ps(x, b0, acc[m][0]);
      acc[m][1] = _mm512_fmadd_ps(x, b1, acc[m][1]);
    }
  }
  storeAccumulators<M>(t, acc);
}

/// bf16 pairs (k, k + 1) per VDPBF16PS, f32 accumulation. Packed rows hold
/// the pairs interleaved, a[(p * M + m) * 2 + (i % 2)], the last one
/// zero-padded for an odd k.
template <int M, bool Packed>
void tileBF16(const Tile &t) {
  auto panel = static_cast<const uint16_t *>(t.panel);
  const int64_t k = t.k;
  const char *far = t.prefetch;
  const int64_t farStep = t.prefetchStep;
  __m512 acc[M][2];
  loadAccumulators<M>(t, acc);
  const uint16_t *a[M];
  const int32_t *packed = static_cast<const int32_t *>(t.packed);
  if (!Packed)
    for (int m = 0; m < M; ++m)
      a[m] = static_cast<const uint16_t *>(t.rows[m]);
  int64_t pairs = Packed ? (k + 1) / 2 : k / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    if (far)
      _mm_prefetch(far + p * farStep, _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char *>(panel + (p + kPrefetchF32) * 2 * kPanel),
                 _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char *>(panel + (p + kPrefetchF32) * 2 * kPanel + 32),
                 _MM_HINT_T0);
    __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanel);
    __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + p * 2 * kPanel + 32);
#pragma GCC unroll 14
    for (int m = 0; m < M; ++m) {
      int32_t pair;
      if (Packed)
        pair = packed[p * M + m];
      else
        std::memcpy(&pair, a[m] + 2 * p, sizeof(pair));
      __m512bh x = (__m512bh)_mm512_set1_epi32(pair);
      acc[m][0] = _mm512_dpbf16_ps(acc[m][0], x, b0);
      acc[m][1] = _mm512_dpbf16_ps(acc[m][1], x, b1);
    }
  }
  if (!Packed && k % 2) {
    // The last k pairs with the panel's zero padding.
    __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + pairs * 2 * kPanel);
    __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + pairs * 2 * kPanel + 32);
    for (int m = 0; m < M; ++m) {
      __m512bh x = (__m512bh)_mm512_set1_epi32(a[m][k - 1]);
      acc[m][0] = _mm512_dpbf16_ps(acc[m][0], x, b0);
      acc[m][1] = _mm512_dpbf16_ps(acc[m][1], x, b1);
    }
  }
  storeAccumulators<M>(t, acc);
}

void panelF32(const Tile &t) {
  switch (t.numRows) {
#define MOE_TILE(M)                                                            \
  case M:                                                                      \
    return t.rows ? tileF32<M, false>(t) : tileF32<M, true>(t);
    MOE_TILE(1) MOE_TILE(2) MOE_TILE(3) MOE_TILE(4) MOE_TILE(5) MOE_TILE(6)
    MOE_TILE(7) MOE_TILE(8) MOE_TILE(9) MOE_TILE(10) MOE_TILE(11)
    MOE_TILE(12) MOE_TILE(13) MOE_TILE(14)
#undef MOE_TILE
  default:
    return;
  }
}

void panelBF16(const Tile &t) {
  switch (t.numRows) {
#define MOE_TILE(M)                                                            \
  case M:                                                                      \
    return t.rows ? tileBF16<M, false>(t) : tileBF16<M, true>(t);
    MOE_TILE(1) MOE_TILE(2) MOE_TILE(3) MOE_TILE(4) MOE_TILE(5) MOE_TILE(6)
    MOE_TILE(7) MOE_TILE(8) MOE_TILE(9) MOE_TILE(10) MOE_TILE(11)
    MOE_TILE(12) MOE_TILE(13) MOE_TILE(14)
#undef MOE_TILE
  default:
    return;
  }
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

/// exp(x), Cephes-style range reduction and polynomial (about 1 ulp);
/// overflow gives +inf, underflow 0, NaN stays NaN.
__m512 exp512(__m512 x) {
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e),
                                  _MM_FROUND_TO_NEAREST_INT |
                                      _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  // scalef handles the exponent range (0 below, inf above) by itself.
  return _mm512_scalef_ps(p, n);
}

__m512 activation512(Act act, __m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  switch (act) {
  case Act::Silu: {
    __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(one, e));
  }
  case Act::Relu: {
    // max(x, 0) keeps NaN, as arith.maximumf does.
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(_mm512_max_ps(x, _mm512_setzero_ps()), nan, x);
  }
  case Act::GeluTanh: {
    // tanh(s) = 1 - 2 / (1 + exp(2 s))
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 s = _mm512_mul_ps(
        _mm512_set1_ps(0.7978845608028654f),
        _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), x3, x));
    __m512 e = exp512(_mm512_add_ps(s, s));
    __m512 t = _mm512_sub_ps(
        one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(one, e)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x),
                         _mm512_add_ps(one, t));
  }
  case Act::GeluErf:
  case Act::Identity:
  case Act::SwigluOai:
    break;
  }
  return x;
}

void activation(Act act, float *g, const float *u, int64_t n) {
  int64_t i = 0;
  if (act != Act::GeluErf && act != Act::SwigluOai) {
    for (; i + 16 <= n; i += 16) {
      __m512 v = activation512(act, _mm512_loadu_ps(g + i));
      if (u)
        v = _mm512_mul_ps(v, _mm512_loadu_ps(u + i));
      _mm512_storeu_ps(g + i, v);
    }
  }
  activationScalars(act, g, u, i, n);
}

void toBF16(const float *src, uint16_t *dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(dst + i), (__m256i)h);
  }
  for (; i < n; ++i)
    dst[i] = toBF16Scalar(src[i]);
}

void fromBF16(const uint16_t *src, float *dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i *>(src + i));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(
                                  _mm512_cvtepu16_epi32(h), 16)));
  }
  for (; i < n; ++i)
    dst[i] = fromBF16Scalar(src[i]);
}

void axpy(int64_t n, float w, const float *x, float *acc) {
  __m512 wv = _mm512_set1_ps(w);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(acc + i, _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + i),
                                              _mm512_loadu_ps(acc + i)));
  for (; i < n; ++i)
    acc[i] += w * x[i];
}

} // namespace

const Kernels *moe::rt::cpu::avx512Kernels() {
  static const Kernels kernels = {"avx512",   14,     panelF32, panelBF16,
                                  activation, toBF16, fromBF16, axpy};
  return &kernels;
}
