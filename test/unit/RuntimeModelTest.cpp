//===- RuntimeModelTest.cpp - load-time packing of checkpoint weights -----===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// A manifest weight with packing binds the panels of the checkpoint
// tensors' selected rows, element for element what the packed layout of
// moe_ukernel_abi.h says; malformed packings and mismatched tensors are
// errors that name the weight. A weight stored in another dtype is
// converted, rounding to nearest even, before it is packed or bound. The
// manifest keeps its device flags.
//
//===----------------------------------------------------------------------===//

#include "Manifest.h"
#include "Model.h"
#include "cpu/Elements.h"
#include "moe_ukernel_abi.h"

#include "moe/Checkpoint/SafeTensors.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace moe::rt;
namespace ckpt = mlir::moe::checkpoint;

namespace {

/// The packed value at [panel, i, j] of one matrix, from the layout's
/// definition (not from the packing code).
float packedAt(const void *packed, moe_dtype dtype, int64_t k, int64_t panel,
               int64_t i, int64_t j) {
  if (dtype == MOE_DTYPE_F32)
    return static_cast<const float *>(packed)[(panel * k + i) * 32 + j];
  int64_t pairs = (k + 31) / 32 * 16; // k rounded up to 32, in pairs
  int64_t at = ((panel * pairs + i / 2) * 32 + j) * 2 + i % 2;
  return cpu::fromBF16Scalar(static_cast<const uint16_t *>(packed)[at]);
}

class PackedWeights : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moe-model-test", dir));
    path = (dir + "/model.safetensors").str();
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int e = 0; e < experts; ++e) {
      f32[e].resize(n * k);
      bf16[e].resize(n * k);
      for (int64_t i = 0; i < n * k; ++i) {
        f32[e][i] = dist(rng);
        bf16[e][i] = cpu::toBF16Scalar(dist(rng));
      }
    }
    std::vector<ckpt::TensorData> tensors;
    for (int e = 0; e < experts; ++e) {
      tensors.push_back({"f32." + std::to_string(e), ckpt::DType::F32, {n, k},
                         {reinterpret_cast<const char *>(f32[e].data()),
                          f32[e].size() * 4}});
      tensors.push_back({"bf16." + std::to_string(e), ckpt::DType::BF16,
                         {n, k},
                         {reinterpret_cast<const char *>(bf16[e].data()),
                          bf16[e].size() * 2}});
    }
    ASSERT_FALSE(bool(ckpt::writeSafeTensors(path, tensors)));
  }

  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  WeightEntry entry(const std::string &prefix, moe_dtype dtype,
                    int64_t firstRow, int64_t rows, moe_dtype packed) {
    WeightEntry w;
    for (int e = 0; e < experts; ++e)
      w.names.push_back(prefix + "." + std::to_string(e));
    w.stacked = true;
    w.dtype = dtype;
    w.shape = {experts, n, k};
    w.packing = Packing{firstRow, rows, packed,
                        experts * moe_uk_packed_elements(
                                      rows, k, packed == MOE_DTYPE_BF16)};
    return w;
  }

  static constexpr int experts = 2;
  static constexpr int64_t n = 40, k = 7;
  llvm::SmallString<128> dir;
  std::string path;
  std::vector<float> f32[experts];
  std::vector<uint16_t> bf16[experts];
};

