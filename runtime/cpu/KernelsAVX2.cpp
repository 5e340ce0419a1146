//===- KernelsAVX2.cpp - AVX2 micro-kernels -------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Compiled with -mavx2 -mfma. A 32-column panel is four ymm per row; a tile
// of up to 6 f32 rows (24 accumulators) or 4 bf16 rows is computed at a
// time. bf16 is widened to f32 (shifts), without dot-product instructions.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <immintrin.h>

#include <algorithm>

#include <cstring>

using namespace moe::rt::cpu;

namespace {

/// Rows m0 .. m0 + M of tile t; its rows come through pointers or packed.
template <int M>
void tileF32(const Tile &t, int m0) {
  auto panel = static_cast<const float *>(t.panel);
  float *c = t.c + m0 * t.ldc;
  const int64_t k = t.k, ldc = t.ldc;
  auto packed = static_cast<const float *>(t.packed);
  __m256 acc[M][4];
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < 4; ++j)
      acc[m][j] = t.accumulate ? _mm256_loadu_ps(c + m * ldc + 8 * j)
                               : _mm256_setzero_ps();
  for (int64_t i = 0; i < k; ++i) {
    __m256 b[4];
    for (int j = 0; j < 4; ++j)
      b[j] = _mm256_loadu_ps(panel + i * kPanel + 8 * j);
    for (int m = 0; m < M; ++m) {
      __m256 x = _mm256_broadcast_ss(
          t.rows ? static_cast<const float *>(t.rows[m0 + m]) + i
                 : packed + i * t.numRows + m0 + m);
      for (int j = 0; j < 4; ++j)
        acc[m][j] = _mm256_fmadd_ps(x, b[j], acc[m][j]);
    }
  }
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < 4; ++j)
      _mm256_storeu_ps(c + m * ldc + 8 * j, acc[m][j]);
}

/// Element i of row m of tile t as f32 (0 past k: an odd k's last pair).
inline float bf16Row(const Tile &t, int m, int64_t i) {
  if (i >= t.k)
    return 0.0f;
  uint16_t h =
      t.rows ? static_cast<const uint16_t *>(t.rows[m])[i]
             : static_cast<const uint16_t *>(
                   t.packed)[((i / 2) * t.numRows + m) * 2 + i % 2];
  return fromBF16Scalar(h);
}

template <int M>
void tileBF16(const Tile &t, int m0) {
  auto panel = static_cast<const uint16_t *>(t.panel);
  float *c = t.c + m0 * t.ldc;
  const int64_t k = t.k, ldc = t.ldc;
  __m256 acc[M][4];
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < 4; ++j)
      acc[m][j] = t.accumulate ? _mm256_loadu_ps(c + m * ldc + 8 * j)
                               : _mm256_setzero_ps();
  for (int64_t i = 0; i < k; i += 2) {
    // Split the (k, k + 1) pairs of 32 columns into two rows of 32.
    const uint16_t *b = panel + (i / 2) * 2 * kPanel;
    __m256 even[4], odd[4];
    for (int j = 0; j < 4; ++j) {
      __m256i pairs = _mm256_loadu_si256(
          reinterpret_cast<const __m256i *>(b + 16 * j));
      even[j] = _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16));
      odd[j] = _mm256_castsi256_ps(
          _mm256_and_si256(pairs, _mm256_set1_epi32(0xffff0000)));
    }
    for (int m = 0; m < M; ++m) {
      __m256 x0 = _mm256_set1_ps(bf16Row(t, m0 + m, i));
      __m256 x1 = _mm256_set1_ps(bf16Row(t, m0 + m, i + 1));
      for (int j = 0; j < 4; ++j)
        acc[m][j] = _mm256_fmadd_ps(x1, odd[j],
                                    _mm256_fmadd_ps(x0, even[j], acc[m][j]));
    }
  }
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < 4; ++j)
      _mm256_storeu_ps(c + m * ldc + 8 * j, acc[m][j]);
}

void panelF32(const Tile &t) {
  for (int m0 = 0; m0 < t.numRows;) {
    int m = std::min(6, t.numRows - m0);
    switch (m) {
    case 6: tileF32<6>(t, m0); break;
    case 5: tileF32<5>(t, m0); break;
    case 4: tileF32<4>(t, m0); break;
    case 3: tileF32<3>(t, m0); break;
    case 2: tileF32<2>(t, m0); break;
    default: tileF32<1>(t, m0); break;
    }
    m0 += m;
  }
}

void panelBF16(const Tile &t) {
  for (int m0 = 0; m0 < t.numRows;) {
    int m = std::min(4, t.numRows - m0);
    switch (m) {
    case 4: tileBF16<4>(t, m0); break;
    case 3: tileBF16<3>(t, m0); break;
    case 2: tileBF16<2>(t, m0); break;
    default: tileBF16<1>(t, m0); break;
    }
    m0 += m;
  }
}

void activation(Act act, float *g, const float *u, int64_t n) {
  activationScalars(act, g, u, 0, n);
}

void toBF16(const float *src, uint16_t *dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = toBF16Scalar(src[i]);
}

void fromBF16(const uint16_t *src, float *dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(
                                  _mm256_cvtepu16_epi32(h), 16)));
  }
  for (; i < n; ++i)
    dst[i] = fromBF16Scalar(src[i]);
}

void axpy(int64_t n, float w, const float *x, float *acc) {
  __m256 wv = _mm256_set1_ps(w);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i),
                                              _mm256_loadu_ps(acc + i)));
  for (; i < n; ++i)
    acc[i] += w * x[i];
}

} // namespace

const Kernels *moe::rt::cpu::avx2Kernels() {
  static const Kernels kernels = {"avx2",     6,      panelF32, panelBF16,
                                  activation, toBF16, fromBF16, axpy};
  return &kernels;
}
