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
#include "Model.h"
#include "cpu/ThreadPool.h"

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

struct Descriptor2D {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
};

using LayerEntryFn = void (*)(Descriptor2D *, Descriptor2D *);
} // namespace

struct moe_model {
  std::unique_ptr<Model> model;
  std::vector<LayerEntryFn> entries;
  std::vector<int64_t> statsIds;
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
    for (int64_t i = 0; i < compiled->num_layers; ++i)
      if (layer.name == compiled->layers[i].name)
        entry = reinterpret_cast<LayerEntryFn>(compiled->layers[i].entry);
    if (!entry) {
      delete handle;
      return fail(MOE_ERROR_INTERNAL, "moe_model_load: layer " + layer.name +
                                          " has no compiled entry point");
    }
    handle->entries.push_back(entry);
    handle->statsIds.push_back(handle->model->statsFor(layer.name));
  }
  *out = handle;
  return ok();
}

extern "C" void moe_model_free(moe_model *model) { delete model; }

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
  static const char empty[64] = {};
  const void *input = tokens > 0 ? x : empty;

  Descriptor2D in = {const_cast<void *>(input),
                     const_cast<void *>(input),
                     0,
                     {tokens, entry.hidden},
                     {entry.hidden, 1}};
  Descriptor2D result = {};
  {
    ScopedModel scope(model->model.get());
    model->entries[layer](&result, &in);
  }
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
                  base + (t * result.strides[0] + i * result.strides[1]) *
                             element,
                  element);
  if (result.allocated != input)
    std::free(result.allocated);
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
  Counters counters = model->model->snapshot(id);
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
  model->model->resetStats();
  return ok();
}

extern "C" void moe_set_num_threads(int threads) {
  moe::rt::cpu::setNumThreads(threads);
}

extern "C" int moe_num_threads(void) { return moe::rt::cpu::numThreads(); }
