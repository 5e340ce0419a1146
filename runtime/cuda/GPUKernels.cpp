//===- GPUKernels.cpp - The C API of libmoe_gpu_kernels --------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Checks the arguments of moe_gpu_kernels.h and calls the entry points that
// kernels/entry_points.mlir compiles to, with MLIR's C interface: a memref
// is a pointer to its descriptor.
//
//===----------------------------------------------------------------------===//

#include "moe_cuda.h"
#include "moe_gpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace {

/// MLIR's ranked memref descriptor.
template <int Rank> struct MemRef {
  const void *allocated;
  const void *aligned;
  int64_t offset;
  int64_t sizes[Rank];
  int64_t strides[Rank];
};

/// The descriptor of a dense row-major array at `data`.
template <int Rank>
MemRef<Rank> dense(const void *data, const int64_t (&sizes)[Rank]) {
  MemRef<Rank> m{data, data, 0, {}, {}};
  int64_t stride = 1;
  for (int i = Rank - 1; i >= 0; --i) {
    m.sizes[i] = sizes[i];
    m.strides[i] = stride;
    stride *= sizes[i];
  }
  return m;
}

/// The gate projection [E, f, d], or the fused gate_up [E, 2f, d] when
/// up_w is the same pointer.
MemRef<3> gateWeight(const void *gate, const void *up, int64_t e, int64_t f,
                     int64_t d) {
  return dense<3>(gate, {e, gate == up ? 2 * f : f, d});
}

/// The up projection [E, f, d]; the fused gate_up [E, 2f, d] (the library
/// reads its up rows from row f) when it is the gate pointer; or an empty
/// array for plain MLP experts (up_w NULL), which the library tests by its
/// first size.
MemRef<3> upWeight(const void *gate, const void *up, int64_t e, int64_t f,
                   int64_t d) {
  if (!up)
    return dense<3>(nullptr, {0, 0, 0});
  return dense<3>(up, {e, gate == up ? 2 * f : f, d});
}

thread_local std::string lastError;

int fail(const std::string &message) {
  lastError = message;
  return -1;
}

/// The first problem with `dims`, or "": of a layer with `slots` slots per
/// token, or (not `layer`) of the experts alone, one row each and no top_k.
std::string checkDims(const moe_gpu_layer_dims *dims, bool layer,
                      int64_t slots) {
  if (!dims)
    return "dims is NULL";
  auto value = [](const char *name, int64_t v) {
    return std::string(name) + " = " + std::to_string(v);
  };
  if (dims->tokens < 0)
    return "expected tokens >= 0, found " + value("tokens", dims->tokens);
  if (dims->hidden <= 0 || dims->hidden % 8)
    return "expected a hidden size that is a positive multiple of 8, found " +
           value("hidden", dims->hidden);
  if (dims->ffn <= 0 || dims->ffn % 8)
    return "expected an ffn size that is a positive multiple of 8, found " +
           value("ffn", dims->ffn);
  if (dims->experts < 1 || dims->experts > MOE_GPU_MAX_EXPERTS)
    return "expected 1 <= experts <= " + std::to_string(MOE_GPU_MAX_EXPERTS) +
           ", found " + value("experts", dims->experts);
  if (dims->activation < MOE_GPU_ACT_SILU ||
      dims->activation > MOE_GPU_ACT_SWIGLU_OAI)
    return "expected a moe_gpu_activation, found " +
           value("activation", dims->activation);
  if (layer && (dims->top_k < 1 || dims->top_k > dims->experts))
    return "expected 1 <= top_k <= experts (" + std::to_string(dims->experts) +
           "), found " + value("top_k", dims->top_k);
  // Slots, rows and tokens are 32-bit on the device (grids past 65535
  // blocks in y go on in z).
  if (dims->tokens > INT32_MAX / std::max<int64_t>(slots, 1))
    return "expected tokens * slots below 2^31 (32-bit indices on the "
           "device), found " +
           value("tokens", dims->tokens) + " with " + std::to_string(slots) +
           " slots per token";
  return "";
}

