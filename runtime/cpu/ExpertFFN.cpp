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

/// Reduction block of the expert GEMMs: 256 k values of a panel are 32 KB
/// in f32, 16 KB in bf16, and stay in L1 across the row tiles.
constexpr int64_t kBlock = 256;

/// Experts with fewer routed rows read them in place (the gather folded
/// into the GEMM); from this many on, their rows are first packed
/// tile-interleaved, which the micro-kernel reads as one stream: a copy
/// that pays once the rows are reused by many tiles and panels.
constexpr int64_t kPackMinRows = 4;

/// The balanced row tiles of `count` rows: tile t holds [first(t),
/// first(t + 1)), at most `tileRows` rows (32 rows are 11 + 11 + 10).
struct Tiles {
  int64_t count = 0, n = 0;
  Tiles(int64_t count, int tileRows)
      : count(count), n(std::max<int64_t>(1, (count + tileRows - 1) / tileRows)) {}
  int64_t first(int64_t t) const { return t * count / n; }
};

/// Operand A of an expert GEMM: `count` rows, through pointers or packed
/// tile-interleaved (tile t at packed + first(t) * stride elements; see
/// Tile in Kernels.h).
struct RowOperand {
  const char *const *rows = nullptr;
  const char *packed = nullptr;
  int64_t stride = 0;
  int64_t count = 0;
};

class Runner {
public:
  explicit Runner(const ExpertFFN &p) : p(p), k(kernels()) {
    computeType = p.wType;
    innerPad = roundUp(p.inner, kPanel);
    outWidth = p.outWidth > 0 ? p.outWidth : p.hidden;
    outPad = roundUp(outWidth, kPanel);
    sharedPad = roundUp(p.sharedInner, kPanel);
    // AMX multiplies bf16 rows stored row-major, 16 rows and 32 k values
    // at a time (zero padding); the AVX-512 kernels read tile-interleaved
    // rows (see packRows).
    amx = computeType == MOE_DTYPE_BF16 && k.amxBF16;
    rowAlign = amx ? 16 : 1;
    inputStride = amx ? roundUp(p.hidden, 32) : roundUp(p.hidden, 2);
    upPerExpert = packedElements(p.inner, p.hidden, p.wType);
    downPerExpert = packedElements(outWidth, p.inner, p.wType);
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
    chunkTokens = roundUp(chunkTokens, rowAlign);
    if (p.sharedGate) {
      sharedHidden = allocateAligned(chunkTokens * sharedPad * cElem);
      sharedOut = allocateAligned(chunkTokens * outPad * sizeof(float));
    }
    if (p.base)
      baseOut = allocateAligned(chunkTokens * outPad * sizeof(float));
    if (p.sharedGate || p.base)
      sharedInput = allocateAligned(chunkTokens * inputStride * cElem);
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
    size_t cElem = dtypeBytes(computeType);
    hidden = allocateAligned(rows * innerPad * cElem);
    out = allocateAligned(rows * outPad * sizeof(float));
    packedInput = allocateAligned(rows * inputStride * cElem);
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
      local += roundUp(shares[e].last - shares[e].first, rowAlign);
    }
    reserveRows(local);
    prepareInput();
    packPhase();
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

  /// Packs rows[0 .. count) tile by tile into `dst`, tile t at
  /// first(t) * inputStride elements: element (m, i) of a tile of M rows at
  /// [i * M + m] (f32) or [((i / 2) * M + m) * 2 + i % 2] (bf16, a zero
  /// completing an odd hidden size).
  void packRows(const char *const *rows, int64_t count, char *dst) const {
    Tiles tiles(count, k.tileRows);
    for (int64_t t = 0; t < tiles.n; ++t) {
      int64_t r0 = tiles.first(t), M = tiles.first(t + 1) - r0;
      if (computeType == MOE_DTYPE_F32) {
        float *tile = reinterpret_cast<float *>(dst) + r0 * inputStride;
        for (int64_t m = 0; m < M; ++m) {
          const float *src = reinterpret_cast<const float *>(rows[r0 + m]);
          for (int64_t i = 0; i < p.hidden; ++i)
            tile[i * M + m] = src[i];
        }
      } else {
        uint32_t *tile = reinterpret_cast<uint32_t *>(dst) + r0 * inputStride / 2;
        for (int64_t m = 0; m < M; ++m) {
          const uint16_t *src = reinterpret_cast<const uint16_t *>(rows[r0 + m]);
          for (int64_t i = 0; i < p.hidden; i += 2) {
            uint32_t hi = i + 1 < p.hidden ? src[i + 1] : 0;
            tile[(i / 2) * M + m] = src[i] | (hi << 16);
          }
        }
      }
    }
  }