TEST_F(PackedWeights, BindsThePanelsOfTheSelectedRows) {
  Manifest manifest;
  manifest.weights = {entry("f32", MOE_DTYPE_F32, 8, 30, MOE_DTYPE_F32),
                      entry("bf16", MOE_DTYPE_BF16, 0, 40, MOE_DTYPE_BF16),
                      entry("f32", MOE_DTYPE_F32, 3, 33, MOE_DTYPE_BF16)};
  for (auto [i, w] : llvm::enumerate(manifest.weights))
    w.id = static_cast<int64_t>(i);
  // The manifest survives its JSON form.
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  auto model = Model::load(std::move(*parsed), path);
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());

  for (const WeightEntry &w : manifest.weights) {
    const Packing &p = *w.packing;
    const char *data = static_cast<const char *>((*model)->weight(w.id));
    int64_t perMatrix =
        moe_uk_packed_elements(p.rows, k, p.dtype == MOE_DTYPE_BF16);
    int64_t panels = (p.rows + 31) / 32;
    for (int e = 0; e < experts; ++e) {
      const void *matrix = data + e * perMatrix * cpu::dtypeBytes(p.dtype);
      for (int64_t panel = 0; panel < panels; ++panel)
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < 32; ++j) {
            int64_t row = panel * 32 + j;
            float expected = 0.0f;
            if (row < p.rows) {
              int64_t at = (p.firstRow + row) * k + i;
              expected = w.dtype == MOE_DTYPE_F32
                             ? f32[e][at]
                             : cpu::fromBF16Scalar(bf16[e][at]);
              if (p.dtype == MOE_DTYPE_BF16)
                expected = cpu::fromBF16Scalar(cpu::toBF16Scalar(expected));
            }
            ASSERT_EQ(packedAt(matrix, p.dtype, k, panel, i, j), expected)
                << w.names.front() << " matrix " << e << " panel " << panel
                << " [" << i << ", " << j << "]";
          }
    }
  }
}

TEST_F(PackedWeights, RejectsInconsistentPackings) {
  Manifest manifest;
  manifest.weights = {entry("f32", MOE_DTYPE_F32, 8, 40, MOE_DTYPE_F32)};
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("inconsistent packing of weight f32.0"),
            std::string::npos);

  manifest.weights = {entry("f32", MOE_DTYPE_F32, 0, 8, MOE_DTYPE_F16)};
  parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("malformed packing of weight f32.0"),
            std::string::npos);
}

TEST_F(PackedWeights, NamesAMismatchedTensor) {
  Manifest manifest;
  WeightEntry w = entry("f32", MOE_DTYPE_F32, 0, 8, MOE_DTYPE_F32);
  w.dtype = MOE_DTYPE_BF16; // The checkpoint holds f32.
  manifest.weights = {w};
  auto model = Model::load(std::move(manifest), path);
  ASSERT_FALSE(bool(model));
  EXPECT_NE(llvm::toString(model.takeError()).find("f32.0"), std::string::npos);
}

/// bf16 nearest to `value`, ties to even, from the two candidates that
/// bracket it (not from the runtime's conversion).
uint16_t nearestBF16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  uint16_t low = static_cast<uint16_t>(bits >> 16);
  uint16_t high = static_cast<uint16_t>(low + 1);
  double below = std::fabs(double(value) - cpu::fromBF16Scalar(low));
  double above = std::fabs(double(value) - cpu::fromBF16Scalar(high));
  if (below != above)
    return below < above ? low : high;
  return (low & 1) ? high : low;
}

/// A weight stored in f32 and bound in bf16 (`stored`) holds the nearest
/// bf16 of each value, unpacked and packed; the conversion keeps the
/// manifest entry's `stored` through its JSON form.
TEST_F(PackedWeights, ConvertsStoredTensors) {
  Manifest manifest;
  WeightEntry plain = entry("f32", MOE_DTYPE_BF16, 0, 40, MOE_DTYPE_BF16);
  plain.packing.reset();
  plain.stored = MOE_DTYPE_F32;
  WeightEntry packed = entry("f32", MOE_DTYPE_BF16, 3, 33, MOE_DTYPE_BF16);
  packed.stored = MOE_DTYPE_F32;
  manifest.weights = {plain, packed};
  for (auto [i, w] : llvm::enumerate(manifest.weights))
    w.id = static_cast<int64_t>(i);
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  ASSERT_EQ(parsed->weights[1].stored, MOE_DTYPE_F32);
  auto model = Model::load(std::move(*parsed), path);
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());

  auto bound = static_cast<const uint16_t *>((*model)->weight(0));
  for (int e = 0; e < experts; ++e)
    for (int64_t i = 0; i < n * k; ++i)
      ASSERT_EQ(bound[e * n * k + i], nearestBF16(f32[e][i]))
          << "matrix " << e << " element " << i;

  const char *data = static_cast<const char *>((*model)->weight(1));
  int64_t perMatrix = moe_uk_packed_elements(33, k, /*bf16=*/true);
  for (int e = 0; e < experts; ++e)
    for (int64_t row = 0; row < 33; ++row)
      for (int64_t i = 0; i < k; ++i)
        ASSERT_EQ(packedAt(data + e * perMatrix * 2, MOE_DTYPE_BF16, k,
                           row / 32, i, row % 32),
                  cpu::fromBF16Scalar(nearestBF16(f32[e][(3 + row) * k + i])))
            << "matrix " << e << " row " << row << " [" << i << "]";
}

