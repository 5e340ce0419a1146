//===- MoEOps.cpp - moe dialect operations --------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "moe/IR/MoEOps.h"
#include "moe/IR/MoEShapeChecker.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// Dimension `dim` of the type of `value`, or dynamic when `value` is null or
/// not a ranked tensor of that rank (inference runs before verification).
static int64_t dimOf(Value value, unsigned dim) {
  return value ? getDimOrDynamic(value.getType(), dim) : ShapedType::kDynamic;
}

static Type elementTypeOf(Value value) {
  return value ? getElementTypeOrSelf(value.getType()) : Type();
}

static int64_t mulDims(int64_t a, int64_t b) {
  if (ShapedType::isDynamic(a) || ShapedType::isDynamic(b))
    return ShapedType::kDynamic;
  return a * b;
}

/// A tensor type for inferred results. Sizes that an unverified op makes
/// negative become dynamic, so that the verifier reports the cause.
static RankedTensorType tensorOf(ArrayRef<int64_t> shape, Type element) {
  SmallVector<int64_t> sizes(shape);
  for (int64_t &size : sizes)
    if (size < 0)
      size = ShapedType::kDynamic;
  return RankedTensorType::get(sizes, element);
}

static LogicalResult failInference(std::optional<Location> loc,
                                   const Twine &message) {
  return emitOptionalError(loc, message);
}

/// The per-expert capacity of expert-choice routing: `capacity` when given,
/// else ceil(T * k / E); dynamic when it depends on an unknown size.
static int64_t expertChoiceCapacity(int64_t numTokens, int64_t k,
                                    int64_t numExperts, CapacityAttr capacity) {
  if (capacity && capacity.getCount())
    return capacity.computeCapacity(0, k, 1);
  if (ShapedType::isDynamic(numTokens) || ShapedType::isDynamic(numExperts) ||
      numExperts < 1)
    return ShapedType::kDynamic;
  if (capacity)
    return capacity.computeCapacity(numTokens, k, numExperts);
  return (numTokens * k + numExperts - 1) / numExperts;
}

static LogicalResult
verifyExpertChoiceCapacity(Operation *op, CapacityAttr capacity) {
  if (capacity &&
      (capacity.getDropOrder() || capacity.getRenormalizeAfterDrop()))
    return op->emitOpError()
           << "`drop_order` and `renormalize_after_drop` do not apply to "
              "expert-choice routing: an expert never takes more tokens than "
              "its capacity";
  return success();
}

static Type i32Type(MLIRContext *ctx) { return IntegerType::get(ctx, 32); }
static Type i64Type(MLIRContext *ctx) { return IntegerType::get(ctx, 64); }
static Type f32Type(MLIRContext *ctx) { return Float32Type::get(ctx); }

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

int64_t LayerOp::getNumExperts() {
  return getDimOrDynamic(getRouterWeight().getType(), 0);
}

LogicalResult LayerOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr attributes, OpaqueProperties properties,
    RegionRange regions, SmallVectorImpl<Type> &results) {
  Adaptor adaptor(operands, attributes, properties, regions);
  Value input = adaptor.getInput();
  if (adaptor.getRouterWeights().empty())
    return failInference(loc, "'moe.layer' op expects a router weight");
  int64_t numTokens = dimOf(input, 0);
  int64_t outDim = dimOf(input, 1);
  ExpertsAttr experts = adaptor.getProperties().experts;
  if (!experts && attributes)
    experts = attributes.getAs<ExpertsAttr>(getExpertsAttrName(
        OperationName(getOperationName(), ctx)));
  if (experts && experts.getKind() == ExpertKind::Lora &&
      !adaptor.getExpertWeights().empty())
    outDim = dimOf(adaptor.getExpertWeights().front(), 0);
  int64_t numExperts = dimOf(adaptor.getRouterWeights().front(), 0);
  results.push_back(tensorOf({numTokens, outDim}, elementTypeOf(input)));
  results.push_back(tensorOf({numExperts}, i64Type(ctx)));
  results.push_back(tensorOf({numExperts}, i64Type(ctx)));
  return success();
}

namespace {
/// Checks that a layer's attribute set is one its `family` uses (spec
/// section 9), naming the first parameter that differs.
class FamilyChecker {
public:
  FamilyChecker(LayerOp op, Family family) : op(op), family(family) {}

  template <typename T, typename StringifyFn>
  FamilyChecker &expect(StringRef name, T found, T expected,
                        StringifyFn stringify) {
    if (!failed && found != expected)
      fail() << "expects " << name << " = " << stringify(expected)
             << ", found " << name << " = " << stringify(found);
    return *this;
  }

  FamilyChecker &require(bool condition, const Twine &what) {
    if (!failed && !condition)
      fail() << "expects " << what;
    return *this;
  }

  LogicalResult result() const { return failure(failed); }

private:
  InFlightDiagnostic fail() {
    failed = true;
    return op.emitOpError() << "family = " << stringifyFamily(family) << " ";
  }

  LayerOp op;
  Family family;
  bool failed = false;
};
} // namespace

static StringRef stringifyBool(bool value) { return value ? "true" : "false"; }

static LogicalResult verifyFamily(LayerOp op, Family family) {
  RoutingAttr routing = op.getRouting();
  ExpertsAttr experts = op.getExperts();
  size_t numShared = op.getSharedWeights().size();
  bool hasBias = static_cast<bool>(op.getSelectionBias());
  FamilyChecker check(op, family);

  ScoreFunc score = ScoreFunc::Softmax;
  if (family == Family::GraniteMoe)
    score = ScoreFunc::Logits;
  if (family == Family::DeepseekV3)
    score = ScoreFunc::Sigmoid;
  check.expect("score", routing.getScore(), score, stringifyScoreFunc);

  switch (family) {
  case Family::DeepseekV2:
    check.require(routing.getSelection() == Selection::TopK ||
                      (routing.getSelection() == Selection::GroupedTopK &&
                       routing.getGroupScore() == GroupScore::Max),
                  "selection = top_k or grouped_top_k with group_score = max");
    break;
  case Family::DeepseekV3:
    check.expect("selection", routing.getSelection(), Selection::GroupedTopK,
                 stringifySelection);
    check.expect("group_score", routing.getGroupScore(), GroupScore::SumTop2,
                 stringifyGroupScore);
    break;
  default:
    check.expect("selection", routing.getSelection(), Selection::TopK,
                 stringifySelection);
  }

  check.expect("weights", routing.getWeights(),
               family == Family::GraniteMoe ? CombineWeights::SoftmaxSelected
                                            : CombineWeights::Scores,
               stringifyCombineWeights);
  check.expect("apply_weight", routing.getApplyWeight(), ApplyWeight::Output,
               stringifyApplyWeight);
  switch (family) {
  case Family::Mixtral:
  case Family::Qwen3Moe:
    check.expect("renormalize", routing.getRenormalize(), true,
                 stringifyBool);
    break;
  case Family::Olmoe:
  case Family::GraniteMoe:
  case Family::Switch:
    check.expect("renormalize", routing.getRenormalize(), false,
                 stringifyBool);
    break;
  default:
    break;
  }
  bool scaled = family == Family::DeepseekV2 || family == Family::DeepseekV3;
  check.require(scaled || routing.getScale() == 1.0,
                "scale = 1 (it has no routed scaling factor)");
  check.require(family != Family::DeepseekV2 || !routing.getRenormalize() ||
                    routing.getScale() == 1.0,
                "scale = 1 when it renormalizes (the published code scales "
                "only raw weights)");

  check.expect("kind", experts.getKind(),
               family == Family::Switch ? ExpertKind::Mlp : ExpertKind::Gated,
               stringifyExpertKind);
  if (family == Family::Switch) {
    check.expect("act", experts.getAct(), Activation::Relu,
                 stringifyActivation);
    check.expect("k", routing.getK(), int64_t(1),
                 [](int64_t v) { return std::to_string(v); });
    CapacityAttr capacity = op.getCapacityAttr();
    check.require(capacity && capacity.getDropOrderOrDefault() ==
                                  DropOrder::TokenMajor,
                  "a capacity with drop_order = token_major");
  }

  if (family == Family::Qwen2Moe)
    check.require(numShared == 4,
                  "a shared expert with its sigmoid gate: shared(gate, up, "
                  "down, gate_weight)");
  else if (scaled)
    check.require(numShared == 0 || numShared == 2 || numShared == 3,
                  "ungated shared experts: shared(gate, up, down), "
                  "shared(gate_up, down) or none");
  else
    check.require(numShared == 0, "no shared experts");

  check.require(op.getExpertBiases().empty(), "no expert biases");
  check.require(hasBias == (family == Family::DeepseekV3),
                family == Family::DeepseekV3
                    ? "a selection bias (e_score_correction_bias)"
                    : "no selection bias");
  return check.result();
}

