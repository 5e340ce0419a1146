//===- MoEEnums.td - moe dialect enumerations ---------------*- tablegen -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Every choice the semantics leaves to the user is an enumeration spelled by
// its name in the IR (`drop_order = choice_major`), never a bare integer.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEENUMS_TD
#define MOE_IR_MOEENUMS_TD

include "mlir/IR/EnumAttr.td"

class MoE_I32Enum<string name, string summary, list<I32EnumCase> cases>
    : I32Enum<name, summary, cases> {
  let cppNamespace = "::mlir::moe";
}

def MoE_ScoreFunc : MoE_I32Enum<"ScoreFunc", "router score function", [
  I32EnumCase<"Softmax", 0, "softmax">,
  I32EnumCase<"Sigmoid", 1, "sigmoid">,
  I32EnumCase<"SqrtSoftplus", 2, "sqrt_softplus">,
  I32EnumCase<"Logits", 3, "logits">
]>;

def MoE_Selection : MoE_I32Enum<"Selection", "expert selection rule", [
  I32EnumCase<"TopK", 0, "top_k">,
  I32EnumCase<"GroupedTopK", 1, "grouped_top_k">,
  I32EnumCase<"TopP", 2, "top_p">,
  I32EnumCase<"Threshold", 3, "threshold">,
  I32EnumCase<"ExpertChoice", 4, "expert_choice">
]>;

def MoE_GroupScore : MoE_I32Enum<"GroupScore",
    "score of an expert group in grouped_top_k", [
  I32EnumCase<"Max", 0, "max">,
  I32EnumCase<"SumTop2", 1, "sum_top2">
]>;

def MoE_CombineWeights : MoE_I32Enum<"CombineWeights",
    "source of the raw combine weight of a selected slot", [
  I32EnumCase<"Scores", 0, "scores">,
  I32EnumCase<"SoftmaxSelected", 1, "softmax_selected">
]>;

def MoE_ApplyWeight : MoE_I32Enum<"ApplyWeight",
    "where the combine weight multiplies", [
  I32EnumCase<"Output", 0, "output">,
  I32EnumCase<"Input", 1, "input">
]>;

def MoE_DropOrder : MoE_I32Enum<"DropOrder",
    "which assignments keep their slot when an expert is over capacity", [
  I32EnumCase<"ChoiceMajor", 0, "choice_major">,
  I32EnumCase<"TokenMajor", 1, "token_major">,
  I32EnumCase<"Score", 2, "score">
]>;

def MoE_GroupLayout : MoE_I32Enum<"GroupLayout",
    "how dispatch lays out the rows of each expert", [
  I32EnumCase<"Ragged", 0, "ragged">,
  I32EnumCase<"Aligned", 1, "aligned">,
  I32EnumCase<"Padded", 2, "padded">
]>;

def MoE_Activation : MoE_I32Enum<"Activation", "expert activation function", [
  I32EnumCase<"Silu", 0, "silu">,
  I32EnumCase<"GeluTanh", 1, "gelu_tanh">,
  I32EnumCase<"GeluErf", 2, "gelu_erf">,
  I32EnumCase<"Relu", 3, "relu">,
  I32EnumCase<"SwigluOai", 4, "swiglu_oai">
]>;

def MoE_ExpertKind : MoE_I32Enum<"ExpertKind", "kind of routed expert", [
  I32EnumCase<"Gated", 0, "gated">,
  I32EnumCase<"Mlp", 1, "mlp">,
  I32EnumCase<"Lora", 2, "lora">,
  I32EnumCase<"LoraGated", 3, "lora_gated">
]>;

def MoE_AuxLossConvention : MoE_I32Enum<"AuxLossConvention",
    "load-balancing loss convention", [
  I32EnumCase<"Switch", 0, "switch">,
  I32EnumCase<"AllK", 1, "all_k">,
  I32EnumCase<"AllKMean", 2, "all_k_mean">
]>;

def MoE_Family : MoE_I32Enum<"Family", "model family preset", [
  I32EnumCase<"Mixtral", 0, "mixtral">,
  I32EnumCase<"Qwen2Moe", 1, "qwen2_moe">,
  I32EnumCase<"Qwen3Moe", 2, "qwen3_moe">,
  I32EnumCase<"Olmoe", 3, "olmoe">,
  I32EnumCase<"GraniteMoe", 4, "granitemoe">,
  I32EnumCase<"DeepseekV2", 5, "deepseek_v2">,
  I32EnumCase<"DeepseekV3", 6, "deepseek_v3">,
  I32EnumCase<"Switch", 7, "switch">
]>;

#endif // MOE_IR_MOEENUMS_TD
