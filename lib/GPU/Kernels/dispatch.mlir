//===- dispatch.mlir - Grouped layout of the routed tokens -----*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// Dropless dispatch (moe.dispatch with the ragged layout) on the device: the
// expert-grouped layout of the assignments and the gathered rows, with no
// host synchronization between the steps.
//
//   ids        [T, k]     i32   expert of each slot; an id outside [0, E)
//                               marks an unused slot
//   wts        [T, k]     f32   combine weight of each slot
//   x          [T, d]     bf16  token activations
//   offsets    [E + 1]    i32   group offsets: expert e owns rows
//                               [offsets[e], offsets[e + 1])
//   row_token  [T * k]    i32   token of each row; -1 on the padding rows
//                               past offsets[E] (unused slots)
//   row_weight [T * k]    f32   weight of each row; 0 on padding rows
//   slot_row   [T, k]     i32   row of each slot; -1 for unused slots
//   xp         [T * k, d] bf16  xp[r] = x[row_token[r]]; zeros on padding
//
// Within a group the rows follow the flattened slot order a = t * k + j
// (token order, then slot order): a stable counting sort, the same layout
// on every run and in the reference.
//
// Kernels of @moe_dispatch_kernels:
//
//   count_experts      One thread per slot, blocks of 256: counts[e] += 1
//                      with atom.global.add (exact integers, so the result
//                      does not depend on the order of the atomics); marks
//                      unused slots in slot_row. counts must be zero first.
//   build_permutation  1 block of 256 threads (E <= 256). A block scan of
//                      the counts gives the offsets. Warp w owns the w-th eighth of
//                      the slots and walks it 32 slots at a time: lanes of
//                      one expert find each other with match.sync, count
//                      (pass 1: the warp's count of each expert), and take
//                      consecutive rows (pass 2, after a scan of the 8
//                      warps' counts per expert). O(T * k / 256) steps per
//                      thread; within a group the rows are in slot order.
//   capacity_drop      Capacity (spec section 4) after a dropless pass: one
//                      block of 256 per expert ranks its group's rows in the
//                      drop order and marks the slots past the capacity
//                      unused (ids -1); count_experts and build_permutation
//                      then run again on the kept slots. token_major is the
//                      group's own order; choice_major and score compare
//                      every pair of the group's rows, O(n_e^2 / 256) steps.
//   renormalize_kept   renormalize_after_drop: a token's weights over its
//                      kept slots. One thread per token.
//   gather_rows        One block of 128 threads per row, 16-byte vector
//                      copies (d % 8 == 0); with `scale` set each row is
//                      multiplied by its row_weight (weights applied to the
//                      input).
//   dispatch_ref       Scalar reference of the two kernels above: a single
//                      thread, O(E * T * k).
//   gather_rows_ref    Scalar reference of gather_rows: one thread per
//                      element.
//
// Limits: E <= 256, d % 8 == 0 with 16-byte aligned rows, T * k < 2^31.
//
// Host functions (host memrefs in and out; one stream, one synchronization
// at the end):
//   @moe_dispatch, @moe_dispatch_ref
//     (ids, wts, x, offsets, row_token, row_weight, slot_row, xp)
//
//===----------------------------------------------------------------------===//

