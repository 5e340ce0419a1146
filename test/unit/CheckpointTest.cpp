//===- CheckpointTest.cpp - unit tests of the safetensors reader ----------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Files are written into a fresh temporary directory: well-formed ones with
// the library's writer, malformed ones byte by byte with writeRaw, so that
// every validation of the reader is exercised, plus a mutation test that
// opens thousands of corrupted variants of a valid file.
//
//===----------------------------------------------------------------------===//

#include "moe/Checkpoint/SafeTensors.h"
#include "moe/Support/Npy.h"

#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cmath>

#include <cstring>
#include <random>

using namespace mlir::moe;
using namespace mlir::moe::checkpoint;
using llvm::StringRef;

namespace {

/// Little-endian bytes of floats in a dtype.
std::vector<char> encode(DType type, llvm::ArrayRef<float> values) {
  std::vector<char> bytes(values.size() * elementSize(type));
  for (size_t i = 0; i < values.size(); ++i) {
    char *out = bytes.data() + i * elementSize(type);
    if (type == DType::F32) {
      std::memcpy(out, &values[i], 4);
      continue;
    }
    uint16_t bits = type == DType::F16 ? npy::floatToF16(values[i])
                                       : npy::floatToBF16(values[i]);
    std::memcpy(out, &bits, 2);
  }
  return bytes;
}

class CheckpointTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(
        llvm::sys::fs::createUniqueDirectory("moe-checkpoint-test", dir));
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  std::string path(StringRef name) const {
    llvm::SmallString<256> p(dir);
    llvm::sys::path::append(p, name);
    return p.str().str();
  }

  /// Writes `bytes` as they are.
  std::string writeBytes(StringRef name, StringRef bytes) {
    std::string p = path(name);
    std::error_code ec;
    llvm::raw_fd_ostream os(p, ec);
    EXPECT_FALSE(ec);
    os << bytes;
    return p;
  }

  /// A safetensors file with this header text and `dataSize` data bytes.
  std::string writeRaw(StringRef name, StringRef header, size_t dataSize) {
    char length[8];
    llvm::support::endian::write64le(length, header.size());
    std::string bytes(length, 8);
    bytes += header.str();
    bytes.append(dataSize, '\x11');
    return writeBytes(name, bytes);
  }

  std::string write(StringRef name, llvm::ArrayRef<TensorData> tensors) {
    std::string p = path(name);
    EXPECT_FALSE(bool(llvm::errorToBool(writeSafeTensors(p, tensors))));
    return p;
  }

  /// The message of a failed open, or "" (and a test failure) if it opened.
  std::string openError(StringRef p) {
    auto ckpt = Checkpoint::open(p);
    if (ckpt) {
      ADD_FAILURE() << p.str() << " opened, expected an error";
      return "";
    }
    return llvm::toString(ckpt.takeError());
  }

  template <typename T> static std::string errorOf(llvm::Expected<T> value) {
    if (value) {
      ADD_FAILURE() << "expected an error";
      return "";
    }
    return llvm::toString(value.takeError());
  }

  llvm::SmallString<128> dir;
};

//===----------------------------------------------------------------------===//
// Well-formed files
//===----------------------------------------------------------------------===//

TEST_F(CheckpointTest, RoundTripOfEveryDTypeAndShape) {
  // Values exact in every dtype, so the comparison can be exact.
  std::vector<float> six = {1.0f, -2.5f, 0.375f, 4.0f, -0.125f, 96.0f};
  std::vector<char> f32 = encode(DType::F32, six);
  std::vector<char> f16 = encode(DType::F16, {six.data(), 4});
  std::vector<char> bf16 = encode(DType::BF16, six);
  std::vector<char> scalar = encode(DType::F32, {7.0f});
  std::string p =
      write("model.safetensors", {{"w.f32", DType::F32, {2, 3}, f32},
                                  {"w.f16", DType::F16, {4}, f16},
                                  {"w.bf16", DType::BF16, {3, 1, 2}, bf16},
                                  {"scalar", DType::F32, {}, scalar},
                                  {"empty", DType::BF16, {0, 5}, {}}});

  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  std::vector<std::string> names;
  for (const TensorInfo &t : (*ckpt)->tensors())
    names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"empty", "scalar", "w.bf16",
                                             "w.f16", "w.f32"}));

  const TensorInfo *t = (*ckpt)->lookup("w.bf16");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->dtype, DType::BF16);
  EXPECT_EQ(t->dtypeName, "BF16");
  EXPECT_EQ(llvm::ArrayRef<int64_t>(t->shape),
            llvm::ArrayRef<int64_t>({3, 1, 2}));
  EXPECT_EQ(t->numBytes, 12u);
  EXPECT_EQ(t->file, p);
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(getAsF32(*t, i), six[i]);
  for (int64_t i = 0; i < 4; ++i)
    EXPECT_EQ(getAsF32(*(*ckpt)->lookup("w.f16"), i), six[i]);
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(getAsF32(*(*ckpt)->lookup("w.f32"), i), six[i]);

  const TensorInfo *s = (*ckpt)->lookup("scalar");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(s->numElements(), 1);
  EXPECT_EQ(getAsF32(*s, 0), 7.0f);

  const TensorInfo *e = (*ckpt)->lookup("empty");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->numElements(), 0);
  EXPECT_EQ(e->numBytes, 0u);
  EXPECT_FALSE((*ckpt)->lookup("missing"));
}

