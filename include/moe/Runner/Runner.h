//===- Runner.h - JIT-compile and call moe functions ------------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Compiles one function of a module for the host with moe-cpu-pipeline and
// calls it on host arrays: what moe-run does, as a library.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNNER_RUNNER_H
#define MOE_RUNNER_RUNNER_H

#include "moe/Support/Npy.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>
#include <vector>

namespace moe::rt {
class Model;
struct Manifest;
} // namespace moe::rt

namespace mlir {
class ExecutionEngine;
namespace moe {

/// The type of one argument or result of the entry function: a ranked
/// tensor (`shape` may hold ShapedType::kDynamic) or a scalar (`shape` is
/// empty and `isScalar` is set).
struct ValueSpec {
  Type elementType;
  SmallVector<int64_t> shape;
  bool isScalar = false;
  npy::DType dtype;

  std::string str() const;
};

struct RunnerOptions {
  /// LLVM optimization level of the JIT (0 to 3).
  unsigned optLevel = 3;
  /// Checkpoint to bind `moe.weight` tensors from, instead of the module's
  /// `moe.checkpoint`.
  std::string checkpoint;
  /// Record expert statistics (moe-insert-stats), with co-activation.
  bool stats = true;
  bool coactivation = false;
  /// Read tau and capacity factors from run-time knobs (moe-expose-knobs).
  bool knobs = true;
  /// Compute f32 and f16 layers in bf16 (moe-narrow-to-bf16).
  bool narrowToBF16 = false;
  /// Compile with the reference lowering only (no CPU kernels).
  bool reference = false;
  /// Compile with moe-cuda-pipeline (PTX for cudaChip, compiled by the
  /// driver)
  /// and load this mgpu* runtime library (libmoe_cuda_runtime) into the JIT.
  /// Empty: compile for the CPU.
  std::string cudaRuntime;
  /// With cudaRuntime the SIMT emulator (libmoe_cuda_emulator): compile with
  /// moe-cuda-pipeline{emulate=1}, the kernels as host code.
  bool cudaEmulate = false;
  /// With cudaRuntime the chip of the portable kernels' PTX: sm_80 runs on
  /// every GPU the kernel library supports; sm_90 or newer also lets them
  /// overlap their launches (moe-gpu-dependent-launch).
  std::string cudaChip = "sm_80";
};

class CompiledFunction {
public:
  /// Compiles `entry` of `module` (which it lowers in place).
  static llvm::Expected<std::unique_ptr<CompiledFunction>>
  compile(ModuleOp module, StringRef entry, const RunnerOptions &options);
  ~CompiledFunction();

  ArrayRef<ValueSpec> arguments() const { return args; }
  ArrayRef<ValueSpec> results() const { return resultSpecs; }
  StringRef name() const { return entryName; }

  /// Checks `inputs` against the arguments (count, dtype, rank and static
  /// sizes) and, compiled for CUDA, the tokens of the arguments that are a
  /// layer's input against cudaMaxTokens, with messages that name the
  /// argument.
  llvm::Error checkInputs(ArrayRef<const npy::Array *> inputs,
                          ArrayRef<std::string> inputNames) const;

  /// Calls the function; inputs must have passed checkInputs.
  llvm::Expected<std::vector<npy::Array>>
  call(ArrayRef<const npy::Array *> inputs) const;

  /// The runtime model (bound weights, statistics), if the module uses the
  /// runtime.
  ::moe::rt::Model *model() const { return runtimeModel.get(); }

private:
  CompiledFunction() = default;

  std::string entryName;
  SmallVector<ValueSpec> args;
  SmallVector<ValueSpec> resultSpecs;
  /// Argument -> most tokens per call, for the arguments that are the
  /// input of a layer lowered to the CUDA kernel library.
  llvm::SmallDenseMap<unsigned, int64_t> tokenLimits;
  std::unique_ptr<ExecutionEngine> engine;
  std::unique_ptr<::moe::rt::Model> runtimeModel;
  void (*packed)(void **) = nullptr;
};

/// Forms the chains of moe ops in `module` that compute a whole layer into
/// moe.layer ops (moe-form-layers), as both pipelines do first. Call it
/// before reading the layers (collectLayers, the token limits of a CUDA
/// build), so that those are the layers that the pipeline compiles.
LogicalResult formLayers(ModuleOp module);

/// The layer functions of `module` as the runtime sees them: public
/// functions from one `[T, d]` float tensor to one `[T, d_out]` tensor of
/// the same element type. With `cuda`, each takes at most the fewest
/// tokens of cudaMaxTokens over its moe.layer ops. Call after formLayers,
/// before lowering.
void collectLayers(ModuleOp module, ::moe::rt::Manifest &manifest,
                   bool cuda = false);

/// The weights, statistics and checkpoint that convert-moe-to-runtime
/// recorded on the lowered `module`.
llvm::Error collectRuntimeTables(ModuleOp module, ::moe::rt::Manifest &manifest);

/// Marks the tensor arguments of `func` read-only for bufferization: the
/// caller's arrays are never written.
void markArgumentsReadOnly(Operation *func);

/// Registers what the tools that compile and run moe modules parse and
/// translate: every upstream dialect and extension, the moe dialects, and
/// the LLVM IR translations (GPU ones included).
void registerRunnerDialects(DialectRegistry &registry);

/// The npy dtype that holds elements of `type`, if any.
std::optional<npy::DType> dtypeFor(Type type);

} // namespace moe
} // namespace mlir

#endif // MOE_RUNNER_RUNNER_H
