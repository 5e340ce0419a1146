//===- Model.cpp - a compiled module bound to its weights -----------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "Model.h"

#include "cpu/Elements.h"
#include "cpu/Ops.h"
#include "cpu/ThreadPool.h"

#include "moe/Support/Npy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>

using namespace moe::rt;
namespace ckpt = mlir::moe::checkpoint;

static ckpt::DType toCheckpointDType(moe_dtype dtype) {
  switch (dtype) {
  case MOE_DTYPE_F32:
    return ckpt::DType::F32;
  case MOE_DTYPE_F16:
    return ckpt::DType::F16;
  case MOE_DTYPE_BF16:
    return ckpt::DType::BF16;
  }
  return ckpt::DType::F32;
}

llvm::Expected<std::unique_ptr<Model>> Model::load(Manifest manifest,
                                                   llvm::StringRef path) {
  std::unique_ptr<Model> model(new Model());
  model->info = std::move(manifest);
  std::string where = path.empty() ? model->info.checkpoint : path.str();
  if (!model->info.weights.empty()) {
    if (where.empty())
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "the model reads checkpoint weights but no checkpoint was given");
    auto opened = ckpt::Checkpoint::open(where);
    if (!opened)
      return opened.takeError();
    model->checkpoint = std::move(*opened);
  }
  for (const WeightEntry &weight : model->info.weights)
    if (llvm::Error error = model->bind(weight))
      return std::move(error);
  model->deviceWeights.reset(
      new std::atomic<void *>[model->weights.size()]());
  model->deviceCounts.reset(
      new std::atomic<int64_t *>[model->info.stats.size()]());
  model->deviceKnobs.reset(
      new std::atomic<double *>[model->info.knobs.size()]());
  for (const StatsEntry &stats : model->info.stats) {
    Counters counters;
    counters.assignments.assign(stats.experts, 0);
    counters.dropped.assign(stats.experts, 0);
    if (stats.coactivation)
      counters.countCoactivation();
    model->counters.push_back(std::move(counters));
  }
  model->knobs.reset(new std::atomic<double>[model->info.knobs.size()]);
  for (const KnobEntry &knob : model->info.knobs)
    model->knobs[knob.id].store(knob.defaultValue);
  return model;
}

llvm::Error Model::bind(const WeightEntry &weight) {
  ckpt::DType dtype = toCheckpointDType(weight.dtype);
  size_t element = elementSize(weight.dtype);
  llvm::ArrayRef<int64_t> shape = weight.shape;
  if (weight.stacked)
    shape = shape.drop_front();
  size_t pieceBytes = element;
  for (int64_t d : shape)
    pieceBytes *= static_cast<size_t>(d);

  if (weight.stored || weight.transposed || weight.scales ||
      weight.interleaved || weight.bitsandbytes)
    return bindConverted(weight, shape);
  if (weight.packing)
    return bindPacked(weight, shape, dtype);

  // A tensor used as it is stays in the mapping when it is aligned for its
  // element type; everything else is packed once into an aligned buffer.
  if (!weight.stacked) {
    auto tensor = checkpoint->require(weight.names.front(), shape, {dtype});
    if (!tensor)
      return tensor.takeError();
    if (reinterpret_cast<uintptr_t>((*tensor)->data) % element == 0) {
      weights.push_back((*tensor)->data);
      return llvm::Error::success();
    }
  }
  size_t total = pieceBytes * weight.names.size();
  size_t rounded = std::max<size_t>(64, (total + 63) / 64 * 64);
  void *buffer = std::aligned_alloc(64, rounded);
  if (!buffer)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "out of memory packing weight " +
                                       weight.names.front());
  packed.emplace_back(buffer);
  for (auto [i, name] : llvm::enumerate(weight.names)) {
    auto tensor = checkpoint->require(name, shape, {dtype});
    if (!tensor)
      return tensor.takeError();
    std::memcpy(static_cast<char *>(buffer) + i * pieceBytes,
                (*tensor)->data, pieceBytes);
  }
  weights.push_back(buffer);
  return llvm::Error::success();
}

/// Rows [r0, r1) by columns [c0, c1) (at most 32 of each) of the [n, k]
/// matrix `out` from its transpose `in` ([k, n]), moving elements of `T` as
/// they are: each row of `in` is read as one run, and each row of `out`
/// written as one.
template <typename T>
static void transposeTile(const void *in, void *out, int64_t n, int64_t k,
                          int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  constexpr int64_t kTile = 32;
  T columns[kTile][kTile], row[kTile];
  for (int64_t c = c0; c < c1; ++c)
    std::memcpy(columns[c - c0], static_cast<const T *>(in) + c * n + r0,
                (r1 - r0) * sizeof(T));
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c)
      row[c - c0] = columns[c - c0][r - r0];
    std::memcpy(static_cast<T *>(out) + r * k + c0, row, (c1 - c0) * sizeof(T));
  }
}

/// The f32 product of FP8 E4M3 `code` and `scale`, as bits. The code's
/// bits moved to the top of an f32's exponent and mantissa make a float
/// 2^120 times too small, subnormals included, and multiplying by 2^120 is
/// exact. NaN codes give a finite product: the caller tests for them.
static inline uint32_t fp8Product(uint32_t code, float scale) {
  uint32_t bits = (code & 0x80) << 24 | (code & 0x7f) << 20;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  value = value * 0x1p120f * scale;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

/// Stores `codes[0, n)` (FP8 E4M3) times `scale` as elements [0, n) of
/// `out`, of type `to`, and returns whether every code is a number and
/// every stored value finite (else nothing is promised of the stored
/// values: the caller does the run again element by element). The bf16
/// rounding is that of a finite value. No table, no branch and no bool, so
/// that the loops vectorize.
static bool dequantizeRun(const uint8_t *__restrict codes, int64_t n,
                          float scale, void *__restrict out, moe_dtype to) {
  uint32_t bad = 0;
  switch (to) {
  case MOE_DTYPE_F32: {
    auto *result = static_cast<uint32_t *>(out);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t code = codes[i], bits = fp8Product(code, scale);
      result[i] = bits;
      bad |= ((code & 0x7f) == 0x7f) | ((bits & 0x7f800000u) == 0x7f800000u);
    }
    break;
  }
  case MOE_DTYPE_BF16: {
    auto *result = static_cast<uint16_t *>(out);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t code = codes[i], bits = fp8Product(code, scale);
      uint32_t rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
      result[i] = static_cast<uint16_t>(rounded);
      bad |= ((code & 0x7f) == 0x7f) | ((rounded & 0x7f80) == 0x7f80);
    }
    break;
  }
  case MOE_DTYPE_F16: {
    auto *result = static_cast<uint16_t *>(out);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t code = codes[i], bits = fp8Product(code, scale);
      float value;
      std::memcpy(&value, &bits, sizeof(value));
      result[i] = cpu::toF16Scalar(value);
      bad |= ((code & 0x7f) == 0x7f) | ((result[i] & 0x7c00u) == 0x7c00u);
    }
    break;
  }
  }
  return bad == 0;
}

/// The E2M1 values of MXFP4's 16 codes (sign, two exponent bits, one
/// mantissa bit).
static constexpr float kE2M1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,
                                    4.0f,  6.0f,  -0.0f, -0.5f, -1.0f, -1.5f,
                                    -2.0f, -3.0f, -4.0f, -6.0f};

/// The byte scales of E2M1 tensor `name` (a piece of `pieceShape`), read
/// from `scaleName` as f32: MXFP4's E8M0 (bytes s: 2^(s - 127); 255,
/// E8M0's NaN, is an error), or NVFP4's E4M3 (a NaN is an error).
static llvm::Expected<std::vector<float>>
readFP4Scales(const ckpt::Checkpoint &checkpoint, llvm::StringRef name,
              llvm::StringRef scaleName, llvm::ArrayRef<int64_t> pieceShape,
              bool nvfp4) {
  auto tensor = nvfp4 ? checkpoint.requireE4M3Scales(scaleName, pieceShape)
                      : checkpoint.requireE8M0Scales(scaleName, pieceShape);
  if (!tensor)
    return tensor.takeError();
  const auto *bytes = static_cast<const uint8_t *>((*tensor)->data);
  std::vector<float> scales((*tensor)->numElements());
  for (auto [i, scale] : llvm::enumerate(scales)) {
    scale = nvfp4 ? mlir::moe::npy::f8E4M3ToFloat(bytes[i])
                  : std::ldexp(1.0f, static_cast<int>(bytes[i]) - 127);
    if (nvfp4 ? std::isnan(scale) : bytes[i] == 0xff)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          (*tensor)->file + ": tensor " + scaleName + ": scale " +
              std::to_string(i) + " of " + (nvfp4 ? "NVFP4" : "MXFP4") +
              " tensor " + name + (nvfp4 ? " is NaN" : " is 255, E8M0's NaN"));
  }
  return scales;
}

