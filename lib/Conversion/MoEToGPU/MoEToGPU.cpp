//===- MoEToGPU.cpp - moe.layer to calls of the CUDA kernel library -------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// convert-moe-to-gpu-kernels: each supported moe.layer becomes a call of
// @moe_layer of lib/GPU/Kernels (router -> dispatch -> expert FFN ->
// combine on one stream), on buffers, before bufferization. The host
// function is declared here and defined by moe-link-gpu-kernels.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "moe/IR/MoEOps.h"

#include "../MoEToLinalg/LoweringUtils.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llvm/ADT/SetVector.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOGPUKERNELS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct ConvertMoEToGPUKernelsPass
    : public moe::impl::ConvertMoEToGPUKernelsBase<ConvertMoEToGPUKernelsPass> {
  using ConvertMoEToGPUKernelsBase::ConvertMoEToGPUKernelsBase;
  void runOnOperation() override;
};

} // namespace

// The library's codes of the drop order and the activation are the
// dialect's enum values.
static_assert(static_cast<int>(DropOrder::ChoiceMajor) == 0 &&
                  static_cast<int>(DropOrder::TokenMajor) == 1 &&
                  static_cast<int>(DropOrder::Score) == 2,
              "drop order codes of lib/GPU/Kernels/layer.mlir");
static_assert(static_cast<int>(Activation::Silu) == 0 &&
                  static_cast<int>(Activation::GeluTanh) == 1 &&
                  static_cast<int>(Activation::GeluErf) == 2 &&
                  static_cast<int>(Activation::Relu) == 3,
              "activation codes of lib/GPU/Kernels/experts.mlir");

static constexpr const char *supportedConfig =
    "moe-cuda-pipeline supports moe.layer with any selection (top_k, "
    "grouped_top_k, top_p, threshold, expert_choice; "
    "1 <= k <= E <= 2048), any score function, combine weights and scale, "
    "router and selection biases, a run-time tau, any capacity (count or "
    "factor, also at run time; any drop order), weights applied to the "
    "output or the input, "
    "gated experts (silu, gelu_tanh, gelu_erf, relu or swiglu_oai, with or "
    "without expert biases; gate, up and down operands or fused gate_up "
    "and down), plain MLP experts or LoRA experts (lora or lora_gated), "
    "shared experts (gated or not; gate, up and down or fused gate_up and "
    "down), bf16 input and weights, and static "
    "expert and shared expert sizes that are multiples of 8";

/// The most experts of a layer the kernel library computes (its router's
/// and permutation's shared tables; MOE_GPU_MAX_EXPERTS of
/// runtime/include/moe_gpu_kernels.h).
static constexpr int64_t kMaxExperts = 2048;

/// The first reason why the kernel library cannot compute `op`, or an
/// empty string.
static std::string unsupportedReason(LayerOp op) {
  std::string reason;
  llvm::raw_string_ostream os(reason);
  RoutingAttr routing = op.getRouting();
  int64_t numExperts = op.getNumExperts();
  auto isBF16 = [](Value v) {
    return cast<ShapedType>(v.getType()).getElementType().isBF16();
  };
  if (ShapedType::isDynamic(numExperts) || numExperts > kMaxExperts)
    os << "E = "
       << (ShapedType::isDynamic(numExperts) ? std::string("?")
                                             : std::to_string(numExperts));
  else if (routing.getK() < 1 || routing.getK() > numExperts)
    os << "k = " << routing.getK();
  else if (!isBF16(op.getInput()) || !isBF16(op.getRouterWeight()) ||
           !llvm::all_of(op.getExpertWeights(), isBF16) ||
           !llvm::all_of(op.getExpertBiases(), isBF16) ||
           !llvm::all_of(op.getSharedWeights(), isBF16)) {
    os << "input " << op.getInput().getType() << ", router weight "
       << op.getRouterWeight().getType() << ", expert weights "
       << op.getExpertWeights().front().getType();
    if (!op.getSharedWeights().empty())
      os << ", shared weights " << op.getSharedWeights().front().getType();
    os << " (moe-narrow-to-bf16, --narrow-to-bf16 of moe-run and "
          "moe-compile, computes an f32 or f16 layer in bf16)";
  } else {
    auto isStatic8 = [](ShapedType t) {
      return t.hasStaticShape() &&
             llvm::all_of(t.getShape().take_back(2),
                          [](int64_t n) { return n % 8 == 0; });
    };
    auto notStatic8 = [&](Value w) {
      return !isStatic8(cast<ShapedType>(w.getType()));
    };
    auto unsupported = llvm::find_if(op.getExpertWeights(), notStatic8);
    // The shared projections (not the sigmoid gate [1, d]), down first.
    ValueRange shared = op.getSharedWeights();
    Value down = op.getSharedDown(), unsupportedShared;
    if (down && notStatic8(down))
      unsupportedShared = down;
    for (Value w : shared.take_front(std::min<size_t>(3, shared.size())))
      if (!unsupportedShared && notStatic8(w))
        unsupportedShared = w;
    if (unsupported != op.getExpertWeights().end())
      os << "expert weight " << (*unsupported).getType();
    else if (unsupportedShared)
      os << (unsupportedShared == down ? "shared down projection "
                                       : "shared projection ")
         << unsupportedShared.getType();
  }
  return reason;
}

