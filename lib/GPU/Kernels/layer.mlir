//===- layer.mlir - A whole MoE layer on one stream ------------*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The supported layer (any routing of router.mlir, any capacity, gated
// experts of any activation, an optional shared expert, bf16) as one chain of asynchronous
// GPU operations on one stream:
//
//   router_topk (-> expert_choice) -> memset of the counts -> count_experts ->
//   build_permutation (-> capacity_drop (-> renormalize_kept) ->
//   count_experts -> build_permutation) -> gather_rows ->
//   @moe_expert_ffn_async (tile map, gate_up_swiglu_mma, grouped_gemm_mma)
//   -> combine -> one_group -> shared_gate -> @moe_expert_ffn_async on all
//   T tokens as one group -> add_shared
//
// The steps in parentheses run with a capacity (flags bit 16); without one
// they are launched on empty grids, which the runtime skips. So are the
// shared expert's steps without one (Sg of size 0): every size is then 0,
// and only the experts' one-element tile count is allocated.
//
// No device data is read on the host in between: the expert GEMMs are
// launched on ceil(T * k / 64) + E tiles, the bound of build_tile_map for
// any group sizes, and their blocks past num_tiles return at once. The
// limits of every step are checked before the first GPU operation.
//
//   x       [T, d]     bf16  token activations
//   Wr      [E, d]     bf16  router weight
//   rbias   [E]        f32   router bias (read when flags has bit 2)
//   sbias   [E]        f32   selection bias (read when flags has bit 4)
//   Wg, Wu  [E, F, d]  bf16  gate and up projections
//   Wd      [E, d, F]  bf16  down projection
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
//                            1 gelu_tanh, 2 gelu_erf, 3 relu); bit 2048
//                            applies the weights to the expert input
//                            (rows scaled, combine unweighted)
//   cap                      expert_choice (sel = 4, k = E): the tokens each
//                            expert takes (at most T); with bit 16: the
//                            capacity of each expert
//   offsets [E + 1]    i32   group offsets of the dispatch (out), of the
//                            kept assignments; offsets[E] is their number
//   dropped [E] or [0] i32   assignments dropped per expert (out; not
//                            written when empty)
//   y       [T, d]     f32   layer output (out)
//
// The kernels are those of router.mlir, dispatch.mlir, experts.mlir and
// combine.mlir, and so are the limit checks: this file is compiled together
// with them (moe-link-gpu-kernels merges the library into one module).
//
// Host functions:
//   @moe_layer_async (x, Wr, rbias, sbias, Wg, Wu, Wd, Sg, Su, Sd, Sw, k,
//                     routing..., cap, offsets, dropped, y, stream) -> stream
//     Device buffers. Enqueues the layer on the caller's stream, its
//     temporaries allocated and freed in stream order
//     (cuMemAllocAsync/cuMemFreeAsync), and returns without synchronizing:
//     the call can be captured in a CUDA graph, and weights stay resident
//     across calls.
//   @moe_layer_resident (same arguments)
//     Host buffers, except the weights Wr, Wg, Wu, Wd, Sg, Su, Sd and Sw,
//     which are device buffers (a compiled model's checkpoint weights, uploaded once by the
//     runtime). Creates a stream, copies x and the biases in, enqueues
//     @moe_layer_async, copies y and the offsets out, and synchronizes once.
//   @moe_layer (x, Wr, rbias, sbias, Wg, Wu, Wd, Sg, Su, Sd, Sw, k,
//               routing..., cap, offsets, dropped, y)
//     Host buffers: copies the weights to the device for the call, then
//     @moe_layer_resident.
//
// A function that takes a stream is compiled without gpu-async-region
// (moe-gpu-async-region skips it); callers are inlined first, so that the
// final synchronization of @moe_layer sees its own stream.
//
//===----------------------------------------------------------------------===//