/// The global scale `globalName` of NVFP4 tensor `name`: a scalar, finite,
/// and not zero when it divides the block scales (`inverse`).
static llvm::Expected<float> readGlobalScale(const ckpt::Checkpoint &checkpoint,
                                             llvm::StringRef name,
                                             llvm::StringRef globalName,
                                             bool inverse) {
  auto tensor = checkpoint.requireScales(globalName, {1, 1});
  if (!tensor)
    return tensor.takeError();
  float scale = ckpt::getAsF32(**tensor, 0);
  if (!std::isfinite(scale) || (inverse && scale == 0.0f)) {
    char value[32];
    std::snprintf(value, sizeof(value), "%g", static_cast<double>(scale));
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        (*tensor)->file + ": tensor " + globalName + ": the global scale (" +
            value + ") of NVFP4 tensor " + name +
            (std::isfinite(scale) ? " is zero, and it divides the block scales"
                                  : " is not finite"));
  }
  return scale;
}

/// The scales of block-scaled FP8 or integer tensor `name` (a piece of
/// `pieceShape`, of `format`), read from `scaleName` as f32, each finite;
/// those of an MXFP4 tensor from its E8M0 bytes, and of an NVFP4 one from
/// its E4M3 bytes.
static llvm::Expected<std::vector<float>>
readBlockScales(const ckpt::Checkpoint &checkpoint, llvm::StringRef name,
                llvm::StringRef scaleName, llvm::ArrayRef<int64_t> pieceShape,
                const WeightEntry::BlockScales &blocks,
                llvm::StringRef format) {
  if (blocks.fp4)
    return readFP4Scales(checkpoint, name, scaleName, pieceShape,
                         blocks.nvfp4());
  llvm::SmallVector<int64_t> grid(pieceShape);
  auto [rows, cols] = blocks.grid(grid.end()[-2], grid.back());
  grid.end()[-2] = rows;
  grid.back() = cols;
  auto tensor = checkpoint.requireScales(scaleName, grid);
  if (!tensor)
    return tensor.takeError();
  std::vector<float> scales((*tensor)->numElements());
  for (auto [i, scale] : llvm::enumerate(scales)) {
    scale = ckpt::getAsF32(**tensor, i);
    if (!std::isfinite(scale)) {
      char value[32];
      std::snprintf(value, sizeof(value), "%g", static_cast<double>(scale));
      return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                     (*tensor)->file + ": tensor " + scaleName +
                                         ": scale " + std::to_string(i) + " (" +
                                         value + ") of " + format + " tensor " +
                                         name + " is not finite");
    }
  }
  return scales;
}

/// A buffer for the packed form of `weight`.
static cpu::Buffer allocatePacked(const WeightEntry &weight) {
  return cpu::allocateStreamed(static_cast<size_t>(weight.packing->elements) *
                               elementSize(weight.packing->dtype));
}

/// Packs tensor `i` of packed weight `weight` (`data`: `pieceShape`, of
/// the weight's element type) into its place in `packedBuffer`. Each
/// checkpoint tensor holds one [n, k] matrix (stacked) or all of them
/// ([n, k] or [E, n, k]).
static void packTensor(const WeightEntry &weight,
                       llvm::ArrayRef<int64_t> pieceShape, size_t i,
                       const char *data, char *packedBuffer) {
  const Packing &packing = *weight.packing;
  int64_t n = weight.shape[weight.shape.size() - 2];
  int64_t k = weight.shape.back();
  int64_t perMatrix = cpu::packedElements(packing.rows, k, packing.dtype);
  int64_t perTensor = 1;
  for (int64_t d : pieceShape.drop_back(2))
    perTensor *= d;
  const char *first = data + packing.firstRow * k * elementSize(weight.dtype);
  cpu::packPanels(first, weight.dtype, perTensor, packing.rows, k, n * k,
                  packedBuffer +
                      i * perTensor * perMatrix * elementSize(packing.dtype),
                  packing.dtype);
}

/// Puts apart the halves of dimension 1 of `piece` (`shape`, elements of
/// `size` bytes), stored interleaved: index i < m comes from 2 i, m + i
/// from 2 i + 1.
static void deinterleave(void *piece, llvm::ArrayRef<int64_t> shape,
                         size_t size) {
  int64_t outer = shape[0], pairs = shape[1] / 2, inner = 1;
  for (int64_t d : shape.drop_front(2))
    inner *= d;
  size_t row = static_cast<size_t>(inner) * size;
  std::vector<char> slab(2 * pairs * row);
  for (int64_t o = 0; o < outer; ++o) {
    char *base = static_cast<char *>(piece) + o * slab.size();
    std::memcpy(slab.data(), base, slab.size());
    for (int64_t i = 0; i < pairs; ++i) {
      std::memcpy(base + i * row, slab.data() + 2 * i * row, row);
      std::memcpy(base + (pairs + i) * row, slab.data() + (2 * i + 1) * row,
                  row);
    }
  }
}

/// Reads 32-bit word `index` of `data` (little-endian, maybe unaligned).
static uint32_t wordAt(const void *data, int64_t index) {
  uint32_t word;
  std::memcpy(&word, static_cast<const char *>(data) + index * 4, sizeof(word));
  return word;
}

/// The 32 / Bits codes of `word` into codes[e], field e from its lowest
/// bits.
template <unsigned Bits> static void unpackWord(uint32_t word, int *codes) {
  constexpr unsigned kFields = 32 / Bits, kMask = (1u << Bits) - 1;
  for (unsigned e = 0; e < kFields; ++e)
    codes[e] = static_cast<int>(word >> (e * Bits) & kMask);
}

/// Stores `values` as the 16-bit elements [at, at + count) of `out`, each
/// `round(value)`; whether one of them has the all-ones `exponent` (an
/// infinity or a NaN).
template <typename Round>
static bool storeHalves(void *out, int64_t at, const float *values,
                        int64_t count, Round round, uint16_t exponent) {
  uint16_t *result = static_cast<uint16_t *>(out) + at;
  bool bad = false;
  for (int64_t e = 0; e < count; ++e) {
    result[e] = round(values[e]);
    bad |= (result[e] & exponent) == exponent;
  }
  return bad;
}

/// Stores the `count` f32 `values` as elements [at, at + count) of `out`
/// (of `to`), rounding to nearest even; returns the index of the first
/// that is not finite once rounded, or -1.
static int64_t storeRun(void *out, moe_dtype to, int64_t at,
                        const float *values, int64_t count) {
  bool bad = false;
  switch (to) {
  case MOE_DTYPE_F32: {
    float *result = static_cast<float *>(out) + at;
    for (int64_t e = 0; e < count; ++e) {
      result[e] = values[e];
      bad |= !std::isfinite(values[e]);
    }
    break;
  }
  case MOE_DTYPE_BF16:
    bad = storeHalves(out, at, values, count, cpu::toBF16Scalar, 0x7f80);
    break;
  case MOE_DTYPE_F16:
    bad = storeHalves(out, at, values, count, cpu::toF16Scalar, 0x7c00);
    break;
  }
  if (!bad)
    return -1;
  for (int64_t e = 0; e < count; ++e)
    if (!std::isfinite(cpu::loadF32(out, to, at + e)))
      return e;
  return -1;
}