  /// Copies rows[0 .. count) row-major into `dst` (row stride inputStride,
  /// bf16), zeros completing each row and the rows up to a multiple of 16:
  /// the A operand of the AMX products.
  void packRowsAmx(const char *const *rows, int64_t count, char *dst) const {
    uint16_t *out = reinterpret_cast<uint16_t *>(dst);
    for (int64_t m = 0; m < roundUp(count, rowAlign); ++m) {
      uint16_t *row = out + m * inputStride;
      int64_t valid = m < count ? p.hidden : 0;
      if (valid)
        std::memcpy(row, rows[m], valid * 2);
      std::memset(row + valid, 0, (inputStride - valid) * 2);
    }
  }

  /// The input rows of expert e's share (and, as the last item, of the
  /// shared expert and the base: every token of the chunk), packed where
  /// that pays.
  void packPhase() {
    size_t cElem = dtypeBytes(computeType);
    int64_t items = p.experts + (p.sharedGate || p.base ? 1 : 0);
    parallelFor(items, [&](int64_t item) {
      thread_local std::vector<const char *> rows;
      if (item < p.experts) {
        const Share &s = shares[item];
        int64_t count = s.last - s.first;
        if (count == 0 || (!amx && count < kPackMinRows))
          return;
        rows.resize(count);
        for (int64_t m = 0; m < count; ++m)
          rows[m] = inputRow(p.rowToken[s.first + m]);
        char *dst = static_cast<char *>(packedInput.get()) +
                    s.local * inputStride * cElem;
        if (amx)
          packRowsAmx(rows.data(), count, dst);
        else
          packRows(rows.data(), count, dst);
        return;
      }
      rows.resize(chunkTokens);
      for (int64_t t = 0; t < chunkTokens; ++t)
        rows[t] = inputRow(chunkFirst + t);
      char *dst = static_cast<char *>(sharedInput.get());
      if (amx)
        packRowsAmx(rows.data(), chunkTokens, dst);
      else
        packRows(rows.data(), chunkTokens, dst);
    });
  }

