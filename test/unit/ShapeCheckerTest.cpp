//===- ShapeCheckerTest.cpp - unit tests of the shape checker -------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEShapeChecker.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace mlir::moe;

namespace {

class ShapeCheckerTest : public ::testing::Test {
protected:
  ShapeCheckerTest()
      : handler(&context, [this](Diagnostic &diag) {
          messages.push_back(diag.str());
          return success();
        }),
        module(ModuleOp::create(UnknownLoc::get(&context))) {}

  Type tensor(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, Float32Type::get(&context));
  }

  MLIRContext context;
  std::vector<std::string> messages;
  ScopedDiagnosticHandler handler;
  OwningOpRef<ModuleOp> module;
};

TEST_F(ShapeCheckerTest, ConsistentShapesPass) {
  ShapeChecker check(*module);
  check.dims("x", tensor({ShapedType::kDynamic, 64}), {"T", "d"})
      .dims("w", tensor({8, 64}), {"E", "d"})
      .dims("gate_up", tensor({8, 256, 64}), {"E", "2*f", "d"})
      .dims("down", tensor({8, 64, 128}), {"E", "d", "f"})
      .dims("gate", tensor({1, 64}), {"1", "d"});
  EXPECT_TRUE(succeeded(check.result()));
  EXPECT_EQ(check.get("f"), 128);
  EXPECT_EQ(check.get("E"), 8);
  EXPECT_TRUE(ShapedType::isDynamic(check.get("T")));
  EXPECT_TRUE(messages.empty());
}

TEST_F(ShapeCheckerTest, DynamicSizesMatchAnything) {
  ShapeChecker check(*module);
  check.dims("a", tensor({ShapedType::kDynamic, 4}), {"T", "k"})
      .dims("b", tensor({7, 4}), {"T", "k"})
      .dims("c", tensor({7, ShapedType::kDynamic}), {"T", "k"});
  EXPECT_TRUE(succeeded(check.result()));
  EXPECT_EQ(check.get("T"), 7);
}

TEST_F(ShapeCheckerTest, MismatchNamesBothPlaces) {
  ShapeChecker check(*module);
  check.dims("gate", tensor({8, 128, 64}), {"E", "f", "d"})
      .dims("down", tensor({8, 64, 96}), {"E", "d", "f"})
      .dims("never", tensor({1}), {"E"});
  EXPECT_TRUE(failed(check.result()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0], "'builtin.module' op expected `down` dim 2 (f) to be "
                         "128 (f = 128 from `gate` dim 1 (f)), found 96");
}

TEST_F(ShapeCheckerTest, FactorAndLiteral) {
  ShapeChecker odd(*module);
  odd.dims("gate_up", tensor({8, 255, 64}), {"E", "2*f", "d"});
  EXPECT_TRUE(failed(odd.result()));
  ShapeChecker literal(*module);
  literal.dims("gate", tensor({2, 64}), {"1", "d"});
  EXPECT_TRUE(failed(literal.result()));
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1], "'builtin.module' op expected `gate` dim 0 (1) to "
                         "be 1, found 2");
}

TEST_F(ShapeCheckerTest, RankMismatch) {
  ShapeChecker check(*module);
  check.dims("w", tensor({8, 64, 2}), {"E", "d"});
  EXPECT_TRUE(failed(check.result()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0], "'builtin.module' op expected `w` to be a rank-2 "
                         "tensor [E, d], found 'tensor<8x64x2xf32>'");
}

TEST_F(ShapeCheckerTest, Require) {
  ShapeChecker check(*module);
  check.dims("ids", tensor({4, 3}), {"T", "k"}).require("k", 2, "k of routing");
  EXPECT_TRUE(failed(check.result()));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0], "'builtin.module' op expected k = 2 (k of routing), "
                         "found k = 3 from `ids` dim 1 (k)");
}

} // namespace