/// Dequantizes integer tensor `index` of `weight` (whose pieces are
/// `pieceShape` [..., n, k]), read from the checkpoint with its scales,
/// zero points and group indices, into `out`. The words are [..., n,
/// ceil(k / w)] (w codes of consecutive inputs a word), [..., ceil(k / w),
/// n] (`transposed`, GPTQ's) or [..., k, ceil(n / w)] (`packOutputs`,
/// AWQ's), their fields in `packOrder`; or, with `bytes`, I8 [..., n, k],
/// each its signed value (compressed-tensors' int-quantized). Element
/// (i, j) is (code - zero) * scale in f32, rounded once to the weight's dtype;
/// its zero is the stored one plus the offset, or 2^(bits - 1) without zero
/// points, and its group g[j], or j / the block. Each task decodes 64 rows
/// of a piece, a row at a time with its groups' scales and zeros at hand.
static llvm::Error dequantizeInts(const ckpt::Checkpoint &checkpoint,
                                  const WeightEntry &weight, size_t index,
                                  llvm::ArrayRef<int64_t> pieceShape,
                                  llvm::StringRef format, void *out) {
  const WeightEntry::BlockScales &blocks = *weight.scales;
  moe_dtype to = weight.dtype;
  bool transposed = weight.transposed, packOutputs = blocks.packOutputs;
  // One signed I8 value a byte (int-quantized), read as the code value +
  // 2^(bits - 1), the zero point of integers without zero points.
  bool bytes = blocks.bytes;
  unsigned bits = blocks.bits;
  int64_t n = pieceShape.end()[-2], k = pieceShape.back(), batch = 1;
  for (int64_t d : pieceShape.drop_back(2))
    batch *= d;
  // w = 2^wordShift fields a word.
  int64_t perWord = 32 / bits, wordShift = bits == 4 ? 3 : 2;
  int64_t group = transposed ? blocks.rows : blocks.cols;
  int64_t groups = (k + group - 1) / group;
  int64_t kWords = (k + perWord - 1) / perWord;
  int64_t nWords = (n + perWord - 1) / perWord;
  uint32_t mask = (1u << bits) - 1;
  llvm::StringRef name = weight.names[index];
  // The words, and the scales of the tensor as stored.
  llvm::SmallVector<int64_t> wordShape(pieceShape), storedShape(pieceShape);
  (packOutputs ? wordShape.end()[-2] : wordShape.back()) =
      packOutputs ? nWords : kWords;
  if (transposed) {
    std::swap(wordShape.back(), wordShape.end()[-2]);
    std::swap(storedShape.back(), storedShape.end()[-2]);
  }
  auto words = bytes ? checkpoint.require(name, pieceShape, {ckpt::DType::I8})
                     : checkpoint.require(name, wordShape, {ckpt::DType::I32});
  if (!words)
    return words.takeError();
  const ckpt::TensorInfo &codes = **words;
  auto read = readBlockScales(checkpoint, name, blocks.names[index],
                              storedShape, blocks, format);
  if (!read)
    return read.takeError();
  const std::vector<float> &scales = *read;
  // The zero points, packed along n: [..., ceil(n / w), groups], or
  // [..., groups, ceil(n / w)] as GPTQ and AWQ store them.
  const void *zeros = nullptr;
  if (!blocks.zeros.empty()) {
    llvm::SmallVector<int64_t> shape(pieceShape.drop_back(2));
    shape.append(transposed ? std::initializer_list<int64_t>{groups, nWords}
                            : std::initializer_list<int64_t>{nWords, groups});
    auto tensor =
        checkpoint.require(blocks.zeros[index], shape, {ckpt::DType::I32});
    if (!tensor)
      return tensor.takeError();
    zeros = (*tensor)->data;
  }
  // The group of each column of each piece (group indices, checked once),
  // or of every piece's.
  std::vector<int32_t> groupOf;
  if (!blocks.groupIndices.empty()) {
    llvm::SmallVector<int64_t> shape(pieceShape.drop_back(2));
    shape.push_back(k);
    auto tensor = checkpoint.require(blocks.groupIndices[index], shape,
                                     {ckpt::DType::I32});
    if (!tensor)
      return tensor.takeError();
    groupOf.resize(batch * k);
    std::memcpy(groupOf.data(), (*tensor)->data, groupOf.size() * 4);
    for (auto [j, g] : llvm::enumerate(groupOf))
      if (g < 0 || g >= groups)
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            (*tensor)->file + ": tensor " + blocks.groupIndices[index] +
                ": group index " + std::to_string(j) + " (" +
                std::to_string(g) + ") of " + format.str() + " tensor " +
                name.str() + " is not in [0, " + std::to_string(groups) + ")");
  } else {
    groupOf.resize(k);
    for (int64_t j = 0; j < k; ++j)
      groupOf[j] = static_cast<int32_t>(j / group);
  }
  bool perPiece = !blocks.groupIndices.empty();
  // The bit offset of the field that holds element e of a word's run.
  std::array<unsigned, 8> shiftOf{};
  for (int64_t p = 0; p < perWord; ++p)
    shiftOf[blocks.packOrder.empty() ? p : blocks.packOrder[p]] = p * bits;
  int zeroOffset = static_cast<int>(blocks.zeroOffset);
  auto zeroOf = [&](int64_t b, int64_t g, int64_t i) {
    if (!zeros)
      return 1 << (bits - 1);
    int64_t at = transposed ? (b * groups + g) * nWords + (i >> wordShift)
                            : (b * nWords + (i >> wordShift)) * groups + g;
    return static_cast<int>(wordAt(zeros, at) >> shiftOf[i & (perWord - 1)] &
                            mask) +
           zeroOffset;
  };
  auto scaleOf = [&](int64_t b, int64_t g, int64_t i) {
    return scales[transposed ? (b * groups + g) * n + i
                             : (b * n + i) * groups + g];
  };
  // The codes of rows [i, i + count) of piece b into codes[r * k + j]: a
  // word at a time, of one row's inputs, or of `count` rows' outputs
  // (AWQ's words, count <= w, i a multiple of w).
  auto decodeRows = [&](int64_t b, int64_t i, int64_t count, int *rowCodes) {
    const char *data = static_cast<const char *>(codes.data);
    if (bytes) {
      const int8_t *values =
          reinterpret_cast<const int8_t *>(data) + (b * n + i) * k;
      for (int64_t e = 0; e < count * k; ++e)
        rowCodes[e] = values[e] + (1 << (bits - 1));
      return;
    }
    if (packOutputs) {
      for (int64_t j = 0; j < k; ++j) {
        uint32_t word = wordAt(data, (b * k + j) * nWords + (i >> wordShift));
        for (int64_t r = 0; r < count; ++r)
          rowCodes[r * k + j] = static_cast<int>(word >> shiftOf[r] & mask);
      }
      return;
    }
    // Whole words in the fields' own order are unpacked by an unrolled
    // loop, the others field by field.
    int64_t whole = blocks.packOrder.empty() ? k / perWord : 0;
    auto unpack = [&](uint32_t word, int64_t jw, int *row) {
      if (jw < whole) {
        if (bits == 4)
          unpackWord<4>(word, row + jw * perWord);
        else
          unpackWord<8>(word, row + jw * perWord);
        return;
      }
      for (int64_t e = 0, j = jw * perWord; e < perWord && j < k; ++e, ++j)
        row[j] = static_cast<int>(word >> shiftOf[e] & mask);
    };
    for (int64_t r = 0; r < count; ++r)
      for (int64_t jw = 0; jw < kWords; ++jw)
        unpack(wordAt(data, transposed ? (b * kWords + jw) * n + i + r
                                       : (b * n + i + r) * kWords + jw),
               jw, rowCodes + r * k);
  };
  // Row i of piece b dequantized from its codes into `products`; returns
  // the signed value and scale of element `probe` (for a diagnostic).
  auto dequantizeRow = [&](int64_t b, int64_t i, const int *rowCodes,
                           float *products, std::vector<float> &groupScales,
                           std::vector<int> &groupZeros, int64_t probe = 0) {
    for (int64_t g = 0; g < groups; ++g) {
      groupScales[g] = scaleOf(b, g, i);
      groupZeros[g] = zeroOf(b, g, i);
    }
    const int32_t *cols = groupOf.data() + (perPiece ? b * k : 0);
    if (perPiece) {
      for (int64_t j = 0; j < k; ++j)
        products[j] = static_cast<float>(rowCodes[j] - groupZeros[cols[j]]) *
                      groupScales[cols[j]];
    } else {
      // Groups of consecutive inputs: a loop the compiler vectorizes.
      for (int64_t g = 0; g < groups; ++g) {
        int zero = groupZeros[g];
        float scale = groupScales[g];
        for (int64_t j = g * group, end = std::min(k, j + group); j < end; ++j)
          products[j] = static_cast<float>(rowCodes[j] - zero) * scale;
      }
    }
    return std::pair(rowCodes[probe] - groupZeros[cols[probe]],
                     groupScales[cols[probe]]);
  };
  // Rows decoded together: a word's worth for AWQ's words of outputs.
  int64_t together = packOutputs ? perWord : 1;
  constexpr int64_t kRows = 64; // a multiple of every w
  int64_t rowTasks = (n + kRows - 1) / kRows;
  std::vector<int64_t> overflow(batch * rowTasks, -1);
  cpu::parallelFor(batch * rowTasks, [&](int64_t task) {
    int64_t b = task / rowTasks, i0 = task % rowTasks * kRows;
    int64_t i1 = std::min(n, i0 + kRows);
    std::vector<int> rowCodes(together * k), groupZeros(groups);
    std::vector<float> products(k), groupScales(groups);
    for (int64_t i = i0; i < i1; i += together) {
      int64_t count = std::min(together, i1 - i);
      decodeRows(b, i, count, rowCodes.data());
      for (int64_t r = 0; r < count; ++r) {
        dequantizeRow(b, i + r, rowCodes.data() + r * k, products.data(),
                      groupScales, groupZeros);
        int64_t at = (b * n + i + r) * k;
        int64_t bad = storeRun(out, to, at, products.data(), k);
        if (bad >= 0 && overflow[task] < 0)
          overflow[task] = at + bad;
      }
    }
  });
  for (int64_t at : overflow) {
    if (at < 0)
      continue;
    int64_t b = at / (n * k), i = at / k % n;
    // The rows decoded with row i, from the first of its word.
    int64_t first = i / together * together;
    std::vector<int> rowCodes(together * k), groupZeros(groups);
    std::vector<float> products(k), groupScales(groups);
    decodeRows(b, first, std::min(together, n - first), rowCodes.data());
    auto [value, scale] =
        dequantizeRow(b, i, rowCodes.data() + (i - first) * k, products.data(),
                      groupScales, groupZeros, at % k);
    char text[64];
    std::snprintf(text, sizeof(text), "%d times scale %.9g = %.9g", value,
                  static_cast<double>(scale),
                  static_cast<double>(static_cast<float>(value) * scale));
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        codes.file + ": tensor " + name.str() + ": element " +
            std::to_string(at) + " (" + text + ") is out of the range of " +
            dtypeName(to).str() + "; the model dequantizes this " +
            format.str() + " tensor to " + dtypeName(to).str());
  }
  return llvm::Error::success();
}

