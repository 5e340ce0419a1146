//===- Pipelines.cpp - moe compilation pipelines --------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"

#include "moe/Conversion/Passes.h"
#include "moe/Transforms/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

/// Tensors to buffers; results returned by a function are owned by the
/// caller, every other buffer is freed.
static void addBufferization(OpPassManager &pm) {
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createConvertBufferizationToMemRefPass());
}

/// The passes both pipelines start with: chains of moe ops that compute a
/// whole block formed into layers (moe-form-layers), then, as the options
/// ask, f32 and f16 layers narrowed to bf16 (moe-narrow-to-bf16), run-time
/// knobs for tau and the capacity factors (moe-expose-knobs), and each
/// layer's statistics (moe-insert-stats).
static void addFirstPasses(OpPassManager &pm, bool cuda, bool narrowToBF16,
                           bool knobs, bool stats, bool coactivation) {
  // On the GPU a chain left apart runs on the host: a remark says why.
  moe::MoEFormLayersOptions form;
  form.explain = cuda;
  pm.addPass(moe::createMoEFormLayers(form));
  if (narrowToBF16)
    pm.addPass(moe::createMoENarrowToBF16());
  if (knobs)
    pm.addPass(moe::createMoEExposeKnobs());
  if (stats) {
    moe::MoEInsertStatsOptions insert;
    insert.coactivation = coactivation;
    pm.addPass(moe::createMoEInsertStats(insert));
  }
}

