//===- MoEOps.td - moe dialect operations -------------------*- tablegen -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEOPS_TD
#define MOE_IR_MOEOPS_TD

include "moe/IR/MoEBase.td"
include "moe/IR/MoEAttrs.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

//===----------------------------------------------------------------------===//
// Type constraints
//===----------------------------------------------------------------------===//

defvar MoE_ActTypes = [F32, F16, BF16];
def MoE_Activations : TensorRankOf<MoE_ActTypes, [2]>;
def MoE_Matrix : TensorRankOf<MoE_ActTypes, [2]>;
def MoE_Vector : TensorRankOf<MoE_ActTypes, [1]>;
def MoE_ExpertWeights : TensorRankOf<MoE_ActTypes, [3]>;
def MoE_Logits : TensorRankOf<[F32], [2]>;
def MoE_F32Vector : TensorRankOf<[F32], [1]>;
def MoE_Slots : TensorRankOf<[I32], [2]>;
def MoE_SlotWeights : TensorRankOf<[F32], [2]>;
def MoE_RowIndex : TensorRankOf<[I32], [1]>;
def MoE_RowWeights : TensorRankOf<[F32], [1]>;
def MoE_Counts : TensorRankOf<[I64], [1]>;
def MoE_Scalar : TensorRankOf<[F32], [0]>;
def MoE_ActTensor : RankedTensorOf<MoE_ActTypes>;

