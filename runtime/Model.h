//===- Model.h - a compiled module bound to its weights ---------*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A Model is a manifest bound to a checkpoint: a pointer per weight id
// (into the memory-mapped file when the tensor can be used as it is, into a
// buffer packed once otherwise), and the statistics counters. Generated
// code reaches the model of the current thread (ScopedModel) through the
// runtime entry points (Entry.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_MODEL_H
#define MOE_RUNTIME_MODEL_H

#include "EntryPoints.h"
#include "Manifest.h"

#include "moe/Checkpoint/SafeTensors.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace moe::rt {

/// Counters of one statistics id.
struct Counters {
  std::vector<int64_t> assignments;
  std::vector<int64_t> dropped;
  /// Whether the layer counts co-activated pairs (its manifest entry says
  /// so); `coactivation` then has E (E - 1) / 2 entries, none for one
  /// expert.
  bool countsCoactivation = false;
  /// Tokens that chose both experts i < j, at pairIndex(i, j, E).
  std::vector<int64_t> coactivation;
  int64_t tokens = 0;
  int64_t calls = 0;

  /// Starts counting co-activated pairs (from zero), once.
  void countCoactivation() {
    if (countsCoactivation)
      return;
    countsCoactivation = true;
    size_t numExperts = assignments.size();
    coactivation.assign(numExperts * (numExperts - 1) / 2, 0);
  }

  /// Index of the pair (i, j), i < j < numExperts, in `coactivation`.
  static size_t pairIndex(int64_t i, int64_t j, int64_t numExperts) {
    return static_cast<size_t>(i * (2 * numExperts - i - 1) / 2 + (j - i - 1));
  }
};

class Model {
public:
  /// Binds every weight of `manifest` from `checkpointPath` (the manifest's
  /// checkpoint when empty). Errors name the tensor and what was expected.
  static llvm::Expected<std::unique_ptr<Model>> load(Manifest manifest,
                                                     llvm::StringRef path);

  const Manifest &manifest() const { return info; }
  /// The bound data of weight `id`, or nullptr for an unknown id.
  const void *weight(int64_t id) const;
  /// The copy of weight `id` in GPU memory, made at the first request
  /// through libmoe_cuda_runtime (which the process must have loaded) and
  /// kept until the model is destroyed; nullptr for an unknown id.
  const void *deviceWeight(int64_t id);

  ~Model();

  /// Copies every weight and knob that a layer reads in GPU memory, and
  /// every statistics table, to the GPU now (what the first calls would
  /// do).
  void upload();
  /// Whether `stream` is being captured into a CUDA graph (false without a
  /// GPU runtime in the process).
  static bool isCapturing(void *stream);
  /// The moe_cuda_check of the CUDA runtime or emulator in the process: 0
  /// when the kernel library can run (or the process has neither), 1
  /// without a usable GPU, 2 for a bad MOE_GPU_* setting; `why` says why.
  static int32_t checkGpu(std::string &why);
  /// Whether the device that the CUDA runtime in the process uses runs GPU
  /// code for `chip` in `format` (moe_cuda_can_run); else `why` says why.
  /// True without a CUDA runtime.
  static bool gpuCanRun(const std::string &chip, const std::string &format,
                        std::string &why);
  /// The moe_cuda_catch_begin and moe_cuda_catch_end of the CUDA runtime in
  /// the process (moe_cuda.h): between them a failure of a GPU operation on
  /// this thread is kept rather than fatal. `endCatchingGpuFailures` returns
  /// 0, or the failed driver call's CUresult (-1: not a driver call's),
  /// with `why`. Without a CUDA runtime there is nothing to catch.
  static void beginCatchingGpuFailures();
  static int32_t endCatchingGpuFailures(std::string &why);
  /// Whether a GPU operation of this thread failed since the C API call
  /// that catches failures began: the rest of the call's GPU work does
  /// nothing, its results are undefined, and the call returns the error.
  static bool gpuFailureCaught();
  /// `bytes` of GPU memory in the order of `stream` (the CUDA runtime's
  /// mgpuMemAlloc and mgpuMemFree), for a call's temporaries; nullptr for
  /// 0 bytes, and after a caught failure.
  static void *allocateDevice(int64_t bytes, void *stream);
  static void freeDevice(void *pointer, void *stream);

