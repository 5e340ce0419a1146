//===- layer.mlir - A whole MoE layer on one stream ------------*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The supported layer (any routing of router.mlir, any capacity, gated,
// MLP or LoRA experts of any activation, an optional shared expert, bf16)
// as one chain of asynchronous GPU operations on one stream:
//
//   router_logits -> router_topk (-> expert_choice) (-> record_selection)
//   -> the permutation (build_permutation, one block that also counts and
//   fills the expert GEMMs' tile map; past 4096 slots a memset,
//   count_experts and the segmented kernels) (-> capacity_keys ->
//   capacity_drop (-> renormalize_kept) -> the permutation again) ->
//   gather_rows (-> build_tile_map, after the segmented kernels) -> the
//   experts (gate_up_swiglu_mma, grouped_gemm_mma) -> combine ->
//   one_group -> shared_gate -> @moe_expert_ffn_async on all T tokens as
//   one group -> add_shared
//
// The steps in parentheses run with a capacity (flags bit 16), with
// expert_choice, or with co-activation counts (ids_out with rows, or a
// statistics table with pair rows) for record_selection; otherwise they
// are launched on empty grids, which the runtime skips. So are the
// shared expert's steps without one (Sg of size 0): every size is then 0.
//
// No device data is read on the host in between: the expert GEMMs are
// launched on ceil(R / 64) + min(E, R) tiles, the bound of build_tile_map
// for any group sizes of R rows in all, and their blocks past the map's
// tiles return at once. R, the rows of the gathered tokens and of the expert
// outputs, is T * k, or E * min(C, T) when that is smaller with
// expert_choice (k = E slots, most of them unused). The limits of every
// step are checked before the first GPU operation.
//
//   x       [T, d]     bf16  token activations
//   Wr      [E, d]     bf16  router weight
//   rbias   [E]        f32   router bias (read when flags has bit 2)
//   sbias   [E]        f32   selection bias (read when flags has bit 4)
//   Wg, Wu  [E, F, d]  bf16  gate and up projections
//   Wd      [E, d, F]  bf16  down projection
//   Bg, Bu  [E, F]     bf16  expert biases of gate and up, Bd [E, d] of
//   Bd                       down (GPT-OSS; gated experts), added to the
//                            projections' f32 sums; a fused gate_up's
//                            [E, 2F] passed as Bg and Bu; [0, 0] without
//   Sg, Su  [1, Fs, d] bf16  a shared expert's gate and up projections,
//                            [0, ...] without one
//   Sd      [1, d, Fs] bf16  its down projection
//   Sw      [1, d]     bf16  its sigmoid gate vector, [0, d] for an
//                            ungated shared expert (DeepSeek)
//   k                        experts per token (slots; top_p and threshold
//                            leave some unused)
//   score, sel, flags, scale, param, G, topk_group, gscore
//                            the routing, as router.mlir's router_topk
//                            takes it (flags bits 1, 2, 4, 8), and the
//                            capacity: flags bit 16 drops the assignments
//                            past `cap` per expert in the drop order
//                            (flags >> 5) & 3 (0 choice_major, 1
//                            token_major, 2 score); bit 128 renormalizes
//                            each token's kept weights (spec section 4);
//                            bits 9-10 the experts' activation (0 silu,
//                            1 gelu_tanh, 2 gelu_erf, 3 relu), or bit
//                            4096 for swiglu_oai (4); bit 2048
//                            applies the weights to the expert input
//                            (rows scaled, combine unweighted)
//   cap                      expert_choice (sel = 4, k = E): the tokens each
//                            expert takes (at most T); with bit 16: the
//                            capacity of each expert
//   offsets [E + 1]    i32   group offsets of the dispatch (out), of the
//                            kept assignments; offsets[E] is their number
//   dropped [E] or [0] i32   assignments dropped per expert (out; not
//                            written when empty)
//   ids_out [T, k] or [0, k] i32
//                            the selection before any drop (out; written
//                            when it has rows): what co-activation counts
//                            read (docs/monitoring.md)
//   y       [T, d]     f32   layer output (out)
//
// The kernels are those of router.mlir, dispatch.mlir, experts.mlir and
// combine.mlir, and so are the limit checks: this file is compiled together
// with them (moe-link-gpu-kernels merges the library into one module).
//
// Host functions:
//   @moe_layer_async (x, Wr, rbias, sbias, Wg, Wu, Wd, Sg, Su, Sd, Sw, k,
//                     routing..., cap, offsets, dropped, ids_out, y,
//                     stream) -> stream
//     Device buffers. Enqueues the layer on the caller's stream, its
//     temporaries allocated and freed in stream order (the runtime's
//     memory pool), and returns without synchronizing:
//     the call can be captured in a CUDA graph, and weights stay resident
//     across calls.
//   @moe_layer_resident (same arguments)
//     Host buffers, except the weights Wr, Wg, Wu, Wd, Sg, Su, Sd and Sw,
//     which are device buffers (a compiled model's checkpoint weights, uploaded once by the
//     runtime). Creates a stream, copies x and the biases in, enqueues
//     @moe_layer_async, copies y, the offsets, the dropped counts and the
//     ids out, and synchronizes once.
//   @moe_layer (x, Wr, rbias, sbias, Wg, Wu, Wd, Sg, Su, Sd, Sw, k,
//               routing..., cap, offsets, dropped, ids, y)
//     Host buffers: copies the weights to the device for the call, then
//     @moe_layer_resident.
//
//   @moe_layer_device_async (x, Wr, rbias, sbias, Wg, Wu, Wd, Sg, Su, Sd,
//                            Sw, k, routing..., param_dev, G, topkg,
//                            gscore, cap, cap_dev, cap_min, cap_align,
//                            counts, y, stream) -> stream
//     What a compiled model's device entry point calls (moe_model_run_
//     layer_async): device buffers, tau (or p) read on the device from
//     param_dev[0] (f64) when param_dev has an element, and with bit 16 the
//     capacity computed on the device from the factor cap_dev[0] (f64),
//     cap_min and cap_align (dispatch.mlir's @capacity_of_factor; `cap` is
//     not read) when cap_dev has one: run-time knobs in GPU memory, so that
//     a replayed graph follows them. Then @moe_layer_async on the caller's
//     stream with its offsets, dropped counts (with bit 16; else none)
//     and f32 output as stream-ordered temporaries, then y [T, d] bf16 =
//     bf16(the f32 output), and, by the same kernel (finish_layer), the
//     call's assignments (kept + dropped), dropped counts, tokens and
//     the call added to counts [2, E + 1] i64 (assignments and tokens, then
//     dropped and calls), the model's running statistics on the device
//     (skipped when counts has no rows). A table of [2 + E, E + 1] also
//     counts co-activated pairs: row 2 + i, column j > i, the tokens whose
//     selection (before any drop) holds experts i and j. Nothing is read on
//     the host.
//
//   @moe_lora_layer_async (x, Wr, rbias, sbias, Pg, Pu, Pd, Ag, Bg, Au, Bu,
//                          Ad, Bd, Sg, Su, Sd, Sw, k, routing..., s, cap,
//                          offsets, dropped, ids_out, y, stream) -> stream
//   @moe_lora_layer_resident, @moe_lora_layer (same arguments)
//   @moe_lora_layer_device_async (the arguments of @moe_layer_device_async
//                                 with the LoRA weights and s)
//     The same for LoRA experts (spec section 5): kind lora (Pg the frozen
//     base [1, d_out, d], Ag [E, r, d] and Bg [E, d_out, r] its pair; Pu,
//     Pd, Au, Bu, Ad, Bd empty; y [T, d_out]) or lora_gated (MixLoRA: the
//     frozen FFN Pg, Pu [1, f, d], Pd [1, d, f], and the pairs of gate, up
//     and down). s = alpha / r scales the deltas.
//
//   @moe_rows_to_bf16_async (xf, xh, xb, stream) -> stream
//   @moe_rows_from_bf16_async (yb, yf, yh, stream) -> stream
//     The device entry point of a layer that moe-narrow-to-bf16 computes
//     in bf16 on f32 or f16 rows: its f32 (xf) or f16 (xh) input rounded
//     into the bf16 rows xb that @moe_layer_device_async reads, and that
//     call's bf16 output yb widened into the f32 (yf) or f16 (yh) output;
//     the other type's buffer is [0, 0]. xb and yb are the caller's.
//
// A function that takes a stream is compiled without gpu-async-region
// (moe-gpu-async-region skips it); callers are inlined first, so that the
// final synchronization of @moe_layer sees its own stream.
//
//===----------------------------------------------------------------------===//

module attributes {gpu.container_module} {

// (flags >> shift) & mask
func.func private @flag_bits(%flags: i32, %shift: i32, %mask: i32) -> i32 {
  %s = arith.shrui %flags, %shift : i32
  %v = arith.andi %s, %mask : i32
  return %v : i32
}

// The experts' activation code of experts.mlir's kernels: flags bits 9-10
// (0 silu, 1 gelu_tanh, 2 gelu_erf, 3 relu), 4 (swiglu_oai) with bit 4096.
func.func private @activation_of(%flags: i32) -> i32 {
  %i1 = arith.constant 1 : i32
  %i3 = arith.constant 3 : i32
  %i9 = arith.constant 9 : i32
  %i2 = arith.constant 2 : i32
  %i12 = arith.constant 12 : i32
  %low = call @flag_bits(%flags, %i9, %i3) : (i32, i32, i32) -> i32
  %oai = call @flag_bits(%flags, %i12, %i1) : (i32, i32, i32) -> i32
  %high = arith.shli %oai, %i2 : i32
  %act = arith.ori %low, %high : i32
  return %act : i32
}

// The router and the dispatch of a layer, everything before its experts:
// router_logits, router_topk (-> expert_choice), the counts, the
// permutation (with a capacity: capacity_keys, capacity_drop (->
// renormalize_kept), the counts and the permutation again) and
// gather_rows. Returns the gathered rows xp [R, d] (R as the file's
// header says; grouped by expert as `offsets` says, the kept ones first),
// slot_row [T, k], the combine weights [T, k] and row_token [T k] (the
// token of each row, -1 for the unused rows at the end), and the expert
// GEMMs' tile map for the groups (@alloc_tile_map_async: the map and the
// rows of its tiles), which the caller frees; the other
// temporaries are freed in stream order. The permutation fills the tile
// map when it runs on one block (build_permutation), and the i1 result
// says so; @build_tile_map_async fills it otherwise. Checks the router and dispatch limits before it
// enqueues anything.
func.func private @moe_route_dispatch_async(
    %x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>, %rbias: memref<?xf32>,
    %sbias: memref<?xf32>, %k: index, %score: i32, %sel: i32, %flags: i32,
    %scale: f32, %param: f32, %param_dev: memref<?xf64>, %G: index,
    %topkg: index, %gscore: i32,
    %cap: index, %cap_dev: memref<?xf64>, %cap_min: index, %cap_align: index,
    %offsets: memref<?xi32>, %dropped: memref<?xi32>,
    %ids_out: memref<?x?xi32>, %counts: memref<?x?xi64>,
    %stream: !gpu.async.token)
    -> (memref<?x?xbf16>, memref<?x?xi32>, memref<?x?xf32>, memref<?xi32>,
        memref<?x4xi32>, index, i1, !gpu.async.token) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c128 = arith.constant 128 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %z = arith.constant 0 : i32
  %i1 = arith.constant 1 : i32
  %i11 = arith.constant 11 : i32
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %TK = arith.muli %T, %k : index
  call @check_router_limits(%d, %E, %k) : (index, index, index) -> ()
  call @check_routing(%E, %k, %sel, %G, %topkg, %gscore, %param)
      : (index, index, i32, index, index, i32, f32) -> ()
  call @check_dispatch_limits(%d, %E) : (index, index) -> ()

