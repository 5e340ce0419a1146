//===- MoEToCPU.cpp - fused moe ops to the runtime's CPU kernels ----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// convert-moe-to-cpu: moe.gate and moe.fused_experts to moe.ukernel calls
// of the runtime (runtime/cpu/), with every weight matrix in the kernels'
// packed layout. The words each kernel reads are those of
// moe_ukernel_abi.h; this file and runtime/cpu/UKernels.cpp are the two
// sides of that contract.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "moe/IR/MoEOps.h"
#include "moe_ukernel_abi.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/bit.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETOCPU
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// ABI codes
//===----------------------------------------------------------------------===//

static int64_t activationCode(Activation act) {
  switch (act) {
  case Activation::Silu:
    return MOE_UK_SILU;
  case Activation::GeluTanh:
    return MOE_UK_GELU_TANH;
  case Activation::GeluErf:
    return MOE_UK_GELU_ERF;
  case Activation::Relu:
    return MOE_UK_RELU;
  case Activation::SwigluOai:
    return MOE_UK_SWIGLU_OAI;
  }
  llvm_unreachable("unknown activation");
}

static int64_t scoreCode(ScoreFunc score) {
  switch (score) {
  case ScoreFunc::Softmax:
    return MOE_UK_SOFTMAX;
  case ScoreFunc::Sigmoid:
    return MOE_UK_SIGMOID;
  case ScoreFunc::SqrtSoftplus:
    return MOE_UK_SQRT_SOFTPLUS;
  case ScoreFunc::Logits:
    return MOE_UK_LOGITS;
  }
  llvm_unreachable("unknown score function");
}

static std::optional<int64_t> selectionCode(Selection selection) {
  switch (selection) {
  case Selection::TopK:
    return MOE_UK_TOP_K;
  case Selection::GroupedTopK:
    return MOE_UK_GROUPED_TOP_K;
  case Selection::TopP:
    return MOE_UK_TOP_P;
  case Selection::Threshold:
    return MOE_UK_THRESHOLD;
  case Selection::ExpertChoice:
    return std::nullopt;
  }
  llvm_unreachable("unknown selection");
}

static int64_t groupScoreCode(GroupScore score) {
  return score == GroupScore::SumTop2 ? MOE_UK_GROUP_SUM_TOP2
                                      : MOE_UK_GROUP_MAX;
}

/// The bits of `value` rounded to f32, as a config word.
static int64_t f32Bits(double value) {
  return llvm::bit_cast<uint32_t>(static_cast<float>(value));
}

//===----------------------------------------------------------------------===//
// Operands
//===----------------------------------------------------------------------===//

static bool isStaticMatrix(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  return type && type.hasStaticShape() &&
         (type.getRank() == 2 || type.getRank() == 3);
}

/// The packed element type for matrices `weights`: bf16 when all of them
/// are bf16 (no rounding), f32 otherwise (f16 and f32 widen exactly).
static Type packedElementType(Builder &b, ValueRange weights) {
  bool allBF16 = llvm::all_of(weights, [](Value w) {
    return cast<ShapedType>(w.getType()).getElementType().isBF16();
  });
  return allBF16 ? Type(b.getBF16Type()) : Type(b.getF32Type());
}

/// An absent optional operand: a buffer of zero elements.
static Value absent(OpBuilder &b, Location loc, Type element) {
  return tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{0}, element);
}

/// An uninitialized tensor of `type` whose dynamic sizes are those of the
/// same dimensions of `like`.
static Value emptyLike(OpBuilder &b, Location loc, RankedTensorType type,
                       Value like) {
  SmallVector<Value> sizes;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      sizes.push_back(tensor::DimOp::create(b, loc, like, i));
  return tensor::EmptyOp::create(b, loc, type, sizes);
}

