//===- SafeTensors.h - Hugging Face safetensors checkpoints -----*- C++ -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Reads the weights of a model in the safetensors format: one file, or a
// directory with `model.safetensors` or with shards listed by
// `model.safetensors.index.json`. Files are memory-mapped read-only and never
// copied; a tensor's data points into the mapping, which lives as long as
// its Checkpoint.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON mapping each tensor name to {"dtype", "shape", "data_offsets"} (plus
// an optional "__metadata__" object of strings), then the data section, to
// which the offsets are relative. Every header field is validated against
// the file size before any use, so a corrupt file gives an error naming the
// file (and the tensor), never an out-of-bounds read.
//
// Only the dtypes we read are exposed: those we compute with, and FP8 E4M3
// for block-scaled weights, which the runtime dequantizes when it loads
// them. A tensor of another dtype (I64, F64, BOOL, F8_E5M2, ...) is still
// listed, so that a checkpoint holding one can be opened and inspected;
// using it gives an error.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CHECKPOINT_SAFETENSORS_H
#define MOE_CHECKPOINT_SAFETENSORS_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::moe::checkpoint {

/// The dtypes we read: F32, F16 and BF16, which we compute with,
/// F8E4M3 (`float8_e4m3fn`), which only block-scaled weights hold, and U8,
/// the bytes of MXFP4 weights (two 4-bit codes a byte) and of their E8M0
/// scales, and I32, the words of integer weights packed by
/// compressed-tensors (eight 4-bit or four 8-bit codes a word).
enum class DType { F32, F16, BF16, F8E4M3, U8, I8, I32 };

/// The safetensors spelling: "F32", "F16", "BF16", "F8_E4M3", "U8", "I8",
/// "I32".
llvm::StringRef name(DType type);
size_t elementSize(DType type);
/// The DType spelled `name`, if it is one we read.
std::optional<DType> parseDType(llvm::StringRef name);
/// The DType spelled `name`, if it is one we compute with (F32, F16 and
/// BF16; matched without regard to case, for command-line options).
std::optional<DType> parseComputeDType(llvm::StringRef name);

/// One tensor of a checkpoint.
struct TensorInfo {
  std::string name;
  /// The dtype as the file spells it ("F32", "BF16", "I64", ...).
  std::string dtypeName;
  /// The dtype to compute with; empty when the file's dtype is not one of
  /// ours (use `Checkpoint::get` or `require`, which report that).
  std::optional<DType> dtype;
  llvm::SmallVector<int64_t> shape;
  /// The bytes in the mapping. Not necessarily aligned to the element size
  /// (the format does not promise it): read through memcpy.
  const void *data = nullptr;
  size_t numBytes = 0;
  /// The file holding the tensor and the byte offset of its data there, so
  /// that a consumer can refer to the weights without copying them.
  std::string file;
  uint64_t fileOffset = 0;

  int64_t numElements() const;
};

/// Element `index` of a tensor of a supported dtype, widened to f32.
float getAsF32(const TensorInfo &tensor, int64_t index);

struct Bnb4Tensor;

/// The tensors of one model. Owns the file mappings.
class Checkpoint {
public:
  /// Opens a .safetensors file, or a model directory holding
  /// `model.safetensors.index.json` (used if present) or `model.safetensors`.
  static llvm::Expected<std::unique_ptr<Checkpoint>> open(llvm::StringRef path);

  /// The path given to `open`.
  llvm::StringRef path() const { return rootPath; }
  /// Every tensor, sorted by name.
  llvm::ArrayRef<TensorInfo> tensors() const { return sortedTensors; }
  /// The tensor `name`, whatever its dtype; nullptr if absent.
  const TensorInfo *lookup(llvm::StringRef name) const;
  /// The tensor `name`; an error if it is absent or its dtype is not one we
  /// read.
  llvm::Expected<const TensorInfo *> get(llvm::StringRef name) const;
  /// The tensor `name`, which must have this shape and one of the `allowed`
  /// dtypes (any supported dtype if `allowed` is empty). Two other shapes
  /// hold the same elements in the same order and are allowed: leading
  /// dimensions of size 1 before the shape (PyTorch keeps some vectors as
  /// [1, n]: ERNIE-4.5's e_score_correction_bias), and a stack of matrices
  /// whose leading dimensions are merged into its first ([E * f, d] for
  /// [E, f, d]: DBRX's experts). The error names the tensor, the file, and
  /// the expected and found shape or dtype.
  llvm::Expected<const TensorInfo *>
  require(llvm::StringRef name, llvm::ArrayRef<int64_t> shape,
          llvm::ArrayRef<DType> allowed = {}) const;
  /// The scales `name` of an FP8 tensor, one per block of a `grid` (the
  /// tensor's leading dimensions, then its blocks' rows and columns), in
  /// f32, f16 or bf16. The one scale of a matrix (grid [1, 1]) may also be
  /// stored as a scalar or a vector of one, as FP8 scaled per tensor is,
  /// and a grid of one block row or column with its last two dimensions
  /// swapped ([..., m, 1] for [..., 1, m]: the same values in the same
  /// order, as Llama-4's FP8 release stores its per-channel scales).
  llvm::Expected<const TensorInfo *>
  requireScales(llvm::StringRef name, llvm::ArrayRef<int64_t> grid) const;
  /// The values an E8M0 scale of an MXFP4 tensor covers along its last
  /// dimension (the MX format's block).
  static constexpr int64_t kMXFP4Block = 32;
  /// The MXFP4 codes `name` of a tensor of `shape` [..., k] (k even): U8,
  /// two E2M1 codes a byte, the low nibble first, stored [..., k / 2] or,
  /// as GPT-OSS's `_blocks`, [..., k / 32, 16].
  llvm::Expected<const TensorInfo *>
  requireMXFP4(llvm::StringRef name, llvm::ArrayRef<int64_t> shape) const;
  /// The E8M0 scales `name` (U8) of an MXFP4 tensor of `shape` [..., k]:
  /// one a block of 32 of its last dimension, [..., ceil(k / 32)].
  llvm::Expected<const TensorInfo *>
  requireE8M0Scales(llvm::StringRef name, llvm::ArrayRef<int64_t> shape) const;
  /// The values an E4M3 scale of an NVFP4 tensor covers along its last
  /// dimension.
  static constexpr int64_t kNVFP4Block = 16;
  /// The E4M3 scales `name` (F8_E4M3) of an NVFP4 tensor of `shape`
  /// [..., k]: one a block of 16 of its last dimension, [..., ceil(k / 16)].
  /// (Its codes are MXFP4's, requireMXFP4's [..., k / 2]; its global scale
  /// a scalar, requireScales' grid [1, 1].)
  llvm::Expected<const TensorInfo *>
  requireE4M3Scales(llvm::StringRef name, llvm::ArrayRef<int64_t> shape) const;