/// The first problem with `r` for E experts and k slots, or "".
std::string checkRouting(const moe_gpu_routing &r, int64_t e, int64_t k) {
  auto bad = [](const char *what, double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", v);
    return std::string(what) + ", found " + buf;
  };
  if (r.score < MOE_GPU_SCORE_SOFTMAX || r.score > MOE_GPU_SCORE_LOGITS)
    return bad("expected a moe_gpu_score as score", r.score);
  if (r.selection < MOE_GPU_SELECT_TOP_K ||
      r.selection > MOE_GPU_SELECT_EXPERT_CHOICE)
    return bad("expected a moe_gpu_selection as selection", r.selection);
  if (!std::isfinite(r.scale))
    return bad("expected a finite scale", r.scale);
  if (r.selection == MOE_GPU_SELECT_TOP_P &&
      !(r.threshold > 0.0f && r.threshold <= 1.0f))
    return bad("expected top_p's threshold in (0, 1]", r.threshold);
  if (r.selection == MOE_GPU_SELECT_EXPERT_CHOICE &&
      r.score != MOE_GPU_SCORE_SOFTMAX)
    return bad("expected softmax scores with expert_choice", r.score);
  if (r.selection == MOE_GPU_SELECT_EXPERT_CHOICE && r.capacity < 0)
    return bad("expected an expert_choice capacity >= 0",
               static_cast<double>(r.capacity));
  if (r.selection != MOE_GPU_SELECT_EXPERT_CHOICE && r.capacity < 0)
    return bad("expected a capacity >= 0 (0: dropless)",
               static_cast<double>(r.capacity));
  if (r.selection != MOE_GPU_SELECT_EXPERT_CHOICE && r.capacity > 0 &&
      (r.drop_order < MOE_GPU_DROP_CHOICE_MAJOR ||
       r.drop_order > MOE_GPU_DROP_SCORE))
    return bad("expected a moe_gpu_drop_order as drop_order", r.drop_order);
  if (r.selection == MOE_GPU_SELECT_THRESHOLD && std::isnan(r.threshold))
    return "expected a threshold tau, found NaN";
  if (r.selection == MOE_GPU_SELECT_GROUPED_TOP_K) {
    if (r.groups < 1 || e % r.groups)
      return "expected groups that divide the " + std::to_string(e) +
             " experts, found groups = " + std::to_string(r.groups);
    if (r.topk_group < 1 || r.topk_group > r.groups)
      return "expected 1 <= topk_group <= groups, found topk_group = " +
             std::to_string(r.topk_group);
    int64_t size = e / r.groups;
    if (r.group_score_sum_top2 && size < 2)
      return "group_score_sum_top2 needs at least 2 experts per group, "
             "found " +
             std::to_string(size);
    if (k > r.topk_group * size)
      return "expected top_k <= topk_group * experts / groups = " +
             std::to_string(r.topk_group * size) +
             ", found top_k = " + std::to_string(k);
  }
  return "";
}

std::string checkPointers(std::initializer_list<const void *> pointers,
                          std::initializer_list<const char *> names) {
  auto name = names.begin();
  for (const void *p : pointers) {
    if (!p)
      return std::string(*name) + " is NULL";
    if (reinterpret_cast<uintptr_t>(p) % 16)
      return std::string(*name) + " is not 16-byte aligned";
    ++name;
  }
  return "";
}

} // namespace

extern "C" {
void *_mlir_ciface_moe_gpu_layer_async(
    MemRef<2> *x, MemRef<2> *routerW, MemRef<1> *routerBias,
    MemRef<1> *selectionBias, MemRef<3> *gateW, MemRef<3> *upW,
    MemRef<3> *downW, MemRef<2> *gateBias, MemRef<2> *upBias,
    MemRef<2> *downBias, MemRef<3> *sharedGate, MemRef<3> *sharedUp,
    MemRef<3> *sharedDown, MemRef<2> *sharedGateVector, int64_t k,
    int32_t score, int32_t selection, int32_t flags, float scale, float param,
    int64_t groups, int64_t topkGroup, int32_t groupScore, int64_t capacity,
    MemRef<1> *offsets, MemRef<1> *dropped, MemRef<2> *y, void *stream);
void *_mlir_ciface_moe_gpu_lora_layer_async(
    MemRef<2> *x, MemRef<2> *routerW, MemRef<1> *routerBias,
    MemRef<1> *selectionBias, MemRef<3> *gateW, MemRef<3> *upW,
    MemRef<3> *downW, MemRef<3> *gateA, MemRef<3> *gateB, MemRef<3> *upA,
    MemRef<3> *upB, MemRef<3> *downA, MemRef<3> *downB, MemRef<3> *sharedGate,
    MemRef<3> *sharedUp, MemRef<3> *sharedDown, MemRef<2> *sharedGateVector,
    int64_t k, int32_t score, int32_t selection, int32_t flags, float scale,
    float param, int64_t groups, int64_t topkGroup, int32_t groupScore,
    float loraScale, int64_t capacity, MemRef<1> *offsets, MemRef<1> *dropped,
    MemRef<2> *y, void *stream);
void *_mlir_ciface_moe_gpu_expert_ffn_async(MemRef<2> *x, MemRef<3> *gateW,
                                            MemRef<3> *upW, MemRef<3> *downW,
                                            MemRef<1> *offsets, MemRef<2> *y,
                                            int32_t activation, void *stream);
// libmoe_cuda_runtime.
void mgpuMemset32(void *dst, uint32_t value, size_t count, void *stream);
}