module attributes {gpu.container_module} {

gpu.module @moe_dispatch_kernels {

  // The expert of slot a = t * k + j when a < end and it is routed, else -1
  // (unused slots and lanes past the end).
  func.func private @slot_expert(%ids: memref<?x?xi32>, %a: index,
                                 %end: index, %E: index) -> i32 {
    %c1 = arith.constant 1 : index
    %m1 = arith.constant -1 : i32
    %in = arith.cmpi ult, %a, %end : index
    %v = scf.if %in -> (i32) {
      %k = memref.dim %ids, %c1 : memref<?x?xi32>
      %t = arith.divui %a, %k : index
      %j = arith.remui %a, %k : index
      %e = memref.load %ids[%t, %j] : memref<?x?xi32>
      %ok = func.call @is_expert(%e, %E) : (i32, index) -> i1
      %r = arith.select %ok, %e, %m1 : i32
      scf.yield %r : i32
    } else {
      scf.yield %m1 : i32
    }
    return %v : i32
  }

  // Whether expert id e is a routed expert (0 <= e < E).
  func.func private @is_expert(%e: i32, %E: index) -> i1 {
    %z = arith.constant 0 : i32
    %Ei = arith.index_cast %E : index to i32
    %ge = arith.cmpi sge, %e, %z : i32
    %lt = arith.cmpi slt, %e, %Ei : i32
    %ok = arith.andi %ge, %lt : i1
    return %ok : i1
  }

  gpu.func @count_experts(%ids: memref<?x?xi32>, %counts: memref<?xi32>,
                          %slot_row: memref<?x?xi32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %one = arith.constant 1 : i32
    %m1 = arith.constant -1 : i32
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %E = memref.dim %counts, %c0 : memref<?xi32>
    %TK = arith.muli %T, %k : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %a0 = arith.muli %bid, %bdim : index
    %a = arith.addi %a0, %tid : index
    %in = arith.cmpi ult, %a, %TK : index
    scf.if %in {
      %t = arith.divui %a, %k : index
      %j = arith.remui %a, %k : index
      %e_i = memref.load %ids[%t, %j] : memref<?x?xi32>
      %ok = func.call @is_expert(%e_i, %E) : (i32, index) -> i1
      scf.if %ok {
        %e = arith.index_cast %e_i : i32 to index
        %old = memref.atomic_rmw addi %one, %counts[%e]
            : (i32, memref<?xi32>) -> i32
      } else {
        memref.store %m1, %slot_row[%t, %j] : memref<?x?xi32>
      }
    }
    gpu.return
  }

  gpu.func @build_permutation(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                              %counts: memref<?xi32>, %offsets: memref<?xi32>,
                              %row_token: memref<?xi32>,
                              %row_weight: memref<?xf32>,
                              %slot_row: memref<?x?xi32>)
      workgroup(%wbase: memref<2048xi32, #gpu.address_space<workgroup>>,
                %offs: memref<257xi32, #gpu.address_space<workgroup>>,
                %scan: memref<256xi32, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %m1 = arith.constant -1 : i32
    %full = arith.constant -1 : i32
    %f0 = arith.constant 0.0 : f32
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %TK = arith.muli %T, %k : index
    %E = memref.dim %counts, %c0 : memref<?xi32>
    %tid = gpu.thread_id x
    %bdim = gpu.block_dim x
    %is0 = arith.cmpi eq, %tid, %c0 : index
    // The group offsets: a block scan of the counts (thread e: expert e,
    // E <= 256), and the per-warp counts zeroed (thread t: column t of the
    // 8 x 256 table).
    %mine = arith.cmpi ult, %tid, %E : index
    %own_count = scf.if %mine -> (i32) {
      %c = memref.load %counts[%tid] : memref<?xi32>
      scf.yield %c : i32
    } else {
      scf.yield %z : i32
    }
    // Inclusive block scan (Hillis-Steele in %scan, 8 steps): thread t gets
    // the sum of the values of threads 0..t.
    memref.store %own_count, %scan[%tid] : memref<256xi32, #gpu.address_space<workgroup>>
    gpu.barrier
    %c8s = arith.constant 8 : index
    %incl = scf.for %si = %c0 to %c8s step %c1 iter_args(%cur = %own_count) -> (i32) {
      %s = arith.shli %c1, %si : index
      %has = arith.cmpi uge, %tid, %s : index
      %from = arith.subi %tid, %s : index
      %src = arith.select %has, %from, %c0 : index
      %w = memref.load %scan[%src] : memref<256xi32, #gpu.address_space<workgroup>>
      %x = arith.select %has, %w, %z : i32
      gpu.barrier
      %next = arith.addi %cur, %x : i32
      memref.store %next, %scan[%tid] : memref<256xi32, #gpu.address_space<workgroup>>
      gpu.barrier
      scf.yield %next : i32
    }
    scf.if %is0 {
      memref.store %z, %offs[%c0] : memref<257xi32, #gpu.address_space<workgroup>>
      memref.store %z, %offsets[%c0] : memref<?xi32>
    }
    scf.if %mine {
      %e1 = arith.addi %tid, %c1 : index
      memref.store %incl, %offs[%e1] : memref<257xi32, #gpu.address_space<workgroup>>
      memref.store %incl, %offsets[%e1] : memref<?xi32>
    }
    scf.for %w = %c0 to %c8 step %c1 {
      %cell0 = arith.muli %w, %c256 : index
      %cell = arith.addi %cell0, %tid : index
      memref.store %z, %wbase[%cell] : memref<2048xi32, #gpu.address_space<workgroup>>
    }
    gpu.barrier
    // Padding rows past the last group: unused slots.
    %endi = memref.load %offs[%E] : memref<257xi32, #gpu.address_space<workgroup>>
    %end = arith.index_cast %endi : i32 to index
    %pad0 = arith.addi %end, %tid : index
    scf.for %r = %pad0 to %TK step %bdim {
      memref.store %m1, %row_token[%r] : memref<?xi32>
      memref.store %f0, %row_weight[%r] : memref<?xf32>
    }
    // Warp w owns the slots [w S, (w + 1) S), S = ceil(T k / 8), and walks
    // them 32 at a time, lane l on slot base + l. Lanes of one expert find
    // each other with match.sync: the lowest of them updates the warp's
    // count of that expert, and each one's rank among them is the number
    // of lower lanes in the match. The trip counts are uniform per warp.
    %warp = arith.divui %tid, %c32 : index
    %lane = arith.remui %tid, %c32 : index
    %lt = nvvm.read.ptx.sreg.lanemask.lt : i32
    %tk7 = arith.addi %TK, %c7 : index
    %S = arith.divui %tk7, %c8 : index
    %seg0 = arith.muli %warp, %S : index
    %seg1u = arith.addi %seg0, %S : index
    %seg1 = arith.minui %seg1u, %TK : index
    %row0 = arith.muli %warp, %c256 : index
    // Pass 1: the warp's count of each expert in its segment.
    scf.for %base = %seg0 to %seg1 step %c32 {
      %a = arith.addi %base, %lane : index
      %e_i = func.call @slot_expert(%ids, %a, %seg1, %E)
          : (memref<?x?xi32>, index, index, index) -> i32
      %mask = nvvm.match.sync any %full, %e_i : i32 -> i32
      %lower = arith.andi %mask, %lt : i32
      %first = arith.cmpi eq, %lower, %z : i32
      %used = arith.cmpi sge, %e_i, %z : i32
      %lead = arith.andi %first, %used : i1
      scf.if %lead {
        %n = math.ctpop %mask : i32
        %e = arith.index_cast %e_i : i32 to index
        %cell = arith.addi %row0, %e : index
        %old = memref.load %wbase[%cell] : memref<2048xi32, #gpu.address_space<workgroup>>
        %new = arith.addi %old, %n : i32
        memref.store %new, %wbase[%cell] : memref<2048xi32, #gpu.address_space<workgroup>>
      }
    }
    gpu.barrier
    // Each expert's warp counts to the rows where each warp starts: thread
    // e scans column e from the group's offset.
    %own = arith.cmpi ult, %tid, %E : index
    scf.if %own {
      %start = memref.load %offs[%tid] : memref<257xi32, #gpu.address_space<workgroup>>
      %last = scf.for %w = %c0 to %c8 step %c1 iter_args(%run = %start) -> (i32) {
        %cell0 = arith.muli %w, %c256 : index
        %cell = arith.addi %cell0, %tid : index
        %cnt = memref.load %wbase[%cell] : memref<2048xi32, #gpu.address_space<workgroup>>
        memref.store %run, %wbase[%cell] : memref<2048xi32, #gpu.address_space<workgroup>>
        %nrun = arith.addi %run, %cnt : i32
        scf.yield %nrun : i32
      }
    }
    gpu.barrier
    // Pass 2: each slot takes the next row of its expert in the warp's
    // range, in slot order. The warp synchronizes between reading a row
    // base and its update, and after the update.
    scf.for %base = %seg0 to %seg1 step %c32 {
      %a = arith.addi %base, %lane : index
      %e_i = func.call @slot_expert(%ids, %a, %seg1, %E)
          : (memref<?x?xi32>, index, index, index) -> i32
      %mask = nvvm.match.sync any %full, %e_i : i32 -> i32
      %lower = arith.andi %mask, %lt : i32
      %used = arith.cmpi sge, %e_i, %z : i32
      %e_c = arith.select %used, %e_i, %z : i32
      %e = arith.index_cast %e_c : i32 to index
      %cell = arith.addi %row0, %e : index
      %rbase = memref.load %wbase[%cell] : memref<2048xi32, #gpu.address_space<workgroup>>
      nvvm.bar.warp.sync %full : i32
      scf.if %used {
        %rank = math.ctpop %lower : i32
        %row_i = arith.addi %rbase, %rank : i32
        %row = arith.index_cast %row_i : i32 to index
        %t = arith.divui %a, %k : index
        %j = arith.remui %a, %k : index
        %ti = arith.index_cast %t : index to i32
        %w = memref.load %wts[%t, %j] : memref<?x?xf32>
        memref.store %ti, %row_token[%row] : memref<?xi32>
        memref.store %w, %row_weight[%row] : memref<?xf32>
        memref.store %row_i, %slot_row[%t, %j] : memref<?x?xi32>
        %first = arith.cmpi eq, %lower, %z : i32
        scf.if %first {
          %n = math.ctpop %mask : i32
          %next = arith.addi %rbase, %n : i32
          memref.store %next, %wbase[%cell] : memref<2048xi32, #gpu.address_space<workgroup>>
        }
      }
      nvvm.bar.warp.sync %full : i32
    }
    gpu.return
  }

  // Capacity (spec section 4), after a dropless count_experts and
  // build_permutation: block e ranks the rows of group e in the drop order
  // (0 choice_major: slot, then token; 1 token_major: the group's own
  // order; 2 score: larger weight first, ties to the lower slot t * k + j;
  // the dialect's DropOrder values)
  // and marks the slots of rank >= cap unused (ids -1). Block e also writes
  // dropped[e] = max(n_e - cap, 0) when dropped is not empty, and zeroes
  // counts[e] for the recount of the kept slots (no memset on the dropless
  // path). row_slot is scratch of T * k entries. Groups are independent, so
  // the blocks are.
  gpu.func @capacity_drop(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                          %offsets: memref<?xi32>, %row_token: memref<?xi32>,
                          %slot_row: memref<?x?xi32>,
                          %row_slot: memref<?xi32>, %cap: index,
                          %order: i32, %dropped: memref<?xi32>,
                          %counts: memref<?xi32>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %m1 = arith.constant -1 : i32
    %i0 = arith.constant 0 : i32
    %i1 = arith.constant 1 : i32
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %e = gpu.block_id x
    %tid = gpu.thread_id x
    %bdim = gpu.block_dim x
    %e1 = arith.addi %e, %c1 : index
    %lo_i = memref.load %offsets[%e] : memref<?xi32>
    %hi_i = memref.load %offsets[%e1] : memref<?xi32>
    %lo = arith.index_cast %lo_i : i32 to index
    %hi = arith.index_cast %hi_i : i32 to index
    %n = arith.subi %hi, %lo : index
    %over = arith.cmpi ugt, %n, %cap : index
    %nd = arith.select %over, %n, %cap : index
    %excess = arith.subi %nd, %cap : index
    %ndropped = memref.dim %dropped, %c0 : memref<?xi32>
    %has = arith.cmpi ult, %e, %ndropped : index
    %is0 = arith.cmpi eq, %tid, %c0 : index
    scf.if %is0 {
      memref.store %i0, %counts[%e] : memref<?xi32>
    }
    %write = arith.andi %has, %is0 : i1
    scf.if %write {
      %x = arith.index_cast %excess : index to i32
      memref.store %x, %dropped[%e] : memref<?xi32>
    }
    // Uniform over the block, so the barrier inside is reached by all.
    scf.if %over {
      %r0 = arith.addi %lo, %tid : index
      // The slot a = t * k + j of each row.
      scf.for %r = %r0 to %hi step %bdim {
        %ri = arith.index_cast %r : index to i32
        %t_i = memref.load %row_token[%r] : memref<?xi32>
        %t = arith.index_cast %t_i : i32 to index
        %j = scf.for %jj = %c0 to %k step %c1 iter_args(%acc = %c0) -> (index) {
          %sr = memref.load %slot_row[%t, %jj] : memref<?x?xi32>
          %here = arith.cmpi eq, %sr, %ri : i32
          %nacc = arith.select %here, %jj, %acc : index
          scf.yield %nacc : index
        }
        %tk = arith.muli %t, %k : index
        %a = arith.addi %tk, %j : index
        %ai = arith.index_cast %a : index to i32
        memref.store %ai, %row_slot[%r] : memref<?xi32>
      }
      gpu.barrier
      %choice_major = arith.cmpi eq, %order, %i0 : i32
      %token_major = arith.cmpi eq, %order, %i1 : i32
      scf.for %r = %r0 to %hi step %bdim {
        %ai = memref.load %row_slot[%r] : memref<?xi32>
        %a = arith.index_cast %ai : i32 to index
        %t = arith.divui %a, %k : index
        %j = arith.remui %a, %k : index
        %w = memref.load %wts[%t, %j] : memref<?x?xf32>
        %rank = scf.if %token_major -> (index) {
          %own = arith.subi %r, %lo : index
          scf.yield %own : index
        } else {
          // The rows of the group that come first in the drop order.
          %ahead = scf.for %q = %lo to %hi step %c1 iter_args(%cnt = %c0) -> (index) {
            %bi = memref.load %row_slot[%q] : memref<?xi32>
            %b = arith.index_cast %bi : i32 to index
            %tb = arith.divui %b, %k : index
            %jb = arith.remui %b, %k : index
            %lower = arith.cmpi slt, %bi, %ai : i32
            %first = scf.if %choice_major -> (i1) {
              %jlt = arith.cmpi ult, %jb, %j : index
              %jeq = arith.cmpi eq, %jb, %j : index
              %tlt = arith.cmpi ult, %tb, %t : index
              %tie = arith.andi %jeq, %tlt : i1
              %f = arith.ori %jlt, %tie : i1
              scf.yield %f : i1
            } else {
              // Scores descending, NaN below every number (NaNs tie).
              %wb = memref.load %wts[%tb, %jb] : memref<?x?xf32>
              %gt0 = arith.cmpf ogt, %wb, %w : f32
              %wb_num = arith.cmpf ord, %wb, %wb : f32
              %wb_nan = arith.cmpf uno, %wb, %wb : f32
              %w_nan = arith.cmpf uno, %w, %w : f32
              %over_nan = arith.andi %wb_num, %w_nan : i1
              %gt = arith.ori %gt0, %over_nan : i1
              %eq0 = arith.cmpf oeq, %wb, %w : f32
              %nans = arith.andi %wb_nan, %w_nan : i1
              %eq = arith.ori %eq0, %nans : i1
              %tie = arith.andi %eq, %lower : i1
              %f = arith.ori %gt, %tie : i1
              scf.yield %f : i1
            }
            %inc = arith.select %first, %c1, %c0 : index
            %ncnt = arith.addi %cnt, %inc : index
            scf.yield %ncnt : index
          }
          scf.yield %ahead : index
        }
        %drop = arith.cmpi uge, %rank, %cap : index
        scf.if %drop {
          memref.store %m1, %ids[%t, %j] : memref<?x?xi32>
        }
      }
    }
    gpu.return
  }

  // renormalize_after_drop: each token's weights divided by the sum of its
  // kept slots' weights (in slot order) + 1e-20; dropped and unused slots
  // (ids outside [0, E)) get weight 0. One thread per token.
  gpu.func @renormalize_kept(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                             %E: index) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    %tiny = arith.constant 1.0e-20 : f32
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %t0 = arith.muli %bid, %bdim : index
    %t = arith.addi %t0, %tid : index
    %in = arith.cmpi ult, %t, %T : index
    scf.if %in {
      %sum = scf.for %j = %c0 to %k step %c1 iter_args(%s = %f0) -> (f32) {
        %id = memref.load %ids[%t, %j] : memref<?x?xi32>
        %ok = func.call @is_expert(%id, %E) : (i32, index) -> i1
        %w = memref.load %wts[%t, %j] : memref<?x?xf32>
        %kept = arith.select %ok, %w, %f0 : f32
        %ns = arith.addf %s, %kept : f32
        scf.yield %ns : f32
      }
      %den = arith.addf %sum, %tiny : f32
      scf.for %j = %c0 to %k step %c1 {
        %id = memref.load %ids[%t, %j] : memref<?x?xi32>
        %ok = func.call @is_expert(%id, %E) : (i32, index) -> i1
        %w = memref.load %wts[%t, %j] : memref<?x?xf32>
        %q = arith.divf %w, %den : f32
        %nw = arith.select %ok, %q, %f0 : f32
        memref.store %nw, %wts[%t, %j] : memref<?x?xf32>
      }
    }
    gpu.return
  }

