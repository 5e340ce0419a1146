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

#if defined(__linux__)
#include <sys/mman.h>
#endif

using namespace moe::rt::cpu;

int64_t moe::rt::cpu::packedElements(int64_t n, int64_t k, moe_dtype dtype) {
  return moe_uk_packed_elements(n, k, dtype == MOE_DTYPE_BF16);
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
          float v = inside ? loadF32(w, src, from) : 0.0f;
          std::memcpy(panelOut + (i * kPanel + j) * 4, &v, 4);
        } else {
          uint16_t v = 0;
          if (inside)
            v = copyBF16 ? static_cast<const uint16_t *>(w)[from]
                         : toBF16Scalar(loadF32(w, src, from));
          int64_t at = ((i / 2) * kPanel + j) * 2 + (i % 2);
          std::memcpy(panelOut + at * 2, &v, 2);
        }
      }
    // bf16 panels hold k rounded up to a multiple of 32, in zeros: the
    // odd k's last pair, then whole pair rows.
    if (dst == MOE_DTYPE_BF16) {
      if (k % 2)
        for (int64_t j = 0; j < kPanel; ++j)
          std::memset(panelOut + (((k / 2) * kPanel + j) * 2 + 1) * 2, 0, 2);
      int64_t pairs = (k + 1) / 2, paddedPairs = (k + 31) / 32 * 16;
      std::memset(panelOut + pairs * kPanel * 2 * 2, 0,
                  (paddedPairs - pairs) * kPanel * 2 * 2);
    }
  });
}

Buffer moe::rt::cpu::allocateStreamed(size_t bytes) {
  constexpr size_t kHuge = 2u << 20;
  if (bytes < kHuge)
    return allocateAligned(bytes);
  size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
  void *data = std::aligned_alloc(kHuge, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // Advice only: without transparent huge pages nothing changes.
  if (data)
    madvise(data, rounded, MADV_HUGEPAGE);
#endif
  return Buffer(data);
}