#define MOE_GPU_EXPORT extern "C" __attribute__((visibility("default")))

MOE_GPU_EXPORT moe_gpu_routing moe_gpu_routing_default(void) {
  moe_gpu_routing r{};
  r.score = MOE_GPU_SCORE_SOFTMAX;
  r.selection = MOE_GPU_SELECT_TOP_K;
  r.renormalize = 1;
  r.scale = 1.0f;
  r.groups = 1;
  r.topk_group = 1;
  return r;
}

namespace {

/// The operands of a layer but its experts', checked, as the library's
/// layer functions take them.
struct LayerOperands {
  moe_gpu_routing r;
  MemRef<2> x, routerW, y, sharedGateVector;
  MemRef<1> routerBias, selectionBias, offsets, dropped;
  MemRef<3> sharedGate, sharedUp, sharedDown;
  int64_t slots, groups, topkGroup, capacity;
  int32_t flags;
};

/// Checks the operands of a layer but its experts' (`experts`: their
/// pointers and names), the output y [T, out], and fills `ops`; returns
/// the first problem, or "".
std::string prepareLayer(const moe_gpu_layer_dims *dims,
                         const moe_gpu_routing *routing, const void *x,
                         const void *router_w,
                         std::initializer_list<const void *> experts,
                         std::initializer_list<const char *> expertNames,
                         const moe_gpu_shared_expert *shared, int32_t *offsets,
                         int32_t *dropped, float *y, int64_t out,
                         LayerOperands &ops) {
  moe_gpu_routing r = routing ? *routing : moe_gpu_routing_default();
  // Slots per token: expert_choice fills one per expert.
  bool expertChoice = r.selection == MOE_GPU_SELECT_EXPERT_CHOICE;
  int64_t slots = !dims ? 0 : expertChoice ? dims->experts : dims->top_k;
  std::string error = checkDims(dims, /*layer=*/true, slots);
  if (error.empty())
    error = checkRouting(r, dims->experts, dims->top_k);
  if (error.empty())
    error = checkPointers({router_w}, {"router_w"});
  if (error.empty())
    error = checkPointers(experts, expertNames);
  if (error.empty())
    error = checkPointers({offsets}, {"offsets"});
  if (error.empty() && dims->tokens > 0)
    error = checkPointers({x, y}, {"x", "y"});
  if (error.empty() && reinterpret_cast<uintptr_t>(dropped) % 4)
    error = "dropped is not 4-byte aligned";
  if (error.empty() && shared) {
    if (shared->ffn <= 0 || shared->ffn % 8)
      error = "expected a shared ffn size that is a positive multiple of 8, "
              "found ffn = " +
              std::to_string(shared->ffn);
    else if (out != dims->hidden)
      error = "a shared expert adds [T, hidden] to the output, found an "
              "output of " +
              std::to_string(out) + " columns";
    else
      error =
          checkPointers({shared->gate_w, shared->up_w, shared->down_w},
                        {"shared->gate_w", "shared->up_w", "shared->down_w"});
    if (error.empty() && shared->gate_vector &&
        reinterpret_cast<uintptr_t>(shared->gate_vector) % 2)
      error = "shared->gate_vector is not 2-byte aligned";
  }
  if (!error.empty())
    return error;
  int64_t t = dims->tokens, d = dims->hidden, e = dims->experts;
  ops.r = r;
  ops.slots = slots;
  ops.x = dense<2>(x, {t, d});
  ops.routerW = dense<2>(router_w, {e, d});
  ops.y = dense<2>(y, {t, out});
  // No shared expert: empty arrays (the layer tests their first size).
  int64_t fs = shared ? shared->ffn : 0, ns = shared ? 1 : 0;
  int64_t ng = shared && shared->gate_vector ? 1 : 0;
  ops.sharedGate = dense<3>(shared ? shared->gate_w : nullptr, {ns, fs, d});
  ops.sharedUp = dense<3>(shared ? shared->up_w : nullptr, {ns, fs, d});
  ops.sharedDown = dense<3>(shared ? shared->down_w : nullptr, {ns, d, fs});
  ops.sharedGateVector = dense<2>(ng ? shared->gate_vector : nullptr, {ng, d});
  ops.offsets = dense<1>(offsets, {e + 1});
  ops.dropped = dense<1>(dropped, {dropped ? e : 0});
  // An absent bias: an empty array that the kernel does not read.
  ops.routerBias = dense<1>(r.router_bias, {r.router_bias ? e : 0});
  ops.selectionBias = dense<1>(r.selection_bias, {r.selection_bias ? e : 0});
  ops.flags = (r.renormalize ? 1 : 0) | (r.router_bias ? 2 : 0) |
              (r.selection_bias ? 4 : 0) | (r.softmax_selected ? 8 : 0);
  // A capacity of the dispatch (layer.mlir: bit 16, the drop order in bits
  // 5-6, bit 128 renormalize_after_drop).
  if (!expertChoice && r.capacity > 0)
    ops.flags |=
        16 | (r.drop_order << 5) | (r.renormalize_after_drop ? 128 : 0);
  // The activation: bits 9-10, and bit 4096 for swiglu_oai (code 4).
  ops.flags |= (dims->activation & 3) << 9 | (dims->activation >> 2) << 12;
  if (r.apply_to_input)
    ops.flags |= 2048;
  bool grouped = r.selection == MOE_GPU_SELECT_GROUPED_TOP_K;
  ops.groups = grouped ? r.groups : 1;
  ops.topkGroup = grouped ? r.topk_group : 1;
  ops.capacity = r.capacity > 0 ? r.capacity
                 : expertChoice ? (t * dims->top_k + e - 1) / e
                                : 0;
  return "";
}

/// Runs `enqueue` with the runtime's failures caught (moe_cuda.h): a failed
/// CUDA operation is `fn`'s error (-1) rather than the end of the process.
template <typename Enqueue>
int enqueueCatching(const char *fn, Enqueue enqueue) {
  moe_cuda_catch_begin();
  enqueue();
  char why[1024];
  if (moe_cuda_catch_end(why, sizeof(why)) == 0)
    return 0;
  return fail(std::string(fn) + ": " + why);
}

/// A layer of no tokens: every group is empty, nothing is dropped.
void enqueueEmptyLayer(int64_t experts, int32_t *offsets, int32_t *dropped,
                       void *stream) {
  mgpuMemset32(offsets, 0, static_cast<size_t>(experts + 1), stream);
  if (dropped)
    mgpuMemset32(dropped, 0, static_cast<size_t>(experts), stream);
}

/// The first problem with the gated experts' needs: swiglu_oai and expert
/// biases take gated experts (`up_w`), and the biases come all three.
std::string checkGatedNeeds(const moe_gpu_layer_dims *dims, const void *up_w,
                            const moe_gpu_expert_biases *biases) {
  if (!up_w && dims->activation == MOE_GPU_ACT_SWIGLU_OAI)
    return "swiglu_oai takes gated experts, found up_w = NULL";
  if (!biases)
    return "";
  if (!up_w)
    return "expert biases take gated experts, found up_w = NULL";
  return checkPointers({biases->gate, biases->up, biases->down},
                       {"biases->gate", "biases->up", "biases->down"});
}

/// moe_gpu_layer_enqueue_biased, whose errors `fn` names.
int enqueueLayer(const char *fn, const moe_gpu_layer_dims *dims,
                 const moe_gpu_routing *routing, const void *x,
                 const void *router_w, const void *gate_w, const void *up_w,
                 const void *down_w, const moe_gpu_expert_biases *biases,
                 const moe_gpu_shared_expert *shared, int32_t *offsets,
                 int32_t *dropped, float *y, void *stream) {
  LayerOperands ops;
  std::string error =
      prepareLayer(dims, routing, x, router_w, {gate_w, down_w},
                   {"gate_w", "down_w"}, shared, offsets, dropped, y,
                   dims ? dims->hidden : 0, ops);
  if (error.empty() && up_w)
    error = checkPointers({up_w}, {"up_w"});
  if (error.empty())
    error = checkGatedNeeds(dims, up_w, biases);
  if (!error.empty())
    return fail(std::string(fn) + ": " + error);
  lastError.clear();
  int64_t t = dims->tokens, d = dims->hidden, f = dims->ffn, e = dims->experts;
  if (t == 0)
    return enqueueCatching(
        fn, [&] { enqueueEmptyLayer(e, offsets, dropped, stream); });
  MemRef<3> mg = gateWeight(gate_w, up_w, e, f, d),
            mu = upWeight(gate_w, up_w, e, f, d),
            md = dense<3>(down_w, {e, d, f});
  // The biases, as the weights: a fused gate_up's [E, 2f] as gate and up.
  MemRef<2> bg = dense<2>(nullptr, {0, 0}), bu = bg, bd = bg;
  if (biases) {
    bool fused = biases->gate == biases->up;
    bg = dense<2>(biases->gate, {e, fused ? 2 * f : f});
    bu = dense<2>(biases->up, {e, fused ? 2 * f : f});
    bd = dense<2>(biases->down, {e, d});
  }
  const moe_gpu_routing &r = ops.r;
  return enqueueCatching(fn, [&] {
    _mlir_ciface_moe_gpu_layer_async(
        &ops.x, &ops.routerW, &ops.routerBias, &ops.selectionBias, &mg, &mu,
        &md, &bg, &bu, &bd, &ops.sharedGate, &ops.sharedUp, &ops.sharedDown,
        &ops.sharedGateVector, ops.slots, r.score, r.selection, ops.flags,
        r.scale, r.threshold, ops.groups, ops.topkGroup,
        r.group_score_sum_top2 ? 1 : 0, ops.capacity, &ops.offsets,
        &ops.dropped, &ops.y, stream);
  });
}

} // namespace