TEST_F(CheckpointTest, WriterAlignsEveryTensor) {
  std::vector<char> f16 = encode(DType::F16, {1, 2, 3});
  std::vector<char> f32 = encode(DType::F32, {1, 2});
  std::string p = write("a.safetensors", {{"a", DType::F16, {3}, f16},
                                          {"b", DType::F32, {2}, f32}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  for (const TensorInfo &t : (*ckpt)->tensors()) {
    EXPECT_EQ(t.fileOffset % elementSize(*t.dtype), 0u) << t.name;
    EXPECT_EQ(static_cast<const char *>(t.data) - t.fileOffset,
              static_cast<const char *>((*ckpt)->tensors()[0].data) -
                  (*ckpt)->tensors()[0].fileOffset);
  }
  // F32 first, then F16, back to back after an 8-aligned header.
  EXPECT_EQ((*ckpt)->lookup("b")->fileOffset % 8, 0u);
  EXPECT_EQ((*ckpt)->lookup("a")->fileOffset,
            (*ckpt)->lookup("b")->fileOffset + 8);
}

TEST_F(CheckpointTest, HandWrittenHeaderInAnyOrderWithMetadata) {
  std::string p = writeRaw("h.safetensors",
                           R"({"__metadata__": {"format": "pt"},
          "late": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
          "early": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
          "alias": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}})",
                           16);
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->tensors().size(), 3u);
  EXPECT_EQ((*ckpt)->lookup("late")->numBytes, 8u);
}

TEST_F(CheckpointTest, UnsupportedDTypeIsListedButNotUsable) {
  std::string p = writeRaw(
      "u.safetensors",
      R"({"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
          "f8": {"dtype": "F8_E5M2", "shape": [4], "data_offsets": [16, 20]},
          "w": {"dtype": "F32", "shape": [1], "data_offsets": [20, 24]}})",
      24);
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const TensorInfo *ids = (*ckpt)->lookup("ids");
  ASSERT_TRUE(ids);
  EXPECT_FALSE(ids->dtype);
  EXPECT_EQ(ids->dtypeName, "I64");
  EXPECT_EQ(errorOf((*ckpt)->get("ids")),
            p + ": unsupported dtype I64 for tensor ids (expected F32, F16, "
                "BF16, F8_E4M3, U8 or I32)");
  EXPECT_EQ(errorOf((*ckpt)->require("f8", {4})),
            p + ": unsupported dtype F8_E5M2 for tensor f8 (expected F32, "
                "F16, BF16, F8_E4M3, U8 or I32)");
  EXPECT_TRUE(bool((*ckpt)->require("w", {1}, {DType::F32})));
}

TEST_F(CheckpointTest, PackedIntsAreWholeI32Words) {
  // Rows of 12 codes: two words of eight 4-bit codes (the second partial),
  // or three of four 8-bit ones.
  std::string p = writeRaw(
      "ints.safetensors",
      R"({"w4": {"dtype": "I32", "shape": [3, 2], "data_offsets": [0, 24]},
          "w8": {"dtype": "I32", "shape": [3, 3], "data_offsets": [24, 60]}})",
      60);
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_TRUE(bool((*ckpt)->requirePackedInts("w4", {3, 12}, 4)));
  EXPECT_TRUE(bool((*ckpt)->requirePackedInts("w8", {3, 12}, 8)));
  EXPECT_TRUE(bool((*ckpt)->requirePackedInts("w4", {3, 16}, 4)));
  EXPECT_EQ(errorOf((*ckpt)->requirePackedInts("w4", {3, 17}, 4)),
            p + ": tensor w4 has shape [3, 2], expected [3, 3]");
  EXPECT_EQ(errorOf((*ckpt)->requirePackedInts("w8", {3, 12}, 4)),
            p + ": tensor w8 has shape [3, 3], expected [3, 2]");
  EXPECT_EQ(name(DType::I32), "I32");
  EXPECT_EQ(elementSize(DType::I32), 4u);
  // I32 words are read; they are not a dtype to compute with.
  EXPECT_EQ(parseDType("I32"), DType::I32);
  EXPECT_FALSE(parseComputeDType("i32").has_value());
}