  /// c[r, 0:32] = a[r] . panel for r < a.count. The reduction runs in
  /// blocks of kBlock: a panel block stays in L1 while every row tile uses
  /// it. The tiles of a block spread among them the prefetch of the next
  /// block (or of `next`, the stream that follows the panel), so that
  /// memory streams while they compute.
  void gemmPanel(const RowOperand &a, const void *panel, int64_t depth,
                 float *c, int64_t ldc, const void *next = nullptr) const {
    if (a.count == 0)
      return;
    size_t cElem = dtypeBytes(computeType);
    PanelFn kernel = computeType == MOE_DTYPE_F32 ? k.panelF32 : k.panelBF16;
    Tiles tiles(a.count, k.tileRows);
    for (int64_t k0 = 0; k0 < depth; k0 += kBlock) {
      int64_t kb = std::min<int64_t>(kBlock, depth - k0);
      // A block of k0 values starts k0 * 32 elements into a panel in
      // either layout (bf16 pairs: k0 / 2 rows of 64), and k0 * M
      // elements into a packed tile of M rows.
      const char *block =
          static_cast<const char *>(panel) + k0 * kPanel * cElem;
      bool last = k0 + kBlock >= depth;
      const char *following =
          !last ? block + kBlock * kPanel * cElem
                : static_cast<const char *>(next);
      int64_t followingBytes =
          (last ? kBlock : std::min<int64_t>(kBlock, depth - k0 - kBlock)) *
          kPanel * cElem;
      // Lines of the following block per tile, one per k step or more.
      int64_t share = (followingBytes + tiles.n - 1) / tiles.n;
      int64_t step = ((share + kb - 1) / kb + 63) / 64 * 64;
      for (int64_t t = 0; t < tiles.n; ++t) {
        int64_t r0 = tiles.first(t), r1 = tiles.first(t + 1);
        const void *ptrs[kMaxTileRows];
        Tile tile;
        if (a.packed) {
          tile.packed = a.packed + (r0 * a.stride + k0 * (r1 - r0)) * cElem;
        } else {
          for (int64_t m = r0; m < r1; ++m)
            ptrs[m - r0] = a.rows[m] + k0 * cElem;
          tile.rows = ptrs;
        }
        tile.numRows = static_cast<int>(r1 - r0);
        tile.panel = block;
        tile.k = kb;
        tile.c = c + r0 * ldc;
        tile.ldc = ldc;
        tile.accumulate = k0 > 0;
        if (following) {
          tile.prefetch = following + t * share;
          tile.prefetchStep = step;
        }
        kernel(tile);
      }
    }
  }

  const void *panelOf(const void *packed, int64_t matrix, int64_t perMatrix,
                      int64_t panel, int64_t depth) const {
    int64_t perPanel = packedElements(kPanel, depth, computeType);
    return static_cast<const char *>(packed) +
           (matrix * perMatrix + panel * perPanel) * dtypeBytes(computeType);
  }

  /// Per-thread scratch of an up-phase work item.
  struct UpScratch {
    std::vector<float> gate, up;
  };

  /// Columns [32 panel, 32 panel + 32) of the hidden rows act(a . gate) *
  /// (a . up), the rows scaled by `scale` first (apply_weight = input)
  /// when given, stored packed tile by tile (stride `hiddenStride`) for
  /// the down projection. Columns past `inner` come out zero (the panels
  /// are zero there and every activation maps 0 to 0), so the packed
  /// operand needs no other padding.
  void upPanel(UpScratch &scratch, const RowOperand &a, const float *scale,
               Act act, const void *gatePanel, const void *upPanel,
               char *hidden, int64_t hiddenStride, int64_t panel,
               const void *next, const float *gateBias = nullptr,
               const float *upBias = nullptr) const {
    int64_t count = a.count;
    int64_t rowsOut = roundUp(count, rowAlign);
    scratch.gate.resize(rowsOut * kPanel);
    scratch.up.resize(rowsOut * kPanel);
    float *g = scratch.gate.data(), *u = scratch.up.data();
    if (amx) {
      auto product = [&](const void *panelData, float *c, const void *after) {
        AmxProduct prod;
        prod.a = reinterpret_cast<const uint16_t *>(a.packed);
        prod.lda = a.stride;
        prod.m = rowsOut;
        prod.panel = static_cast<const uint16_t *>(panelData);
        prod.k = inputStride;
        prod.c = c;
        prod.ldc = kPanel;
        prod.next = static_cast<const char *>(after);
        k.amxBF16(prod);
      };
      product(gatePanel, g, upPanel ? upPanel : next);
      if (upPanel)
        product(upPanel, u, next);
    } else {
      gemmPanel(a, gatePanel, p.hidden, g, kPanel, upPanel ? upPanel : next);
      if (upPanel)
        gemmPanel(a, upPanel, p.hidden, u, kPanel, next);
    }
    if (scale)
      for (int64_t m = 0; m < count; ++m)
        for (int j = 0; j < kPanel; ++j) {
          g[m * kPanel + j] *= scale[m];
          u[m * kPanel + j] *= scale[m];
        }
    // The biases of the panel's columns past the scaling, on the rows
    // themselves only: columns past `inner` and padding rows stay zero.
    if (gateBias) {
      int64_t width = std::min<int64_t>(kPanel, p.inner - panel * kPanel);
      for (int64_t m = 0; m < count; ++m)
        for (int64_t j = 0; j < width; ++j) {
          g[m * kPanel + j] += gateBias[panel * kPanel + j];
          u[m * kPanel + j] += upBias[panel * kPanel + j];
        }
    }
    k.activation(act, g, upPanel ? u : nullptr, rowsOut * kPanel);
    int64_t col0 = panel * kPanel;
    if (amx) {
      // Row-major bf16, the A operand of the down products.
      for (int64_t m = 0; m < rowsOut; ++m)
        k.toBF16(g + m * kPanel,
                 reinterpret_cast<uint16_t *>(hidden) + m * hiddenStride + col0,
                 kPanel);
      return;
    }
    Tiles tiles(count, k.tileRows);
    for (int64_t t = 0; t < tiles.n; ++t) {
      int64_t r0 = tiles.first(t), M = tiles.first(t + 1) - r0;
      const float *src = g + r0 * kPanel;
      if (computeType == MOE_DTYPE_F32) {
        float *dst = reinterpret_cast<float *>(hidden) + r0 * hiddenStride +
                     col0 * M;
        for (int j = 0; j < kPanel; ++j)
          for (int64_t m = 0; m < M; ++m)
            dst[j * M + m] = src[m * kPanel + j];
      } else {
        uint32_t *dst = reinterpret_cast<uint32_t *>(hidden) +
                        (r0 * hiddenStride + col0 * M) / 2;
        for (int j = 0; j < kPanel; j += 2)
          for (int64_t m = 0; m < M; ++m)
            dst[(j / 2) * M + m] =
                toBF16Scalar(src[m * kPanel + j]) |
                (uint32_t(toBF16Scalar(src[m * kPanel + j + 1])) << 16);
      }
    }
  }

