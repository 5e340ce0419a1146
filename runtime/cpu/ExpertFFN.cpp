//===- ExpertFFN.cpp - the fused expert computation -----------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Gather, expert FFNs, shared expert and combine, over the grouped layout
// that dispatch built. Tokens are processed in chunks (bounded scratch);
// within a group, rows are in token order, so a chunk's rows are one
// contiguous range per expert. Per chunk:
//
//   1. up: for every (expert, inner panel), each tile of the expert's rows
//      (read in place from x) times the packed gate and up panels, then
//      act(gate) * up: the hidden rows h [rows, inner];
//   2. down: for every (expert, hidden panel), h rows times the down
//      panel: the expert output rows [rows, hidden], in f32;
//   3. combine: each token sums its slots' rows in slot order (weighted,
//      unless the weights were applied to the input), then adds the shared
//      expert's output, and rounds once to the output type.
//
// Every output element is computed by one work item in a fixed order, so
// the result does not depend on the number of threads.
//
//===----------------------------------------------------------------------===//

#include "Ops.h"
#include "ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

using namespace moe::rt::cpu;

namespace {

struct FreeDeleter {
  void operator()(void *p) const { std::free(p); }
};
using Buffer = std::unique_ptr<void, FreeDeleter>;

Buffer allocate(size_t bytes) {
  size_t rounded = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  return Buffer(std::aligned_alloc(64, rounded));
}

float bf16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32ToBF16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if (std::isnan(value))
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  return static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

float f16ToF32(uint16_t h) {
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

uint16_t f32ToF16(float value) {
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

float load(const void *base, moe_dtype type, int64_t i) {
  switch (type) {
  case MOE_DTYPE_F32:
    return static_cast<const float *>(base)[i];
  case MOE_DTYPE_BF16:
    return bf16ToF32(static_cast<const uint16_t *>(base)[i]);
  case MOE_DTYPE_F16:
    return f16ToF32(static_cast<const uint16_t *>(base)[i]);
  }
  return 0.0f;
}

void store(void *base, moe_dtype type, int64_t i, float value) {
  switch (type) {
  case MOE_DTYPE_F32:
    static_cast<float *>(base)[i] = value;
    return;
  case MOE_DTYPE_BF16:
    static_cast<uint16_t *>(base)[i] = f32ToBF16(value);
    return;
  case MOE_DTYPE_F16:
    static_cast<uint16_t *>(base)[i] = f32ToF16(value);
    return;
  }
}

size_t elementSize(moe_dtype type) { return type == MOE_DTYPE_F32 ? 4 : 2; }

int64_t roundUp(int64_t n, int64_t multiple) {
  return (n + multiple - 1) / multiple * multiple;
}

/// A matrix operand of the micro-kernels: rows of `cols` elements of the
/// compute type (f32 or bf16), addressed by pointer.
struct Rows {
  const char *base = nullptr;
  int64_t stride = 0; // bytes
};

/// One expert's share of a chunk: global rows [first, last) of its group,
/// at local rows [local, local + last - first) of the chunk's scratch.
struct Share {
  int64_t first = 0, last = 0, local = 0;
};

class Runner {
public:
  explicit Runner(const ExpertFFN &p) : p(p), k(kernels()) {
    computeType = p.wType;
    innerPad = roundUp(p.inner, kPanel);
    hiddenPad = roundUp(p.hidden, kPanel);
    sharedPad = roundUp(p.sharedInner, kPanel);
    upPerExpert = packedElements(p.inner, p.hidden, p.wType);
    downPerExpert = packedElements(p.hidden, p.inner, p.wType);
    offsets.assign(p.experts + 1, 0);
    for (int64_t e = 0; e < p.experts; ++e)
      offsets[e + 1] = offsets[e] + std::max<int64_t>(p.groupSizes[e], 0);
  }

  void run() {
    if (p.tokens == 0)
      return;
    // Chunks bound the scratch: about 4096 routed rows at a time.
    int64_t perToken = std::max<int64_t>(p.slots, 1);
    int64_t chunk = std::max<int64_t>(1, 4096 / perToken);
    allocateScratch(std::min(chunk, p.tokens));
    for (int64_t t0 = 0; t0 < p.tokens; t0 += chunk)
      runChunk(t0, std::min(p.tokens, t0 + chunk));
  }

private:
  void allocateScratch(int64_t chunkTokens) {
    int64_t maxRows = std::min<int64_t>(p.rows, chunkTokens * p.slots);
    size_t cElem = elementSize(computeType);
    hidden = allocate(maxRows * innerPad * cElem);
    out = allocate(maxRows * hiddenPad * sizeof(float));
    if (p.sharedGate) {
      sharedHidden = allocate(chunkTokens * sharedPad * cElem);
      sharedOut = allocate(chunkTokens * hiddenPad * sizeof(float));
    }
    if (p.xType != computeType)
      converted = allocate(chunkTokens * p.hidden * cElem);
  }

  /// The first row of group e (from `from`) whose token is >= t; padding
  /// rows (token -1) sort last.
  int64_t lowerBound(int64_t e, int64_t t) const {
    int64_t lo = offsets[e], hi = offsets[e + 1];
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      int32_t token = p.rowToken[mid];
      if (token >= 0 && token < t)
        lo = mid + 1;
      else
        hi = mid;
    }
    return lo;
  }

  void runChunk(int64_t t0, int64_t t1) {
    chunkFirst = t0;
    chunkTokens = t1 - t0;
    shares.assign(p.experts, Share());
    int64_t local = 0;
    for (int64_t e = 0; e < p.experts; ++e) {
      shares[e] = {lowerBound(e, t0), lowerBound(e, t1), local};
      local += shares[e].last - shares[e].first;
    }
    prepareInput();
    upPhase();
    downPhase();
    combinePhase();
  }

  /// The chunk's hidden states in the compute type, when x has another.
  void prepareInput() {
    size_t xElem = elementSize(p.xType);
    if (p.xType == computeType) {
      input = {static_cast<const char *>(p.x) + chunkFirst * p.hidden * xElem,
               static_cast<int64_t>(p.hidden * xElem)};
      return;
    }
    size_t cElem = elementSize(computeType);
    parallelFor(chunkTokens, [&](int64_t t) {
      int64_t from = (chunkFirst + t) * p.hidden, to = t * p.hidden;
      if (p.xType == MOE_DTYPE_F32 && computeType == MOE_DTYPE_BF16)
        k.toBF16(static_cast<const float *>(p.x) + from,
                 static_cast<uint16_t *>(converted.get()) + to, p.hidden);
      else if (p.xType == MOE_DTYPE_BF16 && computeType == MOE_DTYPE_F32)
        k.fromBF16(static_cast<const uint16_t *>(p.x) + from,
                   static_cast<float *>(converted.get()) + to, p.hidden);
      else
        for (int64_t i = 0; i < p.hidden; ++i)
          store(converted.get(), computeType, to + i,
                load(p.x, p.xType, from + i));
    });
    input = {static_cast<const char *>(converted.get()),
             static_cast<int64_t>(p.hidden * cElem)};
  }

  const char *inputRow(int64_t token) const {
    return input.base + (token - chunkFirst) * input.stride;
  }

  void tile(const char *const *rows, int numRows, const void *panel,
            int64_t depth, float *c, int64_t ldc) const {
    if (computeType == MOE_DTYPE_F32)
      k.panelF32(reinterpret_cast<const float *const *>(rows), numRows,
                 static_cast<const float *>(panel), depth, c, ldc);
    else
      k.panelBF16(reinterpret_cast<const uint16_t *const *>(rows), numRows,
                  static_cast<const uint16_t *>(panel), depth, c, ldc);
  }

  const void *panelOf(const void *packed, int64_t matrix, int64_t perMatrix,
                      int64_t panel, int64_t depth) const {
    int64_t perPanel = packedElements(kPanel, depth, computeType);
    return static_cast<const char *>(packed) +
           (matrix * perMatrix + panel * perPanel) * elementSize(computeType);
  }

  /// h rows = act(rows x gate) * (rows x up), one panel of 32 columns.
  void upTile(const char *const *rows, const float *scale, int numRows,
              const void *gatePanel, const void *upPanel, char *hidden,
              int64_t hiddenStride, int64_t panel, int64_t inner) const {
    float g[kMaxTileRows * kPanel], u[kMaxTileRows * kPanel];
    tile(rows, numRows, gatePanel, p.hidden, g, kPanel);
    if (upPanel)
      tile(rows, numRows, upPanel, p.hidden, u, kPanel);
    if (scale)
      for (int m = 0; m < numRows; ++m)
        for (int j = 0; j < kPanel; ++j) {
          g[m * kPanel + j] *= scale[m];
          u[m * kPanel + j] *= scale[m];
        }
    k.activation(p.act, g, upPanel ? u : nullptr, numRows * kPanel);
    int64_t width = std::min<int64_t>(kPanel, inner - panel * kPanel);
    for (int m = 0; m < numRows; ++m) {
      char *dst = hidden + m * hiddenStride;
      if (computeType == MOE_DTYPE_F32)
        std::memcpy(reinterpret_cast<float *>(dst) + panel * kPanel,
                    g + m * kPanel, width * sizeof(float));
      else
        k.toBF16(g + m * kPanel,
                 reinterpret_cast<uint16_t *>(dst) + panel * kPanel, width);
    }
  }

  void upPhase() {
    int64_t innerPanels = innerPad / kPanel;
    int64_t sharedPanels = sharedPad / kPanel;
    size_t cElem = elementSize(computeType);
    int64_t items = p.experts * innerPanels + (p.sharedGate ? sharedPanels : 0);
    int tileRows = k.tileRows;
    parallelFor(items, [&](int64_t item) {
      const char *rows[kMaxTileRows];
      float scale[kMaxTileRows];
      if (item < p.experts * innerPanels) {
        int64_t e = item / innerPanels, panel = item % innerPanels;
        const Share &s = shares[e];
        const void *gatePanel = panelOf(p.gate, e, upPerExpert, panel, p.hidden);
        const void *upPanel =
            p.up ? panelOf(p.up, e, upPerExpert, panel, p.hidden) : nullptr;
        for (int64_t r = s.first; r < s.last; r += tileRows) {
          int n = static_cast<int>(std::min<int64_t>(tileRows, s.last - r));
          for (int m = 0; m < n; ++m) {
            rows[m] = inputRow(p.rowToken[r + m]);
            scale[m] = p.rowWeight ? p.rowWeight[r + m] : 1.0f;
          }
          char *dst = static_cast<char *>(hidden.get()) +
                      (s.local + r - s.first) * innerPad * cElem;
          upTile(rows, p.rowWeight ? scale : nullptr, n, gatePanel, upPanel,
                 dst, innerPad * cElem, panel, p.inner);
        }
        return;
      }
      int64_t panel = item - p.experts * innerPanels;
      int64_t sharedPer = packedElements(p.sharedInner, p.hidden, computeType);
      const void *gatePanel =
          panelOf(p.sharedGate, 0, sharedPer, panel, p.hidden);
      const void *upPanel = panelOf(p.sharedUp, 0, sharedPer, panel, p.hidden);
      for (int64_t t = 0; t < chunkTokens; t += tileRows) {
        int n = static_cast<int>(std::min<int64_t>(tileRows, chunkTokens - t));
        for (int m = 0; m < n; ++m)
          rows[m] = inputRow(chunkFirst + t + m);
        char *dst = static_cast<char *>(sharedHidden.get()) +
                    t * sharedPad * cElem;
        upTile(rows, nullptr, n, gatePanel, upPanel, dst, sharedPad * cElem,
               panel, p.sharedInner);
      }
    });
  }

  void downPhase() {
    int64_t hiddenPanels = hiddenPad / kPanel;
    size_t cElem = elementSize(computeType);
    int64_t items = p.experts * hiddenPanels + (p.sharedGate ? hiddenPanels : 0);
    int tileRows = k.tileRows;
    parallelFor(items, [&](int64_t item) {
      const char *rows[kMaxTileRows];
      bool shared = item >= p.experts * hiddenPanels;
      int64_t e = shared ? 0 : item / hiddenPanels;
      int64_t panel = shared ? item - p.experts * hiddenPanels
                             : item % hiddenPanels;
      int64_t depth = shared ? p.sharedInner : p.inner;
      int64_t depthPad = shared ? sharedPad : innerPad;
      const void *downPanel =
          shared ? panelOf(p.sharedDown, 0,
                           packedElements(p.hidden, p.sharedInner,
                                          computeType),
                           panel, p.sharedInner)
                 : panelOf(p.down, e, downPerExpert, panel, p.inner);
      int64_t first = shared ? 0 : shares[e].local;
      int64_t count = shared ? chunkTokens : shares[e].last - shares[e].first;
      const char *source = static_cast<const char *>(
          shared ? sharedHidden.get() : hidden.get());
      float *dst = static_cast<float *>(shared ? sharedOut.get() : out.get());
      for (int64_t r = 0; r < count; r += tileRows) {
        int n = static_cast<int>(std::min<int64_t>(tileRows, count - r));
        for (int m = 0; m < n; ++m)
          rows[m] = source + (first + r + m) * depthPad * cElem;
        tile(rows, n, downPanel, depth,
             dst + (first + r) * hiddenPad + panel * kPanel, hiddenPad);
      }
    });
  }

  /// The chunk-local row of global row `row`.
  int64_t localRow(int64_t row) const {
    int64_t e = std::upper_bound(offsets.begin(), offsets.end(), row) -
                offsets.begin() - 1;
    const Share &s = shares[e];
    return s.local + row - s.first;
  }

  void combinePhase() {
    const float *rowsOut = static_cast<const float *>(out.get());
    int64_t blocks = (chunkTokens + 7) / 8;
    parallelFor(blocks, [&](int64_t block) {
      std::vector<float> acc(p.hidden);
      for (int64_t t = block * 8; t < std::min(chunkTokens, block * 8 + 8);
           ++t) {
        int64_t token = chunkFirst + t;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = 0; j < p.slots; ++j) {
          int32_t row = p.slotRow[token * p.slots + j];
          if (row < 0 || row >= p.rows)
            continue;
          float w = p.slotWeight ? p.slotWeight[token * p.slots + j] : 1.0f;
          k.axpy(p.hidden, w, rowsOut + localRow(row) * hiddenPad,
                 acc.data());
        }
        if (p.sharedGate) {
          float gate = 1.0f;
          if (p.sharedGateWeight) {
            float logit = 0.0f;
            for (int64_t i = 0; i < p.hidden; ++i)
              logit += load(p.x, p.xType, token * p.hidden + i) *
                       load(p.sharedGateWeight, p.xType, i);
            gate = 1.0f / (1.0f + std::exp(-logit));
          }
          k.axpy(p.hidden, gate,
                 static_cast<const float *>(sharedOut.get()) + t * hiddenPad,
                 acc.data());
        }
        int64_t at = token * p.hidden;
        if (p.xType == MOE_DTYPE_F32)
          std::memcpy(static_cast<float *>(p.y) + at, acc.data(),
                      p.hidden * sizeof(float));
        else if (p.xType == MOE_DTYPE_BF16)
          k.toBF16(acc.data(), static_cast<uint16_t *>(p.y) + at, p.hidden);
        else
          for (int64_t i = 0; i < p.hidden; ++i)
            store(p.y, p.xType, at + i, acc[i]);
      }
    });
  }

  const ExpertFFN &p;
  const Kernels &k;
  moe_dtype computeType;
  int64_t innerPad, hiddenPad, sharedPad;
  int64_t upPerExpert, downPerExpert;
  std::vector<int64_t> offsets;
  std::vector<Share> shares;
  int64_t chunkFirst = 0, chunkTokens = 0;
  Rows input;
  Buffer hidden, out, sharedHidden, sharedOut, converted;
};

} // namespace

void moe::rt::cpu::runExpertFFN(const ExpertFFN &problem) {
  Runner(problem).run();
}