void mlir::moe::buildMoECPUPipeline(OpPassManager &pm,
                                    const CPUPipelineOptions &options) {
  // moe ops to upstream ops on tensors and runtime calls.
  addFirstPasses(pm, /*cuda=*/false, options.narrowToBF16, options.knobs,
                 options.stats, options.statsCoactivation);
  pm.addPass(createMoEDecompose());
  if (!options.reference) {
    pm.addPass(createMoEFuseGating());
    pm.addPass(createMoEFuseExpertIO());
    pm.addPass(createConvertMoEToCPU());
  }
  pm.addPass(createConvertMoEToRuntime());
  pm.addPass(createConvertMoEToLinalg());
  // Elementwise arith on whole tensors (sums of always-on terms) to linalg.
  pm.addPass(createConvertElementwiseToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  addBufferization(pm);
  pm.addPass(createConvertMoEWeightBuffers());
  pm.addPass(createConvertMoEUKernels());
  pm.addPass(createMoELowerCopies());

  // Loops, then LLVM.
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createConvertMathToLibmPass());
  pm.addPass(createConvertToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
  if (options.check) {
    MoECheckLoweredOptions check;
    check.dialects = {"builtin", "llvm"};
    check.stage = "moe-cpu-pipeline";
    pm.addPass(createMoECheckLowered(check));
  }
}

/// MLIR 22's gpu-lower-to-nvvm-pipeline, pass for pass, with
/// moe-gpu-attach-targets in the place of nvvm-attach-target (sm_90a kernels
/// get a module of their own), moe-gpu-dependent-launch after the kernels'
/// conversion to NVVM, and moe-gpu-emulate in the place of
/// gpu-module-to-binary when `emulate` is set: the emulator runs the very
/// code the GPU would.
static void addLowerToNVVM(OpPassManager &pm,
                           const gpu::GPUToNVVMPipelineOptions &options,
                           bool emulate) {
  pm.addPass(createConvertNVGPUToNVVMPass());
  pm.addPass(createGpuKernelOutliningPass());
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(createSCFToControlFlowPass());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  moe::MoEGPUAttachTargetsOptions target;
  target.triple = options.cubinTriple;
  target.chip = options.cubinChip;
  target.features = options.cubinFeatures;
  target.optLevel = options.optLevel;
  pm.addPass(moe::createMoEGPUAttachTargets(target));
  pm.addPass(createLowerAffinePass());
  pm.addPass(createArithToLLVMConversionPass());
  ConvertIndexToLLVMPassOptions index;
  index.indexBitwidth = options.indexBitWidth;
  pm.addPass(createConvertIndexToLLVMPass(index));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  ConvertGpuOpsToNVVMOpsOptions device;
  device.useBarePtrCallConv = options.kernelUseBarePtrCallConv;
  device.indexBitwidth = options.indexBitWidth;
  pm.addNestedPass<gpu::GPUModuleOp>(createConvertGpuOpsToNVVMOps(device));
  // Kernels for sm_90 and newer wait for the kernel before them, so that
  // the runtime may overlap their launches (MOE_GPU_DEPENDENT_LAUNCH).
  pm.addNestedPass<gpu::GPUModuleOp>(moe::createMoEGPUDependentLaunch());
  pm.addNestedPass<gpu::GPUModuleOp>(createCanonicalizerPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createCSEPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createReconcileUnrealizedCastsPass());

  GpuToLLVMConversionPassOptions host;
  host.hostBarePtrCallConv = options.hostUseBarePtrCallConv;
  host.kernelBarePtrCallConv = options.kernelUseBarePtrCallConv;
  pm.addPass(createGpuToLLVMConversionPass(host));
  if (emulate) {
    pm.addPass(moe::createMoEGPUEmulate());
  } else {
    GpuModuleToBinaryPassOptions binary;
    binary.compilationTarget = options.cubinFormat;
    pm.addPass(createGpuModuleToBinaryPass(binary));
  }
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

llvm::StringRef mlir::moe::CUDAPipelineOptions::formatName(Format format) {
  switch (format) {
  case Format::Isa:
    return "isa";
  case Format::Bin:
    return "bin";
  case Format::Fatbin:
    return "fatbin";
  }
  llvm_unreachable("unknown CUDA binary format");
}

void mlir::moe::buildMoECUDAPipeline(OpPassManager &pm,
                                     const CUDAPipelineOptions &options) {
  // Layers to calls of the kernel library's host functions, on buffers; the
  // assignments come from the dispatch offsets. Checkpoint weights become
  // runtime buffers (unpacked), statistics and knobs runtime calls, as on
  // the CPU: the library takes tau and the capacity factor as host scalars
  // on every call.
  addFirstPasses(pm, /*cuda=*/true, options.narrowToBF16, options.knobs,
                 options.stats, options.statsCoactivation);
  ConvertMoEToGPUKernelsOptions layers;
  layers.deviceEntries = options.deviceEntries;
  pm.addPass(createConvertMoEToGPUKernels(layers));
  pm.addPass(createConvertMoEToRuntime());
  // moe ops outside a layer (standalone routing, experts or losses), which
  // convert-moe-to-gpu-kernels warned of: the reference lowering, on the
  // host.
  pm.addPass(createConvertMoEToLinalg());
  // Host arithmetic on whole tensors around the layers (moe-narrow-to-bf16's
  // roundings) as loops.
  pm.addPass(createConvertElementwiseToLinalgPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());

  // The library comes after bufferization: its gpu.launch_func ops have
  // unknown effects for buffer deallocation.
  addBufferization(pm);
  // The reference lowering's copies as linalg.copy, so as loops (no
  // runtime library for them).
  pm.addPass(createMoELowerCopies());
  pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  pm.addPass(createConvertMoEWeightBuffers());
  pm.addPass(createMoELinkGPUKernels());
  // Host functions of the library that no layer calls.
  pm.addPass(createSymbolDCEPass());

  // The GPU lowering of lib/GPU/Kernels/README.md: synchronous host GPU ops
  // on one stream per function, then device and host helpers inlined (a
  // function that takes a stream into its callers), kernels to a
  // gpu.binary.
  pm.addNestedPass<func::FuncOp>(createMoEGPUAsyncRegion());
  pm.addPass(createInlinerPass());
  pm.addPass(createSymbolDCEPass());
  gpu::GPUToNVVMPipelineOptions nvvm;
  nvvm.cubinChip = options.chip;
  nvvm.cubinFeatures = options.features;
  nvvm.cubinFormat = CUDAPipelineOptions::formatName(options.format).str();
  nvvm.optLevel = 3;
  addLowerToNVVM(pm, nvvm, options.emulate);
  if (options.check) {
    // gpu.binary and gpu.launch_func stay until translation to LLVM IR
    // (none when emulated).
    MoECheckLoweredOptions check;
    check.dialects = {"builtin", "llvm"};
    if (!options.emulate)
      check.dialects.push_back("gpu");
    check.stage = "moe-cuda-pipeline";
    pm.addPass(createMoECheckLowered(check));
  }
}

void mlir::moe::buildGPUEmulationPipeline(OpPassManager &pm) {
  gpu::GPUToNVVMPipelineOptions nvvm;
  nvvm.optLevel = 3;
  addLowerToNVVM(pm, nvvm, /*emulate=*/true);
}

void mlir::moe::buildGPULowerToNVVMPipeline(
    OpPassManager &pm, const gpu::GPUToNVVMPipelineOptions &options) {
  addLowerToNVVM(pm, options, /*emulate=*/false);
}

void mlir::moe::registerMoEPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "moe-cpu-pipeline",
      "Compile moe IR for the host CPU down to the LLVM dialect",
      buildMoECPUPipeline);
  PassPipelineRegistration<CUDAPipelineOptions>(
      "moe-cuda-pipeline",
      "Compile moe IR whose layers the CUDA kernel library supports to the "
      "LLVM dialect for the host and a gpu.binary for the GPU (other moe "
      "ops run on the host, with the reference lowering)",
      buildMoECUDAPipeline);
  PassPipelineRegistration<gpu::GPUToNVVMPipelineOptions>(
      "moe-gpu-lower-to-nvvm",
      "MLIR's gpu-lower-to-nvvm-pipeline with moe-gpu-attach-targets in the "
      "place of nvvm-attach-target: kernels marked moe.sm90a are compiled "
      "for sm_90a in a module of their own",
      buildGPULowerToNVVMPipeline);
  PassPipelineRegistration<>(
      "moe-gpu-emulation-pipeline",
      "moe-gpu-lower-to-nvvm with moe-gpu-emulate in the place "
      "of gpu-module-to-binary: GPU code to host code whose kernels the SIMT "
      "emulator (libmoe_cuda_emulator) runs",
      buildGPUEmulationPipeline);
}
