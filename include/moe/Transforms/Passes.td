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
    when the layer has one (a fused shared `gate_up` split into its gate and
    up rows by `tensor.extract_slice`), `moe.combine`, and `moe.expert_load`
    for the assignment counts. Every other op is left alone, so the pass can run on
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
                           "::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoEFormLayers : Pass<"moe-form-layers"> {
  let summary = "Form `moe.layer` ops from chains of routing, dispatch and "
                "expert ops";
  let description = [{
    The inverse of `moe-decompose`: replaces a chain of primitive (or fused)
    moe ops that computes a whole MoE block by one `moe.layer`, so that a
    front end that spells a block op by op gets what the back ends, the
    statistics, the knobs and `moe-narrow-to-bf16` do for layers: on the
    CUDA back end, the chain runs on the layer kernels rather than on the
    host. Both pipelines run the pass first.

    A chain is, on one input `x` and in one block:
    - the routing: `moe.router` of `x` and `moe.route`, `moe.gate`, or
      `moe.router` and `moe.expert_choice`;
    - `moe.dispatch` of its expert ids and weights (any layout: the combine
      reads the rows through `slot_row`, so the layout changes no output);
    - the experts: `moe.gather` of `x`, one expert op (`moe.gated_experts`,
      `moe.mlp_experts`, `moe.lora_experts`, `moe.lora_gated_experts`) and
      `moe.combine`, whose addend may be a `moe.shared_expert` of `x`, the
      `moe.linear` base of LoRA experts, or their sum; or one
      `moe.fused_experts`;
    - the weights applied once, where `moe.gather` scales the rows and the
      combine takes no weights (`apply_weight = input`) or the other way
      round (`output`), whatever the routing attribute said.

    The layer's assignments replace `moe.expert_load` of the chain's ids
    (and a `moe.record_stats` that counts co-activation on those ids gets
    the layer's instead), its `dropped` result the dispatch's. A chain whose
    intermediate values have other readers (a loss reading the logits or the
    ids, an offset read elsewhere), whose parts read different inputs, or
    that `moe.layer` cannot express (its verifier decides) is left as it is;
    a shared expert and the routed experts must use one activation. A fused
    shared `gate_up` that `moe-decompose` split into two
    `tensor.extract_slice` halves of static shape is joined again.

    With `explain`, each chain left as it is (each `moe.combine` or
    `moe.fused_experts` not formed) gets a remark that says why; the CUDA
    pipeline asks for them, since such a chain runs on the host there.
  }];
  let options = [
    Option<"explain", "explain", "bool", /*default=*/"false",
           "Remark on each chain left as it is, saying why">
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoEFuseGating : Pass<"moe-fuse-gating"> {
  let summary = "Fuse the router matmul with score, selection and weights";
  let description = [{
    Replaces `moe.route` of `moe.router`'s logits by one `moe.gate` when
    nothing else reads the logits (a loss does: then the two stay apart).
    A back end then computes logits, scores, the selection and the combine
    weights token tile by token tile, in one pass, without a `[T, E]`
    probability tensor.

    ```mlir
    %z = moe.router %x, %wg : tensor<?x1024xf32>, tensor<8x1024xf32>
    %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
        : tensor<?x8xf32>
    // becomes
    %ids, %w = moe.gate %x, %wg <score = softmax, selection = top_k, k = 2>
        : tensor<?x1024xf32>, tensor<8x1024xf32>
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoEFuseExpertIO : Pass<"moe-fuse-expert-io"> {
  let summary = "Fold the gather and the combine into the expert computation";
  let description = [{
    Replaces `moe.combine` of gated, MLP or LoRA experts applied to
    `moe.gather` rows by one `moe.fused_experts`, with the always-on terms
    the combine adds: a shared expert of the same input (and activation),
    and for LoRA experts their frozen base `moe.linear`, which becomes one
    base product over all tokens next to the grouped low-rank products of
    the routed adapters. The back end then reads routed rows in place (or
    packs them once for its kernel) instead of materializing a permuted
    activation tensor, and sums each token's slots as the last product
    produces them. Chains with other uses in between are left alone, and
    `lora_gated` experts keep their primitive form.

    ```mlir
    %xg = moe.gather %x, %rt : tensor<?x64xf32>, tensor<?xi32>
    %yg = moe.gated_experts %xg, %sizes gate(%g : ...) up(%u : ...)
        down(%d : ...) act = silu : tensor<?x64xf32>, tensor<8xi64>
    %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
        : tensor<?x64xf32>, tensor<?x2xi32>
    // becomes
    %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
        slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
        experts(%g, %u, %d : ...) {experts = #moe.experts<kind = gated>}
        : tensor<?x64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoECapacityBatching : Pass<"moe-capacity-batching"> {
  let summary = "Choose each dispatch's grouped layout with a cost model";
  let description = [{
    Sets the `layout` of every `moe.dispatch` that has none: `ragged`,
    `aligned` to the kernel's row tile, or `padded` to the capacity (see
    `#moe.layout`). The dispatch lowering then counts the assignments per
    expert, prefix-sums the group offsets and lays the rows out that way.

    The cost model counts, in rows, the work of the expert kernels for an
    expected token count (`expected-tokens`, or the static token count)
    and uniform routing: each expert expects `n = T * S / E` assignments,
    at most the capacity `C`. A kernel that works on tiles of `tile-rows`
    (`B`) rows pays for whole tiles; for a group that does not start on a
    tile it also pays `repack-cost` to copy the group into tiles; and a
    group of data-dependent size costs `group-cost` (a launch, a loop
    bound read at run time) that the uniform batches of `padded` avoid:

    | layout | cost |
    |---|---|
    | ragged | `E * (roundup(n, B) + group-cost)` (+ `E * repack-cost` when `B > 1`) |
    | aligned | `E * (roundup(n, B) + group-cost)` |
    | padded (needs a capacity) | `E * roundup(C, B)` |

    The cheapest wins; ties go to the simpler layout (ragged, then
    aligned, then padded). With `tile-rows = 1` (kernels that take any row
    count, as the CPU kernels do) ragged always wins; tile-based kernels
    get aligned groups, and where groups cost a launch, a capacity close
    to the expected load gets a static `[E * C]` batch.

    A layout that would change a static row count (a static token count)
    is not applied: the dispatch stays ragged, with a remark.

    ```mlir
    %r:7 = moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
    // with tile-rows=16, becomes
    %r:7 = moe.dispatch %ids, %w experts = 8
        layout <kind = aligned, block = 16> : tensor<?x2xi32>, tensor<?x2xf32>
    ```
  }];
  let options = [
    Option<"tileRows", "tile-rows", "int64_t", /*default=*/"16",
           "Rows the expert kernels process at once">,
    Option<"expectedTokens", "expected-tokens", "int64_t", /*default=*/"512",
           "Token count to plan for when the token dimension is dynamic">,
    Option<"repackCost", "repack-cost", "double", /*default=*/"8.0",
           "Cost, in rows, of copying a ragged group into whole tiles">,
    Option<"groupCost", "group-cost", "double", /*default=*/"0.0",
           "Cost, in rows, of a group of data-dependent size">,
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoEReport : Pass<"moe-report", "::mlir::ModuleOp"> {
  let summary = "Print what each moe.layer costs, sparse against dense";
  let description = [{
    For every `moe.layer` (run it before `moe-decompose`), prints the
    parameters it holds and those one token reads, and for each token count
    of `tokens` the multiply-add FLOPs and the weight bytes of the sparse
    layer against the dense layer that runs every expert on every token.
    Touched experts, for bytes, assume uniform routing. The IR is not
    changed.

    ```
    moe-report: @moe_layer_0: gated experts, E = 8, k = 2, bf16 weights
      parameters: 69214208 held, 17309696 per token (25.0%)
      tokens  sparse GFLOP  dense GFLOP  FLOPs saved  weight MB sparse  dense
           1         0.035        0.138        75.0%              34.6  138.4
         512        17.725       70.875        75.0%             138.4  138.4
    ```
  }];
  let options = [
    ListOption<"tokens", "tokens", "int64_t",
               "Token counts to report (default 1 and 512)">,
    Option<"file", "file", "std::string", /*default=*/"\"\"",
           "Where to print: a file, `-` for stdout (default: stderr)">,
  ];
}

def MoEInsertStats : Pass<"moe-insert-stats", "::mlir::ModuleOp"> {
  let summary = "Record each moe.layer's expert statistics in the runtime";
  let description = [{
    After every `moe.layer`, adds a `moe.record_stats` of the counts the
    layer already returns (assignments and drops per expert) and of its
    token count. No extra pass over the activations: the counts come out of
    dispatch. The statistics are named after the enclosing function
    (`moe_layer_3`), with `#i` appended when a function holds several
    layers. A layer whose counts are already recorded is left alone.

    ```mlir
    %y, %load, %dropped = moe.layer %x ... : tensor<?x64xf32>
    // becomes
    %y, %load, %dropped = moe.layer %x ... : tensor<?x64xf32>
    %t = tensor.dim %x, %c0 : tensor<?x64xf32>
    moe.record_stats %load, %dropped tokens(%t) layer = "moe_layer_3"
        : tensor<8xi64>
    ```

    With `coactivation`, the record also counts pairs of experts chosen by
    the same token (from the `[T, S]` expert ids that `moe-decompose`
    attaches; `O(T * S^2)` integer work on the ids per call).
  }];
  let options = [
    Option<"coactivation", "coactivation", "bool", /*default=*/"false",
           "Also count co-activated expert pairs">
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect",
                           "::mlir::arith::ArithDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoEExposeKnobs : Pass<"moe-expose-knobs", "::mlir::ModuleOp"> {
  let summary = "Turn routing constants into knobs the runtime can change";
  let description = [{
    Makes the cost/quality constants of every `moe.layer` run-time values:
    a `threshold` layer without a `tau` operand reads it from the knob
    `tau`, and a token-choice layer whose capacity has a `factor` reads the
    factor from the knob `capacity_factor` (both defaulting to the
    attribute's value). A user or a controller then changes them between
    calls through the runtime (`moe_model_set_knob`, `moe-run --knob`)
    without recompiling. Knobs are named after the layer as
    `moe-insert-stats` names its statistics. Layers that already take the
    value as an operand are left alone.

    ```mlir
    %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
        experts(...) {routing = #moe.routing<score = softmax,
                        selection = threshold, k = 2, tau = 1.000000e-01>,
                      capacity = #moe.capacity<factor = 1.250000e+00>, ...}
    // becomes
    %tau = moe.knob "tau" layer = "f" default = 1.000000e-01 : f32
    %cf = moe.knob "capacity_factor" layer = "f" default = 1.250000e+00 : f64
    %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
        tau(%tau) capacity_factor(%cf) experts(...) {...}
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoENarrowToBF16 : Pass<"moe-narrow-to-bf16"> {
  let summary = "Compute f32 and f16 moe.layer ops in bf16";
  let description = [{
    Rewrites every `moe.layer` with an f32 or f16 input, router weight,
    expert weight, expert bias or shared weight so that it computes in
    bf16: those operands are rounded to bf16 (to nearest even), the layer
    computes as a bf16 layer (`docs/semantics.md`), and its output is
    widened back to the input's type, so the enclosing function keeps its
    signature. The CUDA kernel library computes only in bf16; this is how
    an f32 or f16 layer runs there, and on the CPU it halves the bytes of
    weights that decoding reads. It changes the results (bf16 keeps 8
    significant bits), and may change the routing of a token whose best
    experts' logits are close, so it runs only when asked for
    (`narrow-to-bf16` of `moe-cpu-pipeline` and `moe-cuda-pipeline`,
    `--narrow-to-bf16` of `moe-run` and `moe-compile`).

    A checkpoint weight (`moe.weight`) is not rounded by the compiled code:
    the pass gives the layer a `moe.weight` of the same tensors with a bf16
    result whose `stored` names what the checkpoint holds, so the runtime
    rounds it once, at load time, from the checkpoint's values (an f16
    layer's weight stored in f32 is rounded to bf16 directly, not through
    f16), and refuses a finite value that would round to an infinity. Any other operand is rounded by an
    `arith.truncf`, which folds for constants. Router and selection biases
    are added to the f32 logits in f32 and are left alone, as are a
    layer's bf16 operands and its other results (the expert counts).

    ```mlir
    %w = moe.weight "experts.gate" : tensor<8x32x64xf32>
    %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xf32>)
        experts(%w, ...) {...} : tensor<?x64xf32>
    // becomes
    %w = moe.weight "experts.gate" {stored = f32} : tensor<8x32x64xbf16>
    %xb = arith.truncf %x : tensor<?x64xf32> to tensor<?x64xbf16>
    %wrb = arith.truncf %wr : tensor<8x64xf32> to tensor<8x64xbf16>
    %yb, %load, %dropped = moe.layer %xb router(%wrb : tensor<8x64xbf16>)
        experts(%w, ...) {...} : tensor<?x64xbf16>
    %y = arith.extf %yb : tensor<?x64xbf16> to tensor<?x64xf32>
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect",
                           "::mlir::arith::ArithDialect"];
}

def MoELowerCopies : Pass<"moe-lower-copies"> {
  let summary = "Rewrite memref.copy into linalg.copy";
  let description = [{
    Bufferization copies into strided subviews (an expert's rows written back
    into the grouped result) with `memref.copy`, which the LLVM lowering
    turns into a call to the `memrefCopy` function of MLIR's runner
    libraries whenever it cannot prove the copy contiguous. Rewriting every
    copy as `linalg.copy` lets it become plain loops, so compiled modules
    need no runtime library for copies.

    ```mlir
    memref.copy %a, %b : memref<?x256xf32> to memref<?x256xf32, strided<[256, 1], offset: ?>>
    // becomes
    linalg.copy ins(%a : memref<?x256xf32>) outs(%b : memref<?x256xf32, strided<[256, 1], offset: ?>>)
    ```
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def MoECheckLowered : Pass<"moe-check-lowered", "::mlir::ModuleOp"> {
  let summary = "Fail on the first op outside the dialects a stage may leave";
  let description = [{
    The last step of every moe pipeline, as a backend contract: it walks
    the module and reports, at its location, the first op whose dialect is
    not in `dialects`, so that a lowering gap surfaces as a located error
    here instead of an obscure failure in translation or at load time.

    ```
    error: 'scf.for' is left after moe-cpu-pipeline: expected only ops of
    the dialects builtin, llvm
    ```
  }];
  let options = [
    ListOption<"dialects", "dialects", "std::string",
               "dialects whose ops may remain (default: builtin, llvm)">,
    Option<"stage", "stage", "std::string", /*default=*/"\"lowering\"",
           "name of the stage, for the message">,
  ];
}

#endif // MOE_TRANSFORMS_PASSES_TD