int64_t mlir::moe::cudaMaxTokens(LayerOp op) {
  // Slots, rows and tokens are i32 on the device: T * slots < 2^31, with
  // slots = k, or E with expert_choice (its scores and keys are [T, E]).
  constexpr int64_t int32Max = 2147483647;
  int64_t numExperts = op.getNumExperts();
  RoutingAttr routing = op.getRouting();
  if (ShapedType::isDynamic(numExperts) || numExperts < 1 ||
      routing.getK() < 1)
    return int32Max;
  int64_t slots = routing.getSelection() == Selection::ExpertChoice
                      ? numExperts
                      : routing.getK();
  return int32Max / slots;
}

/// The private declaration of library host function `name`.
static void declareHostFunction(ModuleOp module, SymbolTable &symbols,
                                StringRef name, FunctionType type) {
  if (symbols.lookup(name))
    return;
  OpBuilder builder = OpBuilder::atBlockEnd(module.getBody());
  auto func = func::FuncOp::create(builder, module.getLoc(), name, type);
  func.setPrivate();
  symbols.insert(func);
}

/// A fully dynamic memref of `type`'s rank, for the host functions.
static MemRefType dynamicMemRef(int64_t rank, Type element) {
  return MemRefType::get(SmallVector<int64_t>(rank, ShapedType::kDynamic),
                         element);
}

/// `tensor` as a read-only buffer with dynamic sizes.
static Value asBuffer(OpBuilder &b, Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  Value buffer = bufferization::ToBufferOp::create(
      b, loc, MemRefType::get(type.getShape(), type.getElementType()), tensor,
      /*read_only=*/true);
  return memref::CastOp::create(
      b, loc, dynamicMemRef(type.getRank(), type.getElementType()), buffer);
}

static Value allocate(OpBuilder &b, Location loc, Type element,
                      ValueRange sizes) {
  return memref::AllocOp::create(b, loc, dynamicMemRef(sizes.size(), element),
                                 sizes);
}

/// The copy in GPU memory of checkpoint weight `tensor` (a `moe.weight
/// {device}` next to its `moe.weight`), with `element` as its element type
/// when given (the runtime converts it at load time, see
/// WeightOp::cloneWithElementType), or null when `tensor` is not a
/// checkpoint weight.
static Value deviceWeight(OpBuilder &b, Value tensor, Type element = {}) {
  auto weight = tensor.getDefiningOp<WeightOp>();
  if (!weight || weight.getPackingAttr())
    return Value();
  auto type = cast<RankedTensorType>(tensor.getType());
  if (weight.getDevice() && (!element || element == type.getElementType()))
    return tensor;
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointAfter(weight);
  // The same tensors, with every way of reading them, bound on the device
  // (converted to `element` at load time).
  WeightOp onDevice =
      weight.cloneWithElementType(b, element ? element : type.getElementType());
  onDevice.setDevice(true);
  return onDevice.getResult();
}

/// An empty [0] buffer of `element` on the stack: an absent operand of a
/// device entry point's library call, which the library tests by size.
static Value emptyBuffer(OpBuilder &b, Location loc, Type element,
                         int64_t rank) {
  return memref::CastOp::create(
      b, loc, dynamicMemRef(rank, element),
      memref::AllocaOp::create(
          b, loc, MemRefType::get(SmallVector<int64_t>(rank, 0), element)));
}

static Value emptyVector(OpBuilder &b, Location loc, Type element) {
  return emptyBuffer(b, loc, element, 1);
}

/// The copy in GPU memory of the knob `value` (a `moe.knob {device}` next
/// to its `moe.knob`), or null when `value` is not a knob.
static Value deviceKnob(OpBuilder &b, Value value) {
  auto knob = value ? value.getDefiningOp<KnobOp>() : KnobOp();
  if (!knob)
    return Value();
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointAfter(knob);
  return KnobOp::create(b, knob.getLoc(),
                        RankedTensorType::get({1}, b.getF64Type()),
                        knob.getNameAttr(), knob.getLayerAttr(),
                        knob.getDefaultValueAttr(), b.getUnitAttr());
}

/// The operands of a device entry point besides its input: the output
/// rows, the model's statistics on the device ([2, E + 1] i64, or no rows),
/// and the caller's stream.
struct DeviceResults {
  Value y, counts, stream;
};