/// Binds the expert weights of `kind` (the operand forms of moe.layer) and
/// sets `outSym` to the symbol of the output size.
static LogicalResult verifyExpertWeights(Operation *op, ShapeChecker &check,
                                         ExpertKind kind, ValueRange weights,
                                         StringRef &outSym) {
  auto expectCount = [&](ArrayRef<size_t> counts,
                         StringRef forms) -> LogicalResult {
    if (llvm::is_contained(counts, weights.size()))
      return success();
    return op->emitOpError() << "expected " << forms << " for kind = "
                             << stringifyExpertKind(kind) << ", found "
                             << weights.size() << " expert operands";
  };
  outSym = "d";
  switch (kind) {
  case ExpertKind::Gated:
    if (failed(expectCount({2, 3}, "experts(gate, up, down) or "
                                   "experts(gate_up, down)")))
      return failure();
    if (weights.size() == 3) {
      check.dims("gate", weights[0].getType(), {"E", "f", "d"});
      check.dims("up", weights[1].getType(), {"E", "f", "d"});
    } else {
      check.dims("gate_up", weights[0].getType(), {"E", "2*f", "d"});
    }
    check.dims("down", weights.back().getType(), {"E", "d", "f"});
    break;
  case ExpertKind::Mlp:
    if (failed(expectCount({2}, "experts(w1, w2)")))
      return failure();
    check.dims("w1", weights[0].getType(), {"E", "f", "d"});
    check.dims("w2", weights[1].getType(), {"E", "d", "f"});
    break;
  case ExpertKind::Lora:
    if (failed(expectCount({3}, "experts(base, A, B)")))
      return failure();
    check.dims("base", weights[0].getType(), {"d_out", "d"});
    check.dims("A", weights[1].getType(), {"E", "r", "d"});
    check.dims("B", weights[2].getType(), {"E", "d_out", "r"});
    outSym = "d_out";
    break;
  case ExpertKind::LoraGated:
    if (failed(expectCount({9}, "experts(gate, up, down, A_gate, B_gate, "
                                "A_up, B_up, A_down, B_down)")))
      return failure();
    check.dims("gate", weights[0].getType(), {"f", "d"});
    check.dims("up", weights[1].getType(), {"f", "d"});
    check.dims("down", weights[2].getType(), {"d", "f"});
    check.dims("A_gate", weights[3].getType(), {"E", "r", "d"});
    check.dims("B_gate", weights[4].getType(), {"E", "f", "r"});
    check.dims("A_up", weights[5].getType(), {"E", "r", "d"});
    check.dims("B_up", weights[6].getType(), {"E", "f", "r"});
    check.dims("A_down", weights[7].getType(), {"E", "r", "f"});
    check.dims("B_down", weights[8].getType(), {"E", "d", "r"});
    break;
  }
  return check.result();
}

/// Checks the expert biases: none, or (gated experts only) one `[E, n]` for
/// each expert weight `[E, n, k]`, in the same order, of its element type.
static LogicalResult verifyExpertBiases(Operation *op, ShapeChecker &check,
                                        ExpertKind kind, ValueRange weights,
                                        ValueRange biases) {
  if (biases.empty())
    return success();
  if (kind != ExpertKind::Gated)
    return op->emitOpError() << "expert biases apply to kind = gated, found "
                                "kind = "
                             << stringifyExpertKind(kind);
  if (biases.size() != weights.size())
    return op->emitOpError() << "expected one expert bias per expert weight ("
                             << weights.size() << "), found " << biases.size();
  bool fused = weights.size() == 2;
  static constexpr StringLiteral kSeparate[] = {"gate", "up", "down"};
  static constexpr StringLiteral kFused[] = {"gate_up", "down"};
  for (auto [i, bias] : llvm::enumerate(biases)) {
    StringRef weight = fused ? kFused[i] : kSeparate[i];
    std::string name = (weight + " bias").str();
    StringRef rows = i + 1 == biases.size() ? "d" : fused ? "2*f" : "f";
    check.dims(name, bias.getType(), {"E", rows})
        .sameElementType(name, bias.getType(), weight, weights[i].getType());
  }
  return check.result();
}

/// Binds the shared expert weights: none, (gate_up, down), (gate, up, down)
/// or (gate, up, down, gate_weight).
static LogicalResult verifySharedWeights(Operation *op, ShapeChecker &check,
                                         ValueRange shared) {
  if (shared.empty())
    return success();
  if (shared.size() < 2 || shared.size() > 4)
    return op->emitOpError()
           << "expected shared(gate, up, down), shared(gate, up, down, "
              "gate_weight) or shared(gate_up, down), found "
           << shared.size() << " operands";
  // The shared output [T, d] is added to the routed output [T, d_out].
  if (!ShapedType::isDynamic(check.get("d")))
    check.require("d_out", check.get("d"), "shared experts add a [T, d] output");
  if (shared.size() == 2) {
    check.dims("shared gate_up", shared[0].getType(), {"2*fs", "d"});
    check.dims("shared down", shared[1].getType(), {"d", "fs"});
    return check.result();
  }
  check.dims("shared gate", shared[0].getType(), {"fs", "d"});
  check.dims("shared up", shared[1].getType(), {"fs", "d"});
  check.dims("shared down", shared[2].getType(), {"d", "fs"});
  if (shared.size() == 4)
    check.dims("shared gate_weight", shared[3].getType(), {"1", "d"});
  return check.result();
}

/// A run-time capacity factor replaces the `factor` of a token-choice
/// capacity; anything else has no factor to replace.
static LogicalResult verifyCapacityFactor(Operation *op, Value factor,
                                          CapacityAttr capacity) {
  if (!factor)
    return success();
  if (!capacity || !capacity.getFactor())
    return op->emitOpError()
           << "expected a capacity with a factor when a run-time "
              "capacity_factor is given, found "
           << (capacity ? "a count capacity" : "no capacity");
  return success();
}

