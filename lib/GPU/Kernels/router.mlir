//===- router.mlir - The router: logits, scores, selection -----*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The router of a MoE layer (spec sections 1-3) in two kernels: the
// logits, then the scores, every per-token selection and the combine
// weights.
//
//   x      [T, d]  bf16  token activations
//   Wr     [E, d]  bf16  router weight
//   z      [T, E]  f32   logits (router_logits out, router_topk in)
//   rbias  [E]     f32   router bias, added to the logits (flags bit 2)
//   sbias  [E]     f32   selection bias, added to the scores for selection
//                        only (flags bit 4)
//   ids    [T, k]  i32   the token's experts in slot order, by descending
//                        key; equal keys go to the lower expert index; -1
//                        for unused slots (top_p, threshold)
//   wts    [T, k]  f32   combine weights; 0 for unused slots
//
// Scalar parameters (router_topk; router_logits takes flags): score (0 softmax, 1 sigmoid, 2 sqrt_softplus,
// 3 logits), sel (0 top_k, 1 grouped_top_k, 2 top_p, 3 threshold,
// 4 expert_choice: the kernel only writes the scores [T, E] to `scores`,
// and dispatch.mlir's @expert_choice selects per expert into k = E
// slots), flags (1 renormalize, 2 router bias, 4 selection bias, 8
// weights = softmax_selected), scale, param (p of top_p, tau of
// threshold; read from param_dev[0] instead when param_dev has an element:
// a run-time knob's f64 copy in GPU memory, rounded to f32 as the host
// rounds it, which a replayed CUDA graph reads anew),
// G, topk_group and gscore (0 max, 1 sum_top2) of grouped_top_k.
//
// Kernels of @moe_router_kernels:
//
//   router_logits    Logits z = x Wr^T (+ router bias) in f32, [T, E] in
//                    global memory. A warp per expert and 4 tokens: the
//                    lanes split d into 16-byte chunks (8 x bf16 vector
//                    loads, f32 fma) and add their partial sums with a
//                    butterfly shuffle. Grid ceil(T / 4) x ceil(E / (4 epw))
//                    of 128 threads; a warp takes epw experts (1 below 256
//                    tokens, so that a decoding step spreads the router
//                    weight over E warps, else 8).
//   router_topk      One warp per token, 4 tokens per block of 128 threads,
//                    grid ceil(T / 4). The E scores and keys of the warp's
//                    token go to its rows of [4][E] f32 tables in dynamic
//                    shared memory (48 E bytes with the groups' table: 96
//                    KiB at 2048 experts, within every sm_80+ GPU's opt-in
//                    limit); the logits stay in global memory. Softmax
//                    max and sum are warp reductions. grouped_top_k: lane 0
//                    ranks the groups (the kept ones marked in [4][E] i32
//                    of shared memory) and gives the experts of the dropped
//                    ones out. Then k rounds of warp argmax on the keys, in
//                    the order of the spec (NaN lowest): a lane keeps the
//                    first maximum of its experts not yet taken nor left
//                    out (a 64-bit mask in a register: a lane's at most 64
//                    experts e = lane + 32 j), lanes combine (value,
//                    index) pairs with ties to the lower index, and the
//                    winner's lane marks it taken. Lane 0 then drops slots (top_p, threshold) and
//                    computes the weights of the k slots. Warps past T
//                    compute on token 0 and store nothing, so every barrier
//                    is reached by the whole block.
//   router_topk_ref  Scalar reference of the default routing (softmax,
//                    top_k, renormalized): one thread per token, logits
//                    recomputed in d order for every use.
//
// Limits: d % 8 == 0 with 16-byte aligned rows, 1 <= k <= E <= 2048 (the
// host functions assert them). The selection is deterministic; the logits
// of the fast and the reference kernels differ only by the order of f32
// additions, and a token's logits do not depend on the other tokens.
//
// Host functions (host memrefs in and out; one stream), with the default
// routing:
//   @moe_router, @moe_router_ref (x, Wr, ids, wts)
//
//===----------------------------------------------------------------------===//