/// Replaces `op` by the library calls, declaring the callees in `module`.
/// With `device`, `op` is the layer of a device entry point: its input and
/// weights are in GPU memory and so are its results (`device`); the
/// library call is enqueued on `device->stream` and its stream returned.
static Value rewriteLayer(LayerOp op, ModuleOp module, SymbolTable &symbols,
                          const DeviceResults *device = nullptr) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Type bf16 = b.getBF16Type(), f32 = b.getF32Type(), i32 = b.getI32Type();
  Type i64 = b.getI64Type();
  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };

  // Checkpoint weights stay on the device across calls (uploaded once by
  // the runtime): @moe_layer_resident. Weights that are function arguments
  // are copied for each call: @moe_layer. The router weight comes first,
  // then the experts' (see below), then the shared expert's, then the
  // experts' biases.
  ValueRange experts = op.getExpertWeights();
  ExpertKind kind = op.getExperts().getKind();
  bool plain = kind == ExpertKind::Mlp;
  bool lora = kind == ExpertKind::Lora || kind == ExpertKind::LoraGated;
  SmallVector<Value> weights = {op.getRouterWeight()};
  if (lora)
    llvm::append_range(weights, experts);
  else
    weights.append({experts.front(), experts[experts.size() - 2],
                    experts.back()});
  size_t numExpertWeights = weights.size() - 1;
  llvm::append_range(weights, op.getSharedWeights());
  size_t numBiases = op.getExpertBiases().size();
  llvm::append_range(weights, op.getExpertBiases());
  StringRef callee = lora ? "moe_lora_layer_resident" : "moe_layer_resident";
  if (device)
    callee = lora ? "moe_lora_layer_device_async" : "moe_layer_device_async";
  SmallVector<Value> onDevice;
  llvm::SmallDenseMap<Value, Value> deviceCopy;
  for (Value weight : weights) {
    auto [it, inserted] = deviceCopy.try_emplace(weight);
    if (inserted)
      it->second = deviceWeight(b, weight);
    onDevice.push_back(it->second);
  }
  if (llvm::is_contained(onDevice, Value())) {
    assert(!device && "a device entry point's weights are checkpoint weights");
    callee = lora ? "moe_lora_layer" : "moe_layer";
  } else {
    weights = onDevice;
  }

  Value c0 = idx(0), c1 = idx(1);
  auto empty3 = [&] { return allocate(b, loc, bf16, {c0, c0, c0}); };
  // A weight as the library takes it: [E, n, m], a matrix [n, m] (a frozen
  // LoRA base, a shared projection) as one expert [1, n, m].
  auto expertBuffer = [&](Value weight) -> Value {
    auto type = cast<RankedTensorType>(weight.getType());
    if (type.getRank() == 3)
      return asBuffer(b, loc, weight);
    auto staticType = MemRefType::get(type.getShape(), type.getElementType());
    Value buffer = bufferization::ToBufferOp::create(b, loc, staticType, weight,
                                                     /*read_only=*/true);
    auto expanded = MemRefType::get({1, type.getDimSize(0), type.getDimSize(1)},
                                    type.getElementType());
    buffer = memref::ExpandShapeOp::create(
        b, loc, expanded, buffer, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
    return memref::CastOp::create(b, loc, dynamicMemRef(3, bf16), buffer);
  };

  Value x = asBuffer(b, loc, op.getInput());
  Value wr = asBuffer(b, loc, weights[0]);
  // The experts' weights. Gated and MLP experts: gate, up, down; a fused
  // gate_up [E, 2f, d] (gate rows first) is passed as both gate and up (the
  // library reads the up rows at f), plain MLP experts (w1, w2) as gate and
  // down with an empty up. LoRA experts: the frozen projections Pg, Pu, Pd
  // then the pairs (A, B) of the gate, the up and the down projection; for
  // kind = lora, Pg is the base and (A, B) the gate's pair, the rest empty.
  ArrayRef<Value> expertWeights =
      ArrayRef<Value>(weights).slice(1, numExpertWeights);
  SmallVector<Value> expertArgs;
  if (!lora) {
    Value gate = expertBuffer(expertWeights[0]);
    Value up = plain                 ? empty3()
               : experts.size() == 2 ? gate
                                     : expertBuffer(expertWeights[1]);
    expertArgs = {gate, up, expertBuffer(expertWeights[2])};
  } else if (kind == ExpertKind::Lora) {
    expertArgs = {expertBuffer(expertWeights[0]), empty3(), empty3(),
                  expertBuffer(expertWeights[1]),
                  expertBuffer(expertWeights[2])};
    expertArgs.append(4, empty3());
  } else {
    for (Value weight : expertWeights)
      expertArgs.push_back(expertBuffer(weight));
  }

  int64_t numExperts = op.getNumExperts();
  int64_t outDim =
      cast<ShapedType>(op.getOutput().getType()).getDimSize(1);
  Value tokens = memref::DimOp::create(b, loc, x, c0);
  Value d = idx(outDim);
  Value k = idx(op.getRouting().getK());
  Value e1 = idx(numExperts + 1);

  // The shared expert as one more group of experts: its projections
  // [1, fs, d], [1, fs, d], [1, d, fs] and its gate vector [1, d]; empty
  // buffers when there is none (the library tests their first size). A
  // fused gate_up [2 fs, d] is passed as both gate and up, as the routed
  // experts' is.
  SmallVector<Value> shared;
  for (Value weight : ArrayRef<Value>(weights)
                          .drop_front(1 + numExpertWeights)
                          .drop_back(numBiases))
    shared.push_back(shared.size() < 3 ? expertBuffer(weight)
                                       : asBuffer(b, loc, weight));
  if (op.getSharedWeights().size() == 2)
    shared.insert(shared.begin() + 1, shared.front());
  while (shared.size() < 3)
    shared.push_back(empty3());
  if (shared.size() < 4)
    shared.push_back(allocate(b, loc, bf16, {c0, c0}));

  // The experts' biases (gated experts; GPT-OSS): gate, up and down
  // [E, n], a fused gate_up bias [E, 2f] passed as both gate and up (the
  // library reads the up bias from column f); [0, 0] buffers without.
  SmallVector<Value> biasArgs;
  if (!lora) {
    for (Value bias : ArrayRef<Value>(weights).take_back(numBiases))
      biasArgs.push_back(asBuffer(b, loc, bias));
    if (numBiases == 2)
      biasArgs.insert(biasArgs.begin() + 1, biasArgs.front());
    while (biasArgs.size() < 3)
      biasArgs.push_back(allocate(b, loc, bf16, {c0, c0}));
  }

  // The library's outputs on the host (a device entry point's library
  // call allocates them on the device). Only a capacity of the dispatch
  // drops assignments: without one the dropped counts have no elements,
  // and the library neither zeroes nor copies them.
  bool expertChoice =
      op.getRouting().getSelection() == Selection::ExpertChoice;
  CapacityAttr capacity = op.getCapacityAttr();
  bool drops = capacity && !expertChoice;
  Value offsets, droppedCounts, yf;
  if (!device) {
    offsets = allocate(b, loc, i32, {e1});
    droppedCounts = allocate(b, loc, i32, {idx(drops ? numExperts : 0)});
    yf = allocate(b, loc, f32, {tokens, d});
  }

  // Biases as f32 host buffers [E]; an absent one is a buffer of one zero
  // that the kernel does not read. A device entry point reads its
  // checkpoint biases in GPU memory, as f32 (a bf16 bias, GPT-OSS's router
  // bias, converted when the runtime binds it; an absent one: an empty
  // buffer on the stack).
  Value numE = idx(numExperts);
  auto f32Vector = [&](Value bias) -> Value {
    if (device && bias)
      return asBuffer(b, loc, deviceWeight(b, bias, f32));
    if (device)
      return emptyVector(b, loc, f32);
    if (!bias) {
      Value none = allocate(b, loc, f32, {c1});
      Value zero = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0.0));
      memref::StoreOp::create(b, loc, zero, none, {c0});
      return none;
    }
    Value from = asBuffer(b, loc, bias);
    Value to = allocate(b, loc, f32, {numE});
    scf::ForOp::create(b, loc, c0, numE, c1, ValueRange(),
                       [&](OpBuilder &b, Location loc, Value e, ValueRange) {
                         lowering::LocBuilder lb(loc, b);
                         Value v = lowering::toF32(
                             lb, memref::LoadOp::create(lb, from, {e}));
                         memref::StoreOp::create(lb, v, to, {e});
                         scf::YieldOp::create(b, loc);
                       });
    return to;
  };
  Value routerBias = f32Vector(op.getRouterBias());
  Value selectionBias = f32Vector(op.getSelectionBias());

  // The routing as router_topk takes it (lib/GPU/Kernels/router.mlir).
  RoutingAttr routing = op.getRouting();
  auto i32c = [&](int64_t v) -> Value {
    return arith::ConstantIntOp::create(b, loc, i32, v);
  };
  auto f32c = [&](double v) -> Value {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  };
  int64_t flags =
      (routing.getRenormalize() ? 1 : 0) | (op.getRouterBias() ? 2 : 0) |
      (op.getSelectionBias() ? 4 : 0) |
      (routing.getWeights() == CombineWeights::SoftmaxSelected ? 8 : 0);
  Value param;
  // A device entry point reads a tau knob (and a capacity factor knob,
  // below) in GPU memory, so that a replayed CUDA graph follows the knob:
  // the library reads it there when given one element.
  Type f64 = b.getF64Type();
  Value paramDev;
  if (device) {
    Value knob = deviceKnob(b, op.getTau());
    paramDev = knob ? asBuffer(b, loc, knob) : emptyVector(b, loc, f64);
  }
  if (op.getTau())
    param = op.getTau();
  else if (routing.getSelection() == Selection::TopP && routing.getTopP())
    param = f32c(routing.getTopP()->value);
  else if (routing.getTau())
    param = f32c(routing.getTau()->value);
  else
    param = f32c(0.0);
  int64_t topkGroup =
      routing.getTopkGroup() ? *routing.getTopkGroup() : routing.getGroups();

  // expert_choice (spec section 2): softmax scores of the logits (router
  // bias included), one slot per expert, the scores as weights; each expert
  // takes `cap` tokens: its capacity, or ceil(T k / E).
  lowering::LocBuilder lb(loc, b);
  Value cap = c0, capDev, capMin = c0, capAlign = c1;
  if (expertChoice) {
    k = idx(numExperts);
    flags &= 2;
    if (capacity)
      cap = lowering::capacity(lb, capacity, tokens, routing.getK(), numExperts,
                               op.getCapacityFactor());
    else
      cap = arith::CeilDivSIOp::create(
          lb, arith::MulIOp::create(lb, tokens, idx(routing.getK())),
          idx(numExperts));
  } else if (Value factor = op.getCapacityFactor();
             capacity && device && factor && factor.getDefiningOp<KnobOp>()) {
    // A device entry point with a run-time capacity factor: the library
    // computes the capacity from the knob's copy in GPU memory (`cap` is
    // not read), so a replayed graph follows it. (Expert choice takes no
    // run-time factor: its capacity sizes the selection's launch.)
    capDev = asBuffer(b, loc, deviceKnob(b, factor));
    capMin = idx(capacity.getMin());
    capAlign = idx(capacity.getAlign());
  } else if (capacity) {
    cap = lowering::capacity(lb, capacity, tokens, routing.getK(), numExperts,
                             op.getCapacityFactor());
  }
  if (drops) {
    // A capacity of the dispatch (spec section 4): layer.mlir's flags bit
    // 16, the drop order in bits 5-6, bit 128 renormalize_after_drop.
    int64_t order = static_cast<int64_t>(capacity.getDropOrderOrDefault());
    flags |= 16 | (order << 5) | (capacity.getRenormalizeAfterDrop() ? 128 : 0);
  }
  // The experts' activation (also the shared expert's): bits 9-10, and
  // bit 4096 for swiglu_oai (code 4).
  int64_t act = static_cast<int64_t>(op.getExperts().getAct());
  flags |= (act & 3) << 9 | (act >> 2) << 12;
  // Weights applied to the expert input: bit 2048.
  if (routing.getApplyWeight() == ApplyWeight::Input)
    flags |= 2048;

  // The whole layer on one stream, synchronized once (layer.mlir).
  SmallVector<Value> args = {x, wr, routerBias, selectionBias};
  llvm::append_range(args, expertArgs);
  llvm::append_range(args, biasArgs);
  llvm::append_range(args, shared);
  args.append(
      {k, i32c(expertChoice ? 0 : static_cast<int64_t>(routing.getScore())),
       i32c(static_cast<int64_t>(routing.getSelection())), i32c(flags),
       f32c(expertChoice ? 1.0 : routing.getScale().value), param});
  if (device)
    args.push_back(paramDev);
  args.append({idx(routing.getGroups()), idx(topkGroup),
               i32c(static_cast<int64_t>(routing.getGroupScore()))});
  // LoRA experts: the scale alpha / r of their deltas.
  if (lora) {
    auto a = cast<ShapedType>(experts[kind == ExpertKind::Lora ? 1 : 3].getType());
    args.push_back(f32c(*op.getExperts().getAlpha() /
                        static_cast<double>(a.getDimSize(1))));
  }
  if (device) {
    if (!capDev)
      capDev = emptyVector(b, loc, f64);
    args.append({cap, capDev, capMin, capAlign, device->counts, device->y,
                 device->stream});
    Type token = device->stream.getType();
    declareHostFunction(module, symbols, callee,
                        b.getFunctionType(TypeRange(args), {token}));
    Value done = func::CallOp::create(b, loc, callee, TypeRange{token}, args)
                     .getResult(0);
    op.erase();
    return done;
  }
  // Co-activation counts (a moe.record_stats with_coactivation) read the
  // selection before any drop: the library copies it out ([T, slots]; no
  // rows when nothing reads it) and the record takes it as its expert ids,
  // as moe-decompose gives them on the CPU.
  auto record = llvm::find_if(op.getAssignments().getUsers(), [](Operation *u) {
    auto stats = dyn_cast<RecordStatsOp>(u);
    return stats && stats.getWithCoactivation() && !stats.getExpertIds();
  });
  RecordStatsOp pairs = record == op.getAssignments().getUsers().end()
                            ? RecordStatsOp()
                            : cast<RecordStatsOp>(*record);
  Value ids = allocate(b, loc, i32, {pairs ? tokens : c0, k});
  args.append({cap, offsets, droppedCounts, ids, yf});
  auto type = b.getFunctionType(TypeRange(args), {});
  declareHostFunction(module, symbols, callee, type);
  func::CallOp::create(b, loc, callee, TypeRange(), args);

  // The combine's f32 sums, rounded to the layer's bf16 output.
  Value out = allocate(b, loc, bf16, {tokens, d});
  scf::ForOp::create(
      b, loc, c0, tokens, c1, ValueRange(),
      [&](OpBuilder &b, Location loc, Value t, ValueRange) {
        scf::ForOp::create(
            b, loc, c0, d, c1, ValueRange(),
            [&](OpBuilder &b, Location loc, Value c, ValueRange) {
              Value v = memref::LoadOp::create(b, loc, yf, {t, c});
              Value r = arith::TruncFOp::create(b, loc, bf16, v);
              memref::StoreOp::create(b, loc, r, out, {t, c});
              scf::YieldOp::create(b, loc);
            });
        scf::YieldOp::create(b, loc);
      });
  auto toTensor = [&](Value buffer, Type type) -> Value {
    auto tensorType = cast<RankedTensorType>(type);
    Value cast = memref::CastOp::create(
        b, loc,
        MemRefType::get(tensorType.getShape(), tensorType.getElementType()),
        buffer);
    return bufferization::ToTensorOp::create(b, loc, tensorType, cast,
                                             /*restrict=*/b.getUnitAttr());
  };
  op.getOutput().replaceAllUsesWith(toTensor(out, op.getOutput().getType()));
  if (pairs) {
    int64_t slots = expertChoice ? numExperts : routing.getK();
    auto idsType = RankedTensorType::get(
        {cast<ShapedType>(op.getInput().getType()).getDimSize(0), slots}, i32);
    pairs.getExpertIdsMutable().assign(toTensor(ids, idsType));
    pairs.setWithCoactivation(false);
  }

  // The assignments before dropping are the kept rows (the group sizes)
  // plus the dropped ones.
  if (!op.getAssignments().use_empty() || !op.getDropped().use_empty()) {
    Value load = allocate(b, loc, i64, {numE});
    Value dropped = allocate(b, loc, i64, {numE});
    scf::ForOp::create(
        b, loc, c0, numE, c1, ValueRange(),
        [&](OpBuilder &b, Location loc, Value e, ValueRange) {
          Value next = arith::AddIOp::create(b, loc, e, c1);
          Value lo = memref::LoadOp::create(b, loc, offsets, {e});
          Value hi = memref::LoadOp::create(b, loc, offsets, {next});
          Value kept = arith::SubIOp::create(b, loc, hi, lo);
          Value lost =
              drops ? Value(memref::LoadOp::create(b, loc, droppedCounts, {e}))
                    : Value(arith::ConstantIntOp::create(b, loc, i32, 0));
          Value n = arith::AddIOp::create(b, loc, kept, lost);
          memref::StoreOp::create(
              b, loc, arith::ExtSIOp::create(b, loc, i64, n), load, {e});
          memref::StoreOp::create(
              b, loc, arith::ExtSIOp::create(b, loc, i64, lost), dropped, {e});
          scf::YieldOp::create(b, loc);
        });
    op.getAssignments().replaceAllUsesWith(
        toTensor(load, op.getAssignments().getType()));
    op.getDropped().replaceAllUsesWith(
        toTensor(dropped, op.getDropped().getType()));
  }
  op.erase();
  return Value();
}