/// A finite value that the conversion would make infinite is a load error
/// naming the tensor, the element and the value; `stored` equal to the
/// dtype is a malformed entry.
TEST_F(PackedWeights, RefusesValuesOutOfRange) {
  f32[1][17] = 1.0e6f; // past f16's 65504
  std::vector<ckpt::TensorData> tensors;
  for (int e = 0; e < experts; ++e)
    tensors.push_back(
        {"f32." + std::to_string(e),
         ckpt::DType::F32,
         {n, k},
         {reinterpret_cast<const char *>(f32[e].data()), f32[e].size() * 4}});
  ASSERT_FALSE(bool(ckpt::writeSafeTensors(path, tensors)));
  Manifest manifest;
  WeightEntry w = entry("f32", MOE_DTYPE_F16, 0, 40, MOE_DTYPE_F32);
  w.packing.reset();
  w.stored = MOE_DTYPE_F32;
  manifest.weights = {w};
  auto model = Model::load(manifest, path);
  ASSERT_FALSE(bool(model));
  std::string message = llvm::toString(model.takeError());
  EXPECT_NE(message.find("tensor f32.1: element 17 (1000000) is out of the "
                         "range of f16"),
            std::string::npos)
      << message;

  manifest.weights[0].stored = MOE_DTYPE_F16;
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("malformed stored dtype of weight f32.0"),
            std::string::npos);
}

/// A transposed weight holds each checkpoint tensor [n, k] as [k, n],
/// converted or not, unpacked and packed; the entry keeps `transposed`
/// through its JSON form, and a transposed vector is malformed.
TEST_F(PackedWeights, TransposesStoredTensors) {
  Manifest manifest;
  WeightEntry plain = entry("bf16", MOE_DTYPE_BF16, 0, 0, MOE_DTYPE_BF16);
  plain.packing.reset();
  plain.shape = {experts, k, n};
  plain.transposed = true;
  WeightEntry converted = plain;
  converted.names = {"f32.1"};
  converted.stacked = false;
  converted.shape = {k, n};
  converted.stored = MOE_DTYPE_F32;
  // Rows 2..6 of the [k, n] result, packed in f32 panels.
  WeightEntry packed = plain;
  packed.dtype = MOE_DTYPE_F32;
  packed.names = {"f32.0", "f32.1"};
  packed.packing = Packing{2, 5, MOE_DTYPE_F32,
                           experts * moe_uk_packed_elements(5, n, false)};
  manifest.weights = {plain, converted, packed};
  for (auto [i, w] : llvm::enumerate(manifest.weights))
    w.id = static_cast<int64_t>(i);
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  ASSERT_TRUE(parsed->weights[0].transposed);
  auto model = Model::load(std::move(*parsed), path);
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());

  // Element [c, r] of the result is element [r, c] of the tensor.
  auto bound = static_cast<const uint16_t *>((*model)->weight(0));
  for (int e = 0; e < experts; ++e)
    for (int64_t c = 0; c < k; ++c)
      for (int64_t r = 0; r < n; ++r)
        ASSERT_EQ(bound[(e * k + c) * n + r], bf16[e][r * k + c])
            << "matrix " << e << " [" << c << ", " << r << "]";
  auto narrowed = static_cast<const uint16_t *>((*model)->weight(1));
  for (int64_t c = 0; c < k; ++c)
    for (int64_t r = 0; r < n; ++r)
      ASSERT_EQ(narrowed[c * n + r], nearestBF16(f32[1][r * k + c]))
          << "[" << c << ", " << r << "]";
  const char *data = static_cast<const char *>((*model)->weight(2));
  int64_t perMatrix = moe_uk_packed_elements(5, n, /*bf16=*/false);
  for (int e = 0; e < experts; ++e)
    for (int64_t row = 0; row < 5; ++row)
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(
            packedAt(data + e * perMatrix * 4, MOE_DTYPE_F32, n, 0, i, row),
            f32[e][i * k + 2 + row])
            << "matrix " << e << " row " << row << " [" << i << "]";

  WeightEntry vector = converted;
  vector.shape = {n * k};
  manifest.weights = {vector};
  parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("weight f32.1 is transposed but its tensors have fewer "
                      "than two dimensions"),
            std::string::npos);
}

