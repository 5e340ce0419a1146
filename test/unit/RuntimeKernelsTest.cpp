//===- RuntimeKernelsTest.cpp - the CPU kernels against plain sums --------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Every micro-kernel variant this CPU can run, and the fused expert
// computation, against sums written here in f64; and the expert
// computation's independence of the thread count.
//
//===----------------------------------------------------------------------===//

#include "cpu/Ops.h"
#include "cpu/ThreadPool.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace moe::rt::cpu;

namespace {

std::vector<float> randomVector(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

uint16_t toBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

float fromBF16(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::vector<const Kernels *> variants() {
  std::vector<const Kernels *> all = {&genericKernels()};
#if defined(__x86_64__)
  if (avx2Kernels() && __builtin_cpu_supports("avx2") &&
      __builtin_cpu_supports("fma"))
    all.push_back(avx2Kernels());
  if (avx512Kernels() && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bf16"))
    all.push_back(avx512Kernels());
#endif
  return all;
}

TEST(RuntimeKernels, PanelsMatchPlainSums) {
  for (const Kernels *k : variants()) {
    for (int64_t depth : {1, 7, 64, 129}) {
      for (int rows = 1; rows <= kMaxTileRows; rows += 3) {
        std::vector<float> a = randomVector(rows * depth, depth + rows);
        std::vector<float> w = randomVector(kPanel * depth, 7 * depth);
        std::vector<float> packed(packedElements(kPanel, depth, MOE_DTYPE_F32));
        packPanels(w.data(), MOE_DTYPE_F32, 1, kPanel, depth, 0,
                   packed.data(), MOE_DTYPE_F32);
        std::vector<const float *> rowPtrs;
        for (int m = 0; m < rows; ++m)
          rowPtrs.push_back(a.data() + m * depth);
        // The reduction in two blocks, the second one accumulating (an
        // even split, as bf16 pairs need).
        int64_t split = (depth / 2) & ~int64_t(1);
        auto offset = [](auto ptrs, int64_t by) {
          for (auto &p : ptrs)
            p += by;
          return ptrs;
        };
        auto run = [&](PanelFn fn, auto ptrs, const void *panel,
                       int64_t depthPart, float *c, bool accumulate) {
          std::vector<const void *> untyped(ptrs.begin(), ptrs.end());
          Tile tile;
          tile.rows = untyped.data();
          tile.numRows = rows;
          tile.panel = panel;
          tile.k = depthPart;
          tile.c = c;
          tile.ldc = kPanel;
          tile.accumulate = accumulate;
          tile.prefetch = reinterpret_cast<const char *>(panel);
          tile.prefetchStep = 64;
          fn(tile);
        };
        std::vector<float> c(rows * kPanel);
        run(k->panelF32, rowPtrs, packed.data(), split, c.data(), false);
        run(k->panelF32, offset(rowPtrs, split),
            packed.data() + split * kPanel, depth - split, c.data(),
            split > 0);
        // bf16 operands: the same sums over bf16-rounded values.
        std::vector<uint16_t> a16(a.size());
        for (size_t i = 0; i < a.size(); ++i)
          a16[i] = toBF16(a[i]);
        std::vector<uint16_t> packed16(
            packedElements(kPanel, depth, MOE_DTYPE_BF16));
        packPanels(w.data(), MOE_DTYPE_F32, 1, kPanel, depth, 0,
                   packed16.data(), MOE_DTYPE_BF16);
        std::vector<const uint16_t *> rowPtrs16;
        for (int m = 0; m < rows; ++m)
          rowPtrs16.push_back(a16.data() + m * depth);
        std::vector<float> c16(rows * kPanel);
        run(k->panelBF16, rowPtrs16, packed16.data(), split, c16.data(),
            false);
        run(k->panelBF16, offset(rowPtrs16, split),
            packed16.data() + split * kPanel, depth - split, c16.data(),
            split > 0);
        // The same rows packed (tile-interleaved), in one call.
        std::vector<float> aPacked(depth * rows);
        std::vector<uint16_t> a16Packed(((depth + 1) / 2) * rows * 2, 0);
        for (int m = 0; m < rows; ++m)
          for (int64_t i = 0; i < depth; ++i) {
            aPacked[i * rows + m] = a[m * depth + i];
            a16Packed[((i / 2) * rows + m) * 2 + i % 2] = a16[m * depth + i];
          }
        std::vector<float> cPacked(rows * kPanel), c16Packed(rows * kPanel);
        for (int bf16 = 0; bf16 < 2; ++bf16) {
          Tile tile;
          tile.packed = bf16 ? static_cast<const void *>(a16Packed.data())
                             : aPacked.data();
          tile.numRows = rows;
          tile.panel = bf16 ? static_cast<const void *>(packed16.data())
                            : packed.data();
          tile.k = depth;
          tile.c = bf16 ? c16Packed.data() : cPacked.data();
          tile.ldc = kPanel;
          (bf16 ? k->panelBF16 : k->panelF32)(tile);
        }
        for (int m = 0; m < rows; ++m)
          for (int j = 0; j < kPanel; ++j) {
            EXPECT_EQ(cPacked[m * kPanel + j], c[m * kPanel + j])
                << k->name << " packed depth " << depth << " rows " << rows;
            EXPECT_NEAR(c16Packed[m * kPanel + j], c16[m * kPanel + j],
                        1e-5 * (1 + std::fabs(c16[m * kPanel + j])))
                << k->name << " packed bf16 depth " << depth << " rows "
                << rows;
          }
        for (int m = 0; m < rows; ++m)
          for (int j = 0; j < kPanel; ++j) {
            double ref = 0, ref16 = 0;
            for (int64_t i = 0; i < depth; ++i) {
              ref += double(a[m * depth + i]) * w[j * depth + i];
              ref16 += double(fromBF16(a16[m * depth + i])) *
                       fromBF16(toBF16(w[j * depth + i]));
            }
            EXPECT_NEAR(c[m * kPanel + j], ref, 1e-4 * (1 + std::fabs(ref)))
                << k->name << " depth " << depth << " rows " << rows;
            EXPECT_NEAR(c16[m * kPanel + j], ref16,
                        1e-4 * (1 + std::fabs(ref16)))
                << k->name << " bf16 depth " << depth << " rows " << rows;
          }
      }
    }
  }
}

TEST(RuntimeKernels, ActivationsMatchScalar) {
  std::vector<float> x = randomVector(100, 3, 8.0f);
  x.push_back(NAN);
  x.push_back(-100.0f);
  x.push_back(100.0f);
  for (const Kernels *k : variants())
    for (Act act : {Act::Silu, Act::GeluTanh, Act::GeluErf, Act::Relu}) {
      std::vector<float> g = x;
      k->activation(act, g.data(), nullptr, g.size());
      for (size_t i = 0; i < x.size(); ++i) {
        float ref = activationScalar(act, x[i]);
        if (std::isnan(ref)) {
          EXPECT_TRUE(std::isnan(g[i])) << k->name;
          continue;
        }
        EXPECT_NEAR(g[i], ref, 2e-6 * (1 + std::fabs(ref)))
            << k->name << " act " << int(act) << " x " << x[i];
      }
    }
}

/// A small routed problem: 3 experts, 2 slots per token, ragged groups.
struct Problem {
  int64_t tokens = 11, hidden = 40, inner = 48, experts = 3, slots = 2;
  std::vector<float> x, gate, up, down, slotWeight;
  std::vector<int32_t> rowToken, slotRow;
  std::vector<int64_t> sizes;

  Problem() {
    x = randomVector(tokens * hidden, 1);
    gate = randomVector(experts * inner * hidden, 2, 0.2f);
    up = randomVector(experts * inner * hidden, 3, 0.2f);
    down = randomVector(experts * hidden * inner, 4, 0.2f);
    slotWeight = randomVector(tokens * slots, 5);
    // Token t goes to experts t % 3 and (t + 1) % 3; rows by expert, in
    // token order.
    sizes.assign(experts, 0);
    std::vector<std::vector<std::pair<int32_t, int32_t>>> groups(experts);
    for (int32_t t = 0; t < tokens; ++t)
      for (int32_t j = 0; j < slots; ++j)
        groups[(t + j) % experts].push_back({t, j});
    slotRow.assign(tokens * slots, -1);
    for (int64_t e = 0; e < experts; ++e) {
      sizes[e] = groups[e].size();
      for (auto [t, j] : groups[e]) {
        slotRow[t * slots + j] = static_cast<int32_t>(rowToken.size());
        rowToken.push_back(t);
      }
    }
  }

  /// y[t] = sum_j w * down(silu(gate x) * up x), in f64.
  std::vector<double> reference() const {
    std::vector<double> y(tokens * hidden, 0.0);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < slots; ++j) {
        int64_t e = (t + j) % experts;
        std::vector<double> h(inner);
        for (int64_t f = 0; f < inner; ++f) {
          double g = 0, u = 0;
          for (int64_t i = 0; i < hidden; ++i) {
            g += double(gate[(e * inner + f) * hidden + i]) *
                 x[t * hidden + i];
            u += double(up[(e * inner + f) * hidden + i]) * x[t * hidden + i];
          }
          h[f] = g / (1 + std::exp(-g)) * u;
        }
        for (int64_t o = 0; o < hidden; ++o) {
          double s = 0;
          for (int64_t f = 0; f < inner; ++f)
            s += down[(e * hidden + o) * inner + f] * h[f];
          y[t * hidden + o] += slotWeight[t * slots + j] * s;
        }
      }
    return y;
  }

  std::vector<float> run(moe_dtype wType) const {
    std::vector<char> pg(packedElements(inner, hidden, wType) * experts * 4),
        pu(pg.size()), pd(packedElements(hidden, inner, wType) * experts * 4);
    packPanels(gate.data(), MOE_DTYPE_F32, experts, inner, hidden,
               inner * hidden, pg.data(), wType);
    packPanels(up.data(), MOE_DTYPE_F32, experts, inner, hidden,
               inner * hidden, pu.data(), wType);
    packPanels(down.data(), MOE_DTYPE_F32, experts, hidden, inner,
               hidden * inner, pd.data(), wType);
    std::vector<float> y(tokens * hidden);
    ExpertFFN p;
    p.x = x.data();
    p.y = y.data();
    p.tokens = tokens;
    p.hidden = hidden;
    p.rowToken = rowToken.data();
    p.rows = rowToken.size();
    p.groupSizes = sizes.data();
    p.experts = experts;
    p.slotRow = slotRow.data();
    p.slotWeight = slotWeight.data();
    p.slots = slots;
    p.wType = wType;
    p.inner = inner;
    p.gate = pg.data();
    p.up = pu.data();
    p.down = pd.data();
    runExpertFFN(p);
    return y;
  }
};

TEST(RuntimeKernels, ExpertFFNMatchesPlainSums) {
  Problem problem;
  std::vector<double> ref = problem.reference();
  double scale = 0;
  for (double v : ref)
    scale = std::max(scale, std::fabs(v));
  for (moe_dtype wType : {MOE_DTYPE_F32, MOE_DTYPE_BF16}) {
    std::vector<float> y = problem.run(wType);
    double tolerance = wType == MOE_DTYPE_F32 ? 1e-5 : 1e-2;
    for (size_t i = 0; i < y.size(); ++i)
      EXPECT_NEAR(y[i], ref[i], tolerance * scale)
          << "dtype " << wType << " at " << i;
  }
}

TEST(RuntimeKernels, ExpertFFNIndependentOfThreadCount) {
  Problem problem;
  setNumThreads(1);
  std::vector<float> one = problem.run(MOE_DTYPE_F32);
  setNumThreads(2);
  std::vector<float> two = problem.run(MOE_DTYPE_F32);
  setNumThreads(3);
  std::vector<float> three = problem.run(MOE_DTYPE_F32);
  setNumThreads(0);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * 4));
  EXPECT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * 4));
}

} // namespace
