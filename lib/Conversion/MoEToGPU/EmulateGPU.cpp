//===- EmulateGPU.cpp - NVVM kernels as host code for the SIMT emulator ---===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// moe-gpu-emulate: in the place of gpu-module-to-binary, the kernels of every
// gpu.module (already in the LLVM and NVVM dialects) become host functions
// that the SIMT emulator of runtime/cuda/Emulator.cpp runs, one fiber per
// GPU thread:
//
//   - every symbol of a gpu.module moves into the host module, renamed
//     `<module>__<name>`; libdevice declarations (__nv_expf, ...) become the
//     C library's functions, vprintf (gpu.printf) the emulator's;
//   - shared memory (address space 3 globals) becomes one buffer per block,
//     laid out per gpu.module, that moe_emu_shared() returns; other address
//     spaces become the generic one;
//   - the NVVM operations become calls of the emulator: special registers,
//     barriers, warp shuffles, match and warp syncs, ldmatrix, mma.sync
//     (m16n8k16, bf16 to f32) and cp.async with its commit and wait groups
//     (the emulator copies at once and tracks which bytes a real copy might
//     not have written yet); any other NVVM operation is an error;
//   - each kernel gets a `<kernel>__launch(void **params)` entry and every
//     gpu.launch_func becomes a moe_emu_launch call with the arguments
//     packed as cuLaunchKernel takes them.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/AttrTypeSubElements.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUEMULATE
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// Special registers, in the numbering of moe_emu_sreg.
std::optional<int32_t> specialRegister(StringRef name) {
  if (!name.consume_front("nvvm.read.ptx.sreg."))
    return std::nullopt;
  return llvm::StringSwitch<std::optional<int32_t>>(name)
      .Case("tid.x", 0)
      .Case("tid.y", 1)
      .Case("tid.z", 2)
      .Case("ntid.x", 3)
      .Case("ntid.y", 4)
      .Case("ntid.z", 5)
      .Case("ctaid.x", 6)
      .Case("ctaid.y", 7)
      .Case("ctaid.z", 8)
      .Case("nctaid.x", 9)
      .Case("nctaid.y", 10)
      .Case("nctaid.z", 11)
      .Case("laneid", 12)
      .Case("warpsize", 13)
      .Case("lanemask.lt", 14)
      .Case("lanemask.le", 15)
      .Case("lanemask.eq", 16)
      .Case("lanemask.ge", 17)
      .Case("lanemask.gt", 18)
      .Default(std::nullopt);
}

/// The C library function for a libdevice function the kernels call.
std::optional<StringRef> libmFor(StringRef name) {
  static const char *const known[] = {
      "expf",  "exp",   "exp2f", "exp2",  "expm1f", "logf",  "log",
      "log2f", "log2",  "log1pf", "log1p", "tanhf", "tanh",  "erff",
      "erf",   "fabsf", "fabs",  "sqrtf", "sqrt",  "powf",  "pow",
      "sinf",  "cosf",  "fmaxf", "fminf", "floorf", "ceilf", "roundf"};
  if (!name.consume_front("__nv_"))
    return std::nullopt;
  for (const char *k : known)
    if (name == k)
      return name;
  return std::nullopt;
}

struct MoEGPUEmulatePass
    : public moe::impl::MoEGPUEmulateBase<MoEGPUEmulatePass> {
  void runOnOperation() override;

private:
  LLVM::LLVMFuncOp runtimeFunction(StringRef name, Type result,
                                   ArrayRef<Type> args);
  LogicalResult moveModule(gpu::GPUModuleOp module);
  LogicalResult rewriteBody(LLVM::LLVMFuncOp func);
  LogicalResult rewriteOp(Operation *op, Value scratch);
  void addLaunchEntry(LLVM::LLVMFuncOp kernel);
  LogicalResult rewriteLaunch(gpu::LaunchFuncOp launch);
  Value stringConstant(OpBuilder &b, Location loc, StringRef name,
                       StringRef text);

  ModuleOp top;
  /// Static shared-memory globals (renamed) with their size and alignment,
  /// then their byte offset in the block's buffer; the dynamic ones.
  struct SharedGlobal {
    int64_t bytes = 0, align = 16, offset = -1;
  };
  llvm::StringMap<SharedGlobal> sharedGlobals;
  llvm::StringSet<> dynamicShared;
  /// "<module>::<kernel>" to the bytes of static shared memory the kernel
  /// uses.
  llvm::StringMap<int64_t> kernelShared;
  void layOutSharedMemory();
  /// Functions moved out of the gpu.modules.
  SmallVector<LLVM::LLVMFuncOp> moved;
  /// "<module>::<kernel>" to the kernel's launch entry.
  llvm::StringMap<LLVM::LLVMFuncOp> launchEntry;
  /// Kernels (renamed) to "<module>::<kernel>", the name launches use.
  llvm::StringMap<std::string> kernelKey;
};

