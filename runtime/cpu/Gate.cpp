//===- Gate.cpp - the fused gating ----------------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Router logits, scores, selection and combine weights for a tile of tokens
// at a time: the logits live in a tile-sized buffer, never as a [T, E]
// tensor. The selection follows docs/semantics.md exactly as the reference
// lowering does: picks in descending key order, NaN below every number,
// equal keys to the lower index.
//
//===----------------------------------------------------------------------===//

#include "Ops.h"
#include "ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

using namespace moe::rt::cpu;

namespace {


/// (a, ia) comes before (b, ib): larger key first, NaN last, ties by index.
bool before(float a, int64_t ia, float b, int64_t ib) {
  bool aNan = std::isnan(a), bNan = std::isnan(b);
  if (aNan || bNan)
    return (!aNan && bNan) || (aNan && bNan && ia < ib);
  if (a != b)
    return a > b;
  return ia < ib;
}

struct Pick {
  bool found = false;
  float key = 0.0f;
  int64_t index = -1;
};

/// The first allowed candidate after `previous` in selection order.
template <typename KeyFn, typename AllowedFn>
Pick pickNext(int64_t count, KeyFn key, AllowedFn allowed,
              const Pick *previous) {
  Pick best;
  for (int64_t i = 0; i < count; ++i) {
    if (!allowed(i))
      continue;
    float k = key(i);
    if (previous && !before(previous->key, previous->index, k, i))
      continue;
    if (!best.found || before(k, i, best.key, best.index))
      best = {true, k, i};
  }
  return best;
}

void scores(const Gate &g, const float *z, float *s) {
  int64_t e = g.experts;
  switch (g.score) {
  case MOE_UK_SOFTMAX: {
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < e; ++i)
      max = (std::isnan(z[i]) || std::isnan(max)) ? NAN : std::max(max, z[i]);
    float sum = 0.0f;
    for (int64_t i = 0; i < e; ++i) {
      s[i] = std::exp(z[i] - max);
      sum += s[i];
    }
    for (int64_t i = 0; i < e; ++i)
      s[i] /= sum;
    return;
  }
  case MOE_UK_SIGMOID:
    for (int64_t i = 0; i < e; ++i)
      s[i] = 1.0f / (1.0f + std::exp(-z[i]));
    return;
  case MOE_UK_SQRT_SOFTPLUS:
    for (int64_t i = 0; i < e; ++i) {
      float pos = std::isnan(z[i]) ? z[i] : std::max(z[i], 0.0f);
      s[i] = std::sqrt(pos + std::log1p(std::exp(-std::fabs(z[i]))));
    }
    return;
  default:
    std::copy(z, z + e, s);
  }
}

/// Selection and weights of one token from its logits z [E].
void route(const Gate &g, const float *z, float *s, float *keys,
           std::vector<float> &groupScore, int32_t *ids, float *weights) {
  int64_t e = g.experts, k = g.k;
  scores(g, z, s);
  for (int64_t i = 0; i < e; ++i)
    keys[i] = g.selectionBias ? s[i] + g.selectionBias[i] : s[i];

  // grouped_top_k: experts of groups after the last kept group are out.
  Pick lastGroup;
  int64_t groupSize = e / std::max<int64_t>(g.groups, 1);
  bool grouped = g.selection == MOE_UK_GROUPED_TOP_K;
  if (grouped) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      float best = NAN, second = NAN;
      for (int64_t j = 0; j < groupSize; ++j) {
        float x = keys[grp * groupSize + j];
        if (before(x, 0, best, 1)) {
          second = best;
          best = x;
        } else if (before(x, 0, second, 1)) {
          second = x;
        }
      }
      groupScore[grp] = g.groupScore == MOE_UK_GROUP_SUM_TOP2 ? best + second : best;
    }
    Pick chain{true, std::numeric_limits<float>::infinity(), -1};
    for (int64_t i = 0; i < g.topkGroup; ++i)
      chain = pickNext(
          g.groups, [&](int64_t grp) { return groupScore[grp]; },
          [](int64_t) { return true; }, &chain);
    lastGroup = chain;
  }
  auto allowed = [&](int64_t expert) {
    if (!grouped)
      return true;
    int64_t grp = expert / groupSize;
    return grp == lastGroup.index ||
           before(groupScore[grp], grp, lastGroup.key, lastGroup.index);
  };

  Pick previous{true, std::numeric_limits<float>::infinity(), -1};
  for (int64_t j = 0; j < k; ++j) {
    Pick pick = pickNext(
        e, [&](int64_t i) { return keys[i]; }, allowed, &previous);
    ids[j] = pick.found ? static_cast<int32_t>(pick.index) : -1;
    previous = pick;
  }

  // top_p and threshold leave slots unused.
  float taken = 0.0f;
  bool taking = true;
  for (int64_t j = 0; j < k; ++j) {
    if (ids[j] < 0)
      continue;
    float sj = s[ids[j]];
    bool keep = true;
    if (g.selection == MOE_UK_TOP_P) {
      taking = taking && taken < g.topP;
      keep = j == 0 || taking;
    } else if (g.selection == MOE_UK_THRESHOLD) {
      keep = j == 0 || !(sj < g.tau);
    }
    if (!keep)
      ids[j] = -1;
    else
      taken += sj;
  }

  // Weights: raw (scores, or softmax over the kept logits), renormalized,
  // scaled.
  float sum = 0.0f;
  if (g.softmaxSelected) {
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < k; ++j)
      if (ids[j] >= 0)
        max = (std::isnan(z[ids[j]]) || std::isnan(max))
                  ? NAN
                  : std::max(max, z[ids[j]]);
    float expSum = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      weights[j] = ids[j] >= 0 ? std::exp(z[ids[j]] - max) : 0.0f;
      expSum += weights[j];
    }
    for (int64_t j = 0; j < k; ++j) {
      weights[j] = ids[j] >= 0 ? weights[j] / expSum : 0.0f;
      sum += weights[j];
    }
  } else {
    for (int64_t j = 0; j < k; ++j) {
      weights[j] = ids[j] >= 0 ? s[ids[j]] : 0.0f;
      sum += weights[j];
    }
  }
  float denominator = sum + 1e-20f;
  for (int64_t j = 0; j < k; ++j) {
    if (ids[j] < 0)
      continue;
    float w = weights[j];
    if (g.renormalize)
      w /= denominator;
    weights[j] = w * g.scale;
  }
}

} // namespace