  gpu.func @gather_rows(%x: memref<?x?xbf16>, %row_token: memref<?xi32>,
                        %xp: memref<?x?xbf16>, %row_weight: memref<?xf32>,
                        %scale: i32) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %z = arith.constant 0 : i32
    %zero8 = arith.constant dense<0.0> : vector<8xbf16>
    %d = memref.dim %x, %c1 : memref<?x?xbf16>
    %nch = arith.divui %d, %c8 : index
    %r = gpu.block_id x
    %tid = gpu.thread_id x
    %bdim = gpu.block_dim x
    %t_i = memref.load %row_token[%r] : memref<?xi32>
    %valid = arith.cmpi sge, %t_i, %z : i32
    %t0 = arith.index_cast %t_i : i32 to index
    %t = arith.select %valid, %t0, %c0 : index
    // Weights applied to the input (spec section 3): bf16(x * w) in f32,
    // as the CPU's moe.gather computes it.
    %scaled = arith.cmpi ne, %scale, %z : i32
    %w = scf.if %scaled -> (f32) {
      %rw = memref.load %row_weight[%r] : memref<?xf32>
      scf.yield %rw : f32
    } else {
      %one = arith.constant 1.0 : f32
      scf.yield %one : f32
    }
    %wv = vector.broadcast %w : f32 to vector<8xf32>
    scf.for %ch = %tid to %nch step %bdim {
      %col = arith.muli %ch, %c8 : index
      %v = scf.if %valid -> (vector<8xbf16>) {
        %l = vector.load %x[%t, %col] {alignment = 16}
            : memref<?x?xbf16>, vector<8xbf16>
        %ls = scf.if %scaled -> (vector<8xbf16>) {
          %lf = arith.extf %l : vector<8xbf16> to vector<8xf32>
          %p = arith.mulf %lf, %wv : vector<8xf32>
          %pb = arith.truncf %p : vector<8xf32> to vector<8xbf16>
          scf.yield %pb : vector<8xbf16>
        } else {
          scf.yield %l : vector<8xbf16>
        }
        scf.yield %ls : vector<8xbf16>
      } else {
        scf.yield %zero8 : vector<8xbf16>
      }
      vector.store %v, %xp[%r, %col] {alignment = 16}
          : memref<?x?xbf16>, vector<8xbf16>
    }
    gpu.return
  }

  //===--------------------------------------------------------------------===//
  // Reference kernels
  //===--------------------------------------------------------------------===//

  // One thread: counts, offsets, then the rows of each expert in slot order.
  gpu.func @dispatch_ref(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                         %offsets: memref<?xi32>, %row_token: memref<?xi32>,
                         %row_weight: memref<?xf32>,
                         %slot_row: memref<?x?xi32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %one = arith.constant 1 : i32
    %m1 = arith.constant -1 : i32
    %f0 = arith.constant 0.0 : f32
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %E1 = memref.dim %offsets, %c0 : memref<?xi32>
    %E = arith.subi %E1, %c1 : index
    %TK = arith.muli %T, %k : index
    memref.store %z, %offsets[%c0] : memref<?xi32>
    // Every slot unused until assigned; every row padding until filled.
    scf.for %t = %c0 to %T step %c1 {
      scf.for %j = %c0 to %k step %c1 {
        memref.store %m1, %slot_row[%t, %j] : memref<?x?xi32>
      }
    }
    scf.for %r = %c0 to %TK step %c1 {
      memref.store %m1, %row_token[%r] : memref<?xi32>
      memref.store %f0, %row_weight[%r] : memref<?xf32>
    }
    %total = scf.for %e = %c0 to %E step %c1 iter_args(%row = %z) -> (i32) {
      %ei = arith.index_cast %e : index to i32
      %next = scf.for %t = %c0 to %T step %c1 iter_args(%r0 = %row) -> (i32) {
        %rt = scf.for %j = %c0 to %k step %c1 iter_args(%r1 = %r0) -> (i32) {
          %id = memref.load %ids[%t, %j] : memref<?x?xi32>
          %mine = arith.cmpi eq, %id, %ei : i32
          %r2 = scf.if %mine -> (i32) {
            %ri = arith.index_cast %r1 : i32 to index
            %ti = arith.index_cast %t : index to i32
            %w = memref.load %wts[%t, %j] : memref<?x?xf32>
            memref.store %ti, %row_token[%ri] : memref<?xi32>
            memref.store %w, %row_weight[%ri] : memref<?xf32>
            memref.store %r1, %slot_row[%t, %j] : memref<?x?xi32>
            %rn = arith.addi %r1, %one : i32
            scf.yield %rn : i32
          } else {
            scf.yield %r1 : i32
          }
          scf.yield %r2 : i32
        }
        scf.yield %rt : i32
      }
      %e1 = arith.addi %e, %c1 : index
      memref.store %next, %offsets[%e1] : memref<?xi32>
      scf.yield %next : i32
    }
    gpu.return
  }

  // One thread per element of xp, blocks of 16 x 16 over [T * k, d].
  gpu.func @gather_rows_ref(%x: memref<?x?xbf16>, %row_token: memref<?xi32>,
                            %xp: memref<?x?xbf16>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %zero = arith.constant 0.0 : bf16
    %N = memref.dim %xp, %c0 : memref<?x?xbf16>
    %d = memref.dim %xp, %c1 : memref<?x?xbf16>
    %bx = gpu.block_id x
    %by = gpu.block_id y
    %tx = gpu.thread_id x
    %ty = gpu.thread_id y
    %dx = gpu.block_dim x
    %dy = gpu.block_dim y
    %col0 = arith.muli %bx, %dx : index
    %col = arith.addi %col0, %tx : index
    %row0 = arith.muli %by, %dy : index
    %row = arith.addi %row0, %ty : index
    %okr = arith.cmpi ult, %row, %N : index
    %okc = arith.cmpi ult, %col, %d : index
    %ok = arith.andi %okr, %okc : i1
    scf.if %ok {
      %t_i = memref.load %row_token[%row] : memref<?xi32>
      %valid = arith.cmpi sge, %t_i, %z : i32
      %v = scf.if %valid -> (bf16) {
        %t = arith.index_cast %t_i : i32 to index
        %l = memref.load %x[%t, %col] : memref<?x?xbf16>
        scf.yield %l : bf16
      } else {
        scf.yield %zero : bf16
      }
      memref.store %v, %xp[%row, %col] : memref<?x?xbf16>
    }
    gpu.return
  }
}