LogicalResult LayerOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("input", getInput().getType(), {"T", "d"});

  ValueRange router = getRouterWeights();
  if (router.empty() || router.size() > 2)
    return emitOpError() << "expected router(weight [E, d]) or router(weight, "
                            "bias [E]), found "
                         << router.size() << " operands";
  check.dims("router weight", router[0].getType(), {"E", "d"});
  if (router.size() == 2)
    check.dims("router bias", router[1].getType(), {"E"});
  if (getSelectionBias())
    check.dims("bias", getSelectionBias().getType(), {"E"});
  if (failed(check.result()))
    return failure();
  int64_t numExperts = check.get("E");
  if (ShapedType::isDynamic(numExperts))
    return emitOpError() << "expected a static number of experts E (router "
                            "weight dim 0), found a dynamic size";

  RoutingAttr routing = getRouting();
  if (failed(routing.verifyFor([&] { return emitOpError(); }, numExperts,
                               static_cast<bool>(getTau()))))
    return failure();
  if (routing.getSelection() == Selection::ExpertChoice &&
      failed(verifyExpertChoiceCapacity(getOperation(), getCapacityAttr())))
    return failure();
  if (getCapacityFactor() && routing.getSelection() == Selection::ExpertChoice)
    return emitOpError() << "expected token-choice routing with a run-time "
                            "capacity_factor, found selection = expert_choice";
  if (failed(verifyCapacityFactor(getOperation(), getCapacityFactor(),
                                  getCapacityAttr())))
    return failure();
  if (CapacityAttr capacity = getCapacityAttr();
      capacity && capacity.getRenormalizeAfterDrop() &&
      routing.getScale() != 1.0)
    return emitOpError() << "renormalize_after_drop makes each token's "
                            "weights sum to 1, which would cancel scale = "
                         << routing.getScale().value;

  StringRef outSym = "d";
  if (failed(verifyExpertWeights(getOperation(), check, getExperts().getKind(),
                                 getExpertWeights(), outSym)) ||
      failed(verifyExpertBiases(getOperation(), check, getExperts().getKind(),
                                getExpertWeights(), getExpertBiases())) ||
      failed(verifySharedWeights(getOperation(), check, getSharedWeights())))
    return failure();

  check.dims("output", getOutput().getType(), {"T", outSym});
  check.sameElementType("output", getOutput().getType(), "input",
                        getInput().getType());
  check.dims("assignments", getAssignments().getType(), {"E"});
  check.dims("dropped", getDropped().getType(), {"E"});
  if (failed(check.result()))
    return failure();

  if (std::optional<Family> family = getFamily())
    return verifyFamily(*this, *family);
  return success();
}

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

void WeightOp::build(OpBuilder &builder, OperationState &state,
                     RankedTensorType type, StringRef name, Type stored) {
  build(builder, state, type, builder.getStrArrayAttr({name}),
        /*stacked=*/nullptr, /*packing=*/nullptr, /*device=*/nullptr,
        stored ? TypeAttr::get(stored) : nullptr, /*transposed=*/nullptr,
        /*interleaved=*/nullptr,
        /*scales=*/nullptr, /*scale_block=*/nullptr,
        /*global_scales=*/nullptr, /*global_scales_inverse=*/nullptr,
        /*zero_points=*/nullptr, /*zero_point_offset=*/nullptr,
        /*group_indices=*/nullptr, /*pack_outputs=*/nullptr,
        /*pack_order=*/nullptr, /*bitsandbytes=*/nullptr);
}

void WeightOp::build(OpBuilder &builder, OperationState &state,
                     RankedTensorType type, ArrayRef<std::string> names,
                     Type stored) {
  SmallVector<StringRef> refs(names.begin(), names.end());
  build(builder, state, type, builder.getStrArrayAttr(refs),
        builder.getUnitAttr(), /*packing=*/nullptr, /*device=*/nullptr,
        stored ? TypeAttr::get(stored) : nullptr, /*transposed=*/nullptr,
        /*interleaved=*/nullptr,
        /*scales=*/nullptr, /*scale_block=*/nullptr,
        /*global_scales=*/nullptr, /*global_scales_inverse=*/nullptr,
        /*zero_points=*/nullptr, /*zero_point_offset=*/nullptr,
        /*group_indices=*/nullptr, /*pack_outputs=*/nullptr,
        /*pack_order=*/nullptr, /*bitsandbytes=*/nullptr);
}

WeightOp WeightOp::cloneWithElementType(OpBuilder &builder, Type element) {
  auto type = cast<RankedTensorType>(getType());
  auto copy = cast<WeightOp>(builder.clone(*getOperation()));
  TypeAttr stored = getStoredAttr();
  if (!stored && !getBitsandbytes() && element != type.getElementType())
    copy.setStoredAttr(TypeAttr::get(type.getElementType()));
  else if (stored && stored.getValue() == element)
    copy.removeStoredAttr();
  copy.getResult().setType(type.clone(element));
  return copy;
}

// moe.weight "name" : type
// moe.weight stacked ["a", "b"] : type
ParseResult WeightOp::parse(OpAsmParser &parser, OperationState &result) {
  Builder &builder = parser.getBuilder();
  bool stacked = succeeded(parser.parseOptionalKeyword("stacked"));
  ArrayAttr names;
  if (stacked) {
    if (parser.parseAttribute(names))
      return failure();
    result.addAttribute(getStackedAttrName(result.name),
                        builder.getUnitAttr());
  } else {
    std::string name;
    if (parser.parseString(&name))
      return failure();
    names = builder.getStrArrayAttr({name});
  }
  result.addAttribute(getNamesAttrName(result.name), names);
  Type type;
  if (parser.parseOptionalAttrDict(result.attributes) ||
      parser.parseColonType(type))
    return failure();
  result.addTypes(type);
  return success();
}

void WeightOp::print(OpAsmPrinter &printer) {
  if (getStacked()) {
    printer << " stacked ";
    printer.printAttribute(getNames());
  } else if (!getNames().empty()) {
    printer << " ";
    printer.printString(cast<StringAttr>(getNames()[0]).getValue());
  }
  printer.printOptionalAttrDict((*this)->getAttrs(),
                                {getNamesAttrName(), getStackedAttrName()});
  printer << " : " << getType();
}