/// The rows of a function that moe-narrow-to-bf16 computes in bf16 around
/// its one layer: its argument (f32 rows, or f16 ones through f32) rounded
/// to the layer's input, and its result, the layer's output widened to f32
/// (then rounded to f16). Null values when `func` is not such a function.
struct NarrowedRows {
  Value input, output;
};

static NarrowedRows narrowedRows(func::FuncOp func, LayerOp layer) {
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  auto rounded = layer.getInput().getDefiningOp<arith::TruncFOp>();
  if (!rounded || func.getNumArguments() != 1 || ret.getNumOperands() != 1)
    return {};
  auto elementOf = [](Value v) {
    return cast<ShapedType>(v.getType()).getElementType();
  };
  Value rows = rounded.getIn();
  if (!elementOf(rows).isF32())
    return {};
  if (auto exact = rows.getDefiningOp<arith::ExtFOp>();
      exact && elementOf(exact.getIn()).isF16())
    rows = exact.getIn();
  Value result = ret.getOperand(0), wide = result;
  if (auto narrowed = result.getDefiningOp<arith::TruncFOp>();
      narrowed && elementOf(result).isF16())
    wide = narrowed.getIn();
  auto widened = wide.getDefiningOp<arith::ExtFOp>();
  if (rows != body.getArgument(0) || !widened ||
      widened.getIn() != layer.getOutput() || !elementOf(wide).isF32())
    return {};
  return {rows, result};
}