LLVM::LLVMFuncOp MoEGPUEmulatePass::runtimeFunction(StringRef name,
                                                    Type result,
                                                    ArrayRef<Type> args) {
  if (auto f = top.lookupSymbol<LLVM::LLVMFuncOp>(name))
    return f;
  OpBuilder b = OpBuilder::atBlockEnd(top.getBody());
  return LLVM::LLVMFuncOp::create(
      b, top.getLoc(), name, LLVM::LLVMFunctionType::get(result, args));
}

Value MoEGPUEmulatePass::stringConstant(OpBuilder &b, Location loc,
                                        StringRef name, StringRef text) {
  auto global = top.lookupSymbol<LLVM::GlobalOp>(name);
  if (!global) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(top.getBody());
    std::string value = text.str();
    value.push_back('\0');
    auto type = LLVM::LLVMArrayType::get(b.getI8Type(), value.size());
    global = LLVM::GlobalOp::create(b, loc, type, /*isConstant=*/true,
                                    LLVM::Linkage::Internal, name,
                                    b.getStringAttr(value));
  }
  return LLVM::AddressOfOp::create(b, loc, global);
}

/// Moves every symbol of `module` into the host module, renamed, and notes
/// its shared-memory globals and kernels.
LogicalResult MoEGPUEmulatePass::moveModule(gpu::GPUModuleOp module) {
  std::string prefix = (module.getName() + "__").str();
  DataLayout layout = DataLayout::closest(module);
  SmallVector<Operation *> symbols, toMove;
  for (Operation &op : module.getBody()->getOperations())
    if (isa<SymbolOpInterface>(op))
      symbols.push_back(&op);

  for (Operation *op : symbols) {
    auto symbol = cast<SymbolOpInterface>(op);
    StringRef name = symbol.getName();
    auto func = dyn_cast<LLVM::LLVMFuncOp>(op);
    if (func && func.isExternal()) {
      // A libdevice declaration: the C library's function of that name;
      // CUDA's vprintf (gpu.printf): the emulator's.
      std::optional<StringRef> libm =
          name == "vprintf" ? StringRef("moe_emu_vprintf") : libmFor(name);
      if (!libm)
        return func.emitOpError("moe-gpu-emulate: the device function @")
               << name << " has no C library counterpart on the host";
      if (failed(SymbolTable::replaceAllSymbolUses(
              op, StringAttr::get(op->getContext(), *libm), module)))
        return failure();
      if (auto existing = top.lookupSymbol<LLVM::LLVMFuncOp>(*libm)) {
        if (existing.getFunctionType() != func.getFunctionType())
          return func.emitOpError("moe-gpu-emulate: @")
                 << *libm << " is declared with another type in the host "
                 << "module";
        op->erase();
        continue;
      }
      func.setSymName(*libm);
      toMove.push_back(op);
      continue;
    }
    std::string renamed = prefix + name.str();
    if (top.lookupSymbol(renamed))
      return op->emitOpError("moe-gpu-emulate: @")
             << renamed << " is already a host symbol";
    if (func && (func->hasAttr(gpu::GPUDialect::getKernelFuncAttrName()) ||
                 func->hasAttr(NVVM::NVVMDialect::getKernelFuncAttrName()))) {
      kernelKey[renamed] = (module.getName() + "::" + name).str();
    }
    if (failed(SymbolTable::replaceAllSymbolUses(
            op, StringAttr::get(op->getContext(), renamed), module)))
      return failure();
    SymbolTable::setSymbolName(op, renamed);
    if (auto global = dyn_cast<LLVM::GlobalOp>(op)) {
      if (global.getAddrSpace() == 3) {
        // Static shared memory; a zero-sized array is the dynamic part,
        // which starts after the static part.
        auto array = dyn_cast<LLVM::LLVMArrayType>(global.getGlobalType());
        if (array && array.getNumElements() == 0) {
          dynamicShared.insert(renamed);
        } else {
          SharedGlobal &g = sharedGlobals[renamed];
          g.align = std::max<int64_t>(global.getAlignment().value_or(16), 16);
          g.bytes = static_cast<int64_t>(
              layout.getTypeSize(global.getGlobalType()).getFixedValue());
        }
      } else {
        global.setAddrSpace(0);
      }
    }
    if (func)
      moved.push_back(func);
    toMove.push_back(op);
  }
  // After every rename: uses are renamed only inside the gpu.module.
  for (Operation *op : toMove)
    op->moveBefore(top.getBody(), top.getBody()->end());
  return success();
}