/// Transposition works by blocks of 256 x 256 and tiles of 32 x 32: a
/// matrix with partial blocks and tiles on both sides, as it is and
/// converted, holds every element where the transpose puts it.
TEST(TransposedWeights, CrossBlockAndTileEdges) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moe-model-test", dir));
  std::string path = (dir + "/model.safetensors").str();
  constexpr int64_t rows = 270, cols = 300; // stored [rows, cols]
  std::vector<uint16_t> bf16(rows * cols);
  std::vector<float> f32(rows * cols);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (int64_t i = 0; i < rows * cols; ++i) {
    bf16[i] = cpu::toBF16Scalar(dist(rng));
    f32[i] = dist(rng);
  }
  std::vector<ckpt::TensorData> tensors = {
      {"bf16",
       ckpt::DType::BF16,
       {rows, cols},
       {reinterpret_cast<const char *>(bf16.data()), bf16.size() * 2}},
      {"f32",
       ckpt::DType::F32,
       {rows, cols},
       {reinterpret_cast<const char *>(f32.data()), f32.size() * 4}}};
  ASSERT_FALSE(bool(ckpt::writeSafeTensors(path, tensors)));
  Manifest manifest;
  WeightEntry plain;
  plain.id = 0;
  plain.names = {"bf16"};
  plain.dtype = MOE_DTYPE_BF16;
  plain.shape = {cols, rows};
  plain.transposed = true;
  WeightEntry converted = plain;
  converted.id = 1;
  converted.names = {"f32"};
  converted.stored = MOE_DTYPE_F32;
  manifest.weights = {plain, converted};
  auto model = Model::load(std::move(manifest), path);
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());
  auto moved = static_cast<const uint16_t *>((*model)->weight(0));
  auto narrowed = static_cast<const uint16_t *>((*model)->weight(1));
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) {
      ASSERT_EQ(moved[c * rows + r], bf16[r * cols + c])
          << "[" << c << ", " << r << "]";
      ASSERT_EQ(narrowed[c * rows + r], nearestBF16(f32[r * cols + c]))
          << "[" << c << ", " << r << "]";
    }
  llvm::sys::fs::remove_directories(dir);
}

/// The value of a float8_e4m3fn code, from the format's definition.
double e4m3Value(uint8_t code) {
  int exponent = (code >> 3) & 15, mantissa = code & 7;
  double magnitude = exponent ? std::ldexp(8 + mantissa, exponent - 10)
                              : std::ldexp(mantissa, -9);
  return (code & 0x80) ? -magnitude : magnitude;
}