// Ops whose result types follow from their operands and attributes.
class MoE_InferredOp<string mnemonic, list<Trait> traits = []>
    : MoE_Op<mnemonic, !listconcat([Pure, InferTypeOpAdaptor], traits)> {
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Whole layer
//===----------------------------------------------------------------------===//

// The layer keeps its configuration in the attribute dictionary, where the
// parser has not yet moved it into properties when it infers result types;
// hence the raw inference signature.
def MoE_LayerOp : MoE_Op<"layer", [Pure, AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<InferTypeOpInterface>]> {
  let summary = "a whole sparse MoE block, as a front end emits it";
  let description = [{
    Computes a complete MoE block on `input` (`[T, d]`): router logits from
    `router` (`Wg: [E, d]` and an optional bias `[E]`), scores and selection
    per `routing`, optional `capacity` dropping, the routed experts per
    `experts`, optional shared experts, and the combine. Results: the block
    output `[T, d_out]` (element type of `input`), the per-expert assignment
    counts before dropping and the per-expert dropped counts (`[E]`, i64).

    Operands:
    - `bias(...)`: the selection bias `[E]` (DeepSeek-V3
      `e_score_correction_bias`); selection uses `s + b`, weights use `s`.
    - `tau(...)`: a run-time threshold (f32) for `selection = threshold`,
      instead of the `tau` parameter.
    - `capacity_factor(...)`: a run-time capacity factor (f64) instead of
      the `factor` of `capacity` (token-choice routing; `moe-expose-knobs`
      feeds it from a run-time knob).
    - `experts(...)`, by `experts.kind`:
      - `gated`: `gate [E, f, d], up [E, f, d], down [E, d, f]`, or the fused
        `gate_up [E, 2f, d]` (gate rows first) and `down [E, d, f]`;
      - `mlp`: `w1 [E, f, d], w2 [E, d, f]`;
      - `lora`: `base [d_out, d], A [E, r, d], B [E, d_out, r]`;
      - `lora_gated`: `gate [f, d], up [f, d], down [d, f]` (the frozen base)
        then the LoRA pairs `A_gate [E, r, d], B_gate [E, f, r],
        A_up [E, r, d], B_up [E, f, r], A_down [E, r, f], B_down [E, d, r]`.
    - `expert_biases(...)`, gated experts only: a bias `[E, n]` for each
      expert weight `[E, n, k]`, in the same order (`gate, up, down` or
      `gate_up, down`): expert e computes
      `down_e (act(gate_e x + b_gate_e, up_e x + b_up_e)) + b_down_e`
      (GPT-OSS), and the combine weight multiplies all of it.
    - `shared(...)`: a shared gated FFN `gate [fs, d], up [fs, d],
      down [d, fs]`, optionally followed by its sigmoid gate `[1, d]`; or
      the fused `gate_up [2*fs, d]` (gate rows first) and `down [d, fs]`
      (Granite's `shared_mlp.input_linear`), without a sigmoid gate.

    `family`, when present, names the preset of spec section 9 that the
    attribute set follows; the verifier checks that it does.

    Example (Mixtral):

    ```mlir
    %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x1024xf32>)
        experts(%w1, %w3, %w2 : tensor<8x2816x1024xf32>,
                tensor<8x2816x1024xf32>, tensor<8x1024x2816xf32>)
        {family = #moe.family<mixtral>,
         routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                                renormalize = true>,
         experts = #moe.experts<kind = gated, act = silu>}
        : tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins
    MoE_Activations:$input,
    Variadic<MoE_ActTensor>:$router_weights,
    Optional<MoE_F32Vector>:$selection_bias,
    Optional<F32>:$tau,
    Optional<F64>:$capacity_factor,
    Variadic<MoE_ActTensor>:$expert_weights,
    Variadic<MoE_Matrix>:$expert_biases,
    Variadic<MoE_ActTensor>:$shared_weights,
    MoE_RoutingAttr:$routing,
    OptionalAttr<MoE_CapacityAttr>:$capacity,
    MoE_ExpertsAttr:$experts,
    OptionalAttr<MoE_FamilyAttr>:$family
  );
  let results = (outs
    MoE_Activations:$output,
    MoE_Counts:$assignments,
    MoE_Counts:$dropped
  );
  let assemblyFormat = [{
    $input `router` `(` $router_weights `:` type($router_weights) `)`
    (`bias` `(` $selection_bias^ `:` type($selection_bias) `)`)?
    (`tau` `(` $tau^ `)`)?
    (`capacity_factor` `(` $capacity_factor^ `)`)?
    `experts` `(` $expert_weights `:` type($expert_weights) `)`
    (`expert_biases` `(` $expert_biases^ `:` type($expert_biases) `)`)?
    (`shared` `(` $shared_weights^ `:` type($shared_weights) `)`)?
    attr-dict `:` type($input)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Number of routed experts, from the router weight.
    int64_t getNumExperts();
    /// The router weight `[E, d]` and its optional bias `[E]`.
    ::mlir::Value getRouterWeight() { return getRouterWeights().front(); }
    ::mlir::Value getRouterBias() {
      return getRouterWeights().size() > 1 ? getRouterWeights()[1]
                                           : ::mlir::Value();
    }
    /// The shared expert's down projection `[d, fs]`, or null without one.
    ::mlir::Value getSharedDown() {
      ::mlir::ValueRange shared = getSharedWeights();
      if (shared.empty())
        return {};
      return shared.size() == 2 ? shared[1] : shared[2];
    }
  }];
}

//===----------------------------------------------------------------------===//
// Weights from a checkpoint
//===----------------------------------------------------------------------===//

def MoE_WeightOp : MoE_Op<"weight", [Pure]> {
  let summary = "a weight tensor bound from the model's checkpoint at load time";
  let description = [{
    A constant tensor whose values live in the checkpoint named by the
    module's `moe.checkpoint` attribute, not in the IR. `names` are tensor
    names of that checkpoint. Without `stacked`, `names` holds one tensor of
    exactly the result's shape and element type; with `stacked`, `names`
    holds `result.dim(0)` tensors of the result's shape without its first
    dimension, stacked in order (per-expert tensors into `[E, ...]`).

    The runtime binds the tensors when the compiled module is loaded: a
    tensor used as is points into the memory-mapped file; stacked tensors
    are packed once. A missing tensor, a wrong shape or a wrong dtype is a
    load-time error naming the tensor.

    With `packing`, the names describe tensors of type `packing.source` and
    the result is their packed form for the CPU kernels (see
    `#moe.packing`), produced once at load time.

    With `device`, the result lives in GPU memory: the runtime copies the
    bound tensor to the device once, at its first use, and keeps it there
    until the model is unloaded. Only GPU code may read it
    (`convert-moe-to-gpu-kernels` asks for it; `packing` and `device` are
    exclusive).

    With `stored`, the checkpoint tensors hold that element type (f32, f16
    or bf16) instead of the result's (with `packing`, instead of
    `packing.source`'s): the runtime converts them once, at load time,
    rounding to nearest even, and refuses to load a tensor with a finite
    value that the conversion would turn into an infinity. `moe-import
    --dtype` writes it to run, say, an f32 checkpoint in bf16.

    With `stored = f8E4M3FN`, the checkpoint tensors are block-scaled FP8
    weights (DeepSeek-V3's format, `quant_method = "fp8"` in Hugging Face
    configs): `scales` names one scale tensor per tensor of `names`, and
    `scale_block = array<i64: r, c>` is the block size. A piece
    `[..., n, k]` has scales `[..., ceil(n / r), ceil(k / c)]` (f32, f16
    or bf16; a single scale of a matrix, as in FP8 scaled per tensor, may
    also be `[]` or `[1]`), and element `(i, j)` is the FP8 value times
    the f32 scale of its block `(i / r, j / c)`, multiplied in f32 and
    rounded to the result's element type once, at load time: the weights
    of the checkpoint dequantized as its publishers do to make a bf16
    copy. A scale that is not finite, a NaN weight, or a product out of
    the result type's range is a load-time error. The blocks and scales
    of a `transposed` tensor are those of the tensor as stored: a stored
    piece `[..., k, n]` has scales `[..., ceil(k / r), ceil(n / c)]`, and
    result element `(i, j)` is stored element `(j, i)` times the scale of
    its block `(j / r, i / c)`. Scales with one block row or one block
    column (one a channel, as in Llama-4's FP8 release) may also be stored
    with their last two dimensions swapped, `[..., m, 1]` for `[..., 1,
    m]`: the same values in the same order.

    With `stored = f4E2M1FN`, the checkpoint tensors are MXFP4 (the OCP
    microscaling format, GPT-OSS's release): each holds a piece `[..., n,
    k]` (k even) as bytes, two E2M1 codes a byte with the lower-indexed
    element in the low nibble, shaped `[..., n, k / 2]` or, as GPT-OSS
    stores them, `[..., n, k / 32, 16]`; `scales` names its E8M0 scales
    `[..., n, ceil(k / 32)]` (bytes s, the scale 2^(s - 127)), and
    `scale_block` must be `array<i64: 1, 32>`. Element `(i, j)` is its
    E2M1 value times the scale of `(i, j / 32)`, exact in f32 and rounded
    to the result's element type once, at load time. A scale of 255 (E8M0's
    NaN), or a product out of the result type's range, is a load-time
    error. MXFP4 tensors are not `transposed`.

    With `stored = f4E2M1FN` and `global_scales`, the checkpoint tensors are
    NVFP4 (NVIDIA's 4-bit format, as Model Optimizer exports it): the codes
    as MXFP4's, shaped `[..., n, k / 2]`; `scales` names their F8_E4M3
    scales `[..., n, ceil(k / 16)]`, `scale_block` must be `array<i64: 1,
    16>`, and `global_scales` names one more scale per tensor, a scalar
    (`[]` or `[1]`, f32, f16 or bf16) that multiplies all of its block
    scales (`weight_scale_2`). Element `(i, j)` is its E2M1 value times the
    E4M3 scale of `(i, j / 16)` (exact in f32), times the global scale,
    rounded once to f32 and once more to the result's element type, at
    load time. A NaN block scale, a global scale that is not finite, or a
    product out of the result type's range is a load-time error. With
    `global_scales_inverse` as well, each global scale divides the block
    scales instead (llm-compressor's `weight_global_scale`, the inverse of
    Model Optimizer's `weight_scale_2`): element `(i, j)` is the exact
    product divided by the global scale, rounded once to f32, and a global
    scale of zero is a load-time error too.

    With `stored = i4` or `stored = i8`, the checkpoint tensors are integer
    weights as compressed-tensors' `pack-quantized` format stores them
    (llm-compressor's W4A16 and W8A16 releases): each holds a piece `[...,
    n, k]` as I32 words `[..., n, ceil(k / w)]` of w = 8 (i4) or 4 (i8)
    codes, the lowest-indexed element in the lowest bits, each code the
    signed value plus 8 (i4) or 128 (i8); `scales` names their scales
    `[..., n, ceil(k / g)]` (f32, f16 or bf16) and `scale_block` must be
    `array<i64: 1, g>`: one scale a group of g elements of a row (g = k
    for one scale a row). Element `(i, j)` is its signed value times the
    scale of `(i, j / g)`, multiplied in f32 and rounded to the result's
    element type once, at load time. A scale that is not finite, or a
    product out of the result type's range, is a load-time error.

    With `transposed` as well, the integers are laid out as GPTQ stores
    them: words `[..., ceil(k / w), n]`, each holding w consecutive
    elements of a column of the stored tensor (elements `(i, j)` to `(i, j
    + w - 1)` of the result), and scales `[..., ceil(k / g), n]` with
    `scale_block = array<i64: g, 1>`, the blocks of the tensor as stored
    (as for FP8). `zero_points` names one more I32 tensor per tensor, the
    zero point of each scale packed along n as the codes are along k:
    `[..., ceil(n / w), ceil(k / g)]` (llm-compressor's asymmetric
    weights), or `[..., ceil(k / g), ceil(n / w)]` when `transposed`.
    Element `(i, j)` is then its code minus the
    zero point of its group (plus `zero_point_offset`, 1 for GPTQ's
    original format, which stores each zero point minus one), times the
    scale; without `zero_points`, the zero point is 2^(bits - 1).
    `group_indices` names one I32 tensor `[..., k]` per tensor: the group
    of each column (GPTQ's `g_idx`, compressed-tensors' `weight_g_idx`),
    each in `[0, ceil(k / g))` (a load-time error otherwise), instead of
    `j / g`.

    With `pack_outputs` (and `transposed`), the words hold w consecutive
    outputs instead, as AWQ stores them: words `[..., k, ceil(n / w)]`,
    element `(i, j)` in word `(j, i / w)`. `pack_order = array<i64: ...>`
    (w entries, a permutation) says which element of its run each field of
    a word holds, the lowest bits first: field p holds element
    `pack_order[p]` (AWQ's `array<i64: 0, 2, 4, 6, 1, 3, 5, 7>`); the zero
    points are packed in the same order. Without it, field p holds element
    p.

    With `stored = si8`, the checkpoint tensors are I8, one element a byte
    holding its signed value (compressed-tensors' `int-quantized` and
    `naive-quantized` formats of integers, llm-compressor's W8A8 weights),
    with `scales` and `scale_block = array<i64: 1, g>` as for `i8`:
    element `(i, j)` is its value times the scale of `(i, j / g)` (or of
    its `group_indices` group), multiplied in f32 and rounded once to the
    result's element type. Such tensors take no `zero_points`,
    `pack_outputs`, `pack_order` or `transposed`.

    With `bitsandbytes`, each checkpoint tensor is a 4-bit tensor of
    bitsandbytes as transformers saves a model loaded in 4 bits (NF4 or
    FP4, `quant_method = "bitsandbytes"`): a piece of N elements in C order
    is stored as `<name>`, U8 `[ceil(N / 2), 1]`, two codes a byte with the
    lower-indexed element in the high nibble, and beside it
    `<name>.quant_map` (F32 `[16]`, the value of each code),
    `<name>.absmax` (the scale of each block of `blocksize` consecutive
    elements) and `<name>.quant_state.bitsandbytes__nf4` (or `__fp4`), the
    JSON state that gives the block size, the shape and, with double
    quantization, `nested_blocksize` and `nested_offset`: `absmax` is then
    U8 codes of `<name>.nested_quant_map` (F32 `[256]`), each times
    `<name>.nested_absmax` (F32, one a block of `nested_blocksize` scales)
    plus the offset, each operation rounded to f32. Element i is
    `quant_map[code]` times the scale of its block, multiplied in f32 and
    rounded to the result's element type once, at load time (as
    bitsandbytes dequantizes it). The library's own conventions name the
    tensors beside `<name>`, so the op names only the codes. A state that
    disagrees with its tensors, a scale that is not finite, or a product
    out of the result type's range is a load-time error. `bitsandbytes`
    takes none of the attributes above but `stacked`, `packing` and
    `device`.

    With `transposed`, each checkpoint tensor holds its part of the result
    with the last two dimensions swapped: a result piece `[..., n, k]` is
    stored `[..., k, n]`, as in checkpoints that keep a projection as
    `[in, out]` (Llama-4's fused experts, `[E, d, 2f]` for `[E, 2f, d]`).
    The runtime transposes the tensors once, at load time (with `stored`'s
    conversion, if any), so every path computes with the same weights.

    With `interleaved`, the one (not `stacked`) tensor holds dimension 1 of
    the result (of even size 2m) interleaved: result index `i < m` is stored
    at `2 i`, and `m + i` at `2 i + 1`, as GPT-OSS stores its fused gate and
    up projections and their biases (gate, up, gate, up, ...). The runtime
    puts the halves apart once, at load time, after `stored`'s conversion
    and `transposed`'s swap, so that the result holds the gate rows first.

    ```mlir
    %wg = moe.weight "model.layers.0.block_sparse_moe.gate.weight"
        : tensor<8x4096xbf16>
    %w1 = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w1.weight",
                              ...] : tensor<8x14336x4096xbf16>
    %w2 = moe.weight "model.layers.0.block_sparse_moe.experts.0.w2.weight"
        {stored = f32} : tensor<4096x14336xbf16>
    %gu = moe.weight "language_model.model.layers.0.feed_forward.experts.gate_up_proj"
        {transposed} : tensor<16x16384x5120xbf16>
    %w3 = moe.weight "model.layers.3.mlp.experts.0.up_proj.weight"
        {scale_block = array<i64: 128, 128>,
         scales = ["model.layers.3.mlp.experts.0.up_proj.weight_scale_inv"],
         stored = f8E4M3FN} : tensor<2048x7168xbf16>
    %w13 = moe.weight "model.layers.0.mlp.experts.gate_up_proj_blocks"
        {interleaved, scale_block = array<i64: 1, 32>,
         scales = ["model.layers.0.mlp.experts.gate_up_proj_scales"],
         stored = f4E2M1FN} : tensor<32x5760x2880xbf16>
    %w2 = moe.weight "model.layers.1.mlp.experts.3.down_proj.weight_packed"
        {scale_block = array<i64: 1, 128>,
         scales = ["model.layers.1.mlp.experts.3.down_proj.weight_scale"],
         stored = i4} : tensor<2048x768xbf16>
    %w1 = moe.weight "model.layers.0.mlp.experts.5.gate_proj.qweight"
        {group_indices = ["model.layers.0.mlp.experts.5.gate_proj.g_idx"],
         scale_block = array<i64: 128, 1>,
         scales = ["model.layers.0.mlp.experts.5.gate_proj.scales"],
         stored = i4, transposed, zero_point_offset = 1 : i64,
         zero_points = ["model.layers.0.mlp.experts.5.gate_proj.qzeros"]}
        : tensor<768x2048xbf16>
    %w3 = moe.weight "model.layers.0.block_sparse_moe.experts.1.w3.weight"
        {bitsandbytes} : tensor<14336x4096xbf16>
    ```
  }];
  let arguments = (ins StrArrayAttr:$names, UnitAttr:$stacked,
                       OptionalAttr<MoE_PackingAttr>:$packing,
                       UnitAttr:$device,
                       OptionalAttr<TypeAttr>:$stored,
                       UnitAttr:$transposed,
                       UnitAttr:$interleaved,
                       OptionalAttr<StrArrayAttr>:$scales,
                       OptionalAttr<DenseI64ArrayAttr>:$scale_block,
                       OptionalAttr<StrArrayAttr>:$global_scales,
                       UnitAttr:$global_scales_inverse,
                       OptionalAttr<StrArrayAttr>:$zero_points,
                       OptionalAttr<I64Attr>:$zero_point_offset,
                       OptionalAttr<StrArrayAttr>:$group_indices,
                       UnitAttr:$pack_outputs,
                       OptionalAttr<DenseI64ArrayAttr>:$pack_order,
                       UnitAttr:$bitsandbytes);
  let results = (outs RankedTensorOf<MoE_ActTypes>:$result);
  let hasCustomAssemblyFormat = 1;
  let hasVerifier = 1;
  let builders = [
    OpBuilder<(ins "::mlir::RankedTensorType":$type, "::llvm::StringRef":$name,
                   CArg<"::mlir::Type", "{}">:$stored)>,
    OpBuilder<(ins "::mlir::RankedTensorType":$type,
                   "::llvm::ArrayRef<std::string>":$names,
                   CArg<"::mlir::Type", "{}">:$stored)>
  ];
  let extraClassDeclaration = [{
    /// The name of the module attribute holding the checkpoint location.
    static ::llvm::StringRef getCheckpointAttrName() { return "moe.checkpoint"; }

    /// A copy of this weight, created by `builder`, whose result has element
    /// type `element`: the same tensors, converted by the runtime at load
    /// time. `stored` says what the checkpoint holds (this result's element
    /// type where it had none; dropped where that is `element`); quantized
    /// tensors (FP8, FP4, integers, bitsandbytes') are dequantized to any
    /// element type directly and keep how they are read.
    WeightOp cloneWithElementType(::mlir::OpBuilder &builder,
                                  ::mlir::Type element);

  private:
    ::llvm::LogicalResult verifyBlockScales(int64_t pieceRank);
  }];
}

def MoE_WeightBufferOp : MoE_Op<"weight_buffer", [Pure]> {
  let summary = "the runtime's buffer of a bound weight";
  let description = [{
    The buffer that the runtime bound to weight `id` of the module's
    `moe.weights` table (see `convert-moe-to-runtime`). It is not an
    allocation: bufferization and deallocation see a buffer the function
    does not own. `convert-moe-weight-buffers` turns it into the runtime
    call once buffer deallocation has run. With `device`, the buffer is the
    weight's copy in GPU memory.

    ```mlir
    %w = moe.weight_buffer 3 : memref<8x64xbf16>
    %d = moe.weight_buffer 3 {device} : memref<8x64xbf16>
    ```
  }];
  let arguments = (ins I64Attr:$id, UnitAttr:$device);
  let results = (outs MemRefOf<MoE_ActTypes>:$buffer);
  let assemblyFormat = "$id attr-dict `:` type($buffer)";
  let hasVerifier = 1;
}

def MoE_KnobBufferOp : MoE_Op<"knob_buffer", [Pure]> {
  let summary = "the runtime's copy in GPU memory of a knob";
  let description = [{
    The buffer in GPU memory that holds knob `id` of the module's
    `moe.knobs` table as an f64 (see `convert-moe-to-runtime`), rewritten
    by the runtime whenever the knob changes. Like `moe.weight_buffer`, it
    is not an allocation; `convert-moe-weight-buffers` turns it into the
    runtime call once buffer deallocation has run.

    ```mlir
    %tau = moe.knob_buffer 0 : memref<1xf64>
    ```
  }];
  let arguments = (ins I64Attr:$id);
  let results = (outs MemRefOf<[F64]>:$buffer);
  let assemblyFormat = "$id attr-dict `:` type($buffer)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Routing
//===----------------------------------------------------------------------===//

def MoE_RouterOp : MoE_InferredOp<"router"> {
  let summary = "router logits";
  let description = [{
    `logits[t, e] = sum_i input[t, i] * weight[e, i] (+ bias[e])`, accumulated
    and returned in f32 whatever the input type. `input: [T, d]`,
    `weight: [E, d]`, `bias: [E]`; result `[T, E]` f32.

    ```mlir
    %z = moe.router %x, %wg : tensor<?x1024xbf16>, tensor<8x1024xbf16>
    ```
  }];
  let arguments = (ins MoE_Activations:$input, MoE_Matrix:$weight,
                       Optional<MoE_Vector>:$bias);
  let results = (outs MoE_Logits:$logits);
  let assemblyFormat = [{
    $input `,` $weight (`bias` `(` $bias^ `:` type($bias) `)`)? attr-dict
    `:` type($input) `,` type($weight)
  }];
}

def MoE_RouteOp : MoE_InferredOp<"route", [AttrSizedOperandSegments]> {
  let summary = "score, select experts per token and compute their weights";
  let description = [{
    Applies the score function of `routing` to `logits` (`[T, E]` f32),
    selects up to `k` experts per token (`top_k`, `grouped_top_k`, `top_p`,
    `threshold`) and computes the combine weights (spec sections 1 to 3).
    Results: `expert_ids [T, k]` (i32, slot order, -1 for an unused slot) and
    `weights [T, k]` (f32, 0 for an unused slot).

    `bias(...)` is the selection bias `[E]`; `tau(...)` supplies the
    threshold of `selection = threshold` at run time. `selection =
    expert_choice` has its own op, `moe.expert_choice`.

    ```mlir
    %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2,
                             renormalize = true> : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_Logits:$logits,
                       Optional<MoE_F32Vector>:$selection_bias,
                       Optional<F32>:$tau,
                       MoE_RoutingAttr:$routing);
  let results = (outs MoE_Slots:$expert_ids, MoE_SlotWeights:$weights);
  let assemblyFormat = [{
    $logits (`bias` `(` $selection_bias^ `:` type($selection_bias) `)`)?
    (`tau` `(` $tau^ `)`)? $routing attr-dict `:` type($logits)
  }];
}

def MoE_ExpertChoiceOp : MoE_InferredOp<"expert_choice"> {
  let summary = "expert-choice routing: each expert picks its tokens";
  let description = [{
    Softmax scores of `logits` (`[T, E]`); each expert takes the `C` tokens
    with the largest score (ties to the lower token index), where `C` comes
    from `capacity` (`count`, or `ceil(factor * T * k / E)`, then `min` and
    `align`) and is `ceil(T * k / E)` without it: `k` is the average number
    of experts per token. When `C > T` the slots past `T` hold token -1 and
    weight 0. Results:
    - `token_ids [E, C]` (i32) and `token_weights [E, C]` (f32): the
      per-expert view, in descending score order;
    - `expert_ids [T, E]` and `weights [T, E]`: the same choice in per-token
      slot form (slot `e` holds `e` when expert `e` chose the token, else -1
      and weight 0), which `moe.dispatch` and `moe.combine` consume; a
      token's slots are summed in expert order.

    ```mlir
    %tok, %tw, %ids, %w = moe.expert_choice %z k = 2 : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_Logits:$logits, I64Attr:$k,
                       OptionalAttr<MoE_CapacityAttr>:$capacity);
  let results = (outs MoE_Slots:$token_ids, MoE_SlotWeights:$token_weights,
                      MoE_Slots:$expert_ids, MoE_SlotWeights:$weights);
  let assemblyFormat = [{
    $logits `k` `=` $k (`capacity` $capacity^)? attr-dict `:` type($logits)
  }];
}

//===----------------------------------------------------------------------===//
// Dispatch and combine
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_InferredOp<"dispatch"> {
  let summary = "group routed assignments by expert, with optional capacity";
  let description = [{
    Builds the expert-grouped layout of the assignments `expert_ids [T, S]`
    (-1 marks an unused slot) with weights `weights [T, S]`. Without
    `capacity` every assignment is kept (dropless). With it, each expert
    keeps at most `C` assignments, chosen by `drop_order`; the others are
    dropped and counted.

    The grouped layout has `N = T * S` rows: expert `e` owns rows
    `[group_offsets[e], group_offsets[e] + group_sizes[e])`, holding its kept
    assignments in token order; rows past the last group are padding
    (token -1, weight 0). `layout` (`#moe.layout`) can instead align each
    group to a block of rows or give every expert `C` rows; padding rows
    then also end groups. `capacity_factor` (f64), when given, replaces the
    `factor` of `capacity` at run time. Results:
    - `row_token [N]` (i32): the token of each row;
    - `row_weight [N]` (f32): the combine weight of each row;
    - `slot_row [T, S]` (i32): the row of each slot, -1 when unused or dropped;
    - `slot_weight [T, S]` (f32): the combine weight of each slot, 0 when
      unused or dropped, renormalized over the surviving slots when
      `renormalize_after_drop` is set;
    - `group_sizes`, `group_offsets`, `dropped` (`[E]`, i64).

    ```mlir
    %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
        moe.dispatch %ids, %w experts = 8
            capacity <factor = 1.25, drop_order = token_major>
        : tensor<?x2xi32>, tensor<?x2xf32>
    %r:7 = moe.dispatch %ids, %w experts = 8
        layout <kind = aligned, block = 16> : tensor<?x2xi32>, tensor<?x2xf32>
    ```
  }];
  let arguments = (ins MoE_Slots:$expert_ids, MoE_SlotWeights:$weights,
                       Optional<F64>:$capacity_factor,
                       I64Attr:$num_experts,
                       OptionalAttr<MoE_CapacityAttr>:$capacity,
                       OptionalAttr<MoE_LayoutAttr>:$layout);
  let results = (outs MoE_RowIndex:$row_token, MoE_RowWeights:$row_weight,
                      MoE_Slots:$slot_row, MoE_SlotWeights:$slot_weight,
                      MoE_Counts:$group_sizes, MoE_Counts:$group_offsets,
                      MoE_Counts:$dropped);
  let extraClassDeclaration = [{
    /// The layout kind, `ragged` unless given.
    ::mlir::moe::GroupLayout getLayoutKind() {
      return getLayoutAttr() ? getLayoutAttr().getKind()
                             : ::mlir::moe::GroupLayout::Ragged;
    }
    /// Rows of the grouped layout for `numTokens` tokens of `numSlots`
    /// slots (ShapedType::kDynamic when not static).
    static int64_t numRows(int64_t numTokens, int64_t numSlots,
                           int64_t numExperts, ::mlir::moe::CapacityAttr
                           capacity, ::mlir::moe::LayoutAttr layout);
  }];
  let assemblyFormat = [{
    $expert_ids `,` $weights `experts` `=` $num_experts
    (`capacity` $capacity^)?
    (`capacity_factor` `(` $capacity_factor^ `)`)?
    (`layout` $layout^)? attr-dict `:`
    type($expert_ids) `,` type($weights)
  }];
}

def MoE_GatherOp : MoE_InferredOp<"gather"> {
  let summary = "copy the routed rows into the expert-grouped layout";
  let description = [{
    `result[r] = input[row_token[r]] (* row_weight[r])`, and zero for padding
    rows (`row_token[r] < 0`). `input: [T, d]`, `row_token: [N]`; result
    `[N, d]` of the input's element type. `scale(...)` multiplies each row by
    its weight (`apply_weight = input`).

    ```mlir
    %xg = moe.gather %x, %rt : tensor<?x1024xf32>, tensor<?xi32>
    ```
  }];
  let arguments = (ins MoE_Activations:$input, MoE_RowIndex:$row_token,
                       Optional<MoE_RowWeights>:$row_weight);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $input `,` $row_token (`scale` `(` $row_weight^ `:` type($row_weight) `)`)?
    attr-dict `:` type($input) `,` type($row_token)
  }];
}

def MoE_CombineOp : MoE_InferredOp<"combine", [AttrSizedOperandSegments]> {
  let summary = "weighted sum of each token's expert outputs, in slot order";
  let description = [{
    `result[t] = sum over slots j with slot_row[t, j] >= 0, in slot order, of
    slot_weight[t, j] * rows[slot_row[t, j]]`, then `+ addend[t]`,
    accumulated in f32 (spec section 6). `rows: [N, d]`,
    `slot_row: [T, S]`; result `[T, d]` of the rows' element type. Without
    `weights(...)` each slot has weight 1 (`apply_weight = input`).
    `addend(...)` adds an always-on term such as the shared experts or a
    LoRA base projection.

    ```mlir
    %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
        : tensor<?x1024xf32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins MoE_Activations:$rows, MoE_Slots:$slot_row,
                       Optional<MoE_SlotWeights>:$slot_weight,
                       Optional<MoE_Activations>:$addend);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $rows `,` $slot_row
    (`weights` `(` $slot_weight^ `:` type($slot_weight) `)`)?
    (`addend` `(` $addend^ `:` type($addend) `)`)?
    attr-dict `:` type($rows) `,` type($slot_row)
  }];
}

//===----------------------------------------------------------------------===//
// Expert computation on grouped rows
//===----------------------------------------------------------------------===//

def MoE_GroupedMatmulOp : MoE_InferredOp<"grouped_matmul"> {
  let summary = "matmul over ragged row groups (StableHLO ragged_dot mode 1)";
  let description = [{
    `lhs: [N, K]` is split into consecutive row groups of `group_sizes: [E]`;
    group `e` multiplies `rhs[e]`: `[K, M]`, or `[M, K]` with
    `transpose_rhs` (the checkpoint `[out, in]` convention). Rows past the
    sum of the group sizes are zero. Accumulates in f32; result `[N, M]` of
    the lhs element type.

    ```mlir
    %h = moe.grouped_matmul %xg, %w1, %sizes transpose_rhs
        : tensor<?x1024xf32>, tensor<8x2816x1024xf32>, tensor<8xi64>
    ```
  }];
  let arguments = (ins MoE_Activations:$lhs, MoE_ExpertWeights:$rhs,
                       MoE_Counts:$group_sizes, UnitAttr:$transpose_rhs);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $lhs `,` $rhs `,` $group_sizes (`transpose_rhs` $transpose_rhs^)?
    attr-dict `:` type($lhs) `,` type($rhs) `,` type($group_sizes)
  }];
}

def MoE_GatedExpertsOp
    : MoE_InferredOp<"gated_experts", [AttrSizedOperandSegments]> {
  let summary = "gated (SwiGLU family) expert FFNs on grouped rows";
  let description = [{
    For the rows of group `e`:
    `down[e] * (act(gate[e] * x) (.) (up[e] * x))`, accumulated in f32.
    Weights are `gate, up: [E, f, d]` and `down: [E, d, f]`, or the fused
    `gate_up: [E, 2f, d]` (gate rows first). `rows: [N, d]`,
    `group_sizes: [E]`; rows past the groups are zero. Result `[N, d]`.
    `biases(...)`, when present, gives a bias `[E, n]` for each weight
    `[E, n, k]` in the same order, added to that projection's output
    (GPT-OSS); `act = swiglu_oai` is GPT-OSS's clamped SwiGLU of gate and
    up.

    ```mlir
    %yg = moe.gated_experts %xg, %sizes gate(%w1 : tensor<8x2816x1024xf32>)
        up(%w3 : tensor<8x2816x1024xf32>) down(%w2 : tensor<8x1024x2816xf32>)
        act = silu : tensor<?x1024xf32>, tensor<8xi64>
    ```
  }];
  let arguments = (ins MoE_Activations:$rows, MoE_Counts:$group_sizes,
                       Optional<MoE_ExpertWeights>:$gate,
                       Optional<MoE_ExpertWeights>:$up,
                       Optional<MoE_ExpertWeights>:$gate_up,
                       MoE_ExpertWeights:$down,
                       Variadic<MoE_Matrix>:$biases,
                       MoE_ActivationAttr:$act);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $rows `,` $group_sizes
    (`gate` `(` $gate^ `:` type($gate) `)`)?
    (`up` `(` $up^ `:` type($up) `)`)?
    (`gate_up` `(` $gate_up^ `:` type($gate_up) `)`)?
    `down` `(` $down `:` type($down) `)`
    (`biases` `(` $biases^ `:` type($biases) `)`)?
    `act` `=` custom<EnumKeyword>($act) attr-dict `:` type($rows) `,` type($group_sizes)
  }];
  let extraClassDeclaration = [{
    /// Inner size f of the experts.
    int64_t getInnerSize();
  }];
}

def MoE_MlpExpertsOp : MoE_InferredOp<"mlp_experts"> {
  let summary = "two-layer MLP experts on grouped rows";
  let description = [{
    For the rows of group `e`: `w2[e] * act(w1[e] * x)` (Switch: relu, no
    bias), accumulated in f32. `w1: [E, f, d]`, `w2: [E, d, f]`,
    `rows: [N, d]`; result `[N, d]`.

    ```mlir
    %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
        : tensor<?x512xf32>, tensor<8xi64>, tensor<8x2048x512xf32>,
          tensor<8x512x2048xf32>
    ```
  }];
  let arguments = (ins MoE_Activations:$rows, MoE_Counts:$group_sizes,
                       MoE_ExpertWeights:$w1, MoE_ExpertWeights:$w2,
                       MoE_ActivationAttr:$act);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $rows `,` $group_sizes `,` $w1 `,` $w2 `act` `=` custom<EnumKeyword>($act) attr-dict
    `:` type($rows) `,` type($group_sizes) `,` type($w1) `,` type($w2)
  }];
}

def MoE_LoraExpertsOp : MoE_InferredOp<"lora_experts"> {
  let summary = "per-expert low-rank deltas on grouped rows";
  let description = [{
    For the rows of group `e`: `(alpha / r) * B[e] * (A[e] * x)`, with
    `A: [E, r, d_in]`, `B: [E, d_out, r]`, `rows: [N, d_in]`; result
    `[N, d_out]`. The frozen base projection applies to every token
    separately (`moe.linear`); `moe.combine` adds it.

    ```mlir
    %dg = moe.lora_experts %xg, %sizes, %a, %b alpha = 16.0
        : tensor<?x512xf32>, tensor<8xi64>, tensor<8x8x512xf32>,
          tensor<8x512x8xf32>
    ```
  }];
  let arguments = (ins MoE_Activations:$rows, MoE_Counts:$group_sizes,
                       MoE_ExpertWeights:$lora_a, MoE_ExpertWeights:$lora_b,
                       F64Attr:$alpha);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $rows `,` $group_sizes `,` $lora_a `,` $lora_b `alpha` `=` $alpha
    attr-dict `:` type($rows) `,` type($group_sizes) `,` type($lora_a) `,`
    type($lora_b)
  }];
}

def MoE_LoraGatedExpertsOp : MoE_InferredOp<"lora_gated_experts"> {
  let summary = "a frozen gated FFN with per-expert LoRA pairs (MixLoRA)";
  let description = [{
    Expert `e` is the base gated FFN whose projections each add their own
    low-rank delta: with `P_e(x) = P x + (alpha / r) B_P[e] (A_P[e] x)` for
    `P` in gate, up, down, the rows of group `e` compute
    `Down_e(act(Gate_e(x)) (.) Up_e(x))`. Base: `gate, up: [f, d]`,
    `down: [d, f]`; LoRA: `A_gate, A_up: [E, r, d]`, `B_gate, B_up: [E, f, r]`,
    `A_down: [E, r, f]`, `B_down: [E, d, r]`. Result `[N, d]`.
  }];
  let arguments = (ins MoE_Activations:$rows, MoE_Counts:$group_sizes,
                       MoE_Matrix:$gate, MoE_Matrix:$up, MoE_Matrix:$down,
                       MoE_ExpertWeights:$gate_a, MoE_ExpertWeights:$gate_b,
                       MoE_ExpertWeights:$up_a, MoE_ExpertWeights:$up_b,
                       MoE_ExpertWeights:$down_a, MoE_ExpertWeights:$down_b,
                       MoE_ActivationAttr:$act, F64Attr:$alpha);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $rows `,` $group_sizes
    `base` `(` $gate `,` $up `,` $down `:` type($gate) `,` type($up) `,`
               type($down) `)`
    `gate_lora` `(` $gate_a `,` $gate_b `:` type($gate_a) `,` type($gate_b) `)`
    `up_lora` `(` $up_a `,` $up_b `:` type($up_a) `,` type($up_b) `)`
    `down_lora` `(` $down_a `,` $down_b `:` type($down_a) `,` type($down_b) `)`
    `act` `=` custom<EnumKeyword>($act) `alpha` `=` $alpha attr-dict
    `:` type($rows) `,` type($group_sizes)
  }];
}

def MoE_SharedExpertOp : MoE_InferredOp<"shared_expert"> {
  let summary = "an always-on gated FFN with an optional sigmoid gate";
  let description = [{
    `g(x) * down * (act(gate * x) (.) (up * x))` for every token, where
    `g(x) = sigmoid(gate_weight * x)` (Qwen2-MoE `shared_expert_gate`,
    `[1, d]`) or 1 (DeepSeek). `gate, up: [f, d]`, `down: [d, f]`,
    `input: [T, d]`; result `[T, d]`.

    ```mlir
    %s = moe.shared_expert %x, %sg, %su, %sd gate(%ws : tensor<1x1024xf32>)
        act = silu : tensor<?x1024xf32>, tensor<2816x1024xf32>,
        tensor<2816x1024xf32>, tensor<1024x2816xf32>
    ```
  }];
  let arguments = (ins MoE_Activations:$input, MoE_Matrix:$gate,
                       MoE_Matrix:$up, MoE_Matrix:$down,
                       Optional<MoE_Matrix>:$gate_weight,
                       MoE_ActivationAttr:$act);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $input `,` $gate `,` $up `,` $down
    (`gate` `(` $gate_weight^ `:` type($gate_weight) `)`)?
    `act` `=` custom<EnumKeyword>($act) attr-dict
    `:` type($input) `,` type($gate) `,` type($up) `,` type($down)
  }];
}

def MoE_LinearOp : MoE_InferredOp<"linear"> {
  let summary = "a dense projection of every token";
  let description = [{
    `result[t, o] = sum_i input[t, i] * weight[o, i]`, accumulated in f32;
    `input: [T, d_in]`, `weight: [d_out, d_in]`; result `[T, d_out]` of the
    input's element type. Used for the frozen base of LoRA experts.

    ```mlir
    %b = moe.linear %x, %w0 : tensor<?x512xf32>, tensor<512x512xf32>
    ```
  }];
  let arguments = (ins MoE_Activations:$input, MoE_Matrix:$weight);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight)
  }];
}

//===----------------------------------------------------------------------===//
// Losses and statistics
//===----------------------------------------------------------------------===//

def MoE_AuxLossOp : MoE_InferredOp<"aux_loss"> {
  let summary = "load-balancing loss (unscaled)";
  let description = [{
    With `P[e] = mean_t softmax(logits)[t, e]` and the assignments
    `expert_ids [T, S]` taken before dropping (spec section 7):
    - `switch`: `E * sum_e f[e] P[e]`, `f[e]` the fraction of tokens whose
      first choice (slot 0) is `e`;
    - `all_k`: `E * sum_e F[e] P[e]`, `F[e] = (1/T) * count of slots
      choosing e`;
    - `all_k_mean`: `all_k / S`.
    The result is a 0-d f32 tensor; it is 0 when `T = 0`.

    ```mlir
    %l = moe.aux_loss %z, %ids convention = all_k
        : tensor<?x8xf32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins MoE_Logits:$logits, MoE_Slots:$expert_ids,
                       MoE_AuxLossConventionAttr:$convention);
  let results = (outs MoE_Scalar:$loss);
  let assemblyFormat = [{
    $logits `,` $expert_ids `convention` `=` custom<EnumKeyword>($convention) attr-dict
    `:` type($logits) `,` type($expert_ids)
  }];
}

def MoE_ZLossOp : MoE_InferredOp<"z_loss"> {
  let summary = "router z-loss (unscaled)";
  let description = [{
    `(1/T) * sum_t (logsumexp_e logits[t, e])^2` (ST-MoE), as a 0-d f32
    tensor; 0 when `T = 0`.

    ```mlir
    %l = moe.z_loss %z : tensor<?x8xf32>
    ```
  }];
  let arguments = (ins MoE_Logits:$logits);
  let results = (outs MoE_Scalar:$loss);
  let assemblyFormat = "$logits attr-dict `:` type($logits)";
  let hasVerifier = 0;
}

def MoE_ExpertLoadOp : MoE_InferredOp<"expert_load"> {
  let summary = "per-expert assignment counts";
  let description = [{
    `result[e]` = the number of slots of `expert_ids [T, S]` holding `e`
    (i64), i.e. the assignments before any dropping. Together with the
    `dropped` result of `moe.dispatch` this gives the per-expert statistics.

    ```mlir
    %load = moe.expert_load %ids experts = 8 : tensor<?x2xi32>
    ```
  }];
  let arguments = (ins MoE_Slots:$expert_ids, I64Attr:$num_experts);
  let results = (outs MoE_Counts:$counts);
  let assemblyFormat = [{
    $expert_ids `experts` `=` $num_experts attr-dict `:` type($expert_ids)
  }];
}

def MoE_RecordStatsOp : MoE_Op<"record_stats",
    [MemoryEffects<[MemWrite]>, AllTypesMatch<["assignments", "dropped"]>]> {
  let summary = "add a layer call's expert statistics to the runtime counters";
  let description = [{
    Adds one call's per-expert `assignments` and `dropped` counts (`[E]`,
    i64, as `moe.layer` returns them) and its token count to the counters of
    the layer named `layer`, which the runtime exposes (C API, `moe-run
    --stats`). With `coactivation(%ids)` (the layer's `[T, S]` expert ids)
    the runtime also counts, for every pair of experts, the tokens that
    chose both; this reads the ids, never the activations.

    `moe-insert-stats` inserts the op after every `moe.layer`; with its
    `coactivation` option it sets the `with_coactivation` unit attribute, and
    `moe-decompose`, which creates the layer's ids, attaches them (for the
    CUDA back end `convert-moe-to-gpu-kernels` does, the ids copied back
    from the GPU).
    `convert-moe-to-runtime` lowers the op to calls into the runtime.

    ```mlir
    moe.record_stats %load, %dropped tokens(%t) layer = "moe_layer_3"
        : tensor<8xi64>
    moe.record_stats %load, %dropped tokens(%t)
        coactivation(%ids : tensor<?x2xi32>) layer = "moe_layer_3"
        : tensor<8xi64>
    ```
  }];
  let arguments = (ins MoE_Counts:$assignments, MoE_Counts:$dropped,
                       Index:$tokens, Optional<MoE_Slots>:$expert_ids,
                       StrAttr:$layer, UnitAttr:$with_coactivation);
  let assemblyFormat = [{
    $assignments `,` $dropped `tokens` `(` $tokens `)`
    (`coactivation` `(` $expert_ids^ `:` type($expert_ids) `)`)?
    `layer` `=` $layer attr-dict `:` type($assignments)
  }];
  let hasVerifier = 1;
}

def MoE_KnobOp : MoE_Op<"knob", [MemoryEffects<[MemRead]>]> {
  let summary = "a value that the runtime can change between calls";
  let description = [{
    Reads the run-time knob `name` of layer `layer`: a number that a user or
    a controller sets through the runtime (C API `moe_model_set_knob`,
    `moe-run --knob`) between calls, without recompiling; `default` until
    then. The runtime checks the values of the knobs it knows: `tau`
    (threshold routing's threshold: finite) and `capacity_factor` (> 0,
    finite). Created by `moe-expose-knobs`; lowered to a runtime call by
    `convert-moe-to-runtime`.

    With `device`, the result is the knob's copy in GPU memory, one f64
    (`tensor<1xf64>`), which the runtime rewrites at every change: GPU code
    that reads it when it runs, rather than when it is enqueued, follows
    the knob across the replays of a captured CUDA graph. Only GPU code may
    read it (`convert-moe-to-gpu-kernels` asks for it in device entry
    points).

    ```mlir
    %tau = moe.knob "tau" layer = "moe_layer_0" default = 1.000000e-01 : f32
    %dev = moe.knob "tau" layer = "moe_layer_0" default = 1.000000e-01
        {device} : tensor<1xf64>
    ```
  }];
  let arguments = (ins StrAttr:$name, StrAttr:$layer, F64Attr:$default_value,
                       UnitAttr:$device);
  let results = (outs AnyTypeOf<[F32, F64, RankedTensorOf<[F64]>]>:$value);
  let assemblyFormat = [{
    $name `layer` `=` $layer `default` `=` $default_value attr-dict
    `:` type($value)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Fused forms (moe-fuse-gating, moe-fuse-expert-io) and kernels
//===----------------------------------------------------------------------===//

def MoE_GateOp : MoE_InferredOp<"gate", [AttrSizedOperandSegments]> {
  let summary = "router logits, scores, selection and weights in one op";
  let description = [{
    `moe.route` applied to `moe.router`'s logits, as one op: for each token,
    the logits `input . weight^T (+ bias)` (f32 accumulation), the scores,
    the selection of `routing` (with the optional selection bias and
    run-time tau) and the combine weights. Produced by `moe-fuse-gating`
    when nothing else reads the logits; a back end computes it token tile
    by token tile, never materializing the `[T, E]` scores.

    ```mlir
    %ids, %w = moe.gate %x, %wg <score = softmax, selection = top_k, k = 2,
                                 renormalize = true>
        : tensor<?x1024xf32>, tensor<8x1024xf32>
    ```
  }];
  let arguments = (ins MoE_Activations:$input, MoE_Matrix:$weight,
                       Optional<MoE_Vector>:$bias,
                       Optional<MoE_F32Vector>:$selection_bias,
                       Optional<F32>:$tau,
                       MoE_RoutingAttr:$routing);
  let results = (outs MoE_Slots:$expert_ids, MoE_SlotWeights:$weights);
  let assemblyFormat = [{
    $input `,` $weight (`bias` `(` $bias^ `:` type($bias) `)`)?
    (`selection_bias` `(` $selection_bias^ `:` type($selection_bias) `)`)?
    (`tau` `(` $tau^ `)`)? $routing attr-dict
    `:` type($input) `,` type($weight)
  }];
}

def MoE_FusedExpertsOp
    : MoE_InferredOp<"fused_experts", [AttrSizedOperandSegments]> {
  let summary = "gather, routed experts, shared expert and combine in one op";
  let description = [{
    `moe.combine(experts(moe.gather(input, row_token[, row_weight])),
    slot_row[, slot_weight]) + shared(input)` as one op, so that a back end
    reads the routed rows in place (the gather folded into the first expert
    GEMM) and sums each token's slots as the last GEMM's rows come out.
    Produced by `moe-fuse-expert-io`.

    `expert_weights` are those of `moe.gated_experts` (`gate, up, down` or
    `gate_up, down`) or `moe.mlp_experts` (`w1, w2`), by `experts.kind`;
    `expert_biases` those of `moe.gated_experts` (a bias `[E, n]` for each
    expert weight, or none); `shared_weights` those of `moe.shared_expert`
    (`gate, up, down` and
    optionally the sigmoid gate `[1, d]`), the fused `gate_up [2*fs, d],
    down [d, fs]`, or none. With `kind = lora` the
    expert operands are `base [d_out, d], A [E, r, d], B [E, d_out, r]`
    and the op is `moe.linear(input, base) + combine(moe.lora_experts(...))
    (+ shared)`: one base product for all tokens, grouped low-rank products
    for the routed adapters; the result is `[T, d_out]`.

    ```mlir
    %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
        slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
        experts(%w1, %w3, %w2 : ...) {experts = #moe.experts<kind = gated>}
        : tensor<?x1024xf32>
    ```
  }];
  let arguments = (ins MoE_Activations:$input,
                       MoE_RowIndex:$row_token, MoE_Counts:$group_sizes,
                       Optional<MoE_RowWeights>:$row_weight,
                       MoE_Slots:$slot_row,
                       Optional<MoE_SlotWeights>:$slot_weight,
                       Variadic<MoE_ActTensor>:$expert_weights,
                       Variadic<MoE_Matrix>:$expert_biases,
                       Variadic<MoE_ActTensor>:$shared_weights,
                       MoE_ExpertsAttr:$experts);
  let results = (outs MoE_Activations:$result);
  let assemblyFormat = [{
    $input `rows` `(` $row_token `,` $group_sizes `:` type($row_token) `,`
    type($group_sizes) `)`
    (`scale` `(` $row_weight^ `:` type($row_weight) `)`)?
    `slots` `(` $slot_row `:` type($slot_row) `)`
    (`weights` `(` $slot_weight^ `:` type($slot_weight) `)`)?
    `experts` `(` $expert_weights `:` type($expert_weights) `)`
    (`expert_biases` `(` $expert_biases^ `:` type($expert_biases) `)`)?
    (`shared` `(` $shared_weights^ `:` type($shared_weights) `)`)?
    attr-dict `:` type($input)
  }];
}

def MoE_UKernelOp : MoE_Op<"ukernel", [AttrSizedOperandSegments,
    DestinationStyleOpInterface,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "a call of one of the runtime's CPU kernels";
  let description = [{
    Calls kernel `name` of the runtime (`moe_rt_ukernel_<name>`), which
    reads `inputs` and writes `outputs` (destination-passing style), with
    the integers of `config`. On tensors the op returns the written
    outputs; after bufferization it works on buffers, and
    `convert-moe-ukernels` turns it into the call: every buffer becomes
    (address, dtype code, rank, sizes), then `config`, all as 64-bit words
    (`runtime/include/moe_ukernel_abi.h`). Element types are f32, f16,
    bf16, i32, i64 and i8.

    ```mlir
    %p = moe.ukernel "pack" ins(%w : tensor<8x64x32xf32>)
        outs(%e : tensor<16384xf32>) config = [0, 64] -> tensor<16384xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name,
                       Variadic<AnyTypeOf<[AnyRankedTensor, AnyMemRef]>>:$inputs,
                       Variadic<AnyTypeOf<[AnyRankedTensor, AnyMemRef]>>:$outputs,
                       DenseI64ArrayAttr:$config);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let assemblyFormat = [{
    $name `ins` `(` ($inputs^ `:` type($inputs))? `)`
    `outs` `(` $outputs `:` type($outputs) `)` `config` `=` $config
    attr-dict (`->` type($results)^)?
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getOutputsMutable();
    }
  }];
}

#endif // MOE_IR_MOEOPS_TD