module attributes {gpu.container_module} {

func.func @moe_layer_async(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                           %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                           %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                           %Wd: memref<?x?x?xbf16>,
                           %Sg: memref<?x?x?xbf16>, %Su: memref<?x?x?xbf16>,
                           %Sd: memref<?x?x?xbf16>, %Sw: memref<?x?xbf16>,
                           %k: index,
                           %score: i32, %sel: i32, %flags: i32, %scale: f32, %param: f32,
                           %G: index, %topkg: index, %gscore: i32,
                           %cap: index, %offsets: memref<?xi32>,
                           %dropped: memref<?xi32>, %y: memref<?x?xf32>,
                           %stream: !gpu.async.token) -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c128 = arith.constant 128 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %c1023 = arith.constant 1023 : index
  %c1024 = arith.constant 1024 : index
  %z = arith.constant 0 : i32
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %c2 = arith.constant 2 : index
  %F = memref.dim %Wd, %c2 : memref<?x?x?xbf16>
  %TK = arith.muli %T, %k : index

  // Every check first, before anything is enqueued.
  call @check_router_limits(%d, %E, %k) : (index, index, index) -> ()
  call @check_routing(%E, %k, %sel, %G, %topkg, %gscore, %param)
      : (index, index, i32, index, index, i32, f32) -> ()
  call @check_dispatch_limits(%d, %E) : (index, index) -> ()
  call @check_expert_limits(%d, %E) : (index, index) -> ()
  call @check_expert_limits(%F, %E) : (index, index) -> ()
  // A shared expert: Sg [1, Fs, d] (else [0, ...]); gated when Sw is [1, d].
  %Sn = memref.dim %Sg, %c0 : memref<?x?x?xbf16>
  %Fs = memref.dim %Sg, %c1 : memref<?x?x?xbf16>
  call @check_expert_limits(%Fs, %Sn) : (index, index) -> ()
  %Gn = memref.dim %Sw, %c0 : memref<?x?xbf16>
  %gated = arith.cmpi ne, %Gn, %c0 : index
  %gated_i = arith.extui %gated : i1 to i32

  // Grids.
  %rp = arith.addi %T, %c3 : index
  %g_router = arith.divui %rp, %c4 : index
  %cp = arith.addi %TK, %c255 : index
  %g_count = arith.divui %cp, %c256 : index
  %yp = arith.addi %d, %c1023 : index
  %g_combine = arith.divui %yp, %c1024 : index
  // expert_choice (sel = 4): @expert_choice ranks tokens per expert into the
  // k = E slots; other selections launch it on an empty grid.
  %i4 = arith.constant 4 : i32
  %is_ec = arith.cmpi eq, %sel, %i4 : i32
  %ecp = arith.addi %T, %c255 : index
  %ecb = arith.divui %ecp, %c256 : index
  %g_ec = arith.select %is_ec, %ecb, %c0 : index
  %taken = arith.minui %cap, %T : index
  // Capacity (flags bit 16): the second dispatch pass on the kept slots.
  %i16 = arith.constant 16 : i32
  %i128 = arith.constant 128 : i32
  %i5 = arith.constant 5 : i32
  %i3 = arith.constant 3 : i32
  %bit16 = arith.andi %flags, %i16 : i32
  %drops = arith.cmpi ne, %bit16, %z : i32
  %osh = arith.shrui %flags, %i5 : i32
  %order = arith.andi %osh, %i3 : i32
  %bit128 = arith.andi %flags, %i128 : i32
  %has128 = arith.cmpi ne, %bit128, %z : i32
  %renorm_drop = arith.andi %drops, %has128 : i1
  // The experts' activation: flags bits 9-10 (0 silu, 1 gelu_tanh,
  // 2 gelu_erf, 3 relu).
  %i9 = arith.constant 9 : i32
  %ash = arith.shrui %flags, %i9 : i32
  %act = arith.andi %ash, %i3 : i32
  // Weights applied to the expert input (flags bit 2048): the gathered rows
  // scaled, the combine unweighted.
  %i2048 = arith.constant 2048 : i32
  %bit2048 = arith.andi %flags, %i2048 : i32
  %on_input = arith.cmpi ne, %bit2048, %z : i32
  %on_input_i = arith.extui %on_input : i1 to i32
  %g_drop = arith.select %drops, %E, %c0 : index
  %tp = arith.addi %T, %c255 : index
  %tb = arith.divui %tp, %c256 : index
  %g_renorm = arith.select %renorm_drop, %tb, %c0 : index
  %g_count2 = arith.select %drops, %g_count, %c0 : index
  %g_perm2 = arith.select %drops, %c1, %c0 : index

