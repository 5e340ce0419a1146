//===- FormLayers.cpp - moe-form-layers -----------------------------------===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#include "ExpertChain.h"

#include "moe/Transforms/Passes.h"

#include "mlir/IR/Verifier.h"

namespace mlir::moe {
#define GEN_PASS_DEF_MOEFORMLAYERS
#include "moe/Transforms/Passes.h.inc"
} // namespace mlir::moe

using namespace mlir;
using namespace mlir::moe;

namespace {

/// A chain that computes one MoE block, as the operands and attributes of
/// the `moe.layer` that replaces it.
struct Chain {
  /// The experts' half (its `ops` are in `ops` too).
  ExpertChain experts;
  SmallVector<Value> routerWeights;
  Value selectionBias, tau, capacityFactor;
  RoutingAttr routing;
  CapacityAttr capacity;
  DispatchOp dispatch;
  /// E, from the router weight.
  int64_t numExperts = 0;
  /// The selection's expert ids, which `moe.expert_load` and
  /// `moe.record_stats` may read besides the dispatch.
  Value ids;
  /// The ops the layer replaces, the root (the chain's last op) included.
  llvm::SetVector<Operation *> ops;
};

} // namespace

/// Why a chain is not formed into a layer, for the pass's `explain` remarks.
using Why = std::string;

/// The name of `op` for a reason, `moe.z_loss` say.
static std::string nameOf(Operation *op) {
  return op->getName().getStringRef().str();
}

/// The fused shared `gate_up [2 fs, d]` whose halves `gate` and `up` are,
/// as `moe-decompose` slices a static one (the slices added to `ops`), or
/// null.
static Value joinedGateUp(Value gate, Value up,
                          llvm::SetVector<Operation *> &ops) {
  auto g = gate.getDefiningOp<tensor::ExtractSliceOp>();
  auto u = up.getDefiningOp<tensor::ExtractSliceOp>();
  if (!g || !u || g.getSource() != u.getSource() || !g->hasOneUse() ||
      !u->hasOneUse())
    return {};
  RankedTensorType source = g.getSourceType();
  if (source.getRank() != 2 || !source.hasStaticShape() ||
      source.getDimSize(0) % 2 != 0)
    return {};
  int64_t fs = source.getDimSize(0) / 2, d = source.getDimSize(1);
  auto isHalf = [&](tensor::ExtractSliceOp slice, int64_t row) {
    return slice.hasUnitStride() &&
           slice.getStaticOffsets() == ArrayRef<int64_t>({row, 0}) &&
           slice.getStaticSizes() == ArrayRef<int64_t>({fs, d});
  };
  if (!isHalf(g, 0) || !isHalf(u, fs))
    return {};
  ops.insert(g);
  ops.insert(u);
  return g.getSource();
}

/// The experts' half of a chain ending in `moe.fused_experts`.
static ExpertChain matchExperts(FusedExpertsOp fused) {
  ExpertChain half;
  ExpertsAttr experts = fused.getExperts();
  half.kind = experts.getKind();
  half.act = experts.getAct();
  if (experts.getAlpha())
    half.alpha = experts.getAlpha()->value;
  half.input = fused.getInput();
  half.rowToken = fused.getRowToken();
  half.rowWeight = fused.getRowWeight();
  half.groupSizes = fused.getGroupSizes();
  half.slotRow = fused.getSlotRow();
  half.slotWeight = fused.getSlotWeight();
  half.weights = llvm::to_vector(fused.getExpertWeights());
  half.biases = llvm::to_vector(fused.getExpertBiases());
  half.shared = llvm::to_vector(fused.getSharedWeights());
  half.ops.insert(fused);
  return half;
}

