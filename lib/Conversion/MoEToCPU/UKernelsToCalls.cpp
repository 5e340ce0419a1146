//===- UKernelsToCalls.cpp - moe.ukernel on buffers to runtime calls ------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// convert-moe-ukernels: each moe.ukernel on memrefs becomes a call of
// moe_rt_ukernel_NAME with its operands flattened into 64-bit words, as
// moe_ukernel_abi.h lays them out.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "moe/IR/MoEOps.h"
#include "moe_ukernel_abi.h"

#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"

namespace mlir::moe {
#define GEN_PASS_DEF_CONVERTMOEUKERNELS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

static int64_t dtypeCode(Type element) {
  if (element.isF32())
    return MOE_UK_F32;
  if (element.isF16())
    return MOE_UK_F16;
  if (element.isBF16())
    return MOE_UK_BF16;
  if (element.isInteger(32))
    return MOE_UK_I32;
  if (element.isInteger(64))
    return MOE_UK_I64;
  assert(element.isInteger(8) && "moe.ukernel verifier admits no other type");
  return MOE_UK_I8;
}

namespace {
/// A buffer as the kernels want it: dense row-major, with the copies that
/// make it so around the call when it is not.
struct KernelBuffer {
  Value buffer;
  Value original; // set when `buffer` is a temporary copy
};

struct ConvertMoEUKernelsPass
    : mlir::moe::impl::ConvertMoEUKernelsBase<ConvertMoEUKernelsPass> {
  void runOnOperation() override;
};
} // namespace

static KernelBuffer denseBuffer(OpBuilder &b, Location loc, Value value) {
  auto type = cast<MemRefType>(value.getType());
  if (type.getLayout().isIdentity())
    return {value, nullptr};
  SmallVector<Value> sizes;
  for (int64_t i = 0; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      sizes.push_back(memref::DimOp::create(b, loc, value, i));
  auto dense = MemRefType::get(type.getShape(), type.getElementType());
  Value copy = memref::AllocOp::create(b, loc, dense, sizes);
  memref::CopyOp::create(b, loc, value, copy);
  return {copy, value};
}

void ConvertMoEUKernelsPass::runOnOperation() {
  ModuleOp module = getOperation();
  SymbolTable symbols(module);
  SmallVector<UKernelOp> kernels;
  module.walk([&](UKernelOp op) { kernels.push_back(op); });
  for (UKernelOp op : kernels) {
    if (op.getNumResults() != 0) {
      op.emitOpError() << "expected a kernel on buffers; run bufferization "
                          "before convert-moe-ukernels";
      return signalPassFailure();
    }
    OpBuilder b(op);
    Location loc = op.getLoc();
    Type i64 = b.getI64Type();
    auto word = [&](int64_t value) -> Value {
      return arith::ConstantIntOp::create(b, loc, value, 64);
    };
    auto toI64 = [&](Value index) -> Value {
      return arith::IndexCastOp::create(b, loc, i64, index);
    };

    SmallVector<KernelBuffer> buffers;
    for (Value operand : op->getOperands())
      buffers.push_back(denseBuffer(b, loc, operand));

    SmallVector<Value> words;
    for (const KernelBuffer &kb : buffers) {
      auto type = cast<MemRefType>(kb.buffer.getType());
      Value address =
          memref::ExtractAlignedPointerAsIndexOp::create(b, loc, kb.buffer);
      words.push_back(toI64(address));
      words.push_back(word(dtypeCode(type.getElementType())));
      words.push_back(word(type.getRank()));
      for (int64_t i = 0; i < type.getRank(); ++i)
        words.push_back(type.isDynamicDim(i)
                            ? toI64(memref::DimOp::create(b, loc, kb.buffer, i))
                            : word(type.getDimSize(i)));
    }
    for (int64_t value : op.getConfig())
      words.push_back(word(value));

    // The words live in the enclosing function's frame, allocated once.
    auto wordsType =
        MemRefType::get({static_cast<int64_t>(words.size())}, i64);
    Value array;
    {
      OpBuilder::InsertionGuard guard(b);
      Operation *scope =
          op->getParentWithTrait<OpTrait::AutomaticAllocationScope>();
      if (scope && scope->getNumRegions() == 1 &&
          !scope->getRegion(0).empty())
        b.setInsertionPointToStart(&scope->getRegion(0).front());
      array = memref::AllocaOp::create(b, loc, wordsType);
    }
    for (auto [i, value] : llvm::enumerate(words))
      memref::StoreOp::create(
          b, loc, value, array,
          ValueRange{arith::ConstantIndexOp::create(b, loc, i)});
    auto anySize = MemRefType::get({ShapedType::kDynamic}, i64);
    Value cast = memref::CastOp::create(b, loc, anySize, array);
    func::FuncOp callee = declareRuntimeFunction(
        module, symbols, ("moe_rt_ukernel_" + op.getName()).str(),
        b.getFunctionType({anySize}, {}));
    func::CallOp::create(b, loc, callee, ValueRange{cast});

    // Results of temporary output copies go back; temporaries are freed.
    size_t numInputs = op.getInputs().size();
    for (auto [i, kb] : llvm::enumerate(buffers)) {
      if (!kb.original)
        continue;
      if (i >= numInputs)
        memref::CopyOp::create(b, loc, kb.buffer, kb.original);
      memref::DeallocOp::create(b, loc, kb.buffer);
    }
    op.erase();
  }
}