  // Temporaries of the router and the dispatch.
  %dids, %a0 = gpu.alloc async [%stream] (%T, %k) : memref<?x?xi32>
  %dwts, %a1 = gpu.alloc async [%a0] (%T, %k) : memref<?x?xf32>
  %dcnt, %a2 = gpu.alloc async [%a1] (%E) : memref<?xi32>
  %drt, %a3 = gpu.alloc async [%a2] (%TK) : memref<?xi32>
  %drw, %a4 = gpu.alloc async [%a3] (%TK) : memref<?xf32>
  %dsr, %a5 = gpu.alloc async [%a4] (%T, %k) : memref<?x?xi32>
  %dxp, %a6 = gpu.alloc async [%a5] (%TK, %d) : memref<?x?xbf16>
  %drows, %a7r = gpu.alloc async [%a6] (%TK, %d) : memref<?x?xf32>
  %dsc, %a7s = gpu.alloc async [%a7r] (%T, %k) : memref<?x?xf32>
  // capacity_drop's scratch, empty without a capacity.
  %n_rs = arith.select %drops, %TK, %c0 : index
  %drs, %a7 = gpu.alloc async [%a7s] (%n_rs) : memref<?xi32>

  %k0 = gpu.launch_func async [%a7] @moe_router_kernels::@router_topk
      blocks in (%g_router, %c1, %c1) threads in (%c128, %c1, %c1)
      args(%x : memref<?x?xbf16>, %Wr : memref<?x?xbf16>,
           %rbias : memref<?xf32>, %sbias : memref<?xf32>, %k : index,
           %score : i32, %sel : i32, %flags : i32, %scale : f32,
           %param : f32, %G : index, %topkg : index, %gscore : i32,
           %dsc : memref<?x?xf32>,
           %dids : memref<?x?xi32>, %dwts : memref<?x?xf32>)
  %k0e = gpu.launch_func async [%k0] @moe_router_kernels::@expert_choice
      blocks in (%g_ec, %E, %c1) threads in (%c256, %c1, %c1)
      args(%dsc : memref<?x?xf32>, %taken : index,
           %dids : memref<?x?xi32>, %dwts : memref<?x?xf32>)
  %k1 = gpu.memset async [%k0e] %dcnt, %z : memref<?xi32>, i32
  %k2 = gpu.launch_func async [%k1] @moe_dispatch_kernels::@count_experts
      blocks in (%g_count, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dcnt : memref<?xi32>,
           %dsr : memref<?x?xi32>)
  %k3 = gpu.launch_func async [%k2] @moe_dispatch_kernels::@build_permutation
      blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %dcnt : memref<?xi32>, %offsets : memref<?xi32>,
           %drt : memref<?xi32>, %drw : memref<?xf32>,
           %dsr : memref<?x?xi32>)
  %kd0 = gpu.memset async [%k3] %dropped, %z : memref<?xi32>, i32
  %kd1 = gpu.launch_func async [%kd0] @moe_dispatch_kernels::@capacity_drop
      blocks in (%g_drop, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %offsets : memref<?xi32>, %drt : memref<?xi32>,
           %dsr : memref<?x?xi32>, %drs : memref<?xi32>, %cap : index,
           %order : i32, %dropped : memref<?xi32>, %dcnt : memref<?xi32>)
  %kd2 = gpu.launch_func async [%kd1] @moe_dispatch_kernels::@renormalize_kept
      blocks in (%g_renorm, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>, %E : index)
  %kd4 = gpu.launch_func async [%kd2] @moe_dispatch_kernels::@count_experts
      blocks in (%g_count2, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dcnt : memref<?xi32>,
           %dsr : memref<?x?xi32>)
  %kd5 = gpu.launch_func async [%kd4] @moe_dispatch_kernels::@build_permutation
      blocks in (%g_perm2, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %dcnt : memref<?xi32>, %offsets : memref<?xi32>,
           %drt : memref<?xi32>, %drw : memref<?xf32>,
           %dsr : memref<?x?xi32>)
  %k4 = gpu.launch_func async [%kd5] @moe_dispatch_kernels::@gather_rows
      blocks in (%TK, %c1, %c1) threads in (%c128, %c1, %c1)
      args(%x : memref<?x?xbf16>, %drt : memref<?xi32>,
           %dxp : memref<?x?xbf16>, %drw : memref<?xf32>,
           %on_input_i : i32)
  %k5 = call @moe_expert_ffn_async(%dxp, %Wg, %Wu, %Wd, %offsets, %drows,
                                   %act, %k4)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?xi32>, memref<?x?xf32>, i32,
         !gpu.async.token) -> !gpu.async.token
  %k6 = gpu.launch_func async [%k5] @moe_combine_kernels::@combine
      blocks in (%g_combine, %T, %c1) threads in (%c256, %c1, %c1)
      args(%drows : memref<?x?xf32>, %dsr : memref<?x?xi32>,
           %dwts : memref<?x?xf32>, %y : memref<?x?xf32>,
           %on_input_i : i32)

  // The shared expert on every token, added after the routed sum: one
  // more group of T rows for the experts' GEMMs. Without one (Sn = 0) every
  // size below is 0 and nothing is launched. (Not a branch: a token that
  // reaches the final synchronization through a block argument lowers to
  // an event synchronization.)
  %Ts = arith.muli %T, %Sn : index
  %n_off = arith.muli %c2, %Sn : index
  %soff, %s0 = gpu.alloc async [%k6] (%n_off) : memref<?xi32>
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
  %s6 = gpu.launch_func async [%s5] @moe_combine_kernels::@add_shared
      blocks in (%g_add, %Ts, %c1) threads in (%c256, %c1, %c1)
      args(%y : memref<?x?xf32>, %sy : memref<?x?xf32>,
           %sgv : memref<?xf32>, %gated_i : i32)
  %s7 = gpu.dealloc async [%s6] %soff : memref<?xi32>
  %s8 = gpu.dealloc async [%s7] %sy : memref<?x?xf32>
  %k7 = gpu.dealloc async [%s8] %sgv : memref<?xf32>

  %f0 = gpu.dealloc async [%k7] %dids : memref<?x?xi32>
  %f1 = gpu.dealloc async [%f0] %dwts : memref<?x?xf32>
  %f2 = gpu.dealloc async [%f1] %dcnt : memref<?xi32>
  %f3 = gpu.dealloc async [%f2] %drt : memref<?xi32>
  %f4 = gpu.dealloc async [%f3] %drw : memref<?xf32>
  %f5 = gpu.dealloc async [%f4] %dsr : memref<?x?xi32>
  %f6 = gpu.dealloc async [%f5] %dxp : memref<?x?xbf16>
  %f7r = gpu.dealloc async [%f6] %drows : memref<?x?xf32>
  %f7s = gpu.dealloc async [%f7r] %dsc : memref<?x?xf32>
  %f7 = gpu.dealloc async [%f7s] %drs : memref<?xi32>
  return %f7 : !gpu.async.token
}

