//===- KernelLibrary.cpp - link the CUDA kernel library into a module -----===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// moe-link-gpu-kernels: the sources of lib/GPU/Kernels, embedded at build
// time, parsed into the module's context and merged into a module that
// declares their host functions.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Parser/Parser.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOELINKGPUKERNELS
#include "moe/Conversion/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

struct KernelSource {
  const char *name;
  const char *text;
};

// The files of lib/GPU/Kernels: the kernels in the order a layer runs them,
// then the host function that chains them.
const KernelSource kernelSources[] = {
#include "KernelLibrary.inc"
};

struct MoELinkGPUKernelsPass
    : public moe::impl::MoELinkGPUKernelsBase<MoELinkGPUKernelsPass> {
  void runOnOperation() override;
};

} // namespace

/// Whether `module` declares a host function of the library `library`.
static bool isDeclaredIn(ModuleOp library, SymbolTable &symbols) {
  for (auto func : library.getOps<func::FuncOp>()) {
    auto own = symbols.lookup<func::FuncOp>(func.getSymName());
    if (own && own.isDeclaration())
      return true;
  }
  return false;
}

/// Merges the top-level ops of `library` into `module`: a declaration of the
/// same function and type is replaced by the definition, any other symbol
/// with a library name is a clash.
static LogicalResult mergeLibrary(ModuleOp module, SymbolTable &symbols,
                                  ModuleOp library, StringRef fileName) {
  for (Operation &op : llvm::make_early_inc_range(*library.getBody())) {
    auto symbol = dyn_cast<SymbolOpInterface>(&op);
    if (!symbol)
      continue;
    StringRef name = symbol.getName();
    if (Operation *own = symbols.lookup(name)) {
      auto ownFunc = dyn_cast<func::FuncOp>(own);
      auto libFunc = dyn_cast<func::FuncOp>(&op);
      if (!ownFunc || !libFunc || !ownFunc.isDeclaration() ||
          ownFunc.getFunctionType() != libFunc.getFunctionType())
        return own->emitError()
               << "symbol '" << name << "' clashes with the CUDA kernel "
               << "library (" << fileName << "): expected no other symbol "
               << "of that name, or a declaration of type "
               << (libFunc ? libFunc.getFunctionType() : Type()) << "; found '"
               << own->getName() << "'";
      symbols.erase(own);
    }
    op.remove();
    // Private, and internal in LLVM: modules compiled separately each have
    // their own copy. Declarations (runtime functions) stay external.
    if (auto func = dyn_cast<func::FuncOp>(&op); func && !func.isDeclaration()) {
      func.setPrivate();
      func->setAttr(
          "llvm.linkage",
          LLVM::LinkageAttr::get(op.getContext(), LLVM::Linkage::Internal));
    }
    symbols.insert(&op);
  }
  return success();
}

void MoELinkGPUKernelsPass::runOnOperation() {
  ModuleOp module = getOperation();
  MLIRContext *ctx = &getContext();
  SymbolTable symbols(module);

  // Parse every file first: the host functions of one file may be
  // declared while the kernels they need come from the same file only.
  SmallVector<std::pair<OwningOpRef<ModuleOp>, StringRef>> libraries;
  bool used = false;
  for (const KernelSource &source : kernelSources) {
    // Verified once merged: layer.mlir launches the kernels of the other
    // files, which a file on its own does not define.
    ParserConfig config(ctx, /*verifyAfterParse=*/false);
    OwningOpRef<ModuleOp> library =
        parseSourceString<ModuleOp>(source.text, config, source.name);
    if (!library) {
      module.emitError() << "cannot parse the embedded CUDA kernel library "
                         << "file " << source.name;
      return signalPassFailure();
    }
    used |= isDeclaredIn(*library, symbols);
    libraries.emplace_back(std::move(library), source.name);
  }
  if (!used)
    return;

  for (auto &[library, name] : libraries)
    if (failed(mergeLibrary(module, symbols, *library, name)))
      return signalPassFailure();
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  UnitAttr::get(ctx));
}
