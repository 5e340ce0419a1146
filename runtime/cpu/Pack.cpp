//===- Pack.cpp - weights into micro-kernel panels ------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "Ops.h"
#include "ThreadPool.h"

#include <cmath>
#include <cstring>

using namespace moe::rt::cpu;

static float loadAsF32(const void *base, moe_dtype type, int64_t i) {
  if (type == MOE_DTYPE_F32)
    return static_cast<const float *>(base)[i];
  uint16_t h = static_cast<const uint16_t *>(base)[i];
  if (type == MOE_DTYPE_BF16) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  // IEEE half.
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
  if (exponent == 0x1f)
    bits = sign | 0x7f800000 | (mantissa << 13);
  else if (exponent == 0) {
    float v = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -v : v;
  } else
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static uint16_t toBF16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if (std::isnan(value))
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

int64_t moe::rt::cpu::packedElements(int64_t n, int64_t k, moe_dtype dtype) {
  int64_t panels = (n + kPanel - 1) / kPanel;
  if (dtype == MOE_DTYPE_BF16)
    return panels * ((k + 1) / 2) * kPanel * 2;
  return panels * k * kPanel;
}

void moe::rt::cpu::packPanels(const void *w, moe_dtype src, int64_t count,
                              int64_t n, int64_t k, int64_t matrixStride,
                              void *out, moe_dtype dst) {
  int64_t perMatrix = packedElements(n, k, dst);
  int64_t panels = (n + kPanel - 1) / kPanel;
  size_t element = dst == MOE_DTYPE_F32 ? 4 : 2;
  bool copyBF16 = src == MOE_DTYPE_BF16 && dst == MOE_DTYPE_BF16;
  parallelFor(count * panels, [&](int64_t item) {
    int64_t matrix = item / panels, panel = item % panels;
    int64_t base = matrix * matrixStride;
    char *panelOut = static_cast<char *>(out) +
                     (matrix * perMatrix + panel * (perMatrix / panels)) *
                         element;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < kPanel; ++j) {
        int64_t row = panel * kPanel + j;
        bool inside = row < n;
        int64_t from = base + row * k + i;
        if (dst == MOE_DTYPE_F32) {
          float v = inside ? loadAsF32(w, src, from) : 0.0f;
          std::memcpy(panelOut + (i * kPanel + j) * 4, &v, 4);
        } else {
          uint16_t v = 0;
          if (inside)
            v = copyBF16 ? static_cast<const uint16_t *>(w)[from]
                         : toBF16(loadAsF32(w, src, from));
          int64_t at = ((i / 2) * kPanel + j) * 2 + (i % 2);
          std::memcpy(panelOut + at * 2, &v, 2);
        }
      }
    if (dst == MOE_DTYPE_BF16 && k % 2)
      for (int64_t j = 0; j < kPanel; ++j) {
        uint16_t zero = 0;
        std::memcpy(panelOut + (((k / 2) * kPanel + j) * 2 + 1) * 2, &zero,
                    2);
      }
  });
}