  // Grids.
  %rp = arith.addi %T, %c3 : index
  %g_router = arith.divui %rp, %c4 : index
  %cp = arith.addi %TK, %c255 : index
  %g_count = arith.divui %cp, %c256 : index
  // expert_choice (sel = 4): @expert_choice selects tokens per expert into
  // the k = E slots, one block per expert; other selections launch it on an
  // empty grid.
  %i4 = arith.constant 4 : i32
  %is_ec = arith.cmpi eq, %sel, %i4 : i32
  %g_ec = arith.select %is_ec, %E, %c0 : index
  %taken = arith.minui %cap, %T : index
  // Capacity (flags bit 16): the second dispatch pass on the kept slots.
  %i16 = arith.constant 16 : i32
  %i128 = arith.constant 128 : i32
  %i5 = arith.constant 5 : i32
  %i3 = arith.constant 3 : i32
  %bit16 = arith.andi %flags, %i16 : i32
  %drops = arith.cmpi ne, %bit16, %z : i32
  %order = call @flag_bits(%flags, %i5, %i3) : (i32, i32, i32) -> i32
  %bit128 = arith.andi %flags, %i128 : i32
  %has128 = arith.cmpi ne, %bit128, %z : i32
  %renorm_drop = arith.andi %drops, %has128 : i1
  // Weights applied to the expert input (flags bit 2048): the gathered rows
  // scaled.
  %on_input_i = call @flag_bits(%flags, %i11, %i1) : (i32, i32, i32) -> i32
  %g_drop = arith.select %drops, %E, %c0 : index
  %tp = arith.addi %T, %c255 : index
  %tb = arith.divui %tp, %c256 : index
  %g_renorm = arith.select %renorm_drop, %tb, %c0 : index
  %g_count2 = arith.select %drops, %g_count, %c0 : index
  // The rows the experts compute, at most: T * k; with expert_choice
  // exactly E * min(C, T) (k = E slots, most of them unused). The gathered
  // rows, and every buffer of rows after them, take R. A capacity keeps
  // the dropless bound although it keeps at most E * min(C, T) rows: the
  // expert kernels are chosen by R (@few_rows), and a capacity factor read
  // on the device (cap_dev) is not known here; so the same layer takes the
  // same kernels, and gives bitwise the same output, whichever way its
  // capacity arrives.
  %kept_bound = arith.muli %E, %taken : index
  %bounded = arith.minui %kept_bound, %TK : index
  %R = arith.select %is_ec, %bounded, %TK : index
  // Slots, rows and tokens are i32 on the device: T * k < 2^31 (k = E
  // with expert_choice). The C API and compiled libraries refuse larger
  // calls before they get here.
  %int32_max = arith.constant 2147483647 : index
  %slots_ok = arith.cmpi ule, %TK, %int32_max : index
  cf.assert %slots_ok, "moe gpu layer: too many slots for one call: tokens * slots must be below 2^31"

  // Temporaries of the router and the dispatch.
  %dids, %a0 = gpu.alloc async [%stream] (%T, %k) : memref<?x?xi32>
  %dwts, %a1 = gpu.alloc async [%a0] (%T, %k) : memref<?x?xf32>
  %dcnt, %a2 = gpu.alloc async [%a1] (%E) : memref<?xi32>
  %drt, %a3 = gpu.alloc async [%a2] (%TK) : memref<?xi32>
  %drw, %a4 = gpu.alloc async [%a3] (%TK) : memref<?xf32>
  %dsr, %a5 = gpu.alloc async [%a4] (%T, %k) : memref<?x?xi32>
  %dxp, %a6 = gpu.alloc async [%a5] (%R, %d) : memref<?x?xbf16>
  %dsc, %a7s = gpu.alloc async [%a6] (%T, %k) : memref<?x?xf32>
  // The selection keys of expert_choice and capacity_drop, T * k of them
  // (k = E with expert_choice); empty when neither runs.
  %keyed = arith.ori %drops, %is_ec : i1
  %n_keys = arith.select %keyed, %TK, %c0 : index
  %dkeys, %a7 = gpu.alloc async [%a7s] (%n_keys) : memref<?xi64>

  %dz, %a8 = gpu.alloc async [%a7] (%T, %E) : memref<?x?xf32>

