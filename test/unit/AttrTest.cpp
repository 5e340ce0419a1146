//===- AttrTest.cpp - unit tests of the moe attributes --------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"

#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/bit.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <random>

using namespace mlir;
using namespace mlir::moe;

namespace {

class MoEAttrTest : public ::testing::Test {
protected:
  MoEAttrTest() { context.loadDialect<MoEDialect>(); }

  CapacityAttr capacity(std::optional<int64_t> count,
                        std::optional<double> factor, int64_t min = 0,
                        int64_t align = 1) {
    std::optional<F64> f;
    if (factor)
      f = F64{*factor};
    return CapacityAttr::get(&context, count, f, min, align, std::nullopt,
                             false);
  }

  MLIRContext context;
};

// Capacity values worked out by hand from spec section 4:
// C = count or ceil(factor * T * k / E), then max(C, min), then round up to
// a multiple of align.
TEST_F(MoEAttrTest, CapacityFromCount) {
  EXPECT_EQ(capacity(5, std::nullopt).computeCapacity(100, 2, 8), 5);
  EXPECT_EQ(capacity(5, std::nullopt, 7).computeCapacity(100, 2, 8), 7);
  EXPECT_EQ(capacity(5, std::nullopt, 0, 4).computeCapacity(100, 2, 8), 8);
}

TEST_F(MoEAttrTest, CapacityFromFactor) {
  // 1.25 * 10 * 2 / 8 = 3.125 -> 4.
  EXPECT_EQ(capacity(std::nullopt, 1.25).computeCapacity(10, 2, 8), 4);
  // 1.0 * 16 * 2 / 8 = 4 exactly -> 4.
  EXPECT_EQ(capacity(std::nullopt, 1.0).computeCapacity(16, 2, 8), 4);
  // 2.0 * 7 * 1 / 4 = 3.5 -> 4, min 6 -> 6, align 4 -> 8.
  EXPECT_EQ(capacity(std::nullopt, 2.0, 6, 4).computeCapacity(7, 1, 4), 8);
  // No tokens: the minimum.
  EXPECT_EQ(capacity(std::nullopt, 1.5, 2).computeCapacity(0, 2, 8), 2);
}

TEST_F(MoEAttrTest, CapacityVerifier) {
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  auto loc = UnknownLoc::get(&context);
  std::optional<int64_t> noCount;
  std::optional<F64> noFactor;
  std::optional<DropOrder> noOrder;
  EXPECT_FALSE(CapacityAttr::getChecked(loc, &context, noCount, noFactor,
                                        int64_t(3), int64_t(1), noOrder,
                                        false));
  EXPECT_EQ(message, "capacity options given without a capacity: expected "
                     "`count` or `factor`");
  EXPECT_FALSE(CapacityAttr::getChecked(
      loc, &context, std::optional<int64_t>(4), std::optional<F64>(F64{2.0}),
      int64_t(0), int64_t(1), noOrder, false));
  EXPECT_EQ(message, "expected one of `count` and `factor`, found both");
}

// Floats print in their shortest form and parse back bit for bit.
TEST_F(MoEAttrTest, F64RoundTrip) {
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> uniform(1e-6, 64.0);
  std::vector<double> values = {1.0, 0.5, 2.5, 0.1, 1.1, 16.0, 1e-20, 3.0e5};
  for (int i = 0; i < 200; ++i)
    values.push_back(uniform(rng));
  for (double value : values) {
    auto routing = RoutingAttr::get(
        &context, ScoreFunc::Softmax, Selection::TopK, 2, 1, std::nullopt,
        GroupScore::Max, std::nullopt, std::nullopt, CombineWeights::Scores,
        false, F64{value}, ApplyWeight::Output);
    std::string text;
    llvm::raw_string_ostream os(text);
    Attribute(routing).print(os);
    auto parsed =
        dyn_cast_or_null<RoutingAttr>(parseAttribute(text, &context));
    ASSERT_TRUE(parsed) << text;
    EXPECT_EQ(llvm::bit_cast<uint64_t>(parsed.getScale().value),
              llvm::bit_cast<uint64_t>(value))
        << text;
  }
}

TEST_F(MoEAttrTest, DefaultsAreElided) {
  auto routing = RoutingAttr::get(
      &context, ScoreFunc::Sigmoid, Selection::TopK, 4, 1, std::nullopt,
      GroupScore::Max, std::nullopt, std::nullopt, CombineWeights::Scores,
      false, F64{1.0}, ApplyWeight::Output);
  std::string text;
  llvm::raw_string_ostream os(text);
  Attribute(routing).print(os);
  EXPECT_EQ(text, "#moe.routing<score = sigmoid, selection = top_k, k = 4>");
}

} // namespace