/// Each kernel's shared memory starts at offset 0 of its block's buffer and
/// holds the static shared globals it (or a function it calls) uses, so
/// that the emulator knows the kernel's own bounds. A global two kernels
/// use keeps one offset.
void MoEGPUEmulatePass::layOutSharedMemory() {
  llvm::StringMap<LLVM::LLVMFuncOp> functions;
  for (LLVM::LLVMFuncOp func : moved)
    functions[func.getName()] = func;
  for (LLVM::LLVMFuncOp kernel : moved) {
    if (!kernelKey.count(kernel.getName()))
      continue;
    SmallVector<StringRef> used;
    llvm::StringSet<> seen, visited;
    SmallVector<LLVM::LLVMFuncOp> worklist = {kernel};
    visited.insert(kernel.getName());
    while (!worklist.empty()) {
      LLVM::LLVMFuncOp func = worklist.pop_back_val();
      func.walk([&](Operation *op) {
        if (auto addr = dyn_cast<LLVM::AddressOfOp>(op)) {
          if (sharedGlobals.count(addr.getGlobalName()) &&
              seen.insert(addr.getGlobalName()).second)
            used.push_back(addr.getGlobalName());
        } else if (auto call = dyn_cast<LLVM::CallOp>(op)) {
          if (std::optional<StringRef> callee = call.getCallee()) {
            auto it = functions.find(*callee);
            if (it != functions.end() && visited.insert(*callee).second)
              worklist.push_back(it->second);
          }
        }
      });
    }
    int64_t end = 0;
    for (StringRef name : used) {
      const SharedGlobal &g = sharedGlobals[name];
      if (g.offset >= 0)
        end = std::max(end, g.offset + g.bytes);
    }
    for (StringRef name : used) {
      SharedGlobal &g = sharedGlobals[name];
      if (g.offset >= 0)
        continue;
      g.offset = static_cast<int64_t>(llvm::alignTo(end, g.align));
      end = g.offset + g.bytes;
    }
    kernelShared[kernelKey.lookup(kernel.getName())] =
        static_cast<int64_t>(llvm::alignTo(end, 16));
  }
}

/// The kernel library's prefetch of a line into L2 (a generic address;
/// `nvvm.prefetch` lowers to an intrinsic that LLVM 22 selects on sm_90
/// only, so the kernels, which are also compiled for sm_80, write it out).
static constexpr StringLiteral kPrefetchL2 = "prefetch.L2 [$0];";

/// The N of `wgmma.mma_async.sync.aligned.m64nNk16.f32.bf16.bf16` as
/// convert-nvvm-to-llvm writes it (both operands from shared memory through
/// descriptors, 4-byte accumulators only), if `op` is that.
static std::optional<int64_t> wgmmaWidth(LLVM::InlineAsmOp op) {
  static constexpr StringLiteral kPrefix = "wgmma.mma_async.sync.aligned.m64n";
  StringRef text = op.getAsmString();
  size_t at = text.find(kPrefix);
  if (at == StringRef::npos)
    return std::nullopt;
  StringRef rest = text.drop_front(at + kPrefix.size());
  int64_t n = 0;
  if (rest.consumeInteger(10, n) || !rest.consume_front("k16.f32.bf16.bf16 "))
    return std::nullopt;
  if (n < 8 || n > 256 || n % 8 || op.getNumResults() != 1)
    return std::nullopt;
  auto type = dyn_cast<LLVM::LLVMStructType>(op.getType(0));
  int64_t fragments = n / 2;
  if (!type || static_cast<int64_t>(type.getBody().size()) != fragments ||
      static_cast<int64_t>(op.getNumOperands()) != fragments + 7)
    return std::nullopt;
  Type f32 = Float32Type::get(op.getContext());
  Type i64 = IntegerType::get(op.getContext(), 64);
  if (!llvm::all_of(type.getBody(), [&](Type t) { return t == f32; }) ||
      op.getOperand(fragments).getType() != i64 ||
      op.getOperand(fragments + 1).getType() != i64)
    return std::nullopt;
  return n;
}

