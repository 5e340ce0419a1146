//===- Pipelines.h - moe compilation pipelines ------------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class OpPassManager;
namespace moe {

/// Options of `moe-cpu-pipeline`.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
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
/// dialect for the host: gating and expert computation fused and lowered to
/// the runtime's CPU kernels (unless `reference`), everything else by the
/// reference lowering, then bufferization, loops, and conversion to LLVM,
/// ending in a check that nothing else is left.
void buildMoECPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Registers `moe-cpu-pipeline` with the global pass registry.
void registerMoEPipelines();

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