  %lg:3 = call @router_logits_grid(%T, %E) : (index, index) -> (index, index, index)
  %kz = gpu.launch_func async [%a8] @moe_router_kernels::@router_logits
      blocks in (%lg#0, %lg#1, %c1) threads in (%c128, %c1, %c1)
      args(%x : memref<?x?xbf16>, %Wr : memref<?x?xbf16>,
           %rbias : memref<?xf32>, %flags : i32, %lg#2 : index,
           %dz : memref<?x?xf32>)
  %topk_smem = call @router_topk_shared_bytes(%E) : (index) -> i32
  %k0 = gpu.launch_func async [%kz] @moe_router_kernels::@router_topk
      blocks in (%g_router, %c1, %c1) threads in (%c128, %c1, %c1)
      dynamic_shared_memory_size %topk_smem
      args(%dz : memref<?x?xf32>, %sbias : memref<?xf32>, %k : index,
           %score : i32, %sel : i32, %flags : i32, %scale : f32,
           %param : f32, %param_dev : memref<?xf64>, %G : index,
           %topkg : index, %gscore : i32,
           %dsc : memref<?x?xf32>,
           %dids : memref<?x?xi32>, %dwts : memref<?x?xf32>)
  %k0e = gpu.launch_func async [%k0] @moe_dispatch_kernels::@expert_choice
      blocks in (%g_ec, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dsc : memref<?x?xf32>, %taken : index,
           %dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %dkeys : memref<?xi64>)
  // The selection before any drop, for co-activation counts: copied to
  // ids_out when it has rows, its pairs added to counts when the table has
  // pair rows ([2 + E, E + 1]); an empty grid otherwise.
  %n_out = memref.dim %ids_out, %c0 : memref<?x?xi32>
  %n_counts = memref.dim %counts, %c0 : memref<?x?xi64>
  %copying = arith.cmpi ne, %n_out, %c0 : index
  %pairing = arith.cmpi ugt, %n_counts, %c2 : index
  %recording = arith.ori %copying, %pairing : i1
  %g_rec = arith.select %recording, %tb, %c0 : index
  %k0r = gpu.launch_func async [%k0e] @moe_dispatch_kernels::@record_selection
      blocks in (%g_rec, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %ids_out : memref<?x?xi32>,
           %counts : memref<?x?xi64>)
  // The expert GEMMs' tile map, which the permutation fills: with a
  // capacity the second one, on the kept slots; the first one then has
  // none to fill.
  %tiles, %rows_per, %a9 = call @alloc_tile_map_async(%E, %R, %k0r)
      : (index, index, !gpu.async.token)
      -> (memref<?x4xi32>, index, !gpu.async.token)
  %no_tiles = memref.reinterpret_cast %tiles to offset: [0], sizes: [%c0, 4],
      strides: [4, 1] : memref<?x4xi32> to memref<?x4xi32>
  %tiles_first = arith.select %drops, %no_tiles, %tiles : memref<?x4xi32>
  %true = arith.constant true
  %mapped_first, %k3 = call @permute_async(%dids, %dwts, %dcnt, %offsets,
                                           %drt, %drw, %dsr, %rows_per,
                                           %tiles_first, %true, %a9)
      : (memref<?x?xi32>, memref<?x?xf32>, memref<?xi32>, memref<?xi32>,
         memref<?xi32>, memref<?xf32>, memref<?x?xi32>, index,
         memref<?x4xi32>, i1, !gpu.async.token) -> (i1, !gpu.async.token)
  %kd0 = gpu.memset async [%k3] %dropped, %z : memref<?xi32>, i32
  %kdk = gpu.launch_func async [%kd0] @moe_dispatch_kernels::@capacity_keys
      blocks in (%g_count2, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dwts : memref<?x?xf32>, %dsr : memref<?x?xi32>, %order : i32,
           %dkeys : memref<?xi64>)
  %kd1 = gpu.launch_func async [%kdk] @moe_dispatch_kernels::@capacity_drop
      blocks in (%g_drop, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %offsets : memref<?xi32>,
           %dkeys : memref<?xi64>, %cap : index, %cap_dev : memref<?xf64>,
           %cap_min : index, %cap_align : index, %order : i32,
           %dropped : memref<?xi32>, %dcnt : memref<?xi32>)
  %kd2 = gpu.launch_func async [%kd1] @moe_dispatch_kernels::@renormalize_kept
      blocks in (%g_renorm, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>, %E : index)
  %mapped_kept, %kd5 = call @permute_async(%dids, %dwts, %dcnt, %offsets,
                                           %drt, %drw, %dsr, %rows_per,
                                           %tiles, %drops, %kd2)
      : (memref<?x?xi32>, memref<?x?xf32>, memref<?xi32>, memref<?xi32>,
         memref<?xi32>, memref<?xf32>, memref<?x?xi32>, index,
         memref<?x4xi32>, i1, !gpu.async.token) -> (i1, !gpu.async.token)
  %mapped = arith.ori %mapped_first, %mapped_kept : i1
  %k4 = gpu.launch_func async [%kd5] @moe_dispatch_kernels::@gather_rows
      blocks in (%R, %c1, %c1) threads in (%c128, %c1, %c1)
      args(%x : memref<?x?xbf16>, %drt : memref<?xi32>,
           %dxp : memref<?x?xbf16>, %drw : memref<?xf32>,
           %on_input_i : i32)
  %f0 = gpu.dealloc async [%k4] %dids : memref<?x?xi32>
  %f1 = gpu.dealloc async [%f0] %dcnt : memref<?xi32>
  %f3 = gpu.dealloc async [%f1] %drw : memref<?xf32>
  %f4 = gpu.dealloc async [%f3] %dsc : memref<?x?xf32>
  %f5 = gpu.dealloc async [%f4] %dkeys : memref<?xi64>
  %f6 = gpu.dealloc async [%f5] %dz : memref<?x?xf32>
  return %dxp, %dsr, %dwts, %drt, %tiles, %rows_per, %mapped, %f6
      : memref<?x?xbf16>, memref<?x?xi32>, memref<?x?xf32>, memref<?xi32>,
        memref<?x4xi32>, index, i1, !gpu.async.token
}

// y += bf16(P x^T): a projection P [1, n, d] of every token (the base of
// LoRA experts), its GEMM that of the experts on the tokens as one group.
// Nothing is launched when P is empty ([0, ...]).
func.func private @add_token_projection_async(%x: memref<?x?xbf16>,
                                              %P: memref<?x?x?xbf16>,
                                              %y: memref<?x?xf32>,
                                              %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %z = arith.constant 0 : i32
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %Pn = memref.dim %P, %c0 : memref<?x?x?xbf16>
  %n = memref.dim %P, %c1 : memref<?x?x?xbf16>
  %Tp = arith.muli %T, %Pn : index
  %n_off = arith.muli %c2, %Pn : index
  %off, %a0 = gpu.alloc async [%stream] (%n_off) : memref<?xi32>
  %py, %a1 = gpu.alloc async [%a0] (%Tp, %n) : memref<?x?xf32>
  %none, %a2 = gpu.alloc async [%a1] (%c0) : memref<?xf32>
  %k0 = gpu.launch_func async [%a2] @moe_combine_kernels::@one_group
      blocks in (%Pn, %c1, %c1) threads in (%c1, %c1, %c1)
      args(%off : memref<?xi32>, %T : index)
  %xs = memref.reinterpret_cast %x to offset: [0], sizes: [%Tp, %d],
      strides: [%d, 1] : memref<?x?xbf16> to memref<?x?xbf16>
  %tiles, %maxtiles, %k1 = call @tile_map_async(%off, %Pn, %Tp, %k0)
      : (memref<?xi32>, index, index, !gpu.async.token)
      -> (memref<?x4xi32>, index, !gpu.async.token)
  %k2 = call @grouped_gemm_async(%xs, %P, %tiles, %maxtiles,
                                 %py, %k1)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x4xi32>, index,
         memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %np = arith.addi %n, %c255 : index
  %g_add = arith.divui %np, %c256 : index
  %gy = call @moe_gpu_grid_y(%Tp) : (index) -> index
  %gz = call @moe_gpu_grid_z(%Tp) : (index) -> index
  %k3 = gpu.launch_func async [%k2] @moe_combine_kernels::@add_shared
      blocks in (%g_add, %gy, %gz) threads in (%c256, %c1, %c1)
      args(%y : memref<?x?xf32>, %py : memref<?x?xf32>,
           %none : memref<?xf32>, %z : i32)
  %f0 = call @free_tile_map_async(%tiles, %k3)
      : (memref<?x4xi32>, !gpu.async.token)
      -> !gpu.async.token
  %f1 = gpu.dealloc async [%f0] %off : memref<?xi32>
  %f2 = gpu.dealloc async [%f1] %py : memref<?x?xf32>
  %f3 = gpu.dealloc async [%f2] %none : memref<?xf32>
  return %f3 : !gpu.async.token
}

// The shared expert (spec section 5) on every token, added after the
// routed sum: y += bf16(g(x) * S(x)), S's GEMMs those of the experts on the
// tokens as one more group (Sg, Su [1, Fs, d], Sd [1, d, Fs]), g the
// sigmoid of Sw [1, d] x, or 1 when Sw is [0, d]. Without a shared expert
// (Sg [0, ...]) every size is 0 and nothing is launched. (Not a branch: a
// token that reaches the final synchronization through a block argument
// lowers to an event synchronization.)
func.func private @shared_expert_async(%x: memref<?x?xbf16>,
                                       %Sg: memref<?x?x?xbf16>,
                                       %Su: memref<?x?x?xbf16>,
                                       %Sd: memref<?x?x?xbf16>,
                                       %Sw: memref<?x?xbf16>, %act: i32,
                                       %y: memref<?x?xf32>,
                                       %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %Sn = memref.dim %Sg, %c0 : memref<?x?x?xbf16>
  %Gn = memref.dim %Sw, %c0 : memref<?x?xbf16>
  %gated = arith.cmpi ne, %Gn, %c0 : index
  %gated_i = arith.extui %gated : i1 to i32
  %Ts = arith.muli %T, %Sn : index
  %n_off = arith.muli %c2, %Sn : index
  %soff, %s0 = gpu.alloc async [%stream] (%n_off) : memref<?xi32>
  %sy, %s1 = gpu.alloc async [%s0] (%Ts, %d) : memref<?x?xf32>
  %sgv, %s2 = gpu.alloc async [%s1] (%Ts) : memref<?xf32>
  %s3 = gpu.launch_func async [%s2] @moe_combine_kernels::@one_group
      blocks in (%Sn, %c1, %c1) threads in (%c1, %c1, %c1)
      args(%soff : memref<?xi32>, %T : index)
  %gp = arith.addi %Ts, %c255 : index
  %gb = arith.divui %gp, %c256 : index
  %g_gate = arith.select %gated, %gb, %c0 : index
  %s4 = gpu.launch_func async [%s3] @moe_combine_kernels::@shared_gate
      blocks in (%g_gate, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%x : memref<?x?xbf16>, %Sw : memref<?x?xbf16>,
           %sgv : memref<?xf32>)
  // The tokens as Ts rows (all of them, or none; the identity layout has
  // offset 0).
  %xs = memref.reinterpret_cast %x to offset: [0], sizes: [%Ts, %d],
      strides: [%d, 1] : memref<?x?xbf16> to memref<?x?xbf16>
  %s5 = func.call @moe_expert_ffn_async(%xs, %Sg, %Su, %Sd, %soff, %sy, %act,
                                        %s4)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?xi32>, memref<?x?xf32>, i32,
         !gpu.async.token) -> !gpu.async.token
  %ap = arith.addi %d, %c255 : index
  %g_add = arith.divui %ap, %c256 : index
  %gy = call @moe_gpu_grid_y(%Ts) : (index) -> index
  %gz = call @moe_gpu_grid_z(%Ts) : (index) -> index
  %s6 = gpu.launch_func async [%s5] @moe_combine_kernels::@add_shared
      blocks in (%g_add, %gy, %gz) threads in (%c256, %c1, %c1)
      args(%y : memref<?x?xf32>, %sy : memref<?x?xf32>,
           %sgv : memref<?xf32>, %gated_i : i32)
  %s7 = gpu.dealloc async [%s6] %soff : memref<?xi32>
  %s8 = gpu.dealloc async [%s7] %sy : memref<?x?xf32>
  %s9 = gpu.dealloc async [%s8] %sgv : memref<?xf32>
  return %s9 : !gpu.async.token
}

func.func @moe_layer_async(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                           %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                           %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                           %Wd: memref<?x?x?xbf16>, %Bg: memref<?x?xbf16>,
                           %Bu: memref<?x?xbf16>, %Bd: memref<?x?xbf16>,
                           %Sg: memref<?x?x?xbf16>, %Su: memref<?x?x?xbf16>,
                           %Sd: memref<?x?x?xbf16>, %Sw: memref<?x?xbf16>,
                           %k: index,
                           %score: i32, %sel: i32, %flags: i32, %scale: f32, %param: f32,
                           %G: index, %topkg: index, %gscore: i32,
                           %cap: index, %offsets: memref<?xi32>,
                           %dropped: memref<?xi32>,
                           %ids_out: memref<?x?xi32>, %y: memref<?x?xf32>,
                           %stream: !gpu.async.token) -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %none0 = memref.alloca() : memref<0xf64>
  %none = memref.cast %none0 : memref<0xf64> to memref<?xf64>
  %nc0 = memref.alloca() : memref<0x0xi64>
  %no_counts = memref.cast %nc0 : memref<0x0xi64> to memref<?x?xi64>
  %r = call @moe_layer_knob_async(%x, %Wr, %rbias, %sbias, %Wg, %Wu, %Wd,
                                  %Bg, %Bu, %Bd, %Sg,
                                  %Su, %Sd, %Sw, %k, %score, %sel, %flags,
                                  %scale, %param, %none, %G, %topkg, %gscore,
                                  %cap, %none, %c0, %c1, %offsets, %dropped,
                                  %ids_out, %no_counts, %y, %stream)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, memref<?xf64>,
         index, index, i32, index, memref<?xf64>, index, index,
         memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xi64>,
         memref<?x?xf32>, !gpu.async.token)
      -> !gpu.async.token
  return %r : !gpu.async.token
}