LogicalResult MoEGPUEmulatePass::rewriteOp(Operation *op, Value scratch) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  MLIRContext *ctx = op->getContext();
  Type i32 = b.getI32Type(), i64 = b.getI64Type(), f32 = b.getF32Type();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  Type voidType = LLVM::LLVMVoidType::get(ctx);
  auto constI32 = [&](int64_t v) -> Value {
    return LLVM::ConstantOp::create(b, loc, i32, v);
  };
  auto call = [&](StringRef name, Type result, ValueRange args) {
    // Pointers of every address space become generic ones below.
    SmallVector<Type> types;
    for (Type t : args.getTypes())
      types.push_back(isa<LLVM::LLVMPointerType>(t) ? ptr : t);
    LLVM::LLVMFuncOp callee = runtimeFunction(name, result, types);
    return LLVM::CallOp::create(b, loc, callee, args);
  };
  auto slot = [&](int32_t index) -> Value {
    return LLVM::GEPOp::create(b, loc, ptr, i32, scratch,
                               ArrayRef<LLVM::GEPArg>{index});
  };
  StringRef name = op->getName().getStringRef();

  if (std::optional<int32_t> reg = specialRegister(name)) {
    Value v = call("moe_emu_sreg", i32, {constI32(*reg)}).getResult();
    if (op->getResult(0).getType() != i32)
      return op->emitOpError("moe-gpu-emulate: expected an i32 register");
    op->getResult(0).replaceAllUsesWith(v);
    op->erase();
    return success();
  }
  if (auto addr = dyn_cast<LLVM::AddressOfOp>(op)) {
    Value p;
    auto it = sharedGlobals.find(addr.getGlobalName());
    if (it != sharedGlobals.end()) {
      Value base = call("moe_emu_shared", ptr, {}).getResult();
      p = LLVM::GEPOp::create(b, loc, ptr, b.getI8Type(), base,
                              ArrayRef<LLVM::GEPArg>{
                                  static_cast<int32_t>(it->second.offset)});
    } else if (dynamicShared.contains(addr.getGlobalName())) {
      p = call("moe_emu_dynamic_shared", ptr, {}).getResult();
    } else {
      return success();
    }
    addr.replaceAllUsesWith(p);
    addr.erase();
    return success();
  }
  if (auto cast = dyn_cast<LLVM::AddrSpaceCastOp>(op)) {
    // Every address space is the host's.
    cast.replaceAllUsesWith(cast.getArg());
    cast.erase();
    return success();
  }
  if (isa<NVVM::Barrier0Op, NVVM::BarrierOp>(op)) {
    if (op->getNumOperands() || op->getNumResults())
      return op->emitOpError("moe-gpu-emulate: only the plain block barrier "
                             "is emulated");
    call("moe_emu_barrier", voidType, {});
    op->erase();
    return success();
  }
  if (auto shfl = dyn_cast<NVVM::ShflOp>(op)) {
    Value v = shfl.getVal();
    Type valueType = v.getType();
    if (valueType != i32 && valueType != f32)
      return op->emitOpError("moe-gpu-emulate: shuffles of i32 or f32, found ")
             << valueType;
    if (valueType == f32)
      v = LLVM::BitcastOp::create(b, loc, i32, v);
    Value packed =
        call("moe_emu_shfl", i64,
             {constI32(static_cast<int32_t>(shfl.getKind())),
              shfl.getThreadMask(), v, shfl.getOffset(),
              shfl.getMaskAndClamp()})
            .getResult();
    Value result = LLVM::TruncOp::create(b, loc, i32, packed);
    if (valueType == f32)
      result = LLVM::BitcastOp::create(b, loc, f32, result);
    if (shfl.getReturnValueAndIsValid().value_or(false)) {
      Value high = LLVM::LShrOp::create(
          b, loc, packed, LLVM::ConstantOp::create(b, loc, i64, 32));
      Value valid = LLVM::TruncOp::create(b, loc, b.getI1Type(), high);
      Type structType = shfl.getType();
      Value s = LLVM::PoisonOp::create(b, loc, structType);
      s = LLVM::InsertValueOp::create(b, loc, s, result, ArrayRef<int64_t>{0});
      s = LLVM::InsertValueOp::create(b, loc, s, valid, ArrayRef<int64_t>{1});
      result = s;
    }
    shfl.replaceAllUsesWith(result);
    shfl.erase();
    return success();
  }
  if (auto match = dyn_cast<NVVM::MatchSyncOp>(op)) {
    if (match.getKind() != NVVM::MatchSyncKind::any ||
        match.getVal().getType() != i32)
      return op->emitOpError("moe-gpu-emulate: only match.sync.any on i32 is "
                             "emulated");
    Value r = call("moe_emu_match_any", i32,
                   {match.getThreadMask(), match.getVal()})
                  .getResult();
    match.replaceAllUsesWith(r);
    match.erase();
    return success();
  }
  if (auto sync = dyn_cast<NVVM::SyncWarpOp>(op)) {
    call("moe_emu_warp_sync", voidType, {sync.getMask()});
    sync.erase();
    return success();
  }
  if (auto ld = dyn_cast<NVVM::LdMatrixOp>(op)) {
    NVVM::LdStMatrixShapeAttr shape = ld.getShape();
    int32_t num = ld.getNum();
    if (shape.getM() != 8 || shape.getN() != 8 ||
        ld.getEltType() != NVVM::LdStMatrixEltType::B16 ||
        (num != 1 && num != 2 && num != 4))
      return op->emitOpError("moe-gpu-emulate: only ldmatrix .m8n8 .b16 "
                             "x1, x2 or x4 is emulated");
    bool trans = ld.getLayout() == NVVM::MMALayout::col;
    call("moe_emu_ldmatrix", voidType,
         {ld.getPtr(), constI32(num), constI32(trans), scratch});
    Value result;
    if (num == 1) {
      result = LLVM::LoadOp::create(b, loc, i32, slot(0));
    } else {
      result = LLVM::PoisonOp::create(b, loc, ld.getType());
      for (int32_t i = 0; i < num; ++i)
        result = LLVM::InsertValueOp::create(
            b, loc, result, LLVM::LoadOp::create(b, loc, i32, slot(i)),
            ArrayRef<int64_t>{i});
    }
    ld.replaceAllUsesWith(result);
    ld.erase();
    return success();
  }
  if (auto mma = dyn_cast<NVVM::MmaOp>(op)) {
    NVVM::MMAShapeAttr shape = mma.getShape();
    bool ok = shape.getM() == 16 && shape.getN() == 8 && shape.getK() == 16 &&
              mma.getMultiplicandAPtxType() == NVVM::MMATypes::bf16 &&
              mma.getMultiplicandBPtxType() == NVVM::MMATypes::bf16 &&
              mma.getLayoutA() == NVVM::MMALayout::row &&
              mma.getLayoutB() == NVVM::MMALayout::col &&
              mma.getOperandA().size() == 4 && mma.getOperandB().size() == 2 &&
              mma.getOperandC().size() == 4 &&
              llvm::all_of(mma.getOperandA().getTypes(),
                           [&](Type t) { return t == i32; }) &&
              llvm::all_of(mma.getOperandB().getTypes(),
                           [&](Type t) { return t == i32; }) &&
              llvm::all_of(mma.getOperandC().getTypes(),
                           [&](Type t) { return t == f32; });
    if (!ok)
      return op->emitOpError("moe-gpu-emulate: only mma.sync m16n8k16 with "
                             "bf16 A (row) and B (col) and f32 C and D is "
                             "emulated");
    int32_t word = 0;
    for (Value v : mma.getOperands())
      LLVM::StoreOp::create(b, loc, v, slot(word++));
    call("moe_emu_mma_m16n8k16_bf16", voidType, {scratch});
    Value result = LLVM::PoisonOp::create(b, loc, mma.getType());
    for (int32_t i = 0; i < 4; ++i)
      result = LLVM::InsertValueOp::create(
          b, loc, result, LLVM::LoadOp::create(b, loc, f32, slot(10 + i)),
          ArrayRef<int64_t>{i});
    mma.replaceAllUsesWith(result);
    mma.erase();
    return success();
  }
  if (auto copy = dyn_cast<NVVM::CpAsyncOp>(op)) {
    Value size = constI32(copy.getSize());
    Value source = copy.getCpSize() ? copy.getCpSize() : size;
    call("moe_emu_cp_async", voidType,
         {copy.getDst(), copy.getSrc(), size, source});
    copy.erase();
    return success();
  }
  // An operation without results that is one call of the emulator.
  auto replaceByCall = [&](StringRef callee, ValueRange args) {
    call(callee, voidType, args);
    op->erase();
    return success();
  };
  if (isa<NVVM::CpAsyncCommitGroupOp>(op))
    return replaceByCall("moe_emu_cp_async_commit", {});
  if (auto wait = dyn_cast<NVVM::CpAsyncWaitGroupOp>(op))
    return replaceByCall("moe_emu_cp_async_wait",
                         {constI32(static_cast<int32_t>(wait.getN()))});
  if (auto inlineAsm = dyn_cast<LLVM::InlineAsmOp>(op)) {
    // A prefetch into a cache changes no result.
    if (inlineAsm.getAsmString() == kPrefetchL2 &&
        inlineAsm.getNumResults() == 0) {
      op->erase();
      return success();
    }
    std::optional<int64_t> n = wgmmaWidth(inlineAsm);
    if (!n)
      return op->emitOpError("moe-gpu-emulate: no emulation of this inline "
                             "assembly (only wgmma.mma_async m64nNk16 with "
                             "bf16 A and B from shared memory and f32 D, "
                             "and the kernels' prefetch into L2)");
    // Operands: N / 2 accumulators, the descriptors of A and B, then
    // scale-d, imm-scale-a, imm-scale-b, imm-trans-a and imm-trans-b.
    ValueRange operands = inlineAsm.getOperands();
    int64_t fragments = *n / 2;
    for (int64_t i = 0; i < fragments; ++i)
      LLVM::StoreOp::create(b, loc, operands[i],
                            slot(static_cast<int32_t>(i)));
    SmallVector<Value> args = {scratch, constI32(*n)};
    for (Value v : operands.drop_front(fragments))
      args.push_back(v);
    call("moe_emu_wgmma", voidType, args);
    Value result = LLVM::PoisonOp::create(b, loc, inlineAsm.getType(0));
    for (int64_t i = 0; i < fragments; ++i)
      result = LLVM::InsertValueOp::create(
          b, loc, result,
          LLVM::LoadOp::create(b, loc, f32, slot(static_cast<int32_t>(i))),
          ArrayRef<int64_t>{i});
    inlineAsm.getResult(0).replaceAllUsesWith(result);
    inlineAsm.erase();
    return success();
  }
  if (isa<NVVM::WgmmaFenceAlignedOp>(op))
    return replaceByCall("moe_emu_wgmma_fence", {});
  if (isa<NVVM::WgmmaGroupSyncAlignedOp>(op))
    return replaceByCall("moe_emu_wgmma_commit", {});
  if (auto wait = dyn_cast<NVVM::WgmmaWaitGroupSyncOp>(op))
    return replaceByCall("moe_emu_wgmma_wait",
                         {constI32(static_cast<int32_t>(wait.getGroup()))});
  // The emulator has one memory: proxy fences order nothing more. It runs
  // the kernels of a stream one after the other: a kernel's wait for the
  // one before it (griddepcontrol) has nothing to wait for.
  if (isa<NVVM::FenceProxyOp, NVVM::GriddepcontrolOp>(op)) {
    op->erase();
    return success();
  }
  if (op->getDialect() == ctx->getLoadedDialect<NVVM::NVVMDialect>())
    return op->emitOpError("moe-gpu-emulate: no emulation of this operation");
  return success();
}

