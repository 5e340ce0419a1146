//===- MoEAttrs.cpp - moe dialect attributes ------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEAttrs.h"
#include "moe/IR/MoEDialect.h"

#include "moe_ukernel_abi.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

using namespace mlir;
using namespace mlir::moe;

#include "moe/IR/MoEEnums.cpp.inc"

//===----------------------------------------------------------------------===//
// Parameter parsers
//===----------------------------------------------------------------------===//

FailureOr<F64> mlir::moe::detail::parseF64(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return F64{value};
}

FailureOr<std::optional<F64>>
mlir::moe::detail::parseOptionalF64(AsmParser &parser) {
  FailureOr<F64> value = parseF64(parser);
  if (failed(value))
    return failure();
  return std::optional<F64>(*value);
}

void mlir::moe::detail::printF64(AsmPrinter &printer, F64 value) {
  if (!std::isfinite(value.value)) {
    // Verifiers reject these; print something that fails to parse clearly.
    printer << value.value;
    return;
  }
  char buffer[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value.value);
    if (std::strtod(buffer, nullptr) == value.value)
      break;
  }
  // MLIR float literals need a '.' before any exponent: "2" -> "2.0",
  // "1e-20" -> "1.0e-20".
  StringRef text(buffer);
  if (text.contains('.')) {
    printer << text;
    return;
  }
  auto [mantissa, exponent] = text.split('e');
  printer << mantissa << ".0";
  if (text.contains('e'))
    printer << "e" << exponent;
}

FailureOr<bool> mlir::moe::detail::parseBool(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(),
                          "expected `true` or `false`");
}

//===----------------------------------------------------------------------===//
// RoutingAttr
//===----------------------------------------------------------------------===//

LogicalResult RoutingAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, ScoreFunc score,
    Selection selection, int64_t k, int64_t groups,
    std::optional<int64_t> topkGroup, GroupScore groupScore,
    std::optional<F64> topP, std::optional<F64> tau,
    CombineWeights weights, bool renormalize, F64 scale,
    ApplyWeight applyWeight) {
  if (k < 1)
    return emitError() << "expected k >= 1, found k = " << k;
  if (!std::isfinite(scale) || scale <= 0.0)
    return emitError() << "expected a finite scale > 0, found scale = "
                       << scale.value;

  bool grouped = selection == Selection::GroupedTopK;
  if (!grouped && (groups != 1 || topkGroup || groupScore != GroupScore::Max))
    return emitError() << "`groups`, `topk_group` and `group_score` apply "
                          "only to selection = grouped_top_k, found "
                          "selection = "
                       << stringifySelection(selection);
  if (grouped) {
    if (groups < 1)
      return emitError() << "expected groups >= 1, found groups = " << groups;
    if (!topkGroup)
      return emitError() << "selection = grouped_top_k needs `topk_group`";
    if (*topkGroup < 1 || *topkGroup > groups)
      return emitError() << "expected 1 <= topk_group <= groups = " << groups
                         << ", found topk_group = " << *topkGroup;
  }

  if ((selection == Selection::TopP) != topP.has_value())
    return emitError() << (topP ? "`top_p` applies only to selection = top_p"
                                : "selection = top_p needs `top_p`");
  if (topP) {
    if (!(*topP > 0.0 && *topP <= 1.0))
      return emitError() << "expected top_p in (0, 1], found top_p = "
                         << topP->value;
    if (score != ScoreFunc::Softmax)
      return emitError() << "selection = top_p accumulates softmax scores: "
                            "expected score = softmax, found score = "
                         << stringifyScoreFunc(score);
  }

  if (tau) {
    if (selection != Selection::Threshold)
      return emitError() << "`tau` applies only to selection = threshold";
    if (!std::isfinite(*tau))
      return emitError() << "expected a finite tau, found " << tau->value;
  }

  if (selection == Selection::ExpertChoice) {
    if (score != ScoreFunc::Softmax)
      return emitError() << "selection = expert_choice ranks softmax scores: "
                            "expected score = softmax, found score = "
                         << stringifyScoreFunc(score);
    if (weights != CombineWeights::Scores || renormalize || scale != 1.0)
      return emitError() << "selection = expert_choice weights each token by "
                            "its score: `weights = softmax_selected`, "
                            "`renormalize` and `scale` do not apply";
  }
  return success();
}

LogicalResult
RoutingAttr::verifyFor(function_ref<InFlightDiagnostic()> emitError,
                       int64_t numExperts, bool hasTauOperand) const {
  Selection selection = getSelection();
  if (!ShapedType::isDynamic(numExperts)) {
    if (getK() > numExperts)
      return emitError() << "expected k <= E = " << numExperts
                         << " experts, found k = " << getK();
    if (selection == Selection::GroupedTopK) {
      int64_t groups = getGroups();
      if (numExperts % groups != 0)
        return emitError() << "expected the E = " << numExperts
                           << " experts to split into groups = " << groups
                           << " equal groups";
      int64_t groupSize = numExperts / groups;
      if (getGroupScore() == GroupScore::SumTop2 && groupSize < 2)
        return emitError() << "group_score = sum_top2 needs at least 2 "
                              "experts per group, found "
                           << groupSize;
      int64_t reachable = *getTopkGroup() * groupSize;
      if (getK() > reachable)
        return emitError() << "expected k <= topk_group * E / groups = "
                           << reachable << " selectable experts, found k = "
                           << getK();
    }
  }
  if (selection == Selection::Threshold) {
    if (!getTau() && !hasTauOperand)
      return emitError() << "selection = threshold needs tau: a `tau` "
                            "parameter or a tau operand";
    if (getTau() && hasTauOperand)
      return emitError() << "tau given both as a `tau` parameter and as an "
                            "operand";
  } else if (hasTauOperand) {
    return emitError() << "a tau operand applies only to selection = "
                          "threshold, found selection = "
                       << stringifySelection(selection);
  }
  return success();
}