// @moe_layer_async with tau (or p) read from param_dev[0] when param_dev
// has an element (router.mlir's router_topk), for the device entry points.
func.func private @moe_layer_knob_async(%x: memref<?x?xbf16>,
                           %Wr: memref<?x?xbf16>,
                           %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                           %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                           %Wd: memref<?x?x?xbf16>, %Bg: memref<?x?xbf16>,
                           %Bu: memref<?x?xbf16>, %Bd: memref<?x?xbf16>,
                           %Sg: memref<?x?x?xbf16>, %Su: memref<?x?x?xbf16>,
                           %Sd: memref<?x?x?xbf16>, %Sw: memref<?x?xbf16>,
                           %k: index,
                           %score: i32, %sel: i32, %flags: i32, %scale: f32,
                           %param: f32, %param_dev: memref<?xf64>,
                           %G: index, %topkg: index, %gscore: i32,
                           %cap: index, %cap_dev: memref<?xf64>,
                           %cap_min: index, %cap_align: index,
                           %offsets: memref<?xi32>,
                           %dropped: memref<?xi32>,
                           %ids_out: memref<?x?xi32>,
                           %counts: memref<?x?xi64>, %y: memref<?x?xf32>,
                           %stream: !gpu.async.token) -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c256 = arith.constant 256 : index
  %c1023 = arith.constant 1023 : index
  %c1024 = arith.constant 1024 : index
  %i1 = arith.constant 1 : i32
  %i11 = arith.constant 11 : i32
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %F = memref.dim %Wd, %c2 : memref<?x?x?xbf16>

  // Every check first, before anything is enqueued (the router's and the
  // dispatch's in @moe_route_dispatch_async).
  call @check_expert_limits(%d, %E) : (index, index) -> ()
  call @check_expert_limits(%F, %E) : (index, index) -> ()
  %Sn = memref.dim %Sg, %c0 : memref<?x?x?xbf16>
  %Fs = memref.dim %Sg, %c1 : memref<?x?x?xbf16>
  call @check_expert_limits(%Fs, %Sn) : (index, index) -> ()
  // The experts' activation (@activation_of). Weights applied to the
  // expert input (bit 2048): the combine is unweighted.
  %act = call @activation_of(%flags) : (i32) -> i32
  %on_input_i = call @flag_bits(%flags, %i11, %i1) : (i32, i32, i32) -> i32

  %dxp, %dsr, %dwts, %drt, %tiles, %rows_per, %mapped, %k3 =
      call @moe_route_dispatch_async(
      %x, %Wr, %rbias, %sbias, %k, %score, %sel, %flags, %scale, %param,
      %param_dev, %G, %topkg, %gscore, %cap, %cap_dev, %cap_min, %cap_align,
      %offsets, %dropped, %ids_out, %counts, %stream)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         index, i32, i32, i32, f32, f32, memref<?xf64>, index, index, i32,
         index, memref<?xf64>, index, index, memref<?xi32>, memref<?xi32>,
         memref<?x?xi32>, memref<?x?xi64>, !gpu.async.token)
      -> (memref<?x?xbf16>, memref<?x?xi32>, memref<?x?xf32>, memref<?xi32>,
          memref<?x4xi32>, index, i1, !gpu.async.token)
  %k3m = call @build_tile_map_async(%offsets, %E, %rows_per, %tiles,
                                    %mapped, %k3)
      : (memref<?xi32>, index, index, memref<?x4xi32>, i1, !gpu.async.token)
      -> !gpu.async.token
  %k4 = gpu.dealloc async [%k3m] %drt : memref<?xi32>
  %R = memref.dim %dxp, %c0 : memref<?x?xbf16>
  %drows, %a0 = gpu.alloc async [%k4] (%R, %d) : memref<?x?xf32>
  %k5e = call @expert_ffn_mapped_async(%dxp, %Wg, %Wu, %Wd, %Bg, %Bu, %Bd,
                                       %tiles, %drows, %act, %a0)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
         memref<?x?xbf16>, memref<?x4xi32>, memref<?x?xf32>, i32,
         !gpu.async.token) -> !gpu.async.token
  %k5 = call @free_tile_map_async(%tiles, %k5e)
      : (memref<?x4xi32>, !gpu.async.token) -> !gpu.async.token
  %yp = arith.addi %d, %c1023 : index
  %g_combine = arith.divui %yp, %c1024 : index
  %cy = call @moe_gpu_grid_y(%T) : (index) -> index
  %cz = call @moe_gpu_grid_z(%T) : (index) -> index
  %k6 = gpu.launch_func async [%k5] @moe_combine_kernels::@combine
      blocks in (%g_combine, %cy, %cz) threads in (%c256, %c1, %c1)
      args(%drows : memref<?x?xf32>, %dsr : memref<?x?xi32>,
           %dwts : memref<?x?xf32>, %y : memref<?x?xf32>,
           %on_input_i : i32)
  %k7 = call @shared_expert_async(%x, %Sg, %Su, %Sd, %Sw, %act, %y, %k6)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?xbf16>, i32, memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %f0 = gpu.dealloc async [%k7] %dxp : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %dsr : memref<?x?xi32>
  %f2 = gpu.dealloc async [%f1] %dwts : memref<?x?xf32>
  %f3 = gpu.dealloc async [%f2] %drows : memref<?x?xf32>
  return %f3 : !gpu.async.token
}

// LoRA experts (spec section 5), both kinds, on the routing of
// @moe_layer_async; the gathered rows xp, `offsets` and the tile maps of
// the groups and of all kept rows as one group:
//
//   lora (Pu, Pd, Au, Bu, Ad, Bd empty; Pg the base [1, d_out, d], Ag, Bg
//   the pairs A [E, r, d], B [E, d_out, r]):
//     rows = bf16(s * B_e bf16(A_e xp))        @lora_delta_async, lora_sum
//     y = combine(rows) + bf16(x Pg^T)         @add_token_projection_async
//   lora_gated (MixLoRA; Pg, Pu [1, f, d], Pd [1, d, f] the frozen FFN,
//   Ag, Au [E, r, d], Bg, Bu [E, f, r], Ad [E, r, f], Bd [E, d, r]):
//     h = bf16(act(xp Pg^T + s Gd) * (xp Pu^T + s Ud))          lora_gated
//     rows = bf16(h Pd^T + s Dd)                                 lora_sum
//     y = combine(rows)
//   with Gd, Ud, Dd the deltas B_e bf16(A_e .) of @lora_delta_async and
//   s = alpha / r. Then the shared expert, as in @moe_layer_async. The
//   frozen projections of lora_gated run on the kept rows (every slot of a
//   token recomputes them), not once per token.
func.func @moe_lora_layer_async(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                                %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                                %Pg: memref<?x?x?xbf16>,
                                %Pu: memref<?x?x?xbf16>,
                                %Pd: memref<?x?x?xbf16>,
                                %Ag: memref<?x?x?xbf16>,
                                %Bg: memref<?x?x?xbf16>,
                                %Au: memref<?x?x?xbf16>,
                                %Bu: memref<?x?x?xbf16>,
                                %Ad: memref<?x?x?xbf16>,
                                %Bd: memref<?x?x?xbf16>,
                                %Sg: memref<?x?x?xbf16>,
                                %Su: memref<?x?x?xbf16>,
                                %Sd: memref<?x?x?xbf16>,
                                %Sw: memref<?x?xbf16>, %k: index,
                                %score: i32, %sel: i32, %flags: i32,
                                %scale: f32, %param: f32, %G: index,
                                %topkg: index, %gscore: i32, %s: f32,
                                %cap: index, %offsets: memref<?xi32>,
                                %dropped: memref<?xi32>,
                                %ids_out: memref<?x?xi32>,
                                %y: memref<?x?xf32>,
                                %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %none0 = memref.alloca() : memref<0xf64>
  %none = memref.cast %none0 : memref<0xf64> to memref<?xf64>
  %nc0 = memref.alloca() : memref<0x0xi64>
  %no_counts = memref.cast %nc0 : memref<0x0xi64> to memref<?x?xi64>
  %r = call @moe_lora_layer_knob_async(%x, %Wr, %rbias, %sbias, %Pg, %Pu, %Pd,
                                       %Ag, %Bg, %Au, %Bu, %Ad, %Bd, %Sg, %Su,
                                       %Sd, %Sw, %k, %score, %sel, %flags,
                                       %scale, %param, %none, %G, %topkg,
                                       %gscore, %s, %cap, %none, %c0, %c1,
                                       %offsets, %dropped, %ids_out,
                                       %no_counts, %y, %stream)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, memref<?xf64>,
         index, index, i32, f32, index, memref<?xf64>, index, index,
         memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xi64>,
         memref<?x?xf32>, !gpu.async.token)
      -> !gpu.async.token
  return %r : !gpu.async.token
}