/// Block-scaled FP8 weights: two pieces [5, 7] in blocks of 2 x 3 (partial
/// blocks on both sides), one with f32 scales and one with bf16 scales,
/// every finite code. Each bound element is its code's value times its
/// block's scale, multiplied in f32 (exact in f64, then rounded once) and
/// rounded to bf16, unpacked and packed; the entry keeps its scales through
/// its JSON form.
class BlockScaledWeights : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("moe-model-test", dir));
    path = (dir + "/model.safetensors").str();
    for (int e = 0; e < 2; ++e) {
      codes[e].resize(n * k);
      for (int64_t i = 0; i < n * k; ++i) {
        uint8_t code = static_cast<uint8_t>(i * 7 + e * 128 + 3);
        codes[e][i] = (code & 0x7f) == 0x7f ? 0x42 : code; // not NaN
      }
    }
    for (int64_t b = 0; b < 9; ++b) {
      scales32[b] = std::ldexp(1.0f + 0.1f * b, static_cast<int>(b) - 12);
      scales16[b] = cpu::toBF16Scalar(0.0123f * (b + 1));
    }
    write();
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  void write() {
    std::vector<ckpt::TensorData> tensors = {
        {"q.0",
         ckpt::DType::F8E4M3,
         {n, k},
         {reinterpret_cast<const char *>(codes[0].data()), codes[0].size()}},
        {"q.0_scale_inv",
         ckpt::DType::F32,
         {3, 3},
         {reinterpret_cast<const char *>(scales32), sizeof(scales32)}},
        {"q.1",
         ckpt::DType::F8E4M3,
         {n, k},
         {reinterpret_cast<const char *>(codes[1].data()), codes[1].size()}},
        {"q.1_scale_inv",
         ckpt::DType::BF16,
         {3, 3},
         {reinterpret_cast<const char *>(scales16), sizeof(scales16)}}};
    ASSERT_FALSE(bool(ckpt::writeSafeTensors(path, tensors)));
  }

  WeightEntry entry(moe_dtype dtype) const {
    WeightEntry w;
    w.names = {"q.0", "q.1"};
    w.stacked = true;
    w.dtype = dtype;
    w.shape = {2, n, k};
    w.scales =
        WeightEntry::BlockScales{{"q.0_scale_inv", "q.1_scale_inv"}, 2, 3};
    return w;
  }

  /// The f32 product of element i of piece e and its scale.
  float expected(int e, int64_t i) const {
    int64_t block = i / k / 2 * 3 + i % k / 3;
    double scale =
        e == 0 ? scales32[block] : cpu::fromBF16Scalar(scales16[block]);
    return static_cast<float>(e4m3Value(codes[e][i]) * scale);
  }

  static constexpr int64_t n = 5, k = 7;
  llvm::SmallString<128> dir;
  std::string path;
  std::vector<uint8_t> codes[2];
  float scales32[9];
  uint16_t scales16[9];
};

TEST_F(BlockScaledWeights, DequantizesEveryBlock) {
  Manifest manifest;
  WeightEntry plain = entry(MOE_DTYPE_BF16);
  WeightEntry packed = entry(MOE_DTYPE_BF16);
  packed.packing = Packing{1, 4, MOE_DTYPE_BF16,
                           2 * moe_uk_packed_elements(4, k, /*bf16=*/true)};
  WeightEntry wide = entry(MOE_DTYPE_F32);
  manifest.weights = {plain, packed, wide};
  for (auto [i, w] : llvm::enumerate(manifest.weights))
    w.id = static_cast<int64_t>(i);
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  ASSERT_TRUE(parsed->weights[0].scales.has_value());
  EXPECT_EQ(parsed->weights[0].scales->names[1], "q.1_scale_inv");
  EXPECT_EQ(parsed->weights[0].scales->rows, 2);
  EXPECT_EQ(parsed->weights[0].scales->cols, 3);
  EXPECT_FALSE(parsed->weights[0].stored.has_value());
  auto model = Model::load(std::move(*parsed), path);
  ASSERT_TRUE(bool(model)) << llvm::toString(model.takeError());

  auto bound = static_cast<const uint16_t *>((*model)->weight(0));
  auto widened = static_cast<const float *>((*model)->weight(2));
  const char *data = static_cast<const char *>((*model)->weight(1));
  int64_t perMatrix = moe_uk_packed_elements(4, k, /*bf16=*/true);
  for (int e = 0; e < 2; ++e)
    for (int64_t i = 0; i < n * k; ++i) {
      ASSERT_EQ(bound[e * n * k + i], nearestBF16(expected(e, i)))
          << "piece " << e << " element " << i;
      ASSERT_EQ(widened[e * n * k + i], expected(e, i))
          << "piece " << e << " element " << i;
      int64_t row = i / k - 1;
      if (row < 0 || row >= 4)
        continue;
      ASSERT_EQ(
          packedAt(data + e * perMatrix * 2, MOE_DTYPE_BF16, k, 0, i % k, row),
          cpu::fromBF16Scalar(nearestBF16(expected(e, i))))
          << "piece " << e << " element " << i;
    }
}