/// Why `func`, which holds `layer`, cannot have a device entry point, or an
/// empty string: it must be one layer (its one argument the layer's input,
/// the layer's output its one result, or both rounded as
/// moe-narrow-to-bf16 rounds them: `narrowed`), and the layer's other
/// operands must not depend on the input and must be on the device:
/// checkpoint weights (the biases are f32), knobs, constants.
static std::string deviceEntryObstacle(func::FuncOp func, LayerOp layer,
                                       const NarrowedRows &narrowed,
                                       SetVector<Operation *> &slice) {
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  if (!narrowed.input) {
    if (func.getNumArguments() != 1 || layer.getInput() != body.getArgument(0))
      return "its only argument must be the input of its moe.layer";
    if (ret.getNumOperands() != 1 || ret.getOperand(0) != layer.getOutput())
      return "it must return the output of its moe.layer, and nothing else";
  }
  BackwardSliceOptions options;
  options.inclusive = true;
  options.omitBlockArguments = true;
  options.filter = [&](Operation *op) { return op->getBlock() == &body; };
  for (Value operand : layer->getOperands()) {
    if (operand == layer.getInput())
      continue;
    if (operand == body.getArgument(0))
      return "an operand of its moe.layer besides the input is the argument";
    if (Operation *def = operand.getDefiningOp())
      if (failed(getBackwardSlice(def, &slice, options)))
        return "the operands of its moe.layer are not computed in its body";
  }
  for (Operation *op : slice) {
    if (llvm::is_contained(op->getOperands(), body.getArgument(0)))
      return "an operand of its moe.layer depends on the input";
    if (!isa<WeightOp, KnobOp>(op) && !op->hasTrait<OpTrait::ConstantLike>() &&
        !isMemoryEffectFree(op))
      return "an operand of its moe.layer comes from an operation with side "
             "effects";
  }
  SmallVector<Value> weights = {layer.getRouterWeight()};
  llvm::append_range(weights, layer.getExpertWeights());
  llvm::append_range(weights, layer.getSharedWeights());
  for (Value weight : weights) {
    auto op = weight.getDefiningOp<WeightOp>();
    if (!op || op.getPackingAttr())
      return "its weights must be checkpoint weights (moe.weight)";
  }
  for (Value bias : layer.getExpertBiases()) {
    auto op = bias.getDefiningOp<WeightOp>();
    if (!op || op.getPackingAttr())
      return "its expert biases must be checkpoint weights (moe.weight)";
  }
  for (Value bias : std::initializer_list<Value>{layer.getRouterBias(),
                                                 layer.getSelectionBias()}) {
    if (!bias)
      continue;
    auto op = bias.getDefiningOp<WeightOp>();
    if (!op || op.getPackingAttr())
      return "its biases must be checkpoint weights (moe.weight)";
    // The device reads router and selection biases in f32, widened from
    // the checkpoint at load time: a bias rounded at load time to a
    // narrower type has no such copy.
    if (op.getStoredAttr() &&
        !cast<ShapedType>(bias.getType()).getElementType().isF32())
      return "its router and selection biases must be f32, or read from the "
             "checkpoint without a conversion (`stored`)";
  }
  return "";
}