/// The code of element j of a bitsandbytes 4-bit tensor: two a byte, the
/// lower-indexed in the high nibble.
static inline unsigned bnb4Code(const uint8_t *codes, int64_t j) {
  return codes[j / 2] >> (j % 2 ? 0 : 4) & 0xf;
}

/// Stores elements [j0, j1) of a bitsandbytes 4-bit tensor, each the
/// product of its code in `products` (of the weight's element type T),
/// into `out`, a byte of codes at a time; returns the set of codes used (a
/// bit a code).
template <typename T>
static unsigned storeBnb4Run(const uint8_t *__restrict codes, int64_t j0,
                             int64_t j1, const T (&products)[16],
                             T *__restrict out) {
  unsigned used = 0;
  int64_t j = j0;
  if (j < j1 && j % 2) {
    unsigned code = bnb4Code(codes, j);
    out[j++] = products[code];
    used |= 1u << code;
  }
  for (; j + 1 < j1; j += 2) {
    unsigned byte = codes[j / 2], high = byte >> 4, low = byte & 0xf;
    out[j] = products[high];
    out[j + 1] = products[low];
    used |= 1u << high | 1u << low;
  }
  if (j < j1) {
    unsigned code = bnb4Code(codes, j);
    out[j] = products[code];
    used |= 1u << code;
  }
  return used;
}

/// Dequantizes bitsandbytes 4-bit tensor `index` of `weight` (whose pieces
/// are `pieceShape`) into `out`: element j is the value of its code times
/// the f32 scale of its block j / blocksize, multiplied in f32 and rounded
/// once to the weight's dtype. Each task decodes a run of elements, the 16
/// products of a block's scale once, then a lookup an element, a byte of
/// codes at a time.
static llvm::Error dequantizeBnb4(const ckpt::Checkpoint &checkpoint,
                                  const WeightEntry &weight, size_t index,
                                  llvm::ArrayRef<int64_t> pieceShape,
                                  void *out) {
  llvm::StringRef name = weight.names[index];
  auto tensor = checkpoint.requireBnb4(name, pieceShape);
  if (!tensor)
    return tensor.takeError();
  std::string format =
      "bitsandbytes " + llvm::StringRef(tensor->quantType).upper();
  std::vector<float> scales = tensor->blockScales();
  for (auto [b, scale] : llvm::enumerate(scales)) {
    if (std::isfinite(scale))
      continue;
    char text[32];
    std::snprintf(text, sizeof(text), "%.9g", static_cast<double>(scale));
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        tensor->absmax->file + ": tensor " + tensor->absmax->name +
            ": the scale of block " + std::to_string(b) + " of " + format +
            " tensor " + name.str() + " is " + text +
            " (a scale must be finite)");
  }
  std::array<float, 16> values = tensor->codeValues();
  const uint8_t *codes = static_cast<const uint8_t *>(tensor->codes->data);
  moe_dtype to = weight.dtype;
  size_t size = elementSize(to);
  int64_t count = 1;
  for (int64_t d : pieceShape)
    count *= d;
  int64_t block = tensor->blocksize;
  constexpr int64_t kChunk = 1 << 16;
  int64_t tasks = (count + kChunk - 1) / kChunk;
  std::vector<int64_t> overflow(tasks, -1);
  cpu::parallelFor(tasks, [&](int64_t task) {
    int64_t j1 = std::min(count, (task + 1) * kChunk);
    for (int64_t j = task * kChunk; j < j1;) {
      int64_t b = j / block, end = std::min(j1, (b + 1) * block);
      // The block's 16 products in the weight's type (bf16 and f16 bits,
      // as storeF32 writes them, or f32), and those that are not finite.
      uint16_t narrow[16] = {};
      float wide[16] = {};
      unsigned bad = 0;
      for (int c = 0; c < 16; ++c) {
        void *product = size == 2 ? static_cast<void *>(&narrow[c]) : &wide[c];
        cpu::storeF32(product, to, 0, values[c] * scales[b]);
        if (!std::isfinite(cpu::loadF32(product, to, 0)))
          bad |= 1u << c;
      }
      unsigned used = size == 2 ? storeBnb4Run(codes, j, end, narrow,
                                               static_cast<uint16_t *>(out))
                                : storeBnb4Run(codes, j, end, wide,
                                               static_cast<float *>(out));
      if (used & bad && overflow[task] < 0)
        for (int64_t e = j; e < end; ++e)
          if (bad >> bnb4Code(codes, e) & 1) {
            overflow[task] = e;
            break;
          }
      j = end;
    }
  });
  for (int64_t j : overflow) {
    if (j < 0)
      continue;
    unsigned code = bnb4Code(codes, j);
    float scale = scales[j / block];
    char text[96];
    std::snprintf(text, sizeof(text), "code %u, %.9g times scale %.9g = %.9g",
                  code, static_cast<double>(values[code]),
                  static_cast<double>(scale),
                  static_cast<double>(values[code] * scale));
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        tensor->codes->file + ": tensor " + name.str() + ": element " +
            std::to_string(j) + " (" + text + ") is out of the range of " +
            dtypeName(to).str() + "; the model dequantizes this " + format +
            " tensor to " + dtypeName(to).str());
  }
  return llvm::Error::success();
}

