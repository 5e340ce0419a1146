//===- Passes.td - moe transformation passes ----------------*- tablegen -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TRANSFORMS_PASSES_TD
#define MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecompose : Pass<"moe-decompose"> {
  let summary = "Expand `moe.layer` into the primitive moe ops";
  let description = [{
    Replaces every `moe.layer` by the chain of primitive ops that computes
    it: `moe.router`, then `moe.route` (or `moe.expert_choice`),
    `moe.dispatch` (with the layer's capacity), `moe.gather`, the expert op
    of its kind (`moe.gated_experts`, `moe.mlp_experts`, `moe.lora_experts`
    with a `moe.linear` base, `moe.lora_gated_experts`), `moe.shared_expert`
    when the layer has one, `moe.combine`, and `moe.expert_load` for the
    assignment counts. Every other op is left alone, so the pass can run on
    any module.

    Before:

    ```mlir
    %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
        experts(%w1, %w3, %w2 : tensor<8x128x64xf32>, tensor<8x128x64xf32>,
                tensor<8x64x128xf32>)
        {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                                renormalize = true>,
         experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
    ```

    After:

    ```mlir
    %z = moe.router %x, %wg : tensor<?x64xf32>, tensor<8x64xf32>
    %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2,
                             renormalize = true> : tensor<?x8xf32>
    %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
        moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
    %xg = moe.gather %x, %rt : tensor<?x64xf32>, tensor<?xi32>
    %yg = moe.gated_experts %xg, %sizes gate(%w1 : ...) up(%w3 : ...)
        down(%w2 : ...) act = silu : tensor<?x64xf32>, tensor<8xi64>
    %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
        : tensor<?x64xf32>, tensor<?x2xi32>
    %load = moe.expert_load %ids experts = 8 : tensor<?x2xi32>
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect",
                           "::mlir::arith::ArithDialect"];
}

#endif // MOE_TRANSFORMS_PASSES_TD