MOE_GPU_EXPORT int moe_gpu_layer_enqueue(
    const moe_gpu_layer_dims *dims, const moe_gpu_routing *routing,
    const void *x, const void *router_w, const void *gate_w, const void *up_w,
    const void *down_w, const moe_gpu_shared_expert *shared, int32_t *offsets,
    int32_t *dropped, float *y, void *stream) {
  return enqueueLayer("moe_gpu_layer_enqueue", dims, routing, x, router_w,
                      gate_w, up_w, down_w, /*biases=*/nullptr, shared, offsets,
                      dropped, y, stream);
}

MOE_GPU_EXPORT int moe_gpu_layer_enqueue_biased(
    const moe_gpu_layer_dims *dims, const moe_gpu_routing *routing,
    const void *x, const void *router_w, const void *gate_w, const void *up_w,
    const void *down_w, const moe_gpu_expert_biases *biases,
    const moe_gpu_shared_expert *shared, int32_t *offsets, int32_t *dropped,
    float *y, void *stream) {
  return enqueueLayer("moe_gpu_layer_enqueue_biased", dims, routing, x,
                      router_w, gate_w, up_w, down_w, biases, shared, offsets,
                      dropped, y, stream);
}

MOE_GPU_EXPORT int moe_gpu_lora_layer_enqueue(
    const moe_gpu_layer_dims *dims, const moe_gpu_routing *routing,
    const void *x, const void *router_w, const moe_gpu_lora_experts *lora,
    const moe_gpu_shared_expert *shared, int32_t *offsets, int32_t *dropped,
    float *y, void *stream) {
  const char *fn = "moe_gpu_lora_layer_enqueue";
  if (!lora)
    return fail(std::string(fn) + ": lora is NULL");
  if (lora->rank <= 0 || lora->rank % 8)
    return fail(std::string(fn) +
                ": expected a rank that is a positive multiple of 8, found "
                "rank = " +
                std::to_string(lora->rank));
  if (!std::isfinite(lora->alpha))
    return fail(std::string(fn) + ": expected a finite alpha");
  LayerOperands ops;
  bool gated = lora->gated != 0;
  // lora: the output is the base's d_out = ffn columns.
  int64_t out = !dims ? 0 : gated ? dims->hidden : dims->ffn;
  std::string error =
      gated ? prepareLayer(dims, routing, x, router_w,
                           {lora->gate_w, lora->up_w, lora->down_w,
                            lora->gate_a, lora->gate_b, lora->up_a,
                            lora->up_b, lora->down_a, lora->down_b},
                           {"lora->gate_w", "lora->up_w", "lora->down_w",
                            "lora->gate_a", "lora->gate_b", "lora->up_a",
                            "lora->up_b", "lora->down_a", "lora->down_b"},
                           shared, offsets, dropped, y, out, ops)
            : prepareLayer(dims, routing, x, router_w,
                           {lora->gate_w, lora->gate_a, lora->gate_b},
                           {"lora->gate_w", "lora->gate_a", "lora->gate_b"},
                           shared, offsets, dropped, y, out, ops);
  if (error.empty() && dims->activation == MOE_GPU_ACT_SWIGLU_OAI)
    error = "swiglu_oai takes gated experts that are not LoRA experts";
  if (!error.empty())
    return fail(std::string(fn) + ": " + error);
  lastError.clear();
  int64_t t = dims->tokens, d = dims->hidden, f = dims->ffn, e = dims->experts;
  int64_t rank = lora->rank;
  if (t == 0)
    return enqueueCatching(
        fn, [&] { enqueueEmptyLayer(e, offsets, dropped, stream); });
  MemRef<3> none = dense<3>(nullptr, {0, 0, 0});
  // The frozen projections as one expert each [1, n, m]; lora's base is the
  // gate's, its pair the gate's pair.
  MemRef<3> pg = dense<3>(lora->gate_w, {1, f, d});
  MemRef<3> ag = dense<3>(lora->gate_a, {e, rank, d});
  MemRef<3> bg = dense<3>(lora->gate_b, {e, f, rank});
  MemRef<3> pu = none, pd = none, au = none, bu = none, ad = none, bd = none;
  if (gated) {
    pu = dense<3>(lora->up_w, {1, f, d});
    pd = dense<3>(lora->down_w, {1, d, f});
    au = dense<3>(lora->up_a, {e, rank, d});
    bu = dense<3>(lora->up_b, {e, f, rank});
    ad = dense<3>(lora->down_a, {e, rank, f});
    bd = dense<3>(lora->down_b, {e, d, rank});
  }
  const moe_gpu_routing &r = ops.r;
  return enqueueCatching(fn, [&] {
    _mlir_ciface_moe_gpu_lora_layer_async(
        &ops.x, &ops.routerW, &ops.routerBias, &ops.selectionBias, &pg, &pu,
        &pd, &ag, &bg, &au, &bu, &ad, &bd, &ops.sharedGate, &ops.sharedUp,
        &ops.sharedDown, &ops.sharedGateVector, ops.slots, r.score, r.selection,
        ops.flags, r.scale, r.threshold, ops.groups, ops.topkGroup,
        r.group_score_sum_top2 ? 1 : 0, lora->alpha / static_cast<float>(rank),
        ops.capacity, &ops.offsets, &ops.dropped, &ops.y, stream);
  });
}