/// Converts the tensors of `weight` from the checkpoint's `stored` element
/// type to `dtype`, rounding to nearest even, and swaps the last two
/// dimensions of each when it is `transposed`, into one buffer in stacking
/// order; a packed weight is packed from the converted tensors, one at a
/// time, so that both layouts compute with the same weights. A finite value
/// that the conversion turns into an infinity is an error (f32 or bf16 values
/// past f16's 65504, f32 values past bf16's largest).
///
/// Block-scaled FP8 tensors (`scales`) are dequantized: each FP8 value
/// times the f32 scale of its block, multiplied in f32 and rounded once to
/// `dtype`. A NaN weight, or a product out of `dtype`'s range, is an error.
/// MXFP4 tensors the same way, each E2M1 value times its E8M0 scale (a
/// product exact in f32), integer ones, each signed value times its
/// scale, and bitsandbytes' 4-bit ones, each code's value times its
/// block's scale.
llvm::Error Model::bindConverted(const WeightEntry &weight,
                                 llvm::ArrayRef<int64_t> pieceShape) {
  moe_dtype from = weight.stored.value_or(weight.dtype), to = weight.dtype;
  const WeightEntry::BlockScales *blocks =
      weight.scales ? &*weight.scales : nullptr;
  ckpt::DType storedType =
      blocks ? ckpt::DType::F8E4M3 : toCheckpointDType(from);
  int64_t count = 1;
  for (int64_t d : pieceShape)
    count *= d;
  // A transposed piece [batch, n, k] is stored [batch, k, n]; otherwise it
  // is converted as one row.
  llvm::SmallVector<int64_t> storedShape(pieceShape);
  int64_t n = 1, k = count;
  if (weight.transposed) {
    n = pieceShape[pieceShape.size() - 2];
    k = pieceShape.back();
    std::swap(storedShape[storedShape.size() - 2], storedShape.back());
  }
  // The rows and columns of each stored piece's last two dimensions, and of
  // its scales (FP8 and MXFP4, whose blocks cover the tensors as stored).
  int64_t pieceRows = storedShape.size() >= 2 ? storedShape.end()[-2] : 1;
  int64_t pieceCols = storedShape.empty() ? 1 : storedShape.back();
  std::array<int64_t, 2> scaleGrid =
      blocks ? blocks->grid(pieceRows, pieceCols) : std::array<int64_t, 2>{};
  int64_t scaleRows = scaleGrid[0], scaleCols = scaleGrid[1];
  int64_t matrix = n * k, batch = matrix ? count / matrix : 0;
  size_t pieceBytes = static_cast<size_t>(count) * elementSize(to);
  // A packed weight is converted one tensor at a time into a scratch
  // buffer and packed from there: its converted form never exists whole.
  cpu::Buffer buffer = cpu::allocateStreamed(
      pieceBytes * (weight.packing ? 1 : weight.names.size()));
  cpu::Buffer packedBuffer;
  if (weight.packing)
    packedBuffer = allocatePacked(weight);
  if (!buffer || (weight.packing && !packedBuffer))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "out of memory converting weight " +
                                       weight.names.front());
  // Work items of kBlock rows by kBlock columns of the result when it is
  // transposed, so that each touches kBlock pages of either side, in tiles
  // of kTile x kTile (each read and written one cache line a row); else of
  // kChunk elements of the one row.
  constexpr int64_t kTile = 32, kBlock = 256, kChunk = 1 << 16;
  int64_t rows = weight.transposed ? kBlock : 1;
  int64_t cols = weight.transposed ? kBlock : kChunk;
  int64_t rowTasks = (n + rows - 1) / rows, colTasks = (k + cols - 1) / cols;
  int64_t tasks = batch * rowTasks * colTasks;
  bool fp4 = blocks && blocks->fp4;
  unsigned bits = blocks ? blocks->bits : 0;
  llvm::StringRef format = !blocks           ? ""
                           : blocks->nvfp4() ? "NVFP4"
                           : fp4             ? "MXFP4"
                           : bits == 4       ? "int4"
                           : bits            ? "int8"
                                             : "FP8";
  for (auto [i, name] : llvm::enumerate(weight.names)) {
    void *out = static_cast<char *>(buffer.get()) +
                (weight.packing ? 0 : i * pieceBytes);
    // What is left once the piece is in `out`.
    auto finish = [&] {
      if (weight.interleaved)
        deinterleave(out, pieceShape, elementSize(to));
      if (weight.packing)
        packTensor(weight, pieceShape, i, static_cast<const char *>(out),
                   static_cast<char *>(packedBuffer.get()));
    };
    if (bits) {
      if (llvm::Error err =
              dequantizeInts(*checkpoint, weight, i, pieceShape, format, out))
        return err;
      finish();
      continue;
    }
    if (weight.bitsandbytes) {
      if (llvm::Error err =
              dequantizeBnb4(*checkpoint, weight, i, pieceShape, out))
        return err;
      finish();
      continue;
    }
    auto tensor = fp4 ? checkpoint->requireMXFP4(name, storedShape)
                      : checkpoint->require(name, storedShape, {storedType});
    if (!tensor)
      return tensor.takeError();
    std::vector<float> scales;
    // NVFP4's global scale, which multiplies every block's (or divides it).
    float global = 1.0f;
    bool inverse = blocks && blocks->globalsInverse;
    if (blocks) {
      auto read = readBlockScales(*checkpoint, name, blocks->names[i],
                                  storedShape, *blocks, format);
      if (!read)
        return read.takeError();
      scales = std::move(*read);
      if (blocks->nvfp4()) {
        auto value =
            readGlobalScale(*checkpoint, name, blocks->globals[i], inverse);
        if (!value)
          return value.takeError();
        global = *value;
      }
    }
    const void *in = (*tensor)->data;
    // Each task notes its first overflow (an index into the checkpoint
    // tensor); the error names the first one.
    std::vector<int64_t> overflow(tasks, -1);
    // Stores `value`, element `source` of the checkpoint tensor, as element
    // `j` of the result; `finite` says whether the value read was.
    auto store = [&](int64_t task, int64_t j, int64_t source, float value,
                     bool finite) {
      cpu::storeF32(out, to, j, value);
      // An overflow, or a NaN in an FP8 tensor (its quantizer never writes
      // one).
      bool bad =
          finite ? !std::isfinite(cpu::loadF32(out, to, j)) : blocks != nullptr;
      if (overflow[task] < 0 && bad)
        overflow[task] = source;
    };
    // The E2M1 code of element j of an MXFP4 tensor (two a byte, the low
    // nibble first).
    auto e2m1Code = [&](int64_t j) {
      return static_cast<const uint8_t *>(in)[j / 2] >> (j % 2 * 4) & 0xf;
    };
    // The FP8 or E2M1 value of element j, and the scale of its block.
    auto fp8 = [&](int64_t j) {
      if (fp4)
        return kE2M1[e2m1Code(j)];
      return mlir::moe::npy::f8E4M3ToFloat(static_cast<const uint8_t *>(in)[j]);
    };
    auto scaleRow = [&](int64_t row) {
      return scales.data() +
             (row / pieceRows * scaleRows + row % pieceRows / blocks->rows) *
                 scaleCols;
    };
    auto scaleOf = [&](int64_t j) {
      return scaleRow(j / pieceCols)[j % pieceCols / blocks->cols];
    };
    // Dequantizes elements [j0, j1) of the FP8 tensor, a run of one scale
    // at a time; a run with a value that is not finite is done again
    // element by element, to note the first.
    auto dequantize = [&](int64_t task, int64_t j0, int64_t j1) {
      const uint8_t *codes = static_cast<const uint8_t *>(in);
      size_t size = elementSize(to);
      for (int64_t j = j0; j < j1;) {
        int64_t col = j % pieceCols;
        const float *rowScales = scaleRow(j / pieceCols);
        int64_t rowEnd = std::min(j1, j + pieceCols - col);
        while (j < rowEnd) {
          float scale = rowScales[col / blocks->cols];
          int64_t end = std::min(rowEnd, j + blocks->cols - col % blocks->cols);
          if (!dequantizeRun(codes + j, end - j, scale,
                             static_cast<char *>(out) + j * size, to))
            for (int64_t e = j; e < end; ++e)
              store(task, e, e, fp8(e) * scale, !std::isnan(fp8(e)));
          col += end - j;
          j = end;
        }
      }
    };
    // An exact product of a code and its block scale with the global
    // scale, rounded once to f32.
    auto withGlobal = [&](float exact) {
      return inverse ? exact / global : exact * global;
    };
    // Dequantizes elements [j0, j1) of the MXFP4 or NVFP4 tensor: the 16
    // products of a block's scale once (code times scale, exact, with the
    // global scale), then a lookup an element.
    auto dequantizeMXFP4 = [&](int64_t task, int64_t j0, int64_t j1) {
      size_t size = elementSize(to);
      char *result = static_cast<char *>(out);
      for (int64_t j = j0; j < j1;) {
        int64_t col = j % pieceCols;
        int64_t end = std::min(
            {j1, j + pieceCols - col, j + blocks->cols - col % blocks->cols});
        float scale = scaleOf(j);
        char products[16][4];
        bool bad[16];
        for (int c = 0; c < 16; ++c) {
          cpu::storeF32(products[c], to, 0, withGlobal(kE2M1[c] * scale));
          bad[c] = !std::isfinite(cpu::loadF32(products[c], to, 0));
        }
        for (; j < end; ++j) {
          unsigned code = e2m1Code(j);
          std::memcpy(result + j * size, products[code], size);
          if (bad[code] && overflow[task] < 0)
            overflow[task] = j;
        }
      }
    };
    cpu::parallelFor(tasks, [&](int64_t task) {
      int64_t b = task / (rowTasks * colTasks);
      int64_t r0 = task / colTasks % rowTasks * rows;
      int64_t c0 = task % colTasks * cols;
      int64_t r1 = std::min(n, r0 + rows), c1 = std::min(k, c0 + cols);
      if (!weight.transposed) { // one row: n = 1, b = r0 = 0
        if (fp4) {
          dequantizeMXFP4(task, c0, c1);
          return;
        }
        if (blocks) {
          dequantize(task, c0, c1);
          return;
        }
        for (int64_t j = c0; j < c1; ++j) {
          float value = cpu::loadF32(in, from, j);
          store(task, j, j, value, std::isfinite(value));
        }
        return;
      }
      int64_t base = b * matrix;
      for (int64_t r = r0; r < r1; r += kTile) {
        for (int64_t c = c0; c < c1; c += kTile) {
          int64_t rEnd = std::min(r1, r + kTile),
                  cEnd = std::min(c1, c + kTile);
          if (!blocks && from == to) { // nothing to convert: move them
            const char *src =
                static_cast<const char *>(in) + base * elementSize(from);
            char *dst = static_cast<char *>(out) + base * elementSize(to);
            if (elementSize(to) == 2)
              transposeTile<uint16_t>(src, dst, n, k, r, rEnd, c, cEnd);
            else
              transposeTile<uint32_t>(src, dst, n, k, r, rEnd, c, cEnd);
            continue;
          }
          // The tile is read along the checkpoint's rows, one cache line
          // each, then converted along the result's. A block-scaled value
          // is its code times its scale, in f32; the code's NaN is noted.
          float tile[kTile][kTile];
          bool finite[kTile][kTile];
          for (int64_t sc = c; sc < cEnd; ++sc) {
            // The scales of stored row sc (of n elements), block-scaled
            // tensors only.
            const float *rowScales = blocks ? scaleRow(base / n + sc) : nullptr;
            for (int64_t sr = r; sr < rEnd; ++sr) {
              int64_t source = base + sc * n + sr;
              float value =
                  blocks ? fp8(source) : cpu::loadF32(in, from, source);
              finite[sr - r][sc - c] =
                  blocks ? !std::isnan(value) : std::isfinite(value);
              tile[sr - r][sc - c] =
                  blocks ? value * rowScales[sr / blocks->cols] : value;
            }
          }
          for (int64_t sr = r; sr < rEnd; ++sr)
            for (int64_t sc = c; sc < cEnd; ++sc)
              store(task, base + sr * k + sc, base + sc * n + sr,
                    tile[sr - r][sc - c], finite[sr - r][sc - c]);
        }
      }
    });
    for (int64_t j : overflow) {
      if (j < 0)
        continue;
      char value[64];
      if (blocks) {
        float stored = fp8(j), scale = withGlobal(scaleOf(j));
        if (std::isnan(stored))
          return llvm::createStringError(
              llvm::inconvertibleErrorCode(),
              (*tensor)->file + ": tensor " + name + ": element " +
                  std::to_string(j) + " is NaN (an FP8 weight must be finite)");
        std::snprintf(value, sizeof(value), "%g times scale %.9g = %.9g",
                      static_cast<double>(stored), static_cast<double>(scale),
                      static_cast<double>(withGlobal(stored * scaleOf(j))));
        return llvm::createStringError(
            llvm::inconvertibleErrorCode(),
            (*tensor)->file + ": tensor " + name + ": element " +
                std::to_string(j) + " (" + value + ") is out of the range of " +
                dtypeName(to).str() + "; the model dequantizes this " +
                format.str() + " tensor to " + dtypeName(to).str());
      }
      std::snprintf(value, sizeof(value), "%.9g",
                    static_cast<double>(cpu::loadF32(in, from, j)));
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          (*tensor)->file + ": tensor " + name + ": element " +
              std::to_string(j) + " (" + value + ") is out of the range of " +
              dtypeName(to).str() + "; the model converts this " +
              dtypeName(from).str() + " tensor to " + dtypeName(to).str());
    }
    finish();
  }
  if (weight.packing)
    buffer = std::move(packedBuffer);
  weights.push_back(buffer.get());
  packed.emplace_back(buffer.release());
  return llvm::Error::success();
}