module attributes {gpu.container_module} {

gpu.module @moe_router_kernels {

  // Butterfly reductions over a full warp (all 32 lanes active).
  func.func private @warp_sum(%v: f32) -> f32 {
    %c32 = arith.constant 32 : i32
    %o16 = arith.constant 16 : i32
    %o8 = arith.constant 8 : i32
    %o4 = arith.constant 4 : i32
    %o2 = arith.constant 2 : i32
    %o1 = arith.constant 1 : i32
    %s16, %p16 = gpu.shuffle xor %v, %o16, %c32 : f32
    %v16 = arith.addf %v, %s16 : f32
    %s8, %p8 = gpu.shuffle xor %v16, %o8, %c32 : f32
    %v8 = arith.addf %v16, %s8 : f32
    %s4, %p4 = gpu.shuffle xor %v8, %o4, %c32 : f32
    %v4 = arith.addf %v8, %s4 : f32
    %s2, %p2 = gpu.shuffle xor %v4, %o2, %c32 : f32
    %v2 = arith.addf %v4, %s2 : f32
    %s1, %p1 = gpu.shuffle xor %v2, %o1, %c32 : f32
    %v1 = arith.addf %v2, %s1 : f32
    return %v1 : f32
  }

  func.func private @warp_max(%v: f32) -> f32 {
    %c32 = arith.constant 32 : i32
    %o16 = arith.constant 16 : i32
    %o8 = arith.constant 8 : i32
    %o4 = arith.constant 4 : i32
    %o2 = arith.constant 2 : i32
    %o1 = arith.constant 1 : i32
    %s16, %p16 = gpu.shuffle xor %v, %o16, %c32 : f32
    %v16 = arith.maximumf %v, %s16 : f32
    %s8, %p8 = gpu.shuffle xor %v16, %o8, %c32 : f32
    %v8 = arith.maximumf %v16, %s8 : f32
    %s4, %p4 = gpu.shuffle xor %v8, %o4, %c32 : f32
    %v4 = arith.maximumf %v8, %s4 : f32
    %s2, %p2 = gpu.shuffle xor %v4, %o2, %c32 : f32
    %v2 = arith.maximumf %v4, %s2 : f32
    %s1, %p1 = gpu.shuffle xor %v2, %o1, %c32 : f32
    %v1 = arith.maximumf %v2, %s1 : f32
    return %v1 : f32
  }

  // The order of keys (docs/semantics.md, non-finite values): descending,
  // with NaN below every number, -inf included. Whether %a ranks above %b.
  func.func private @key_above(%a: f32, %b: f32) -> i1 {
    %gt = arith.cmpf ogt, %a, %b : f32
    %a_num = arith.cmpf ord, %a, %a : f32
    %b_nan = arith.cmpf uno, %b, %b : f32
    %over_nan = arith.andi %a_num, %b_nan : i1
    %r = arith.ori %gt, %over_nan : i1
    return %r : i1
  }

  // Whether %a and %b tie in that order: equal, or both NaN.
  func.func private @key_tie(%a: f32, %b: f32) -> i1 {
    %eq = arith.cmpf oeq, %a, %b : f32
    %a_nan = arith.cmpf uno, %a, %a : f32
    %b_nan = arith.cmpf uno, %b, %b : f32
    %nans = arith.andi %a_nan, %b_nan : i1
    %r = arith.ori %eq, %nans : i1
    return %r : i1
  }

  // One butterfly step of the (value, index) argmax in the order of keys:
  // the higher key wins, tied keys -> the lower index; index %none (a lane
  // without a candidate) loses to every candidate. Total order, so every
  // lane ends with the same winner.
  func.func private @argmax_step(%v: f32, %i: i32, %off: i32, %none: i32)
      -> (f32, i32) {
    %c32 = arith.constant 32 : i32
    %ov, %pv = gpu.shuffle xor %v, %off, %c32 : f32
    %oi, %pi = gpu.shuffle xor %i, %off, %c32 : i32
    %above = func.call @key_above(%ov, %v) : (f32, f32) -> i1
    %tie = func.call @key_tie(%ov, %v) : (f32, f32) -> i1
    %lt = arith.cmpi slt, %oi, %i : i32
    %tielt = arith.andi %tie, %lt : i1
    %better = arith.ori %above, %tielt : i1
    %self_none = arith.cmpi eq, %i, %none : i32
    %other = arith.cmpi ne, %oi, %none : i32
    %wins = arith.ori %self_none, %better : i1
    %take = arith.andi %other, %wins : i1
    %nv = arith.select %take, %ov, %v : f32
    %ni = arith.select %take, %oi, %i : i32
    return %nv, %ni : f32, i32
  }

  // The score of logit z (spec section 1): 0 softmax (given the max m and
  // the sum Z of exp(z - m) over the token's experts), 1 sigmoid,
  // 2 sqrt_softplus (overflow-free softplus), 3 the logit itself.
  func.func private @score_of(%z: f32, %m: f32, %Z: f32, %kind: i32) -> f32 {
    %one = arith.constant 1.0 : f32
    %zero = arith.constant 0.0 : f32
    %k0 = arith.constant 0 : i32
    %k1 = arith.constant 1 : i32
    %k2 = arith.constant 2 : i32
    %is0 = arith.cmpi eq, %kind, %k0 : i32
    %r = scf.if %is0 -> (f32) {
      %dz = arith.subf %z, %m : f32
      %ez = math.exp %dz : f32
      %soft = arith.divf %ez, %Z : f32
      scf.yield %soft : f32
    } else {
      %is1 = arith.cmpi eq, %kind, %k1 : i32
      %r1 = scf.if %is1 -> (f32) {
        %nz = arith.negf %z : f32
        %enz = math.exp %nz : f32
        %den = arith.addf %one, %enz : f32
        %sig = arith.divf %one, %den : f32
        scf.yield %sig : f32
      } else {
        %is2 = arith.cmpi eq, %kind, %k2 : i32
        %r2 = scf.if %is2 -> (f32) {
          %az = math.absf %z : f32
          %naz = arith.negf %az : f32
          %enaz = math.exp %naz : f32
          %l1p = math.log1p %enaz : f32
          %pos = arith.maximumf %z, %zero : f32
          %sp = arith.addf %pos, %l1p : f32
          %ssp = math.sqrt %sp : f32
          scf.yield %ssp : f32
        } else {
          scf.yield %z : f32
        }
        scf.yield %r2 : f32
      }
      scf.yield %r1 : f32
    }
    return %r : f32
  }

  // acc + x w, elementwise in f32 (8 bf16 of a token and of a weight row).
  func.func private @fma_bf16x8(%x: vector<8xbf16>, %w: vector<8xbf16>,
                                %acc: vector<8xf32>) -> vector<8xf32> {
    %xf = arith.extf %x : vector<8xbf16> to vector<8xf32>
    %wf = arith.extf %w : vector<8xbf16> to vector<8xf32>
    %r = vector.fma %xf, %wf, %acc : vector<8xf32>
    return %r : vector<8xf32>
  }

  // ---------------------------------------------------------------------------
  // router_logits: z[t, e] = x[t] . Wr[e] (+ rbias[e] with flags bit 2) in
  // f32. A block (4 warps) takes 4 tokens (block x) and 4 * epw experts
  // (block y): warp w computes experts e = 4 epw y + w + 4 i (i < epw), each
  // for the block's 4 tokens, so a row of Wr is read once per 4 tokens. The
  // lanes split d into 16-byte chunks (ch = lane, lane + 32, ...: 8 x bf16
  // vector loads, f32 fma), then add their sums by butterfly: a logit's
  // order of additions depends on d alone, not on T or epw. With epw = 1 (few tokens)
  // every expert of a token is a warp of its own, so that decoding reads
  // the router weight with the whole GPU rather than with one warp per
  // token.
  gpu.func @router_logits(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                          %rbias: memref<?xf32>, %flags: i32, %epw: index,
                          %z: memref<?x?xf32>)
      kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c64 = arith.constant 64 : index
    %i0 = arith.constant 0 : i32
    %i2 = arith.constant 2 : i32
    %f0 = arith.constant 0.0 : f32
    %zero8 = arith.constant dense<0.0> : vector<8xf32>
    %T = memref.dim %x, %c0 : memref<?x?xbf16>
    %d = memref.dim %x, %c1 : memref<?x?xbf16>
    %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
    %tid = gpu.thread_id x
    %bx = gpu.block_id x
    %by = gpu.block_id y
    %warp = arith.divui %tid, %c32 : index
    %lane = arith.remui %tid, %c32 : index
    %is_l0 = arith.cmpi eq, %lane, %c0 : index
    %fb = arith.andi %flags, %i2 : i32
    %has_rbias = arith.cmpi ne, %fb, %i0 : i32
    %nch = arith.divui %d, %c8 : index
    %last = arith.subi %nch, %c1 : index
    // The block's tokens; those past T read the first one (always valid)
    // and store nothing.
    %t0 = arith.muli %bx, %c4 : index
    %t1 = arith.addi %t0, %c1 : index
    %t2 = arith.addi %t0, %c2 : index
    %t3 = arith.addi %t0, %c3 : index
    %v1 = arith.cmpi ult, %t1, %T : index
    %v2 = arith.cmpi ult, %t2, %T : index
    %v3 = arith.cmpi ult, %t3, %T : index
    %r1 = arith.select %v1, %t1, %t0 : index
    %r2 = arith.select %v2, %t2, %t0 : index
    %r3 = arith.select %v3, %t3, %t0 : index
    %s1 = arith.andi %is_l0, %v1 : i1
    %s2 = arith.andi %is_l0, %v2 : i1
    %s3 = arith.andi %is_l0, %v3 : i1
    %per_block = arith.muli %epw, %c4 : index
    %e_blk = arith.muli %by, %per_block : index
    %e_first = arith.addi %e_blk, %warp : index
    scf.for %i = %c0 to %epw step %c1 {
      %i4 = arith.muli %i, %c4 : index
      %e = arith.addi %e_first, %i4 : index
      %in = arith.cmpi ult, %e, %E : index
      scf.if %in {
        // Two chunks an iteration (ch and ch + 32, the second clamped to
        // the row and its sums discarded past it), loaded before either is
        // added: ten 16-byte loads in flight a lane, the additions still in
        // chunk order.
        %acc:4 = scf.for %ch = %lane to %nch step %c64
            iter_args(%a0 = %zero8, %a1 = %zero8, %a2 = %zero8, %a3 = %zero8)
            -> (vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>) {
          %chb = arith.addi %ch, %c32 : index
          %has_b = arith.cmpi ult, %chb, %nch : index
          %chb_in = arith.minui %chb, %last : index
          %col = arith.muli %ch, %c8 : index
          %colb = arith.muli %chb_in, %c8 : index
          %wv = vector.load %Wr[%e, %col] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x0 = vector.load %x[%t0, %col] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x1 = vector.load %x[%r1, %col] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x2 = vector.load %x[%r2, %col] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x3 = vector.load %x[%r3, %col] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %wvb = vector.load %Wr[%e, %colb] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x0b = vector.load %x[%t0, %colb] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x1b = vector.load %x[%r1, %colb] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x2b = vector.load %x[%r2, %colb] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %x3b = vector.load %x[%r3, %colb] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
          %n0 = func.call @fma_bf16x8(%x0, %wv, %a0) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %n1 = func.call @fma_bf16x8(%x1, %wv, %a1) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %n2 = func.call @fma_bf16x8(%x2, %wv, %a2) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %n3 = func.call @fma_bf16x8(%x3, %wv, %a3) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %m0 = func.call @fma_bf16x8(%x0b, %wvb, %n0) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %m1 = func.call @fma_bf16x8(%x1b, %wvb, %n1) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %m2 = func.call @fma_bf16x8(%x2b, %wvb, %n2) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %m3 = func.call @fma_bf16x8(%x3b, %wvb, %n3) : (vector<8xbf16>, vector<8xbf16>, vector<8xf32>) -> vector<8xf32>
          %o0 = arith.select %has_b, %m0, %n0 : vector<8xf32>
          %o1 = arith.select %has_b, %m1, %n1 : vector<8xf32>
          %o2 = arith.select %has_b, %m2, %n2 : vector<8xf32>
          %o3 = arith.select %has_b, %m3, %n3 : vector<8xf32>
          scf.yield %o0, %o1, %o2, %o3 : vector<8xf32>, vector<8xf32>, vector<8xf32>, vector<8xf32>
        }
        %b = scf.if %has_rbias -> (f32) {
          %bv = memref.load %rbias[%e] : memref<?xf32>
          scf.yield %bv : f32
        } else {
          scf.yield %f0 : f32
        }
        %p0 = vector.reduction <add>, %acc#0 : vector<8xf32> into f32
        %p1 = vector.reduction <add>, %acc#1 : vector<8xf32> into f32
        %p2 = vector.reduction <add>, %acc#2 : vector<8xf32> into f32
        %p3 = vector.reduction <add>, %acc#3 : vector<8xf32> into f32
        %d0 = func.call @warp_sum(%p0) : (f32) -> f32
        %d1 = func.call @warp_sum(%p1) : (f32) -> f32
        %d2 = func.call @warp_sum(%p2) : (f32) -> f32
        %d3 = func.call @warp_sum(%p3) : (f32) -> f32
        scf.if %is_l0 {
          %z0 = arith.addf %d0, %b : f32
          memref.store %z0, %z[%t0, %e] : memref<?x?xf32>
        }
        scf.if %s1 {
          %z1 = arith.addf %d1, %b : f32
          memref.store %z1, %z[%t1, %e] : memref<?x?xf32>
        }
        scf.if %s2 {
          %z2 = arith.addf %d2, %b : f32
          memref.store %z2, %z[%t2, %e] : memref<?x?xf32>
        }
        scf.if %s3 {
          %z3 = arith.addf %d3, %b : f32
          memref.store %z3, %z[%t3, %e] : memref<?x?xf32>
        }
      }
    }
    gpu.return
  }

