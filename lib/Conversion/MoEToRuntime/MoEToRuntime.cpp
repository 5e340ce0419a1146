//===- MoEToRuntime.cpp - weights and statistics to runtime calls ---------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The compiled module's contract with the runtime (runtime/): weights are
// fetched by id, statistics recorded by id, knobs read by id, all through
// C-interface calls, and the module attributes moe.weights, moe.stats and
// moe.knobs say what each id is.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "moe/IR/MoEOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/MapVector.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOETORUNTIME
#define GEN_PASS_DEF_CONVERTMOEWEIGHTBUFFERS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

/// `f32`, `f16`, `bf16`: the dtype part of runtime symbol names.
static std::string dtypeName(Type type) {
  std::string name;
  llvm::raw_string_ostream(name) << type;
  return name;
}

func::FuncOp mlir::moe::declareRuntimeFunction(ModuleOp module,
                                              SymbolTable &symbols,
                                              StringRef name,
                                              FunctionType type) {
  if (auto existing = symbols.lookup<func::FuncOp>(name))
    return existing;
  OpBuilder builder = OpBuilder::atBlockBegin(module.getBody());
  auto func = func::FuncOp::create(builder, module.getLoc(), name, type);
  func.setPrivate();
  func->setAttr("llvm.emit_c_interface", builder.getUnitAttr());
  symbols.insert(func);
  return func;
}

namespace {
struct ConvertMoEToRuntimePass
    : mlir::moe::impl::ConvertMoEToRuntimeBase<ConvertMoEToRuntimePass> {
  void runOnOperation() override;
};

struct ConvertMoEWeightBuffersPass
    : mlir::moe::impl::ConvertMoEWeightBuffersBase<
          ConvertMoEWeightBuffersPass> {
  void runOnOperation() override;
};
} // namespace

/// Replaces `op`, a buffer the runtime owns, by the call `callee(id)`,
/// which returns it as `anyShape`, cast to the op's type.
static void replaceByRuntimeCall(Operation *op, uint64_t id, StringRef callee,
                                 MemRefType anyShape, ModuleOp module,
                                 SymbolTable &symbols) {
  OpBuilder builder(op);
  func::FuncOp function = declareRuntimeFunction(
      module, symbols, callee,
      builder.getFunctionType({builder.getI64Type()}, {anyShape}));
  Location loc = op->getLoc();
  Value idValue =
      arith::ConstantIntOp::create(builder, loc, static_cast<int64_t>(id), 64);
  Value buffer =
      func::CallOp::create(builder, loc, function, idValue).getResult(0);
  op->replaceAllUsesWith(
      memref::CastOp::create(builder, loc, op->getResult(0).getType(), buffer)
          ->getResults());
  op->erase();
}

void ConvertMoEWeightBuffersPass::runOnOperation() {
  ModuleOp module = getOperation();
  SymbolTable symbols(module);
  SmallVector<WeightBufferOp> buffers;
  module.walk([&](WeightBufferOp op) { buffers.push_back(op); });
  for (WeightBufferOp op : buffers) {
    auto type = cast<MemRefType>(op.getType());
    SmallVector<int64_t> dynamic(type.getRank(), ShapedType::kDynamic);
    std::string name = std::string(op.getDevice() ? "moe_rt_device_weight_"
                                                  : "moe_rt_weight_") +
                       dtypeName(type.getElementType()) +
                       "_" + std::to_string(type.getRank()) + "d";
    replaceByRuntimeCall(op, op.getId(), name,
                         MemRefType::get(dynamic, type.getElementType()),
                         module, symbols);
  }
  SmallVector<KnobBufferOp> knobs;
  module.walk([&](KnobBufferOp op) { knobs.push_back(op); });
  for (KnobBufferOp op : knobs)
    replaceByRuntimeCall(
        op, op.getId(), "moe_rt_device_knob",
        MemRefType::get({ShapedType::kDynamic}, Float64Type::get(op.getContext())),
        module, symbols);
}

