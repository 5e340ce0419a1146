//===- Passes.td - moe conversion passes --------------------*- tablegen -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See LICENSE for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLinalg : Pass<"convert-moe-to-linalg"> {
  let summary = "Lower every moe op to linalg, tensor, arith, math and scf";
  let description = [{
    The reference lowering: plain, obviously correct code that the fast
    paths are checked against. `moe.layer` is first expanded as by
    `moe-decompose`, and the fused ops (`moe.gate`, `moe.fused_experts`)
    into the primitive ops they stand for; then every primitive op becomes
    upstream ops on
    tensors:

    - router, scores, gather and combine are `linalg.generic` ops; the
      combine sums each token's slots with the slot loop innermost, in slot
      order;
    - selection is a loop over tokens that picks the k experts one after the
      other, each pick the best candidate after the previous pick in the
      order of the spec (descending key, NaN lowest, ties to the lower
      index); top_p, threshold and the combine weights follow per token;
    - dispatch counts assignments, keeps the first C of each expert in the
      drop order, and lays the kept ones out by expert in token order;
    - expert computation loops over the experts and runs each expert on its
      own group of rows only (`tensor.extract_slice` of the group, f32
      accumulation, `tensor.insert_slice` back): never dense masking.

    Before:

    ```mlir
    %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
        : tensor<?x8xf32>
    ```

    After (abridged):

    ```mlir
    %max = linalg.generic ... // row max, exp, row sum, divide: the scores
    %r:2 = scf.for %t = %c0 to %T step %c1 iter_args(%ids0 = %init, ...) {
      %s:4 = scf.for %j = %c0 to %c2 step %c1 iter_args(...) {
        %pick:3 = scf.for %e = %c0 to %c8 step %c1 iter_args(...) {
          ... // is (key, e) after the previous pick and before the best?
        }
        ...
      }
      ...
    }
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def ConvertMoEToRuntime : Pass<"convert-moe-to-runtime", "::mlir::ModuleOp"> {
  let summary = "Lower checkpoint weights and statistics to runtime calls";
  let description = [{
    The module's contract with the runtime. Each `moe.weight` becomes a call
    that returns the bound tensor as a memref (read-only); each
    `moe.record_stats` a call that adds the counts to the runtime's
    counters. Both callees use the C interface (`_mlir_ciface_...`):

    - `moe_rt_weight_<dtype>_<rank>d(id) -> memref<?x...xdtype>`, or
      `moe_rt_device_weight_<dtype>_<rank>d(id)` for a `device` weight: the
      copy in GPU memory that the runtime makes at the first call
    - `moe_rt_record_stats(id, memref<?xi64>, memref<?xi64>, tokens)`
    - `moe_rt_record_coactivation(id, memref<?x?xi32>)` (the expert ids of
      a record with `coactivation`)
    - `moe_rt_knob(id) -> f64` for each `moe.knob` (truncated to f32 when
      the knob is f32); a `device` knob becomes `moe.knob_buffer`, the
      knob's copy in GPU memory, which the runtime rewrites at each change

    The pass records what it assigned in module attributes that the tools
    turn into the manifest of a compiled module: `moe.weights` (per id: the
    tensor names, `stacked`, the tensor type and, for a weight the runtime
    converts, the checkpoint's element type `stored`, `transposed` and,
    for block-scaled FP8, `scales` and `scale_block`),
    `moe.stats` (per id:
    the layer name, the number of experts and, when the layer counts
    co-activated pairs, `coactivation`) and `moe.knobs` (per id: the
    layer, the knob name, its default and, when GPU code reads it, `device`).
    Identical weights share an id;
    every read of the same knob of the same layer gets the same id.

    Weights first become `moe.weight_buffer`, device knobs
    `moe.knob_buffer` (buffers the function does not own);
    `convert-moe-weight-buffers` makes them calls after buffer
    deallocation, which would otherwise take a call's result for an
    allocation to free.

    ```mlir
    %w = moe.weight "model.layers.0.mlp.gate.weight" : tensor<8x64xbf16>
    // becomes
    %b = moe.weight_buffer 0 : memref<8x64xbf16>
    %w = bufferization.to_tensor %b restrict : memref<8x64xbf16> to tensor<8x64xbf16>
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def ConvertMoEWeightBuffers
    : Pass<"convert-moe-weight-buffers", "::mlir::ModuleOp"> {
  let summary = "Fetch weight and knob buffers from the runtime";
  let description = [{
    Replaces each `moe.weight_buffer` by a call to the runtime, declared with
    the C interface, which returns the bound buffer, and each
    `moe.knob_buffer` by `moe_rt_device_knob(id) -> memref<?xf64>`, the
    knob's copy in GPU memory:

    ```mlir
    %b = moe.weight_buffer 0 : memref<8x64xbf16>
    // becomes
    %id = arith.constant 0 : i64
    %m = call @moe_rt_weight_bf16_2d(%id) : (i64) -> memref<?x?xbf16>
    %b = memref.cast %m : memref<?x?xbf16> to memref<8x64xbf16>
    ```

    Runs after buffer deallocation (the runtime owns the buffer).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::memref::MemRefDialect",
  ];
}

def ConvertMoEToCPU : Pass<"convert-moe-to-cpu"> {
  let summary = "Lower fused moe ops to the runtime's CPU kernels";
  let description = [{
    The fast CPU path. `moe.gate` and `moe.fused_experts` become
    `moe.ukernel` calls of the runtime's kernels (`runtime/cpu/`), on
    tensors, before bufferization:

    - every weight matrix the kernels read is packed into their panel
      layout: a checkpoint weight (`moe.weight`) gets a `#moe.packing` and
      is packed once when the model is loaded; any other weight is packed
      by a `pack` kernel call at run time;
    - a fused `gate_up [E, 2f, d]` becomes a packed gate (rows `[0, f)`)
      and a packed up (rows `[f, 2f)`);
    - panels are bf16 when every routed and shared matrix is bf16 (the
      kernels then accumulate bf16 products in f32), f32 otherwise;
    - absent optional operands are zero-element buffers.

    Ops the kernels do not cover (dynamic weight shapes) are left for
    `convert-moe-to-linalg`, whose reference lowering covers every op.

    ```mlir
    %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
        slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
        experts(%g, %u, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>,
                             tensor<8x64x128xf32>)
        {experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
    // becomes (abridged)
    %pg = moe.ukernel "pack" ins(%g : tensor<8x128x64xf32>)
        outs(%e0 : tensor<65536xf32>) config = [0, 128] -> tensor<65536xf32>
    ...
    %y = moe.ukernel "expert_ffn" ins(%x, %rt, %sizes, %none, %sr, %sw,
        %pg, %pu, %pd, ...) outs(%init : tensor<?x64xf32>)
        config = [128, 0, 0] -> tensor<?x64xf32>
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def ConvertMoEUKernels : Pass<"convert-moe-ukernels", "::mlir::ModuleOp"> {
  let summary = "Turn moe.ukernel ops on buffers into runtime calls";
  let description = [{
    Runs after bufferization. Each `moe.ukernel "NAME"` on memrefs becomes
    a call of `moe_rt_ukernel_NAME` (C interface) with one `memref<?xi64>`
    of argument words: for each buffer, its address, dtype code, rank and
    sizes, then the op's `config` (`runtime/include/moe_ukernel_abi.h`).
    A buffer that is not contiguous row-major is copied into one that is
    (and back, for an output) around the call.

    ```mlir
    moe.ukernel "pack" ins(%w : memref<8x64x32xf32>)
        outs(%p : memref<16384xf32>) config = [0, 64]
    // becomes (abridged)
    %words = memref.alloca() : memref<10xi64>
    ... // memref.store of each word
    %cast = memref.cast %words : memref<10xi64> to memref<?xi64>
    call @moe_rt_ukernel_pack(%cast) : (memref<?xi64>) -> ()
    ```
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::memref::MemRefDialect",
  ];
}

def ConvertMoEToGPUKernels
    : Pass<"convert-moe-to-gpu-kernels", "::mlir::ModuleOp"> {
  let summary = "Lower moe.layer to calls of the CUDA kernel library";
  let description = [{
    Rewrites each `moe.layer` into one call of a host function of the CUDA
    kernel library (`lib/GPU/Kernels/layer.mlir`) that copies the tokens to
    the device, enqueues the router, the dispatch, the expert FFN on tensor
    cores and the combine on one stream, copies the results back and
    synchronizes once: `@moe_layer_resident` when the router and expert
    weights are checkpoint weights (`moe.weight`), which it reads as
    `moe.weight {device}` (copied to the GPU once by the runtime), else
    `@moe_layer`, which copies the weights for the call. The routing
    becomes scalar arguments (score, selection, flags, scale, tau or p,
    groups, and the capacity, computed from the token count as on the CPU:
    expert_choice's, with one slot per expert, or the dispatch's, with its
    drop order and renormalization as flags), a run-time tau or capacity
    factor is used as it is, and the biases become f32 buffers. Operands are taken as
    buffers (`bufferization.to_buffer`, cast to the dynamic shapes of the
    host function), the outputs are `memref.alloc`s, and the f32 combine
    result is rounded to bf16 by a host loop. The library returns the
    dispatch's group offsets (of the kept assignments) and, for a layer
    with a token-choice capacity, the dropped count of each expert (a
    layer without one drops nothing: its dropped buffer has no elements);
    `dropped` is the latter, and the per-expert assignments are the group
    sizes plus the dropped ones. When a
    `moe.record_stats` of the layer asks for co-activation counts
    (`with_coactivation`, no expert ids), the library also copies the
    selection before any drop (`[T, k]`, `[T, E]` with expert_choice) into
    a host buffer, which becomes the record's expert ids; otherwise that
    buffer has no rows and nothing is copied.

    The callees are declared private here; `moe-link-gpu-kernels` adds
    their bodies and kernels after bufferization (buffer deallocation does
    not accept the library's `gpu.launch_func` ops).

    Supported layers (anything else is an error on the op): any score
    function; top_k, grouped_top_k, top_p, threshold
    (tau an attribute or an operand) or expert_choice (with its own
    capacity) selection with `1 <= k <= E <= 512`; router and selection
    biases; any combine weights, renormalization and scale; weights applied
    to the expert output or input; gated experts of any `act` as separate
    `gate`, `up`, `down` operands or a fused `gate_up` and `down` (passed
    as both the gate and the up operand), or plain MLP experts (`w1`,
    `w2`; an empty up operand), or LoRA experts (`kind = lora` or
    `lora_gated`: `@moe_lora_layer` and `@moe_lora_layer_resident`, the
    frozen projections as one expert `[1, n, m]`, the unused operands of
    `kind = lora` empty, and `alpha / r` as an f32 argument); any capacity
    (count or factor, an attribute or an operand, any drop order); shared
    experts, gated or not (passed as one expert `[1, fs, d]`, empty buffers
    without one); bf16 input and weights; static expert and shared expert
    sizes (`d`, `f`, `d_out`, `r`, `fs`) that are multiples of 8.

    ```mlir
    %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
        experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
                tensor<8x64x32xbf16>)
        {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                                renormalize = true>,
         experts = #moe.experts<kind = gated, act = silu>}
        : tensor<?x64xbf16>
    // becomes (abridged)
    %xb = bufferization.to_buffer %x read_only
        : tensor<?x64xbf16> to memref<?x64xbf16>
    %xm = memref.cast %xb : memref<?x64xbf16> to memref<?x?xbf16>
    ...
    call @moe_layer(%xm, %wrm, %gm, %um, %dm, %c2, %off, %yf) : (...) -> ()
    scf.for ... // %out[t, c] = arith.truncf %yf[t, c]
    %y = bufferization.to_tensor %out restrict
        : memref<?x64xbf16> to tensor<?x64xbf16>
    ```

    With `device-entries`, each public function that is one layer (one
    argument, the input of its only `moe.layer`, whose output it returns;
    checkpoint weights and biases; knobs and constants as the other
    operands) also gets a device entry point, `@<name>.device`, with the C
    interface: the input and output rows in GPU memory, the model's
    statistics on the device (`[2, E + 1]` i64: the assignments of each
    expert and the tokens, then the dropped ones and the calls; no
    rows without statistics; `[2 + E, E + 1]` when the layer counts
    co-activated pairs, row `2 + i` column `j > i` the tokens that chose
    both `i` and `j`) and a stream, which it returns:

    ```mlir
    func.func @moe_layer_0.device(%x: memref<?x64xbf16>,
        %y: memref<?x64xbf16>, %counts: memref<?x?xi64>,
        %stream: !gpu.async.token) -> !gpu.async.token
    ```

    Its body reads the same weights in GPU memory, and its run-time tau and
    (with a token-choice capacity) capacity factor in GPU memory as well
    (`moe.knob {device}`): the kernels read those as they run, so that a
    replayed CUDA graph follows the knobs. It calls
    `@moe_layer_device_async` (`@moe_lora_layer_device_async`), which
    enqueues the layer on the stream, rounds the output into `y` and adds
    the call's counts to `counts`, reading nothing back on the host (the
    compiled model's `moe_model_run_layer_async`). A function that is not
    one layer gets a warning that says why, and no device entry point.

    A function that `moe-narrow-to-bf16` computes in bf16 (its f32 or f16
    argument rounded to the layer's input, the layer's output widened to
    its result) is one layer too. Its device entry point takes its own
    rows, and two bf16 buffers of the caller for the layer's:

    ```mlir
    func.func @moe_layer_0.device(%x: memref<?x64xf32>,
        %y: memref<?x64xf32>, %counts: memref<?x?xi64>,
        %xb: memref<?x64xbf16>, %yb: memref<?x64xbf16>,
        %stream: !gpu.async.token) -> !gpu.async.token
    ```

    `@moe_rows_to_bf16_async` rounds `x` into `xb` before the layer, which
    writes its output to `yb`, and `@moe_rows_from_bf16_async` widens `yb`
    into `y` after it, as the function's host code rounds and widens.

    Other moe ops (standalone routing, dispatch, experts, losses) are left
    as they are, for `moe-cuda-pipeline` to lower for the host with the
    reference lowering (`convert-moe-to-linalg`): a function that has any
    gets one warning that names them.
  }];
  let options = [
    Option<"deviceEntries", "device-entries", "bool", /*default=*/"false",
           "Also emit a device entry point for each public function that is "
           "one layer">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def MoELinkGPUKernels : Pass<"moe-link-gpu-kernels", "::mlir::ModuleOp"> {
  let summary = "Add the CUDA kernel library to a module that calls it";
  let description = [{
    The kernel library (`lib/GPU/Kernels/*.mlir`) is embedded in the
    compiler. When the module declares one of the library's host functions
    (as `convert-moe-to-gpu-kernels` does), the pass parses the library
    and merges it in once: its `gpu.module`s, and its host functions, made
    private (internal linkage in LLVM), which replace the declarations. The
    module becomes a `gpu.container_module`. A symbol of the module that clashes with the
    library (another definition, or a declaration of a different type) is
    an error. A module that calls none of the host functions is left
    unchanged.

    ```mlir
    func.func private @moe_router(memref<?x?xbf16>, memref<?x?xbf16>,
                                  memref<?x?xi32>, memref<?x?xf32>)
    // becomes
    gpu.module @moe_router_kernels { ... }
    func.func private @moe_router(%x: memref<?x?xbf16>, ...) {
      ... // gpu.alloc, gpu.memcpy, gpu.launch_func, gpu.dealloc
    }
    ```
  }];
  // Every dialect the library's sources use, for the parser.
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::func::FuncDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def MoEGPUAsyncRegion
    : Pass<"moe-gpu-async-region", "::mlir::func::FuncOp"> {
  let summary = "gpu-async-region for functions that do not manage streams";
  let description = [{
    Runs the upstream `gpu-async-region` on every function whose GPU
    operations are synchronous, and leaves alone the functions that manage
    their streams: those that take or return a `!gpu.async.token`, or whose
    operations already produce one.

    `gpu-async-region` gives a function a stream of its own, created at the
    first GPU operation, and synchronizes it before every call and at the
    end. That is right for synchronous code, and wrong for a function that
    enqueues work on a stream its caller passes (a token argument, lowered
    to the `CUstream`) and returns it: such a function must neither create
    a stream nor synchronize, so that its caller can chain more work after
    it or capture it in a CUDA graph. It is wrong, too, for a function that
    chains its operations explicitly and calls such a function: the pass
    would synchronize the chain before the call. The kernel library's
    `@moe_layer_async`, `@moe_expert_ffn_async` and their callers
    `@moe_layer` and `@moe_expert_ffn` are of these kinds.

    Run it before inlining, then inline: `gpu.wait` lowers to a stream
    synchronization only on a token that visibly comes from the stream's
    creation (`gpu.wait async`) in the same function, not through a call's
    result.
  }];
  let dependentDialects = [
    "::mlir::async::AsyncDialect",
    "::mlir::gpu::GPUDialect",
  ];
}

def MoEGPUEmulate : Pass<"moe-gpu-emulate", "::mlir::ModuleOp"> {
  let summary = "Run the NVVM kernels of gpu.modules on the host's SIMT "
                "emulator";
  let description = [{
    Runs in the place of `gpu-module-to-binary`, after `gpu-to-llvm`: the
    kernels of every `gpu.module`, already in the LLVM and NVVM dialects,
    become host functions that the SIMT emulator of the runtime
    (`runtime/cuda/Emulator.cpp`, `libmoe_cuda_emulator`) runs with one
    fiber per GPU thread, so that the code the GPU would run can be executed
    and checked on a machine without one.

    - Every symbol of a `gpu.module` moves into the host module, renamed
      `<module>__<name>`; libdevice declarations (`__nv_expf`, ...) become
      the C library's functions of the same name without the prefix, and
      CUDA's `vprintf` (`gpu.printf`) the emulator's.
    - Shared memory (address space 3 globals) becomes one buffer per block,
      laid out per `gpu.module` and returned by `moe_emu_shared()`; every
      other address space becomes the generic one.
    - NVVM operations become calls of the emulator: special registers,
      `barrier0`, `shfl.sync`, `match.sync.any`, `bar.warp.sync`, `ldmatrix`
      (`.m8n8.b16`, x1/x2/x4, with or without `.trans`), `mma.sync`
      (m16n8k16, bf16 A row-major and B column-major, f32 C and D),
      `cp.async` with its commit and wait groups (the emulator copies at
      once, and reports a read of bytes that a copy no wait has covered yet
      may still be writing), and `wgmma.mma_async` (the inline assembly of
      m64nNk16 with bf16 A and B through shared-memory descriptors, 128-byte
      swizzled or not, and f32 D) with its fence, commit and wait (a write
      to bytes that an uncovered wgmma may still read is reported); proxy
      fences and grid dependency control (`griddepcontrol`: the emulator
      runs kernels one after the other) are dropped. Any other NVVM operation
      or inline assembly is an error.
    - Each kernel gets a `<module>__<kernel>__launch(void **params)` entry,
      and every `gpu.launch_func` becomes a `moe_emu_launch` call with its
      arguments packed as `cuLaunchKernel` takes them, the module's static
      shared memory plus the launch's dynamic shared memory, and the
      stream.

    `moe-cuda-pipeline{emulate=1}` uses it; the pass is exposed for tests.
  }];
  let dependentDialects = [
    "::mlir::LLVM::LLVMDialect",
  ];
}

def MoEGPUAttachTargets : Pass<"moe-gpu-attach-targets", "::mlir::ModuleOp"> {
  let summary = "Attach NVVM targets to gpu.modules, moving sm_90a kernels "
                "into a module of their own";
  let description = [{
    In the place of `nvvm-attach-target`: the kernels of a `gpu.module`
    marked `moe.sm90a` (a unit attribute; they use wgmma, which only the
    architecture-specific `sm_90a` target has) move into a sibling module
    `<module>_sm90a` with the target `sm_90a` (PTX 8.0) and the launches
    follow them; each module keeps only the private functions its kernels
    call. Every `gpu.module` without targets then gets the NVVM target of
    the options; a module that names its own targets keeps them.

    The sm_90a module's binary loads only on devices of compute capability
    9.0; the host chooses between its kernels and the portable ones at run
    time (`moe_gpu_use_wgmma` of the runtime).
  }];
  let options = [
    Option<"triple", "triple", "std::string", "\"nvptx64-nvidia-cuda\"",
           "The target triple">,
    Option<"chip", "chip", "std::string", "\"sm_50\"",
           "The target chip of the portable modules">,
    Option<"features", "features", "std::string", "\"+ptx60\"",
           "The target features of the portable modules">,
    Option<"optLevel", "O", "unsigned", "2", "The optimization level">,
  ];
  let dependentDialects = [
    "::mlir::NVVM::NVVMDialect",
  ];
}

def MoEGPUDependentLaunch
    : Pass<"moe-gpu-dependent-launch", "::mlir::gpu::GPUModuleOp"> {
  let summary = "Let the kernels of sm_90 and newer modules overlap their "
                "launch with the kernel before them (programmatic dependent "
                "launch)";
  let description = [{
    On a `gpu.module` whose NVVM targets are all compute capability 9.0 or
    newer (`sm_90`, `sm_90a`, ...); other modules are left as they are.
    Every kernel (a `gpu.func` kernel, or the `llvm.func` that
    `convert-gpu-to-nvvm` made of one) begins with

    ```mlir
    nvvm.griddepcontrol wait
    nvvm.griddepcontrol launch_dependents
    ```

    and the module gets the global `moe_dependent_launch` (an `i32` 1 in
    global memory). A kernel launched with the CUDA launch attribute
    "programmatic stream serialization" may start while the kernel before
    it on its stream still runs: its `wait` holds each thread until that
    kernel has completed and its writes are visible, before the thread
    touches any memory, and its `launch_dependents` lets the kernel after
    it be launched as soon as every block has passed the `wait`. Launched
    without the attribute, both are no-ops.

    The global tells the runtime that every kernel of the module waits so:
    `mgpuLaunchKernel` of `runtime/cuda` sets the attribute only for
    kernels of modules that have it (and only when
    `MOE_GPU_DEPENDENT_LAUNCH=1`), never for other GPU code, which may read
    the previous kernel's results at once.
  }];
  let dependentDialects = [
    "::mlir::LLVM::LLVMDialect",
    "::mlir::NVVM::NVVMDialect",
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
