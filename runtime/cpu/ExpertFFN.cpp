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
    // Groups past the last row are cut (the reference never reads them).
    offsets.assign(p.experts + 1, 0);
    for (int64_t e = 0; e < p.experts; ++e)
      offsets[e + 1] = std::min(
          p.rows, offsets[e] + std::max<int64_t>(p.groupSizes[e], 0));
  }

  void run() {
    if (p.tokens == 0)
      return;
    // Chunks bound the scratch: about 4096 routed rows at a time. They need
    // the layout of moe.dispatch; any other layout is computed whole.
    int64_t perToken = std::max<int64_t>(p.slots, 1);
    int64_t chunk = std::max<int64_t>(1, 4096 / perToken);
    if (!dispatchLayout())
      chunk = p.tokens;
    allocateScratch(std::min(chunk, p.tokens));
    for (int64_t t0 = 0; t0 < p.tokens; t0 += chunk)
      runChunk(t0, std::min(p.tokens, t0 + chunk));
  }

private:
  void allocateScratch(int64_t chunkTokens) {
    size_t cElem = dtypeBytes(computeType);
    if (p.sharedGate) {
      sharedHidden = allocateAligned(chunkTokens * sharedPad * cElem);
      sharedOut = allocateAligned(chunkTokens * hiddenPad * sizeof(float));
    }
    if (p.xType != computeType)
      converted = allocateAligned(chunkTokens * p.hidden * cElem);
    zeros = allocateAligned(p.hidden * cElem);
    std::memset(zeros.get(), 0, p.hidden * cElem);
  }

  /// Scratch for `rows` routed rows (at most chunk tokens x slots with the
  /// dispatch layout, every row otherwise).
  void reserveRows(int64_t rows) {
    if (rows <= reservedRows)
      return;
    hidden = allocateAligned(rows * innerPad * dtypeBytes(computeType));
    out = allocateAligned(rows * hiddenPad * sizeof(float));
    reservedRows = rows;
  }

  /// Whether the layout is one that moe.dispatch produces: each group's
  /// rows in ascending token order with padding rows (no valid token)
  /// last, and every slot naming a row of its own token. Chunks by token
  /// range rely on it.
  bool dispatchLayout() const {
    for (int64_t e = 0; e < p.experts; ++e) {
      int32_t previous = -1;
      bool padding = false;
      for (int64_t r = offsets[e]; r < offsets[e + 1]; ++r) {
        int32_t token = p.rowToken[r];
        if (token < 0 || token >= p.tokens) {
          padding = true;
          continue;
        }
        if (padding || token < previous)
          return false;
        previous = token;
      }
    }
    for (int64_t t = 0; t < p.tokens; ++t)
      for (int64_t j = 0; j < p.slots; ++j) {
        int32_t row = p.slotRow[t * p.slots + j];
        if (row >= 0 && row < offsets[p.experts] && p.rowToken[row] != t)
          return false;
      }
    return true;
  }

  /// The first row of group e whose token is >= t; padding rows (no valid
  /// token) sort last.
  int64_t lowerBound(int64_t e, int64_t t) const {
    int64_t lo = offsets[e], hi = offsets[e + 1];
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      int32_t token = p.rowToken[mid];
      if (token >= 0 && token < std::min(t, p.tokens))
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
    bool whole = t0 == 0 && t1 == p.tokens;
    for (int64_t e = 0; e < p.experts; ++e) {
      shares[e] = whole ? Share{offsets[e], offsets[e + 1], local}
                        : Share{lowerBound(e, t0), lowerBound(e, t1), local};
      local += shares[e].last - shares[e].first;
    }
    reserveRows(local);
    prepareInput();
    upPhase();
    downPhase();
    combinePhase();
  }

  /// The chunk's hidden states in the compute type, when x has another.
  void prepareInput() {
    size_t xElem = dtypeBytes(p.xType);
    if (p.xType == computeType) {
      input = {static_cast<const char *>(p.x) + chunkFirst * p.hidden * xElem,
               static_cast<int64_t>(p.hidden * xElem)};
      return;
    }
    size_t cElem = dtypeBytes(computeType);
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
          storeF32(converted.get(), computeType, to + i,
                loadF32(p.x, p.xType, from + i));
    });
    input = {static_cast<const char *>(converted.get()),
             static_cast<int64_t>(p.hidden * cElem)};
  }

  /// The input row of `token`; rows without a valid token (padding) read
  /// zeros, as moe.gather gives them.
  const char *inputRow(int64_t token) const {
    if (token < chunkFirst || token >= chunkFirst + chunkTokens)
      return static_cast<const char *>(zeros.get());
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
           (matrix * perMatrix + panel * perPanel) * dtypeBytes(computeType);
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
    size_t cElem = dtypeBytes(computeType);
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
    size_t cElem = dtypeBytes(computeType);
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

  /// The chunk-local row of global row `row`, or -1 if the chunk did not
  /// compute it (a row past every group).
  int64_t localRow(int64_t row) const {
    if (row < 0 || row >= offsets[p.experts])
      return -1;
    int64_t e = std::upper_bound(offsets.begin(), offsets.end(), row) -
                offsets.begin() - 1;
    const Share &s = shares[e];
    if (row < s.first || row >= s.last)
      return -1;
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
          int64_t local = localRow(p.slotRow[token * p.slots + j]);
          if (local < 0)
            continue;
          float w = p.slotWeight ? p.slotWeight[token * p.slots + j] : 1.0f;
          k.axpy(p.hidden, w, rowsOut + local * hiddenPad, acc.data());
        }
        if (p.sharedGate) {
          float gate = 1.0f;
          if (p.sharedGateWeight) {
            float logit = 0.0f;
            for (int64_t i = 0; i < p.hidden; ++i)
              logit += loadF32(p.x, p.xType, token * p.hidden + i) *
                       loadF32(p.sharedGateWeight, p.sharedGateWeightType, i);
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
            storeF32(p.y, p.xType, at + i, acc[i]);
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
  int64_t chunkFirst = 0, chunkTokens = 0, reservedRows = -1;
  Rows input;
  Buffer hidden, out, sharedHidden, sharedOut, converted, zeros;
};

} // namespace

void moe::rt::cpu::runExpertFFN(const ExpertFFN &problem) {
  Runner(problem).run();
}