void ConvertMoEToRuntimePass::runOnOperation() {
  ModuleOp module = getOperation();
  SymbolTable symbols(module);
  MLIRContext *ctx = &getContext();
  Builder attrs(ctx);

  // Weights: one id per distinct type and reading of the checkpoint (names,
  // stacking, conversion, scales, ...); `device` marks the ones some layer
  // reads in GPU memory (moe_model_upload copies those).
  llvm::MapVector<Attribute, int64_t> weightIds;
  SmallVector<SmallVector<NamedAttribute>> weightTable;
  SmallVector<WeightOp> weights;
  module.walk([&](WeightOp op) { weights.push_back(op); });
  for (WeightOp op : weights) {
    RankedTensorType type = op.getType();
    PackingAttr packing = op.getPackingAttr();
    TypeAttr stored = op.getStoredAttr();
    // Every attribute but `device` says how the tensors are read.
    NamedAttrList readAs(op->getAttrDictionary());
    readAs.erase(op.getDeviceAttrName());
    Attribute key =
        attrs.getArrayAttr({TypeAttr::get(type), readAs.getDictionary(ctx)});
    auto [it, inserted] =
        weightIds.insert({key, static_cast<int64_t>(weightIds.size())});
    int64_t id = it->second;
    if (inserted) {
      // `type` is what the checkpoint tensors must be; `packed` what the
      // runtime binds when it packs them.
      SmallVector<NamedAttribute> entry = {
          attrs.getNamedAttr("id", attrs.getI64IntegerAttr(id)),
          attrs.getNamedAttr("names", op.getNames()),
          attrs.getNamedAttr("stacked", attrs.getBoolAttr(op.getStacked())),
          attrs.getNamedAttr("type", TypeAttr::get(packing ? packing.getSource()
                                                           : type))};
      if (packing) {
        entry.push_back(attrs.getNamedAttr("packing", packing));
        entry.push_back(attrs.getNamedAttr("packed", TypeAttr::get(type)));
      }
      // The checkpoint's element type, when the runtime converts it.
      if (stored)
        entry.push_back(attrs.getNamedAttr("stored", stored));
      // Block-scaled FP8 and FP4 tensors: their scale tensors and block
      // size, and NVFP4's global scales.
      if (ArrayAttr scales = op.getScalesAttr()) {
        entry.push_back(attrs.getNamedAttr("scales", scales));
        entry.push_back(
            attrs.getNamedAttr("scale_block", op.getScaleBlockAttr()));
      }
      if (ArrayAttr globals = op.getGlobalScalesAttr())
        entry.push_back(attrs.getNamedAttr("global_scales", globals));
      if (op.getGlobalScalesInverse())
        entry.push_back(attrs.getNamedAttr("global_scales_inverse",
                                           attrs.getBoolAttr(true)));
      // Integers' zero points (with the offset stored ones take) and
      // group indices.
      if (ArrayAttr zeros = op.getZeroPointsAttr())
        entry.push_back(attrs.getNamedAttr("zero_points", zeros));
      if (IntegerAttr offset = op.getZeroPointOffsetAttr())
        entry.push_back(attrs.getNamedAttr("zero_point_offset", offset));
      if (ArrayAttr groups = op.getGroupIndicesAttr())
        entry.push_back(attrs.getNamedAttr("group_indices", groups));
      // Words of outputs (AWQ's), and the order of a word's fields.
      if (op.getPackOutputs())
        entry.push_back(
            attrs.getNamedAttr("pack_outputs", attrs.getBoolAttr(true)));
      if (DenseI64ArrayAttr order = op.getPackOrderAttr())
        entry.push_back(attrs.getNamedAttr("pack_order", order));
      // bitsandbytes' 4-bit tensors, read as their state tensors say.
      if (op.getBitsandbytes())
        entry.push_back(
            attrs.getNamedAttr("bitsandbytes", attrs.getBoolAttr(true)));
      // Tensors stored with their last two dimensions swapped, and with
      // their dimension 1 interleaved.
      if (op.getTransposed())
        entry.push_back(
            attrs.getNamedAttr("transposed", attrs.getBoolAttr(true)));
      if (op.getInterleaved())
        entry.push_back(
            attrs.getNamedAttr("interleaved", attrs.getBoolAttr(true)));
      weightTable.push_back(std::move(entry));
    }
    if (op.getDevice() && !llvm::any_of(weightTable[id], [](NamedAttribute a) {
          return a.getName() == "device";
        }))
      weightTable[id].push_back(
          attrs.getNamedAttr("device", attrs.getBoolAttr(true)));

    OpBuilder builder(op);
    Location loc = op.getLoc();
    auto memref = MemRefType::get(type.getShape(), type.getElementType());
    Value buffer = WeightBufferOp::create(builder, loc, memref,
                                          static_cast<uint64_t>(id),
                                          op.getDevice());
    Value tensor = bufferization::ToTensorOp::create(
        builder, loc, type, buffer, /*restrict=*/builder.getUnitAttr());
    op.replaceAllUsesWith(tensor);
    op.erase();
  }

  // Statistics: one id per record.
  SmallVector<Attribute> statsTable;
  SmallVector<RecordStatsOp> records;
  module.walk([&](RecordStatsOp op) { records.push_back(op); });
  auto counts = MemRefType::get({ShapedType::kDynamic}, attrs.getI64Type());
  for (auto [i, op] : llvm::enumerate(records)) {
    int64_t id = static_cast<int64_t>(i);
    auto countsType = cast<RankedTensorType>(op.getAssignments().getType());
    SmallVector<NamedAttribute> entry = {
        attrs.getNamedAttr("id", attrs.getI64IntegerAttr(id)),
        attrs.getNamedAttr("layer", op.getLayerAttr()),
        attrs.getNamedAttr("experts",
                           attrs.getI64IntegerAttr(countsType.getDimSize(0)))};
    if (op.getExpertIds() || op.getWithCoactivation())
      entry.push_back(
          attrs.getNamedAttr("coactivation", attrs.getBoolAttr(true)));
    statsTable.push_back(attrs.getDictionaryAttr(entry));
    func::FuncOp callee = declareRuntimeFunction(
        module, symbols, "moe_rt_record_stats",
        FunctionType::get(ctx,
                          {attrs.getI64Type(), counts, counts,
                           attrs.getI64Type()},
                          {}));
    OpBuilder builder(op);
    Location loc = op.getLoc();
    auto toCounts = [&](Value tensor) -> Value {
      auto memref = MemRefType::get(countsType.getShape(), attrs.getI64Type());
      Value buffer = bufferization::ToBufferOp::create(
          builder, loc, memref, tensor, /*read_only=*/true);
      return memref::CastOp::create(builder, loc, counts, buffer);
    };
    Value tokens = arith::IndexCastOp::create(builder, loc, attrs.getI64Type(),
                                              op.getTokens());
    Value idValue = arith::ConstantIntOp::create(builder, loc, id, 64);
    func::CallOp::create(builder, loc, callee,
                         ValueRange{idValue, toCounts(op.getAssignments()),
                                    toCounts(op.getDropped()), tokens});
    if (Value ids = op.getExpertIds()) {
      auto idsType = cast<RankedTensorType>(ids.getType());
      auto anyIds = MemRefType::get(
          {ShapedType::kDynamic, ShapedType::kDynamic}, idsType.getElementType());
      func::FuncOp record = declareRuntimeFunction(
          module, symbols, "moe_rt_record_coactivation",
          FunctionType::get(ctx, {attrs.getI64Type(), anyIds}, {}));
      Value buffer = bufferization::ToBufferOp::create(
          builder, loc,
          MemRefType::get(idsType.getShape(), idsType.getElementType()), ids,
          /*read_only=*/true);
      func::CallOp::create(
          builder, loc, record,
          ValueRange{idValue,
                     memref::CastOp::create(builder, loc, anyIds, buffer)});
    }
    op.erase();
  }

  // Knobs: one id per (layer, name); every read is a call.
  llvm::MapVector<std::pair<StringRef, StringRef>, KnobOp> knobIds;
  SmallVector<KnobOp> knobs;
  module.walk([&](KnobOp op) { knobs.push_back(op); });
  SmallVector<SmallVector<NamedAttribute>> knobTable;
  for (KnobOp op : knobs) {
    auto [it, inserted] =
        knobIds.try_emplace({op.getLayer(), op.getName()}, op);
    if (!inserted &&
        it->second.getDefaultValue() != op.getDefaultValue()) {
      InFlightDiagnostic diag = op.emitError()
                                << "knob '" << op.getName() << "' of layer '"
                                << op.getLayer()
                                << "' declared with two defaults";
      diag.attachNote(it->second.getLoc()) << "first declared here";
      return signalPassFailure();
    }
    int64_t id = std::distance(knobIds.begin(), it);
    if (inserted)
      knobTable.push_back(
          {attrs.getNamedAttr("id", attrs.getI64IntegerAttr(id)),
           attrs.getNamedAttr("layer", op.getLayerAttr()),
           attrs.getNamedAttr("name", op.getNameAttr()),
           attrs.getNamedAttr("default", op.getDefaultValueAttr())});
    // `device`: some GPU code reads the knob's copy in GPU memory
    // (moe_model_upload makes those copies).
    if (op.getDevice() && !llvm::any_of(knobTable[id], [](NamedAttribute a) {
          return a.getName() == "device";
        }))
      knobTable[id].push_back(
          attrs.getNamedAttr("device", attrs.getBoolAttr(true)));
  }
  for (KnobOp op : knobs) {
    int64_t id = std::distance(
        knobIds.begin(), knobIds.find({op.getLayer(), op.getName()}));
    OpBuilder builder(op);
    Location loc = op.getLoc();
    if (op.getDevice()) {
      Value buffer = KnobBufferOp::create(
          builder, loc, MemRefType::get({1}, attrs.getF64Type()),
          static_cast<uint64_t>(id));
      op.replaceAllUsesWith(
          bufferization::ToTensorOp::create(builder, loc, op.getType(), buffer,
                                            /*restrict=*/builder.getUnitAttr())
              .getResult());
      op.erase();
      continue;
    }
    func::FuncOp callee = declareRuntimeFunction(
        module, symbols, "moe_rt_knob",
        FunctionType::get(ctx, {attrs.getI64Type()}, {attrs.getF64Type()}));
    Value value =
        func::CallOp::create(builder, loc, callee,
                             ValueRange{arith::ConstantIntOp::create(
                                 builder, loc, id, 64)})
            .getResult(0);
    if (op.getType() != value.getType())
      value = arith::TruncFOp::create(builder, loc, op.getType(), value);
    op.replaceAllUsesWith(value);
    op.erase();
  }

  if (!weightTable.empty()) {
    SmallVector<Attribute> table;
    for (ArrayRef<NamedAttribute> entry : weightTable)
      table.push_back(attrs.getDictionaryAttr(entry));
    module->setAttr("moe.weights", attrs.getArrayAttr(table));
  }
  if (!statsTable.empty())
    module->setAttr("moe.stats", attrs.getArrayAttr(statsTable));
  if (!knobTable.empty()) {
    SmallVector<Attribute> table;
    for (ArrayRef<NamedAttribute> entry : knobTable)
      table.push_back(attrs.getDictionaryAttr(entry));
    module->setAttr("moe.knobs", attrs.getArrayAttr(table));
  }
  if (!weightTable.empty() &&
      !module->hasAttr(WeightOp::getCheckpointAttrName())) {
    module.emitError() << "the module reads checkpoint weights (moe.weight) "
                          "but has no '"
                       << WeightOp::getCheckpointAttrName() << "' attribute";
    signalPassFailure();
  }
}