/// The checkpoint weight [n, k] whose rows [*firstRow, ...) `slice` takes
/// whole (moe-decompose splits a fused shared gate_up so), adding the
/// slice's first row to `firstRow`; null for any other slice.
static Value slicedCheckpointRows(tensor::ExtractSliceOp slice,
                                  int64_t &firstRow) {
  auto source = slice.getSource().getDefiningOp<WeightOp>();
  RankedTensorType type = slice.getSourceType();
  if (!source || source.getPackingAttr() || type.getRank() != 2 ||
      !type.hasStaticShape() || !slice.hasUnitStride() ||
      slice.getType().getRank() != 2)
    return {};
  std::optional<int64_t> row = getConstantIntValue(slice.getMixedOffsets()[0]);
  std::optional<int64_t> col = getConstantIntValue(slice.getMixedOffsets()[1]);
  std::optional<int64_t> cols = getConstantIntValue(slice.getMixedSizes()[1]);
  if (!row || col != 0 || cols != type.getDimSize(1))
    return {};
  firstRow += *row;
  return source.getResult();
}

/// Rows [firstRow, firstRow + rows) of each matrix of `weight` ([n, k] or
/// [E, n, k]) in the packed layout of `packed` elements. A checkpoint
/// weight, or rows of one, is packed at load time; anything else by the
/// `pack` kernel.
static Value packWeight(OpBuilder &b, Location loc, Value weight,
                        int64_t firstRow, int64_t rows, Type packed) {
  if (auto slice = weight.getDefiningOp<tensor::ExtractSliceOp>())
    if (Value whole = slicedCheckpointRows(slice, firstRow))
      weight = whole;
  auto source = cast<RankedTensorType>(weight.getType());
  auto packing = PackingAttr::get(b.getContext(), source, firstRow, rows);
  auto type = RankedTensorType::get({packing.getPackedElements(packed)},
                                    packed);
  if (auto checkpoint = weight.getDefiningOp<WeightOp>();
      checkpoint && !checkpoint.getPackingAttr()) {
    // The same tensors, with every way of reading them, bound packed.
    auto packed = cast<WeightOp>(b.clone(*checkpoint));
    packed->setLoc(loc);
    packed.getResult().setType(type);
    packed.setPackingAttr(packing);
    packed.setDevice(false);
    return packed.getResult();
  }
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(), packed);
  return UKernelOp::create(b, loc, TypeRange{type}, "pack", ValueRange{weight},
                           ValueRange{init},
                           b.getDenseI64ArrayAttr({firstRow, rows}))
      .getResult(0);
}

/// A vector converted to f32 (a no-op when it is f32).
static Value toF32(OpBuilder &b, Location loc, Value vector) {
  auto type = cast<RankedTensorType>(vector.getType());
  if (type.getElementType().isF32())
    return vector;
  return arith::ExtFOp::create(b, loc, type.clone(b.getF32Type()), vector);
}

//===----------------------------------------------------------------------===//
// moe.gate
//===----------------------------------------------------------------------===//

static LogicalResult lowerGate(RewriterBase &rewriter, GateOp op) {
  RoutingAttr routing = op.getRouting();
  std::optional<int64_t> selection = selectionCode(routing.getSelection());
  if (!selection || !isStaticMatrix(op.getWeight()))
    return failure();
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  auto weightType = cast<RankedTensorType>(op.getWeight().getType());
  int64_t experts = weightType.getDimSize(0);
  Type f32 = rewriter.getF32Type();

  // Logits multiply the input as it is (spec: widened, f32 accumulation):
  // bf16 panels only when the input is bf16 too, so that no operand is
  // rounded and selection matches the reference.
  Value router =
      packWeight(rewriter, loc, op.getWeight(), 0, experts,
                 packedElementType(rewriter, ValueRange{op.getWeight(),
                                                        op.getInput()}));
  Value bias = op.getBias() ? toF32(rewriter, loc, op.getBias())
                            : absent(rewriter, loc, f32);
  Value selectionBias =
      op.getSelectionBias() ? op.getSelectionBias() : absent(rewriter, loc, f32);
  Value tau = op.getTau() ? Value(tensor::FromElementsOp::create(
                                rewriter, loc, ValueRange{op.getTau()}))
                          : absent(rewriter, loc, f32);
  Value ids = emptyLike(rewriter, loc, op.getExpertIds().getType(),
                        op.getInput());
  Value weights =
      emptyLike(rewriter, loc, op.getWeights().getType(), op.getInput());

  SmallVector<int64_t> config = {
      experts,
      scoreCode(routing.getScore()),
      *selection,
      routing.getK(),
      routing.getGroups(),
      routing.getTopkGroup().value_or(1),
      groupScoreCode(routing.getGroupScore()),
      f32Bits(routing.getTopP() ? routing.getTopP()->value : 1.0),
      f32Bits(routing.getTau() ? routing.getTau()->value : 0.0),
      routing.getWeights() == CombineWeights::SoftmaxSelected,
      routing.getRenormalize(),
      f32Bits(routing.getScale().value)};
  auto kernel = UKernelOp::create(
      rewriter, loc, TypeRange{ids.getType(), weights.getType()}, "gate",
      ValueRange{op.getInput(), router, bias, selectionBias, tau},
      ValueRange{ids, weights}, rewriter.getDenseI64ArrayAttr(config));
  rewriter.replaceOp(op, kernel.getResults());
  return success();
}