/// Block-scaled tensors come with their scales: FP8 (`stored = f8E4M3FN`)
/// one scale tensor per tensor, blocks of two positive sizes over pieces of
/// rank 2 or more (over the tensors as stored when `transposed`); MXFP4
/// (`stored = f4E2M1FN`) the same with blocks of 1 x 32 (the MX format's)
/// over rows of even length, and no transposition; NVFP4 (`stored =
/// f4E2M1FN` with `global_scales`, one per tensor, which
/// `global_scales_inverse` says divide) as MXFP4 with blocks of 1 x 16.
LogicalResult WeightOp::verifyBlockScales(int64_t pieceRank) {
  TypeAttr stored = getStoredAttr();
  bool fp8 = stored && isa<Float8E4M3FNType>(stored.getValue());
  bool mxfp4 = stored && isa<Float4E2M1FNType>(stored.getValue());
  bool ints = stored && isa<IntegerType>(stored.getValue());
  // One signed value a byte (`stored = si8`), rather than codes in words.
  bool bytes = ints && cast<IntegerType>(stored.getValue()).isSigned();
  ArrayAttr scales = getScalesAttr();
  ArrayAttr globals = getGlobalScalesAttr();
  std::optional<ArrayRef<int64_t>> block = getScaleBlock();
  if (getGlobalScalesInverse() && !globals)
    return emitOpError() << "expected `global_scales_inverse` only with "
                            "`global_scales` (NVFP4)";
  ArrayAttr zeros = getZeroPointsAttr(), groups = getGroupIndicesAttr();
  if ((zeros || groups || getPackOutputs() || getPackOrder()) && !ints)
    return emitOpError() << "expected `zero_points`, `group_indices`, "
                            "`pack_outputs` and `pack_order` only with "
                            "`stored = i4`, `stored = i8` or `stored = si8`";
  if (bytes && (zeros || getPackOutputs() || getPackOrder() || getTransposed()))
    return emitOpError() << "expected no `zero_points`, `pack_outputs`, "
                            "`pack_order` or `transposed` with `stored = "
                            "si8` (one signed value a byte, each its own "
                            "code)";
  if (getPackOutputs() && !getTransposed())
    return emitOpError() << "expected `pack_outputs` only with `transposed` "
                            "(words of outputs, as AWQ stores them [in, "
                            "out])";
  if (std::optional<ArrayRef<int64_t>> order = getPackOrder()) {
    // A permutation of the fields of a word.
    unsigned fields = 32 / cast<IntegerType>(stored.getValue()).getWidth();
    SmallVector<int64_t> sorted(*order);
    llvm::sort(sorted);
    if (sorted != llvm::to_vector(llvm::seq<int64_t>(0, fields)))
      return emitOpError() << "expected `pack_order` to be a permutation of "
                              "the "
                           << fields << " fields of a word, found "
                           << getPackOrderAttr();
  }
  if (getZeroPointOffsetAttr() && !zeros)
    return emitOpError() << "expected `zero_point_offset` only with "
                            "`zero_points`";
  if (!fp8 && !mxfp4 && !ints) {
    if (scales || block || globals)
      return emitOpError() << "expected `scales`, `scale_block` and "
                              "`global_scales` only with `stored = f8E4M3FN`, "
                              "`stored = f4E2M1FN`, `stored = i4`, `stored = "
                              "i8` or `stored = si8`";
    return success();
  }
  if (!mxfp4 && globals)
    return emitOpError() << "expected `global_scales` only with `stored = "
                            "f4E2M1FN` (NVFP4)";
  bool nvfp4 = mxfp4 && globals;
  // The stored type as the attribute spells it (a diagnostic quotes types).
  std::string storedName;
  llvm::raw_string_ostream(storedName) << stored.getValue();
  StringRef format = fp8     ? "FP8"
                     : nvfp4 ? "NVFP4"
                     : mxfp4 ? "MXFP4"
                             : "integer";
  if (!scales || !block)
    return emitOpError() << "expected `scales` and `scale_block` with `stored "
                            "= "
                         << storedName << "` (block-scaled " << format << ")";
  if (scales.size() != getNames().size())
    return emitOpError() << "expected one scale tensor per tensor ("
                         << getNames().size() << "), found " << scales.size();
  for (auto [what, list] : {std::pair("global scale", globals),
                            std::pair("zero point tensor", zeros),
                            std::pair("group index tensor", groups)})
    if (list && list.size() != getNames().size())
      return emitOpError() << "expected one " << what << " per tensor ("
                           << getNames().size() << "), found " << list.size();
  for (ArrayAttr names : {scales, globals, zeros, groups})
    for (Attribute name : names ? names.getValue() : ArrayRef<Attribute>())
      if (cast<StringAttr>(name).getValue().empty())
        return emitOpError() << "expected non-empty scale tensor names";
  if (block->size() != 2 || (*block)[0] < 1 || (*block)[1] < 1)
    return emitOpError() << "expected `scale_block` to be two positive sizes "
                            "(rows, columns), found "
                         << getScaleBlockAttr();
  if (mxfp4 && !nvfp4 && ((*block)[0] != 1 || (*block)[1] != 32))
    return emitOpError() << "expected `scale_block = array<i64: 1, 32>` "
                            "(one E8M0 scale a block of 32) with `stored = "
                            "f4E2M1FN`, found "
                         << getScaleBlockAttr();
  if (nvfp4 && ((*block)[0] != 1 || (*block)[1] != 16))
    return emitOpError() << "expected `scale_block = array<i64: 1, 16>` "
                            "(one E4M3 scale a block of 16) with `stored = "
                            "f4E2M1FN` and `global_scales` (NVFP4), found "
                         << getScaleBlockAttr();
  // Groups of one row, or of one column of a tensor stored [in, out].
  if (ints && (*block)[getTransposed() ? 1 : 0] != 1)
    return emitOpError() << "expected `scale_block = array<i64: "
                         << (getTransposed() ? "g, 1" : "1, g")
                         << ">` (one scale a group of g of a "
                         << (getTransposed() ? "stored column" : "row")
                         << ") with `stored = " << storedName
                         << (getTransposed() ? "` and `transposed`" : "`")
                         << ", found " << getScaleBlockAttr();
  if (pieceRank < 2)
    return emitOpError() << "expected block-scaled tensors of rank 2 or more, "
                            "found rank "
                         << pieceRank;
  if (mxfp4 && getType().getShape().back() % 2 != 0)
    return emitOpError() << "expected " << format
                         << " rows of an even length (two codes a byte), found "
                         << getType().getShape().back();
  if (mxfp4 && getTransposed())
    return emitOpError() << "expected block-scaled " << format
                         << " tensors that are not `transposed`";
  return success();
}

LogicalResult WeightOp::verify() {
  ArrayAttr names = getNames();
  for (Attribute name : names)
    if (cast<StringAttr>(name).getValue().empty())
      return emitOpError() << "expected non-empty tensor names";
  RankedTensorType type = getType();
  if (!type.hasStaticShape())
    return emitOpError() << "expected a static shape, found " << type;
  if (getPackingAttr() && getDevice())
    return emitOpError() << "expected `packing` (a CPU layout) or `device`, "
                            "found both";
  if (PackingAttr packing = getPackingAttr()) {
    Type element = type.getElementType();
    int64_t expected = packing.getPackedElements(element);
    if (type.getRank() != 1 || !(element.isF32() || element.isBF16()) ||
        type.getDimSize(0) != expected)
      return emitOpError() << "expected the packed result tensor<" << expected
                           << "xf32> or tensor<"
                           << packing.getPackedElements(
                                  BFloat16Type::get(getContext()))
                           << "xbf16>, found " << type;
    // The names describe the source tensors.
    type = packing.getSource();
  }
  int64_t pieceRank = type.getRank() - (getStacked() ? 1 : 0);
  if (TypeAttr stored = getStoredAttr()) {
    Type element = stored.getValue();
    if (!(element.isF32() || element.isF16() || element.isBF16() ||
          element.isSignlessInteger(4) || element.isSignlessInteger(8) ||
          element.isSignedInteger(8) ||
          isa<Float8E4M3FNType, Float4E2M1FNType>(element)))
      return emitOpError() << "expected `stored` to be f32, f16, bf16, "
                              "f8E4M3FN, f4E2M1FN, i4, i8 or si8, found "
                           << element;
    if (element == type.getElementType())
      return emitOpError() << "expected `stored` to differ from the element "
                              "type it is converted to, found "
                           << element << " for both (omit `stored`)";
  }
  if (getBitsandbytes()) {
    // The tensors beside the codes say how they are read: no attribute
    // about the codes or their scales applies.
    for (StringRef attr : {"stored", "scales", "scale_block", "global_scales",
                           "global_scales_inverse", "zero_points",
                           "zero_point_offset", "group_indices", "pack_outputs",
                           "pack_order", "transposed", "interleaved"})
      if ((*this)->hasAttr(attr))
        return emitOpError() << "expected no `" << attr
                             << "` with `bitsandbytes` (its state tensors "
                                "say how the codes are read)";
    if (!isa<Float32Type, Float16Type, BFloat16Type>(type.getElementType()))
      return emitOpError() << "expected a `bitsandbytes` weight of f32, f16 "
                              "or bf16, found "
                           << type;
  }
  if (failed(verifyBlockScales(pieceRank)))
    return failure();
  // A transposed tensor swaps the last two dimensions of its piece.
  if (getTransposed() && pieceRank < 2)
    return emitOpError() << "expected `transposed` tensors of rank 2 or more, "
                            "found rank "
                         << pieceRank << " for " << type
                         << (getStacked() ? " stacked" : "");
  if (getInterleaved() &&
      (getStacked() || type.getRank() < 2 || type.getDimSize(1) % 2 != 0))
    return emitOpError() << "expected an `interleaved` tensor that is not "
                            "`stacked`, of rank 2 or more with an even "
                            "dimension 1, found "
                         << type << (getStacked() ? " stacked" : "");
  if (!getStacked()) {
    if (names.size() != 1)
      return emitOpError() << "expected one tensor name (or `stacked` for "
                              "several), found "
                           << names.size();
    return success();
  }
  if (type.getRank() < 1 ||
      type.getDimSize(0) != static_cast<int64_t>(names.size()))
    return emitOpError() << "expected " << names.size()
                         << " stacked tensors to match dim 0 of " << type;
  return success();
}