  // ---------------------------------------------------------------------------
  // (nvvm.maxnreg: left alone, ptxas for sm_90 keeps this kernel at 40
  // registers and spills; 64 hold it without spills.)
  gpu.func @router_topk(%logits: memref<?x?xf32>, %sbias: memref<?xf32>,
                        %k: index, %score: i32, %sel: i32, %flags: i32,
                        %scale: f32, %param_arg: f32,
                        %param_dev: memref<?xf64>, %G: index, %topkg: index,
                        %gscore: i32, %scores: memref<?x?xf32>,
                        %ids: memref<?x?xi32>, %wts: memref<?x?xf32>)
      kernel attributes {known_block_size = array<i32: 128, 1, 1>, nvvm.maxnreg = 64 : i32} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c32 = arith.constant 32 : index
    %i0 = arith.constant 0 : i32
    %i1 = arith.constant 1 : i32
    %i2 = arith.constant 2 : i32
    %i3 = arith.constant 3 : i32
    %i4 = arith.constant 4 : i32
    %i8 = arith.constant 8 : i32
    %i16 = arith.constant 16 : i32
    %i32 = arith.constant 32 : i32
    %im1 = arith.constant -1 : i32
    %f0 = arith.constant 0.0 : f32
    %ninf = arith.constant 0xFF800000 : f32
    %nan = arith.constant 0x7FC00000 : f32
    %eps = arith.constant 1.0e-20 : f32
    %true = arith.constant true
    %false = arith.constant false
    %T = memref.dim %logits, %c0 : memref<?x?xf32>
    %E = memref.dim %logits, %c1 : memref<?x?xf32>
    %Ei = arith.index_cast %E : index to i32
    %Gi = arith.index_cast %G : index to i32
    %np = memref.dim %param_dev, %c0 : memref<?xf64>
    %on_device = arith.cmpi ne, %np, %c0 : index
    %param = scf.if %on_device -> (f32) {
      %v64 = memref.load %param_dev[%c0] : memref<?xf64>
      %v = arith.truncf %v64 : f64 to f32
      scf.yield %v : f32
    } else {
      scf.yield %param_arg : f32
    }
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %warp = arith.divui %tid, %c32 : index
    %lane = arith.remui %tid, %c32 : index
    %is_l0 = arith.cmpi eq, %lane, %c0 : index
    %tb = arith.muli %bid, %c4 : index
    %t = arith.addi %tb, %warp : index
    %valid = arith.cmpi ult, %t, %T : index
    %store = arith.andi %is_l0, %valid : i1
    // out-of-range warps compute on token 0 and skip all stores, so that every
    // thread reaches every barrier (control flow stays block-uniform)
    %tc = arith.select %valid, %t, %c0 : index
    %fr = arith.andi %flags, %i1 : i32
    %renorm = arith.cmpi ne, %fr, %i0 : i32
    %fs = arith.andi %flags, %i4 : i32
    %has_sbias = arith.cmpi ne, %fs, %i0 : i32
    %fx = arith.andi %flags, %i8 : i32
    %softmax_sel = arith.cmpi ne, %fx, %i0 : i32
    %grouped = arith.cmpi eq, %sel, %i1 : i32
    %top_p = arith.cmpi eq, %sel, %i2 : i32
    %threshold = arith.cmpi eq, %sel, %i3 : i32
    %ec = arith.cmpi eq, %sel, %i4 : i32
    %per_token = arith.cmpi ne, %sel, %i4 : i32