LogicalResult MoEGPUEmulatePass::rewriteBody(LLVM::LLVMFuncOp func) {
  if (func.isExternal())
    return success();
  // Scratch words for the warp-wide operations' fragments: mma.sync takes
  // 10 and returns 4, wgmma m64n256k16 takes and returns 128.
  OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
  Location loc = func.getLoc();
  Value one = LLVM::ConstantOp::create(b, loc, b.getI64Type(), 1);
  Value scratch = LLVM::AllocaOp::create(
      b, loc, LLVM::LLVMPointerType::get(&getContext()),
      LLVM::LLVMArrayType::get(b.getI32Type(), 128), one, /*alignment=*/16);
  // Every access to memory is checked by the emulator first: to shared
  // memory (an address-space-3 pointer) for bounds and races, to any other
  // memory but the thread's stack (allocas) for being inside a live
  // device allocation.
  DataLayout layout = DataLayout::closest(func);
  func.walk([&](Operation *op) {
    Value address;
    Type type;
    int32_t kind = 0;
    if (auto load = dyn_cast<LLVM::LoadOp>(op)) {
      address = load.getAddr();
      type = load.getType();
    } else if (auto store = dyn_cast<LLVM::StoreOp>(op)) {
      address = store.getAddr();
      type = store.getValue().getType();
      kind = 1;
    } else if (auto rmw = dyn_cast<LLVM::AtomicRMWOp>(op)) {
      address = rmw.getPtr();
      type = rmw.getVal().getType();
      kind = 2;
    } else if (auto cas = dyn_cast<LLVM::AtomicCmpXchgOp>(op)) {
      address = cas.getPtr();
      type = cas.getVal().getType();
      kind = 2;
    } else {
      return;
    }
    auto pointer = dyn_cast<LLVM::LLVMPointerType>(address.getType());
    if (!pointer)
      return;
    bool shared = pointer.getAddressSpace() == 3;
    Value root = address;
    while (auto gep = root.getDefiningOp<LLVM::GEPOp>())
      root = gep.getBase();
    if (!shared && root.getDefiningOp<LLVM::AllocaOp>())
      return;
    OpBuilder at(op);
    Location loc = op->getLoc();
    Type i64 = at.getI64Type(), i32 = at.getI32Type();
    Type ptr = LLVM::LLVMPointerType::get(op->getContext());
    LLVM::LLVMFuncOp check = runtimeFunction(
        shared ? "moe_emu_shared_access" : "moe_emu_global_access",
        LLVM::LLVMVoidType::get(op->getContext()), {ptr, i64, i32});
    int64_t bytes =
        static_cast<int64_t>(layout.getTypeSize(type).getFixedValue());
    LLVM::CallOp::create(at, loc, check,
                         ValueRange{address,
                                    LLVM::ConstantOp::create(at, loc, i64, bytes),
                                    LLVM::ConstantOp::create(at, loc, i32, kind)});
  });

  SmallVector<Operation *> ops;
  func.walk([&](Operation *op) {
    if (op != func)
      ops.push_back(op);
  });
  for (Operation *op : ops)
    if (failed(rewriteOp(op, scratch)))
      return failure();
  // Kernel and NVVM attributes mean nothing on the host (and the NVVM
  // translation would make the function a PTX kernel).
  SmallVector<StringAttr> drop;
  for (NamedAttribute attr : func->getDiscardableAttrs())
    if (attr.getName().strref().starts_with("nvvm.") ||
        attr.getName().strref().starts_with("gpu."))
      drop.push_back(attr.getName());
  for (StringAttr attr : drop)
    func->removeAttr(attr);
  return success();
}