/// Adds `@<name>.device` for `func`, which is the one layer `layer` (see
/// the pass description), next to it. A `narrowed` function's entry point
/// takes its f32 or f16 rows, and two bf16 buffers from the caller for the
/// layer's own input and output, which kernels round and widen.
static void addDeviceEntry(func::FuncOp func, LayerOp layer,
                           const NarrowedRows &narrowed,
                           const SetVector<Operation *> &slice, ModuleOp module,
                           SymbolTable &symbols) {
  MLIRContext *ctx = func.getContext();
  Location loc = layer.getLoc();
  auto inType = cast<RankedTensorType>(layer.getInput().getType());
  auto outType = cast<RankedTensorType>(layer.getOutput().getType());
  auto memrefOf = [](Value tensor) {
    auto type = cast<RankedTensorType>(tensor.getType());
    return MemRefType::get(type.getShape(), type.getElementType());
  };
  Type token = gpu::AsyncTokenType::get(ctx);
  auto countsType = dynamicMemRef(2, IntegerType::get(ctx, 64));
  SmallVector<Type> argTypes = {
      memrefOf(narrowed.input ? narrowed.input : layer.getInput()),
      memrefOf(narrowed.output ? narrowed.output : layer.getOutput()),
      countsType};
  if (narrowed.input)
    argTypes.append({memrefOf(layer.getInput()), memrefOf(layer.getOutput())});
  argTypes.push_back(token);
  OpBuilder b(ctx);
  b.setInsertionPointAfter(func);
  auto entry =
      func::FuncOp::create(b, func.getLoc(), (func.getName() + ".device").str(),
                           b.getFunctionType(argTypes, {token}));
  entry->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
  symbols.insert(entry);
  Block *body = entry.addEntryBlock();
  b.setInsertionPointToStart(body);
  Value stream = body->getArguments().back();
  Value rows = body->getArgument(0), out = body->getArgument(1);

  // A narrowed layer's rows: the f32 or f16 rows of the caller, the other
  // type's buffer empty, as @moe_rows_to_bf16_async and
  // @moe_rows_from_bf16_async take them.
  auto byType = [&](Value buffer) -> std::pair<Value, Value> {
    Type f32 = b.getF32Type(), f16 = b.getF16Type();
    bool wide = cast<MemRefType>(buffer.getType()).getElementType().isF32();
    Value own = memref::CastOp::create(
        b, loc, dynamicMemRef(2, wide ? f32 : f16), buffer);
    Value none = emptyBuffer(b, loc, wide ? f16 : f32, 2);
    return wide ? std::pair(own, none) : std::pair(none, own);
  };
  Type bf16 = b.getBF16Type();
  if (narrowed.input) {
    rows = body->getArgument(3);
    out = body->getArgument(4);
    auto [xf, xh] = byType(body->getArgument(0));
    SmallVector<Value> args = {
        xf, xh, memref::CastOp::create(b, loc, dynamicMemRef(2, bf16), rows),
        stream};
    declareHostFunction(module, symbols, "moe_rows_to_bf16_async",
                        b.getFunctionType(TypeRange(args), {token}));
    stream = func::CallOp::create(b, loc, "moe_rows_to_bf16_async",
                                  TypeRange{token}, args)
                 .getResult(0);
  }

  // The layer's operands as in `func`, its input the device rows.
  IRMapping mapping;
  mapping.map(layer.getInput(),
              bufferization::ToTensorOp::create(b, loc, inType, rows,
                                                /*restrict=*/b.getUnitAttr()));
  for (Operation *op : slice)
    b.clone(*op, mapping);
  Value layerOut = memref::CastOp::create(
      b, loc, dynamicMemRef(2, outType.getElementType()), out);
  DeviceResults results = {layerOut, body->getArgument(2), stream};
  auto copy = cast<LayerOp>(b.clone(*layer, mapping));
  Value done = rewriteLayer(copy, module, symbols, &results);
  b.setInsertionPointToEnd(body);
  if (narrowed.input) {
    auto [yf, yh] = byType(body->getArgument(1));
    SmallVector<Value> args = {layerOut, yf, yh, done};
    declareHostFunction(module, symbols, "moe_rows_from_bf16_async",
                        b.getFunctionType(TypeRange(args), {token}));
    done = func::CallOp::create(b, loc, "moe_rows_from_bf16_async",
                                TypeRange{token}, args)
               .getResult(0);
  }
  func::ReturnOp::create(b, func.getLoc(), done);
}