TEST_F(CheckpointTest, F8E4M3IsRead) {
  // 0x38 = 1, 0xc4 = -3, 0x01 = 2^-9 (the smallest subnormal), 0x7e = 448.
  const char bytes[] = {'\x38', '\xc4', '\x01', '\x7e'};
  std::string p =
      write("f8.safetensors", {TensorData{"q", DType::F8E4M3, {2, 2}, bytes}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  auto q = (*ckpt)->require("q", {2, 2}, {DType::F8E4M3});
  ASSERT_TRUE(bool(q)) << llvm::toString(q.takeError());
  EXPECT_EQ(getAsF32(**q, 0), 1.0f);
  EXPECT_EQ(getAsF32(**q, 1), -3.0f);
  EXPECT_EQ(getAsF32(**q, 2), 0x1p-9f);
  EXPECT_EQ(getAsF32(**q, 3), 448.0f);
  EXPECT_EQ(errorOf((*ckpt)->require("q", {2, 2}, {DType::BF16})),
            p + ": tensor q has dtype F8_E4M3, expected BF16");
}

/// MXFP4 codes are U8 [..., k / 2] or, as GPT-OSS stores them, [..., k /
/// 32, 16]; their E8M0 scales U8 [..., ceil(k / 32)].
TEST_F(CheckpointTest, MXFP4ShapesAreChecked) {
  std::vector<char> bytes(2 * 64 / 2 + 2 * 2 + 3 * 32 / 2, '\x21');
  llvm::ArrayRef<char> all(bytes);
  std::string p = write(
      "mx.safetensors",
      {TensorData{"gpt_blocks", DType::U8, {2, 2, 16}, all.take_front(64)},
       TensorData{"gpt_scales", DType::U8, {2, 2}, all.slice(64, 4)},
       TensorData{"flat", DType::U8, {3, 16}, all.slice(68, 48)},
       TensorData{"half", DType::BF16, {2, 16}, all.take_front(64)}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_TRUE(bool((*ckpt)->requireMXFP4("gpt_blocks", {2, 64})));
  EXPECT_TRUE(bool((*ckpt)->requireE8M0Scales("gpt_scales", {2, 64})));
  EXPECT_TRUE(bool((*ckpt)->requireMXFP4("flat", {3, 32})));
  EXPECT_EQ(getAsF32(**(*ckpt)->requireMXFP4("flat", {3, 32}), 0), 33.0f);
  EXPECT_EQ(errorOf((*ckpt)->requireMXFP4("gpt_blocks", {2, 96})),
            p + ": tensor gpt_blocks has shape [2, 2, 16], expected "
                "[2, 3, 16]");
  EXPECT_EQ(errorOf((*ckpt)->requireE8M0Scales("gpt_scales", {2, 96})),
            p + ": tensor gpt_scales has shape [2, 2], expected [2, 3]");
  EXPECT_EQ(errorOf((*ckpt)->requireMXFP4("half", {2, 32})),
            p + ": tensor half has dtype BF16, expected U8");
  EXPECT_NE(errorOf((*ckpt)->requireMXFP4("flat", {3, 31})).find("odd"),
            std::string::npos);
}

/// Every finite FP8 E4M3 code decodes to its value by the format's
/// definition and encodes back; values between two codes go to the nearer,
/// ties to the even code; magnitudes past 448 saturate; NaN stays NaN.
/// NVFP4's block scales: F8_E4M3, one a block of 16 of a row, a partial
/// block included; the codes are MXFP4's.
TEST_F(CheckpointTest, NVFP4ScalesAreChecked) {
  std::vector<char> bytes(2 * 3, 0x38);
  std::string p = write("nvfp4.safetensors",
                        {TensorData{"scales", DType::F8E4M3, {2, 3}, bytes},
                         TensorData{"u8", DType::U8, {2, 3}, bytes}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const Checkpoint &c = **ckpt;
  for (int64_t k : {33, 40, 48}) {
    auto scales = c.requireE4M3Scales("scales", {2, k});
    EXPECT_TRUE(bool(scales)) << llvm::toString(scales.takeError());
  }
  EXPECT_EQ(errorOf(c.requireE4M3Scales("scales", {2, 64})),
            p + ": tensor scales has shape [2, 3], expected [2, 4]");
  EXPECT_EQ(errorOf(c.requireE4M3Scales("u8", {2, 48})),
            p + ": tensor u8 has dtype U8, expected F8_E4M3");
}

/// I8 tensors (compressed-tensors' int-quantized weights) are read as
/// signed bytes, and told apart from U8 ones.
TEST_F(CheckpointTest, I8IsSigned) {
  std::vector<char> bytes = {0, 1, 127, -128, -1, 5};
  std::string p =
      write("i8.safetensors", {TensorData{"i8", DType::I8, {2, 3}, bytes},
                               TensorData{"u8", DType::U8, {2, 3}, bytes}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const Checkpoint &c = **ckpt;
  auto i8 = c.require("i8", {2, 3}, {DType::I8});
  ASSERT_TRUE(bool(i8)) << llvm::toString(i8.takeError());
  const float expected[] = {0, 1, 127, -128, -1, 5};
  for (int64_t i = 0; i < 6; ++i)
    EXPECT_EQ(getAsF32(**i8, i), expected[i]) << i;
  EXPECT_EQ(errorOf(c.require("u8", {2, 3}, {DType::I8})),
            p + ": tensor u8 has dtype U8, expected I8");
}

TEST(F8E4M3, DecodesAndRoundsEveryCode) {
  auto value = [](int code) {
    int exponent = (code >> 3) & 15, mantissa = code & 7;
    double magnitude = exponent ? std::ldexp(8 + mantissa, exponent - 10)
                                : std::ldexp(mantissa, -9);
    return (code & 0x80) ? -magnitude : magnitude;
  };
  for (int code = 0; code < 256; ++code) {
    float decoded = npy::f8E4M3ToFloat(static_cast<uint8_t>(code));
    if ((code & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(decoded)) << code;
      EXPECT_EQ(npy::floatToF8E4M3(decoded) & 0x7f, 0x7f) << code;
      continue;
    }
    EXPECT_EQ(decoded, value(code)) << code;
    EXPECT_EQ(npy::floatToF8E4M3(decoded), code) << code;
    if ((code & 0x7f) == 0x7e)
      continue;
    // Between this code and the next one up in magnitude.
    double next = value(code + 1);
    float mid = static_cast<float>((value(code) + next) / 2);
    int even = (code & 1) ? code + 1 : code;
    EXPECT_EQ(npy::floatToF8E4M3(mid), even) << code;
    float nearer = static_cast<float>(value(code) + (next - value(code)) / 4);
    EXPECT_EQ(npy::floatToF8E4M3(nearer), code) << code;
  }
  EXPECT_EQ(npy::floatToF8E4M3(1.0e6f), 0x7e);
  EXPECT_EQ(npy::floatToF8E4M3(-INFINITY), 0xfe);
  EXPECT_EQ(npy::floatToF8E4M3(0x1p-11f), 0x00); // a quarter of 2^-9
}

TEST_F(CheckpointTest, UnknownDTypeIsCheckedAgainstTheFileOnly) {
  std::string p = writeRaw(
      "x.safetensors",
      R"({"packed": {"dtype": "F4", "shape": [5], "data_offsets": [0, 3]}})",
      3);
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_NE(errorOf((*ckpt)->get("packed")).find("unsupported dtype F4"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// require
//===----------------------------------------------------------------------===//

TEST_F(CheckpointTest, RequireNamesTensorAndBothShapes) {
  std::vector<char> gate = encode(DType::BF16, std::vector<float>(8 * 64));
  std::string p =
      write("model.safetensors",
            {{"model.layers.0.mlp.gate.weight", DType::BF16, {8, 64}, gate}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const Checkpoint &c = **ckpt;

  EXPECT_EQ(errorOf(c.require("model.layers.0.mlp.gate.weight", {16, 64})),
            p + ": tensor model.layers.0.mlp.gate.weight has shape [8, 64], "
                "expected [16, 64]");
  EXPECT_EQ(errorOf(c.require("model.layers.0.mlp.gate.weight", {8, 64},
                              {DType::F32, DType::F16})),
            p + ": tensor model.layers.0.mlp.gate.weight has dtype BF16, "
                "expected F32 or F16");
  EXPECT_EQ(errorOf(c.require("model.layers.0.mlp.gate.weight", {8, 64, 1})),
            p + ": tensor model.layers.0.mlp.gate.weight has shape [8, 64], "
                "expected [8, 64, 1]");
  EXPECT_EQ(errorOf(c.require("model.layers.1.mlp.gate.weight", {8, 64})),
            p + ": has no tensor model.layers.1.mlp.gate.weight");
  auto ok = c.require("model.layers.0.mlp.gate.weight", {8, 64},
                      {DType::F32, DType::BF16});
  ASSERT_TRUE(bool(ok)) << llvm::toString(ok.takeError());
  EXPECT_EQ((*ok)->name, "model.layers.0.mlp.gate.weight");
}

/// A tensor may carry leading dimensions of size 1 before the expected
/// shape (PyTorch's [1, n] vectors), never other extra or missing ones.
TEST_F(CheckpointTest, RequireAllowsLeadingUnitDimensions) {
  std::vector<char> four = encode(DType::F32, {1, 2, 3, 4});
  std::string p =
      write("bias.safetensors", {{"row", DType::F32, {1, 4}, four},
                                 {"deep", DType::F32, {1, 1, 4}, four},
                                 {"pair", DType::F32, {2, 2}, four},
                                 {"flat", DType::F32, {4}, four}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const Checkpoint &c = **ckpt;
  for (const char *name : {"row", "deep", "flat"}) {
    auto vector = c.require(name, {4}, {DType::F32});
    EXPECT_TRUE(bool(vector)) << llvm::toString(vector.takeError());
  }
  auto matrix = c.require("deep", {1, 4});
  EXPECT_TRUE(bool(matrix)) << llvm::toString(matrix.takeError());
  EXPECT_EQ(errorOf(c.require("pair", {4})),
            p + ": tensor pair has shape [2, 2], expected [4]");
  EXPECT_EQ(errorOf(c.require("flat", {1, 4})),
            p + ": tensor flat has shape [4], expected [1, 4]");
  EXPECT_EQ(errorOf(c.require("row", {4, 1})),
            p + ": tensor row has shape [1, 4], expected [4, 1]");
}

/// A stack of matrices may be stored with its leading dimensions merged into
/// its first (DBRX keeps its experts' [E, f, d] as [E * f, d]); a vector is
/// never such a stack, and the merged size must be the product.
TEST_F(CheckpointTest, RequireAllowsMergedLeadingDimensions) {
  std::vector<char> twelve =
      encode(DType::F32, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  std::string p =
      write("stack.safetensors", {{"tall", DType::F32, {6, 2}, twelve},
                                  {"flat", DType::F32, {12}, twelve}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const Checkpoint &c = **ckpt;
  for (const std::vector<int64_t> &shape :
       std::vector<std::vector<int64_t>>{{3, 2, 2}, {2, 3, 2}, {1, 3, 2, 2}}) {
    auto stack = c.require("tall", shape, {DType::F32});
    EXPECT_TRUE(bool(stack)) << llvm::toString(stack.takeError());
  }
  EXPECT_EQ(errorOf(c.require("tall", {2, 2, 3})),
            p + ": tensor tall has shape [6, 2], expected [2, 2, 3]");
  EXPECT_EQ(errorOf(c.require("tall", {2, 2, 2})),
            p + ": tensor tall has shape [6, 2], expected [2, 2, 2]");
  EXPECT_EQ(errorOf(c.require("flat", {3, 4})),
            p + ": tensor flat has shape [12], expected [3, 4]");
}

/// The scales of FP8 tensors: the grid's shape, in a float dtype; the one
/// scale of a matrix may also be a scalar or a vector of one, and a grid of
/// one block row or column have its last two dimensions swapped.
TEST_F(CheckpointTest, RequireScalesOfEveryGrid) {
  std::vector<char> one = encode(DType::F32, {0.5f});
  std::vector<char> two = encode(DType::BF16, {0.5f, 0.25f});
  std::vector<char> six = encode(DType::F32, {1, 2, 3, 4, 5, 6});
  std::string p =
      write("scales.safetensors", {{"scalar", DType::F32, {}, one},
                                   {"vector", DType::F32, {1}, one},
                                   {"pair", DType::BF16, {2}, two},
                                   {"column", DType::BF16, {2, 1}, two},
                                   {"columns", DType::F32, {2, 3, 1}, six},
                                   {"grid", DType::F32, {1, 2, 3}, six}});
  auto ckpt = Checkpoint::open(p);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  const Checkpoint &c = **ckpt;
  for (const char *name : {"scalar", "vector"}) {
    auto scales = c.requireScales(name, {1, 1});
    EXPECT_TRUE(bool(scales)) << llvm::toString(scales.takeError());
  }
  auto column = c.requireScales("column", {2, 1});
  EXPECT_TRUE(bool(column)) << llvm::toString(column.takeError());
  // A grid of more than one scale, or of another rank, takes its shape.
  EXPECT_EQ(errorOf(c.requireScales("scalar", {2, 1})),
            p + ": tensor scalar has shape [], expected [2, 1]");
  EXPECT_EQ(errorOf(c.requireScales("vector", {3, 1, 1})),
            p + ": tensor vector has shape [1], expected [3, 1, 1]");
  EXPECT_EQ(errorOf(c.requireScales("pair", {1, 1})),
            p + ": tensor pair has shape [2], expected [1]");
  // [E, m, 1] for [E, 1, m] (Llama-4's down_proj scales), and the reverse;
  // not a grid of more than one block row and column.
  for (std::vector<int64_t> grid :
       {std::vector<int64_t>{2, 1, 3}, std::vector<int64_t>{2, 3, 1}}) {
    auto columns = c.requireScales("columns", grid);
    EXPECT_TRUE(bool(columns)) << llvm::toString(columns.takeError());
  }
  auto row = c.requireScales("column", {1, 2});
  EXPECT_TRUE(bool(row)) << llvm::toString(row.takeError());
  EXPECT_EQ(errorOf(c.requireScales("grid", {1, 3, 2})),
            p + ": tensor grid has shape [1, 2, 3], expected [1, 3, 2]");
  EXPECT_EQ(errorOf(c.requireScales("columns", {3, 2, 1})),
            p + ": tensor columns has shape [2, 3, 1], expected [3, 2, 1]");
}

//===----------------------------------------------------------------------===//
// Directories and shards
//===----------------------------------------------------------------------===//

class ShardedCheckpointTest : public CheckpointTest {
protected:
  void SetUp() override {
    CheckpointTest::SetUp();
    a = encode(DType::F32, {1, 2, 3, 4});
    b = encode(DType::BF16, {5, 6});
    write("model-00001-of-00002.safetensors",
          {{"layer.0.w", DType::F32, {2, 2}, a}});
    write("model-00002-of-00002.safetensors",
          {{"layer.1.w", DType::BF16, {2}, b},
           {"layer.1.extra", DType::BF16, {2}, b}});
  }

  std::string writeIndex(StringRef weightMap) {
    return writeBytes(
        "model.safetensors.index.json",
        (R"({"metadata": {"total_size": 16}, "weight_map": )" + weightMap + "}")
            .str());
  }

  std::vector<char> a, b;
};

TEST_F(ShardedCheckpointTest, IndexListsEveryShard) {
  writeIndex(R"({"layer.0.w": "model-00001-of-00002.safetensors",
                 "layer.1.w": "model-00002-of-00002.safetensors"})");
  auto ckpt = Checkpoint::open(dir);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  // A shard's tensors that the index does not name are still listed.
  EXPECT_EQ((*ckpt)->tensors().size(), 3u);
  const TensorInfo *w1 = (*ckpt)->lookup("layer.1.w");
  ASSERT_TRUE(w1);
  EXPECT_EQ(w1->file, path("model-00002-of-00002.safetensors"));
  EXPECT_EQ(getAsF32(*w1, 1), 6.0f);
  EXPECT_EQ(getAsF32(*(*ckpt)->lookup("layer.0.w"), 3), 4.0f);
}

TEST_F(ShardedCheckpointTest, ShardInASubdirectory) {
  ASSERT_FALSE(llvm::sys::fs::create_directory(path("sub")));
  write("sub/part.safetensors", {{"layer.2.w", DType::BF16, {2}, b}});
  writeIndex(R"({"layer.0.w": "model-00001-of-00002.safetensors",
                 "layer.2.w": "sub/part.safetensors"})");
  auto ckpt = Checkpoint::open(dir);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->lookup("layer.2.w")->file, path("sub/part.safetensors"));
}

TEST_F(ShardedCheckpointTest, IndexNamingAMissingShard) {
  std::string index =
      writeIndex(R"({"layer.0.w": "model-00001-of-00003.safetensors"})");
  EXPECT_EQ(openError(dir),
            index +
                ": names shard model-00001-of-00003.safetensors, which "
                "does not exist in " +
                dir.str().str());
}

TEST_F(ShardedCheckpointTest, IndexNamingATensorTheShardLacks) {
  std::string index =
      writeIndex(R"({"layer.0.w": "model-00001-of-00002.safetensors",
                 "layer.2.w": "model-00002-of-00002.safetensors"})");
  EXPECT_EQ(openError(dir),
            index + ": maps tensor layer.2.w to "
                    "model-00002-of-00002.safetensors, which lacks it");
}

TEST_F(ShardedCheckpointTest, IndexNamingTheWrongShard) {
  writeIndex(R"({"layer.0.w": "model-00002-of-00002.safetensors",
                 "layer.1.w": "model-00001-of-00002.safetensors"})");
  std::string error = openError(dir);
  EXPECT_NE(error.find("maps tensor layer.0.w to "
                       "model-00002-of-00002.safetensors, but it is in " +
                       path("model-00001-of-00002.safetensors")),
            std::string::npos)
      << error;
}

TEST_F(ShardedCheckpointTest, DuplicateTensorAcrossShards) {
  write("model-00003-of-00003.safetensors",
        {{"layer.1.w", DType::BF16, {2}, b}});
  writeIndex(R"({"layer.0.w": "model-00001-of-00002.safetensors",
                 "layer.1.w": "model-00002-of-00002.safetensors",
                 "other": "model-00003-of-00003.safetensors"})");
  std::string error = openError(dir);
  EXPECT_NE(error.find("tensor layer.1.w is also in"), std::string::npos)
      << error;
  EXPECT_NE(error.find("model-00002-of-00002.safetensors"), std::string::npos);
  EXPECT_NE(error.find("model-00003-of-00003.safetensors"), std::string::npos);
}

TEST_F(ShardedCheckpointTest, MalformedIndex) {
  std::string index = writeBytes("model.safetensors.index.json", "{\"weight");
  EXPECT_NE(openError(dir).find(index + ": invalid JSON"), std::string::npos);
  writeBytes("model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_EQ(openError(dir), index + ": has no \"weight_map\" object");
  writeBytes("model.safetensors.index.json", R"({"weight_map": {"x": 3}})");
  EXPECT_EQ(openError(dir),
            index + ": tensor x maps to something other than a file name");
}

TEST_F(CheckpointTest, DirectoryWithASingleFile) {
  std::vector<char> a = encode(DType::F16, {1});
  write("model.safetensors", {{"w", DType::F16, {1}, a}});
  auto ckpt = Checkpoint::open(dir);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_EQ((*ckpt)->path(), dir.str());
  EXPECT_TRUE((*ckpt)->lookup("w"));
}

TEST_F(CheckpointTest, DirectoryWithoutWeights) {
  EXPECT_EQ(openError(dir), dir.str().str() + ": is a directory without "
                                              "model.safetensors.index.json or "
                                              "model.safetensors");
  EXPECT_EQ(openError(path("nothing")),
            path("nothing") + ": no such file or directory");
}

//===----------------------------------------------------------------------===//
// Malformed files
//===----------------------------------------------------------------------===//

struct BadHeader {
  const char *what;
  const char *header;
  size_t dataSize;
  const char *message; // after "FILE: "
};

const BadHeader kBadHeaders[] = {
    {"invalid JSON", R"({"t": {"dtype": )", 0, "invalid JSON header: "},
    {"not an object", R"([1, 2])", 0, "the header is not a JSON object"},
    {"entry not an object", R"({"t": 5})", 0, "tensor t is not a JSON object"},
    {"no dtype", R"({"t": {"shape": [1], "data_offsets": [0, 4]}})", 4,
     "tensor t has no \"dtype\" string"},
    {"dtype not a string",
     R"({"t": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4,
     "tensor t has no \"dtype\" string"},
    {"no shape", R"({"t": {"dtype": "F32", "data_offsets": [0, 4]}})", 4,
     "tensor t has no \"shape\" array"},
    {"negative dim",
     R"({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4,
     "tensor t has a shape entry that is not a non-negative integer"},
    {"fractional dim",
     R"({"t": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4,
     "tensor t has a shape entry that is not a non-negative integer"},
    {"string dim",
     R"({"t": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}})", 4,
     "tensor t has a shape entry that is not a non-negative integer"},
    {"too many elements",
     R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296, 4],
               "data_offsets": [0, 4]}})",
     4, "tensor t has too many elements"},
    {"byte count overflows",
     R"({"t": {"dtype": "F64", "shape": [2305843009213693952],
               "data_offsets": [0, 4]}})",
     4, "tensor t of F64 and shape [2305843009213693952] has too many bytes"},
    {"no offsets", R"({"t": {"dtype": "F32", "shape": [1]}})", 4,
     "tensor t needs \"data_offsets\": [begin, end] with 0 <= begin <= end"},
    {"one offset",
     R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [4]}})", 4,
     "tensor t needs \"data_offsets\""},
    {"reversed offsets",
     R"({"t": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}})", 4,
     "tensor t needs \"data_offsets\""},
    {"negative offset",
     R"({"t": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
     "tensor t needs \"data_offsets\""},
    {"offset beyond the file",
     R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4,
     "tensor t ends at data offset 8, beyond the 4-byte data section"},
    {"huge offset",
     R"({"t": {"dtype": "F32", "shape": [1],
               "data_offsets": [9223372036854775800, 9223372036854775804]}})",
     4, "tensor t ends at data offset 9223372036854775804"},
    {"size mismatch",
     R"({"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}})", 16,
     "tensor t of F32 and shape [2, 2] spans 12 bytes in data_offsets, "
     "expected 16"},
    {"unsupported dtype, size mismatch",
     R"({"t": {"dtype": "I64", "shape": [2], "data_offsets": [0, 8]}})", 16,
     "tensor t of I64 and shape [2] spans 8 bytes in data_offsets, expected "
     "16"},
    {"metadata not an object", R"({"__metadata__": [1]})", 0,
     "\"__metadata__\" is not a JSON object"},
    {"metadata value not a string", R"({"__metadata__": {"n": 1}})", 0,
     "\"__metadata__\" entry n is not a string"},
};

