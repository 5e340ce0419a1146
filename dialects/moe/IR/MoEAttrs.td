//===- MoEAttrs.td - moe dialect attributes -----------------*- tablegen -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The routing, capacity and expert configurations are structured attributes
// shared by the whole-layer op and the primitive ops, so that one verifier
// checks each configuration wherever it appears.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEATTRS_TD
#define MOE_IR_MOEATTRS_TD

include "moe/IR/MoEBase.td"
include "moe/IR/MoEEnums.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"

//===----------------------------------------------------------------------===//
// Parameter helpers
//===----------------------------------------------------------------------===//

class MoE_DefaultF64<string value>
    : DefaultValuedParameter<"::mlir::moe::F64",
                             "::mlir::moe::F64{" # value # "}",
                             "a 64-bit float"> {
  let parser = "::mlir::moe::detail::parseF64($_parser)";
  let printer = "::mlir::moe::detail::printF64($_printer, $_self)";
}

def MoE_OptionalF64 : OptionalParameter<"std::optional<::mlir::moe::F64>",
                                        "an optional 64-bit float"> {
  let parser = "::mlir::moe::detail::parseOptionalF64($_parser)";
  let printer = "::mlir::moe::detail::printF64($_printer, *$_self)";
}

def MoE_OptionalI64 : OptionalParameter<"std::optional<int64_t>",
                                        "an optional 64-bit integer">;

def MoE_OptionalDropOrder
    : OptionalParameter<"std::optional<::mlir::moe::DropOrder>",
                        "an optional drop order"> {
  let parser =
      "::mlir::moe::detail::parseAsOptional<::mlir::moe::DropOrder>($_parser)";
  let printer = "$_printer << ::mlir::moe::stringifyDropOrder(*$_self)";
}

class MoE_DefaultBool<string value>
    : DefaultValuedParameter<"bool", value, "a boolean"> {
  let parser = "::mlir::moe::detail::parseBool($_parser)";
  let printer = "$_printer << ($_self ? \"true\" : \"false\")";
}

class MoE_DefaultEnum<EnumInfo info, string caseName>
    : DefaultValuedParameter<info.cppType, info.cppType # "::" # caseName,
                             "an enum of type " # info.className>;

//===----------------------------------------------------------------------===//
// Enum attributes used directly by ops
//===----------------------------------------------------------------------===//

// Printed bare inside op formats (`act = silu`).
def MoE_ActivationAttr : EnumAttr<MoE_Dialect, MoE_Activation, "act">;
def MoE_AuxLossConventionAttr
    : EnumAttr<MoE_Dialect, MoE_AuxLossConvention, "aux_convention">;

// Lives in attribute dictionaries: `family = #moe.family<mixtral>`.
def MoE_FamilyAttr : EnumAttr<MoE_Dialect, MoE_Family, "family"> {
  let assemblyFormat = "`<` $value `>`";
}

//===----------------------------------------------------------------------===//
// RoutingAttr
//===----------------------------------------------------------------------===//

def MoE_RoutingAttr : MoE_Attr<"Routing", "routing"> {
  let summary = "router score function, expert selection and combine weights";
  let description = [{
    The whole routing configuration of a layer (spec sections 1 to 3):

    | parameter | meaning | default |
    |---|---|---|
    | `score` | score function: `softmax`, `sigmoid`, `sqrt_softplus`, `logits` | required |
    | `selection` | `top_k`, `grouped_top_k`, `top_p`, `threshold`, `expert_choice` | required |
    | `k` | experts per token (the cap for `top_p` and `threshold`; the average for `expert_choice`) | required |
    | `groups` | expert groups of `grouped_top_k` (must divide E) | 1 |
    | `topk_group` | groups kept by `grouped_top_k` | required with `grouped_top_k` |
    | `group_score` | group score of `grouped_top_k`: `max` or `sum_top2` | `max` |
    | `top_p` | probability mass of `top_p`, in (0, 1] | required with `top_p` |
    | `tau` | score threshold of `threshold` (or an SSA operand) | - |
    | `weights` | raw weight: `scores` (unbiased score) or `softmax_selected` | `scores` |
    | `renormalize` | divide by the sum of the token's kept raw weights | `false` |
    | `scale` | multiply the weights (`routed_scaling_factor`) | 1.0 |
    | `apply_weight` | multiply the expert `output` or its `input` | `output` |

    Example (DeepSeek-V3):

    ```mlir
    #moe.routing<score = sigmoid, selection = grouped_top_k, k = 8,
                 groups = 8, topk_group = 4, group_score = sum_top2,
                 renormalize = true, scale = 2.5>
    ```
  }];
  let parameters = (ins
    EnumParameter<MoE_ScoreFunc>:$score,
    EnumParameter<MoE_Selection>:$selection,
    "int64_t":$k,
    DefaultValuedParameter<"int64_t", "1">:$groups,
    MoE_OptionalI64:$topk_group,
    MoE_DefaultEnum<MoE_GroupScore, "Max">:$group_score,
    MoE_OptionalF64:$top_p,
    MoE_OptionalF64:$tau,
    MoE_DefaultEnum<MoE_CombineWeights, "Scores">:$weights,
    MoE_DefaultBool<"false">:$renormalize,
    MoE_DefaultF64<"1.0">:$scale,
    MoE_DefaultEnum<MoE_ApplyWeight, "Output">:$apply_weight
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Checks the configuration against a router of `numExperts` experts
    /// (ShapedType::kDynamic when unknown) and reports through `emitError`.
    /// `hasTauOperand` tells whether tau comes as an SSA value.
    ::llvm::LogicalResult verifyFor(
        ::llvm::function_ref<::mlir::InFlightDiagnostic()> emitError,
        int64_t numExperts, bool hasTauOperand) const;
  }];
}