    // ---- the warps' tables in the launch's dynamic shared memory (48 E
    // bytes, @router_topk_shared_bytes): a warp's row of each [4, E] table
    // holds its token's scores, its selection keys and its kept groups (G
    // <= E entries); the logits are read from %logits, where router_logits
    // left them.
    %smem = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %c16 = arith.constant 16 : index
    %ky_at = arith.muli %E, %c16 : index
    %gk_at = arith.addi %ky_at, %ky_at : index
    %sc = memref.view %smem[%c0][%E] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x?xf32, #gpu.address_space<workgroup>>
    %ky = memref.view %smem[%ky_at][%E] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x?xf32, #gpu.address_space<workgroup>>
    %gkept = memref.view %smem[%gk_at][%E] : memref<?xi8, #gpu.address_space<workgroup>> to memref<4x?xi32, #gpu.address_space<workgroup>>

    // ---- softmax statistics: m = max logit, Z = sum exp(z - m)
    %lmax = scf.for %e = %lane to %E step %c32 iter_args(%m = %ninf) -> (f32) {
      %v = memref.load %logits[%tc, %e] : memref<?x?xf32>
      %nm = arith.maximumf %m, %v : f32
      scf.yield %nm : f32
    }
    %mx = func.call @warp_max(%lmax) : (f32) -> f32
    %lsum = scf.for %e = %lane to %E step %c32 iter_args(%s = %f0) -> (f32) {
      %v = memref.load %logits[%tc, %e] : memref<?x?xf32>
      %dv = arith.subf %v, %mx : f32
      %ev = math.exp %dv : f32
      %ns = arith.addf %s, %ev : f32
      scf.yield %ns : f32
    }
    %Z = func.call @warp_sum(%lsum) : (f32) -> f32

    // ---- scores s (unbiased) and selection keys s + b
    scf.for %e = %lane to %E step %c32 {
      %z = memref.load %logits[%tc, %e] : memref<?x?xf32>
      %sv = func.call @score_of(%z, %mx, %Z, %score) : (f32, f32, f32, i32) -> f32
      memref.store %sv, %sc[%warp, %e] : memref<4x?xf32, #gpu.address_space<workgroup>>
      %b = scf.if %has_sbias -> (f32) {
        %bv = memref.load %sbias[%e] : memref<?xf32>
        scf.yield %bv : f32
      } else {
        scf.yield %f0 : f32
      }
      %key = arith.addf %sv, %b : f32
      memref.store %key, %ky[%warp, %e] : memref<4x?xf32, #gpu.address_space<workgroup>>
      // expert_choice: the scores out, for @expert_choice to select per expert
      %out = arith.andi %ec, %valid : i1
      scf.if %out {
        memref.store %sv, %scores[%t, %e] : memref<?x?xf32>
      }
    }
    gpu.barrier