// @moe_lora_layer_async with tau (or p) read from param_dev[0] when
// param_dev has an element, for the device entry points.
func.func private @moe_lora_layer_knob_async(%x: memref<?x?xbf16>,
                                %Wr: memref<?x?xbf16>,
                                %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                                %Pg: memref<?x?x?xbf16>,
                                %Pu: memref<?x?x?xbf16>,
                                %Pd: memref<?x?x?xbf16>,
                                %Ag: memref<?x?x?xbf16>,
                                %Bg: memref<?x?x?xbf16>,
                                %Au: memref<?x?x?xbf16>,
                                %Bu: memref<?x?x?xbf16>,
                                %Ad: memref<?x?x?xbf16>,
                                %Bd: memref<?x?x?xbf16>,
                                %Sg: memref<?x?x?xbf16>,
                                %Su: memref<?x?x?xbf16>,
                                %Sd: memref<?x?x?xbf16>,
                                %Sw: memref<?x?xbf16>, %k: index,
                                %score: i32, %sel: i32, %flags: i32,
                                %scale: f32, %param: f32,
                                %param_dev: memref<?xf64>, %G: index,
                                %topkg: index, %gscore: i32, %s: f32,
                                %cap: index, %cap_dev: memref<?xf64>,
                                %cap_min: index, %cap_align: index,
                                %offsets: memref<?xi32>,
                                %dropped: memref<?xi32>,
                                %ids_out: memref<?x?xi32>,
                                %counts: memref<?x?xi64>,
                                %y: memref<?x?xf32>,
                                %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %c1023 = arith.constant 1023 : index
  %c1024 = arith.constant 1024 : index
  %i1 = arith.constant 1 : i32
  %i11 = arith.constant 11 : i32
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %dout = memref.dim %y, %c1 : memref<?x?xf32>
  %r = memref.dim %Ag, %c1 : memref<?x?x?xbf16>
  %n1 = memref.dim %Bg, %c1 : memref<?x?x?xbf16>
  // lora_gated when the up projection carries a LoRA pair.
  %Eu = memref.dim %Au, %c0 : memref<?x?x?xbf16>
  %gated = arith.cmpi ne, %Eu, %c0 : index
  %F = memref.dim %Pu, %c1 : memref<?x?x?xbf16>
  %Nd = memref.dim %Pd, %c1 : memref<?x?x?xbf16>

  // Every check first: the reduction sizes d, r and f (0 for lora).
  call @check_expert_limits(%d, %E) : (index, index) -> ()
  call @check_expert_limits(%r, %E) : (index, index) -> ()
  call @check_expert_limits(%F, %E) : (index, index) -> ()
  %Sn = memref.dim %Sg, %c0 : memref<?x?x?xbf16>
  %Fs = memref.dim %Sg, %c1 : memref<?x?x?xbf16>
  call @check_expert_limits(%Fs, %Sn) : (index, index) -> ()
  %act = call @activation_of(%flags) : (i32) -> i32
  %on_input_i = call @flag_bits(%flags, %i11, %i1) : (i32, i32, i32) -> i32

  %xp, %dsr, %dwts, %drt, %tiles, %rows_per, %mapped, %k0 =
      call @moe_route_dispatch_async(
      %x, %Wr, %rbias, %sbias, %k, %score, %sel, %flags, %scale, %param,
      %param_dev, %G, %topkg, %gscore, %cap, %cap_dev, %cap_min, %cap_align,
      %offsets, %dropped, %ids_out, %counts, %stream)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         index, i32, i32, i32, f32, f32, memref<?xf64>, index, index, i32,
         index, memref<?xf64>, index, index, memref<?xi32>, memref<?xi32>,
         memref<?x?xi32>, memref<?x?xi64>, !gpu.async.token)
      -> (memref<?x?xbf16>, memref<?x?xi32>, memref<?x?xf32>, memref<?xi32>,
          memref<?x4xi32>, index, i1, !gpu.async.token)
  // The rows of xp (at most T * k), which every buffer of rows takes.
  %R = memref.dim %xp, %c0 : memref<?x?xbf16>

  // The tile maps: of the groups (unless the permutation filled it), and
  // of the kept rows as one group (offsets [0, offsets[E]], for the
  // frozen projections of lora_gated).
  %k1 = call @build_tile_map_async(%offsets, %E, %rows_per, %tiles,
                                   %mapped, %k0)
      : (memref<?xi32>, index, index, memref<?x4xi32>, i1, !gpu.async.token)
      -> !gpu.async.token
  %mt = memref.dim %tiles, %c0 : memref<?x4xi32>
  %one = arith.select %gated, %c1, %c0 : index
  %Rg = arith.select %gated, %R, %c0 : index
  %n_all = arith.muli %one, %c2 : index
  %all, %a0 = gpu.alloc async [%k1] (%n_all) : memref<?xi32>
  %k2 = gpu.launch_func async [%a0] @moe_combine_kernels::@kept_as_one_group
      blocks in (%one, %c1, %c1) threads in (%c1, %c1, %c1)
      args(%offsets : memref<?xi32>, %E : index, %all : memref<?xi32>)
  %tiles1, %mt1, %k2t = call @tile_map_async(%all, %one, %Rg, %k2)
      : (memref<?xi32>, index, index, !gpu.async.token)
      -> (memref<?x4xi32>, index, !gpu.async.token)
  // lora_gated with the weights applied to the output: the frozen gate and
  // up projections are the same for every row of a token, so they run once
  // per token (the tokens as one group, [0, T]) and lora_gated reads them
  // through row_token; with the weights applied to the input each row is
  // scaled, and they run on the rows.
  %i0 = arith.constant 0 : i32
  %on_input = arith.cmpi ne, %on_input_i, %i0 : i32
  %true = arith.constant true
  %on_output = arith.xori %on_input, %true : i1
  %per_token = arith.andi %gated, %on_output : i1
  %one_tok = arith.select %per_token, %c1, %c0 : index
  %T_tok = arith.select %per_token, %T, %c0 : index
  %n_tok = arith.muli %one_tok, %c2 : index
  %tok, %a0t = gpu.alloc async [%k2t] (%n_tok) : memref<?xi32>
  %k2g = gpu.launch_func async [%a0t] @moe_combine_kernels::@one_group
      blocks in (%one_tok, %c1, %c1) threads in (%c1, %c1, %c1)
      args(%tok : memref<?xi32>, %T : index)
  %tiles2, %mt2, %k3 = call @tile_map_async(%tok, %one_tok, %T_tok, %k2g)
      : (memref<?xi32>, index, index, !gpu.async.token)
      -> (memref<?x4xi32>, index, !gpu.async.token)
  %fin = arith.select %per_token, %x, %xp : memref<?x?xbf16>
  %ftiles = arith.select %per_token, %tiles2, %tiles1 : memref<?x4xi32>
  %fmt = arith.select %per_token, %mt2, %mt1 : index
  %n0 = arith.select %per_token, %T, %Rg : index
  %no_rows = memref.reinterpret_cast %offsets to offset: [0], sizes: [%c0],
      strides: [1] : memref<?xi32> to memref<?xi32>
  %base = arith.select %per_token, %drt, %no_rows : memref<?xi32>

  // The first projections: the gate's (lora: the only one) delta Gd, the
  // up delta Ud, and the frozen gate and up rows G0, U0 (empty for lora:
  // Pg is then applied to the tokens).
  %none = memref.reinterpret_cast %Pg to offset: [0],
      sizes: [%c0, %c0, %c0], strides: [%c0, %c0, 1]
      : memref<?x?x?xbf16> to memref<?x?x?xbf16>
  %Prow = arith.select %gated, %Pg, %none : memref<?x?x?xbf16>
  %Ptok = arith.select %gated, %none, %Pg : memref<?x?x?xbf16>
  %Gd, %a1 = gpu.alloc async [%k3] (%R, %n1) : memref<?x?xf32>
  %Ud, %a2 = gpu.alloc async [%a1] (%R, %F) : memref<?x?xf32>
  %G0, %a3 = gpu.alloc async [%a2] (%n0, %F) : memref<?x?xf32>
  %U0, %a4 = gpu.alloc async [%a3] (%n0, %F) : memref<?x?xf32>
  %H, %a5 = gpu.alloc async [%a4] (%R, %F) : memref<?x?xbf16>
  %Dd, %a6 = gpu.alloc async [%a5] (%R, %Nd) : memref<?x?xf32>
  %D0, %a7 = gpu.alloc async [%a6] (%Rg, %Nd) : memref<?x?xf32>
  %l0 = call @lora_delta_async(%xp, %Ag, %Bg, %tiles, %mt,
                               %Gd, %a7)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x4xi32>, index,
         memref<?x?xf32>, !gpu.async.token) -> !gpu.async.token
  %l1 = call @lora_delta_async(%xp, %Au, %Bu, %tiles, %mt,
                               %Ud, %l0)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x4xi32>, index,
         memref<?x?xf32>, !gpu.async.token) -> !gpu.async.token
  %l2 = call @grouped_gemm_async(%fin, %Prow, %ftiles, %fmt,
                                 %G0, %l1)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x4xi32>, index,
         memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %l3 = call @grouped_gemm_async(%fin, %Pu, %ftiles, %fmt,
                                 %U0, %l2)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x4xi32>, index,
         memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  // lora_gated: the gated activation, then the down projection's delta and
  // frozen rows (all empty for lora).
  %nh = arith.muli %R, %F : index
  %nhp = arith.addi %nh, %c255 : index
  %g_h = arith.divui %nhp, %c256 : index
  %l4 = gpu.launch_func async [%l3] @moe_experts::@lora_gated
      blocks in (%g_h, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%G0 : memref<?x?xf32>, %Gd : memref<?x?xf32>,
           %U0 : memref<?x?xf32>, %Ud : memref<?x?xf32>, %s : f32,
           %act : i32, %base : memref<?xi32>, %H : memref<?x?xbf16>)
  %l5 = call @lora_delta_async(%H, %Ad, %Bd, %tiles, %mt,
                               %Dd, %l4)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x4xi32>, index,
         memref<?x?xf32>, !gpu.async.token) -> !gpu.async.token
  %l6 = call @grouped_gemm_async(%H, %Pd, %tiles1, %mt1,
                                 %D0, %l5)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x4xi32>, index,
         memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  // The expert rows, rounded to bf16: D0 + s Dd (lora_gated) or s Gd (lora;
  // D0 has no rows), in place.
  %rows = arith.select %gated, %Dd, %Gd : memref<?x?xf32>
  %nr = arith.muli %R, %dout : index
  %nrp = arith.addi %nr, %c255 : index
  %g_r = arith.divui %nrp, %c256 : index
  %l7 = gpu.launch_func async [%l6] @moe_experts::@lora_sum
      blocks in (%g_r, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%D0 : memref<?x?xf32>, %rows : memref<?x?xf32>, %s : f32,
           %rows : memref<?x?xf32>)
  %yp = arith.addi %dout, %c1023 : index
  %g_combine = arith.divui %yp, %c1024 : index
  %cy = call @moe_gpu_grid_y(%T) : (index) -> index
  %cz = call @moe_gpu_grid_z(%T) : (index) -> index
  %l8 = gpu.launch_func async [%l7] @moe_combine_kernels::@combine
      blocks in (%g_combine, %cy, %cz) threads in (%c256, %c1, %c1)
      args(%rows : memref<?x?xf32>, %dsr : memref<?x?xi32>,
           %dwts : memref<?x?xf32>, %y : memref<?x?xf32>,
           %on_input_i : i32)
  %l9 = call @add_token_projection_async(%x, %Ptok, %y, %l8)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %l10 = call @shared_expert_async(%x, %Sg, %Su, %Sd, %Sw, %act, %y, %l9)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?xbf16>, i32, memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token

  %f0 = call @free_tile_map_async(%tiles, %l10)
      : (memref<?x4xi32>, !gpu.async.token)
      -> !gpu.async.token
  %f1 = call @free_tile_map_async(%tiles1, %f0)
      : (memref<?x4xi32>, !gpu.async.token)
      -> !gpu.async.token
  %f2 = gpu.dealloc async [%f1] %all : memref<?xi32>
  %f3 = gpu.dealloc async [%f2] %Gd : memref<?x?xf32>
  %f4 = gpu.dealloc async [%f3] %Ud : memref<?x?xf32>
  %f5 = gpu.dealloc async [%f4] %G0 : memref<?x?xf32>
  %f6 = gpu.dealloc async [%f5] %U0 : memref<?x?xf32>
  %f7 = gpu.dealloc async [%f6] %H : memref<?x?xbf16>
  %f8 = gpu.dealloc async [%f7] %Dd : memref<?x?xf32>
  %f9 = gpu.dealloc async [%f8] %D0 : memref<?x?xf32>
  %f10 = gpu.dealloc async [%f9] %xp : memref<?x?xbf16>
  %f11 = gpu.dealloc async [%f10] %dsr : memref<?x?xi32>
  %f12 = gpu.dealloc async [%f11] %dwts : memref<?x?xf32>
  %f13 = call @free_tile_map_async(%tiles2, %f12)
      : (memref<?x4xi32>, !gpu.async.token)
      -> !gpu.async.token
  %f14 = gpu.dealloc async [%f13] %tok : memref<?xi32>
  %f15 = gpu.dealloc async [%f14] %drt : memref<?xi32>
  return %f15 : !gpu.async.token
}