//===----------------------------------------------------------------------===//
// CapacityAttr
//===----------------------------------------------------------------------===//

def MoE_CapacityAttr : MoE_Attr<"Capacity", "capacity"> {
  let summary = "per-expert capacity and the rule that drops overflow";
  let description = [{
    Capacity of each expert (spec section 4): either a fixed `count`, or
    `ceil(factor * T * k / E)`; then at least `min`, and rounded up to a
    multiple of `align`. When an expert receives more assignments than its
    capacity, `drop_order` chooses the ones that keep their slot
    (`choice_major`, the default; `token_major`; `score`), and
    `renormalize_after_drop` renormalizes each token's weights over its
    surviving slots. Dropped assignments are counted per expert and returned,
    never lost silently.

    ```mlir
    #moe.capacity<factor = 1.25, min = 4, drop_order = token_major>
    ```
  }];
  let parameters = (ins
    MoE_OptionalI64:$count,
    MoE_OptionalF64:$factor,
    DefaultValuedParameter<"int64_t", "0">:$min,
    DefaultValuedParameter<"int64_t", "1">:$align,
    MoE_OptionalDropOrder:$drop_order,
    MoE_DefaultBool<"false">:$renormalize_after_drop
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The drop order, `choice_major` unless given.
    ::mlir::moe::DropOrder getDropOrderOrDefault() const {
      return getDropOrder().value_or(::mlir::moe::DropOrder::ChoiceMajor);
    }
    /// The capacity for `numTokens` tokens with `k` slots each over
    /// `numExperts` experts (spec section 4).
    int64_t computeCapacity(int64_t numTokens, int64_t k,
                            int64_t numExperts) const;
  }];
}

//===----------------------------------------------------------------------===//
// LayoutAttr
//===----------------------------------------------------------------------===//

def MoE_LayoutAttr : MoE_Attr<"Layout", "layout"> {
  let summary = "the grouped layout that dispatch builds";
  let description = [{
    Where each expert's rows go in `moe.dispatch`'s grouped layout:

    - `ragged` (the default): groups back to back, each exactly its kept
      assignments;
    - `aligned`: each group rounded up to a multiple of `block` rows with
      padding rows (token -1, weight 0), so that every group starts and
      ends on a kernel tile (`N = T * S + E * (block - 1)` rows);
    - `padded`: every group `C` rows, the capacity (`N = E * C`): a static
      per-expert batch, as capacity-based systems lay it out. Needs a
      capacity.

    `group_sizes` then count the group's rows, padding included (the
    experts compute zeros there and no slot points to them); the kept
    assignments are `group_sizes` minus padding, that is, `moe.expert_load`
    minus `dropped`.

    ```mlir
    #moe.layout<kind = aligned, block = 16>
    ```
  }];
  let parameters = (ins
    EnumParameter<MoE_GroupLayout>:$kind,
    DefaultValuedParameter<"int64_t", "1">:$block
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// PackingAttr
//===----------------------------------------------------------------------===//

def MoE_PackingAttr : MoE_Attr<"Packing", "packing"> {
  let summary = "a checkpoint weight packed for the CPU kernels at load time";
  let description = [{
    On `moe.weight`: the checkpoint tensors (`source`, the type the names
    describe) are not bound as they are but packed once, at load time, into
    the panel layout of the runtime's CPU kernels (32 output rows per panel;
    bf16 in pairs along the reduction dimension; see
    `runtime/include/moe_ukernel_abi.h`). Rows `[first_row, first_row +
    rows)` of each `[n, k]` matrix are packed, so that one fused `gate_up`
    tensor yields a packed gate and a packed up. The op's result is the 1-D
    packed tensor, of element type f32 or bf16.

    ```mlir
    %g = moe.weight stacked [...] {packing = #moe.packing<
        source = tensor<8x5632x1024xbf16>, first_row = 0, rows = 2816>}
        : tensor<23068672xbf16>
    ```
  }];
  let parameters = (ins
    "::mlir::RankedTensorType":$source,
    "int64_t":$first_row,
    "int64_t":$rows
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Elements of the packed tensor for packed element type `packed`.
    int64_t getPackedElements(::mlir::Type packed) const;
  }];
}

//===----------------------------------------------------------------------===//
// ExpertsAttr
//===----------------------------------------------------------------------===//

def MoE_ExpertsAttr : MoE_Attr<"Experts", "experts"> {
  let summary = "kind and activation of the routed experts";
  let description = [{
    `kind` is `gated` (`down(act(gate x) * up x)`), `mlp` (`w2 act(w1 x)`),
    `lora` (a frozen base projection plus per-expert low-rank deltas
    `(alpha / r) B_e A_e x`), or `lora_gated` (a frozen gated FFN whose three
    projections carry per-expert LoRA pairs). `act` is the activation
    (`silu` by default); `alpha` is the LoRA scale numerator, required by the
    LoRA kinds and rejected by the others. `act = swiglu_oai` (GPT-OSS's
    clamped SwiGLU) combines gate and up itself, so it applies to the gated
    kind only: `(clamp(u, -7, 7) + 1) * g' * sigmoid(1.702 g')` with
    `g' = min(g, 7)`.

    ```mlir
    #moe.experts<kind = gated, act = silu>
    #moe.experts<kind = lora, alpha = 16.0>
    ```
  }];
  let parameters = (ins
    EnumParameter<MoE_ExpertKind>:$kind,
    MoE_DefaultEnum<MoE_Activation, "Silu">:$act,
    MoE_OptionalF64:$alpha
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    bool isLora() const {
      return getKind() == ::mlir::moe::ExpertKind::Lora ||
             getKind() == ::mlir::moe::ExpertKind::LoraGated;
    }
  }];
}

#endif // MOE_IR_MOEATTRS_TD
