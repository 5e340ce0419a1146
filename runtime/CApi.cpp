//===- CApi.cpp - the C API of a compiled model ---------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// moe_runtime.h over the descriptor that moe-compile emits. Every entry
// point validates its arguments, reports failures through moe_last_error,
// and never lets an error escape as a crash.
//
//===----------------------------------------------------------------------===//

#include "moe_runtime.h"

#include "CompiledModel.h"
#include "Controller.h"
#include "Model.h"
#include "Stats.h"
#include "cpu/ThreadPool.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

using namespace moe::rt;

namespace {
thread_local std::string lastError;

moe_status fail(moe_status status, const llvm::Twine &message) {
  lastError = message.str();
  return status;
}

moe_status ok() {
  lastError.clear();
  return MOE_OK;
}

/// Runs `call`, the part of C API function `fn` that may use the GPU, with
/// the CUDA runtime's failures caught on this thread (moe_cuda.h): a failed
/// GPU operation (out of memory, a kernel that faulted earlier) becomes
/// `fn`'s error rather than the end of the process.
template <typename Call>
moe_status catchingGpuFailures(const char *fn, Call call) {
  Model::beginCatchingGpuFailures();
  moe_status status = call();
  std::string why;
  int32_t code = Model::endCatchingGpuFailures(why);
  if (code == 0)
    return status;
  return fail(code == 2 /* CUDA_ERROR_OUT_OF_MEMORY */
                  ? MOE_ERROR_OUT_OF_MEMORY
                  : MOE_ERROR_GPU,
              llvm::Twine(fn) + ": " + why);
}

struct Descriptor2D {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
};

using LayerEntryFn = void (*)(Descriptor2D *, Descriptor2D *);

/// A layer's device entry point: x, y, counts, stream -> stream. The knobs
/// it reads in GPU memory it asks the runtime for (moe_rt_device_knob).
using DeviceEntryFn = void *(*)(Descriptor2D *, Descriptor2D *, Descriptor2D *,
                                void *);

/// The device entry point of a layer that moe-narrow-to-bf16 computes in
/// bf16 on f32 or f16 rows: x, y, counts, then bf16 buffers for the
/// layer's own input and output (the caller's), stream -> stream. The GPU
/// computes in bf16 only, so a device entry point of a layer of another
/// dtype is always one of these.
using NarrowedEntryFn = void *(*)(Descriptor2D *, Descriptor2D *,
                                  Descriptor2D *, Descriptor2D *,
                                  Descriptor2D *, void *);

/// The descriptor of a dense row-major [rows, cols] array at `data`.
Descriptor2D dense2D(const void *data, int64_t rows, int64_t cols) {
  void *p = const_cast<void *>(data);
  return {p, p, 0, {rows, cols}, {cols, 1}};
}
} // namespace

struct moe_model {
  std::unique_ptr<Model> model;
  std::vector<LayerEntryFn> entries;
  std::vector<DeviceEntryFn> deviceEntries;
  std::vector<int64_t> statsIds;
  /// Per layer, whether what its device entry point reads in GPU memory
  /// exists (after moe_model_upload or a first call): a first call copies
  /// synchronously, which a stream capture does not allow.
  std::unique_ptr<std::atomic<bool>[]> deviceReady;
};

extern "C" const char *moe_last_error(void) { return lastError.c_str(); }