llvm::Error Model::bindPacked(const WeightEntry &weight,
                              llvm::ArrayRef<int64_t> pieceShape,
                              ckpt::DType dtype) {
  cpu::Buffer buffer = allocatePacked(weight);
  if (!buffer)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "out of memory packing weight " +
                                       weight.names.front());
  for (auto [i, name] : llvm::enumerate(weight.names)) {
    auto tensor = checkpoint->require(name, pieceShape, {dtype});
    if (!tensor)
      return tensor.takeError();
    packTensor(weight, pieceShape, i,
               static_cast<const char *>((*tensor)->data),
               static_cast<char *>(buffer.get()));
  }
  weights.push_back(buffer.get());
  packed.emplace_back(buffer.release());
  return llvm::Error::success();
}

const void *Model::weight(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(weights.size()))
    return nullptr;
  return weights[id];
}

namespace {
/// The mgpu* functions of libmoe_cuda_runtime, which a process that runs
/// GPU code has loaded (a CUDA model library links it; moe-run loads it for
/// its JIT), or of libmoe_cuda_emulator, which stands for it when the
/// kernels run on the host. Looked up by name so that CPU-only programs do
/// not need either.
struct GpuMemory {
  void *(*alloc)(int64_t, void *, int8_t) = nullptr;
  void (*free)(void *, void *) = nullptr;
  void (*copy)(void *, void *, int64_t, void *) = nullptr;
  void (*sync)(void *) = nullptr;
  void *(*createStream)() = nullptr;
  void (*destroyStream)(void *) = nullptr;
  int32_t (*isCapturing)(void *) = nullptr;
  int32_t (*check)(char *, int32_t) = nullptr;
  int32_t (*canRun)(const char *, const char *, char *, int32_t) = nullptr;
  void (*catchBegin)() = nullptr;
  int32_t (*caught)() = nullptr;
  int32_t (*catchEnd)(char *, int32_t) = nullptr;

