//===- Elements.h - element conversions of the CPU kernels ------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Scalar conversions between f32 and the 16-bit float types (round to
// nearest even, NaN kept quiet), element loads and stores by dtype, and
// the aligned scratch buffers of the kernels.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_CPU_ELEMENTS_H
#define MOE_RUNTIME_CPU_ELEMENTS_H

#include "moe_runtime.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace moe::rt::cpu {

inline uint16_t toBF16Scalar(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if (std::isnan(value))
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

inline float fromBF16Scalar(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &wide, 4);
  return value;
}

inline float fromF16Scalar(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000 | (mantissa << 13);
  } else if (exponent == 0) {
    float v = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -v : v;
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t toF16Scalar(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  uint32_t sign = (bits >> 16) & 0x8000;
  uint32_t exponent = (bits >> 23) & 0xff, mantissa = bits & 0x7fffff;
  if (exponent == 0xff)
    return static_cast<uint16_t>(sign | 0x7c00 | (mantissa ? 0x200 : 0));
  int32_t e = static_cast<int32_t>(exponent) - 112;
  if (e >= 0x1f)
    return static_cast<uint16_t>(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10)
      return static_cast<uint16_t>(sign);
    mantissa |= 0x800000;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mantissa >> shift, rest = mantissa & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rest > mid || (rest == mid && (half & 1)))
      ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
    ++half;
  return static_cast<uint16_t>(sign | half);
}

/// Element `i` of `base` (of `type`) as f32. `base` need not be aligned
/// for `type` (a checkpoint's mapping does not promise it): the loads are
/// memcpy, which compilers turn into plain loads.
inline float loadF32(const void *base, moe_dtype type, int64_t i) {
  const char *at = static_cast<const char *>(base);
  if (type == MOE_DTYPE_F32) {
    float value;
    std::memcpy(&value, at + 4 * i, 4);
    return value;
  }
  uint16_t bits;
  std::memcpy(&bits, at + 2 * i, 2);
  return type == MOE_DTYPE_BF16 ? fromBF16Scalar(bits) : fromF16Scalar(bits);
}

/// Stores `value` rounded to `type` as element `i` of `base`.
inline void storeF32(void *base, moe_dtype type, int64_t i, float value) {
  switch (type) {
  case MOE_DTYPE_F32:
    static_cast<float *>(base)[i] = value;
    return;
  case MOE_DTYPE_BF16:
    static_cast<uint16_t *>(base)[i] = toBF16Scalar(value);
    return;
  case MOE_DTYPE_F16:
    static_cast<uint16_t *>(base)[i] = toF16Scalar(value);
    return;
  }
}

inline size_t dtypeBytes(moe_dtype type) {
  return type == MOE_DTYPE_F32 ? 4 : 2;
}

struct FreeDeleter {
  void operator()(void *p) const { std::free(p); }
};
using Buffer = std::unique_ptr<void, FreeDeleter>;

/// A 64-byte aligned buffer of at least `bytes` bytes (64 when empty).
inline Buffer allocateAligned(size_t bytes) {
  size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  return Buffer(std::aligned_alloc(64, rounded));
}

/// A buffer for data that streams through the kernels (packed weights):
/// 2 MB aligned and, where the OS offers it, backed by huge pages, so that
/// streaming it from memory does not also walk a page table per 4 KB.
Buffer allocateStreamed(size_t bytes);

} // namespace moe::rt::cpu

#endif // MOE_RUNTIME_CPU_ELEMENTS_H