void moe::rt::cpu::runGate(const Gate &g) {
  const Kernels &k = kernels();
  int tileRows = k.tileRows;
  int64_t panels = (g.experts + kPanel - 1) / kPanel;
  int64_t ePad = panels * kPanel;
  int64_t perPanel = packedElements(kPanel, g.hidden, g.wType);
  size_t wElem = g.wType == MOE_DTYPE_F32 ? 4 : 2;
  bool direct = g.xType == g.wType;
  int64_t tiles = (g.tokens + tileRows - 1) / tileRows;
  parallelFor(tiles, [&](int64_t tileIndex) {
    int64_t t0 = tileIndex * tileRows;
    int n = static_cast<int>(std::min<int64_t>(tileRows, g.tokens - t0));
    // Rows in the weights' type: in place, or converted.
    std::vector<char> converted;
    const char *rows[kMaxTileRows];
    if (direct) {
      for (int m = 0; m < n; ++m)
        rows[m] = static_cast<const char *>(g.x) + (t0 + m) * g.hidden * wElem;
    } else {
      converted.resize(n * g.hidden * wElem);
      for (int m = 0; m < n; ++m)
        for (int64_t i = 0; i < g.hidden; ++i) {
          float v = loadF32(g.x, g.xType, (t0 + m) * g.hidden + i);
          if (g.wType == MOE_DTYPE_F32)
            std::memcpy(&converted[(m * g.hidden + i) * 4], &v, 4);
          else {
            uint16_t h = toBF16Scalar(v);
            std::memcpy(&converted[(m * g.hidden + i) * 2], &h, 2);
          }
        }
      for (int m = 0; m < n; ++m)
        rows[m] = converted.data() + m * g.hidden * wElem;
    }
    std::vector<float> logits(n * ePad);
    for (int64_t q = 0; q < panels; ++q) {
      const char *panel =
          static_cast<const char *>(g.router) + q * perPanel * wElem;
      Tile tile;
      tile.rows = reinterpret_cast<const void *const *>(rows);
      tile.numRows = n;
      tile.panel = panel;
      tile.k = g.hidden;
      tile.c = logits.data() + q * kPanel;
      tile.ldc = ePad;
      (g.wType == MOE_DTYPE_F32 ? k.panelF32 : k.panelBF16)(tile);
    }
    std::vector<float> s(g.experts), keys(g.experts),
        groupScore(std::max<int64_t>(g.groups, 1));
    for (int m = 0; m < n; ++m) {
      float *z = logits.data() + m * ePad;
      if (g.routerBias)
        for (int64_t i = 0; i < g.experts; ++i)
          z[i] += g.routerBias[i];
      route(g, z, s.data(), keys.data(), groupScore,
            g.ids + (t0 + m) * g.k, g.weights + (t0 + m) * g.k);
    }
  });
}