  static const GpuMemory &get() {
    static const GpuMemory memory = [] {
      GpuMemory m;
      void *lib = dlopen("libmoe_cuda_runtime.so", RTLD_NOW | RTLD_NOLOAD);
      if (!lib)
        lib = dlopen("libmoe_cuda_emulator.so", RTLD_NOW | RTLD_NOLOAD);
      if (!lib)
        return m;
      m.alloc = reinterpret_cast<decltype(m.alloc)>(dlsym(lib, "mgpuMemAlloc"));
      m.free = reinterpret_cast<decltype(m.free)>(dlsym(lib, "mgpuMemFree"));
      m.copy = reinterpret_cast<decltype(m.copy)>(dlsym(lib, "mgpuMemcpy"));
      m.sync = reinterpret_cast<decltype(m.sync)>(
          dlsym(lib, "mgpuStreamSynchronize"));
      m.createStream = reinterpret_cast<decltype(m.createStream)>(
          dlsym(lib, "mgpuStreamCreate"));
      m.destroyStream = reinterpret_cast<decltype(m.destroyStream)>(
          dlsym(lib, "mgpuStreamDestroy"));
      m.isCapturing = reinterpret_cast<decltype(m.isCapturing)>(
          dlsym(lib, "moe_gpu_stream_is_capturing"));
      m.check =
          reinterpret_cast<decltype(m.check)>(dlsym(lib, "moe_cuda_check"));
      m.canRun =
          reinterpret_cast<decltype(m.canRun)>(dlsym(lib, "moe_cuda_can_run"));
      m.catchBegin = reinterpret_cast<decltype(m.catchBegin)>(
          dlsym(lib, "moe_cuda_catch_begin"));
      m.caught =
          reinterpret_cast<decltype(m.caught)>(dlsym(lib, "moe_cuda_caught"));
      m.catchEnd = reinterpret_cast<decltype(m.catchEnd)>(
          dlsym(lib, "moe_cuda_catch_end"));
      return m;
    }();
    return memory;
  }
  bool usable() const {
    return alloc && free && copy && sync && createStream && destroyStream &&
           isCapturing;
  }

  /// `bytes` of device memory holding a copy of `src` (host memory), or
  /// NULL when a failure of this thread was caught (C API calls catch them):
  /// then nothing made here is kept, and the next call tries again.
  void *copyToDevice(const void *src, int64_t bytes) const {
    void *copy = alloc(bytes, nullptr, 0);
    copyNow(copy, src, bytes, nullptr);
    return keepUnlessFailed(copy);
  }

  /// Whether a GPU operation of this thread failed since the C API call
  /// that catches failures began (never where failures are fatal).
  bool failed() const { return caught && caught(); }

  /// `made`, or NULL (freeing it) after a caught failure of this thread.
  template <typename T> T *keepUnlessFailed(T *made) const {
    if (!failed())
      return made;
    free(made, nullptr);
    return nullptr;
  }

  /// Copies `bytes` from `src` to `dst` (either side on the device) on
  /// `stream` and waits for it.
  void copyNow(void *dst, const void *src, int64_t bytes, void *stream) const {
    copy(dst, const_cast<void *>(src), bytes, stream);
    sync(stream);
  }

  /// The functions, for putting `what` `id` in GPU memory; without them
  /// (a CUDA library always links one of the two) the process cannot go
  /// on, and says why.
  static const GpuMemory &require(const char *what, int64_t id) {
    const GpuMemory &gpu = get();
    if (!gpu.usable()) {
      std::fprintf(stderr,
                   "moe runtime: %s %lld is asked for in GPU memory, but "
                   "neither libmoe_cuda_runtime nor libmoe_cuda_emulator is "
                   "loaded\n",
                   what, static_cast<long long>(id));
      std::abort();
    }
    return gpu;
  }
};
} // namespace

/// The pointer in `slot`, made by `make` under `mutex` at the first request;
/// no lock once it exists (every layer call asks).
template <typename T, typename Make>
static T *madeOnce(std::atomic<T *> &slot, std::mutex &mutex, Make make) {
  if (T *p = slot.load(std::memory_order_acquire))
    return p;
  std::lock_guard<std::mutex> lock(mutex);
  if (T *p = slot.load(std::memory_order_relaxed))
    return p;
  T *p = make();
  slot.store(p, std::memory_order_release);
  return p;
}

const void *Model::deviceWeight(int64_t id) {
  const void *host = weight(id);
  if (!host)
    return nullptr;
  return madeOnce(deviceWeights[id], deviceMutex, [&] {
    const GpuMemory &gpu = GpuMemory::require("weight", id);
    const WeightEntry &entry = info.weights[id];
    int64_t bytes = static_cast<int64_t>(elementSize(entry.dtype));
    for (int64_t dim : entry.boundShape())
      bytes *= dim;
    // Synchronous: the copy is complete before any stream uses it. The
    // runtime's mgpu* functions abort with a message on failure, unless
    // the C API catches it.
    return gpu.copyToDevice(host, bytes);
  });
}

Model::~Model() {
  auto release = [](auto &slots, size_t n) {
    for (size_t id = 0; slots && id < n; ++id)
      if (void *p = slots[id].load())
        GpuMemory::get().free(p, nullptr);
  };
  release(deviceWeights, weights.size());
  release(deviceCounts, counters.size());
  release(deviceKnobs, info.knobs.size());
  if (knobStream)
    GpuMemory::get().destroyStream(knobStream);
}

int32_t Model::checkGpu(std::string &why) {
  const GpuMemory &gpu = GpuMemory::get();
  if (!gpu.check)
    return 0;
  char message[512] = "";
  int32_t status = gpu.check(message, sizeof(message));
  why = message;
  return status;
}

bool Model::gpuCanRun(const std::string &chip, const std::string &format,
                      std::string &why) {
  const GpuMemory &gpu = GpuMemory::get();
  if (!gpu.canRun)
    return true;
  char message[512] = "";
  bool runs =
      gpu.canRun(chip.c_str(), format.c_str(), message, sizeof(message)) != 0;
  why = message;
  return runs;
}

void Model::beginCatchingGpuFailures() {
  const GpuMemory &gpu = GpuMemory::get();
  if (gpu.catchBegin && gpu.catchEnd)
    gpu.catchBegin();
}

int32_t Model::endCatchingGpuFailures(std::string &why) {
  const GpuMemory &gpu = GpuMemory::get();
  if (!gpu.catchBegin || !gpu.catchEnd)
    return 0;
  char message[1024] = "";
  int32_t code = gpu.catchEnd(message, sizeof(message));
  why = message;
  return code;
}

void *Model::allocateDevice(int64_t bytes, void *stream) {
  return GpuMemory::require("a layer call's temporary of bytes", bytes)
      .alloc(bytes, stream, 0);
}

void Model::freeDevice(void *pointer, void *stream) {
  if (pointer) // from allocateDevice: the functions are there
    GpuMemory::get().free(pointer, stream);
}

bool Model::gpuFailureCaught() { return GpuMemory::get().failed(); }

bool Model::isCapturing(void *stream) {
  const GpuMemory &gpu = GpuMemory::get();
  return gpu.usable() && gpu.isCapturing(stream);
}

void Model::upload() {
  for (const WeightEntry &entry : info.weights)
    if (entry.device)
      deviceWeight(entry.id);
  for (const StatsEntry &entry : info.stats)
    deviceCounters(entry.id);
  for (const KnobEntry &entry : info.knobs)
    if (entry.device)
      deviceKnob(entry.id);
}

void Model::writeDeviceKnob(double *knob, double value) {
  // On a stream of the model's own (non-blocking), not the legacy default
  // stream: another thread may be capturing a stream in a CUDA graph, which
  // forbids work that synchronizes with every stream.
  const GpuMemory &gpu = GpuMemory::get();
  if (!knobStream)
    knobStream = gpu.createStream();
  gpu.copyNow(knob, &value, sizeof(double), knobStream);
}

double *Model::deviceKnob(int64_t id) {
  if (id < 0 || id >= static_cast<int64_t>(info.knobs.size()))
    return nullptr;
  // Made under knobMutex, which setKnob holds too: a set cannot fall
  // between the copy's first value and its publication.
  return madeOnce(deviceKnobs[id], knobMutex, [&] {
    const GpuMemory &gpu = GpuMemory::require("knob", id);
    auto *copy = static_cast<double *>(gpu.alloc(sizeof(double), nullptr, 0));
    writeDeviceKnob(copy, knob(id));
    return gpu.keepUnlessFailed(copy);
  });
}