TEST_F(CheckpointTest, MalformedHeadersNameFileAndTensor) {
  for (const BadHeader &bad : kBadHeaders) {
    std::string p = writeRaw("bad.safetensors", bad.header, bad.dataSize);
    std::string error = openError(p);
    EXPECT_EQ(error.find(p + ": " + bad.message), 0u)
        << bad.what << ": got " << error;
  }
}

TEST_F(CheckpointTest, InvalidUTF8Header) {
  std::string p = writeRaw("utf8.safetensors",
                           "{\"t\xff\": {\"dtype\": \"F32\", \"shape\": [0], "
                           "\"data_offsets\": [0, 0]}}",
                           0);
  std::string error = openError(p);
  EXPECT_EQ(error.find(p + ": invalid JSON header: "), 0u) << error;
}

TEST_F(CheckpointTest, DeeplyNestedHeaderIsRefusedBeforeParsing) {
  // The JSON parser recurses per level: this would overflow the stack.
  std::string p = writeRaw("deep.safetensors", std::string(1000000, '['), 0);
  EXPECT_EQ(openError(p), p + ": invalid JSON header: nested too deeply");
  // Brackets inside strings do not count.
  std::string name(200, '[');
  std::string ok = writeRaw("brackets.safetensors",
                            "{\"" + name +
                                "\\\"{\": {\"dtype\": \"F32\", \"shape\": [1], "
                                "\"data_offsets\": [0, 4]}}",
                            4);
  auto ckpt = Checkpoint::open(ok);
  ASSERT_TRUE(bool(ckpt)) << llvm::toString(ckpt.takeError());
  EXPECT_TRUE((*ckpt)->lookup(name + "\"{"));
}

