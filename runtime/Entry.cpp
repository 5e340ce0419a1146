//===- Entry.cpp - the functions that generated code calls ----------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The C-interface functions behind convert-moe-to-runtime: memref
// descriptors are passed by pointer (`_mlir_ciface_` convention), results
// first.
//
//===----------------------------------------------------------------------===//

#include "Model.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace moe::rt;

namespace {
template <int Rank>
struct Descriptor {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes[Rank];
  int64_t strides[Rank];
};

/// Generated code asks for weights only inside moe_model_run_layer or a
/// tool's call, which bind a model; anything else is a misuse of the
/// internal entry points, and there is no way to report it but to stop.
[[noreturn]] void misuse(const char *what, int64_t id) {
  std::fprintf(stderr,
               "moe runtime: %s %lld requested with no model bound on this "
               "thread; run layers through moe_model_run_layer\n",
               what, static_cast<long long>(id));
  std::abort();
}

template <int Rank>
void fillWeight(Descriptor<Rank> *out, int64_t id, bool device) {
  Model *model = currentModel();
  const void *data =
      model ? (device ? model->deviceWeight(id) : model->weight(id)) : nullptr;
  // A weight that a failed GPU operation kept off the device (its upload
  // ran out of memory, say): the call's later GPU work does nothing, and
  // it returns the error, so an empty pointer of the bound shape serves.
  if (!data && !(model && device && Model::gpuFailureCaught()))
    misuse("weight", id);
  std::vector<int64_t> shape = model->manifest().weights[id].boundShape();
  if (shape.size() != Rank) {
    std::fprintf(stderr,
                 "moe runtime: weight %lld requested as rank %d, bound with "
                 "rank %zu; the module was compiled for another manifest\n",
                 static_cast<long long>(id), Rank, shape.size());
    std::abort();
  }
  out->allocated = const_cast<void *>(data);
  out->aligned = const_cast<void *>(data);
  out->offset = 0;
  int64_t stride = 1;
  for (int d = Rank - 1; d >= 0; --d) {
    out->sizes[d] = shape[d];
    out->strides[d] = stride;
    stride *= shape[d];
  }
}
} // namespace

#define MOE_WEIGHT_ENTRY(DTYPE, RANK)                                          \
  extern "C" void _mlir_ciface_moe_rt_weight_##DTYPE##_##RANK##d(              \
      Descriptor<RANK> *out, int64_t id) {                                     \
    fillWeight<RANK>(out, id, /*device=*/false);                               \
  }                                                                            \
  extern "C" void _mlir_ciface_moe_rt_device_weight_##DTYPE##_##RANK##d(       \
      Descriptor<RANK> *out, int64_t id) {                                     \
    fillWeight<RANK>(out, id, /*device=*/true);                                \
  }

#define MOE_WEIGHT_ENTRIES(DTYPE)                                              \
  MOE_WEIGHT_ENTRY(DTYPE, 1)                                                   \
  MOE_WEIGHT_ENTRY(DTYPE, 2)                                                   \
  MOE_WEIGHT_ENTRY(DTYPE, 3)

MOE_WEIGHT_ENTRIES(f32)
MOE_WEIGHT_ENTRIES(f16)
MOE_WEIGHT_ENTRIES(bf16)

extern "C" void _mlir_ciface_moe_rt_record_stats(int64_t id,
                                                 Descriptor<1> *assignments,
                                                 Descriptor<1> *dropped,
                                                 int64_t tokens) {
  Model *model = currentModel();
  if (!model)
    misuse("statistics", id);
  model->record(id,
                static_cast<const int64_t *>(assignments->aligned) +
                    assignments->offset,
                assignments->strides[0],
                static_cast<const int64_t *>(dropped->aligned) +
                    dropped->offset,
                dropped->strides[0], tokens);
}

extern "C" void _mlir_ciface_moe_rt_record_coactivation(int64_t id,
                                                        Descriptor<2> *ids) {
  Model *model = currentModel();
  if (!model)
    misuse("statistics", id);
  model->recordCoactivation(id,
                            static_cast<const int32_t *>(ids->aligned) +
                                ids->offset,
                            ids->sizes[0], ids->sizes[1], ids->strides[0],
                            ids->strides[1]);
}

extern "C" double _mlir_ciface_moe_rt_knob(int64_t id) {
  Model *model = currentModel();
  if (!model)
    misuse("knob", id);
  return model->knob(id);
}

extern "C" void _mlir_ciface_moe_rt_device_knob(Descriptor<1> *out,
                                                int64_t id) {
  Model *model = currentModel();
  double *copy = model ? model->deviceKnob(id) : nullptr;
  if (!copy && !(model && Model::gpuFailureCaught())) // as fillWeight
    misuse("knob", id);
  *out = {copy, copy, 0, {1}, {1}};
}

const std::vector<Symbol> &moe::rt::entryPoints() {
#define MOE_SYMBOL(NAME) {#NAME, reinterpret_cast<void *>(&NAME)}
#define MOE_WEIGHT_SYMBOLS(DTYPE)                                              \
  MOE_SYMBOL(_mlir_ciface_moe_rt_weight_##DTYPE##_1d),                         \
      MOE_SYMBOL(_mlir_ciface_moe_rt_weight_##DTYPE##_2d),                     \
      MOE_SYMBOL(_mlir_ciface_moe_rt_weight_##DTYPE##_3d),                     \
      MOE_SYMBOL(_mlir_ciface_moe_rt_device_weight_##DTYPE##_1d),              \
      MOE_SYMBOL(_mlir_ciface_moe_rt_device_weight_##DTYPE##_2d),              \
      MOE_SYMBOL(_mlir_ciface_moe_rt_device_weight_##DTYPE##_3d)
  static const std::vector<Symbol> symbols = [] {
    std::vector<Symbol> all = {
        MOE_WEIGHT_SYMBOLS(f32),
        MOE_WEIGHT_SYMBOLS(f16),
        MOE_WEIGHT_SYMBOLS(bf16),
        MOE_SYMBOL(_mlir_ciface_moe_rt_record_stats),
        MOE_SYMBOL(_mlir_ciface_moe_rt_record_coactivation),
        MOE_SYMBOL(_mlir_ciface_moe_rt_knob),
        MOE_SYMBOL(_mlir_ciface_moe_rt_device_knob)};
    const std::vector<Symbol> &kernels = cpu::ukernelEntryPoints();
    all.insert(all.end(), kernels.begin(), kernels.end());
    return all;
  }();
  return symbols;
#undef MOE_WEIGHT_SYMBOLS
#undef MOE_SYMBOL
}
