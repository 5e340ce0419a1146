//===- Report.cpp - the moe-report pass -----------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/Transforms/Passes.h"

#include "moe/Analysis/LayerCost.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/ToolOutputFile.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEREPORT
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

void printLayer(raw_ostream &os, LayerOp layer, const LayerCost &cost,
                ArrayRef<int64_t> tokens) {
  auto func = layer->getParentOfType<func::FuncOp>();
  Type element = cast<RankedTensorType>(layer.getExpertWeights().front().getType())
                     .getElementType();
  os << "moe-report: @" << (func ? func.getName() : StringRef("?"));
  if (auto name = layer->getAttrOfType<StringAttr>("name"))
    os << " (" << name.getValue() << ")";
  os << ": " << stringifyExpertKind(layer.getExperts().getKind())
     << " experts, E = " << cost.experts << ", k = "
     << layer.getRouting().getK()
     << ", " << element << " weights\n";
  double total = static_cast<double>(cost.totalParams());
  os << "  parameters: " << cost.totalParams() << " held, "
     << llvm::format("%.0f", cost.activeParams()) << " per token ("
     << llvm::format("%.1f", 100.0 * cost.activeParams() / total) << "%)\n";
  os << "  tokens  sparse GFLOP  dense GFLOP  FLOPs saved  weight MB sparse"
        "  dense\n";
  for (int64_t t : tokens) {
    double sparse = cost.sparseFlops(t), dense = cost.denseFlops(t);
    os << llvm::format("  %6lld  %12.3f  %11.3f  %10.1f%%  %16.1f  %5.1f\n",
                       static_cast<long long>(t), sparse / 1e9, dense / 1e9,
                       dense > 0 ? 100.0 * (1.0 - sparse / dense) : 0.0,
                       cost.sparseBytes(t) / 1e6, cost.denseBytes() / 1e6);
  }
}

struct MoEReportPass : mlir::moe::impl::MoEReportBase<MoEReportPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<int64_t> counts(tokens.begin(), tokens.end());
    if (counts.empty())
      counts = {1, 512};
    if (llvm::any_of(counts, [](int64_t t) { return t < 0; })) {
      getOperation().emitError() << "moe-report expects token counts >= 0";
      return signalPassFailure();
    }
    std::unique_ptr<llvm::ToolOutputFile> out;
    raw_ostream *os = &llvm::errs();
    if (!file.empty()) {
      std::string error;
      out = openOutputFile(file, &error);
      if (!out) {
        getOperation().emitError() << "moe-report: " << error;
        return signalPassFailure();
      }
      os = &out->os();
    }
    getOperation().walk([&](LayerOp layer) {
      FailureOr<LayerCost> cost = analyzeLayer(layer);
      if (failed(cost)) {
        layer.emitWarning() << "moe-report: weights of dynamic shape; no "
                               "cost reported";
        return;
      }
      printLayer(*os, layer, *cost, counts);
    });
    if (out)
      out->keep();
  }
};

} // namespace
