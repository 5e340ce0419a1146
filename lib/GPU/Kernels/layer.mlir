//===- layer.mlir - A whole MoE layer on one stream ------------*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The supported layer (softmax, top-k, renormalized weights, gated SiLU
// experts, bf16) as one chain of asynchronous GPU operations on one stream:
//
//   copies in (x, Wr, Wg, Wu, Wd)
//   router_topk -> memset of the counts -> count_experts ->
//   build_permutation -> gather_rows -> build_tile_map ->
//   gate_up_swiglu_mma -> grouped_gemm_mma (down) -> combine
//   copies out (y, offsets), frees, then one synchronization.
//
// No device data is read on the host in between: the expert GEMMs are
// launched on ceil(T * k / 64) + E tiles, the bound of build_tile_map for
// any group sizes, and their blocks past num_tiles return at once. The
// limits of every step are checked before the first GPU operation.
//
//   x       [T, d]     bf16  token activations
//   Wr      [E, d]     bf16  router weight
//   Wg, Wu  [E, F, d]  bf16  gate and up projections
//   Wd      [E, d, F]  bf16  down projection
//   k                        experts per token
//   offsets [E + 1]    i32   group offsets of the dispatch (out)
//   y       [T, d]     f32   layer output (out)
//
// The kernels are those of router.mlir, dispatch.mlir, experts.mlir and
// combine.mlir, and so are the limit checks: this file is compiled together
// with them (moe-link-gpu-kernels merges the library into one module).
//
// Host function (host memrefs in and out; one stream):
//   @moe_layer (x, Wr, Wg, Wu, Wd, k, offsets, y)
//
//===----------------------------------------------------------------------===//