/// The routing half: router and route, a gate, or router and expert choice,
/// selecting the ids and weights that `chain.dispatch` reads.
static LogicalResult matchRouting(Chain &chain, Why &why) {
  MLIRContext *ctx = chain.dispatch.getContext();
  Value ids = chain.dispatch.getExpertIds();
  Value weights = chain.dispatch.getWeights();
  Operation *selection = ids.getDefiningOp();
  if (!selection || weights.getDefiningOp() != selection ||
      !isa<GateOp, RouteOp, ExpertChoiceOp>(selection))
    return refuse(why, "the dispatched ids and weights do not come from one "
                       "moe.route, moe.gate or moe.expert_choice");
  chain.ids = ids;
  chain.ops.insert(selection);
  ApplyWeight apply =
      chain.experts.rowWeight ? ApplyWeight::Input : ApplyWeight::Output;
  Value logits;
  if (auto gate = dyn_cast<GateOp>(selection)) {
    chain.routerWeights = {gate.getWeight()};
    if (gate.getBias())
      chain.routerWeights.push_back(gate.getBias());
    if (gate.getInput() != chain.experts.input)
      return refuse(why, "the router reads another input than the experts");
    chain.selectionBias = gate.getSelectionBias();
    chain.tau = gate.getTau();
    chain.routing = gate.getRouting();
  } else if (auto route = dyn_cast<RouteOp>(selection)) {
    logits = route.getLogits();
    chain.selectionBias = route.getSelectionBias();
    chain.tau = route.getTau();
    chain.routing = route.getRouting();
  } else if (auto choice = dyn_cast<ExpertChoiceOp>(selection)) {
    // The layer's expert choice bounds each expert itself; its dispatch
    // keeps every slot.
    if (chain.dispatch.getCapacityAttr() || chain.dispatch.getCapacityFactor())
      return refuse(why, "expert choice bounds each expert itself: its "
                         "dispatch takes no capacity");
    logits = choice.getLogits();
    chain.capacity = choice.getCapacityAttr();
    chain.routing = RoutingAttr::get(
        ctx, ScoreFunc::Softmax, Selection::ExpertChoice, choice.getK(),
        /*groups=*/1, /*topk_group=*/std::nullopt, GroupScore::Max,
        /*top_p=*/std::nullopt, /*tau=*/std::nullopt, CombineWeights::Scores,
        /*renormalize=*/false, /*scale=*/F64{1.0}, apply);
  }
  if (!isa<ExpertChoiceOp>(selection)) {
    chain.capacity = chain.dispatch.getCapacityAttr();
    chain.capacityFactor = chain.dispatch.getCapacityFactor();
  }
  if (logits) {
    auto router = logits.getDefiningOp<RouterOp>();
    if (!router)
      return refuse(why, "the logits do not come from a moe.router");
    for (Operation *user : logits.getUsers())
      if (user != selection)
        return refuse(why, "the logits are also read by " + nameOf(user));
    if (router.getInput() != chain.experts.input)
      return refuse(why, "the router reads another input than the experts");
    chain.routerWeights = {router.getWeight()};
    if (router.getBias())
      chain.routerWeights.push_back(router.getBias());
    chain.ops.insert(router);
  }
  // Where the chain applies the weights decides, whatever the route's
  // attribute said: it changes no score, selection or weight.
  RoutingAttr r = chain.routing;
  if (r.getApplyWeight() != apply)
    chain.routing = RoutingAttr::get(
        ctx, r.getScore(), r.getSelection(), r.getK(), r.getGroups(),
        r.getTopkGroup(), r.getGroupScore(), r.getTopP(), r.getTau(),
        r.getWeights(), r.getRenormalize(), r.getScale(), apply);
  return success();
}