  /// The first panel an up-phase item reads (its gate panel).
  const void *upItemPanel(int64_t item) const {
    int64_t innerPanels = innerPad / kPanel;
    if (item < 0)
      return nullptr;
    if (item < p.experts * innerPanels) {
      int64_t e = item / innerPanels;
      if (shares[e].last == shares[e].first)
        return nullptr;
      return panelOf(p.gate, e, upPerExpert, item % innerPanels, p.hidden);
    }
    return panelOf(p.sharedGate, 0,
                   packedElements(p.sharedInner, p.hidden, computeType),
                   item - p.experts * innerPanels, p.hidden);
  }

  void upPhase() {
    int64_t innerPanels = innerPad / kPanel;
    int64_t sharedPanels = sharedPad / kPanel;
    size_t cElem = dtypeBytes(computeType);
    int64_t items = p.experts * innerPanels + (p.sharedGate ? sharedPanels : 0);
    parallelForAhead(items, [&](int64_t item, int64_t nextItem) {
      thread_local UpScratch scratch;
      thread_local std::vector<const char *> rows;
      const void *next = upItemPanel(nextItem);
      if (item < p.experts * innerPanels) {
        int64_t e = item / innerPanels, panel = item % innerPanels;
        const Share &s = shares[e];
        RowOperand a;
        a.count = s.last - s.first;
        if (amx || a.count >= kPackMinRows) {
          a.packed = static_cast<const char *>(packedInput.get()) +
                     s.local * inputStride * cElem;
          a.stride = inputStride;
        } else {
          rows.resize(a.count);
          for (int64_t m = 0; m < a.count; ++m)
            rows[m] = inputRow(p.rowToken[s.first + m]);
          a.rows = rows.data();
        }
        upPanel(scratch, a, p.rowWeight ? p.rowWeight + s.first : nullptr,
                p.act, panelOf(p.gate, e, upPerExpert, panel, p.hidden),
                p.up ? panelOf(p.up, e, upPerExpert, panel, p.hidden) : nullptr,
                static_cast<char *>(hidden.get()) + s.local * innerPad * cElem,
                innerPad, panel, next,
                p.gateBias ? p.gateBias + e * p.biasStride : nullptr,
                p.upBias ? p.upBias + e * p.biasStride : nullptr);
        return;
      }
      int64_t panel = item - p.experts * innerPanels;
      int64_t sharedPer = packedElements(p.sharedInner, p.hidden, computeType);
      RowOperand a;
      a.count = chunkTokens;
      a.packed = static_cast<const char *>(sharedInput.get());
      a.stride = inputStride;
      upPanel(scratch, a, nullptr, p.sharedAct,
              panelOf(p.sharedGate, 0, sharedPer, panel, p.hidden),
              panelOf(p.sharedUp, 0, sharedPer, panel, p.hidden),
              static_cast<char *>(sharedHidden.get()), sharedPad, panel,
              next);
    });
  }