/// Warns, once a function, of the moe ops other than moe.layer that it
/// computes (standalone routing, experts or losses): the kernel library
/// runs whole layers only, and moe-cuda-pipeline lowers the others for the
/// host with the reference lowering (convert-moe-to-linalg).
static void warnHostOps(ModuleOp module) {
  module.walk([](func::FuncOp func) {
    llvm::SetVector<StringRef> names;
    Operation *first = nullptr;
    func.walk([&](Operation *op) {
      if (!isa<MoEDialect>(op->getDialect()) ||
          isa<LayerOp, WeightOp, WeightBufferOp, KnobOp, KnobBufferOp,
              RecordStatsOp, UKernelOp>(op))
        return;
      names.insert(op->getName().getStringRef());
      if (!first)
        first = op;
    });
    if (!first)
      return;
    // At the op's location, without the op itself as a note.
    InFlightDiagnostic warning = emitWarning(first->getLoc());
    llvm::interleaveComma(names, warning);
    warning << " in @" << func.getName()
            << (names.size() == 1 ? " runs" : " run")
            << " on the host: the CUDA kernels compute whole moe.layer ops, "
               "and moe-cuda-pipeline lowers other moe ops with the "
               "reference lowering";
  });
}

void ConvertMoEToGPUKernelsPass::runOnOperation() {
  ModuleOp module = getOperation();
  SmallVector<LayerOp> layers;
  module.walk([&](LayerOp op) { layers.push_back(op); });
  bool failed = false;
  for (LayerOp op : layers) {
    std::string reason = unsupportedReason(op);
    if (reason.empty())
      continue;
    op.emitError() << supportedConfig << "; found " << reason;
    failed = true;
  }
  if (failed)
    return signalPassFailure();
  SymbolTable symbols(module);
  if (deviceEntries) {
    for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
      if (!func.isPublic() || func.isExternal())
        continue;
      SmallVector<LayerOp> own;
      func.walk([&](LayerOp op) { own.push_back(op); });
      if (own.empty())
        continue;
      SetVector<Operation *> slice;
      NarrowedRows narrowed =
          own.size() > 1 ? NarrowedRows() : narrowedRows(func, own.front());
      std::string obstacle =
          own.size() > 1
              ? std::string("it holds more than one moe.layer")
              : deviceEntryObstacle(func, own.front(), narrowed, slice);
      if (!obstacle.empty()) {
        func.emitWarning() << "no device entry point for @" << func.getName()
                           << ": " << obstacle;
        continue;
      }
      addDeviceEntry(func, own.front(), narrowed, slice, module, symbols);
    }
  }
  for (LayerOp op : layers)
    rewriteLayer(op, module, symbols);
  warnHostOps(module);
}