    scf.if %per_token {
      // ---- grouped_top_k: lane 0 keeps the topk_group best groups of E / G
      // contiguous experts (group score: the max key, or the sum of the two
      // largest, in the order of keys; ties to the lower group), marking them
      // in gkept[warp]; the experts of the other groups are never chosen
      scf.if %grouped {
        scf.if %is_l0 {
          %gs = arith.divui %E, %G : index
          scf.for %g = %c0 to %G step %c1 {
            memref.store %i0, %gkept[%warp, %g] : memref<4x?xi32, #gpu.address_space<workgroup>>
          }
          scf.for %r = %c0 to %topkg step %c1 {
            %best:2 = scf.for %g = %c0 to %G step %c1
                iter_args(%bv = %nan, %bg = %Gi) -> (f32, i32) {
              %gi = arith.index_cast %g : index to i32
              %mark = memref.load %gkept[%warp, %g] : memref<4x?xi32, #gpu.address_space<workgroup>>
              %free = arith.cmpi eq, %mark, %i0 : i32
              %e0 = arith.muli %g, %gs : index
              %e1 = arith.addi %e0, %gs : index
              // NaN, the lowest key, until a key is seen
              %top:2 = scf.for %e = %e0 to %e1 step %c1
                  iter_args(%b1 = %nan, %b2 = %nan) -> (f32, f32) {
                %v = memref.load %ky[%warp, %e] : memref<4x?xf32, #gpu.address_space<workgroup>>
                %gt1 = func.call @key_above(%v, %b1) : (f32, f32) -> i1
                %gt2 = func.call @key_above(%v, %b2) : (f32, f32) -> i1
                %n2a = arith.select %gt2, %v, %b2 : f32
                %n2 = arith.select %gt1, %b1, %n2a : f32
                %n1 = arith.select %gt1, %v, %b1 : f32
                scf.yield %n1, %n2 : f32, f32
              }
              %sum2 = arith.addf %top#0, %top#1 : f32
              %use_sum = arith.cmpi eq, %gscore, %i1 : i32
              %gv = arith.select %use_sum, %sum2, %top#0 : f32
              %none = arith.cmpi eq, %bg, %Gi : i32
              %gt = func.call @key_above(%gv, %bv) : (f32, f32) -> i1
              %better = arith.ori %none, %gt : i1
              %take = arith.andi %free, %better : i1
              %nbv = arith.select %take, %gv, %bv : f32
              %nbg = arith.select %take, %gi, %bg : i32
              scf.yield %nbv, %nbg : f32, i32
            }
            %bgx = arith.index_cast %best#1 : i32 to index
            memref.store %i1, %gkept[%warp, %bgx] : memref<4x?xi32, #gpu.address_space<workgroup>>
          }
        }
        gpu.barrier
      }

      // ---- top-k on the keys: k rounds of warp argmax in the order of keys.
      // A lane visits its experts (e = lane + 32 j) in increasing order with
      // a strict key_above, so the lower index is kept on ties, and skips the
      // experts already taken (bit j of %taken) and those of dropped groups;
      // across lanes argmax_step breaks ties. The winner's lane marks it.
      // The group size; groups is only meaningful (and >= 1) for
      // grouped_top_k, so guard the division for the other selections.
      %G1 = arith.maxui %G, %c1 : index
      %gsz = arith.divui %E, %G1 : index
      %l0 = arith.constant 0 : i64
      %l1 = arith.constant 1 : i64
      %rounds = scf.for %r = %c0 to %k step %c1 iter_args(%taken = %l0) -> (i64) {
        %lb:2 = scf.for %e = %lane to %E step %c32 iter_args(%bv = %nan, %bi = %Ei) -> (f32, i32) {
          %v = memref.load %ky[%warp, %e] : memref<4x?xf32, #gpu.address_space<workgroup>>
          %ei = arith.index_cast %e : index to i32
          %j = arith.divui %e, %c32 : index
          %ji = arith.index_cast %j : index to i64
          %bit = arith.shli %l1, %ji : i64
          %mine = arith.andi %taken, %bit : i64
          %used = arith.cmpi ne, %mine, %l0 : i64
          %dropped = scf.if %grouped -> (i1) {
            %g = arith.divui %e, %gsz : index
            %mark = memref.load %gkept[%warp, %g] : memref<4x?xi32, #gpu.address_space<workgroup>>
            %out = arith.cmpi eq, %mark, %i0 : i32
            scf.yield %out : i1
          } else {
            scf.yield %false : i1
          }
          %none = arith.cmpi eq, %bi, %Ei : i32
          %gt = func.call @key_above(%v, %bv) : (f32, f32) -> i1
          %better = arith.ori %none, %gt : i1
          %excluded = arith.ori %used, %dropped : i1
          %free = arith.xori %excluded, %true : i1
          %take = arith.andi %better, %free : i1
          %nbv = arith.select %take, %v, %bv : f32
          %nbi = arith.select %take, %ei, %bi : i32
          scf.yield %nbv, %nbi : f32, i32
        }
        %a16:2 = func.call @argmax_step(%lb#0, %lb#1, %i16, %Ei) : (f32, i32, i32, i32) -> (f32, i32)
        %a8:2 = func.call @argmax_step(%a16#0, %a16#1, %i8, %Ei) : (f32, i32, i32, i32) -> (f32, i32)
        %a4:2 = func.call @argmax_step(%a8#0, %a8#1, %i4, %Ei) : (f32, i32, i32, i32) -> (f32, i32)
        %a2:2 = func.call @argmax_step(%a4#0, %a4#1, %i2, %Ei) : (f32, i32, i32, i32) -> (f32, i32)
        %a1:2 = func.call @argmax_step(%a2#0, %a2#1, %i1, %Ei) : (f32, i32, i32, i32) -> (f32, i32)
        scf.if %store {
          memref.store %a1#1, %ids[%t, %r] : memref<?x?xi32>
        }
        %w_lane = arith.remui %a1#1, %i32 : i32
        %lane_i = arith.index_cast %lane : index to i32
        %owner = arith.cmpi eq, %w_lane, %lane_i : i32
        %w_j = arith.divui %a1#1, %i32 : i32
        %w_j64 = arith.extui %w_j : i32 to i64
        %w_bit = arith.shli %l1, %w_j64 : i64
        %marked = arith.ori %taken, %w_bit : i64
        %next = arith.select %owner, %marked, %taken : i64
        scf.yield %next : i64
      }

      // ---- slots and weights (spec sections 2-3), by lane 0: top_p keeps slot
      // j while the scores already kept sum below p; threshold drops slots
      // j >= 1 whose score is below tau (%param); unused slots get expert -1
      // and weight 0. Raw weights are the scores, or a softmax over the kept
      // logits (softmax_selected); then renormalization and scale. The same
      // thread wrote the ids above.
      scf.if %store {
        %kept:2 = scf.for %r = %c0 to %k step %c1 iter_args(%cum = %f0, %zm = %ninf) -> (f32, f32) {
          %id = memref.load %ids[%t, %r] : memref<?x?xi32>
          %e = arith.index_cast %id : i32 to index
          %sv = memref.load %sc[%warp, %e] : memref<4x?xf32, #gpu.address_space<workgroup>>
          %z = memref.load %logits[%tc, %e] : memref<?x?xf32>
          %first = arith.cmpi eq, %r, %c0 : index
          %below_p = arith.cmpf olt, %cum, %param : f32
          %under = arith.cmpf olt, %sv, %param : f32
          %at_tau = arith.xori %under, %true : i1
          %p_ok = arith.select %top_p, %below_p, %true : i1
          %t_ok = arith.select %threshold, %at_tau, %p_ok : i1
          %keep = arith.ori %first, %t_ok : i1
          %ncum = arith.addf %cum, %sv : f32
          %nzm = arith.maximumf %zm, %z : f32
          %rcum = arith.select %keep, %ncum, %cum : f32
          %rzm = arith.select %keep, %nzm, %zm : f32
          %drop = arith.xori %keep, %true : i1
          scf.if %drop {
            memref.store %im1, %ids[%t, %r] : memref<?x?xi32>
          }
          scf.yield %rcum, %rzm : f32, f32
        }
        %raw_sum = scf.for %r = %c0 to %k step %c1 iter_args(%acc = %f0) -> (f32) {
          %id = memref.load %ids[%t, %r] : memref<?x?xi32>
          %used = arith.cmpi sge, %id, %i0 : i32
          %raw = scf.if %used -> (f32) {
            %e = arith.index_cast %id : i32 to index
            %sv = memref.load %sc[%warp, %e] : memref<4x?xf32, #gpu.address_space<workgroup>>
            %z = memref.load %logits[%tc, %e] : memref<?x?xf32>
            %dz = arith.subf %z, %kept#1 : f32
            %ez = math.exp %dz : f32
            %rv = arith.select %softmax_sel, %ez, %sv : f32
            scf.yield %rv : f32
          } else {
            scf.yield %f0 : f32
          }
          memref.store %raw, %wts[%t, %r] : memref<?x?xf32>
          %nacc = arith.addf %acc, %raw : f32
          scf.yield %nacc : f32
        }
        // softmax_selected: raw / sum of exp; then renormalize over the kept
        // slots: w / (sum + 1e-20)
        %one = arith.constant 1.0 : f32
        %norm = arith.select %softmax_sel, %raw_sum, %one : f32
        %sum1 = arith.divf %raw_sum, %norm : f32
        %den0 = arith.addf %sum1, %eps : f32
        scf.for %r = %c0 to %k step %c1 {
          %raw = memref.load %wts[%t, %r] : memref<?x?xf32>
          %w1 = arith.divf %raw, %norm : f32
          %w2 = arith.divf %w1, %den0 : f32
          %w3 = arith.select %renorm, %w2, %w1 : f32
          %w = arith.mulf %w3, %scale : f32
          memref.store %w, %wts[%t, %r] : memref<?x?xf32>
        }
      }
    }
    gpu.return
  }


  // z[t, e] = sum_i x[t, i] * Wr[e, i] in f32, in i order.
  func.func private @logit(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                           %t: index, %e: index) -> f32 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    %d = memref.dim %x, %c1 : memref<?x?xbf16>
    %z = scf.for %i = %c0 to %d step %c1 iter_args(%s = %f0) -> (f32) {
      %xv = memref.load %x[%t, %i] : memref<?x?xbf16>
      %wv = memref.load %Wr[%e, %i] : memref<?x?xbf16>
      %xf = arith.extf %xv : bf16 to f32
      %wf = arith.extf %wv : bf16 to f32
      %p = arith.mulf %xf, %wf : f32
      %ns = arith.addf %s, %p : f32
      scf.yield %ns : f32
    }
    return %z : f32
  }

  // Whether expert e is among ids[t, 0 .. r).
  func.func private @taken(%ids: memref<?x?xi32>, %t: index, %r: index,
                           %e: i32) -> i1 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %false = arith.constant false
    %found = scf.for %j = %c0 to %r step %c1 iter_args(%f = %false) -> (i1) {
      %id = memref.load %ids[%t, %j] : memref<?x?xi32>
      %eq = arith.cmpi eq, %id, %e : i32
      %nf = arith.ori %f, %eq : i1
      scf.yield %nf : i1
    }
    return %found : i1
  }

  // Scalar reference of router_topk: one thread per token.
  gpu.func @router_topk_ref(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                            %k: index, %ids: memref<?x?xi32>,
                            %wts: memref<?x?xf32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    %eps = arith.constant 1.0e-20 : f32
    %ninf = arith.constant 0xFF800000 : f32
    %true = arith.constant true
    %T = memref.dim %x, %c0 : memref<?x?xbf16>
    %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %t0 = arith.muli %bid, %bdim : index
    %t = arith.addi %t0, %tid : index
    %ok = arith.cmpi ult, %t, %T : index
    scf.if %ok {
      %m = scf.for %e = %c0 to %E step %c1 iter_args(%mx = %ninf) -> (f32) {
        %z = func.call @logit(%x, %Wr, %t, %e)
            : (memref<?x?xbf16>, memref<?x?xbf16>, index, index) -> f32
        %nm = arith.maximumf %mx, %z : f32
        scf.yield %nm : f32
      }
      %Z = scf.for %e = %c0 to %E step %c1 iter_args(%s = %f0) -> (f32) {
        %z = func.call @logit(%x, %Wr, %t, %e)
            : (memref<?x?xbf16>, memref<?x?xbf16>, index, index) -> f32
        %dz = arith.subf %z, %m : f32
        %ez = math.exp %dz : f32
        %ns = arith.addf %s, %ez : f32
        scf.yield %ns : f32
      }
      %psum = scf.for %r = %c0 to %k step %c1 iter_args(%ps = %f0) -> (f32) {
        %Ei = arith.index_cast %E : index to i32
        %best:2 = scf.for %e = %c0 to %E step %c1
            iter_args(%bv = %ninf, %bi = %Ei) -> (f32, i32) {
          %ei = arith.index_cast %e : index to i32
          %used = func.call @taken(%ids, %t, %r, %ei)
              : (memref<?x?xi32>, index, index, i32) -> i1
          %z = func.call @logit(%x, %Wr, %t, %e)
              : (memref<?x?xbf16>, memref<?x?xbf16>, index, index) -> f32
          // In the order of keys (NaN lowest); the first free expert is
          // taken whatever its key.
          %none = arith.cmpi eq, %bi, %Ei : i32
          %above = func.call @key_above(%z, %bv) : (f32, f32) -> i1
          %gt = arith.ori %none, %above : i1
          %free = arith.xori %used, %true : i1
          %take = arith.andi %gt, %free : i1
          %nbv = arith.select %take, %z, %bv : f32
          %nbi = arith.select %take, %ei, %bi : i32
          scf.yield %nbv, %nbi : f32, i32
        }
        %dz = arith.subf %best#0, %m : f32
        %ez = math.exp %dz : f32
        %p = arith.divf %ez, %Z : f32
        memref.store %best#1, %ids[%t, %r] : memref<?x?xi32>
        memref.store %p, %wts[%t, %r] : memref<?x?xf32>
        %nps = arith.addf %ps, %p : f32
        scf.yield %nps : f32
      }
      %den = arith.addf %psum, %eps : f32
      scf.for %r = %c0 to %k step %c1 {
        %w = memref.load %wts[%t, %r] : memref<?x?xf32>
        %wn = arith.divf %w, %den : f32
        memref.store %wn, %wts[%t, %r] : memref<?x?xf32>
      }
    }
    gpu.return
  }
}

//===----------------------------------------------------------------------===//
// Host functions
//===----------------------------------------------------------------------===//

func.func private @check_router_limits(%d: index, %E: index, %k: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c2048 = arith.constant 2048 : index
  %rem = arith.remui %d, %c8 : index
  %d_ok = arith.cmpi eq, %rem, %c0 : index
  cf.assert %d_ok, "moe gpu router: the hidden size d must be a multiple of 8"
  %e_ok = arith.cmpi ule, %E, %c2048 : index
  cf.assert %e_ok, "moe gpu router: at most 2048 experts"
  %k_lo = arith.cmpi uge, %k, %c1 : index
  %k_hi = arith.cmpi ule, %k, %E : index
  %k_ok = arith.andi %k_lo, %k_hi : i1
  cf.assert %k_ok, "moe gpu router: k must be in 1..E"
  return
}

// The routing configuration's own limits: for grouped_top_k (sel = 1),
// G >= 1 groups that divide E (so G <= E <= 2048), 1 <= topk_group <= G, k
// experts among the kept groups, two experts per group for sum_top2 (gscore = 1); for
// top_p (sel = 2), p in (0, 1].
func.func private @check_routing(%E: index, %k: index, %sel: i32, %G: index,
                                 %topkg: index, %gscore: i32, %param: f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %i1 = arith.constant 1 : i32
  %i2 = arith.constant 2 : i32
  %f0 = arith.constant 0.0 : f32
  %f1 = arith.constant 1.0 : f32
  %true = arith.constant true
  %grouped = arith.cmpi eq, %sel, %i1 : i32
  scf.if %grouped {
    %g_ok = arith.cmpi uge, %G, %c1 : index
    cf.assert %g_ok, "moe gpu router: grouped_top_k needs at least 1 group"
    %rem = arith.remui %E, %G : index
    %div = arith.cmpi eq, %rem, %c0 : index
    cf.assert %div, "moe gpu router: the groups must divide E"
    %t_lo = arith.cmpi uge, %topkg, %c1 : index
    %t_hi = arith.cmpi ule, %topkg, %G : index
    %t_ok = arith.andi %t_lo, %t_hi : i1
    cf.assert %t_ok, "moe gpu router: topk_group must be in 1..groups"
    %gs = arith.divui %E, %G : index
    %avail = arith.muli %topkg, %gs : index
    %k_ok = arith.cmpi ule, %k, %avail : index
    cf.assert %k_ok, "moe gpu router: k exceeds the experts of the kept groups"
    %sum2 = arith.cmpi eq, %gscore, %i1 : i32
    %two = arith.cmpi uge, %gs, %c2 : index
    %nsum2 = arith.xori %sum2, %true : i1
    %s_ok = arith.ori %nsum2, %two : i1
    cf.assert %s_ok, "moe gpu router: sum_top2 needs two experts per group"
  }
  %i4 = arith.constant 4 : i32
  %is_ec = arith.cmpi eq, %sel, %i4 : i32
  scf.if %is_ec {
    %k_e = arith.cmpi eq, %k, %E : index
    cf.assert %k_e, "moe gpu router: expert_choice fills one slot per expert (k = E)"
  }
  %is_p = arith.cmpi eq, %sel, %i2 : i32
  scf.if %is_p {
    %p_lo = arith.cmpf ogt, %param, %f0 : f32
    %p_hi = arith.cmpf ole, %param, %f1 : f32
    %p_ok = arith.andi %p_lo, %p_hi : i1
    cf.assert %p_ok, "moe gpu router: top_p must be in (0, 1]"
  }
  return
}

// The dynamic shared memory of router_topk for E experts: three [4, E]
// tables of 4-byte entries.
func.func private @router_topk_shared_bytes(%E: index) -> i32 {
  %c48 = arith.constant 48 : index
  %bytes = arith.muli %E, %c48 : index
  %b = arith.index_cast %bytes : index to i32
  return %b : i32
}

// The grid of router_logits for T tokens and E experts, and its experts
// per warp: ceil(T / 4) blocks of 4 tokens in x; in y blocks of 4 warps
// with one expert each below 256 tokens (decoding: the router weight read
// by E warps at once), else 8 each (a row of Wr read by fewer, longer
// warps, each once per 4 tokens).
func.func private @router_logits_grid(%T: index, %E: index)
    -> (index, index, index) {
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c256 = arith.constant 256 : index
  %tp = arith.addi %T, %c3 : index
  %gx = arith.divui %tp, %c4 : index
  %many = arith.cmpi uge, %T, %c256 : index
  %epw = arith.select %many, %c8, %c1 : index
  %per_block = arith.muli %epw, %c4 : index
  %ep0 = arith.addi %E, %per_block : index
  %ep = arith.subi %ep0, %c1 : index
  %gy = arith.divui %ep, %per_block : index
  return %gx, %gy, %epw : index, index, index
}

// Fast path with the default routing (softmax, top_k, renormalized). ids
// and wts are [T, k]; k is taken from their shape.
func.func @moe_router(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                      %ids: memref<?x?xi32>, %wts: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c128 = arith.constant 128 : index
  %i0 = arith.constant 0 : i32
  %i1 = arith.constant 1 : i32
  %f0 = arith.constant 0.0 : f32
  %f1 = arith.constant 1.0 : f32
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %k = memref.dim %ids, %c1 : memref<?x?xi32>
  call @check_router_limits(%d, %E, %k) : (index, index, index) -> ()
  %smem = call @router_topk_shared_bytes(%E) : (index) -> i32
  %dx = gpu.alloc (%T, %d) : memref<?x?xbf16>
  %dWr = gpu.alloc (%E, %d) : memref<?x?xbf16>
  %dids = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dwts = gpu.alloc (%T, %k) : memref<?x?xf32>
  // No bias: a placeholder buffer that the kernel does not read.
  %nb1 = gpu.alloc () : memref<1xf32>
  %nb = memref.cast %nb1 : memref<1xf32> to memref<?xf32>
  %dz = gpu.alloc (%T, %E) : memref<?x?xf32>
  gpu.memcpy %dx, %x : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.memcpy %dWr, %Wr : memref<?x?xbf16>, memref<?x?xbf16>
  %lg:3 = call @router_logits_grid(%T, %E) : (index, index) -> (index, index, index)
  gpu.launch_func @moe_router_kernels::@router_logits
      blocks in (%lg#0, %lg#1, %c1) threads in (%c128, %c1, %c1)
      args(%dx : memref<?x?xbf16>, %dWr : memref<?x?xbf16>,
           %nb : memref<?xf32>, %i0 : i32, %lg#2 : index,
           %dz : memref<?x?xf32>)
  %tp = arith.addi %T, %c3 : index
  %gx = arith.divui %tp, %c4 : index
  %none0 = memref.alloca() : memref<0xf64>
  %none = memref.cast %none0 : memref<0xf64> to memref<?xf64>
  gpu.launch_func @moe_router_kernels::@router_topk
      blocks in (%gx, %c1, %c1) threads in (%c128, %c1, %c1)
      dynamic_shared_memory_size %smem
      args(%dz : memref<?x?xf32>, %nb : memref<?xf32>, %k : index,
           %i0 : i32, %i0 : i32, %i1 : i32, %f1 : f32, %f0 : f32,
           %none : memref<?xf64>, %c1 : index, %c1 : index, %i0 : i32, %dwts : memref<?x?xf32>,
           %dids : memref<?x?xi32>, %dwts : memref<?x?xf32>)
  gpu.memcpy %ids, %dids : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %wts, %dwts : memref<?x?xf32>, memref<?x?xf32>
  gpu.dealloc %dx : memref<?x?xbf16>
  gpu.dealloc %dWr : memref<?x?xbf16>
  gpu.dealloc %dids : memref<?x?xi32>
  gpu.dealloc %dwts : memref<?x?xf32>
  gpu.dealloc %nb1 : memref<1xf32>
  gpu.dealloc %dz : memref<?x?xf32>
  return
}

// Reference path, same contract.
func.func @moe_router_ref(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                          %ids: memref<?x?xi32>, %wts: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c63 = arith.constant 63 : index
  %c64 = arith.constant 64 : index
  %T = memref.dim %x, %c0 : memref<?x?xbf16>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
  %k = memref.dim %ids, %c1 : memref<?x?xi32>
  call @check_router_limits(%d, %E, %k) : (index, index, index) -> ()
  %dx = gpu.alloc (%T, %d) : memref<?x?xbf16>
  %dWr = gpu.alloc (%E, %d) : memref<?x?xbf16>
  %dids = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dwts = gpu.alloc (%T, %k) : memref<?x?xf32>
  gpu.memcpy %dx, %x : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.memcpy %dWr, %Wr : memref<?x?xbf16>, memref<?x?xbf16>
  %tp = arith.addi %T, %c63 : index
  %gx = arith.divui %tp, %c64 : index
  gpu.launch_func @moe_router_kernels::@router_topk_ref
      blocks in (%gx, %c1, %c1) threads in (%c64, %c1, %c1)
      args(%dx : memref<?x?xbf16>, %dWr : memref<?x?xbf16>, %k : index,
           %dids : memref<?x?xi32>, %dwts : memref<?x?xf32>)
  gpu.memcpy %ids, %dids : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %wts, %dwts : memref<?x?xf32>, memref<?x?xf32>
  gpu.dealloc %dx : memref<?x?xbf16>
  gpu.dealloc %dWr : memref<?x?xbf16>
  gpu.dealloc %dids : memref<?x?xi32>
  gpu.dealloc %dwts : memref<?x?xf32>
  return
}

}