MOE_GPU_EXPORT int moe_gpu_expert_ffn_enqueue(const moe_gpu_layer_dims *dims,
                                              const void *x, const void *gate_w,
                                              const void *up_w,
                                              const void *down_w,
                                              const int32_t *offsets, float *y,
                                              void *stream) {
  std::string error = checkDims(dims, /*layer=*/false, /*slots=*/1);
  if (error.empty())
    error = checkPointers({gate_w, down_w, offsets},
                          {"gate_w", "down_w", "offsets"});
  if (error.empty() && up_w)
    error = checkPointers({up_w}, {"up_w"});
  if (error.empty() && dims->tokens > 0)
    error = checkPointers({x, y}, {"x", "y"});
  if (error.empty())
    error = checkGatedNeeds(dims, up_w, /*biases=*/nullptr);
  if (!error.empty())
    return fail("moe_gpu_expert_ffn_enqueue: " + error);
  lastError.clear();
  int64_t n = dims->tokens, d = dims->hidden, f = dims->ffn, e = dims->experts;
  if (n == 0)
    return 0;
  MemRef<2> mx = dense<2>(x, {n, d}), my = dense<2>(y, {n, d});
  MemRef<3> mg = gateWeight(gate_w, up_w, e, f, d),
            mu = upWeight(gate_w, up_w, e, f, d),
            md = dense<3>(down_w, {e, d, f});
  MemRef<1> mo = dense<1>(offsets, {e + 1});
  return enqueueCatching("moe_gpu_expert_ffn_enqueue", [&] {
    _mlir_ciface_moe_gpu_expert_ffn_async(&mx, &mg, &mu, &md, &mo, &my,
                                          dims->activation, stream);
  });
}

MOE_GPU_EXPORT const char *moe_gpu_last_error(void) {
  return lastError.c_str();
}