// A layer's inputs x, rbias and sbias copied to the device on a new
// stream, and device buffers for its outputs offsets, dropped, ids and y.
func.func private @layer_to_device_async(%x: memref<?x?xbf16>,
                                         %rbias: memref<?xf32>,
                                         %sbias: memref<?xf32>,
                                         %offsets: memref<?xi32>,
                                         %dropped: memref<?xi32>,
                                         %ids: memref<?x?xi32>,
                                         %y: memref<?x?xf32>)
    -> (memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
        memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>, !gpu.async.token) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %dout = memref.dim %y, %c1 : memref<?x?xf32>
  %nr = memref.dim %rbias, %c0 : memref<?xf32>
  %ns = memref.dim %sbias, %c0 : memref<?xf32>
  %E1 = memref.dim %offsets, %c0 : memref<?xi32>
  %nd = memref.dim %dropped, %c0 : memref<?xi32>
  %ni = memref.dim %ids, %c0 : memref<?x?xi32>
  %S = memref.dim %ids, %c1 : memref<?x?xi32>
  %t0 = gpu.wait async
  %dx, %a0 = gpu.alloc async [%t0] (%T, %d) : memref<?x?xbf16>
  %drb, %a1 = gpu.alloc async [%a0] (%nr) : memref<?xf32>
  %dsb, %a2 = gpu.alloc async [%a1] (%ns) : memref<?xf32>
  %doff, %a3 = gpu.alloc async [%a2] (%E1) : memref<?xi32>
  %ddr, %a4 = gpu.alloc async [%a3] (%nd) : memref<?xi32>
  %dy, %a5 = gpu.alloc async [%a4] (%T, %dout) : memref<?x?xf32>
  %dids, %a6 = gpu.alloc async [%a5] (%ni, %S) : memref<?x?xi32>
  %m0 = gpu.memcpy async [%a6] %dx, %x : memref<?x?xbf16>, memref<?x?xbf16>
  %m1 = gpu.memcpy async [%m0] %drb, %rbias : memref<?xf32>, memref<?xf32>
  %m2 = gpu.memcpy async [%m1] %dsb, %sbias : memref<?xf32>, memref<?xf32>
  return %dx, %drb, %dsb, %doff, %ddr, %dids, %dy, %m2
      : memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
        memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>, !gpu.async.token
}

// The outputs of a layer enqueued on the stream of @layer_to_device_async
// copied back to offsets, dropped, ids and y, the buffers freed, and the
// stream synchronized.
func.func private @layer_from_device(%offsets: memref<?xi32>,
                                     %dropped: memref<?xi32>,
                                     %ids: memref<?x?xi32>,
                                     %y: memref<?x?xf32>,
                                     %dx: memref<?x?xbf16>,
                                     %drb: memref<?xf32>, %dsb: memref<?xf32>,
                                     %doff: memref<?xi32>,
                                     %ddr: memref<?xi32>,
                                     %dids: memref<?x?xi32>,
                                     %dy: memref<?x?xf32>,
                                     %stream: !gpu.async.token) {
  %o0 = gpu.memcpy async [%stream] %y, %dy : memref<?x?xf32>, memref<?x?xf32>
  %o1 = gpu.memcpy async [%o0] %offsets, %doff : memref<?xi32>, memref<?xi32>
  %o2 = gpu.memcpy async [%o1] %dropped, %ddr : memref<?xi32>, memref<?xi32>
  %o3 = gpu.memcpy async [%o2] %ids, %dids : memref<?x?xi32>, memref<?x?xi32>
  %f0 = gpu.dealloc async [%o3] %dx : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %drb : memref<?xf32>
  %f2 = gpu.dealloc async [%f1] %dsb : memref<?xf32>
  %f3 = gpu.dealloc async [%f2] %doff : memref<?xi32>
  %f4 = gpu.dealloc async [%f3] %dy : memref<?x?xf32>
  %f5 = gpu.dealloc async [%f4] %ddr : memref<?xi32>
  %f6 = gpu.dealloc async [%f5] %dids : memref<?x?xi32>
  gpu.wait [%f6]
  return
}

func.func @moe_layer_resident(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                              %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                              %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                              %Wd: memref<?x?x?xbf16>, %Bg: memref<?x?xbf16>,
                              %Bu: memref<?x?xbf16>, %Bd: memref<?x?xbf16>,
                              %Sg: memref<?x?x?xbf16>,
                              %Su: memref<?x?x?xbf16>,
                              %Sd: memref<?x?x?xbf16>, %Sw: memref<?x?xbf16>,
                              %k: index, %score: i32, %sel: i32, %flags: i32,
                              %scale: f32, %param: f32, %G: index,
                              %topkg: index, %gscore: i32, %cap: index,
                              %offsets: memref<?xi32>,
                              %dropped: memref<?xi32>,
                              %ids: memref<?x?xi32>,
                              %y: memref<?x?xf32>) {
  %dx, %drb, %dsb, %doff, %ddr, %dids, %dy, %t = call @layer_to_device_async(
      %x, %rbias, %sbias, %offsets, %dropped, %ids, %y)
      : (memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
         memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>)
      -> (memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
          memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>, !gpu.async.token)
  %l = call @moe_layer_async(%dx, %Wr, %drb, %dsb, %Wg, %Wu, %Wd, %Bg, %Bu,
                             %Bd, %Sg, %Su, %Sd, %Sw, %k,
                             %score, %sel, %flags, %scale, %param, %G,
                             %topkg, %gscore, %cap, %doff, %ddr, %dids, %dy,
                             %t)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index, i32,
         index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>,
         memref<?x?xf32>, !gpu.async.token) -> !gpu.async.token
  call @layer_from_device(%offsets, %dropped, %ids, %y, %dx, %drb, %dsb,
                          %doff, %ddr, %dids, %dy, %l)
      : (memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>,
         memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
         memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>, !gpu.async.token)
      -> ()
  return
}

func.func @moe_lora_layer_resident(%x: memref<?x?xbf16>,
                                   %Wr: memref<?x?xbf16>,
                                   %rbias: memref<?xf32>,
                                   %sbias: memref<?xf32>,
                                   %Pg: memref<?x?x?xbf16>,
                                   %Pu: memref<?x?x?xbf16>,
                                   %Pd: memref<?x?x?xbf16>,
                                   %Ag: memref<?x?x?xbf16>,
                                   %Bg: memref<?x?x?xbf16>,
                                   %Au: memref<?x?x?xbf16>,
                                   %Bu: memref<?x?x?xbf16>,
                                   %Ad: memref<?x?x?xbf16>,
                                   %Bd: memref<?x?x?xbf16>,
                                   %Sg: memref<?x?x?xbf16>,
                                   %Su: memref<?x?x?xbf16>,
                                   %Sd: memref<?x?x?xbf16>,
                                   %Sw: memref<?x?xbf16>, %k: index,
                                   %score: i32, %sel: i32, %flags: i32,
                                   %scale: f32, %param: f32, %G: index,
                                   %topkg: index, %gscore: i32, %s: f32,
                                   %cap: index, %offsets: memref<?xi32>,
                                   %dropped: memref<?xi32>,
                                   %ids: memref<?x?xi32>,
                                   %y: memref<?x?xf32>) {
  %dx, %drb, %dsb, %doff, %ddr, %dids, %dy, %t = call @layer_to_device_async(
      %x, %rbias, %sbias, %offsets, %dropped, %ids, %y)
      : (memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
         memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>)
      -> (memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
          memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>, !gpu.async.token)
  %l = call @moe_lora_layer_async(%dx, %Wr, %drb, %dsb, %Pg, %Pu, %Pd, %Ag,
                                  %Bg, %Au, %Bu, %Ad, %Bd, %Sg, %Su, %Sd, %Sw,
                                  %k, %score, %sel, %flags, %scale, %param,
                                  %G, %topkg, %gscore, %s, %cap, %doff, %ddr,
                                  %dids, %dy, %t)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index, i32,
         f32, index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>,
         memref<?x?xf32>, !gpu.async.token) -> !gpu.async.token
  call @layer_from_device(%offsets, %dropped, %ids, %y, %dx, %drb, %dsb,
                          %doff, %ddr, %dids, %dy, %l)
      : (memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>,
         memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?xi32>,
         memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>, !gpu.async.token)
      -> ()
  return
}

// The device outputs of a layer whose results stay on the device: its
// offsets [E + 1], dropped counts ([E] with a capacity, flags bit 16;
// else none, which nothing writes or zeroes) and f32 output [T, dout],
// allocated in stream order.
func.func private @device_outputs_async(%E: index, %T: index, %dout: index,
                                        %flags: i32,
                                        %stream: !gpu.async.token)
    -> (memref<?xi32>, memref<?xi32>, memref<?x?xf32>, !gpu.async.token) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %i16 = arith.constant 16 : i32
  %z = arith.constant 0 : i32
  %E1 = arith.addi %E, %c1 : index
  %bit16 = arith.andi %flags, %i16 : i32
  %drops = arith.cmpi ne, %bit16, %z : i32
  %nd = arith.select %drops, %E, %c0 : index
  %off, %a0 = gpu.alloc async [%stream] (%E1) : memref<?xi32>
  %dr, %a1 = gpu.alloc async [%a0] (%nd) : memref<?xi32>
  %yf, %a2 = gpu.alloc async [%a1] (%T, %dout) : memref<?x?xf32>
  return %off, %dr, %yf, %a2
      : memref<?xi32>, memref<?xi32>, memref<?x?xf32>, !gpu.async.token
}