/// A NaN code, a scale that is not finite, and a product past the bound
/// dtype's range are load errors naming the tensor; malformed scales in
/// the manifest are refused.
TEST_F(BlockScaledWeights, RefusesBadValues) {
  auto loadError = [&](moe_dtype dtype) {
    Manifest manifest;
    manifest.weights = {entry(dtype)};
    auto model = Model::load(std::move(manifest), path);
    return model ? std::string() : llvm::toString(model.takeError());
  };
  codes[1][11] = 0xff;
  write();
  EXPECT_NE(
      loadError(MOE_DTYPE_BF16)
          .find("tensor q.1: element 11 is NaN (an FP8 weight must be finite)"),
      std::string::npos);
  codes[1][11] = 0x10;
  scales32[4] = INFINITY;
  write();
  EXPECT_NE(
      loadError(MOE_DTYPE_BF16)
          .find("tensor q.0_scale_inv: scale 4 (inf) of FP8 tensor q.0 is "
                "not finite"),
      std::string::npos);
  scales32[4] = 1.0e3f; // block 4's first element is 17: 448 x 1000 is
  codes[0][17] = 0x7e;  // past f16's 65504
  write();
  std::string message = loadError(MOE_DTYPE_F16);
  EXPECT_NE(message.find("tensor q.0: element 17 (448 times scale 1000 = "
                         "448000) is out of the range of f16; the model "
                         "dequantizes this FP8 tensor to f16"),
            std::string::npos)
      << message;

  Manifest manifest;
  manifest.weights = {entry(MOE_DTYPE_BF16)};
  manifest.weights[0].scales->names.pop_back();
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("malformed block scales of FP8 weight q.0"),
            std::string::npos);

  // Scales on a weight that is not FP8.
  std::string text = manifest.toJSON();
  size_t stored = text.find("\"stored\":\"f8e4m3fn\"");
  ASSERT_NE(stored, std::string::npos) << text;
  text.replace(stored, strlen("\"stored\":\"f8e4m3fn\""), "\"stored\":\"f32\"");
  parsed = Manifest::parse(text);
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("weight q.0 has block scales but is not stored as FP8"),
            std::string::npos);
}

/// The manifest keeps which weights and knobs GPU code reads in GPU memory
/// (moe_model_upload copies exactly those).
TEST(ManifestDeviceFlags, SurviveTheRoundTrip) {
  Manifest manifest;
  manifest.knobs = {{0, "moe_layer_0", "tau", 0.25, /*device=*/true},
                    {1, "moe_layer_0", "capacity_factor", 1.5, false}};
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  ASSERT_EQ(parsed->knobs.size(), 2u);
  EXPECT_TRUE(parsed->knobs[0].device);
  EXPECT_FALSE(parsed->knobs[1].device);
  EXPECT_EQ(parsed->knobs[1].name, "capacity_factor");
  EXPECT_EQ(parsed->knobs[1].defaultValue, 1.5);
}