/// The elements of the i64 statistics table of `stats` in GPU memory.
static size_t tableSize(const StatsEntry &stats) {
  return static_cast<size_t>(stats.deviceRows() * (stats.experts + 1));
}

static int64_t tableBytes(const StatsEntry &stats) {
  return static_cast<int64_t>(tableSize(stats) * sizeof(int64_t));
}

/// Writes zeros to the statistics table at `table`, synchronously.
static void zeroDeviceTable(int64_t *table, const StatsEntry &stats) {
  std::vector<int64_t> zeros(tableSize(stats), 0);
  GpuMemory::get().copyNow(table, zeros.data(), tableBytes(stats), nullptr);
}

int64_t *Model::deviceCounters(int64_t id) {
  if (id < 0 || id >= static_cast<int64_t>(counters.size()))
    return nullptr;
  return madeOnce(deviceCounts[id], deviceMutex, [&] {
    const GpuMemory &gpu = GpuMemory::require("statistics table", id);
    const StatsEntry &stats = info.stats[id];
    auto *table =
        static_cast<int64_t *>(gpu.alloc(tableBytes(stats), nullptr, 0));
    zeroDeviceTable(table, stats);
    return gpu.keepUnlessFailed(table);
  });
}

std::vector<int64_t> Model::readDeviceCounts(int64_t id) const {
  int64_t *table = deviceCounts[id].load(std::memory_order_acquire);
  if (!table)
    return {};
  // What the calls enqueued so far have added once they completed: the
  // copy waits for the device's work on blocking streams (the legacy
  // default stream's semantics), not for calls on non-blocking streams
  // still in flight.
  const StatsEntry &stats = info.stats[id];
  std::vector<int64_t> values(tableSize(stats));
  const GpuMemory &gpu = GpuMemory::get();
  gpu.copyNow(values.data(), table, tableBytes(stats), nullptr);
  if (gpu.failed())
    return {};
  return values;
}

/// Adds a statistics table of the device (readDeviceCounts; empty: none) to
/// the host's counters `c`. Its pair rows, when it has them, count once a
/// device call has (as the host's pairs appear at the first call that
/// records them).
static void addDeviceCounts(const std::vector<int64_t> &table, Counters &c) {
  if (table.empty())
    return;
  size_t numExperts = c.assignments.size();
  size_t row = numExperts + 1;
  for (size_t e = 0; e < numExperts; ++e) {
    c.assignments[e] += table[e];
    c.dropped[e] += table[row + e];
  }
  c.tokens += table[row - 1];
  c.calls += table[2 * row - 1];
  if (table.size() == 2 * row || table[2 * row - 1] == 0)
    return;
  c.countCoactivation();
  for (size_t i = 0; i < numExperts; ++i)
    for (size_t j = i + 1; j < numExperts; ++j)
      c.coactivation[Counters::pairIndex(i, j, numExperts)] +=
          table[(2 + i) * row + j];
}

void Model::record(int64_t id, const int64_t *assignments, int64_t aStride,
                   const int64_t *dropped, int64_t dStride, int64_t tokens) {
  if (gpuFailureCaught())
    return;
  std::lock_guard<std::mutex> lock(statsMutex);
  if (id < 0 || id >= static_cast<int64_t>(counters.size()))
    return;
  Counters &c = counters[id];
  for (size_t e = 0; e < c.assignments.size(); ++e) {
    c.assignments[e] += assignments[e * aStride];
    c.dropped[e] += dropped[e * dStride];
  }
  c.tokens += tokens;
  ++c.calls;
}

void Model::recordCoactivation(int64_t id, const int32_t *ids,
                               int64_t tokens, int64_t slots,
                               int64_t tokenStride, int64_t slotStride) {
  if (gpuFailureCaught())
    return;
  std::lock_guard<std::mutex> lock(statsMutex);
  if (id < 0 || id >= static_cast<int64_t>(counters.size()))
    return;
  Counters &c = counters[id];
  int64_t numExperts = static_cast<int64_t>(c.assignments.size());
  c.countCoactivation();
  std::vector<int32_t> chosen;
  for (int64_t t = 0; t < tokens; ++t) {
    chosen.clear();
    for (int64_t j = 0; j < slots; ++j) {
      int32_t e = ids[t * tokenStride + j * slotStride];
      if (e >= 0 && e < numExperts)
        chosen.push_back(e);
    }
    // Selections hold distinct experts; sorting also makes a repeat a no-op.
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
    for (size_t a = 0; a < chosen.size(); ++a)
      for (size_t b = a + 1; b < chosen.size(); ++b)
        ++c.coactivation[Counters::pairIndex(chosen[a], chosen[b],
                                             numExperts)];
  }
}

int64_t Model::statsFor(llvm::StringRef layer) const {
  for (const StatsEntry &stats : info.stats)
    if (stats.layer == layer)
      return stats.id;
  return -1;
}

// The device's tables are read before statsMutex is taken: the read waits
// for the GPU, and calls recording their counts on the host must not.
Counters Model::snapshot(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(counters.size()))
    return Counters();
  std::vector<int64_t> table = readDeviceCounts(id);
  std::lock_guard<std::mutex> lock(statsMutex);
  Counters c = counters[id];
  addDeviceCounts(table, c);
  return c;
}

std::vector<Counters> Model::snapshotAll() const {
  std::vector<std::vector<int64_t>> tables;
  for (size_t id = 0; id < counters.size(); ++id)
    tables.push_back(readDeviceCounts(static_cast<int64_t>(id)));
  std::lock_guard<std::mutex> lock(statsMutex);
  std::vector<Counters> all = counters;
  for (size_t id = 0; id < all.size(); ++id)
    addDeviceCounts(tables[id], all[id]);
  return all;
}

void Model::resetStats() {
  for (size_t id = 0; id < counters.size(); ++id)
    if (int64_t *table = deviceCounts[id].load(std::memory_order_acquire))
      zeroDeviceTable(table, info.stats[id]);
  // The host's counters stay when the device's could not be zeroed (a
  // failure the C API caught and returns).
  if (GpuMemory::get().failed())
    return;
  std::lock_guard<std::mutex> lock(statsMutex);
  for (Counters &c : counters) {
    std::fill(c.assignments.begin(), c.assignments.end(), 0);
    std::fill(c.dropped.begin(), c.dropped.end(), 0);
    std::fill(c.coactivation.begin(), c.coactivation.end(), 0);
    c.tokens = c.calls = 0;
  }
}

int64_t Model::knobFor(llvm::StringRef layer, llvm::StringRef name) const {
  for (const KnobEntry &knob : info.knobs)
    if (knob.layer == layer && knob.name == name)
      return knob.id;
  return -1;
}

double Model::knob(int64_t id) const {
  if (id < 0 || id >= static_cast<int64_t>(info.knobs.size()))
    return 0;
  return knobs[id].load(std::memory_order_relaxed);
}

llvm::Error Model::setKnob(int64_t id, double value) {
  if (id < 0 || id >= static_cast<int64_t>(info.knobs.size()))
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "no knob with id %lld",
                                   static_cast<long long>(id));
  const KnobEntry &entry = info.knobs[id];
  bool valid = std::isfinite(value) &&
               (entry.name != "capacity_factor" || value > 0);
  if (!valid)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "knob %s of layer %s: expected a finite value%s, found %g",
        entry.name.c_str(), entry.layer.c_str(),
        entry.name == "capacity_factor" ? " > 0" : "", value);
  std::lock_guard<std::mutex> lock(knobMutex);
  double before = knobs[id].exchange(value, std::memory_order_relaxed);
  if (double *copy = deviceKnobs[id].load(std::memory_order_relaxed)) {
    writeDeviceKnob(copy, value);
    // Not set, on the host either, when the device's copy was not (a
    // failure the C API caught and returns).
    if (GpuMemory::get().failed())
      knobs[id].store(before, std::memory_order_relaxed);
  }
  return llvm::Error::success();
}

static thread_local Model *boundModel = nullptr;

ScopedModel::ScopedModel(Model *model) : previous(boundModel) {
  boundModel = model;
}

ScopedModel::~ScopedModel() { boundModel = previous; }

Model *moe::rt::currentModel() { return boundModel; }
