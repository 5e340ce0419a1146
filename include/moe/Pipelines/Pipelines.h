//===- Pipelines.h - moe compilation pipelines ------------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
namespace moe {

/// Options of `moe-cpu-pipeline`.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
  PassOptions::Option<bool> narrowToBF16{
      *this, "narrow-to-bf16",
      llvm::cl::desc("Compute f32 and f16 layers in bf16 (moe-narrow-to-bf16)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> stats{
      *this, "stats",
      llvm::cl::desc("Record each layer's expert statistics in the runtime "
                     "(moe-insert-stats)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> statsCoactivation{
      *this, "stats-coactivation",
      llvm::cl::desc("Also count co-activated expert pairs (moe-insert-stats "
                     "coactivation)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> knobs{
      *this, "knobs",
      llvm::cl::desc("Read threshold routing's tau and capacity factors from "
                     "run-time knobs (moe-expose-knobs)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> check{
      *this, "check",
      llvm::cl::desc("End with moe-check-lowered (only llvm and builtin ops "
                     "may remain)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> reference{
      *this, "reference",
      llvm::cl::desc("Compile with the reference lowering only, without the "
                     "fused ops and the runtime's CPU kernels"),
      llvm::cl::init(false)};
};

/// moe IR (or any mix of moe and upstream ops on tensors) to the LLVM
/// dialect for the host: chains of moe ops that compute a whole layer formed
/// into one (moe-form-layers), gating and expert computation fused and
/// lowered to the runtime's CPU kernels (unless `reference`), everything
/// else by the reference lowering, then bufferization, loops, and
/// conversion to LLVM, ending in a check that nothing else is left.
void buildMoECPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Options of `moe-cuda-pipeline`.
struct CUDAPipelineOptions : public PassPipelineOptions<CUDAPipelineOptions> {
  PassOptions::Option<bool> narrowToBF16{
      *this, "narrow-to-bf16",
      llvm::cl::desc("Compute f32 and f16 layers in bf16 (moe-narrow-to-bf16)"),
      llvm::cl::init(false)};
  PassOptions::Option<std::string> chip{
      *this, "chip", llvm::cl::desc("Target GPU (cubin-chip)"),
      llvm::cl::init("sm_90")};
  PassOptions::Option<std::string> features{
      *this, "features", llvm::cl::desc("PTX features (cubin-features)"),
      llvm::cl::init("+ptx80")};
  enum class Format { Isa, Bin, Fatbin };
  /// "isa", "bin" or "fatbin": the option's spelling, gpu-module-to-binary's
  /// format and the manifest's.
  static llvm::StringRef formatName(Format format);
  PassOptions::Option<Format> format{
      *this, "format",
      llvm::cl::desc("Device code in gpu.binary (cubin-format)"),
      llvm::cl::init(Format::Bin),
      llvm::cl::values(
          clEnumValN(Format::Isa, "isa", "PTX, compiled by the driver"),
          clEnumValN(Format::Bin, "bin", "a cubin for chip"),
          clEnumValN(Format::Fatbin, "fatbin", "a fatbin for chip"))};
  PassOptions::Option<bool> stats{
      *this, "stats",
      llvm::cl::desc("Record each layer's expert statistics in the runtime "
                     "(moe-insert-stats)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> statsCoactivation{
      *this, "stats-coactivation",
      llvm::cl::desc("Also count co-activated expert pairs (moe-insert-stats "
                     "coactivation; device entry points count them on the "
                     "GPU)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> knobs{
      *this, "knobs",
      llvm::cl::desc("Read threshold routing's tau and capacity factors from "
                     "run-time knobs (moe-expose-knobs)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> check{
      *this, "check",
      llvm::cl::desc("End with moe-check-lowered (only llvm, builtin and "
                     "gpu ops may remain)"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> deviceEntries{
      *this, "device-entries",
      llvm::cl::desc("Also emit a device entry point for each function that "
                     "is one layer (convert-moe-to-gpu-kernels; "
                     "moe_model_run_layer_async)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> emulate{
      *this, "emulate",
      llvm::cl::desc("Kernels as host code for the SIMT emulator "
                     "(moe-gpu-emulate, libmoe_cuda_emulator) instead of a "
                     "gpu.binary"),
      llvm::cl::init(false)};
};

/// moe IR whose layers the CUDA kernel library supports to the LLVM
/// dialect for the host plus a gpu.binary for `chip`: each moe.layer (and
/// each chain of moe ops that moe-form-layers forms into one) becomes calls
/// of the library's host functions
/// (convert-moe-to-gpu-kernels), then bufferization and buffer
/// deallocation, then the library is linked in (moe-link-gpu-kernels) and
/// the GPU code is lowered as in lib/GPU/Kernels/README.md. Checkpoint
/// weights (moe.weight) become runtime weight buffers, statistics (with
/// `stats`) and knobs (with `knobs`: tau and capacity factors, host scalars
/// of the library's calls) runtime calls, as on the CPU; layers are not
/// decomposed.
void buildMoECUDAPipeline(OpPassManager &pm,
                          const CUDAPipelineOptions &options);

/// moe-gpu-lower-to-nvvm with moe-gpu-emulate in the place of
/// gpu-module-to-binary: code in the gpu, nvgpu and nvvm dialects (GPU
/// operations on the host chained by async tokens, as that pipeline wants
/// them) to the LLVM dialect for the host, the kernels included, run by the
/// SIMT emulator of libmoe_cuda_emulator.
void buildGPUEmulationPipeline(OpPassManager &pm);

/// MLIR 22's gpu-lower-to-nvvm-pipeline with moe-gpu-attach-targets in the
/// place of nvvm-attach-target, so that kernels marked `moe.sm90a` get a
/// module (and binary) for sm_90a of their own; the lowering of the CUDA
/// kernel library (lib/GPU/Kernels).
void buildGPULowerToNVVMPipeline(OpPassManager &pm,
                                 const gpu::GPUToNVVMPipelineOptions &options);

/// Registers `moe-cpu-pipeline`, `moe-cuda-pipeline`,
/// `moe-gpu-lower-to-nvvm` and `moe-gpu-emulation-pipeline` with the global
/// pass registry.
void registerMoEPipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