extern "C" moe_status moe_model_load(const char *checkpointDir,
                                     moe_model **out) {
  if (!out)
    return fail(MOE_ERROR_INVALID_ARGUMENT, "moe_model_load: model is NULL");
  *out = nullptr;
  const moe_compiled_model *compiled = moe_compiled_model_descriptor();
  if (!compiled || compiled->abi_version != MOE_RUNTIME_ABI_VERSION)
    return fail(MOE_ERROR_INTERNAL,
                "moe_model_load: the library was compiled for another runtime "
                "ABI; recompile it with this moe-compile");
  auto manifest = Manifest::parse(compiled->manifest);
  if (!manifest)
    return fail(MOE_ERROR_INTERNAL, llvm::toString(manifest.takeError()));
  // A CUDA library's layers take at most maxTokens tokens (0 on the CPU).
  bool cuda = llvm::any_of(manifest->layers, [](const LayerEntry &layer) {
    return layer.maxTokens > 0;
  });
  // Its kernels would abort at their first GPU operation without a GPU or
  // with a bad MOE_GPU_* setting: errors here instead.
  std::string why;
  if (cuda)
    switch (Model::checkGpu(why)) {
    case 0:
      break;
    case 1:
      return fail(MOE_ERROR_NO_GPU,
                  "moe_model_load: no usable CUDA GPU: " + why);
    default:
      return fail(MOE_ERROR_INVALID_ARGUMENT, "moe_model_load: " + why);
    }
  // Its kernels would fail at their first launch on a device that cannot
  // run them.
  if (cuda && !manifest->cudaChip.empty() &&
      !Model::gpuCanRun(manifest->cudaChip, manifest->cudaFormat, why))
    return fail(MOE_ERROR_NO_GPU,
                "moe_model_load: the library's kernels cannot run here: " +
                    why);
  auto model = Model::load(std::move(*manifest),
                           checkpointDir ? checkpointDir : "");
  if (!model)
    return fail(MOE_ERROR_CHECKPOINT,
                "moe_model_load: " + llvm::toString(model.takeError()));

  auto *handle = new (std::nothrow) moe_model();
  if (!handle)
    return fail(MOE_ERROR_OUT_OF_MEMORY, "moe_model_load: out of memory");
  handle->model = std::move(*model);
  for (const LayerEntry &layer : handle->model->manifest().layers) {
    LayerEntryFn entry = nullptr;
    DeviceEntryFn deviceEntry = nullptr;
    for (int64_t i = 0; i < compiled->num_layers; ++i) {
      if (layer.name != compiled->layers[i].name)
        continue;
      entry = reinterpret_cast<LayerEntryFn>(compiled->layers[i].entry);
      deviceEntry =
          reinterpret_cast<DeviceEntryFn>(compiled->layers[i].device_entry);
    }
    if (!entry) {
      delete handle;
      return fail(MOE_ERROR_INTERNAL, "moe_model_load: layer " + layer.name +
                                          " has no compiled entry point");
    }
    handle->entries.push_back(entry);
    handle->deviceEntries.push_back(deviceEntry);
    handle->statsIds.push_back(handle->model->statsFor(layer.name));
  }
  handle->deviceReady.reset(new std::atomic<bool>[handle->entries.size()]());
  *out = handle;
  return ok();
}

extern "C" void moe_model_free(moe_model *model) {
  // Freeing GPU memory on a context that a fault broke fails too, and
  // there is nothing left to do about it.
  catchingGpuFailures("moe_model_free", [&] {
    delete model;
    return MOE_OK;
  });
}

extern "C" int64_t moe_model_num_layers(const moe_model *model) {
  return model ? static_cast<int64_t>(model->entries.size()) : 0;
}

static bool validLayer(const moe_model *model, int64_t layer) {
  return model && layer >= 0 &&
         layer < static_cast<int64_t>(model->entries.size());
}

static moe_status badLayer(const char *function, const moe_model *model,
                           int64_t layer) {
  if (!model)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                llvm::Twine(function) + ": model is NULL");
  return fail(MOE_ERROR_INVALID_ARGUMENT,
              llvm::Twine(function) + ": layer " + llvm::Twine(layer) +
                  " out of range [0, " +
                  llvm::Twine(model->entries.size()) + ")");
}

