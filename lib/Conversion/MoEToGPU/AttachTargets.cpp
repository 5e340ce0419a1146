//===- AttachTargets.cpp - NVVM targets, sm_90a kernels on their own ------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// moe-gpu-attach-targets: the kernels of a gpu.module marked `moe.sm90a`
// move into a sibling `<module>_sm90a` compiled for sm_90a, since a module
// has one binary per target and wgmma exists only on the
// architecture-specific target; every module without targets then gets the
// pass's NVVM target, as nvvm-attach-target would attach it.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

#include "llvm/ADT/StringSet.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUATTACHTARGETS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

constexpr StringLiteral kSm90aAttr = "moe.sm90a";

bool isSm90aKernel(Operation &op) {
  auto func = dyn_cast<gpu::GPUFuncOp>(op);
  return func && func.isKernel() && func->hasAttr(kSm90aAttr);
}

/// Erases the private functions of `module` that nothing in it calls
/// (transitively), so that a helper of the kernels that moved leaves with
/// them.
void eraseUnusedPrivateFunctions(gpu::GPUModuleOp module) {
  bool erased = true;
  while (erased) {
    erased = false;
    for (Operation &op : llvm::make_early_inc_range(*module.getBody())) {
      auto func = dyn_cast<FunctionOpInterface>(&op);
      if (!func || !func.isPrivate() || isa<gpu::GPUFuncOp>(op))
        continue;
      if (SymbolTable::symbolKnownUseEmpty(func, module)) {
        op.erase();
        erased = true;
      }
    }
  }
}

struct MoEGPUAttachTargetsPass
    : moe::impl::MoEGPUAttachTargetsBase<MoEGPUAttachTargetsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp top = getOperation();
    MLIRContext *ctx = &getContext();
    SymbolTable symbols(top);
    for (auto module :
         llvm::to_vector(top.getOps<gpu::GPUModuleOp>())) {
      if (llvm::none_of(*module.getBody(), isSm90aKernel))
        continue;
      if (module.getTargetsAttr()) {
        module.emitError("moe-gpu-attach-targets: a module with targets of "
                         "its own cannot hold `moe.sm90a` kernels; give "
                         "them a module with the sm_90a target instead");
        return signalPassFailure();
      }
      std::string name = (module.getName() + "_sm90a").str();
      if (symbols.lookup(name)) {
        module.emitError("moe-gpu-attach-targets: the symbol @")
            << name << " for the sm_90a kernels is taken";
        return signalPassFailure();
      }
      OpBuilder b(module);
      b.setInsertionPointAfter(module);
      auto arch = cast<gpu::GPUModuleOp>(b.clone(*module));
      arch.setName(name);
      symbols.insert(arch);
      llvm::StringSet<> moved;
      for (Operation &op : llvm::make_early_inc_range(*arch.getBody())) {
        auto func = dyn_cast<gpu::GPUFuncOp>(op);
        if (!func || !func.isKernel())
          continue;
        if (isSm90aKernel(op))
          func->removeAttr(kSm90aAttr);
        else
          op.erase();
      }
      for (Operation &op : llvm::make_early_inc_range(*module.getBody()))
        if (isSm90aKernel(op)) {
          moved.insert(cast<gpu::GPUFuncOp>(op).getName());
          op.erase();
        }
      eraseUnusedPrivateFunctions(module);
      eraseUnusedPrivateFunctions(arch);
      arch.setTargetsAttr(b.getArrayAttr({NVVM::NVVMTargetAttr::get(
          ctx, static_cast<int>(optLevel), triple, "sm_90a", "+ptx80")}));
      StringRef from = module.getName();
      top.walk([&](gpu::LaunchFuncOp launch) {
        if (launch.getKernelModuleName() == from &&
            moved.contains(launch.getKernelName()))
          launch.setKernelAttr(SymbolRefAttr::get(
              ctx, name, {FlatSymbolRefAttr::get(ctx, launch.getKernelName())}));
      });
    }
    auto target = NVVM::NVVMTargetAttr::get(ctx, static_cast<int>(optLevel),
                                            triple, chip, features);
    for (auto module : top.getOps<gpu::GPUModuleOp>())
      if (!module.getTargetsAttr())
        module.setTargetsAttr(ArrayAttr::get(ctx, {target}));
  }
};

} // namespace