/// NVFP4 weights keep their global scales and which way they go; the
/// direction without global scales, or not a boolean, is malformed.
TEST(ManifestGlobalScales, SurviveTheRoundTrip) {
  Manifest manifest;
  WeightEntry weight;
  weight.names = {"w.0_packed", "w.1_packed"};
  weight.stacked = true;
  weight.dtype = MOE_DTYPE_BF16;
  weight.shape = {2, 4, 32};
  WeightEntry::BlockScales scales;
  scales.names = {"w.0_scale", "w.1_scale"};
  scales.rows = 1;
  scales.cols = 16;
  scales.fp4 = true;
  scales.globals = {"w.0_global_scale", "w.1_global_scale"};
  scales.globalsInverse = true;
  weight.scales = scales;
  manifest.weights = {weight};
  manifest.weights[0].scales->globalsInverse = false;
  weight.id = 1;
  manifest.weights.push_back(weight);
  std::string text = manifest.toJSON();
  auto parsed = Manifest::parse(text);
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  ASSERT_EQ(parsed->weights.size(), 2u);
  for (const WeightEntry &w : parsed->weights) {
    ASSERT_TRUE(w.scales.has_value());
    EXPECT_TRUE(w.scales->nvfp4());
    EXPECT_EQ(w.scales->globals, scales.globals);
  }
  EXPECT_FALSE(parsed->weights[0].scales->globalsInverse);
  EXPECT_TRUE(parsed->weights[1].scales->globalsInverse);

  // Not a boolean.
  std::string edited = text;
  size_t at = edited.find("\"global_scales_inverse\":true");
  ASSERT_NE(at, std::string::npos) << text;
  edited.replace(at, strlen("\"global_scales_inverse\":true"),
                 "\"global_scales_inverse\":1");
  parsed = Manifest::parse(edited);
  ASSERT_FALSE(bool(parsed)) << edited;
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("malformed block scales of NVFP4 weight w.0_packed"),
            std::string::npos);
  // Without global scales (MXFP4's E8M0 scales of blocks of 32).
  manifest.weights.resize(1);
  manifest.weights[0].scales->globals.clear();
  manifest.weights[0].scales->cols = 32;
  manifest.weights[0].scales->globalsInverse = true;
  parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("malformed block scales of MXFP4 weight w.0_packed"),
            std::string::npos);
}