extern "C" moe_status moe_model_layer_info(const moe_model *model,
                                           int64_t layer,
                                           moe_layer_info *info) {
  if (!validLayer(model, layer))
    return badLayer("moe_model_layer_info", model, layer);
  if (!info)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_layer_info: info is NULL");
  const LayerEntry &entry = model->model->manifest().layers[layer];
  info->name = entry.name.c_str();
  info->hidden_size = entry.hidden;
  info->output_size = entry.output;
  info->dtype = entry.dtype;
  info->flops_per_token = entry.flopsPerToken;
  info->dense_flops_per_token = entry.denseFlopsPerToken;
  int64_t stats = model->statsIds[layer];
  info->num_experts =
      stats >= 0 ? model->model->manifest().stats[stats].experts : 0;
  return ok();
}

extern "C" int64_t moe_model_find_layer(const moe_model *model,
                                        const char *name) {
  if (!model || !name)
    return -1;
  const auto &layers = model->model->manifest().layers;
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].name == name)
      return static_cast<int64_t>(i);
  return -1;
}

extern "C" int64_t moe_model_max_tokens(const moe_model *model,
                                        int64_t layer) {
  if (!validLayer(model, layer))
    return -1;
  return model->model->manifest().layers[layer].maxTokens;
}

/// Copies the output `result` of a layer's host entry point to `y` and
/// frees it.
static moe_status copyOutput(const LayerEntry &entry, Descriptor2D &result,
                             const void *input, int64_t tokens, void *y) {
  if (result.sizes[0] != tokens || result.sizes[1] != entry.output) {
    std::free(result.allocated);
    return fail(MOE_ERROR_INTERNAL, "moe_model_run_layer: the layer returned "
                                    "an output of an unexpected shape");
  }
  size_t element = elementSize(entry.dtype);
  const char *base =
      static_cast<const char *>(result.aligned) + result.offset * element;
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t i = 0; i < entry.output; ++i)
      std::memcpy(static_cast<char *>(y) + (t * entry.output + i) * element,
                  base +
                      (t * result.strides[0] + i * result.strides[1]) * element,
                  element);
  if (result.allocated != input)
    std::free(result.allocated);
  return ok();
}

extern "C" moe_status moe_model_run_layer(moe_model *model, int64_t layer,
                                          const void *x, int64_t tokens,
                                          void *y) {
  if (!validLayer(model, layer))
    return badLayer("moe_model_run_layer", model, layer);
  if (tokens < 0)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer: tokens is " + llvm::Twine(tokens) +
                    ", expected >= 0");
  if (tokens > 0 && (!x || !y))
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer: x and y must not be NULL");
  const LayerEntry &entry = model->model->manifest().layers[layer];
  if (entry.maxTokens > 0 && tokens > entry.maxTokens)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer: tokens is " + llvm::Twine(tokens) +
                    ", expected at most " + llvm::Twine(entry.maxTokens) +
                    " for layer " + entry.name +
                    " (the GPU kernels' limit per call)");
  static const char empty[64] = {};
  const void *input = tokens > 0 ? x : empty;

  Descriptor2D in = dense2D(input, tokens, entry.hidden);
  Descriptor2D result = {};
  return catchingGpuFailures("moe_model_run_layer", [&] {
    {
      ScopedModel scope(model->model.get());
      model->entries[layer](&result, &in);
    }
    return copyOutput(entry, result, input, tokens, y);
  });
}