TEST_F(CheckpointTest, BadLengthField) {
  std::string tiny = writeBytes("tiny.safetensors", "abc");
  EXPECT_EQ(openError(tiny),
            tiny + ": too small for a safetensors file (3 bytes)");
  std::string empty = writeBytes("empty.safetensors", "");
  EXPECT_EQ(openError(empty),
            empty + ": too small for a safetensors file (0 bytes)");

  char length[8];
  llvm::support::endian::write64le(length, 100);
  std::string truncated =
      writeBytes("trunc.safetensors", std::string(length, 8) + "{}");
  EXPECT_EQ(openError(truncated),
            truncated + ": header length 100 exceeds the file size 10 "
                        "(truncated file?)");

  llvm::support::endian::write64le(length, ~uint64_t(0));
  std::string huge =
      writeBytes("huge.safetensors", std::string(length, 8) + "{}");
  EXPECT_NE(openError(huge).find(huge + ": header length 18446744073709551615 "
                                        "is implausible"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Mutations
//===----------------------------------------------------------------------===//

/// Where the values read go, so that the reads cannot be optimized away.
volatile float gSink;

/// Reads every element of every usable tensor, and checks what the reader
/// promises: tensors lie within the file, and have the size their shape
/// says.
void touchEverything(const Checkpoint &ckpt, uint64_t fileSize, float &sink) {
  for (const TensorInfo &t : ckpt.tensors()) {
    ASSERT_LE(t.fileOffset + t.numBytes, fileSize) << t.name;
    if (!ckpt.get(t.name)) {
      ASSERT_FALSE(t.dtype);
      continue;
    }
    ASSERT_EQ(t.numBytes, t.numElements() * elementSize(*t.dtype)) << t.name;
    EXPECT_TRUE(bool(ckpt.require(t.name, t.shape)));
    for (int64_t i = 0, e = t.numElements(); i < e; ++i)
      sink += getAsF32(t, i);
  }
}

/// One random corruption: a byte anywhere, a byte of the header replaced by
/// one of the JSON alphabet, a run of such bytes inserted into the header
/// with the length field kept consistent (so that numbers change and the
/// offsets and sizes are what is checked), the length field, a truncation
/// or an extension.
void mutate(std::string &bytes, std::mt19937_64 &rng, size_t &headerEnd) {
  auto pick = [&](size_t n) { return n ? size_t(rng() % n) : size_t(0); };
  static const char kJsonChars[] = "0123456789-.e\"{}[],: \\\xff";
  switch (rng() % 7) {
  case 0:
    if (!bytes.empty())
      bytes[pick(bytes.size())] = static_cast<char>(rng());
    break;
  case 1:
  case 2:
    if (headerEnd > 8 && bytes.size() > 8)
      bytes[8 + pick(std::min(headerEnd, bytes.size()) - 8)] =
          kJsonChars[pick(sizeof(kJsonChars) - 1)];
    break;
  case 3:
    if (bytes.size() >= 8)
      bytes[pick(8)] = static_cast<char>(rng());
    break;
  case 4:
    bytes.resize(pick(bytes.size() + 1));
    break;
  case 5:
    bytes.append(1 + pick(64), static_cast<char>(rng()));
    break;
  case 6:
    if (headerEnd > 8 && headerEnd <= bytes.size()) {
      size_t count = 1 + pick(4);
      bytes.insert(8 + pick(headerEnd - 8), count,
                   kJsonChars[pick(sizeof(kJsonChars) - 1)]);
      headerEnd += count;
      llvm::support::endian::write64le(bytes.data(), headerEnd - 8);
    }
    break;
  }
}

TEST_F(CheckpointTest, SurvivesRandomCorruption) {
  std::vector<float> values(48);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<float>(i) - 20.0f;
  std::vector<char> f32 = encode(DType::F32, values);
  std::vector<char> f16 = encode(DType::F16, {values.data(), 12});
  std::vector<char> bf16 = encode(DType::BF16, {values.data(), 24});
  std::string valid =
      write("valid.safetensors",
            {{"model.layers.0.mlp.gate.weight", DType::F32, {8, 6}, f32},
             {"model.layers.0.mlp.experts.0.w", DType::F16, {3, 4}, f16},
             {"b", DType::BF16, {2, 3, 4}, bf16},
             {"s", DType::F32, {}, {f32.data(), 4}},
             {"z", DType::BF16, {0}, {}}});
  auto original = llvm::MemoryBuffer::getFile(valid);
  ASSERT_TRUE(bool(original));
  std::string bytes = (*original)->getBuffer().str();
  size_t headerEnd = 8 + llvm::support::endian::read64le(bytes.data());

  std::mt19937_64 rng(20240611);
  std::string p = path("mutant.safetensors");
  float sink = 0;
  int opened = 0;
  for (int iteration = 0; iteration < 2000; ++iteration) {
    std::string mutant = bytes;
    size_t mutantHeaderEnd = headerEnd;
    for (int m = 0, n = 1 + rng() % 3; m < n; ++m)
      mutate(mutant, rng, mutantHeaderEnd);
    writeBytes("mutant.safetensors", mutant);
    auto ckpt = Checkpoint::open(p);
    if (!ckpt) {
      std::string error = llvm::toString(ckpt.takeError());
      ASSERT_EQ(error.find(p + ": "), 0u) << error;
      continue;
    }
    ++opened;
    touchEverything(**ckpt, mutant.size(), sink);
    if (HasFatalFailure())
      return;
  }
  // Both paths must be exercised: some mutants open (data bytes, trailing
  // bytes), most do not.
  EXPECT_GT(opened, 100);
  EXPECT_LT(opened, 1900);
  gSink = sink;
}

} // namespace