/// `<kernel>__launch(void **params)`: loads each argument through its
/// pointer and calls the kernel.
void MoEGPUEmulatePass::addLaunchEntry(LLVM::LLVMFuncOp kernel) {
  MLIRContext *ctx = &getContext();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  OpBuilder b = OpBuilder::atBlockEnd(top.getBody());
  Location loc = kernel.getLoc();
  auto entry = LLVM::LLVMFuncOp::create(
      b, loc, (kernel.getName() + "__launch").str(),
      LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptr}));
  Block *body = entry.addEntryBlock(b);
  b.setInsertionPointToStart(body);
  SmallVector<Value> args;
  for (auto [i, type] :
       llvm::enumerate(kernel.getFunctionType().getParams())) {
    Value p = LLVM::GEPOp::create(b, loc, ptr, ptr, body->getArgument(0),
                                  ArrayRef<LLVM::GEPArg>{
                                      static_cast<int32_t>(i)});
    Value argPtr = LLVM::LoadOp::create(b, loc, ptr, p);
    args.push_back(LLVM::LoadOp::create(b, loc, type, argPtr));
  }
  LLVM::CallOp::create(b, loc, kernel, args);
  LLVM::ReturnOp::create(b, loc, ValueRange());
  launchEntry[kernelKey.lookup(kernel.getName())] = entry;
}