extern "C" moe_status moe_model_run_layer_async(moe_model *model, int64_t layer,
                                                const void *x, int64_t tokens,
                                                void *y, void *stream) {
  if (!validLayer(model, layer))
    return badLayer("moe_model_run_layer_async", model, layer);
  const LayerEntry &entry = model->model->manifest().layers[layer];
  DeviceEntryFn run = model->deviceEntries[layer];
  if (!run && entry.maxTokens == 0)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer_async: layer " + entry.name +
                    " was compiled for the CPU; device buffers need a "
                    "library built with moe-compile --target cuda");
  if (!run)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer_async: layer " + entry.name +
                    " has no device entry point (moe-compile warned why: it "
                    "gives them to functions that are one moe.layer on "
                    "checkpoint weights); use moe_model_run_layer");
  if (tokens < 0)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer_async: tokens is " + llvm::Twine(tokens) +
                    ", expected >= 0");
  if (tokens > entry.maxTokens)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer_async: tokens is " + llvm::Twine(tokens) +
                    ", expected at most " + llvm::Twine(entry.maxTokens) +
                    " for layer " + entry.name +
                    " (the GPU kernels' limit per call)");
  for (auto [name, pointer] :
       {std::pair<const char *, const void *>{"x", x}, {"y", y}}) {
    if (tokens > 0 && !pointer)
      return fail(MOE_ERROR_INVALID_ARGUMENT,
                  llvm::Twine("moe_model_run_layer_async: ") + name +
                      " must not be NULL");
    if (reinterpret_cast<uintptr_t>(pointer) % 16)
      return fail(MOE_ERROR_INVALID_ARGUMENT,
                  llvm::Twine("moe_model_run_layer_async: ") + name +
                      " is not 16-byte aligned (the kernels' vector loads "
                      "and stores)");
  }
  int64_t id = model->statsIds[layer];
  // Before anything is made in GPU memory (deviceCounters below).
  std::atomic<bool> &ready = model->deviceReady[layer];
  if (!ready.load(std::memory_order_acquire) && Model::isCapturing(stream))
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_run_layer_async: layer " + entry.name +
                    " is not in GPU memory yet and the stream is being "
                    "captured (its first call copies synchronously, which "
                    "a capture does not allow); call moe_model_upload "
                    "before the capture");
  const StatsEntry *stats =
      id >= 0 ? &model->model->manifest().stats[id] : nullptr;
  Descriptor2D in = dense2D(x, tokens, entry.hidden);
  Descriptor2D out = dense2D(y, tokens, entry.output);
  moe_status status = catchingGpuFailures("moe_model_run_layer_async", [&] {
    Descriptor2D counts = dense2D(
        stats ? model->model->deviceCounters(id) : nullptr,
        stats ? stats->deviceRows() : 0, stats ? stats->experts + 1 : 1);
    ScopedModel scope(model->model.get());
    if (entry.dtype == MOE_DTYPE_BF16) {
      run(&in, &out, &counts, stream);
      return ok();
    }
    // The layer's bf16 rows, in stream order, as the library's own
    // temporaries are: freed once the call's kernels are done with them.
    int64_t element = elementSize(MOE_DTYPE_BF16);
    void *rows = Model::allocateDevice(tokens * entry.hidden * element, stream);
    void *result =
        Model::allocateDevice(tokens * entry.output * element, stream);
    Descriptor2D bf16In = dense2D(rows, tokens, entry.hidden);
    Descriptor2D bf16Out = dense2D(result, tokens, entry.output);
    // (Through void (*)(), the generic function pointer type.)
    auto narrowed =
        reinterpret_cast<NarrowedEntryFn>(reinterpret_cast<void (*)()>(run));
    narrowed(&in, &out, &counts, &bf16In, &bf16Out, stream);
    Model::freeDevice(rows, stream);
    Model::freeDevice(result, stream);
    return ok();
  });
  if (status == MOE_OK)
    ready.store(true, std::memory_order_release);
  return status;
}

extern "C" moe_status moe_model_upload(moe_model *model) {
  if (!model)
    return fail(MOE_ERROR_INVALID_ARGUMENT, "moe_model_upload: model is NULL");
  bool gpu = llvm::any_of(model->model->manifest().weights,
                          [](const WeightEntry &w) { return w.device; }) ||
             llvm::any_of(model->deviceEntries,
                          [](DeviceEntryFn entry) { return entry != nullptr; });
  if (!gpu)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_upload: the model has nothing to put in GPU memory "
                "(a library built with moe-compile --target cpu)");
  moe_status status = catchingGpuFailures("moe_model_upload", [&] {
    model->model->upload();
    return ok();
  });
  if (status != MOE_OK)
    return status;
  for (size_t layer = 0; layer < model->entries.size(); ++layer)
    model->deviceReady[layer].store(true, std::memory_order_release);
  return ok();
}