/// The chain whose last op is `root` (a combine or a fused_experts), or
/// failure when there is none that a layer computes.
static FailureOr<Chain> matchChain(Operation *root, Why &why) {
  Chain chain;
  if (auto combine = dyn_cast<CombineOp>(root)) {
    FailureOr<ExpertChain> half = matchExpertChain(combine, why);
    if (failed(half))
      return failure();
    chain.experts = std::move(*half);
  } else {
    chain.experts = matchExperts(cast<FusedExpertsOp>(root));
  }
  ExpertChain &half = chain.experts;
  chain.ops.insert(half.ops.begin(), half.ops.end());
  if (half.shared.size() == 3)
    if (Value gateUp = joinedGateUp(half.shared[0], half.shared[1], chain.ops))
      half.shared = {gateUp, half.shared[2]};
  auto dispatch = half.rowToken.getDefiningOp<DispatchOp>();
  if (!dispatch || half.groupSizes != dispatch.getGroupSizes() ||
      half.slotRow != dispatch.getSlotRow() ||
      (half.rowWeight && half.rowWeight != dispatch.getRowWeight()) ||
      (half.slotWeight && half.slotWeight != dispatch.getSlotWeight()))
    return refuse(why, "the rows, group sizes and slots are not those of "
                       "one moe.dispatch");
  // The weights applied exactly once: to the rows or to the slots.
  if (!half.rowWeight == !half.slotWeight)
    return refuse(why, half.rowWeight
                           ? "the weights are applied twice: to the "
                             "gathered rows and in the combine"
                           : "the weights are applied nowhere: neither to "
                             "the gathered rows nor in the combine");
  chain.dispatch = dispatch;
  chain.ops.insert(dispatch);
  if (failed(matchRouting(chain, why)))
    return failure();
  chain.numExperts =
      cast<ShapedType>(chain.routerWeights.front().getType()).getDimSize(0);
  if (ShapedType::isDynamic(chain.numExperts))
    return refuse(why, "the router weight has a dynamic number of experts");
  if (static_cast<int64_t>(dispatch.getNumExperts()) != chain.numExperts)
    return refuse(why,
                  "the dispatch has " + llvm::Twine(dispatch.getNumExperts()) +
                      " experts, the router " + llvm::Twine(chain.numExperts));

  // Nothing outside the chain reads what the layer hides, and the chain
  // lies in one block, where the layer takes the root's place.
  Block *block = root->getBlock();
  for (Operation *op : chain.ops) {
    if (op->getBlock() != block)
      return refuse(why, "its ops lie in more than one block");
    if (op == root)
      continue;
    for (Value result : op->getResults()) {
      if (result == dispatch.getDropped() || result == chain.ids)
        continue;
      for (Operation *user : result.getUsers())
        if (!chain.ops.contains(user))
          return refuse(why, "a result of " + nameOf(op) + " is also read by " +
                                 nameOf(user));
    }
  }
  return chain;
}

/// Whether `user` comes after `root` in `root`'s block.
static bool isAfter(Operation *user, Operation *root) {
  Operation *ancestor = root->getBlock()->findAncestorOpInBlock(*user);
  return ancestor && root->isBeforeInBlock(ancestor);
}

