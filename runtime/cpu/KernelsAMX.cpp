//===- KernelsAMX.cpp - bf16 products on AMX tiles ------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Compiled with -mamx-tile -mamx-bf16 (and the AVX-512 flags) and used only
// when the CPU has AMX and the OS lets this process use it (Kernels.cpp).
//
// Tile registers: C in tmm0..3 (two 16-row blocks by two 16-column halves
// of a 32-column panel), A in tmm4..5 (16 rows by 32 k values), B in
// tmm6..7 (16 pair rows of a packed bf16 panel, one 64-byte half of its
// 128-byte rows each). One TDPBF16PS multiplies 16 x 32 by 32 x 16 with f32
// accumulation: a 32 x 32 block per k step of 32 takes four.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <immintrin.h>

#include <cstring>

using namespace moe::rt::cpu;

namespace {

/// The LDTILECFG operand (palette 1): every tile 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t startRow = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

/// Tile configuration is per thread; each thread loads it before its first
/// product.
void configure() {
  static thread_local bool configured = false;
  if (configured)
    return;
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = 16;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
  configured = true;
}

/// k steps (2 KB of panel each) between a panel line's prefetch and use.
constexpr int64_t kAheadSteps = 1;

void amxBF16(const AmxProduct &p) {
  configure();
  const int64_t aStride = p.lda * 2, cStride = p.ldc * 4;
  // Prefetch, while the first row block streams the panel from memory:
  // the panel's pair rows a k step ahead into L1, and what follows the
  // panel spread over the k steps into L2.
  const int64_t steps = p.k / 32;
  const int64_t nextPerStep = p.next ? (p.k * 64 + steps - 1) / steps : 0;
  for (int64_t m0 = 0; m0 < p.m; m0 += 32) {
    bool two = m0 + 16 < p.m;
    _tile_zero(0);
    _tile_zero(1);
    if (two) {
      _tile_zero(2);
      _tile_zero(3);
    }
    const uint16_t *a0 = p.a + m0 * p.lda;
    const uint16_t *a1 = a0 + 16 * p.lda;
    for (int64_t s = 0; s < steps; ++s) {
      const uint16_t *b = p.panel + s * 16 * 64; // 16 pair rows of 64
      const char *ahead = reinterpret_cast<const char *>(b + kAheadSteps * 16 * 64);
      if (m0 == 0)
        for (int line = 0; line < 2048; line += 64)
          _mm_prefetch(ahead + line, _MM_HINT_T0);
      if (p.next && m0 == 0)
        for (int64_t line = 0; line < nextPerStep; line += 64)
          _mm_prefetch(p.next + s * nextPerStep + line, _MM_HINT_T1);
      _tile_loadd(4, a0 + s * 32, aStride);
      _tile_loadd(6, b, 128);
      _tile_loadd(7, b + 32, 128);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      if (two) {
        _tile_loadd(5, a1 + s * 32, aStride);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
    }
    float *c = p.c + m0 * p.ldc;
    _tile_stored(0, c, cStride);
    _tile_stored(1, c + 16, cStride);
    if (two) {
      _tile_stored(2, c + 16 * p.ldc, cStride);
      _tile_stored(3, c + 16 * p.ldc + 16, cStride);
    }
  }
}

} // namespace

const Kernels *moe::rt::cpu::amxKernels() {
  static const Kernels kernels = [] {
    Kernels k = *avx512Kernels();
    k.name = "amx";
    k.amxBF16 = amxBF16;
    return k;
  }();
  return &kernels;
}