module attributes {gpu.container_module} {

func.func @moe_layer(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                     %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                     %Wd: memref<?x?x?xbf16>, %k: index,
                     %offsets: memref<?xi32>, %y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c63 = arith.constant 63 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %c1023 = arith.constant 1023 : index
  %c1024 = arith.constant 1024 : index
  %z = arith.constant 0 : i32
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %F = memref.dim %Wg, %c1 : memref<?x?x?xbf16>
  %E1 = arith.addi %E, %c1 : index
  %TK = arith.muli %T, %k : index

  // Every check first: a call between two GPU operations would make
  // gpu-async-region synchronize the stream there.
  call @check_router_limits(%d, %E, %k) : (index, index, index) -> ()
  call @check_dispatch_limits(%d, %E) : (index, index) -> ()
  call @check_expert_limits(%d, %E) : (index, index) -> ()
  call @check_expert_limits(%F, %E) : (index, index) -> ()

  // Grids. The expert GEMMs get the tile map's bound, not the tile count.
  %rp = arith.addi %T, %c3 : index
  %g_router = arith.divui %rp, %c4 : index
  %cp = arith.addi %TK, %c255 : index
  %g_count = arith.divui %cp, %c256 : index
  %np = arith.addi %TK, %c63 : index
  %ntn = arith.divui %np, %c64 : index
  %maxtiles = arith.addi %ntn, %E : index
  %fp = arith.addi %F, %c63 : index
  %g_f = arith.divui %fp, %c64 : index
  %dp = arith.addi %d, %c63 : index
  %g_d = arith.divui %dp, %c64 : index
  %yp = arith.addi %d, %c1023 : index
  %g_combine = arith.divui %yp, %c1024 : index

  %t0 = gpu.wait async
  // Operands.
  %dx, %a0 = gpu.alloc async [%t0] (%T, %d) : memref<?x?xbf16>
  %dWr, %a1 = gpu.alloc async [%a0] (%E, %d) : memref<?x?xbf16>
  %dWg, %a2 = gpu.alloc async [%a1] (%E, %F, %d) : memref<?x?x?xbf16>
  %dWu, %a3 = gpu.alloc async [%a2] (%E, %F, %d) : memref<?x?x?xbf16>
  %dWd, %a4 = gpu.alloc async [%a3] (%E, %d, %F) : memref<?x?x?xbf16>
  // Router and dispatch.
  %dids, %a5 = gpu.alloc async [%a4] (%T, %k) : memref<?x?xi32>
  %dwts, %a6 = gpu.alloc async [%a5] (%T, %k) : memref<?x?xf32>
  %dcnt, %a7 = gpu.alloc async [%a6] (%E) : memref<?xi32>
  %doff, %a8 = gpu.alloc async [%a7] (%E1) : memref<?xi32>
  %drt, %a9 = gpu.alloc async [%a8] (%TK) : memref<?xi32>
  %drw, %a10 = gpu.alloc async [%a9] (%TK) : memref<?xf32>
  %dsr, %a11 = gpu.alloc async [%a10] (%T, %k) : memref<?x?xi32>
  %dxp, %a12 = gpu.alloc async [%a11] (%TK, %d) : memref<?x?xbf16>
  // Experts and combine.
  %dte, %a13 = gpu.alloc async [%a12] (%maxtiles) : memref<?xi32>
  %dtm, %a14 = gpu.alloc async [%a13] (%maxtiles) : memref<?xi32>
  %dnt, %a15 = gpu.alloc async [%a14] () : memref<1xi32>
  %dH, %a16 = gpu.alloc async [%a15] (%TK, %F) : memref<?x?xbf16>
  %drows, %a17 = gpu.alloc async [%a16] (%TK, %d) : memref<?x?xf32>
  %dy, %a18 = gpu.alloc async [%a17] (%T, %d) : memref<?x?xf32>

  %m0 = gpu.memcpy async [%a18] %dx, %x : memref<?x?xbf16>, memref<?x?xbf16>
  %m1 = gpu.memcpy async [%m0] %dWr, %Wr : memref<?x?xbf16>, memref<?x?xbf16>
  %m2 = gpu.memcpy async [%m1] %dWg, %Wg
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m3 = gpu.memcpy async [%m2] %dWu, %Wu
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m4 = gpu.memcpy async [%m3] %dWd, %Wd
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>

  %k0 = gpu.launch_func async [%m4] @moe_router_kernels::@router_topk
      blocks in (%g_router, %c1, %c1) threads in (%c128, %c1, %c1)
      args(%dx : memref<?x?xbf16>, %dWr : memref<?x?xbf16>, %k : index,
           %dids : memref<?x?xi32>, %dwts : memref<?x?xf32>)
  %k1 = gpu.memset async [%k0] %dcnt, %z : memref<?xi32>, i32
  %k2 = gpu.launch_func async [%k1] @moe_dispatch_kernels::@count_experts
      blocks in (%g_count, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dcnt : memref<?xi32>,
           %dsr : memref<?x?xi32>)
  %k3 = gpu.launch_func async [%k2] @moe_dispatch_kernels::@build_permutation
      blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %dcnt : memref<?xi32>, %doff : memref<?xi32>,
           %drt : memref<?xi32>, %drw : memref<?xf32>,
           %dsr : memref<?x?xi32>)
  %k4 = gpu.launch_func async [%k3] @moe_dispatch_kernels::@gather_rows
      blocks in (%TK, %c1, %c1) threads in (%c128, %c1, %c1)
      args(%dx : memref<?x?xbf16>, %drt : memref<?xi32>,
           %dxp : memref<?x?xbf16>)
  %k5 = gpu.launch_func async [%k4] @moe_experts::@build_tile_map
      blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%doff : memref<?xi32>, %E : index, %dte : memref<?xi32>,
           %dtm : memref<?xi32>, %dnt : memref<1xi32>)
  %k6 = gpu.launch_func async [%k5] @moe_experts::@gate_up_swiglu_mma
      blocks in (%g_f, %maxtiles, %c1) threads in (%c128, %c1, %c1)
      args(%dxp : memref<?x?xbf16>, %dWg : memref<?x?x?xbf16>,
           %dWu : memref<?x?x?xbf16>, %doff : memref<?xi32>,
           %dte : memref<?xi32>, %dtm : memref<?xi32>,
           %dnt : memref<1xi32>, %dH : memref<?x?xbf16>)
  %k7 = gpu.launch_func async [%k6] @moe_experts::@grouped_gemm_mma
      blocks in (%g_d, %maxtiles, %c1) threads in (%c128, %c1, %c1)
      args(%dH : memref<?x?xbf16>, %dWd : memref<?x?x?xbf16>,
           %doff : memref<?xi32>, %dte : memref<?xi32>,
           %dtm : memref<?xi32>, %dnt : memref<1xi32>,
           %drows : memref<?x?xf32>)
  %k8 = gpu.launch_func async [%k7] @moe_combine_kernels::@combine
      blocks in (%g_combine, %T, %c1) threads in (%c256, %c1, %c1)
      args(%drows : memref<?x?xf32>, %dsr : memref<?x?xi32>,
           %dwts : memref<?x?xf32>, %dy : memref<?x?xf32>)

  %o0 = gpu.memcpy async [%k8] %y, %dy : memref<?x?xf32>, memref<?x?xf32>
  %o1 = gpu.memcpy async [%o0] %offsets, %doff : memref<?xi32>, memref<?xi32>

  %f0 = gpu.dealloc async [%o1] %dx : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %dWr : memref<?x?xbf16>
  %f2 = gpu.dealloc async [%f1] %dWg : memref<?x?x?xbf16>
  %f3 = gpu.dealloc async [%f2] %dWu : memref<?x?x?xbf16>
  %f4 = gpu.dealloc async [%f3] %dWd : memref<?x?x?xbf16>
  %f5 = gpu.dealloc async [%f4] %dids : memref<?x?xi32>
  %f6 = gpu.dealloc async [%f5] %dwts : memref<?x?xf32>
  %f7 = gpu.dealloc async [%f6] %dcnt : memref<?xi32>
  %f8 = gpu.dealloc async [%f7] %doff : memref<?xi32>
  %f9 = gpu.dealloc async [%f8] %drt : memref<?xi32>
  %f10 = gpu.dealloc async [%f9] %drw : memref<?xf32>
  %f11 = gpu.dealloc async [%f10] %dsr : memref<?x?xi32>
  %f12 = gpu.dealloc async [%f11] %dxp : memref<?x?xbf16>
  %f13 = gpu.dealloc async [%f12] %dte : memref<?xi32>
  %f14 = gpu.dealloc async [%f13] %dtm : memref<?xi32>
  %f15 = gpu.dealloc async [%f14] %dnt : memref<1xi32>
  %f16 = gpu.dealloc async [%f15] %dH : memref<?x?xbf16>
  %f17 = gpu.dealloc async [%f16] %drows : memref<?x?xf32>
  %f18 = gpu.dealloc async [%f17] %dy : memref<?x?xf32>
  gpu.wait [%f18]
  return
}

}
