//===- KernelsGeneric.cpp - plain C++ micro-kernels -----------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Portable kernels for CPUs without AVX2: the same panel layout and the same
// k order per output element as the vector kernels.
//
//===----------------------------------------------------------------------===//

#include "Kernels.h"

#include <cmath>
#include <cstring>

using namespace moe::rt::cpu;

float moe::rt::cpu::activationScalar(Act act, float x) {
  switch (act) {
  case Act::Silu:
    return x / (1.0f + std::exp(-x));
  case Act::Relu:
    return std::isnan(x) ? x : (x > 0.0f ? x : 0.0f);
  case Act::GeluTanh: {
    float s = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + std::tanh(s));
  }
  case Act::GeluErf:
    return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
  case Act::Identity:
  case Act::SwigluOai: // needs up: activationScalars
    return x;
  }
  return x;
}

void moe::rt::cpu::activationScalars(Act act, float *g, const float *u,
                                     int64_t from, int64_t n) {
  if (act != Act::SwigluOai) {
    for (int64_t i = from; i < n; ++i)
      g[i] = activationScalar(act, g[i]) * (u ? u[i] : 1.0f);
    return;
  }
  // GPT-OSS's alpha and limit; the clamps keep a NaN (std::fmin/fmax
  // would drop it).
  constexpr float alpha = 1.702f, limit = 7.0f;
  for (int64_t i = from; i < n; ++i) {
    float x = g[i], y = u ? u[i] : 0.0f;
    float gc = x > limit ? limit : x;
    float uc = y > limit ? limit : (y < -limit ? -limit : y);
    g[i] = (uc + 1.0f) * (gc / (1.0f + std::exp(-alpha * gc)));
  }
}

/// Row m's element i of a tile's rows (pointers or packed).
static float rowF32(const Tile &t, int m, int64_t i) {
  if (t.rows)
    return static_cast<const float *>(t.rows[m])[i];
  return static_cast<const float *>(t.packed)[i * t.numRows + m];
}

static float rowBF16(const Tile &t, int m, int64_t i) {
  if (i >= t.k)
    return 0.0f;
  if (t.rows)
    return fromBF16Scalar(static_cast<const uint16_t *>(t.rows[m])[i]);
  return fromBF16Scalar(static_cast<const uint16_t *>(
      t.packed)[((i / 2) * t.numRows + m) * 2 + i % 2]);
}

static void panelF32(const Tile &t) {
  auto panel = static_cast<const float *>(t.panel);
  for (int m = 0; m < t.numRows; ++m) {
    float acc[kPanel] = {};
    if (t.accumulate)
      std::memcpy(acc, t.c + m * t.ldc, sizeof(acc));
    for (int64_t i = 0; i < t.k; ++i) {
      float a = rowF32(t, m, i);
      const float *b = panel + i * kPanel;
      for (int j = 0; j < kPanel; ++j)
        acc[j] += a * b[j];
    }
    std::memcpy(t.c + m * t.ldc, acc, sizeof(acc));
  }
}

static void panelBF16(const Tile &t) {
  auto panel = static_cast<const uint16_t *>(t.panel);
  for (int m = 0; m < t.numRows; ++m) {
    float acc[kPanel] = {};
    if (t.accumulate)
      std::memcpy(acc, t.c + m * t.ldc, sizeof(acc));
    for (int64_t i = 0; i < t.k; i += 2) {
      float a0 = rowBF16(t, m, i);
      float a1 = rowBF16(t, m, i + 1);
      const uint16_t *b = panel + (i / 2) * kPanel * 2;
      for (int j = 0; j < kPanel; ++j)
        acc[j] += a0 * fromBF16Scalar(b[2 * j]) + a1 * fromBF16Scalar(b[2 * j + 1]);
    }
    std::memcpy(t.c + m * t.ldc, acc, sizeof(acc));
  }
}

static void activation(Act act, float *g, const float *u, int64_t n) {
  activationScalars(act, g, u, 0, n);
}

static void toBF16(const float *src, uint16_t *dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = toBF16Scalar(src[i]);
}

static void fromBF16(const uint16_t *src, float *dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = fromBF16Scalar(src[i]);
}

static void axpy(int64_t n, float w, const float *x, float *acc) {
  for (int64_t i = 0; i < n; ++i)
    acc[i] += w * x[i];
}

const Kernels &moe::rt::cpu::genericKernels() {
  static const Kernels kernels = {"generic", 4,      panelF32, panelBF16,
                                  activation, toBF16, fromBF16, axpy};
  return kernels;
}