// y = bf16(yf), the call's counts added to `counts` (no rows: none), both
// by one launch of finish_layer, and the temporaries of
// @device_outputs_async freed, in stream order.
func.func private @device_results_async(%off: memref<?xi32>,
                                        %dr: memref<?xi32>,
                                        %yf: memref<?x?xf32>,
                                        %counts: memref<?x?xi64>,
                                        %y: memref<?x?xbf16>,
                                        %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %T = memref.dim %yf, %c0 : memref<?x?xf32>
  %dout = memref.dim %yf, %c1 : memref<?x?xf32>
  %E1 = memref.dim %off, %c0 : memref<?xi32>
  %n = arith.muli %T, %dout : index
  %np = arith.addi %n, %c255 : index
  %g_round = arith.divui %np, %c256 : index
  %rows = memref.dim %counts, %c0 : memref<?x?xi64>
  %counted = arith.cmpi ne, %rows, %c0 : index
  %ep = arith.addi %E1, %c255 : index
  %g_e = arith.divui %ep, %c256 : index
  %g_count = arith.select %counted, %g_e, %c0 : index
  %g = arith.addi %g_round, %g_count : index
  %s = gpu.launch_func async [%stream] @moe_dispatch_kernels::@finish_layer
      blocks in (%g, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%yf : memref<?x?xf32>, %y : memref<?x?xbf16>,
           %off : memref<?xi32>, %dr : memref<?xi32>,
           %counts : memref<?x?xi64>)
  %f0 = gpu.dealloc async [%s] %off : memref<?xi32>
  %f1 = gpu.dealloc async [%f0] %dr : memref<?xi32>
  %f2 = gpu.dealloc async [%f1] %yf : memref<?x?xf32>
  return %f2 : !gpu.async.token
}

// The blocks of 256 threads of an elementwise kernel over `rows` [T, n].
func.func private @element_blocks(%rows: memref<?x?xbf16>) -> index {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %T = memref.dim %rows, %c0 : memref<?x?xbf16>
  %n = memref.dim %rows, %c1 : memref<?x?xbf16>
  %Tn = arith.muli %T, %n : index
  %g = call @ceil_div(%Tn, %c256) : (index, index) -> index
  return %g : index
}

// A device entry point of a layer that moe-narrow-to-bf16 computes in
// bf16 on f32 (xf) or f16 (xh; xf [0, 0]) rows: xb = bf16(x) on `stream`,
// before @moe_layer_device_async reads xb; @moe_rows_from_bf16_async
// widens its bf16 output yb into yf, or into yh when yf is [0, 0]. The
// caller owns xb and yb (the runtime's scratch buffers of the call).
func.func @moe_rows_to_bf16_async(%xf: memref<?x?xf32>, %xh: memref<?x?xf16>,
                                  %xb: memref<?x?xbf16>,
                                  %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %g = call @element_blocks(%xb) : (memref<?x?xbf16>) -> index
  %s = gpu.launch_func async [%stream] @moe_dispatch_kernels::@rows_to_bf16
      blocks in (%g, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%xf : memref<?x?xf32>, %xh : memref<?x?xf16>,
           %xb : memref<?x?xbf16>)
  return %s : !gpu.async.token
}

func.func @moe_rows_from_bf16_async(%yb: memref<?x?xbf16>,
                                    %yf: memref<?x?xf32>,
                                    %yh: memref<?x?xf16>,
                                    %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %g = call @element_blocks(%yb) : (memref<?x?xbf16>) -> index
  %s = gpu.launch_func async [%stream] @moe_dispatch_kernels::@rows_from_bf16
      blocks in (%g, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%yb : memref<?x?xbf16>, %yf : memref<?x?xf32>,
           %yh : memref<?x?xf16>)
  return %s : !gpu.async.token
}

func.func @moe_layer_device_async(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                                  %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                                  %Wg: memref<?x?x?xbf16>,
                                  %Wu: memref<?x?x?xbf16>,
                                  %Wd: memref<?x?x?xbf16>,
                                  %Bg: memref<?x?xbf16>,
                                  %Bu: memref<?x?xbf16>,
                                  %Bd: memref<?x?xbf16>,
                                  %Sg: memref<?x?x?xbf16>,
                                  %Su: memref<?x?x?xbf16>,
                                  %Sd: memref<?x?x?xbf16>,
                                  %Sw: memref<?x?xbf16>, %k: index,
                                  %score: i32, %sel: i32, %flags: i32,
                                  %scale: f32, %param: f32,
                                  %param_dev: memref<?xf64>, %G: index,
                                  %topkg: index, %gscore: i32, %cap: index,
                                  %cap_dev: memref<?xf64>, %cap_min: index,
                                  %cap_align: index,
                                  %counts: memref<?x?xi64>,
                                  %y: memref<?x?xbf16>,
                                  %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %dout = memref.dim %y, %c1 : memref<?x?xbf16>
  %ni0 = memref.alloca() : memref<0x0xi32>
  %no_ids = memref.cast %ni0 : memref<0x0xi32> to memref<?x?xi32>
  %off, %dr, %yf, %t = call @device_outputs_async(%E, %T, %dout, %flags,
                                                  %stream)
      : (index, index, index, i32, !gpu.async.token)
      -> (memref<?xi32>, memref<?xi32>, memref<?x?xf32>, !gpu.async.token)
  %l = call @moe_layer_knob_async(%x, %Wr, %rbias, %sbias, %Wg, %Wu, %Wd,
                                  %Bg, %Bu, %Bd,
                                  %Sg, %Su, %Sd, %Sw, %k, %score, %sel,
                                  %flags, %scale, %param, %param_dev, %G,
                                  %topkg, %gscore, %cap, %cap_dev, %cap_min,
                                  %cap_align, %off, %dr, %no_ids, %counts,
                                  %yf, %t)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, memref<?xf64>,
         index, index, i32, index, memref<?xf64>, index, index,
         memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xi64>,
         memref<?x?xf32>, !gpu.async.token)
      -> !gpu.async.token
  %r = call @device_results_async(%off, %dr, %yf, %counts, %y, %l)
      : (memref<?xi32>, memref<?xi32>, memref<?x?xf32>, memref<?x?xi64>,
         memref<?x?xbf16>, !gpu.async.token) -> !gpu.async.token
  return %r : !gpu.async.token
}

func.func @moe_lora_layer_device_async(%x: memref<?x?xbf16>,
                                       %Wr: memref<?x?xbf16>,
                                       %rbias: memref<?xf32>,
                                       %sbias: memref<?xf32>,
                                       %Pg: memref<?x?x?xbf16>,
                                       %Pu: memref<?x?x?xbf16>,
                                       %Pd: memref<?x?x?xbf16>,
                                       %Ag: memref<?x?x?xbf16>,
                                       %Bg: memref<?x?x?xbf16>,
                                       %Au: memref<?x?x?xbf16>,
                                       %Bu: memref<?x?x?xbf16>,
                                       %Ad: memref<?x?x?xbf16>,
                                       %Bd: memref<?x?x?xbf16>,
                                       %Sg: memref<?x?x?xbf16>,
                                       %Su: memref<?x?x?xbf16>,
                                       %Sd: memref<?x?x?xbf16>,
                                       %Sw: memref<?x?xbf16>, %k: index,
                                       %score: i32, %sel: i32, %flags: i32,
                                       %scale: f32, %param: f32,
                                       %param_dev: memref<?xf64>, %G: index,
                                       %topkg: index, %gscore: i32, %s: f32,
                                       %cap: index, %cap_dev: memref<?xf64>,
                                       %cap_min: index, %cap_align: index,
                                       %counts: memref<?x?xi64>,
                                       %y: memref<?x?xbf16>,
                                       %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %dout = memref.dim %y, %c1 : memref<?x?xbf16>
  %ni0 = memref.alloca() : memref<0x0xi32>
  %no_ids = memref.cast %ni0 : memref<0x0xi32> to memref<?x?xi32>
  %off, %dr, %yf, %t = call @device_outputs_async(%E, %T, %dout, %flags,
                                                  %stream)
      : (index, index, index, i32, !gpu.async.token)
      -> (memref<?xi32>, memref<?xi32>, memref<?x?xf32>, !gpu.async.token)
  %l = call @moe_lora_layer_knob_async(%x, %Wr, %rbias, %sbias, %Pg, %Pu,
                                       %Pd, %Ag, %Bg, %Au, %Bu, %Ad, %Bd, %Sg,
                                       %Su, %Sd, %Sw, %k, %score, %sel, %flags,
                                       %scale, %param, %param_dev, %G, %topkg,
                                       %gscore, %s, %cap, %cap_dev, %cap_min,
                                       %cap_align, %off, %dr, %no_ids,
                                       %counts, %yf, %t)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, memref<?xf64>,
         index, index, i32, f32, index, memref<?xf64>, index, index,
         memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xi64>,
         memref<?x?xf32>, !gpu.async.token)
      -> !gpu.async.token
  %r = call @device_results_async(%off, %dr, %yf, %counts, %y, %l)
      : (memref<?xi32>, memref<?xi32>, memref<?x?xf32>, memref<?x?xi64>,
         memref<?x?xbf16>, !gpu.async.token) -> !gpu.async.token
  return %r : !gpu.async.token
}

// A weight copied to the device on `stream` (free it with gpu.dealloc).
func.func private @weight_to_device_async(%w: memref<?x?x?xbf16>,
                                          %stream: !gpu.async.token)
    -> (memref<?x?x?xbf16>, !gpu.async.token) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %n0 = memref.dim %w, %c0 : memref<?x?x?xbf16>
  %n1 = memref.dim %w, %c1 : memref<?x?x?xbf16>
  %n2 = memref.dim %w, %c2 : memref<?x?x?xbf16>
  %dw, %a = gpu.alloc async [%stream] (%n0, %n1, %n2) : memref<?x?x?xbf16>
  %m = gpu.memcpy async [%a] %dw, %w : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  return %dw, %m : memref<?x?x?xbf16>, !gpu.async.token
}