//===----------------------------------------------------------------------===//
// Host functions
//===----------------------------------------------------------------------===//

func.func private @check_dispatch_limits(%d: index, %E: index) {
  %c0 = arith.constant 0 : index
  %c8 = arith.constant 8 : index
  %c256 = arith.constant 256 : index
  %rem = arith.remui %d, %c8 : index
  %d_ok = arith.cmpi eq, %rem, %c0 : index
  cf.assert %d_ok, "moe gpu dispatch: the hidden size d must be a multiple of 8"
  %e_ok = arith.cmpi ule, %E, %c256 : index
  cf.assert %e_ok, "moe gpu dispatch: at most 256 experts"
  return
}

// Fast path: memset, counts, scan and permutation, gather, all enqueued on
// one stream.
func.func @moe_dispatch(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                        %x: memref<?x?xbf16>, %offsets: memref<?xi32>,
                        %row_token: memref<?xi32>, %row_weight: memref<?xf32>,
                        %slot_row: memref<?x?xi32>, %xp: memref<?x?xbf16>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %z = arith.constant 0 : i32
  %T = memref.dim %ids, %c0 : memref<?x?xi32>
  %k = memref.dim %ids, %c1 : memref<?x?xi32>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E1 = memref.dim %offsets, %c0 : memref<?xi32>
  %E = arith.subi %E1, %c1 : index
  call @check_dispatch_limits(%d, %E) : (index, index) -> ()
  %TK = arith.muli %T, %k : index
  %dids = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dwts = gpu.alloc (%T, %k) : memref<?x?xf32>
  %dx = gpu.alloc (%T, %d) : memref<?x?xbf16>
  %dcnt = gpu.alloc (%E) : memref<?xi32>
  %doff = gpu.alloc (%E1) : memref<?xi32>
  %drt = gpu.alloc (%TK) : memref<?xi32>
  %drw = gpu.alloc (%TK) : memref<?xf32>
  %dsr = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dxp = gpu.alloc (%TK, %d) : memref<?x?xbf16>
  gpu.memcpy %dids, %ids : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %dwts, %wts : memref<?x?xf32>, memref<?x?xf32>
  gpu.memcpy %dx, %x : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.memset %dcnt, %z : memref<?xi32>, i32
  %ap = arith.addi %TK, %c255 : index
  %gc = arith.divui %ap, %c256 : index
  gpu.launch_func @moe_dispatch_kernels::@count_experts
      blocks in (%gc, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dcnt : memref<?xi32>,
           %dsr : memref<?x?xi32>)
  gpu.launch_func @moe_dispatch_kernels::@build_permutation
      blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %dcnt : memref<?xi32>, %doff : memref<?xi32>,
           %drt : memref<?xi32>, %drw : memref<?xf32>,
           %dsr : memref<?x?xi32>)
  gpu.launch_func @moe_dispatch_kernels::@gather_rows
      blocks in (%TK, %c1, %c1) threads in (%c128, %c1, %c1)
      args(%dx : memref<?x?xbf16>, %drt : memref<?xi32>,
           %dxp : memref<?x?xbf16>, %drw : memref<?xf32>, %z : i32)
  gpu.memcpy %offsets, %doff : memref<?xi32>, memref<?xi32>
  gpu.memcpy %row_token, %drt : memref<?xi32>, memref<?xi32>
  gpu.memcpy %row_weight, %drw : memref<?xf32>, memref<?xf32>
  gpu.memcpy %slot_row, %dsr : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %xp, %dxp : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.dealloc %dids : memref<?x?xi32>
  gpu.dealloc %dwts : memref<?x?xf32>
  gpu.dealloc %dx : memref<?x?xbf16>
  gpu.dealloc %dcnt : memref<?xi32>
  gpu.dealloc %doff : memref<?xi32>
  gpu.dealloc %drt : memref<?xi32>
  gpu.dealloc %drw : memref<?xf32>
  gpu.dealloc %dsr : memref<?x?xi32>
  gpu.dealloc %dxp : memref<?x?xbf16>
  return
}