LogicalResult MoEDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attr) {
  if (attr.getName() == WeightOp::getCheckpointAttrName()) {
    if (!isa<ModuleOp>(op) || !isa<StringAttr>(attr.getValue()))
      return op->emitError() << "'" << attr.getName().getValue()
                             << "' expects a string (the checkpoint path) on "
                                "a module";
    return success();
  }
  // The runtime manifest that convert-moe-to-runtime records.
  if (attr.getName() == "moe.weights" || attr.getName() == "moe.stats" ||
      attr.getName() == "moe.knobs") {
    auto entries = dyn_cast<ArrayAttr>(attr.getValue());
    if (!isa<ModuleOp>(op) || !entries ||
        !llvm::all_of(entries, llvm::IsaPred<DictionaryAttr>))
      return op->emitError() << "'" << attr.getName().getValue()
                             << "' expects an array of dictionaries on a "
                                "module";
    return success();
  }
  // A kernel for the sm_90a target only (moe-gpu-attach-targets).
  if (attr.getName() == "moe.sm90a") {
    // By name: the dialect does not depend on the GPU dialect.
    if (op->getName().getStringRef() != "gpu.func" ||
        !isa<UnitAttr>(attr.getValue()))
      return op->emitError() << "'moe.sm90a' expects a unit attribute on a "
                                "gpu.func kernel";
    return success();
  }
  return op->emitError() << "unknown moe attribute '" << attr.getName().getValue()
                         << "'";
}

//===----------------------------------------------------------------------===//
// RouterOp
//===----------------------------------------------------------------------===//

LogicalResult RouterOp::inferReturnTypes(MLIRContext *ctx,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  results.push_back(tensorOf(
      {dimOf(adaptor.getInput(), 0), dimOf(adaptor.getWeight(), 0)},
      f32Type(ctx)));
  return success();
}

LogicalResult RouterOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("input", getInput().getType(), {"T", "d"})
      .dims("weight", getWeight().getType(), {"E", "d"});
  if (getBias())
    check.dims("bias", getBias().getType(), {"E"});
  check.dims("logits", getLogits().getType(), {"T", "E"});
  return check.result();
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

/// The results of a token-choice selection (moe.route, moe.gate): expert
/// ids and weights, `[T, k]`.
static LogicalResult inferSelection(MLIRContext *ctx,
                                    std::optional<Location> loc,
                                    StringRef opName, RoutingAttr routing,
                                    int64_t numTokens,
                                    SmallVectorImpl<Type> &results) {
  if (!routing)
    return failInference(loc, "'" + opName.str() +
                                  "' op expects a routing attribute");
  SmallVector<int64_t> shape = {numTokens, routing.getK()};
  results.push_back(tensorOf(shape, i32Type(ctx)));
  results.push_back(tensorOf(shape, f32Type(ctx)));
  return success();
}

/// The checks shared by moe.route and moe.gate once `check` has seen their
/// operands: no expert choice, `[T, k]` results, and the routing against E.
static LogicalResult verifySelection(Operation *op, RoutingAttr routing,
                                     ShapeChecker &check, Value expertIds,
                                     Value weights, bool hasTau) {
  if (routing.getSelection() == Selection::ExpertChoice)
    return op->emitOpError()
           << "selection = expert_choice is expressed by "
              "`moe.expert_choice`, not `"
           << op->getName().getStringRef() << "`";
  check.dims("expert_ids", expertIds.getType(), {"T", "k"})
      .dims("weights", weights.getType(), {"T", "k"})
      .require("k", routing.getK(), "k of the routing");
  if (failed(check.result()))
    return failure();
  return routing.verifyFor([&] { return op->emitOpError(); }, check.get("E"),
                           hasTau);
}

LogicalResult RouteOp::inferReturnTypes(MLIRContext *ctx,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &results) {
  return inferSelection(ctx, loc, getOperationName(),
                        adaptor.getProperties().routing,
                        dimOf(adaptor.getLogits(), 0), results);
}

LogicalResult RouteOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("logits", getLogits().getType(), {"T", "E"});
  if (getSelectionBias())
    check.dims("bias", getSelectionBias().getType(), {"E"});
  return verifySelection(getOperation(), getRouting(), check, getExpertIds(),
                         getWeights(), static_cast<bool>(getTau()));
}

//===----------------------------------------------------------------------===//
// ExpertChoiceOp
//===----------------------------------------------------------------------===//

LogicalResult ExpertChoiceOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  int64_t numTokens = dimOf(adaptor.getLogits(), 0);
  int64_t numExperts = dimOf(adaptor.getLogits(), 1);
  IntegerAttr k = adaptor.getProperties().k;
  if (!k)
    return failInference(loc, "'moe.expert_choice' op expects `k`");
  int64_t capacity = expertChoiceCapacity(numTokens, k.getInt(), numExperts,
                                          adaptor.getProperties().capacity);
  results.push_back(tensorOf({numExperts, capacity}, i32Type(ctx)));
  results.push_back(tensorOf({numExperts, capacity}, f32Type(ctx)));
  results.push_back(tensorOf({numTokens, numExperts}, i32Type(ctx)));
  results.push_back(tensorOf({numTokens, numExperts}, f32Type(ctx)));
  return success();
}

LogicalResult ExpertChoiceOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("logits", getLogits().getType(), {"T", "E"})
      .dims("token_ids", getTokenIds().getType(), {"E", "C"})
      .dims("token_weights", getTokenWeights().getType(), {"E", "C"})
      .dims("expert_ids", getExpertIds().getType(), {"T", "E"})
      .dims("weights", getWeights().getType(), {"T", "E"});
  if (failed(check.result()))
    return failure();
  int64_t numExperts = check.get("E");
  int64_t k = static_cast<int64_t>(getK());
  if (k < 1)
    return emitOpError() << "expected k >= 1, found k = " << k;
  if (!ShapedType::isDynamic(numExperts) && k > numExperts)
    return emitOpError() << "expected k <= E = " << numExperts
                         << " experts, found k = " << k;
  return verifyExpertChoiceCapacity(getOperation(), getCapacityAttr());
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