  /// The counters of statistics `id` on the GPU, [deviceRows(), E + 1] i64
  /// (the assignments of each expert and the tokens, then the dropped ones
  /// and the calls, then the co-activated pairs of a layer that counts
  /// them: StatsEntry), that a layer's device entry point adds to (at each
  /// replay of a captured graph too); allocated and zeroed at the first
  /// request (synchronously, like deviceWeight), added to the host's
  /// counters in every snapshot. nullptr for an unknown id.
  int64_t *deviceCounters(int64_t id);
  /// Knob `id` as an f64 in GPU memory (moe.knob {device}), which kernels
  /// read when they run (a replayed CUDA graph follows setKnob); made at
  /// the first request (synchronously) and rewritten by every setKnob.
  /// nullptr for an unknown id.
  double *deviceKnob(int64_t id);

  /// Adds one call's counts to statistics `id` (strides in elements);
  /// nothing after a caught GPU failure (gpuFailureCaught), which leaves
  /// the counts undefined and fails the call.
  void record(int64_t id, const int64_t *assignments, int64_t aStride,
              const int64_t *dropped, int64_t dStride, int64_t tokens);
  /// Adds one call's co-activated pairs from its expert ids ([tokens,
  /// slots], -1 for unused slots; strides in elements); nothing after a
  /// caught GPU failure, as `record`.
  void recordCoactivation(int64_t id, const int32_t *ids, int64_t tokens,
                          int64_t slots, int64_t tokenStride,
                          int64_t slotStride);
  /// The statistics id of the layer `name`, or -1.
  int64_t statsFor(llvm::StringRef layer) const;
  Counters snapshot(int64_t id) const;
  /// Every layer's counters, read under one lock.
  std::vector<Counters> snapshotAll() const;
  void resetStats();

  /// The id of knob `name` of `layer`, or -1.
  int64_t knobFor(llvm::StringRef layer, llvm::StringRef name) const;
  /// The current value of knob `id` (0 for an unknown id).
  double knob(int64_t id) const;
  /// Sets knob `id`; the values of the knobs the runtime knows are checked
  /// (tau finite, capacity_factor finite and > 0).
  llvm::Error setKnob(int64_t id, double value);

private:
  Model() = default;
  llvm::Error bind(const WeightEntry &weight);
  llvm::Error bindPacked(const WeightEntry &weight,
                         llvm::ArrayRef<int64_t> pieceShape,
                         mlir::moe::checkpoint::DType dtype);
  llvm::Error bindConverted(const WeightEntry &weight,
                            llvm::ArrayRef<int64_t> pieceShape);

  struct FreeDeleter {
    void operator()(void *p) const { std::free(p); }
  };

  Manifest info;
  std::unique_ptr<mlir::moe::checkpoint::Checkpoint> checkpoint;
  std::vector<const void *> weights;
  std::vector<std::unique_ptr<void, FreeDeleter>> packed;
  /// The GPU copies of the weights and the statistics tables on the GPU,
  /// made on first request (deviceMutex).
  std::mutex deviceMutex;
  std::unique_ptr<std::atomic<void *>[]> deviceWeights;
  std::unique_ptr<std::atomic<int64_t *>[]> deviceCounts;
  mutable std::mutex statsMutex;
  std::vector<Counters> counters;
  /// The values of statistics `id`'s table on the GPU, or none.
  std::vector<int64_t> readDeviceCounts(int64_t id) const;
  std::unique_ptr<std::atomic<double>[]> knobs;
  /// deviceKnob's copies, per knob id (made under knobMutex, which also
  /// orders their writes with setKnob's).
  std::mutex knobMutex;
  std::unique_ptr<std::atomic<double *>[]> deviceKnobs;
  /// The stream of the writes to deviceKnobs (knobMutex).
  void *knobStream = nullptr;
  /// Writes `value` to the knob copy `knob`, synchronously (knobMutex
  /// held).
  void writeDeviceKnob(double *knob, double value);
};

/// Makes `model` the one that generated code on this thread reads weights
/// from and records statistics into, for the scope's lifetime.
class ScopedModel {
public:
  explicit ScopedModel(Model *model);
  ~ScopedModel();
  ScopedModel(const ScopedModel &) = delete;
  ScopedModel &operator=(const ScopedModel &) = delete;

private:
  Model *previous;
};

/// The model bound on this thread, or nullptr.
Model *currentModel();

} // namespace moe::rt

#endif // MOE_RUNTIME_MODEL_H