  /// A down-phase work item: one 32-column panel of the output, for the
  /// rows of a routed expert, of the shared expert, or of the base.
  enum class DownKind { Routed, Shared, Base };
  struct DownItem {
    DownKind kind = DownKind::Routed;
    int64_t expert = 0, panel = 0;
  };

  DownItem downItem(int64_t item) const {
    int64_t panels = outPad / kPanel;
    if (item < p.experts * panels)
      return {DownKind::Routed, item / panels, item % panels};
    item -= p.experts * panels;
    if (p.sharedGate && item < panels)
      return {DownKind::Shared, 0, item};
    return {DownKind::Base, 0, item - (p.sharedGate ? panels : 0)};
  }

  /// The panel that down-phase item `item` reads (null for none).
  const void *downItemPanel(int64_t item) const {
    if (item < 0)
      return nullptr;
    DownItem d = downItem(item);
    switch (d.kind) {
    case DownKind::Routed:
      if (shares[d.expert].last == shares[d.expert].first)
        return nullptr;
      return panelOf(p.down, d.expert, downPerExpert, d.panel, p.inner);
    case DownKind::Shared:
      return panelOf(p.sharedDown, 0,
                     packedElements(outWidth, p.sharedInner, computeType),
                     d.panel, p.sharedInner);
    case DownKind::Base:
      return panelOf(p.base, 0, packedElements(outWidth, p.hidden, computeType),
                     d.panel, p.hidden);
    }
    return nullptr;
  }

  void downPhase() {
    int64_t panels = outPad / kPanel;
    size_t cElem = dtypeBytes(computeType);
    int64_t items = (p.experts + (p.sharedGate ? 1 : 0) + (p.base ? 1 : 0)) *
                    panels;
    parallelForAhead(items, [&](int64_t item, int64_t nextItem) {
      DownItem d = downItem(item);
      RowOperand a;
      float *dst = nullptr;
      int64_t depth = 0, first = 0;
      switch (d.kind) {
      case DownKind::Routed:
        first = shares[d.expert].local;
        a.count = shares[d.expert].last - shares[d.expert].first;
        a.stride = innerPad;
        a.packed = static_cast<const char *>(hidden.get()) +
                   first * a.stride * cElem;
        dst = static_cast<float *>(out.get());
        depth = p.inner;
        break;
      case DownKind::Shared:
        a.count = chunkTokens;
        a.stride = sharedPad;
        a.packed = static_cast<const char *>(sharedHidden.get());
        dst = static_cast<float *>(sharedOut.get());
        depth = p.sharedInner;
        break;
      case DownKind::Base:
        // The input rows themselves, packed with the shared expert's.
        a.count = chunkTokens;
        a.stride = inputStride;
        a.packed = static_cast<const char *>(sharedInput.get());
        dst = static_cast<float *>(baseOut.get());
        depth = p.hidden;
        break;
      }
      float *c = dst + first * outPad + d.panel * kPanel;
      if (amx) {
        if (a.count == 0)
          return;
        AmxProduct prod;
        prod.a = reinterpret_cast<const uint16_t *>(a.packed);
        prod.lda = a.stride;
        prod.m = roundUp(a.count, rowAlign);
        prod.panel = static_cast<const uint16_t *>(downItemPanel(item));
        prod.k = roundUp(depth, 32); // zeros pad both operands
        prod.c = c;
        prod.ldc = outPad;
        prod.next = static_cast<const char *>(downItemPanel(nextItem));
        k.amxBF16(prod);
        return;
      }
      gemmPanel(a, downItemPanel(item), depth, c, outPad,
                downItemPanel(nextItem));
    });
  }