int64_t DispatchOp::numRows(int64_t numTokens, int64_t numSlots,
                            int64_t numExperts, CapacityAttr capacity,
                            LayoutAttr layout) {
  int64_t assignments = mulDims(numTokens, numSlots);
  GroupLayout kind = layout ? layout.getKind() : GroupLayout::Ragged;
  switch (kind) {
  case GroupLayout::Ragged:
    return assignments;
  case GroupLayout::Aligned:
    if (ShapedType::isDynamic(assignments))
      return ShapedType::kDynamic;
    return assignments + numExperts * (layout.getBlock() - 1);
  case GroupLayout::Padded:
    if (!capacity)
      return ShapedType::kDynamic;
    if (capacity.getCount()) {
      // A count capacity does not depend on T.
      return numExperts * capacity.computeCapacity(0, 0, numExperts);
    }
    if (ShapedType::isDynamic(numTokens) || ShapedType::isDynamic(numSlots))
      return ShapedType::kDynamic;
    return numExperts *
           capacity.computeCapacity(numTokens, numSlots, numExperts);
  }
  llvm_unreachable("unknown layout");
}

LogicalResult DispatchOp::inferReturnTypes(MLIRContext *ctx,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &results) {
  IntegerAttr numExpertsAttr = adaptor.getProperties().num_experts;
  if (!numExpertsAttr)
    return failInference(loc, "'moe.dispatch' op expects `num_experts`");
  int64_t numTokens = dimOf(adaptor.getExpertIds(), 0);
  int64_t numSlots = dimOf(adaptor.getExpertIds(), 1);
  int64_t numExperts = numExpertsAttr.getInt();
  int64_t numRows =
      DispatchOp::numRows(numTokens, numSlots, numExperts,
                          adaptor.getProperties().capacity,
                          adaptor.getProperties().layout);
  results.push_back(tensorOf({numRows}, i32Type(ctx)));
  results.push_back(tensorOf({numRows}, f32Type(ctx)));
  results.push_back(tensorOf({numTokens, numSlots}, i32Type(ctx)));
  results.push_back(tensorOf({numTokens, numSlots}, f32Type(ctx)));
  for (int i = 0; i < 3; ++i)
    results.push_back(tensorOf({numExperts}, i64Type(ctx)));
  return success();
}

LogicalResult DispatchOp::verify() {
  int64_t numExperts = static_cast<int64_t>(getNumExperts());
  if (numExperts < 1)
    return emitOpError() << "expected num_experts >= 1, found "
                         << numExperts;
  ShapeChecker check(getOperation());
  check.dims("expert_ids", getExpertIds().getType(), {"T", "S"})
      .dims("weights", getWeights().getType(), {"T", "S"})
      .dims("row_token", getRowToken().getType(), {"N"})
      .dims("row_weight", getRowWeight().getType(), {"N"})
      .dims("slot_row", getSlotRow().getType(), {"T", "S"})
      .dims("slot_weight", getSlotWeight().getType(), {"T", "S"})
      .dims("group_sizes", getGroupSizes().getType(), {"E"})
      .dims("group_offsets", getGroupOffsets().getType(), {"E"})
      .dims("dropped", getDropped().getType(), {"E"})
      .require("E", numExperts, "num_experts");
  if (failed(check.result()))
    return failure();
  if (getLayoutKind() == GroupLayout::Padded && !getCapacityAttr())
    return emitOpError() << "expected a capacity with layout kind = padded "
                            "(every expert gets C rows)";
  if (failed(verifyCapacityFactor(getOperation(), getCapacityFactor(),
                                  getCapacityAttr())))
    return failure();
  if (getCapacityFactor() && getLayoutKind() == GroupLayout::Padded)
    return emitOpError() << "expected layout kind = ragged or aligned with a "
                            "run-time capacity_factor, found padded (its row "
                            "count would depend on the run-time factor)";
  int64_t rows = numRows(check.get("T"), check.get("S"), numExperts,
                         getCapacityAttr(), getLayoutAttr());
  int64_t numRowsFound = check.get("N");
  if (!ShapedType::isDynamic(rows) && !ShapedType::isDynamic(numRowsFound) &&
      rows != numRowsFound) {
    InFlightDiagnostic diag = emitOpError() << "expected N = ";
    switch (getLayoutKind()) {
    case GroupLayout::Ragged:
      diag << "T * S = ";
      break;
    case GroupLayout::Aligned:
      diag << "T * S + E * (block - 1) = ";
      break;
    case GroupLayout::Padded:
      diag << "E * C = ";
      break;
    }
    return diag << rows << " grouped rows, found N = " << numRowsFound;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// GatherOp
//===----------------------------------------------------------------------===//

LogicalResult GatherOp::inferReturnTypes(MLIRContext *ctx,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  results.push_back(tensorOf(
      {dimOf(adaptor.getRowToken(), 0), dimOf(adaptor.getInput(), 1)},
      elementTypeOf(adaptor.getInput())));
  return success();
}

LogicalResult GatherOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("input", getInput().getType(), {"T", "d"})
      .dims("row_token", getRowToken().getType(), {"N"});
  if (getRowWeight())
    check.dims("row_weight", getRowWeight().getType(), {"N"});
  check.dims("result", getResult().getType(), {"N", "d"})
      .sameElementType("result", getResult().getType(), "input",
                       getInput().getType());
  return check.result();
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

LogicalResult CombineOp::inferReturnTypes(MLIRContext *ctx,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &results) {
  results.push_back(tensorOf(
      {dimOf(adaptor.getSlotRow(), 0), dimOf(adaptor.getRows(), 1)},
      elementTypeOf(adaptor.getRows())));
  return success();
}

LogicalResult CombineOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("rows", getRows().getType(), {"N", "d"})
      .dims("slot_row", getSlotRow().getType(), {"T", "S"});
  if (getSlotWeight())
    check.dims("slot_weight", getSlotWeight().getType(), {"T", "S"});
  if (getAddend())
    check.dims("addend", getAddend().getType(), {"T", "d"})
        .sameElementType("addend", getAddend().getType(), "rows",
                         getRows().getType());
  check.dims("result", getResult().getType(), {"T", "d"})
      .sameElementType("result", getResult().getType(), "rows",
                       getRows().getType());
  return check.result();
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult GroupedMatmulOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  unsigned outDim = adaptor.getProperties().transpose_rhs ? 1 : 2;
  results.push_back(tensorOf(
      {dimOf(adaptor.getLhs(), 0), dimOf(adaptor.getRhs(), outDim)},
      elementTypeOf(adaptor.getLhs())));
  return success();
}

LogicalResult GroupedMatmulOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("lhs", getLhs().getType(), {"N", "K"});
  if (getTransposeRhs())
    check.dims("rhs", getRhs().getType(), {"E", "M", "K"});
  else
    check.dims("rhs", getRhs().getType(), {"E", "K", "M"});
  check.dims("group_sizes", getGroupSizes().getType(), {"E"})
      .dims("result", getResult().getType(), {"N", "M"})
      .sameElementType("result", getResult().getType(), "lhs",
                       getLhs().getType());
  return check.result();
}

//===----------------------------------------------------------------------===//
// Expert ops
//===----------------------------------------------------------------------===//

/// Result type of an expert op on grouped rows: `[N, outDim]` of the rows'
/// element type.
static void inferGroupedResult(Value rows, int64_t outDim,
                               SmallVectorImpl<Type> &results) {
  results.push_back(
      tensorOf({dimOf(rows, 0), outDim}, elementTypeOf(rows)));
}

int64_t GatedExpertsOp::getInnerSize() {
  return getDimOrDynamic(getDown().getType(), 2);
}

LogicalResult GatedExpertsOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  inferGroupedResult(adaptor.getRows(), dimOf(adaptor.getRows(), 1), results);
  return success();
}

