//===- DependentLaunch.cpp - Kernels that wait for the kernel before ------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// moe-gpu-dependent-launch: every kernel of a gpu.module for compute
// capability 9.0 or newer begins with `griddepcontrol.wait` and
// `griddepcontrol.launch_dependents`, and the module is marked with the
// global `moe_dependent_launch`, so that the runtime may launch its kernels
// with programmatic stream serialization (docs/cuda-runtime.md).
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/Builders.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEGPUDEPENDENTLAUNCH
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;

namespace {

/// The global whose presence in a module's binary tells the runtime that
/// its kernels wait for the kernel before them (CudaRuntime.cpp reads it).
constexpr StringLiteral kMarker = "moe_dependent_launch";

/// Whether every target of `module` is an NVVM target of compute
/// capability 9.0 or newer (there is at least one).
bool targetsGridDependencies(gpu::GPUModuleOp module) {
  ArrayAttr targets = module.getTargetsAttr();
  if (!targets || targets.empty())
    return false;
  return llvm::all_of(targets, [](Attribute attr) {
    auto target = dyn_cast<NVVM::NVVMTargetAttr>(attr);
    return target && moe::cudaChipArchitecture(target.getChip()) >= 90;
  });
}

/// The entry block of `op` when it is a kernel with a body: a `gpu.func`
/// kernel, or an `llvm.func` that `convert-gpu-to-nvvm` made of one.
Block *kernelEntry(Operation &op) {
  if (auto func = dyn_cast<gpu::GPUFuncOp>(op))
    return func.isKernel() ? &func.getBody().front() : nullptr;
  auto func = dyn_cast<LLVM::LLVMFuncOp>(op);
  if (!func || func.isExternal() ||
      !(func->hasAttr(gpu::GPUDialect::getKernelFuncAttrName()) ||
        func->hasAttr(NVVM::NVVMDialect::getKernelFuncAttrName())))
    return nullptr;
  return &func.getBody().front();
}

struct MoEGPUDependentLaunchPass
    : moe::impl::MoEGPUDependentLaunchBase<MoEGPUDependentLaunchPass> {
  void runOnOperation() override {
    gpu::GPUModuleOp module = getOperation();
    if (!targetsGridDependencies(module))
      return;
    if (Operation *taken = SymbolTable::lookupSymbolIn(module, kMarker)) {
      // Already marked (the pass ran before): the kernels wait.
      if (isa<LLVM::GlobalOp>(taken))
        return;
      taken->emitOpError("moe-gpu-dependent-launch: the symbol @")
          << kMarker << " is taken";
      return signalPassFailure();
    }
    OpBuilder b(&getContext());
    bool any = false;
    for (Operation &op : *module.getBody()) {
      Block *entry = kernelEntry(op);
      if (!entry)
        continue;
      b.setInsertionPointToStart(entry);
      NVVM::GriddepcontrolOp::create(b, op.getLoc(),
                                     NVVM::GridDepActionKind::wait);
      NVVM::GriddepcontrolOp::create(
          b, op.getLoc(), NVVM::GridDepActionKind::launch_dependents);
      any = true;
    }
    if (!any)
      return;
    b.setInsertionPointToStart(module.getBody());
    auto i32 = b.getI32Type();
    LLVM::GlobalOp::create(b, module.getLoc(), i32, /*isConstant=*/true,
                           LLVM::Linkage::External, kMarker,
                           b.getI32IntegerAttr(1), /*alignment=*/4,
                           /*addrSpace=*/1);
  }
};

} // namespace

unsigned mlir::moe::cudaChipArchitecture(StringRef chip) {
  unsigned arch = 0;
  if (!chip.consume_front("sm_") || chip.consumeInteger(10, arch) ||
      !(chip.empty() || chip == "a"))
    return 0;
  return arch;
}