func.func @moe_layer_resident(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                              %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                              %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                              %Wd: memref<?x?x?xbf16>,
                              %Sg: memref<?x?x?xbf16>,
                              %Su: memref<?x?x?xbf16>,
                              %Sd: memref<?x?x?xbf16>, %Sw: memref<?x?xbf16>,
                              %k: index, %score: i32, %sel: i32, %flags: i32,
                              %scale: f32, %param: f32, %G: index,
                              %topkg: index, %gscore: i32, %cap: index,
                              %offsets: memref<?xi32>,
                              %dropped: memref<?xi32>,
                              %y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %E1 = arith.addi %E, %c1 : index
  %nr = memref.dim %rbias, %c0 : memref<?xf32>
  %ns = memref.dim %sbias, %c0 : memref<?xf32>

  %t0 = gpu.wait async
  %dx, %a0 = gpu.alloc async [%t0] (%T, %d) : memref<?x?xbf16>
  %drb, %a1 = gpu.alloc async [%a0] (%nr) : memref<?xf32>
  %dsb, %a2 = gpu.alloc async [%a1] (%ns) : memref<?xf32>
  %doff, %a3 = gpu.alloc async [%a2] (%E1) : memref<?xi32>
  %nd = memref.dim %dropped, %c0 : memref<?xi32>
  %ddr, %a3d = gpu.alloc async [%a3] (%nd) : memref<?xi32>
  %dy, %a4 = gpu.alloc async [%a3d] (%T, %d) : memref<?x?xf32>
  %m0 = gpu.memcpy async [%a4] %dx, %x : memref<?x?xbf16>, memref<?x?xbf16>
  %m1 = gpu.memcpy async [%m0] %drb, %rbias : memref<?xf32>, memref<?xf32>
  %m2 = gpu.memcpy async [%m1] %dsb, %sbias : memref<?xf32>, memref<?xf32>
  %l = call @moe_layer_async(%dx, %Wr, %drb, %dsb, %Wg, %Wu, %Wd, %Sg, %Su,
                             %Sd, %Sw, %k,
                             %score, %sel, %flags, %scale, %param, %G,
                             %topkg, %gscore, %cap, %doff, %ddr, %dy, %m2)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index, i32,
         index, memref<?xi32>, memref<?xi32>, memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %o0 = gpu.memcpy async [%l] %y, %dy : memref<?x?xf32>, memref<?x?xf32>
  %o1d = gpu.memcpy async [%o0] %offsets, %doff
      : memref<?xi32>, memref<?xi32>
  %o1 = gpu.memcpy async [%o1d] %dropped, %ddr : memref<?xi32>, memref<?xi32>
  %f0 = gpu.dealloc async [%o1] %dx : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %drb : memref<?xf32>
  %f2 = gpu.dealloc async [%f1] %dsb : memref<?xf32>
  %f3 = gpu.dealloc async [%f2] %doff : memref<?xi32>
  %f4d = gpu.dealloc async [%f3] %dy : memref<?x?xf32>
  %f4 = gpu.dealloc async [%f4d] %ddr : memref<?xi32>
  gpu.wait [%f4]
  return
}