LogicalResult GatedExpertsOp::verify() {
  bool separate = getGate() && getUp();
  bool fused = static_cast<bool>(getGateUp());
  if (separate == fused || (!separate && (getGate() || getUp())))
    return emitOpError() << "expected either gate(...) and up(...), or "
                            "gate_up(...)";
  ShapeChecker check(getOperation());
  check.dims("rows", getRows().getType(), {"N", "d"})
      .dims("group_sizes", getGroupSizes().getType(), {"E"});
  if (separate)
    check.dims("gate", getGate().getType(), {"E", "f", "d"})
        .dims("up", getUp().getType(), {"E", "f", "d"});
  else
    check.dims("gate_up", getGateUp().getType(), {"E", "2*f", "d"});
  check.dims("down", getDown().getType(), {"E", "d", "f"})
      .dims("result", getResult().getType(), {"N", "d"})
      .sameElementType("result", getResult().getType(), "rows",
                       getRows().getType());
  SmallVector<Value> weights;
  if (separate)
    weights = {getGate(), getUp()};
  else
    weights = {getGateUp()};
  weights.push_back(getDown());
  if (failed(check.result()) ||
      failed(verifyExpertBiases(getOperation(), check, ExpertKind::Gated,
                                weights, getBiases())))
    return failure();
  return check.result();
}

LogicalResult MlpExpertsOp::inferReturnTypes(MLIRContext *ctx,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &results) {
  inferGroupedResult(adaptor.getRows(), dimOf(adaptor.getRows(), 1), results);
  return success();
}

LogicalResult MlpExpertsOp::verify() {
  if (getAct() == Activation::SwigluOai)
    return emitOpError() << "act = swiglu_oai combines gate and up, which "
                            "mlp experts do not have";
  ShapeChecker check(getOperation());
  check.dims("rows", getRows().getType(), {"N", "d"})
      .dims("group_sizes", getGroupSizes().getType(), {"E"})
      .dims("w1", getW1().getType(), {"E", "f", "d"})
      .dims("w2", getW2().getType(), {"E", "d", "f"})
      .dims("result", getResult().getType(), {"N", "d"})
      .sameElementType("result", getResult().getType(), "rows",
                       getRows().getType());
  return check.result();
}

LogicalResult LoraExpertsOp::inferReturnTypes(MLIRContext *ctx,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &results) {
  inferGroupedResult(adaptor.getRows(), dimOf(adaptor.getLoraB(), 1),
                     results);
  return success();
}

LogicalResult LoraExpertsOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("rows", getRows().getType(), {"N", "d_in"})
      .dims("group_sizes", getGroupSizes().getType(), {"E"})
      .dims("lora_a", getLoraA().getType(), {"E", "r", "d_in"})
      .dims("lora_b", getLoraB().getType(), {"E", "d_out", "r"})
      .dims("result", getResult().getType(), {"N", "d_out"})
      .sameElementType("result", getResult().getType(), "rows",
                       getRows().getType());
  return check.result();
}

LogicalResult LoraGatedExpertsOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  inferGroupedResult(adaptor.getRows(), dimOf(adaptor.getRows(), 1), results);
  return success();
}

LogicalResult LoraGatedExpertsOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("rows", getRows().getType(), {"N", "d"})
      .dims("group_sizes", getGroupSizes().getType(), {"E"})
      .dims("gate", getGate().getType(), {"f", "d"})
      .dims("up", getUp().getType(), {"f", "d"})
      .dims("down", getDown().getType(), {"d", "f"})
      .dims("gate_a", getGateA().getType(), {"E", "r", "d"})
      .dims("gate_b", getGateB().getType(), {"E", "f", "r"})
      .dims("up_a", getUpA().getType(), {"E", "r", "d"})
      .dims("up_b", getUpB().getType(), {"E", "f", "r"})
      .dims("down_a", getDownA().getType(), {"E", "r", "f"})
      .dims("down_b", getDownB().getType(), {"E", "d", "r"})
      .dims("result", getResult().getType(), {"N", "d"})
      .sameElementType("result", getResult().getType(), "rows",
                       getRows().getType());
  return check.result();
}

LogicalResult SharedExpertOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  results.push_back(tensorOf(
      {dimOf(adaptor.getInput(), 0), dimOf(adaptor.getInput(), 1)},
      elementTypeOf(adaptor.getInput())));
  return success();
}

LogicalResult SharedExpertOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("input", getInput().getType(), {"T", "d"})
      .dims("gate", getGate().getType(), {"f", "d"})
      .dims("up", getUp().getType(), {"f", "d"})
      .dims("down", getDown().getType(), {"d", "f"});
  if (getGateWeight())
    check.dims("gate_weight", getGateWeight().getType(), {"1", "d"});
  check.dims("result", getResult().getType(), {"T", "d"})
      .sameElementType("result", getResult().getType(), "input",
                       getInput().getType());
  return check.result();
}

LogicalResult LinearOp::inferReturnTypes(MLIRContext *ctx,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &results) {
  results.push_back(tensorOf(
      {dimOf(adaptor.getInput(), 0), dimOf(adaptor.getWeight(), 0)},
      elementTypeOf(adaptor.getInput())));
  return success();
}

LogicalResult LinearOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("input", getInput().getType(), {"T", "d_in"})
      .dims("weight", getWeight().getType(), {"d_out", "d_in"})
      .dims("result", getResult().getType(), {"T", "d_out"})
      .sameElementType("result", getResult().getType(), "input",
                       getInput().getType());
  return check.result();
}

//===----------------------------------------------------------------------===//
// Losses and statistics
//===----------------------------------------------------------------------===//

LogicalResult AuxLossOp::inferReturnTypes(MLIRContext *ctx,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &results) {
  results.push_back(tensorOf({}, f32Type(ctx)));
  return success();
}

LogicalResult AuxLossOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("logits", getLogits().getType(), {"T", "E"})
      .dims("expert_ids", getExpertIds().getType(), {"T", "S"});
  return check.result();
}

LogicalResult ZLossOp::inferReturnTypes(MLIRContext *ctx,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &results) {
  results.push_back(tensorOf({}, f32Type(ctx)));
  return success();
}

LogicalResult ExpertLoadOp::inferReturnTypes(MLIRContext *ctx,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &results) {
  IntegerAttr numExperts = adaptor.getProperties().num_experts;
  if (!numExperts)
    return failInference(loc, "'moe.expert_load' op expects `num_experts`");
  results.push_back(tensorOf({numExperts.getInt()}, i64Type(ctx)));
  return success();
}

LogicalResult ExpertLoadOp::verify() {
  int64_t numExperts = static_cast<int64_t>(getNumExperts());
  if (numExperts < 1)
    return emitOpError() << "expected num_experts >= 1, found "
                         << numExperts;
  return success();
}

//===----------------------------------------------------------------------===//
// GateOp
//===----------------------------------------------------------------------===//

LogicalResult GateOp::inferReturnTypes(MLIRContext *ctx,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &results) {
  return inferSelection(ctx, loc, getOperationName(),
                        adaptor.getProperties().routing,
                        dimOf(adaptor.getInput(), 0), results);
}

LogicalResult GateOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("input", getInput().getType(), {"T", "d"})
      .dims("weight", getWeight().getType(), {"E", "d"});
  if (getBias())
    check.dims("bias", getBias().getType(), {"E"});
  if (getSelectionBias())
    check.dims("selection_bias", getSelectionBias().getType(), {"E"});
  return verifySelection(getOperation(), getRouting(), check, getExpertIds(),
                         getWeights(), static_cast<bool>(getTau()));
}

//===----------------------------------------------------------------------===//
// FusedExpertsOp
//===----------------------------------------------------------------------===//