  /// The integer codes `name` of a tensor of `shape` [..., k], packed as
  /// compressed-tensors' pack-quantized format does: I32 words of 32 /
  /// `bits` codes each (`bits` 4 or 8), the lowest-indexed in the lowest
  /// bits, [..., ceil(k / (32 / bits))].
  llvm::Expected<const TensorInfo *>
  requirePackedInts(llvm::StringRef name, llvm::ArrayRef<int64_t> shape,
                    unsigned bits) const;

  /// The state tensor of a bitsandbytes 4-bit tensor `name`
  /// (`<name>.quant_state.bitsandbytes__nf4` or `__fp4`), or nullptr when
  /// the checkpoint holds none.
  const TensorInfo *lookupBnb4State(llvm::StringRef name) const;
  /// The bitsandbytes 4-bit tensor `name` of `shape` and the tensors beside
  /// it, every one checked against its serialized state (see Bnb4Tensor).
  llvm::Expected<Bnb4Tensor> requireBnb4(llvm::StringRef name,
                                         llvm::ArrayRef<int64_t> shape) const;

private:
  Checkpoint() = default;
  /// Scales `name` of `dtype`, one a block of `block` of the last dimension
  /// of a tensor of `shape`.
  llvm::Expected<const TensorInfo *>
  requireRowBlockScales(llvm::StringRef name, llvm::ArrayRef<int64_t> shape,
                        int64_t block, DType dtype) const;
  llvm::Error addFile(llvm::StringRef file);
  llvm::Error openIndex(llvm::StringRef dir, llvm::StringRef indexPath);
  void sortTensors();

  std::string rootPath;
  std::vector<llvm::sys::fs::mapped_file_region> mappings;
  std::vector<TensorInfo> sortedTensors;
};

/// A 4-bit tensor of bitsandbytes (Params4bit, as transformers saves a
/// model loaded in 4 bits), of `shape` [..., n, k] and N elements in C
/// order:
///   - `<name>`: U8 [ceil(N / 2), 1] (or [ceil(N / 2)]), two codes a byte,
///     the lower-indexed in the high nibble;
///   - `<name>.quant_map`: F32 [16], the value of each code (NF4's or FP4's);
///   - `<name>.absmax`: a scale a block of `blocksize` consecutive elements,
///     F32 [ceil(N / blocksize)]; with double quantization U8 codes of
///     `<name>.nested_quant_map` (F32 [256]), each times
///     `<name>.nested_absmax` (F32, one a block of `nestedBlocksize` scales)
///     plus `offset`;
///   - `<name>.quant_state.bitsandbytes__<quant_type>`: U8, a JSON object of
///     quant_type, blocksize, dtype (the weight's, before quantization) and
///     shape, and with double quantization nested_blocksize, nested_dtype
///     ("float32") and nested_offset.
/// Element i is quant_map[code i] times the f32 scale of its block i /
/// blocksize, multiplied in f32.
struct Bnb4Tensor {
  const TensorInfo *codes = nullptr, *absmax = nullptr, *quantMap = nullptr;
  /// With double quantization only.
  const TensorInfo *nestedAbsmax = nullptr, *nestedQuantMap = nullptr;
  /// "nf4" or "fp4".
  std::string quantType;
  /// The dtype the state names (F32, F16 or BF16).
  DType dtype = DType::BF16;
  int64_t blocksize = 0, nestedBlocksize = 0;
  float offset = 0;

  bool nested() const { return nestedAbsmax != nullptr; }
  /// The f32 scale of each block: absmax, or with double quantization
  /// nested_quant_map[code] times its nested absmax, plus the offset, each
  /// operation rounded to f32 (as bitsandbytes computes them).
  std::vector<float> blockScales() const;
  /// The 16 code values.
  std::array<float, 16> codeValues() const;
};

/// A tensor to write: `bytes` holds product(shape) elements of `dtype`,
/// little-endian, C order.
struct TensorData {
  std::string name;
  DType dtype;
  llvm::SmallVector<int64_t> shape;
  llvm::ArrayRef<char> bytes;
};

/// Writes a safetensors file. Tensors are laid out largest element size
/// first, then by name, back to back after a header padded to 8 bytes, so
/// every tensor is aligned to its element size (as the Python writer does).
llvm::Error
writeSafeTensors(llvm::StringRef path, llvm::ArrayRef<TensorData> tensors,
                 const std::map<std::string, std::string> &metadata = {});

} // namespace mlir::moe::checkpoint

#endif // MOE_CHECKPOINT_SAFETENSORS_H