extern "C" moe_status moe_model_layer_stats(const moe_model *model,
                                            int64_t layer,
                                            int64_t *assignments,
                                            int64_t *dropped, int64_t *tokens,
                                            int64_t *calls) {
  if (!validLayer(model, layer))
    return badLayer("moe_model_layer_stats", model, layer);
  int64_t id = model->statsIds[layer];
  if (id < 0)
    return fail(MOE_ERROR_NO_STATISTICS,
                "moe_model_layer_stats: the model was compiled without "
                "statistics");
  Counters counters;
  if (moe_status status = catchingGpuFailures("moe_model_layer_stats", [&] {
        counters = model->model->snapshot(id);
        return MOE_OK;
      }))
    return status;
  if (assignments)
    std::copy(counters.assignments.begin(), counters.assignments.end(),
              assignments);
  if (dropped)
    std::copy(counters.dropped.begin(), counters.dropped.end(), dropped);
  if (tokens)
    *tokens = counters.tokens;
  if (calls)
    *calls = counters.calls;
  return ok();
}

extern "C" moe_status moe_model_reset_stats(moe_model *model) {
  if (!model)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_reset_stats: model is NULL");
  return catchingGpuFailures("moe_model_reset_stats", [&] {
    model->model->resetStats();
    return ok();
  });
}

//===----------------------------------------------------------------------===//
// Statistics snapshots
//===----------------------------------------------------------------------===//

struct moe_stats {
  std::vector<LayerStats> layers;
  std::string json, prometheus;
};

extern "C" moe_status moe_model_stats_snapshot(const moe_model *model,
                                               moe_stats **out) {
  if (!model || !out)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_stats_snapshot: model and stats must not be NULL");
  *out = nullptr;
  auto *stats = new (std::nothrow) moe_stats();
  if (!stats)
    return fail(MOE_ERROR_OUT_OF_MEMORY,
                "moe_model_stats_snapshot: out of memory");
  if (moe_status status = catchingGpuFailures("moe_model_stats_snapshot", [&] {
        stats->layers = snapshotStats(*model->model);
        return MOE_OK;
      })) {
    delete stats;
    return status;
  }
  *out = stats;
  return ok();
}

extern "C" void moe_stats_free(moe_stats *stats) { delete stats; }

extern "C" int64_t moe_stats_num_layers(const moe_stats *stats) {
  return stats ? static_cast<int64_t>(stats->layers.size()) : 0;
}

/// The pair counts of `c` for moe_layer_stats: NULL when the layer does not
/// count them, else its table (a valid pointer also for one expert, which
/// has no pairs).
static const int64_t *coactivationOf(const Counters &c) {
  static const int64_t noPairs = 0;
  if (!c.countsCoactivation)
    return nullptr;
  return c.coactivation.empty() ? &noPairs : c.coactivation.data();
}

extern "C" moe_status moe_stats_layer(const moe_stats *stats, int64_t index,
                                      moe_layer_stats *out) {
  if (!stats || !out)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_stats_layer: stats and layer must not be NULL");
  if (index < 0 || index >= static_cast<int64_t>(stats->layers.size()))
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_stats_layer: index " + llvm::Twine(index) +
                    " out of range [0, " + llvm::Twine(stats->layers.size()) +
                    ")");
  const LayerStats &layer = stats->layers[index];
  const Counters &c = layer.counters;
  const LoadMetrics &m = layer.metrics;
  *out = moe_layer_stats{layer.function.c_str(),
                         static_cast<int64_t>(c.assignments.size()),
                         c.calls,
                         c.tokens,
                         c.assignments.data(),
                         c.dropped.data(),
                         coactivationOf(c),
                         m.meanExpertsPerToken,
                         m.meanLoad,
                         m.maxLoad,
                         m.maxLoadRatio,
                         m.loadCV,
                         m.normalizedEntropy,
                         m.jainFairness,
                         m.dropRate};
  return ok();
}

