//===- MoEBase.td - moe dialect definition -----------------*- tablegen -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEBASE_TD
#define MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Sparse Mixture-of-Experts routing and expert computation";
  let description = [{
    The `moe` dialect expresses a sparse Mixture-of-Experts layer as a unit
    that a compiler can see through: a router scores the experts of each
    token, a selection picks a few of them, dispatch groups the routed rows by
    expert (with or without a capacity limit), the experts run on their own
    rows only, and a combine sums each token's weighted expert outputs in slot
    order.

    The dialect has two levels. `moe.layer` is the whole block that a front
    end (a checkpoint importer, another compiler) emits with one attribute set
    per model family; `moe-decompose` expands it into the primitive ops
    (`moe.router`, `moe.route` or `moe.expert_choice`, `moe.dispatch`,
    `moe.gather`, the expert ops, `moe.combine`, `moe.expert_load`), which the
    optimization passes rewrite and the conversions lower.

    All ops have value semantics on tensors. Units used throughout: `T`
    tokens (usually dynamic), `d` hidden size, `E` routed experts, `k` experts
    per token, `f` expert inner size, `N` rows of the expert-grouped layout.
    Weights follow the checkpoint convention `[out_features, in_features]`.
    The exact meaning of every variant is written in `docs/semantics.md`.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let dependentDialects = ["::mlir::tensor::TensorDialect"];
  let extraClassDeclaration = [{
    void registerAttributes();
  }];
}

class MoE_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MoE_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

#endif // MOE_IR_MOEBASE_TD
