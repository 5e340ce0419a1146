//===- UKernels.cpp - the calls that the fast CPU lowering emits ----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// `moe.ukernel "NAME"` becomes a call of moe_rt_ukernel_NAME(args, count)
// with its operands flattened into 64-bit words: each buffer as (address,
// dtype code, rank, sizes...), ins then outs, then the op's configuration
// words. Buffers are dense row-major. The count guards the decoding: a
// mismatch between compiler and runtime stops with a message instead of
// reading garbage.
//
//===----------------------------------------------------------------------===//

#include "EntryPoints.h"
#include "Ops.h"
#include "ThreadPool.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace moe::rt::cpu;

namespace {

struct View {
  void *data = nullptr;
  int64_t code = MOE_UK_F32;
  std::vector<int64_t> sizes;

  int64_t elements() const {
    int64_t n = 1;
    for (int64_t s : sizes)
      n *= s;
    return n;
  }
  bool empty() const { return elements() == 0; }
  int64_t size(size_t i) const { return i < sizes.size() ? sizes[i] : 0; }
  template <typename T>
  T *as() const {
    return empty() ? nullptr : static_cast<T *>(data);
  }
};

[[noreturn]] void mismatch(const char *kernel, const char *what) {
  std::fprintf(stderr,
               "moe runtime: malformed call of ukernel %s (%s); the module "
               "was compiled for another runtime version\n",
               kernel, what);
  std::abort();
}

class Args {
public:
  Args(const char *kernel, const int64_t *words, int64_t count)
      : kernel(kernel), words(words), count(count) {}