//===----------------------------------------------------------------------===//
// CapacityAttr
//===----------------------------------------------------------------------===//

LogicalResult
CapacityAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                     std::optional<int64_t> count, std::optional<F64> factor,
                     int64_t min, int64_t align,
                     std::optional<DropOrder> dropOrder,
                     bool renormalizeAfterDrop) {
  if (!count && !factor)
    return emitError() << "capacity options given without a capacity: "
                          "expected `count` or `factor`";
  if (count && factor)
    return emitError() << "expected one of `count` and `factor`, found both";
  if (count && *count < 1)
    return emitError() << "expected count >= 1, found count = " << *count;
  if (factor && !(std::isfinite(*factor) && *factor > 0.0))
    return emitError() << "expected a finite factor > 0, found factor = "
                       << factor->value;
  if (min < 0)
    return emitError() << "expected min >= 0, found min = " << min;
  if (align < 1)
    return emitError() << "expected align >= 1, found align = " << align;
  return success();
}

int64_t CapacityAttr::computeCapacity(int64_t numTokens, int64_t k,
                                      int64_t numExperts) const {
  int64_t capacity;
  if (getCount()) {
    capacity = *getCount();
  } else {
    // Exactly the f64 expression the lowerings evaluate at run time.
    double slots = static_cast<double>(numTokens * k);
    capacity = static_cast<int64_t>(
        std::ceil(*getFactor() * slots / static_cast<double>(numExperts)));
  }
  capacity = std::max(capacity, getMin());
  int64_t align = getAlign();
  return (capacity + align - 1) / align * align;
}

//===----------------------------------------------------------------------===//
// LayoutAttr
//===----------------------------------------------------------------------===//

LogicalResult LayoutAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 GroupLayout kind, int64_t block) {
  if (block < 1)
    return emitError() << "expected block >= 1, found block = " << block;
  if (kind != GroupLayout::Aligned && block != 1)
    return emitError() << "expected `block` only with kind = aligned, found "
                          "kind = "
                       << stringifyGroupLayout(kind);
  return success();
}

//===----------------------------------------------------------------------===//
// PackingAttr
//===----------------------------------------------------------------------===//

LogicalResult PackingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                  RankedTensorType source, int64_t firstRow,
                                  int64_t rows) {
  if (!source || (source.getRank() != 2 && source.getRank() != 3) ||
      !source.hasStaticShape())
    return emitError() << "expected a static [n, k] or [E, n, k] source, "
                          "found "
                       << source;
  int64_t n = source.getDimSize(source.getRank() - 2);
  if (firstRow < 0 || rows < 1 || firstRow + rows > n)
    return emitError() << "expected rows [first_row, first_row + rows) "
                          "within the "
                       << n << " rows of the source, found [" << firstRow
                       << ", " << firstRow + rows << ")";
  return success();
}

int64_t PackingAttr::getPackedElements(Type packed) const {
  RankedTensorType source = getSource();
  int64_t rank = source.getRank();
  int64_t matrices = rank == 3 ? source.getDimSize(0) : 1;
  return matrices * moe_uk_packed_elements(getRows(),
                                           source.getDimSize(rank - 1),
                                           packed.isBF16());
}

//===----------------------------------------------------------------------===//
// ExpertsAttr
//===----------------------------------------------------------------------===//

LogicalResult ExpertsAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                  ExpertKind kind, Activation act,
                                  std::optional<F64> alpha) {
  bool lora = kind == ExpertKind::Lora || kind == ExpertKind::LoraGated;
  if (lora && !alpha)
    return emitError() << "LoRA experts (kind = " << stringifyExpertKind(kind)
                       << ") need `alpha`";
  if (!lora && alpha)
    return emitError() << "`alpha` applies only to LoRA experts, found kind = "
                       << stringifyExpertKind(kind);
  if (alpha && !std::isfinite(*alpha))
    return emitError() << "expected a finite alpha, found " << alpha->value;
  if (act == Activation::SwigluOai && kind != ExpertKind::Gated)
    return emitError() << "act = swiglu_oai combines gate and up, so it "
                          "needs kind = gated, found kind = "
                       << stringifyExpertKind(kind);
  return success();
}

//===----------------------------------------------------------------------===//
// TableGen'd definitions
//===----------------------------------------------------------------------===//

#define GET_ATTRDEF_CLASSES
#include "moe/IR/MoEAttrs.cpp.inc"

void MoEDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "moe/IR/MoEAttrs.cpp.inc"
      >();
}