/// Integer weights keep their bit width; a scale block of more than one
/// row is malformed for them.
TEST(ManifestIntegerWeights, SurviveTheRoundTrip) {
  Manifest manifest;
  WeightEntry weight;
  weight.names = {"w.0.weight_packed"};
  weight.dtype = MOE_DTYPE_BF16;
  weight.shape = {4, 48};
  WeightEntry::BlockScales scales;
  scales.names = {"w.0.weight_scale"};
  scales.rows = 1;
  scales.cols = 32;
  scales.bits = 4;
  weight.scales = scales;
  manifest.weights = {weight};
  weight.id = 1;
  weight.scales->bits = 8;
  weight.scales->cols = 48;
  manifest.weights.push_back(weight);
  std::string text = manifest.toJSON();
  EXPECT_NE(text.find("\"stored\":\"i4\""), std::string::npos) << text;
  auto parsed = Manifest::parse(text);
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  ASSERT_EQ(parsed->weights.size(), 2u);
  EXPECT_EQ(parsed->weights[0].scales->bits, 4u);
  EXPECT_EQ(parsed->weights[1].scales->bits, 8u);
  EXPECT_EQ(parsed->weights[1].scales->cols, 48);
  EXPECT_FALSE(parsed->weights[0].scales->fp4);
  EXPECT_FALSE(parsed->weights[0].stored.has_value());

  manifest.weights.resize(1);
  manifest.weights[0].scales->rows = 2;
  parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("integer weight w.0.weight_packed has a scale block of "
                      "more than one row"),
            std::string::npos);

  // GPTQ's: transposed, blocks of one stored column, zero points stored
  // minus one, group indices.
  WeightEntry &gptq = manifest.weights[0];
  gptq.names = {"w.0.qweight"};
  gptq.transposed = true;
  gptq.scales->rows = 32;
  gptq.scales->cols = 1;
  gptq.scales->zeros = {"w.0.qzeros"};
  gptq.scales->zeroOffset = 1;
  gptq.scales->groupIndices = {"w.0.g_idx"};
  text = manifest.toJSON();
  parsed = Manifest::parse(text);
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  const WeightEntry::BlockScales &read = *parsed->weights[0].scales;
  EXPECT_TRUE(parsed->weights[0].transposed);
  EXPECT_EQ(read.zeros, gptq.scales->zeros);
  EXPECT_EQ(read.zeroOffset, 1);
  EXPECT_EQ(read.groupIndices, gptq.scales->groupIndices);
  // AWQ's words of outputs in its order of fields.
  gptq.scales->packOutputs = true;
  gptq.scales->packOrder = {0, 2, 4, 6, 1, 3, 5, 7};
  parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  EXPECT_TRUE(parsed->weights[0].scales->packOutputs);
  EXPECT_EQ(parsed->weights[0].scales->packOrder, gptq.scales->packOrder);
  // An order that is not a permutation of the fields.
  gptq.scales->packOrder.back() = 5;
  parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("malformed pack order of integer weight w.0.qweight"),
            std::string::npos);
  gptq.scales->packOrder.clear();
  // An offset without zero points.
  gptq.scales->zeros.clear();
  parsed = Manifest::parse(manifest.toJSON());
  ASSERT_FALSE(bool(parsed));
  EXPECT_NE(llvm::toString(parsed.takeError())
                .find("malformed block scales of integer weight w.0.qweight"),
            std::string::npos);
}

/// bitsandbytes' 4-bit weights keep their flag, which excludes any other
/// way of reading the tensors.
TEST(ManifestBitsandbytes, SurvivesTheRoundTrip) {
  Manifest manifest;
  WeightEntry weight;
  weight.names = {"e.0.w1.weight", "e.1.w1.weight"};
  weight.stacked = true;
  weight.dtype = MOE_DTYPE_BF16;
  weight.shape = {2, 8, 64};
  weight.bitsandbytes = true;
  weight.device = true;
  manifest.weights.push_back(weight);
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  EXPECT_TRUE(parsed->weights[0].bitsandbytes);
  EXPECT_TRUE(parsed->weights[0].device);

  for (auto [what, edit] :
       {std::pair<const char *, void (*)(WeightEntry &)>(
            "stored", [](WeightEntry &w) { w.stored = MOE_DTYPE_F32; }),
        std::pair<const char *, void (*)(WeightEntry &)>(
            "transposed", [](WeightEntry &w) { w.transposed = true; })}) {
    Manifest bad = manifest;
    edit(bad.weights[0]);
    parsed = Manifest::parse(bad.toJSON());
    ASSERT_FALSE(bool(parsed)) << what;
    EXPECT_NE(llvm::toString(parsed.takeError())
                  .find("weight e.0.w1.weight is bitsandbytes and stored, "
                        "transposed or interleaved"),
              std::string::npos)
        << what;
  }
}

/// A layer that counts co-activated pairs keeps the flag, and its table in
/// GPU memory has a row per expert more.
TEST(ManifestCoactivation, SurvivesTheRoundTrip) {
  Manifest manifest;
  manifest.stats = {{0, "moe_layer_0", 8, /*coactivation=*/true},
                    {1, "moe_layer_1", 8, false}};
  auto parsed = Manifest::parse(manifest.toJSON());
  ASSERT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  ASSERT_EQ(parsed->stats.size(), 2u);
  EXPECT_TRUE(parsed->stats[0].coactivation);
  EXPECT_FALSE(parsed->stats[1].coactivation);
  EXPECT_EQ(parsed->stats[0].deviceRows(), 10);
  EXPECT_EQ(parsed->stats[1].deviceRows(), 2);
}

} // namespace