/// Replaces `chain` by one moe.layer, or leaves it when a reader of its
/// ids or dropped counts is not one the layer can serve, or the layer's
/// verifier refuses what the chain computes.
static LogicalResult formLayer(Chain &chain, Operation *root, Why &why) {
  ExpertChain &half = chain.experts;
  MLIRContext *ctx = root->getContext();
  int64_t numExperts = chain.numExperts;

  // The ids' readers besides the dispatch: assignment counts (the layer's
  // `assignments`) and statistics counting co-activation.
  SmallVector<ExpertLoadOp> loads;
  SmallVector<RecordStatsOp> records;
  for (Operation *user : chain.ids.getUsers()) {
    if (user == chain.dispatch)
      continue;
    if (auto load = dyn_cast<ExpertLoadOp>(user);
        load && static_cast<int64_t>(load.getNumExperts()) == numExperts) {
      loads.push_back(load);
      continue;
    }
    auto record = dyn_cast<RecordStatsOp>(user);
    if (!record || record.getExpertIds() != chain.ids)
      return refuse(why, "the expert ids are also read by " + nameOf(user));
    records.push_back(record);
  }
  for (RecordStatsOp record : records) {
    auto load = record.getAssignments().getDefiningOp<ExpertLoadOp>();
    if (!load || !llvm::is_contained(loads, load))
      return refuse(why, "statistics count co-activation on the ids but "
                         "not the assignments of their moe.expert_load");
    if (!isAfter(record, root))
      return refuse(why, "statistics on the ids come before the chain's "
                         "end, where the layer would be");
  }
  SmallVector<Value> replaced = {chain.dispatch.getDropped()};
  for (ExpertLoadOp load : loads)
    replaced.push_back(load.getCounts());
  for (Value value : replaced)
    for (Operation *user : value.getUsers())
      if (!isAfter(user, root))
        return refuse(why, nameOf(user) + " reads the assignment or dropped "
                                          "counts before the chain's end, "
                                          "where the layer would be");

  // What a layer can be is the word of its verifier (and the experts
  // attribute's): its first diagnostic is the reason, kept for `explain`
  // rather than reported, since the chain then stays as written.
  std::string verdict;
  ScopedDiagnosticHandler quiet(ctx, [&](Diagnostic &diagnostic) {
    if (verdict.empty())
      verdict = diagnostic.str();
    return success();
  });
  std::optional<F64> alpha;
  if (half.alpha)
    alpha = F64{*half.alpha};
  Location loc = root->getLoc();
  auto experts =
      ExpertsAttr::getChecked([&] { return emitError(loc); }, ctx, half.kind,
                              half.act.value_or(Activation::Silu), alpha);
  if (!experts)
    return refuse(why, "moe.layer cannot express it: " + verdict);
  auto counts = RankedTensorType::get({numExperts}, IntegerType::get(ctx, 64));
  OpBuilder b(ctx);
  OperationState state(loc, LayerOp::getOperationName());
  LayerOp::build(b, state, root->getResult(0).getType(), counts,
                 chain.dispatch.getDropped().getType(), half.input,
                 chain.routerWeights, chain.selectionBias, chain.tau,
                 chain.capacityFactor, half.weights, half.biases, half.shared,
                 chain.routing, chain.capacity, experts,
                 /*family=*/FamilyAttr());
  Operation *layer = Operation::create(state);
  if (failed(verify(layer))) {
    layer->destroy();
    return refuse(why, "moe.layer cannot express it: " + verdict);
  }
  b.setInsertionPoint(root);
  b.insert(layer);
  auto formed = cast<LayerOp>(layer);
  root->getResult(0).replaceAllUsesWith(formed.getOutput());
  chain.dispatch.getDropped().replaceAllUsesWith(formed.getDropped());
  for (ExpertLoadOp load : loads) {
    load.getCounts().replaceAllUsesWith(formed.getAssignments());
    chain.ops.insert(load);
  }
  for (RecordStatsOp record : records) {
    record.getExpertIdsMutable().clear();
    record.setWithCoactivation(true);
  }
  // Users before producers: the chain's ops share the root's block, and
  // the loads, which may not, read only the ids.
  SmallVector<Operation *> dead = chain.ops.takeVector();
  llvm::sort(dead, [&](Operation *a, Operation *b) {
    Block *block = root->getBlock();
    return block->findAncestorOpInBlock(*b)->isBeforeInBlock(
        block->findAncestorOpInBlock(*a));
  });
  for (Operation *op : dead) {
    assert(op->use_empty() && "a chain op is still read");
    op->erase();
  }
  return success();
}

namespace {
struct MoEFormLayersPass
    : mlir::moe::impl::MoEFormLayersBase<MoEFormLayersPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Operation *> roots;
    getOperation()->walk([&](Operation *op) {
      if (isa<CombineOp, FusedExpertsOp>(op))
        roots.push_back(op);
    });
    for (Operation *root : roots) {
      Why why;
      FailureOr<Chain> chain = matchChain(root, why);
      if (succeeded(chain) && succeeded(formLayer(*chain, root, why)))
        continue;
      if (explain)
        emitRemark(root->getLoc()) << "not formed into a moe.layer: " << why;
    }
  }
};

} // namespace