func.func private @matrix_to_device_async(%w: memref<?x?xbf16>,
                                          %stream: !gpu.async.token)
    -> (memref<?x?xbf16>, !gpu.async.token) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n0 = memref.dim %w, %c0 : memref<?x?xbf16>
  %n1 = memref.dim %w, %c1 : memref<?x?xbf16>
  %dw, %a = gpu.alloc async [%stream] (%n0, %n1) : memref<?x?xbf16>
  %m = gpu.memcpy async [%a] %dw, %w : memref<?x?xbf16>, memref<?x?xbf16>
  return %dw, %m : memref<?x?xbf16>, !gpu.async.token
}

// Host weights: copied to the device for this call only, then
// @moe_layer_resident. Each weight at its own size: gate and up may be one
// fused gate_up, up may be empty (plain MLP experts).
func.func @moe_layer(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                     %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                     %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                     %Wd: memref<?x?x?xbf16>, %Bg: memref<?x?xbf16>,
                     %Bu: memref<?x?xbf16>, %Bd: memref<?x?xbf16>,
                     %Sg: memref<?x?x?xbf16>,
                     %Su: memref<?x?x?xbf16>, %Sd: memref<?x?x?xbf16>,
                     %Sw: memref<?x?xbf16>, %k: index,
                     %score: i32, %sel: i32, %flags: i32, %scale: f32,
                     %param: f32, %G: index, %topkg: index, %gscore: i32,
                     %cap: index, %offsets: memref<?xi32>,
                     %dropped: memref<?xi32>, %ids: memref<?x?xi32>,
                     %y: memref<?x?xf32>) {
  // A fused gate_up is passed as both Wg and Wu: copied once (Wu's copy is
  // then empty and the device gate_up stands for both).
  %c0 = arith.constant 0 : index
  %pg = memref.extract_aligned_pointer_as_index %Wg
      : memref<?x?x?xbf16> -> index
  %pu = memref.extract_aligned_pointer_as_index %Wu
      : memref<?x?x?xbf16> -> index
  %fused = arith.cmpi eq, %pg, %pu : index
  %Wu0 = memref.reinterpret_cast %Wu to offset: [0], sizes: [%c0, %c0, %c0],
      strides: [%c0, %c0, 1] : memref<?x?x?xbf16> to memref<?x?x?xbf16>
  %Wu_copy = arith.select %fused, %Wu0, %Wu : memref<?x?x?xbf16>
  %t0 = gpu.wait async
  %dWg, %uWg = call @weight_to_device_async(%Wg, %t0)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dWu_copy, %uWu = call @weight_to_device_async(%Wu_copy, %uWg)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dWu = arith.select %fused, %dWg, %dWu_copy : memref<?x?x?xbf16>
  %dWd, %uWd = call @weight_to_device_async(%Wd, %uWu)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dSg, %uSg = call @weight_to_device_async(%Sg, %uWd)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dSu, %uSu = call @weight_to_device_async(%Su, %uSg)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dSd, %uSd = call @weight_to_device_async(%Sd, %uSu)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dWr, %uWr = call @matrix_to_device_async(%Wr, %uSd)
      : (memref<?x?xbf16>, !gpu.async.token)
      -> (memref<?x?xbf16>, !gpu.async.token)
  %dSw, %uSw = call @matrix_to_device_async(%Sw, %uWr)
      : (memref<?x?xbf16>, !gpu.async.token)
      -> (memref<?x?xbf16>, !gpu.async.token)
  // The expert biases (small: a fused gate_up bias is copied twice).
  %dBg, %uBg = call @matrix_to_device_async(%Bg, %uSw)
      : (memref<?x?xbf16>, !gpu.async.token)
      -> (memref<?x?xbf16>, !gpu.async.token)
  %dBu, %uBu = call @matrix_to_device_async(%Bu, %uBg)
      : (memref<?x?xbf16>, !gpu.async.token)
      -> (memref<?x?xbf16>, !gpu.async.token)
  %dBd, %uBd = call @matrix_to_device_async(%Bd, %uBu)
      : (memref<?x?xbf16>, !gpu.async.token)
      -> (memref<?x?xbf16>, !gpu.async.token)
  gpu.wait [%uBd]
  call @moe_layer_resident(%x, %dWr, %rbias, %sbias, %dWg, %dWu, %dWd, %dBg,
                           %dBu, %dBd, %dSg, %dSu, %dSd, %dSw, %k,
                           %score, %sel, %flags, %scale, %param, %G, %topkg,
                           %gscore, %cap, %offsets, %dropped, %ids, %y)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index, i32,
         index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>,
         memref<?x?xf32>) -> ()
  %t1 = gpu.wait async
  %f0 = gpu.dealloc async [%t1] %dWr : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %dSw : memref<?x?xbf16>
  %f2 = gpu.dealloc async [%f1] %dWg : memref<?x?x?xbf16>
  %f3 = gpu.dealloc async [%f2] %dWu_copy : memref<?x?x?xbf16>
  %f4 = gpu.dealloc async [%f3] %dWd : memref<?x?x?xbf16>
  %f5 = gpu.dealloc async [%f4] %dSg : memref<?x?x?xbf16>
  %f6 = gpu.dealloc async [%f5] %dSu : memref<?x?x?xbf16>
  %f7 = gpu.dealloc async [%f6] %dSd : memref<?x?x?xbf16>
  %f8 = gpu.dealloc async [%f7] %dBg : memref<?x?xbf16>
  %f9 = gpu.dealloc async [%f8] %dBu : memref<?x?xbf16>
  %f10 = gpu.dealloc async [%f9] %dBd : memref<?x?xbf16>
  gpu.wait [%f10]
  return
}

// Host weights: copied to the device for this call only, then
// @moe_lora_layer_resident.
func.func @moe_lora_layer(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                          %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                          %Pg: memref<?x?x?xbf16>, %Pu: memref<?x?x?xbf16>,
                          %Pd: memref<?x?x?xbf16>, %Ag: memref<?x?x?xbf16>,
                          %Bg: memref<?x?x?xbf16>, %Au: memref<?x?x?xbf16>,
                          %Bu: memref<?x?x?xbf16>, %Ad: memref<?x?x?xbf16>,
                          %Bd: memref<?x?x?xbf16>, %Sg: memref<?x?x?xbf16>,
                          %Su: memref<?x?x?xbf16>, %Sd: memref<?x?x?xbf16>,
                          %Sw: memref<?x?xbf16>, %k: index,
                          %score: i32, %sel: i32, %flags: i32, %scale: f32,
                          %param: f32, %G: index, %topkg: index,
                          %gscore: i32, %s: f32, %cap: index,
                          %offsets: memref<?xi32>, %dropped: memref<?xi32>,
                          %ids: memref<?x?xi32>, %y: memref<?x?xf32>) {
  %t0 = gpu.wait async
  %dPg, %uPg = call @weight_to_device_async(%Pg, %t0)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dPu, %uPu = call @weight_to_device_async(%Pu, %uPg)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dPd, %uPd = call @weight_to_device_async(%Pd, %uPu)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dAg, %uAg = call @weight_to_device_async(%Ag, %uPd)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dBg, %uBg = call @weight_to_device_async(%Bg, %uAg)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dAu, %uAu = call @weight_to_device_async(%Au, %uBg)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dBu, %uBu = call @weight_to_device_async(%Bu, %uAu)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dAd, %uAd = call @weight_to_device_async(%Ad, %uBu)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dBd, %uBd = call @weight_to_device_async(%Bd, %uAd)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dSg, %uSg = call @weight_to_device_async(%Sg, %uBd)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dSu, %uSu = call @weight_to_device_async(%Su, %uSg)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dSd, %uSd = call @weight_to_device_async(%Sd, %uSu)
      : (memref<?x?x?xbf16>, !gpu.async.token)
      -> (memref<?x?x?xbf16>, !gpu.async.token)
  %dWr, %uWr = call @matrix_to_device_async(%Wr, %uSd)
      : (memref<?x?xbf16>, !gpu.async.token)
      -> (memref<?x?xbf16>, !gpu.async.token)
  %dSw, %uSw = call @matrix_to_device_async(%Sw, %uWr)
      : (memref<?x?xbf16>, !gpu.async.token)
      -> (memref<?x?xbf16>, !gpu.async.token)
  gpu.wait [%uSw]
  call @moe_lora_layer_resident(%x, %dWr, %rbias, %sbias, %dPg, %dPu, %dPd,
                                %dAg, %dBg, %dAu, %dBu, %dAd, %dBd, %dSg,
                                %dSu, %dSd, %dSw, %k, %score, %sel, %flags,
                                %scale, %param, %G, %topkg, %gscore, %s, %cap,
                                %offsets, %dropped, %ids, %y)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index, i32,
         f32, index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>,
         memref<?x?xf32>) -> ()
  %t1 = gpu.wait async
  %f0 = gpu.dealloc async [%t1] %dWr : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %dSw : memref<?x?xbf16>
  %f2 = gpu.dealloc async [%f1] %dPg : memref<?x?x?xbf16>
  %f3 = gpu.dealloc async [%f2] %dPu : memref<?x?x?xbf16>
  %f4 = gpu.dealloc async [%f3] %dPd : memref<?x?x?xbf16>
  %f5 = gpu.dealloc async [%f4] %dAg : memref<?x?x?xbf16>
  %f6 = gpu.dealloc async [%f5] %dBg : memref<?x?x?xbf16>
  %f7 = gpu.dealloc async [%f6] %dAu : memref<?x?x?xbf16>
  %f8 = gpu.dealloc async [%f7] %dBu : memref<?x?x?xbf16>
  %f9 = gpu.dealloc async [%f8] %dAd : memref<?x?x?xbf16>
  %f10 = gpu.dealloc async [%f9] %dBd : memref<?x?x?xbf16>
  %f11 = gpu.dealloc async [%f10] %dSg : memref<?x?x?xbf16>
  %f12 = gpu.dealloc async [%f11] %dSu : memref<?x?x?xbf16>
  %f13 = gpu.dealloc async [%f12] %dSd : memref<?x?x?xbf16>
  gpu.wait [%f13]
  return
}

}