  int64_t word() {
    if (at >= count)
      mismatch(kernel, "too few arguments");
    return words[at++];
  }
  View view() {
    View v;
    v.data = reinterpret_cast<void *>(static_cast<intptr_t>(word()));
    v.code = word();
    int64_t rank = word();
    if (rank < 0 || rank > 8)
      mismatch(kernel, "bad rank");
    for (int64_t i = 0; i < rank; ++i)
      v.sizes.push_back(word());
    return v;
  }
  float f32() {
    uint32_t bits = static_cast<uint32_t>(word());
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  void finish() {
    if (at != count)
      mismatch(kernel, "too many arguments");
  }

private:
  const char *kernel;
  const int64_t *words;
  int64_t count, at = 0;
};

moe_dtype floatType(const char *kernel, int64_t code) {
  switch (code) {
  case MOE_UK_F32:
    return MOE_DTYPE_F32;
  case MOE_UK_F16:
    return MOE_DTYPE_F16;
  case MOE_UK_BF16:
    return MOE_DTYPE_BF16;
  default:
    mismatch(kernel, "not a float buffer");
  }
}

} // namespace

/// pack: ins(weights [count?, rows, k]) outs(packed [n]); config: first
/// row, rows.
static void pack(const int64_t *words, int64_t count) {
  Args a("pack", words, count);
  View src = a.view(), dst = a.view();
  int64_t firstRow = a.word(), rows = a.word();
  a.finish();
  size_t rank = src.sizes.size();
  if (rank < 2)
    mismatch("pack", "source rank");
  int64_t k = src.sizes[rank - 1], total = src.sizes[rank - 2];
  int64_t matrices = rank == 3 ? src.sizes[0] : 1;
  moe_dtype from = floatType("pack", src.code), to = floatType("pack", dst.code);
  if (firstRow < 0 || rows < 0 || firstRow + rows > total)
    mismatch("pack", "rows outside the source");
  if (dst.elements() < matrices * packedElements(rows, k, to))
    mismatch("pack", "packed buffer too small");
  const char *base =
      static_cast<const char *>(src.data) + firstRow * k * dtypeBytes(from);
  packPanels(base, from, matrices, rows, k, total * k, dst.data, to);
}

/// gate: ins(x, router, router bias, selection bias, tau) outs(ids,
/// weights); config: routing.
static void gate(const int64_t *words, int64_t count) {
  Args a("gate", words, count);
  View x = a.view(), router = a.view(), routerBias = a.view(),
       selectionBias = a.view(), tau = a.view(), ids = a.view(),
       weights = a.view();
  Gate g;
  g.x = x.data;
  g.xType = floatType("gate", x.code);
  g.tokens = x.size(0);
  g.hidden = x.size(1);
  g.router = router.data;
  g.wType = floatType("gate", router.code);
  g.experts = a.word();
  g.routerBias = routerBias.as<const float>();
  g.selectionBias = selectionBias.as<const float>();
  g.score = a.word();
  g.selection = a.word();
  g.k = a.word();
  g.groups = a.word();
  g.topkGroup = a.word();
  g.groupScore = a.word();
  g.topP = a.f32();
  g.tau = a.f32();
  g.softmaxSelected = a.word();
  g.renormalize = a.word();
  g.scale = a.f32();
  a.finish();
  if (!tau.empty())
    g.tau = *tau.as<const float>();
  g.ids = ids.as<int32_t>();
  g.weights = weights.as<float>();
  if (g.tokens > 0)
    runGate(g);
}

/// expert_ffn: ins(x, row token, group sizes, row weight, slot row, slot
/// weight, gate, up, down, shared gate, shared up, shared down, shared
/// gate weight, base, gate bias, up bias, down bias) outs(y); config: inner
/// size, activation, shared inner size, shared activation, output width,
/// routed scale, the up bias's first column.
static void expertFFN(const int64_t *words, int64_t count) {
  Args a("expert_ffn", words, count);
  View x = a.view(), rowToken = a.view(), groupSizes = a.view(),
       rowWeight = a.view(), slotRow = a.view(), slotWeight = a.view(),
       gate = a.view(), up = a.view(), down = a.view(), sharedGate = a.view(),
       sharedUp = a.view(), sharedDown = a.view(), sharedGateWeight = a.view(),
       base = a.view(), gateBias = a.view(), upBias = a.view(),
       downBias = a.view(), y = a.view();
  ExpertFFN p;
  auto activation = [&] {
    int64_t act = a.word();
    if (act < MOE_UK_SILU || act > MOE_UK_SWIGLU_OAI)
      mismatch("expert_ffn", "unknown activation");
    return static_cast<Act>(act);
  };
  p.inner = a.word();
  p.act = activation();
  p.sharedInner = a.word();
  p.sharedAct = activation();
  p.outWidth = a.word();
  p.routedScale = a.f32();
  int64_t upBiasFirst = a.word();
  a.finish();
  // Biases: f32 [E, n] (gate and up, up from column upBiasFirst) and
  // [E, output width] (down), or none.
  if (!gateBias.empty()) {
    int64_t experts = groupSizes.size(0);
    if (gateBias.code != MOE_UK_F32 || upBias.code != MOE_UK_F32 ||
        downBias.code != MOE_UK_F32 || gateBias.size(0) != experts ||
        upBias.size(0) != experts || downBias.size(0) != experts ||
        gateBias.size(1) < p.inner || upBias.size(1) != gateBias.size(1) ||
        upBiasFirst < 0 || upBiasFirst + p.inner > upBias.size(1) ||
        downBias.size(1) != p.outWidth)
      mismatch("expert_ffn", "expert biases");
    p.gateBias = gateBias.as<const float>();
    p.upBias = upBias.as<const float>() + upBiasFirst;
    p.downBias = downBias.as<const float>();
    p.biasStride = gateBias.size(1);
  }
  if (p.outWidth != y.size(1) || (!sharedGate.empty() && p.outWidth != x.size(1)))
    mismatch("expert_ffn", "output width");
  p.base = base.as<const void>();
  p.x = x.data;
  p.y = y.data;
  p.xType = floatType("expert_ffn", x.code);
  p.tokens = x.size(0);
  p.hidden = x.size(1);
  p.rowToken = rowToken.as<const int32_t>();
  p.rows = rowToken.size(0);
  p.groupSizes = groupSizes.as<const int64_t>();
  p.experts = groupSizes.size(0);
  p.rowWeight = rowWeight.as<const float>();
  p.slotRow = slotRow.as<const int32_t>();
  p.slots = slotRow.size(1);
  p.slotWeight = slotWeight.as<const float>();
  p.wType = floatType("expert_ffn", gate.code);
  p.gate = gate.data;
  p.up = up.as<const void>();
  p.down = down.data;
  if (!sharedGate.empty()) {
    p.sharedGate = sharedGate.data;
    p.sharedUp = sharedUp.data;
    p.sharedDown = sharedDown.data;
    p.sharedGateWeight = sharedGateWeight.as<const void>();
    if (p.sharedGateWeight)
      p.sharedGateWeightType =
          floatType("expert_ffn", sharedGateWeight.code);
  }
  runExpertFFN(p);
}

namespace {
/// The memref<?xi64> descriptor of the argument words.
struct Words {
  int64_t *allocated;
  int64_t *aligned;
  int64_t offset;
  int64_t size;
  int64_t stride;
};
} // namespace

#define MOE_UKERNEL_ENTRY(NAME, FN)                                            \
  extern "C" void _mlir_ciface_moe_rt_ukernel_##NAME(Words *words) {           \
    if (words->stride != 1)                                                    \
      mismatch(#NAME, "strided argument words");                               \
    FN(words->aligned + words->offset, words->size);                           \
  }

MOE_UKERNEL_ENTRY(pack, pack)
MOE_UKERNEL_ENTRY(gate, gate)
MOE_UKERNEL_ENTRY(expert_ffn, expertFFN)

const std::vector<moe::rt::Symbol> &moe::rt::cpu::ukernelEntryPoints() {
#define MOE_SYMBOL(NAME) {#NAME, reinterpret_cast<void *>(&NAME)}
  static const std::vector<Symbol> symbols = {
      MOE_SYMBOL(_mlir_ciface_moe_rt_ukernel_pack),
      MOE_SYMBOL(_mlir_ciface_moe_rt_ukernel_gate),
      MOE_SYMBOL(_mlir_ciface_moe_rt_ukernel_expert_ffn)};
#undef MOE_SYMBOL
  return symbols;
}