extern "C" const char *moe_stats_json(moe_stats *stats) {
  if (!stats)
    return "";
  if (stats->json.empty())
    stats->json = statsToJSON(stats->layers);
  return stats->json.c_str();
}

extern "C" const char *moe_stats_prometheus(moe_stats *stats) {
  if (!stats)
    return "";
  if (stats->prometheus.empty())
    stats->prometheus = statsToPrometheus(stats->layers);
  return stats->prometheus.c_str();
}

//===----------------------------------------------------------------------===//
// Knobs
//===----------------------------------------------------------------------===//

extern "C" int64_t moe_model_num_knobs(const moe_model *model) {
  return model ? static_cast<int64_t>(model->model->manifest().knobs.size())
               : 0;
}

extern "C" moe_status moe_model_knob_info(const moe_model *model,
                                          int64_t index, const char **layer,
                                          const char **name,
                                          double *defaultValue) {
  int64_t count = moe_model_num_knobs(model);
  if (!model || index < 0 || index >= count)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_knob_info: knob " + llvm::Twine(index) +
                    " out of range [0, " + llvm::Twine(count) + ")");
  const KnobEntry &knob = model->model->manifest().knobs[index];
  if (layer)
    *layer = knob.layer.c_str();
  if (name)
    *name = knob.name.c_str();
  if (defaultValue)
    *defaultValue = knob.defaultValue;
  return ok();
}

/// The id of knob `name` of `layer`, or a failure naming what was asked.
static moe_status findKnob(const char *function, const moe_model *model,
                           const char *layer, const char *name, int64_t &id) {
  if (!model || !layer || !name)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                llvm::Twine(function) +
                    ": model, layer and name must not be NULL");
  id = model->model->knobFor(layer, name);
  if (id < 0)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                llvm::Twine(function) + ": the model has no knob '" + name +
                    "' of layer '" + layer + "'");
  return MOE_OK;
}

extern "C" moe_status moe_model_get_knob(const moe_model *model,
                                         const char *layer, const char *name,
                                         double *value) {
  int64_t id = -1;
  if (moe_status status = findKnob("moe_model_get_knob", model, layer, name,
                                   id))
    return status;
  if (!value)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_model_get_knob: value is NULL");
  *value = model->model->knob(id);
  return ok();
}

extern "C" moe_status moe_model_set_knob(moe_model *model, const char *layer,
                                         const char *name, double value) {
  int64_t id = -1;
  if (moe_status status = findKnob("moe_model_set_knob", model, layer, name,
                                   id))
    return status;
  return catchingGpuFailures("moe_model_set_knob", [&] {
    if (llvm::Error error = model->model->setKnob(id, value))
      return fail(MOE_ERROR_INVALID_ARGUMENT,
                  "moe_model_set_knob: " + llvm::toString(std::move(error)));
    return ok();
  });
}

//===----------------------------------------------------------------------===//
// Adaptive controller
//===----------------------------------------------------------------------===//

struct moe_controller {
  moe_model *model;
  int64_t statsId;
  int64_t knobId;
  Controller controller;
  /// The counters at the end of the previous interval.
  Counters last;
  std::string log;
};