  /// The chunk-local row of global row `row`, or -1 if the chunk did not
  /// compute it (a row past every group); `expert` gets its expert.
  int64_t localRow(int64_t row, int64_t &expert) const {
    if (row < 0 || row >= offsets[p.experts])
      return -1;
    int64_t e = std::upper_bound(offsets.begin(), offsets.end(), row) -
                offsets.begin() - 1;
    const Share &s = shares[e];
    if (row < s.first || row >= s.last)
      return -1;
    expert = e;
    return s.local + row - s.first;
  }

  /// y[t] = routedScale * sum over t's slots, in slot order, of
  /// weight * row + the shared expert + the base, rounded once.
  void combinePhase() {
    const float *rowsOut = static_cast<const float *>(out.get());
    int64_t blocks = (chunkTokens + 7) / 8;
    parallelFor(blocks, [&](int64_t block) {
      std::vector<float> acc(outWidth);
      for (int64_t t = block * 8; t < std::min(chunkTokens, block * 8 + 8);
           ++t) {
        int64_t token = chunkFirst + t;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = 0; j < p.slots; ++j) {
          int64_t e = 0;
          int64_t local = localRow(p.slotRow[token * p.slots + j], e);
          if (local < 0)
            continue;
          float w = p.slotWeight ? p.slotWeight[token * p.slots + j] : 1.0f;
          k.axpy(outWidth, w * p.routedScale, rowsOut + local * outPad,
                 acc.data());
          // The down bias is part of the expert's output: weighted alike.
          if (p.downBias)
            k.axpy(outWidth, w * p.routedScale, p.downBias + e * outWidth,
                   acc.data());
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
          k.axpy(outWidth, gate,
                 static_cast<const float *>(sharedOut.get()) + t * outPad,
                 acc.data());
        }
        if (p.base)
          k.axpy(outWidth, 1.0f,
                 static_cast<const float *>(baseOut.get()) + t * outPad,
                 acc.data());
        int64_t at = token * outWidth;
        if (p.xType == MOE_DTYPE_F32)
          std::memcpy(static_cast<float *>(p.y) + at, acc.data(),
                      outWidth * sizeof(float));
        else if (p.xType == MOE_DTYPE_BF16)
          k.toBF16(acc.data(), static_cast<uint16_t *>(p.y) + at, outWidth);
        else
          for (int64_t i = 0; i < outWidth; ++i)
            storeF32(p.y, p.xType, at + i, acc[i]);
      }
    });
  }

  const ExpertFFN &p;
  const Kernels &k;
  moe_dtype computeType;
  int64_t innerPad, sharedPad, inputStride;
  int64_t outWidth, outPad;
  bool amx = false;
  int64_t rowAlign = 1;
  int64_t upPerExpert, downPerExpert;
  std::vector<int64_t> offsets;
  std::vector<Share> shares;
  int64_t chunkFirst = 0, chunkTokens = 0, reservedRows = -1;
  Rows input;
  Buffer hidden, out, sharedHidden, sharedOut, converted, zeros;
  // Packed (tile-interleaved) input rows of the routed and shared experts.
  Buffer packedInput, sharedInput;
  // The base projection of every chunk token (LoRA's frozen base).
  Buffer baseOut;
};

} // namespace

void moe::rt::cpu::runExpertFFN(const ExpertFFN &problem) {
  Runner(problem).run();
}