//===----------------------------------------------------------------------===//
// moe.fused_experts
//===----------------------------------------------------------------------===//

static LogicalResult lowerFusedExperts(RewriterBase &rewriter,
                                       FusedExpertsOp op) {
  ValueRange expertWeights = op.getExpertWeights();
  ValueRange shared = op.getSharedWeights();
  ValueRange sharedMatrices =
      shared.take_front(std::min<size_t>(3, shared.size()));
  if (!llvm::all_of(expertWeights, isStaticMatrix) ||
      !llvm::all_of(sharedMatrices, isStaticMatrix))
    return failure();
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  Type f32 = rewriter.getF32Type();

  SmallVector<Value> matrices(expertWeights);
  matrices.append(sharedMatrices.begin(), sharedMatrices.end());
  Type packed = packedElementType(rewriter, matrices);
  auto dims = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getShape();
  };

  // Routed experts: gate and up [E, f, d] (or gate_up [E, 2f, d]), down
  // [E, d, f]; MLP experts: w1 as the gate, no up, w2 as down; LoRA
  // experts: A [E, r, d] as the gate and B [E, d_out, r] as down, without
  // an activation, scaled by alpha / r, over their frozen base [d_out, d].
  ExpertsAttr experts = op.getExperts();
  Value down = expertWeights.back();
  int64_t output = dims(down)[1], inner = dims(down)[2];
  int64_t act = activationCode(experts.getAct());
  double routedScale = 1.0;
  Value gate, up, base;
  switch (experts.getKind()) {
  case ExpertKind::Gated:
    if (expertWeights.size() == 2) {
      gate = packWeight(rewriter, loc, expertWeights[0], 0, inner, packed);
      up = packWeight(rewriter, loc, expertWeights[0], inner, inner, packed);
    } else {
      gate = packWeight(rewriter, loc, expertWeights[0], 0, inner, packed);
      up = packWeight(rewriter, loc, expertWeights[1], 0, inner, packed);
    }
    break;
  case ExpertKind::Mlp:
    gate = packWeight(rewriter, loc, expertWeights[0], 0, inner, packed);
    break;
  case ExpertKind::Lora:
    gate = packWeight(rewriter, loc, expertWeights[1], 0, inner, packed);
    base = packWeight(rewriter, loc, expertWeights[0], 0, output, packed);
    act = MOE_UK_IDENTITY;
    routedScale = experts.getAlpha()->value / static_cast<double>(inner);
    break;
  case ExpertKind::LoraGated:
    return failure();
  }
  if (!up)
    up = absent(rewriter, loc, packed);
  if (!base)
    base = absent(rewriter, loc, packed);
  Value packedDown = packWeight(rewriter, loc, down, 0, output, packed);

  // The shared expert: gate and up [fs, d], down [d, fs], and its
  // optional sigmoid gate [1, d] as it is.
  int64_t sharedInner = 0;
  SmallVector<Value> sharedOperands;
  if (shared.size() == 2) { // fused gate_up [2 fs, d], gate rows first
    sharedInner = dims(shared[0])[0] / 2;
    sharedOperands = {
        packWeight(rewriter, loc, shared[0], 0, sharedInner, packed),
        packWeight(rewriter, loc, shared[0], sharedInner, sharedInner, packed),
        packWeight(rewriter, loc, shared[1], 0, output, packed),
        absent(rewriter, loc, f32)};
  } else if (!shared.empty()) {
    sharedInner = dims(shared[0])[0];
    sharedOperands = {
        packWeight(rewriter, loc, shared[0], 0, sharedInner, packed),
        packWeight(rewriter, loc, shared[1], 0, sharedInner, packed),
        packWeight(rewriter, loc, shared[2], 0, output, packed),
        shared.size() == 4 ? shared[3] : absent(rewriter, loc, f32)};
  } else {
    for (int i = 0; i < 3; ++i)
      sharedOperands.push_back(absent(rewriter, loc, packed));
    sharedOperands.push_back(absent(rewriter, loc, f32));
  }

  SmallVector<Value> inputs = {
      op.getInput(),
      op.getRowToken(),
      op.getGroupSizes(),
      op.getRowWeight() ? op.getRowWeight() : absent(rewriter, loc, f32),
      op.getSlotRow(),
      op.getSlotWeight() ? op.getSlotWeight() : absent(rewriter, loc, f32),
      gate,
      up,
      packedDown};
  inputs.append(sharedOperands);
  inputs.push_back(base);
  // Gated experts' biases in f32: gate and up (a fused gate_up bias twice,
  // up from column `inner`), then down; none: three empty buffers.
  ValueRange biases = op.getExpertBiases();
  int64_t upBiasFirst = 0;
  if (biases.size() == 3) {
    for (Value bias : biases)
      inputs.push_back(toF32(rewriter, loc, bias));
  } else if (biases.size() == 2) {
    Value gateUp = toF32(rewriter, loc, biases[0]);
    inputs.append({gateUp, gateUp, toF32(rewriter, loc, biases[1])});
    upBiasFirst = inner;
  } else {
    for (int i = 0; i < 3; ++i)
      inputs.push_back(absent(rewriter, loc, f32));
  }
  Value init = emptyLike(rewriter, loc, op.getType(), op.getInput());
  auto kernel = UKernelOp::create(
      rewriter, loc, TypeRange{op.getType()}, "expert_ffn", inputs,
      ValueRange{init},
      rewriter.getDenseI64ArrayAttr({inner, act, sharedInner,
                                     activationCode(experts.getAct()), output,
                                     f32Bits(routedScale), upBiasFirst}));
  rewriter.replaceOp(op, kernel.getResults());
  return success();
}