func.func @moe_layer(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                     %rbias: memref<?xf32>, %sbias: memref<?xf32>,
                     %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                     %Wd: memref<?x?x?xbf16>, %Sg: memref<?x?x?xbf16>,
                     %Su: memref<?x?x?xbf16>, %Sd: memref<?x?x?xbf16>,
                     %Sw: memref<?x?xbf16>, %k: index,
                     %score: i32, %sel: i32, %flags: i32, %scale: f32,
                     %param: f32, %G: index, %topkg: index, %gscore: i32,
                     %cap: index, %offsets: memref<?xi32>,
                     %dropped: memref<?xi32>, %y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %F = memref.dim %Wd, %c2 : memref<?x?x?xbf16>
  // Each weight at its own size: gate and up may be one fused gate_up, up
  // may be empty (plain MLP experts).
  %Fg = memref.dim %Wg, %c1 : memref<?x?x?xbf16>
  %Eu = memref.dim %Wu, %c0 : memref<?x?x?xbf16>
  %Fu = memref.dim %Wu, %c1 : memref<?x?x?xbf16>
  %Du = memref.dim %Wu, %c2 : memref<?x?x?xbf16>

  // The weights to the device for this call only.
  %t0 = gpu.wait async
  %dWr, %a0 = gpu.alloc async [%t0] (%E, %d) : memref<?x?xbf16>
  %dWg, %a1 = gpu.alloc async [%a0] (%E, %Fg, %d) : memref<?x?x?xbf16>
  %dWu, %a2 = gpu.alloc async [%a1] (%Eu, %Fu, %Du) : memref<?x?x?xbf16>
  %dWd, %a3 = gpu.alloc async [%a2] (%E, %d, %F) : memref<?x?x?xbf16>
  %m0 = gpu.memcpy async [%a3] %dWr, %Wr : memref<?x?xbf16>, memref<?x?xbf16>
  %m1 = gpu.memcpy async [%m0] %dWg, %Wg
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m2 = gpu.memcpy async [%m1] %dWu, %Wu
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m3 = gpu.memcpy async [%m2] %dWd, %Wd
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  // The shared expert's weights (empty when there is none).
  %Sn = memref.dim %Sg, %c0 : memref<?x?x?xbf16>
  %Fs = memref.dim %Sg, %c1 : memref<?x?x?xbf16>
  %Sd2 = memref.dim %Sd, %c2 : memref<?x?x?xbf16>
  %Sd1 = memref.dim %Sd, %c1 : memref<?x?x?xbf16>
  %Sd0 = memref.dim %Sd, %c0 : memref<?x?x?xbf16>
  %Su0 = memref.dim %Su, %c0 : memref<?x?x?xbf16>
  %Su1 = memref.dim %Su, %c1 : memref<?x?x?xbf16>
  %Su2 = memref.dim %Su, %c2 : memref<?x?x?xbf16>
  %Sg2 = memref.dim %Sg, %c2 : memref<?x?x?xbf16>
  %Sw0 = memref.dim %Sw, %c0 : memref<?x?xbf16>
  %Sw1 = memref.dim %Sw, %c1 : memref<?x?xbf16>
  %dSg, %a4 = gpu.alloc async [%m3] (%Sn, %Fs, %Sg2) : memref<?x?x?xbf16>
  %dSu, %a5 = gpu.alloc async [%a4] (%Su0, %Su1, %Su2) : memref<?x?x?xbf16>
  %dSd, %a6 = gpu.alloc async [%a5] (%Sd0, %Sd1, %Sd2) : memref<?x?x?xbf16>
  %dSw, %a7 = gpu.alloc async [%a6] (%Sw0, %Sw1) : memref<?x?xbf16>
  %m4 = gpu.memcpy async [%a7] %dSg, %Sg
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m5 = gpu.memcpy async [%m4] %dSu, %Su
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m6 = gpu.memcpy async [%m5] %dSd, %Sd
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m7 = gpu.memcpy async [%m6] %dSw, %Sw : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.wait [%m7]
  call @moe_layer_resident(%x, %dWr, %rbias, %sbias, %dWg, %dWu, %dWd, %dSg,
                           %dSu, %dSd, %dSw, %k,
                           %score, %sel, %flags, %scale, %param, %G, %topkg,
                           %gscore, %cap, %offsets, %dropped, %y)
      : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index, i32,
         index, memref<?xi32>, memref<?xi32>, memref<?x?xf32>) -> ()
  %t1 = gpu.wait async
  %f0 = gpu.dealloc async [%t1] %dWr : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %dWg : memref<?x?x?xbf16>
  %f2 = gpu.dealloc async [%f1] %dWu : memref<?x?x?xbf16>
  %f3 = gpu.dealloc async [%f2] %dWd : memref<?x?x?xbf16>
  %f4 = gpu.dealloc async [%f3] %dSg : memref<?x?x?xbf16>
  %f5 = gpu.dealloc async [%f4] %dSu : memref<?x?x?xbf16>
  %f6 = gpu.dealloc async [%f5] %dSd : memref<?x?x?xbf16>
  %f7 = gpu.dealloc async [%f6] %dSw : memref<?x?xbf16>
  gpu.wait [%f7]
  return
}

}