LogicalResult MoEGPUEmulatePass::rewriteLaunch(gpu::LaunchFuncOp launch) {
  std::string key =
      (launch.getKernelModuleName().strref() + "::" +
       launch.getKernelName().strref())
          .str();
  auto it = launchEntry.find(key);
  if (it == launchEntry.end())
    return launch.emitOpError("moe-gpu-emulate: no kernel ") << key;
  if (launch.hasClusterSize() || launch->getNumResults())
    return launch.emitOpError("moe-gpu-emulate: expected a launch without "
                              "clusters or async tokens, after gpu-to-llvm");
  auto parent = launch->getParentOfType<LLVM::LLVMFuncOp>();
  if (!parent)
    return launch.emitOpError("moe-gpu-emulate: expected the launch in an "
                              "llvm.func, after gpu-to-llvm");
  MLIRContext *ctx = &getContext();
  Type ptr = LLVM::LLVMPointerType::get(ctx);
  Type i64 = IntegerType::get(ctx, 64);
  Location loc = launch.getLoc();
  ValueRange operands = launch.getKernelOperands();
  SmallVector<Type> types(operands.getTypes());

  // The argument values and the pointers to them, in the entry block.
  OpBuilder b = OpBuilder::atBlockBegin(&parent.getBody().front());
  Value one = LLVM::ConstantOp::create(b, loc, i64, 1);
  auto argsType = LLVM::LLVMStructType::getLiteral(ctx, types);
  Value values = LLVM::AllocaOp::create(b, loc, ptr, argsType, one, 16);
  Value params = LLVM::AllocaOp::create(
      b, loc, ptr, LLVM::LLVMArrayType::get(ptr, std::max<size_t>(
                                                     operands.size(), 1)),
      one, 16);

  b.setInsertionPoint(launch);
  for (auto [i, v] : llvm::enumerate(operands)) {
    int32_t index = static_cast<int32_t>(i);
    Value slot = LLVM::GEPOp::create(b, loc, ptr, argsType, values,
                                     ArrayRef<LLVM::GEPArg>{0, index});
    LLVM::StoreOp::create(b, loc, v, slot);
    Value param = LLVM::GEPOp::create(b, loc, ptr, ptr, params,
                                      ArrayRef<LLVM::GEPArg>{index});
    LLVM::StoreOp::create(b, loc, slot, param);
  }
  auto toI64 = [&](Value v) -> Value {
    if (v.getType() == i64)
      return v;
    return LLVM::ZExtOp::create(b, loc, i64, v);
  };
  Value staticShared = LLVM::ConstantOp::create(
      b, loc, i64, kernelShared.lookup(key));
  Value dynamicShared = launch.getDynamicSharedMemorySize()
                            ? toI64(launch.getDynamicSharedMemorySize())
                            : LLVM::ConstantOp::create(b, loc, i64, 0);
  Value stream = launch.getAsyncObject();
  if (!stream)
    stream = LLVM::ZeroOp::create(b, loc, ptr);
  Value entry = LLVM::AddressOfOp::create(b, loc, it->second);
  Value name = stringConstant(b, loc, (it->second.getName() + "__name").str(),
                              key);
  gpu::KernelDim3 grid = launch.getGridSizeOperandValues();
  gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
  SmallVector<Value> args = {entry,           name,
                             toI64(grid.x),   toI64(grid.y),
                             toI64(grid.z),   toI64(block.x),
                             toI64(block.y),  toI64(block.z),
                             staticShared,    dynamicShared,
                             stream,          params};
  // The number of arguments, and their values and size, for a stream
  // capture to copy.
  int64_t valuesBytes = static_cast<int64_t>(
      DataLayout::closest(launch).getTypeSize(argsType).getFixedValue());
  args.push_back(LLVM::ConstantOp::create(
      b, loc, i64, static_cast<int64_t>(operands.size())));
  args.push_back(values);
  args.push_back(LLVM::ConstantOp::create(b, loc, i64, valuesBytes));
  SmallVector<Type> argTypes(ValueRange(args).getTypes());
  LLVM::LLVMFuncOp callee = runtimeFunction(
      "moe_emu_launch", LLVM::LLVMVoidType::get(ctx), argTypes);
  LLVM::CallOp::create(b, loc, callee, args);
  launch.erase();
  return success();
}