//===----------------------------------------------------------------------===//
// Pass
//===----------------------------------------------------------------------===//

namespace {
struct ConvertMoEToCPUPass
    : mlir::moe::impl::ConvertMoEToCPUBase<ConvertMoEToCPUPass> {
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<Operation *> ops;
    getOperation()->walk([&](Operation *op) {
      if (isa<GateOp, FusedExpertsOp>(op))
        ops.push_back(op);
    });
    // An op the kernels do not cover stays for the reference lowering.
    for (Operation *op : ops) {
      if (auto gate = dyn_cast<GateOp>(op))
        (void)lowerGate(rewriter, gate);
      else
        (void)lowerFusedExperts(rewriter, cast<FusedExpertsOp>(op));
    }
    // Checkpoint weights that were only read packed (whole, or rows of
    // them through tensor.extract_slice) are no longer needed.
    SmallVector<Operation *> unused;
    getOperation()->walk([&](Operation *op) {
      if (isa<WeightOp>(op) ||
          (isa<tensor::ExtractSliceOp>(op) && cast<tensor::ExtractSliceOp>(op)
                                                  .getSource()
                                                  .getDefiningOp<WeightOp>()))
        unused.push_back(op);
    });
    // Slices first: their weights lose a use when they go.
    for (Operation *op : llvm::reverse(unused))
      if (op->use_empty())
        rewriter.eraseOp(op);
  }
};
} // namespace
