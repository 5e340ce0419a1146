//===- Manifest.h - what a compiled module needs from the runtime -*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The manifest of a compiled module: the checkpoint it reads, its weights
// by id (tensor names, packing, dtype, shape), its statistics counters by
// id, and its layer functions. The compiler writes it (as JSON, embedded in
// a compiled library) and the runtime reads it at load time.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_RUNTIME_MANIFEST_H
#define MOE_RUNTIME_MANIFEST_H

#include "moe_runtime.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moe::rt {

/// A weight bound in the CPU kernels' packed layout (moe_ukernel_abi.h):
/// rows [firstRow, firstRow + rows) of each [n, k] matrix, packed into
/// `elements` values of `dtype` (F32 or BF16).
struct Packing {
  int64_t firstRow = 0;
  int64_t rows = 0;
  moe_dtype dtype = MOE_DTYPE_F32;
  int64_t elements = 0;
};

struct WeightEntry {
  int64_t id = 0;
  std::vector<std::string> names;
  bool stacked = false;
  /// Element type and shape of the checkpoint tensors (stacked: with the
  /// leading stacking dimension), after `stored`'s conversion.
  moe_dtype dtype = MOE_DTYPE_F32;
  std::vector<int64_t> shape;
  /// The element type the checkpoint holds, when it is not `dtype`: the
  /// runtime converts the tensors to `dtype` when it binds them.
  std::optional<moe_dtype> stored;
  /// Block-scaled FP8, FP4 and integer tensors (`moe.weight {stored =
  /// f8E4M3FN}`, ...; `stored` is then unset): the scale tensor of each tensor
  /// of `names` and the block size. The runtime dequantizes them to `dtype`
  /// when it binds them.
  struct BlockScales {
    std::vector<std::string> names;
    int64_t rows = 0, cols = 0;
    /// E2M1 codes, two a byte (`stored = f4E2M1FN`), rather than FP8 (E4M3
    /// codes and f32, f16 or bf16 scales): MXFP4 (E8M0 scales, blocks of
    /// 1 x 32), or NVFP4 when `globals` names the global scale of each
    /// tensor (E4M3 scales, blocks of 1 x 16). The global scales multiply
    /// the block scales, or divide them with `globalsInverse`.
    bool fp4 = false;
    std::vector<std::string> globals;
    bool globalsInverse = false;
    /// Integer codes of 4 or 8 bits packed into I32 words (`stored = i4` or
    /// `i8`, compressed-tensors' pack-quantized), each the signed value
    /// plus 2^(bits - 1), with f32, f16 or bf16 scales of blocks of one row;
    /// 0 for float codes.
    unsigned bits = 0;
    /// Integers only: one signed I8 value a byte (`stored = si8`,
    /// compressed-tensors' int-quantized), rather than codes in words; no
    /// zero points, words of outputs or transposition.
    bool bytes = false;
    /// Integers only: the zero point tensor of each tensor (else the zero
    /// point is 2^(bits - 1)), the offset added to each zero point stored,
    /// and the group index tensor of each (else column j is in group j /
    /// cols, or j / rows when transposed).
    std::vector<std::string> zeros;
    int64_t zeroOffset = 0;
    std::vector<std::string> groupIndices;
    /// Integers only: the words hold consecutive outputs (AWQ's, stored
    /// [in, out]) rather than inputs, and field p of a word holds element
    /// packOrder[p] of its run (empty: element p).
    bool packOutputs = false;
    std::vector<int64_t> packOrder;

    bool nvfp4() const { return fp4 && !globals.empty(); }

    /// The scales of a matrix of `matrixRows` x `matrixCols`: one per block,
    /// partial blocks included.
    std::array<int64_t, 2> grid(int64_t matrixRows, int64_t matrixCols) const {
      return {(matrixRows + rows - 1) / rows, (matrixCols + cols - 1) / cols};
    }
  };
  std::optional<BlockScales> scales;
  /// bitsandbytes 4-bit tensors (`moe.weight {bitsandbytes}`): the runtime
  /// dequantizes them to `dtype` when it binds them, reading the tensors
  /// beside each as its state says.
  bool bitsandbytes = false;
  /// The checkpoint tensors hold their pieces with the last two dimensions
  /// swapped ([..., k, n] for [..., n, k]): the runtime transposes them
  /// when it binds them.
  bool transposed = false;
  /// The one tensor holds dimension 1 interleaved (result index i < m at
  /// 2 i, m + i at 2 i + 1): the runtime puts the halves apart when it
  /// binds it.
  bool interleaved = false;
  std::optional<Packing> packing;
  /// Some layer reads the weight in GPU memory (moe.weight {device}).
  bool device = false;

  /// The shape of the buffer the runtime binds: `shape`, or the packed
  /// elements as one dimension.
  std::vector<int64_t> boundShape() const {
    if (packing)
      return {packing->elements};
    return shape;
  }
};

struct StatsEntry {
  int64_t id = 0;
  std::string layer;
  int64_t experts = 0;
  /// The layer counts co-activated expert pairs (moe.record_stats with
  /// expert ids or with_coactivation); its statistics table in GPU memory
  /// then has the pair rows.
  bool coactivation = false;

  /// The rows of the layer's statistics table in GPU memory, of `experts +
  /// 1` i64 each: the assignments of each expert and the tokens, the
  /// dropped ones and the calls, then with `coactivation` one row per
  /// expert (row 2 + i, column j > i: the tokens that chose i and j).
  int64_t deviceRows() const { return 2 + (coactivation ? experts : 0); }
};

/// A run-time knob (moe.knob): a value generated code reads on every call.
struct KnobEntry {
  int64_t id = 0;
  std::string layer;
  std::string name;
  double defaultValue = 0;
  /// Some GPU code reads the knob's copy in GPU memory (moe.knob {device}).
  bool device = false;
};

struct LayerEntry {
  std::string name;
  int64_t hidden = 0;
  int64_t output = 0;
  moe_dtype dtype = MOE_DTYPE_F32;
  /// Multiply-add FLOPs per token of the sparse layer and of the dense
  /// layer that runs every expert (0 when unknown).
  double flopsPerToken = 0;
  double denseFlopsPerToken = 0;
  /// The most tokens one call takes (compiled for CUDA: the kernel
  /// library's grid limits); 0 when any number works.
  int64_t maxTokens = 0;
};

struct Manifest {
  std::string checkpoint;
  /// A library of moe-compile --target cuda: the GPU its kernels were
  /// compiled for (--cuda-chip, e.g. "sm_90") and how they are embedded
  /// (--cuda-format: "isa", "bin" or "fatbin"); empty otherwise.
  std::string cudaChip, cudaFormat;
  std::vector<WeightEntry> weights;
  std::vector<StatsEntry> stats;
  std::vector<KnobEntry> knobs;
  std::vector<LayerEntry> layers;

  std::string toJSON() const;
  static llvm::Expected<Manifest> parse(llvm::StringRef json);
};

llvm::StringRef dtypeName(moe_dtype dtype);
size_t elementSize(moe_dtype dtype);

} // namespace moe::rt

#endif // MOE_RUNTIME_MANIFEST_H