void MoEGPUEmulatePass::runOnOperation() {
  top = getOperation();
  SmallVector<gpu::GPUModuleOp> modules(top.getOps<gpu::GPUModuleOp>());
  for (gpu::GPUModuleOp module : modules)
    if (failed(moveModule(module)))
      return signalPassFailure();

  layOutSharedMemory();
  for (LLVM::LLVMFuncOp func : moved)
    if (failed(rewriteBody(func)))
      return signalPassFailure();

  // Every address space is the host's: pointer types everywhere in the
  // moved functions (values, block arguments, types in attributes).
  AttrTypeReplacer generic;
  generic.addReplacement(
      [](LLVM::LLVMPointerType type) -> std::optional<Type> {
        if (type.getAddressSpace() == 0)
          return std::nullopt;
        return LLVM::LLVMPointerType::get(type.getContext());
      });
  for (LLVM::LLVMFuncOp func : moved)
    generic.recursivelyReplaceElementsIn(func, /*replaceAttrs=*/true,
                                         /*replaceLocs=*/false,
                                         /*replaceTypes=*/true);

  for (LLVM::LLVMFuncOp func : moved)
    if (kernelKey.count(func.getName()))
      addLaunchEntry(func);

  SmallVector<gpu::LaunchFuncOp> launches;
  top.walk([&](gpu::LaunchFuncOp op) { launches.push_back(op); });
  for (gpu::LaunchFuncOp launch : launches)
    if (failed(rewriteLaunch(launch)))
      return signalPassFailure();

  for (auto &entry : sharedGlobals)
    if (Operation *global = top.lookupSymbol(entry.getKey()))
      global->erase();
  for (auto &entry : dynamicShared)
    if (Operation *global = top.lookupSymbol(entry.getKey()))
      global->erase();
  for (gpu::GPUModuleOp module : modules)
    module.erase();
  top->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
}

} // namespace