extern "C" moe_status moe_controller_create(moe_model *model,
                                            const char *layer,
                                            const moe_controller_config *config,
                                            moe_controller **out) {
  if (!model || !layer || !config || !out)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_controller_create: model, layer, config and controller "
                "must not be NULL");
  *out = nullptr;
  if (config->target != MOE_CONTROL_MEAN_EXPERTS_PER_TOKEN &&
      config->target != MOE_CONTROL_MAX_LOAD_RATIO)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_controller_create: unknown target " +
                    llvm::Twine(static_cast<int>(config->target)));
  ControllerConfig cfg;
  cfg.target = config->target == MOE_CONTROL_MEAN_EXPERTS_PER_TOKEN
                   ? ControlTarget::MeanExpertsPerToken
                   : ControlTarget::MaxLoadRatio;
  cfg.setpoint = config->setpoint;
  cfg.band = config->band;
  cfg.minValue = config->min_value;
  cfg.maxValue = config->max_value;
  cfg.initialStep = config->initial_step;
  cfg.minStep = config->min_step;
  cfg.maxStep = config->max_step;
  int64_t statsId = model->model->statsFor(layer);
  if (statsId < 0)
    return fail(MOE_ERROR_NO_STATISTICS,
                llvm::Twine("moe_controller_create: layer '") + layer +
                    "' records no statistics");
  const char *knob = knobName(cfg.target);
  int64_t knobId = model->model->knobFor(layer, knob);
  if (knobId < 0)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                llvm::Twine("moe_controller_create: layer '") + layer +
                    "' has no knob '" + knob + "' to turn");
  std::string error;
  std::optional<Controller> controller =
      Controller::create(cfg, model->model->knob(knobId), error);
  if (!controller)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_controller_create: " + llvm::Twine(error));
  auto *handle = new (std::nothrow)
      moe_controller{model, statsId, knobId, std::move(*controller),
                     model->model->snapshot(statsId), std::string()};
  if (!handle)
    return fail(MOE_ERROR_OUT_OF_MEMORY, "moe_controller_create: out of "
                                         "memory");
  *out = handle;
  return ok();
}

extern "C" moe_status moe_controller_step(moe_controller *controller,
                                          double *quantity, double *knob,
                                          int *changed) {
  if (!controller)
    return fail(MOE_ERROR_INVALID_ARGUMENT,
                "moe_controller_step: controller is NULL");
  // A snapshot that fails leaves the controller as it was.
  Counters now;
  if (moe_status status = catchingGpuFailures("moe_controller_step", [&] {
        now = controller->model->model->snapshot(controller->statsId);
        return MOE_OK;
      }))
    return status;
  // After a reset the counters restart from zero: the interval is all of
  // them.
  const Counters &last = controller->last;
  bool reset = now.calls < last.calls;
  IntervalStats interval;
  interval.tokens = reset ? now.tokens : now.tokens - last.tokens;
  for (size_t e = 0; e < now.assignments.size(); ++e) {
    interval.assignments.push_back(
        reset ? now.assignments[e] : now.assignments[e] - last.assignments[e]);
    interval.dropped.push_back(reset ? now.dropped[e]
                                     : now.dropped[e] - last.dropped[e]);
  }
  controller->last = std::move(now);
  Decision decision = controller->controller.step(interval);
  if (decision.changed())
    if (moe_status status = catchingGpuFailures("moe_controller_step", [&] {
          if (llvm::Error error = controller->model->model->setKnob(
                  controller->knobId, decision.knobAfter))
            return fail(MOE_ERROR_INTERNAL,
                        "moe_controller_step: " +
                            llvm::toString(std::move(error)));
          return MOE_OK;
        }))
      return status;
  if (quantity)
    *quantity = decision.reason == DecisionReason::NoData ? NAN
                                                          : decision.quantity;
  if (knob)
    *knob = decision.knobAfter;
  if (changed)
    *changed = decision.changed();
  return ok();
}

extern "C" const char *moe_controller_log(moe_controller *controller) {
  if (!controller)
    return "";
  controller->log = controller->controller.formatLog();
  return controller->log.c_str();
}

extern "C" void moe_controller_free(moe_controller *controller) {
  delete controller;
}

extern "C" void moe_set_num_threads(int threads) {
  moe::rt::cpu::setNumThreads(threads);
}

extern "C" int moe_num_threads(void) { return moe::rt::cpu::numThreads(); }
