//===- router.mlir - Fused router: logits, softmax, top-k ------*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The router of a MoE layer with softmax scores, top-k selection and
// renormalized weights (spec sections 1-3: Mixtral, Qwen3), in one kernel.
//
//   x   [T, d]  bf16  token activations
//   Wr  [E, d]  bf16  router weight
//   ids [T, k]  i32   selected experts, by descending score; equal scores
//                     go to the lower expert index
//   wts [T, k]  f32   w[t, j] = s[t, ids[t, j]] / (sum_j s[t, ids[t, j]]
//                     + 1e-20), s = softmax of the logits over all E
//
// Kernels of @moe_router_kernels:
//
//   router_topk      One warp per token, 4 tokens per block of 128 threads,
//                    grid ceil(T / 4). Logits in f32: the lanes split d into
//                    16-byte chunks (8 x bf16 vector loads, f32 fma) and
//                    add their partial sums with a butterfly shuffle; the
//                    E logits of the warp's token go to shared memory
//                    ([4][256] f32). Softmax max and sum are warp
//                    reductions. Then k rounds of warp argmax: a lane keeps
//                    the first maximum of its experts (strict >), lanes
//                    combine (value, index) pairs with ties to the lower
//                    index, and the winner is masked with -inf. Warps past
//                    T compute on token 0 and store nothing, so every
//                    barrier is reached by the whole block.
//   router_topk_ref  Scalar reference: one thread per token, logits
//                    recomputed in d order for every use.
//
// Limits: d % 8 == 0 with 16-byte aligned rows, 1 <= k <= E <= 256 (the
// host functions assert them). The selection is deterministic; the logits
// of the two kernels differ only by the order of f32 additions.
//
// Host functions (host memrefs in and out; one stream):
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

  // One butterfly step of the (value, index) argmax: larger value wins, equal values
  // -> lower index wins. Total order, so every lane ends with the same winner.
  func.func private @argmax_step(%v: f32, %i: i32, %off: i32) -> (f32, i32) {
    %c32 = arith.constant 32 : i32
    %ov, %pv = gpu.shuffle xor %v, %off, %c32 : f32
    %oi, %pi = gpu.shuffle xor %i, %off, %c32 : i32
    %gt = arith.cmpf ogt, %ov, %v : f32
    %eq = arith.cmpf oeq, %ov, %v : f32
    %lt = arith.cmpi slt, %oi, %i : i32
    %eqlt = arith.andi %eq, %lt : i1
    %take = arith.ori %gt, %eqlt : i1
    %nv = arith.select %take, %ov, %v : f32
    %ni = arith.select %take, %oi, %i : i32
    return %nv, %ni : f32, i32
  }

  // ---------------------------------------------------------------------------
  gpu.func @router_topk(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>, %k: index,
                        %ids: memref<?x?xi32>, %wts: memref<?x?xf32>)
      workgroup(%lg: memref<4x256xf32, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %i16 = arith.constant 16 : i32
    %i8 = arith.constant 8 : i32
    %i4 = arith.constant 4 : i32
    %i2 = arith.constant 2 : i32
    %i1 = arith.constant 1 : i32
    %f0 = arith.constant 0.0 : f32
    %ninf = arith.constant 0xFF800000 : f32
    %eps = arith.constant 1.0e-20 : f32
    %zero8 = arith.constant dense<0.0> : vector<8xf32>
    %T = memref.dim %x, %c0 : memref<?x?xbf16>
    %d = memref.dim %x, %c1 : memref<?x?xbf16>
    %E = memref.dim %Wr, %c0 : memref<?x?xbf16>
    %Ei = arith.index_cast %E : index to i32
    %tid = gpu.thread_id x
    %bid = gpu.block_id x
    %warp = arith.divui %tid, %c32 : index
    %lane = arith.remui %tid, %c32 : index
    %is_l0 = arith.cmpi eq, %lane, %c0 : index
    %tb = arith.muli %bid, %c4 : index
    %t = arith.addi %tb, %warp : index
    %valid = arith.cmpi ult, %t, %T : index
    // out-of-range warps compute on token 0 and skip all stores, so that every
    // thread reaches every barrier (control flow stays block-uniform)
    %tc = arith.select %valid, %t, %c0 : index
    %nch = arith.divui %d, %c8 : index

    // ---- logits (f32 accumulation), one expert at a time, lanes split d
    scf.for %e = %c0 to %E step %c1 {
      %part = scf.for %ch = %lane to %nch step %c32 iter_args(%acc = %zero8) -> (vector<8xf32>) {
        %col = arith.muli %ch, %c8 : index
        %xv = vector.load %x[%tc, %col] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
        %wv = vector.load %Wr[%e, %col] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
        %xf = arith.extf %xv : vector<8xbf16> to vector<8xf32>
        %wf = arith.extf %wv : vector<8xbf16> to vector<8xf32>
        %nacc = vector.fma %xf, %wf, %acc : vector<8xf32>
        scf.yield %nacc : vector<8xf32>
      }
      %ls = vector.reduction <add>, %part : vector<8xf32> into f32
      %logit = func.call @warp_sum(%ls) : (f32) -> f32
      scf.if %is_l0 {
        memref.store %logit, %lg[%warp, %e] : memref<4x256xf32, #gpu.address_space<workgroup>>
      }
    }
    gpu.barrier

    // ---- softmax statistics: m = max logit, Z = sum exp(l - m)
    %lmax = scf.for %e = %lane to %E step %c32 iter_args(%m = %ninf) -> (f32) {
      %v = memref.load %lg[%warp, %e] : memref<4x256xf32, #gpu.address_space<workgroup>>
      %nm = arith.maximumf %m, %v : f32
      scf.yield %nm : f32
    }
    %mx = func.call @warp_max(%lmax) : (f32) -> f32
    %lsum = scf.for %e = %lane to %E step %c32 iter_args(%s = %f0) -> (f32) {
      %v = memref.load %lg[%warp, %e] : memref<4x256xf32, #gpu.address_space<workgroup>>
      %dv = arith.subf %v, %mx : f32
      %ev = math.exp %dv : f32
      %ns = arith.addf %s, %ev : f32
      scf.yield %ns : f32
    }
    %Z = func.call @warp_sum(%lsum) : (f32) -> f32

    // ---- top-k: k rounds of warp argmax; the winner is masked with -inf.
    // Within a lane experts are visited in increasing order with a strict '>',
    // so the lower index is kept on ties; across lanes argmax_step breaks ties.
    %psum = scf.for %r = %c0 to %k step %c1 iter_args(%ps = %f0) -> (f32) {
      %lb:2 = scf.for %e = %lane to %E step %c32 iter_args(%bv = %ninf, %bi = %Ei) -> (f32, i32) {
        %v = memref.load %lg[%warp, %e] : memref<4x256xf32, #gpu.address_space<workgroup>>
        %ei = arith.index_cast %e : index to i32
        %gt = arith.cmpf ogt, %v, %bv : f32
        %nbv = arith.select %gt, %v, %bv : f32
        %nbi = arith.select %gt, %ei, %bi : i32
        scf.yield %nbv, %nbi : f32, i32
      }
      %a16:2 = func.call @argmax_step(%lb#0, %lb#1, %i16) : (f32, i32, i32) -> (f32, i32)
      %a8:2 = func.call @argmax_step(%a16#0, %a16#1, %i8) : (f32, i32, i32) -> (f32, i32)
      %a4:2 = func.call @argmax_step(%a8#0, %a8#1, %i4) : (f32, i32, i32) -> (f32, i32)
      %a2:2 = func.call @argmax_step(%a4#0, %a4#1, %i2) : (f32, i32, i32) -> (f32, i32)
      %a1:2 = func.call @argmax_step(%a2#0, %a2#1, %i1) : (f32, i32, i32) -> (f32, i32)
      %dv = arith.subf %a1#0, %mx : f32
      %ev = math.exp %dv : f32
      %p = arith.divf %ev, %Z : f32
      %st = arith.andi %is_l0, %valid : i1
      scf.if %st {
        memref.store %a1#1, %ids[%t, %r] : memref<?x?xi32>
        memref.store %p, %wts[%t, %r] : memref<?x?xf32>
      }
      // all lanes have read this round's logits before the winner is masked
      gpu.barrier
      scf.if %is_l0 {
        %wi = arith.index_cast %a1#1 : i32 to index
        memref.store %ninf, %lg[%warp, %wi] : memref<4x256xf32, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      %nps = arith.addf %ps, %p : f32
      scf.yield %nps : f32
    }
    // ---- renormalize over the selected experts: w / (sum + 1e-20), spec
    // section 3 (the same thread wrote these values)
    %st2 = arith.andi %is_l0, %valid : i1
    %den = arith.addf %psum, %eps : f32
    scf.if %st2 {
      scf.for %r = %c0 to %k step %c1 {
        %w = memref.load %wts[%t, %r] : memref<?x?xf32>
        %wn = arith.divf %w, %den : f32
        memref.store %wn, %wts[%t, %r] : memref<?x?xf32>
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
          %gt = arith.cmpf ogt, %z, %bv : f32
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
  %c256 = arith.constant 256 : index
  %rem = arith.remui %d, %c8 : index
  %d_ok = arith.cmpi eq, %rem, %c0 : index
  cf.assert %d_ok, "moe gpu router: the hidden size d must be a multiple of 8"
  %e_ok = arith.cmpi ule, %E, %c256 : index
  cf.assert %e_ok, "moe gpu router: at most 256 experts"
  %k_lo = arith.cmpi uge, %k, %c1 : index
  %k_hi = arith.cmpi ule, %k, %E : index
  %k_ok = arith.andi %k_lo, %k_hi : i1
  cf.assert %k_ok, "moe gpu router: k must be in 1..E"
  return
}

// Fast path. ids and wts are [T, k]; k is taken from their shape.
func.func @moe_router(%x: memref<?x?xbf16>, %Wr: memref<?x?xbf16>,
                      %ids: memref<?x?xi32>, %wts: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c128 = arith.constant 128 : index
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
  %tp = arith.addi %T, %c3 : index
  %gx = arith.divui %tp, %c4 : index
  gpu.launch_func @moe_router_kernels::@router_topk
      blocks in (%gx, %c1, %c1) threads in (%c128, %c1, %c1)
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