LogicalResult FusedExpertsOp::inferReturnTypes(
    MLIRContext *ctx, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &results) {
  // [T, d], or [T, d_out] of a LoRA base: the only rank-2 first expert
  // operand ([d_out, d]; the other kinds start with [E, ...]).
  int64_t width = dimOf(adaptor.getInput(), 1);
  ValueRange weights = adaptor.getExpertWeights();
  if (!weights.empty())
    if (auto base = dyn_cast<RankedTensorType>(weights.front().getType());
        base && base.getRank() == 2)
      width = base.getDimSize(0);
  results.push_back(tensorOf({dimOf(adaptor.getInput(), 0), width},
                             elementTypeOf(adaptor.getInput())));
  return success();
}

LogicalResult FusedExpertsOp::verify() {
  ExpertKind kind = getExperts().getKind();
  if (kind == ExpertKind::LoraGated)
    return emitOpError() << "fuses gated, mlp and lora experts, found kind = "
                         << stringifyExpertKind(kind);
  ShapeChecker check(getOperation());
  check.dims("input", getInput().getType(), {"T", "d"})
      .dims("row_token", getRowToken().getType(), {"N"})
      .dims("group_sizes", getGroupSizes().getType(), {"E"})
      .dims("slot_row", getSlotRow().getType(), {"T", "S"});
  if (getRowWeight())
    check.dims("row_weight", getRowWeight().getType(), {"N"});
  if (getSlotWeight())
    check.dims("slot_weight", getSlotWeight().getType(), {"T", "S"});
  StringRef outSym;
  if (failed(verifyExpertWeights(getOperation(), check, kind,
                                 getExpertWeights(), outSym)) ||
      failed(verifyExpertBiases(getOperation(), check, kind, getExpertWeights(),
                                getExpertBiases())) ||
      failed(verifySharedWeights(getOperation(), check, getSharedWeights())))
    return failure();
  check.dims("result", getResult().getType(), {"T", outSym})
      .sameElementType("result", getResult().getType(), "input",
                       getInput().getType());
  return check.result();
}

//===----------------------------------------------------------------------===//
// UKernelOp
//===----------------------------------------------------------------------===//

LogicalResult UKernelOp::verify() {
  if (getName().empty())
    return emitOpError() << "expected a kernel name";
  bool tensors = llvm::all_of(getOutputs().getTypes(),
                              llvm::IsaPred<RankedTensorType>);
  bool buffers = llvm::all_of(getOutputs().getTypes(),
                              llvm::IsaPred<MemRefType>);
  if (!tensors && !buffers)
    return emitOpError() << "expected outputs that are all tensors or all "
                            "memrefs";
  if (tensors && getResultTypes() != getOutputs().getTypes())
    return emitOpError() << "expected one result per output, of its type";
  if (buffers && getNumResults() != 0)
    return emitOpError() << "expected no results on memref outputs";
  for (Value operand : getOperation()->getOperands()) {
    Type type = operand.getType();
    if (tensors != isa<RankedTensorType>(type))
      return emitOpError() << "expected every operand to be a "
                           << (tensors ? "tensor" : "memref") << ", found "
                           << type;
    Type element = cast<ShapedType>(type).getElementType();
    if (!(element.isF32() || element.isF16() || element.isBF16() ||
          element.isInteger(32) || element.isInteger(64) ||
          element.isInteger(8)))
      return emitOpError() << "expected operands of f32, f16, bf16, i32, i64 "
                              "or i8, found "
                           << type;
  }
  return success();
}

void UKernelOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  for (OpOperand &operand : getOperation()->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    effects.emplace_back(MemoryEffects::Read::get(), &operand,
                         SideEffects::DefaultResource::get());
    if (isDpsInit(&operand))
      effects.emplace_back(MemoryEffects::Write::get(), &operand,
                           SideEffects::DefaultResource::get());
  }
}

//===----------------------------------------------------------------------===//
// WeightBufferOp
//===----------------------------------------------------------------------===//

LogicalResult WeightBufferOp::verify() {
  if (static_cast<int64_t>(getId()) < 0)
    return emitOpError() << "expected a weight id >= 0";
  auto type = cast<MemRefType>(getType());
  if (!type.hasStaticShape() || !type.getLayout().isIdentity())
    return emitOpError() << "expected a static identity-layout memref, found "
                         << type;
  return success();
}

LogicalResult KnobBufferOp::verify() {
  if (static_cast<int64_t>(getId()) < 0)
    return emitOpError() << "expected a knob id >= 0";
  auto type = cast<MemRefType>(getType());
  if (type.getShape() != ArrayRef<int64_t>{1} || !type.getLayout().isIdentity())
    return emitOpError() << "expected memref<1xf64>, found " << type;
  return success();
}

//===----------------------------------------------------------------------===//
// RecordStatsOp
//===----------------------------------------------------------------------===//

LogicalResult RecordStatsOp::verify() {
  ShapeChecker check(getOperation());
  check.dims("assignments", getAssignments().getType(), {"E"})
      .dims("dropped", getDropped().getType(), {"E"});
  if (failed(check.result()))
    return failure();
  if (ShapedType::isDynamic(check.get("E")))
    return emitOpError() << "expected a static number of experts";
  if (getLayer().empty())
    return emitOpError() << "expected a non-empty layer name";
  if (Value ids = getExpertIds()) {
    ShapeChecker slots(getOperation());
    slots.dims("expert_ids", ids.getType(), {"T", "S"});
    if (failed(slots.result()))
      return failure();
    if (ShapedType::isDynamic(slots.get("S")))
      return emitOpError() << "expected a static slot count in coactivation "
                              "expert_ids, found "
                           << ids.getType();
  }
  return success();
}

//===----------------------------------------------------------------------===//
// KnobOp
//===----------------------------------------------------------------------===//

LogicalResult KnobOp::verify() {
  if (getName().empty() || getLayer().empty())
    return emitOpError() << "expected a non-empty knob name and layer";
  double value = getDefaultValue().convertToDouble();
  if (!std::isfinite(value))
    return emitOpError() << "expected a finite default, found " << value;
  if (getName() == "capacity_factor" && !(value > 0))
    return emitOpError() << "expected capacity_factor > 0, found " << value;
  Type type = getType();
  Type deviceType = RankedTensorType::get({1}, Float64Type::get(getContext()));
  if (getDevice() && type != deviceType)
    return emitOpError() << "expected tensor<1xf64> with device, found "
                         << type;
  if (!getDevice() && !type.isF32() && !type.isF64())
    return emitOpError() << "expected f32 or f64 (tensor<1xf64> with "
                            "device), found "
                         << type;
  return success();
}

//===----------------------------------------------------------------------===//
// Custom directives
//===----------------------------------------------------------------------===//

/// An enum attribute printed as its bare keyword (`act = silu`).
template <typename EnumAttrT>
static void printEnumKeyword(OpAsmPrinter &printer, Operation *,
                             EnumAttrT attr) {
  printer << stringifyEnum(attr.getValue());
}

template <typename EnumAttrT>
static ParseResult parseEnumKeyword(OpAsmParser &parser, EnumAttrT &attr) {
  using EnumT = decltype(std::declval<EnumAttrT>().getValue());
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<EnumT> value = symbolizeEnum<EnumT>(keyword);
  if (!value)
    return parser.emitError(loc) << "unknown " << EnumAttrT::getMnemonic()
                                 << " `" << keyword << "`";
  attr = EnumAttrT::get(parser.getContext(), *value);
  return success();
}

//===----------------------------------------------------------------------===//
// TableGen'd definitions
//===----------------------------------------------------------------------===//

#define GET_OP_CLASSES
#include "moe/IR/MoEOps.cpp.inc"