// Reference path, same contract.
func.func @moe_dispatch_ref(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                            %x: memref<?x?xbf16>, %offsets: memref<?xi32>,
                            %row_token: memref<?xi32>,
                            %row_weight: memref<?xf32>,
                            %slot_row: memref<?x?xi32>,
                            %xp: memref<?x?xbf16>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c15 = arith.constant 15 : index
  %c16 = arith.constant 16 : index
  %T = memref.dim %ids, %c0 : memref<?x?xi32>
  %k = memref.dim %ids, %c1 : memref<?x?xi32>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E1 = memref.dim %offsets, %c0 : memref<?xi32>
  %TK = arith.muli %T, %k : index
  %dids = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dwts = gpu.alloc (%T, %k) : memref<?x?xf32>
  %dx = gpu.alloc (%T, %d) : memref<?x?xbf16>
  %doff = gpu.alloc (%E1) : memref<?xi32>
  %drt = gpu.alloc (%TK) : memref<?xi32>
  %drw = gpu.alloc (%TK) : memref<?xf32>
  %dsr = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dxp = gpu.alloc (%TK, %d) : memref<?x?xbf16>
  gpu.memcpy %dids, %ids : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %dwts, %wts : memref<?x?xf32>, memref<?x?xf32>
  gpu.memcpy %dx, %x : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.launch_func @moe_dispatch_kernels::@dispatch_ref
      blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %doff : memref<?xi32>, %drt : memref<?xi32>,
           %drw : memref<?xf32>, %dsr : memref<?x?xi32>)
  %rp = arith.addi %TK, %c15 : index
  %gy = arith.divui %rp, %c16 : index
  %cp = arith.addi %d, %c15 : index
  %gx = arith.divui %cp, %c16 : index
  gpu.launch_func @moe_dispatch_kernels::@gather_rows_ref
      blocks in (%gx, %gy, %c1) threads in (%c16, %c16, %c1)
      args(%dx : memref<?x?xbf16>, %drt : memref<?xi32>,
           %dxp : memref<?x?xbf16>)
  gpu.memcpy %offsets, %doff : memref<?xi32>, memref<?xi32>
  gpu.memcpy %row_token, %drt : memref<?xi32>, memref<?xi32>
  gpu.memcpy %row_weight, %drw : memref<?xf32>, memref<?xf32>
  gpu.memcpy %slot_row, %dsr : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %xp, %dxp : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.dealloc %dids : memref<?x?xi32>
  gpu.dealloc %dwts : memref<?x?xf32>
  gpu.dealloc %dx : memref<?x?xbf16>
  gpu.dealloc %doff : memref<?xi32>
  gpu.dealloc %drt : memref<?xi32>
  gpu.dealloc %drw : memref<?xf32>
  gpu.dealloc %dsr : memref<?x?xi32>
  gpu.dealloc %dxp : memref<?x?xbf16>
  return
}

}
