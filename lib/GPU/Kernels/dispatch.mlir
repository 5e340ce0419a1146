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
//                      For the segmented permutation below.
//   build_permutation  1 block of 256 threads (ceil(E / 256) consecutive
//                      experts a thread; the warps' counts an 8 x E table
//                      in dynamic shared memory, 32 E + 1024 bytes with the
//                      scan), with no
//                      count before it. Warp w owns the
//                      w-th eighth of the slots and walks it 32 slots at a
//                      time: lanes of one expert find each other with
//                      match.sync and count (pass 1: the warp's count of
//                      each expert); the sums of the 8 warps' counts are
//                      the counts (written out), and a block scan of them
//                      gives the offsets; then each slot takes consecutive
//                      rows (pass 2, after a scan of the 8 warps' counts
//                      per expert), an unused slot -1 in slot_row.
//                      O(T * k / 256) steps per thread; within a group the
//                      rows are in slot order. For at most 4096 slots
//                      (moe_gpu_permutation_blocks of the runtime;
//                      @permute_async picks): one launch in the place of a
//                      memset, count_experts and a launch (decode's
//                      dispatch). Given a tile map with entries (`tiles`,
//                      tiles of `rows_per` rows), it also fills it from
//                      the counts, as experts.mlir's build_tile_map would
//                      (a block scan of the experts' tiles), which spares
//                      a layer that kernel's launch.
//   permute_count,     The same layout for more slots, from B blocks
//   permute_scan,      (ceil(T k / 4096), at most 1024): warp w of block b
//   permute_rows       walks segment 8 b + w of the slots; permute_count
//                      writes each segment's count of each expert to a
//                      [8 B, E] table, permute_scan (a block per expert)
//                      turns the counts into the rows where the segments
//                      start and writes the offsets, and permute_rows
//                      places the slots as pass 2 above does and marks the
//                      padding rows. O(T k / (256 B)) steps per thread.
//   capacity_keys      Capacity (spec section 4) after a dropless pass: the
//                      drop-order key of each routed slot, a distinct 64-bit
//                      integer (larger first), at the slot's row. One
//                      thread per slot.
//   capacity_drop      One block of 256 per expert keeps the first `cap`
//                      rows of its group in the drop order and marks the
//                      slots of the others unused (ids -1); count_experts
//                      and build_permutation then run again on the kept
//                      slots. token_major is the group's own order;
//                      choice_major and score find the cap-th largest key by
//                      radix select (one byte a pass, at most 8, fewer when
//                      the kept keys part from the others early): O(n_e /
//                      256) steps per thread and pass.
//   expert_choice      Expert-choice selection (spec section 2) from the
//                      router's scores [T, E]: one block of 256 per expert
//                      keeps its `taken` best tokens, by the same radix
//                      select on (score, token) keys. O(T / 256) steps per
//                      thread and pass.
//   renormalize_kept   renormalize_after_drop: a token's weights over its
//                      kept slots. One thread per token.
//   gather_rows        One block of 128 threads per row, 16-byte vector
//                      copies (d % 8 == 0); with `scale` set each row is
//                      multiplied by its row_weight (weights applied to the
//                      input).
//   finish_layer       The last kernel of a device entry point: the
//                      layer's f32 output rounded to bf16, one element a
//                      thread, and, on the blocks after those, a compiled
//                      model's statistics: one thread per expert adds the
//                      call's assignments (kept + dropped; no dropped
//                      counts, [0], for a layer without a capacity) and
//                      dropped counts, and one more its tokens and the
//                      call, to a running [2, E + 1] i64 table with
//                      atom.global.add (callers on several streams may
//                      share it; a graph adds at each replay). One launch
//                      for both: the statistics cost a call a block or
//                      two, not a kernel of their own (at decoding, a
//                      tenth of the chain).
//   rows_to_bf16,      A device entry point of a layer computed in bf16 on
//   rows_from_bf16     f32 or f16 rows (moe-narrow-to-bf16): its input
//                      rounded to bf16 before the first kernel, and its
//                      bf16 output widened after finish_layer, as the
//                      narrowed function's host code rounds them. One
//                      element a thread.
//   record_selection   The selection before any drop, for co-activation
//                      counts (docs/monitoring.md): one thread per token
//                      copies its expert ids to ids_out when ids_out has
//                      rows, and adds 1 to counts[2 + i, j] for each pair
//                      i < j of its routed experts when the statistics
//                      table has those rows ([2 + E, E + 1]: finish_layer's
//                      two rows, then the pairs). Selections hold distinct
//                      experts, so each pair counts once; the atomics add
//                      exact integers, the result does not depend on their
//                      order. O(k^2) steps per thread.
//   dispatch_ref       Scalar reference of the two kernels above: a single
//                      thread, O(E * T * k).
//   gather_rows_ref    Scalar reference of gather_rows: one thread per
//                      element.
//
// Selection order: larger keys first, NaN below every number, -0 equal to
// +0, ties to the lower slot t * k + j (capacity) or token (expert choice),
// as docs/semantics.md says; deterministic.
//
// Limits: E <= 2048, d % 8 == 0 with 16-byte aligned rows, T * k < 2^31.
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

  // Inclusive scan over a block of 256 threads (Hillis-Steele in %scan,
  // 8 steps): thread t gets the sum of the values of threads 0..t. Every
  // thread of the block calls it, from a region of scf (where the inliner
  // inlines it); %scan is free again when it returns.
  func.func private @block_scan(%v: i32,
      %scan: memref<256xi32, #gpu.address_space<workgroup>>) -> i32 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %z = arith.constant 0 : i32
    %tid = gpu.thread_id x
    memref.store %v, %scan[%tid] : memref<256xi32, #gpu.address_space<workgroup>>
    gpu.barrier
    %incl = scf.for %si = %c0 to %c8 step %c1 iter_args(%cur = %v) -> (i32) {
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
    return %incl : i32
  }

  // Pass 1 of a permutation on the 32 slots base .. base + 31 of a warp's
  // segment, which ends at seg1: lanes of one expert find each other with
  // match.sync, and the lowest of them adds their number to the warp's
  // count of that expert, cnt[row0 + e]. Called by the whole warp.
  func.func private @count_chunk(%ids: memref<?x?xi32>, %base: index,
                                 %seg1: index, %E: index,
                                 %cnt: memref<?xi32, #gpu.address_space<workgroup>>,
                                 %row0: index) {
    %c32 = arith.constant 32 : index
    %z = arith.constant 0 : i32
    %full = arith.constant -1 : i32
    %tid = gpu.thread_id x
    %lane = arith.remui %tid, %c32 : index
    %lt = nvvm.read.ptx.sreg.lanemask.lt : i32
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
      %old = memref.load %cnt[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
      %new = arith.addi %old, %n : i32
      memref.store %new, %cnt[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
    }
    return
  }

  // Pass 2 on the same 32 slots: each routed slot takes the next row of its
  // expert, rows[row0 + e] (the warp's next row of each expert), plus its
  // rank among the lanes of that expert, writes the row's token and weight
  // and its own slot_row, and the lowest lane advances rows[row0 + e]; an
  // unused slot's slot_row is -1. The warp synchronizes between reading a
  // row base and its update, and after the update. Called by the whole
  // warp.
  func.func private @place_chunk(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                                 %base: index, %seg1: index, %E: index,
                                 %rows: memref<?xi32, #gpu.address_space<workgroup>>,
                                 %row0: index, %row_token: memref<?xi32>,
                                 %row_weight: memref<?xf32>,
                                 %slot_row: memref<?x?xi32>) {
    %c1 = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    %z = arith.constant 0 : i32
    %m1 = arith.constant -1 : i32
    %full = arith.constant -1 : i32
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %tid = gpu.thread_id x
    %lane = arith.remui %tid, %c32 : index
    %lt = nvvm.read.ptx.sreg.lanemask.lt : i32
    %a = arith.addi %base, %lane : index
    %e_i = func.call @slot_expert(%ids, %a, %seg1, %E)
        : (memref<?x?xi32>, index, index, index) -> i32
    %mask = nvvm.match.sync any %full, %e_i : i32 -> i32
    %lower = arith.andi %mask, %lt : i32
    %used = arith.cmpi sge, %e_i, %z : i32
    %in_segment = arith.cmpi ult, %a, %seg1 : index
    %e_c = arith.select %used, %e_i, %z : i32
    %e = arith.index_cast %e_c : i32 to index
    %cell = arith.addi %row0, %e : index
    %rbase = memref.load %rows[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
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
        memref.store %next, %rows[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
      }
    } else {
      scf.if %in_segment {
        %t = arith.divui %a, %k : index
        %j = arith.remui %a, %k : index
        memref.store %m1, %slot_row[%t, %j] : memref<?x?xi32>
      }
    }
    nvvm.bar.warp.sync %full : i32
    return
  }

  // Expert e's count in a permutation's per-warp table: the sum of the 8
  // warps' counts, cnt[E w + e].
  func.func private @warps_count(
      %cnt: memref<?xi32, #gpu.address_space<workgroup>>, %E: index, %e: index)
      -> i32 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %z = arith.constant 0 : i32
    %sum = scf.for %w = %c0 to %c8 step %c1 iter_args(%acc = %z) -> (i32) {
      %cell0 = arith.muli %w, %E : index
      %cell = arith.addi %cell0, %e : index
      %n = memref.load %cnt[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
      %next = arith.addi %acc, %n : i32
      scf.yield %next : i32
    }
    return %sum : i32
  }

  // The experts [e0, e1) of the calling thread of a block of 256: q =
  // ceil(E / 256) consecutive experts a thread, so that a block scan over
  // the threads visits the experts in order, whatever E.
  func.func private @thread_experts(%E: index) -> (index, index) {
    %c255 = arith.constant 255 : index
    %c256 = arith.constant 256 : index
    %tid = gpu.thread_id x
    %ep = arith.addi %E, %c255 : index
    %q = arith.divui %ep, %c256 : index
    %e0u = arith.muli %tid, %q : index
    %e0 = arith.minui %e0u, %E : index
    %e1u = arith.addi %e0, %q : index
    %e1 = arith.minui %e1u, %E : index
    return %e0, %e1 : index, index
  }

  // The tiles of `rows` rows that a group of `count` rows takes.
  func.func private @tiles_of(%count: i32, %rows: i32) -> i32 {
    %one = arith.constant 1 : i32
    %rows1 = arith.subi %rows, %one : i32
    %p = arith.addi %count, %rows1 : i32
    %n = arith.divui %p, %rows : i32
    return %n : i32
  }

  // The tile-map entries of expert e, whose `count` rows start at row lo:
  // entry first + i is (e, lo + i rows, min(lo + (i + 1) rows, lo + count),
  // 0) for each tile i of `rows` rows (experts.mlir's @build_tile_map
  // writes the same entries).
  func.func private @write_tiles(%tiles: memref<?x4xi32>, %e: index,
                                 %lo: i32, %count: i32, %first: i32,
                                 %rows: i32) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %ei = arith.index_cast %e : index to i32
    %hi = arith.addi %lo, %count : i32
    %n_i = func.call @tiles_of(%count, %rows) : (i32, i32) -> i32
    %n = arith.index_cast %n_i : i32 to index
    %first_i = arith.index_cast %first : i32 to index
    scf.for %t = %c0 to %n step %c1 {
      %slot = arith.addi %first_i, %t : index
      %ti = arith.index_cast %t : index to i32
      %r0 = arith.muli %ti, %rows : i32
      %m0 = arith.addi %lo, %r0 : i32
      %m1 = arith.addi %m0, %rows : i32
      %mend = arith.minsi %m1, %hi : i32
      %entry = vector.from_elements %ei, %m0, %mend, %z : vector<4xi32>
      vector.store %entry, %tiles[%slot, %c0] {alignment = 16}
          : memref<?x4xi32>, vector<4xi32>
    }
    return
  }

  // The tile map of the expert GEMMs from build_permutation's counts:
  // thread t owns the experts [e0, e1) (@thread_experts), whose rows start
  // at row lo; a block scan of their tiles of `rows` rows places their
  // entries (@write_tiles), and the entries past the last tile are (-1, 0,
  // 0, 0), as @build_tile_map leaves them. The counts are those the thread
  // wrote. Called by the whole block; %scan is free again when it returns.
  func.func private @map_tiles(%e0: index, %e1: index, %lo: i32,
                               %counts: memref<?xi32>, %rows_per: index,
                               %tiles: memref<?x4xi32>,
                               %scan: memref<256xi32, #gpu.address_space<workgroup>>) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c255 = arith.constant 255 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %tid = gpu.thread_id x
    %rows = arith.index_cast %rows_per : index to i32
    %own = scf.for %e = %e0 to %e1 step %c1 iter_args(%acc = %z) -> (i32) {
      %n = memref.load %counts[%e] : memref<?xi32>
      %nt = func.call @tiles_of(%n, %rows) : (i32, i32) -> i32
      %next = arith.addi %acc, %nt : i32
      scf.yield %next : i32
    }
    %incl = func.call @block_scan(%own, %scan)
        : (i32, memref<256xi32, #gpu.address_space<workgroup>>) -> i32
    %first = arith.subi %incl, %own : i32
    %ends:2 = scf.for %e = %e0 to %e1 step %c1
        iter_args(%slot = %first, %row = %lo) -> (i32, i32) {
      %n = memref.load %counts[%e] : memref<?xi32>
      func.call @write_tiles(%tiles, %e, %row, %n, %slot, %rows)
          : (memref<?x4xi32>, index, i32, i32, i32, i32) -> ()
      %nt = func.call @tiles_of(%n, %rows) : (i32, i32) -> i32
      %next_slot = arith.addi %slot, %nt : i32
      %next_row = arith.addi %row, %n : i32
      scf.yield %next_slot, %next_row : i32, i32
    }
    // The scan's last value is the number of tiles.
    %count_i = memref.load %scan[%c255] : memref<256xi32, #gpu.address_space<workgroup>>
    %count = arith.index_cast %count_i : i32 to index
    %size = memref.dim %tiles, %c0 : memref<?x4xi32>
    %from = arith.addi %count, %tid : index
    %none = arith.constant dense<[-1, 0, 0, 0]> : vector<4xi32>
    scf.for %slot = %from to %size step %c256 {
      vector.store %none, %tiles[%slot, %c0] {alignment = 16}
          : memref<?x4xi32>, vector<4xi32>
    }
    gpu.barrier
    return
  }

  gpu.func @build_permutation(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                              %counts: memref<?xi32>, %offsets: memref<?xi32>,
                              %row_token: memref<?xi32>,
                              %row_weight: memref<?xf32>,
                              %slot_row: memref<?x?xi32>, %rows_per: index,
                              %tiles: memref<?x4xi32>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c255 = arith.constant 255 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %m1 = arith.constant -1 : i32
    %f0 = arith.constant 0.0 : f32
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %TK = arith.muli %T, %k : index
    %E = memref.dim %counts, %c0 : memref<?xi32>
    %tid = gpu.thread_id x
    %bdim = gpu.block_dim x
    %is0 = arith.cmpi eq, %tid, %c0 : index
    // The per-warp counts, an 8 x E table in the launch's dynamic shared
    // memory (@permutation_shared_bytes), zeroed, and after it the block
    // scan's 256 entries (no static shared memory beside the dynamic).
    %E8 = arith.muli %E, %c8 : index
    %smem = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %wbase = memref.view %smem[%c0][%E8] : memref<?xi8, #gpu.address_space<workgroup>> to memref<?xi32, #gpu.address_space<workgroup>>
    %scan_at = arith.muli %E8, %c4 : index
    %scan = memref.view %smem[%scan_at][] : memref<?xi8, #gpu.address_space<workgroup>> to memref<256xi32, #gpu.address_space<workgroup>>
    scf.for %cell = %tid to %E8 step %c256 {
      memref.store %z, %wbase[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
    }
    gpu.barrier
    // Warp w owns the slots [w S, (w + 1) S), S = ceil(T k / 8), and walks
    // them 32 at a time, lane l on slot base + l. Lanes of one expert find
    // each other with match.sync: the lowest of them updates the warp's
    // count of that expert, and each one's rank among them is the number
    // of lower lanes in the match. The trip counts are uniform per warp.
    %warp = arith.divui %tid, %c32 : index
    %tk7 = arith.addi %TK, %c7 : index
    %S = arith.divui %tk7, %c8 : index
    %seg0 = arith.muli %warp, %S : index
    %seg1u = arith.addi %seg0, %S : index
    %seg1 = arith.minui %seg1u, %TK : index
    %row0 = arith.muli %warp, %E : index
    // Pass 1: the warp's count of each expert in its segment.
    scf.for %base = %seg0 to %seg1 step %c32 {
      func.call @count_chunk(%ids, %base, %seg1, %E, %wbase, %row0)
          : (memref<?x?xi32>, index, index, index,
             memref<?xi32, #gpu.address_space<workgroup>>, index) -> ()
    }
    gpu.barrier
    // Each expert's count, the sum of the warps' counts (written to
    // `counts`), and the group offsets: a block scan of the counts of each
    // thread's experts [e0, e1).
    %own_e:2 = func.call @thread_experts(%E) : (index) -> (index, index)
    %own_count = scf.for %e = %own_e#0 to %own_e#1 step %c1
        iter_args(%acc = %z) -> (i32) {
      %c = func.call @warps_count(%wbase, %E, %e)
          : (memref<?xi32, #gpu.address_space<workgroup>>, index, index) -> i32
      memref.store %c, %counts[%e] : memref<?xi32>
      %next = arith.addi %acc, %c : i32
      scf.yield %next : i32
    }
    // Inclusive block scan (Hillis-Steele in %scan, 8 steps): thread t gets
    // the sum of the values of threads 0..t. Written out here rather than a
    // call of @block_scan: MLIR's inliner inlines into scf regions but not
    // into the body of a gpu.func, and a workgroup memref argument does not
    // survive as a call.
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
    // The scan's last value: the rows of all groups.
    %endi = memref.load %scan[%c255] : memref<256xi32, #gpu.address_space<workgroup>>
    scf.if %is0 {
      memref.store %z, %offsets[%c0] : memref<?xi32>
    }
    // offsets[e + 1], the rows of the experts up to e, and each expert's
    // warp counts turned into the rows where each warp starts.
    %excl = arith.subi %incl, %own_count : i32
    %own_end = scf.for %e = %own_e#0 to %own_e#1 step %c1
        iter_args(%start = %excl) -> (i32) {
      %last = scf.for %w = %c0 to %c8 step %c1 iter_args(%run = %start) -> (i32) {
        %cell0 = arith.muli %w, %E : index
        %cell = arith.addi %cell0, %e : index
        %cnt = memref.load %wbase[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
        memref.store %run, %wbase[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
        %nrun = arith.addi %run, %cnt : i32
        scf.yield %nrun : i32
      }
      %e1 = arith.addi %e, %c1 : index
      memref.store %last, %offsets[%e1] : memref<?xi32>
      scf.yield %last : i32
    }
    // (%scan read above before @map_tiles reuses it; the rows table
    // complete before pass 2.)
    gpu.barrier
    // The expert GEMMs' tile map, when the caller passes one with entries:
    // from the counts at hand, so that no kernel of its own follows.
    %n_entries = memref.dim %tiles, %c0 : memref<?x4xi32>
    %mapping = arith.cmpi ne, %n_entries, %c0 : index
    scf.if %mapping {
      func.call @map_tiles(%own_e#0, %own_e#1, %excl, %counts, %rows_per,
                           %tiles, %scan)
          : (index, index, i32, memref<?xi32>, index, memref<?x4xi32>,
             memref<256xi32, #gpu.address_space<workgroup>>) -> ()
    }
    // Padding rows past the last group: unused slots.
    %end = arith.index_cast %endi : i32 to index
    %pad0 = arith.addi %end, %tid : index
    scf.for %r = %pad0 to %TK step %bdim {
      memref.store %m1, %row_token[%r] : memref<?xi32>
      memref.store %f0, %row_weight[%r] : memref<?xf32>
    }
    // Pass 2: each slot takes the next row of its expert in the warp's
    // range, in slot order; unused slots get -1.
    scf.for %base = %seg0 to %seg1 step %c32 {
      func.call @place_chunk(%ids, %wts, %base, %seg1, %E, %wbase, %row0,
                             %row_token, %row_weight, %slot_row)
          : (memref<?x?xi32>, memref<?x?xf32>, index, index, index,
             memref<?xi32, #gpu.address_space<workgroup>>, index, memref<?xi32>,
             memref<?xf32>, memref<?x?xi32>) -> ()
    }
    gpu.return
  }

  // The segmented permutation, for many slots (moe_gpu_permutation_blocks
  // of the runtime > 1): the layout of build_permutation from three
  // kernels. The slots are cut into NS = 8 B segments (B blocks of 8
  // warps), segment s = 8 b + w the slots [s S, (s + 1) S) of [0, T k), S =
  // ceil(T k / NS), walked by warp w of block b. segc [NS, E] i32 holds
  // each segment's count of each expert (permute_count), then the row
  // where the segment's slots of that expert start (permute_scan), from
  // which permute_rows places them, so the rows of a group stay in slot
  // order.

  // The slots [seg0, seg1) of the calling warp's segment (S as above, NS
  // = 8 gridDim.x), its index s and the start of its row of the shared
  // 8 x E table, E w.
  func.func private @warp_segment(%TK: index, %E: index)
      -> (index, index, index, index) {
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %tid = gpu.thread_id x
    %b = gpu.block_id x
    %nb = gpu.grid_dim x
    %warp = arith.divui %tid, %c32 : index
    %ns = arith.muli %nb, %c8 : index
    %b8 = arith.muli %b, %c8 : index
    %s = arith.addi %b8, %warp : index
    %tkp = arith.addi %TK, %ns : index
    %tkp1 = arith.subi %tkp, %c1 : index
    %S = arith.divui %tkp1, %ns : index
    %seg0u = arith.muli %s, %S : index
    %seg0 = arith.minui %seg0u, %TK : index
    %seg1u = arith.addi %seg0, %S : index
    %seg1 = arith.minui %seg1u, %TK : index
    %row0 = arith.muli %warp, %E : index
    return %seg0, %seg1, %s, %row0 : index, index, index, index
  }

  // segc[s, e]: the slots of segment s routed to expert e.
  gpu.func @permute_count(%ids: memref<?x?xi32>, %segc: memref<?x?xi32>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %TK = arith.muli %T, %k : index
    %E = memref.dim %segc, %c1 : memref<?x?xi32>
    %tid = gpu.thread_id x
    %lane = arith.remui %tid, %c32 : index
    // The warps' counts: an 8 x E table in dynamic shared memory
    // (@permutation_shared_bytes), zeroed.
    %E8 = arith.muli %E, %c8 : index
    %smem = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %cnt = memref.view %smem[%c0][%E8] : memref<?xi8, #gpu.address_space<workgroup>> to memref<?xi32, #gpu.address_space<workgroup>>
    scf.for %i = %tid to %E8 step %c256 {
      memref.store %z, %cnt[%i] : memref<?xi32, #gpu.address_space<workgroup>>
    }
    gpu.barrier
    %seg:4 = func.call @warp_segment(%TK, %E) : (index, index) -> (index, index, index, index)
    scf.for %base = %seg#0 to %seg#1 step %c32 {
      func.call @count_chunk(%ids, %base, %seg#1, %E, %cnt, %seg#3)
          : (memref<?x?xi32>, index, index, index,
             memref<?xi32, #gpu.address_space<workgroup>>, index) -> ()
    }
    gpu.barrier
    scf.for %e = %lane to %E step %c32 {
      %cell = arith.addi %seg#3, %e : index
      %n = memref.load %cnt[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
      memref.store %n, %segc[%seg#2, %e] : memref<?x?xi32>
    }
    gpu.return
  }

  // Block e (grid E): offsets[e + 1] (offsets[0] = 0 by block 0), and
  // segc[s, e] replaced by the row where segment s's slots of expert e
  // start: offsets[e] plus the count of the segments before s.
  gpu.func @permute_scan(%counts: memref<?xi32>, %segc: memref<?x?xi32>,
                         %offsets: memref<?xi32>)
      workgroup(%scan: memref<256xi32, #gpu.address_space<workgroup>>,
                %total: memref<1xi32, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c255 = arith.constant 255 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %E = memref.dim %counts, %c0 : memref<?xi32>
    %NS = memref.dim %segc, %c0 : memref<?x?xi32>
    %e = gpu.block_id x
    %tid = gpu.thread_id x
    %is0 = arith.cmpi eq, %tid, %c0 : index
    %in = arith.cmpi ult, %e, %E : index
    // Block-uniform: every barrier below is reached by the whole block.
    scf.if %in {
      // The group's offset: the counts of the experts before e.
      %part = scf.for %i = %tid to %e step %c256 iter_args(%acc = %z) -> (i32) {
        %v = memref.load %counts[%i] : memref<?xi32>
        %n = arith.addi %acc, %v : i32
        scf.yield %n : i32
      }
      %pincl = func.call @block_scan(%part, %scan)
          : (i32, memref<256xi32, #gpu.address_space<workgroup>>) -> i32
      %last = arith.cmpi eq, %tid, %c255 : index
      scf.if %last {
        memref.store %pincl, %total[%c0] : memref<1xi32, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      %start = memref.load %total[%c0] : memref<1xi32, #gpu.address_space<workgroup>>
      // Thread t: the segments [t q, (t + 1) q), q = ceil(NS / 256).
      %nsp = arith.addi %NS, %c255 : index
      %q = arith.divui %nsp, %c256 : index
      %s0u = arith.muli %tid, %q : index
      %s0 = arith.minui %s0u, %NS : index
      %s1u = arith.addi %s0, %q : index
      %s1 = arith.minui %s1u, %NS : index
      %mine = scf.for %s = %s0 to %s1 step %c1 iter_args(%acc = %z) -> (i32) {
        %v = memref.load %segc[%s, %e] : memref<?x?xi32>
        %n = arith.addi %acc, %v : i32
        scf.yield %n : i32
      }
      %incl = func.call @block_scan(%mine, %scan)
          : (i32, memref<256xi32, #gpu.address_space<workgroup>>) -> i32
      %excl = arith.subi %incl, %mine : i32
      %first = arith.addi %start, %excl : i32
      %end = scf.for %s = %s0 to %s1 step %c1 iter_args(%run = %first) -> (i32) {
        %v = memref.load %segc[%s, %e] : memref<?x?xi32>
        memref.store %run, %segc[%s, %e] : memref<?x?xi32>
        %n = arith.addi %run, %v : i32
        scf.yield %n : i32
      }
      scf.if %last {
        %e1 = arith.addi %e, %c1 : index
        memref.store %end, %offsets[%e1] : memref<?xi32>
      }
      %e0 = arith.cmpi eq, %e, %c0 : index
      %write0 = arith.andi %e0, %is0 : i1
      scf.if %write0 {
        memref.store %z, %offsets[%c0] : memref<?xi32>
      }
    }
    gpu.return
  }

  // Each warp places its segment's slots from the rows of segc (pass 2 of
  // build_permutation); the blocks together mark the rows past offsets[E]
  // as padding.
  gpu.func @permute_rows(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                         %offsets: memref<?xi32>, %segc: memref<?x?xi32>,
                         %row_token: memref<?xi32>,
                         %row_weight: memref<?xf32>,
                         %slot_row: memref<?x?xi32>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c256 = arith.constant 256 : index
    %m1 = arith.constant -1 : i32
    %f0 = arith.constant 0.0 : f32
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %TK = arith.muli %T, %k : index
    %E = memref.dim %segc, %c1 : memref<?x?xi32>
    %tid = gpu.thread_id x
    %b = gpu.block_id x
    %nb = gpu.grid_dim x
    %lane = arith.remui %tid, %c32 : index
    // The warps' next rows: an 8 x E table in dynamic shared memory
    // (@permutation_shared_bytes).
    %E8 = arith.muli %E, %c8 : index
    %smem = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %rows = memref.view %smem[%c0][%E8] : memref<?xi8, #gpu.address_space<workgroup>> to memref<?xi32, #gpu.address_space<workgroup>>
    %seg:4 = func.call @warp_segment(%TK, %E) : (index, index) -> (index, index, index, index)
    scf.for %e = %lane to %E step %c32 {
      %cell = arith.addi %seg#3, %e : index
      %r = memref.load %segc[%seg#2, %e] : memref<?x?xi32>
      memref.store %r, %rows[%cell] : memref<?xi32, #gpu.address_space<workgroup>>
    }
    gpu.barrier
    scf.for %base = %seg#0 to %seg#1 step %c32 {
      func.call @place_chunk(%ids, %wts, %base, %seg#1, %E, %rows, %seg#3,
                             %row_token, %row_weight, %slot_row)
          : (memref<?x?xi32>, memref<?x?xf32>, index, index, index,
             memref<?xi32, #gpu.address_space<workgroup>>, index, memref<?xi32>,
             memref<?xf32>, memref<?x?xi32>) -> ()
    }
    // Padding rows past the last group: unused slots.
    %endi = memref.load %offsets[%E] : memref<?xi32>
    %end = arith.index_cast %endi : i32 to index
    %b256 = arith.muli %b, %c256 : index
    %g = arith.addi %b256, %tid : index
    %pad0 = arith.addi %end, %g : index
    %stride = arith.muli %nb, %c256 : index
    scf.for %r = %pad0 to %TK step %stride {
      memref.store %m1, %row_token[%r] : memref<?xi32>
      memref.store %f0, %row_weight[%r] : memref<?xf32>
    }
    gpu.return
  }

  // Selection of the first `keep` entries of a group in a priority order,
  // shared by capacity_drop and expert_choice. Each entry has a distinct
  // 64-bit key, larger first: the high word orders (see @score_key and
  // @capacity_drop), the low word is ~i for the entry's slot or token i,
  // so that equal high words go to the lower i and i can be read back.

  // The high key word of a score in the order of docs/semantics.md:
  // descending, NaN below every number (-inf included), NaNs tied, -0 and +0
  // tied. Unsigned: larger ranks first.
  func.func private @score_key(%v: f32) -> i32 {
    %z = arith.constant 0 : i32
    %sign = arith.constant -2147483648 : i32
    %f0 = arith.constant 0.0 : f32
    %bits = arith.bitcast %v : f32 to i32
    %neg = arith.cmpi slt, %bits, %z : i32
    %ones = arith.constant -1 : i32
    %inv = arith.xori %bits, %ones : i32
    %up = arith.ori %bits, %sign : i32
    %num = arith.select %neg, %inv, %up : i32
    %zero = arith.cmpf oeq, %v, %f0 : f32
    %nan = arith.cmpf uno, %v, %v : f32
    %k0 = arith.select %zero, %sign, %num : i32
    %k = arith.select %nan, %z, %k0 : i32
    return %k : i32
  }

  // (high << 32) | ~i as one key.
  func.func private @entry_key(%high: i32, %i: index) -> i64 {
    %ones = arith.constant -1 : i32
    %c32 = arith.constant 32 : i64
    %ii = arith.index_cast %i : index to i32
    %low = arith.xori %ii, %ones : i32
    %h = arith.extui %high : i32 to i64
    %l = arith.extui %low : i32 to i64
    %hs = arith.shli %h, %c32 : i64
    %key = arith.ori %hs, %l : i64
    return %key : i64
  }

  // The slot or token i of a key.
  func.func private @entry_of(%key: i64) -> index {
    %ones = arith.constant -1 : i32
    %low = arith.trunci %key : i64 to i32
    %ii = arith.xori %low, %ones : i32
    %i = arith.index_cast %ii : i32 to index
    return %i : index
  }

  // Radix select over the distinct keys[lo, hi) by one block of 256
  // threads, for 0 < keep < hi - lo: returns (prefix, mask) such that
  // (key & mask) >= prefix, unsigned, holds for the `keep` largest keys
  // and no other. Eight passes of one byte each, the most significant
  // first: a pass counts the keys that still match the prefix by their next
  // byte (a histogram in shared memory; lanes of one byte value find each
  // other with match.sync and add their count once), and a scan of the
  // counts from byte 255 down finds the byte of the keep-th largest key. It
  // stops at the first pass where every key of that byte is kept. O(8 (hi -
  // lo) / 256) steps per thread; exact integer counts, so the result does
  // not depend on the order of the atomics. Every thread of the block
  // calls it, with the same arguments.
  func.func private @select_largest(%keys: memref<?xi64>, %lo: index,
      %hi: index, %keep: index,
      %hist: memref<256xi32, #gpu.address_space<workgroup>>,
      %scan: memref<256xi32, #gpu.address_space<workgroup>>,
      %found: memref<3xi64, #gpu.address_space<workgroup>>) -> (i64, i64) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c255 = arith.constant 255 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %m1 = arith.constant -1 : i32
    %full = arith.constant -1 : i32
    %l0 = arith.constant 0 : i64
    %l8 = arith.constant 8 : i64
    %l56 = arith.constant 56 : i64
    %l255 = arith.constant 255 : i64
    %false = arith.constant false
    %tid = gpu.thread_id x
    %warp = arith.divui %tid, %c32 : index
    %lane = arith.remui %tid, %c32 : index
    %lt = nvvm.read.ptx.sreg.lanemask.lt : i32
    %keep_l = arith.index_cast %keep : index to i64
    %w0 = arith.muli %warp, %c32 : index
    %base0 = arith.addi %lo, %w0 : index
    %res:4 = scf.for %p = %c0 to %c8 step %c1
        iter_args(%prefix = %l0, %mask = %l0, %rest = %keep_l, %done = %false)
        -> (i64, i64, i64, i1) {
      // Uniform over the block: every thread reads the same %found.
      %next:4 = scf.if %done -> (i64, i64, i64, i1) {
        scf.yield %prefix, %mask, %rest, %done : i64, i64, i64, i1
      } else {
        %pl = arith.index_cast %p : index to i64
        %p8 = arith.muli %pl, %l8 : i64
        %shift = arith.subi %l56, %p8 : i64
        memref.store %z, %hist[%tid] : memref<256xi32, #gpu.address_space<workgroup>>
        gpu.barrier
        // Warp w reads 32 consecutive keys from lo + 32 w, 256 apart: the
        // trip count is uniform over the warp, as match.sync needs.
        scf.for %b = %base0 to %hi step %c256 {
          %i = arith.addi %b, %lane : index
          %in = arith.cmpi ult, %i, %hi : index
          %byte = scf.if %in -> (i32) {
            %key = memref.load %keys[%i] : memref<?xi64>
            %km = arith.andi %key, %mask : i64
            %tied = arith.cmpi eq, %km, %prefix : i64
            %ks = arith.shrui %key, %shift : i64
            %kb = arith.andi %ks, %l255 : i64
            %kbi = arith.trunci %kb : i64 to i32
            %v = arith.select %tied, %kbi, %m1 : i32
            scf.yield %v : i32
          } else {
            scf.yield %m1 : i32
          }
          %same = nvvm.match.sync any %full, %byte : i32 -> i32
          %lower = arith.andi %same, %lt : i32
          %first = arith.cmpi eq, %lower, %z : i32
          %counted = arith.cmpi sge, %byte, %z : i32
          %lead = arith.andi %first, %counted : i1
          scf.if %lead {
            %n = math.ctpop %same : i32
            %bi = arith.index_cast %byte : i32 to index
            %old = memref.atomic_rmw addi %n, %hist[%bi]
                : (i32, memref<256xi32, #gpu.address_space<workgroup>>) -> i32
          }
        }
        gpu.barrier
        // Thread t counts byte 255 - t: the inclusive scan is the number of
        // matching keys whose byte is at least that one.
        %own = arith.subi %c255, %tid : index
        %cnt = memref.load %hist[%own] : memref<256xi32, #gpu.address_space<workgroup>>
        %incl = func.call @block_scan(%cnt, %scan)
            : (i32, memref<256xi32, #gpu.address_space<workgroup>>) -> i32
        %excl = arith.subi %incl, %cnt : i32
        %excl_l = arith.extui %excl : i32 to i64
        %incl_l = arith.extui %incl : i32 to i64
        %after = arith.cmpi ult, %excl_l, %rest : i64
        %within = arith.cmpi ule, %rest, %incl_l : i64
        %hit = arith.andi %after, %within : i1
        scf.if %hit {
          %own_l = arith.index_cast %own : index to i64
          %bs = arith.shli %own_l, %shift : i64
          %np = arith.ori %prefix, %bs : i64
          %nr = arith.subi %rest, %excl_l : i64
          %cnt_l = arith.extui %cnt : i32 to i64
          memref.store %np, %found[%c0] : memref<3xi64, #gpu.address_space<workgroup>>
          memref.store %nr, %found[%c1] : memref<3xi64, #gpu.address_space<workgroup>>
          memref.store %cnt_l, %found[%c2] : memref<3xi64, #gpu.address_space<workgroup>>
        }
        gpu.barrier
        // %found is written again only after the barriers of the next pass.
        %np = memref.load %found[%c0] : memref<3xi64, #gpu.address_space<workgroup>>
        %nr = memref.load %found[%c1] : memref<3xi64, #gpu.address_space<workgroup>>
        %nc = memref.load %found[%c2] : memref<3xi64, #gpu.address_space<workgroup>>
        %bm = arith.shli %l255, %shift : i64
        %nm = arith.ori %mask, %bm : i64
        // Every key of the byte kept: the prefix decides alone.
        %nd = arith.cmpi eq, %nr, %nc : i64
        scf.yield %np, %nm, %nr, %nd : i64, i64, i64, i1
      }
      scf.yield %next#0, %next#1, %next#2, %next#3 : i64, i64, i64, i1
    }
    return %res#0, %res#1 : i64, i64
  }

  // Whether a key is among the selected: (key & mask) >= prefix.
  func.func private @selected(%key: i64, %prefix: i64, %mask: i64) -> i1 {
    %km = arith.andi %key, %mask : i64
    %sel = arith.cmpi uge, %km, %prefix : i64
    return %sel : i1
  }

  // The drop-order keys of capacity_drop, one thread per slot a = t * k + j
  // (blocks of 256): the routed slot's row r gets keys[r] = (high, ~a), high
  // = ~j for choice_major (slot, then token), the weight's @score_key for
  // score (larger weight first, ties to the lower slot), 0 for token_major
  // (the slot order, which is the group's own order). `order` takes the
  // dialect's DropOrder values (0 choice_major, 1 token_major, 2 score).
  gpu.func @capacity_keys(%wts: memref<?x?xf32>, %slot_row: memref<?x?xi32>,
                          %order: i32, %keys: memref<?xi64>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %i1 = arith.constant 1 : i32
    %m1 = arith.constant -1 : i32
    %T = memref.dim %slot_row, %c0 : memref<?x?xi32>
    %k = memref.dim %slot_row, %c1 : memref<?x?xi32>
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
      %r_i = memref.load %slot_row[%t, %j] : memref<?x?xi32>
      %routed = arith.cmpi sge, %r_i, %z : i32
      scf.if %routed {
        %ji = arith.index_cast %j : index to i32
        %nj = arith.xori %ji, %m1 : i32
        %w = memref.load %wts[%t, %j] : memref<?x?xf32>
        %sk = func.call @score_key(%w) : (f32) -> i32
        %choice_major = arith.cmpi eq, %order, %z : i32
        %token_major = arith.cmpi eq, %order, %i1 : i32
        %h0 = arith.select %choice_major, %nj, %sk : i32
        %high = arith.select %token_major, %z, %h0 : i32
        %key = func.call @entry_key(%high, %a) : (i32, index) -> i64
        %r = arith.index_cast %r_i : i32 to index
        memref.store %key, %keys[%r] : memref<?xi64>
      }
    }
    gpu.return
  }

  // The capacity of a factor (spec section 4): C = ceil(factor * T k / E),
  // at least `min`, rounded up to a multiple of `align`; in f64 and in the
  // order of the host's computation (lowering::capacity), so that both
  // give the same C. factor > 0 and finite (the runtime checks knob
  // values); the quotient is taken at most T k before its conversion to an
  // integer, which changes nothing that @capacity_drop does (an expert
  // receives at most T assignments) and keeps a huge factor defined.
  func.func private @capacity_of_factor(%factor: f64, %T: index, %k: index,
                                        %E: index, %min: index,
                                        %align: index) -> index {
    %one = arith.constant 1 : i64
    %zero = arith.constant 0 : i64
    %tk = arith.muli %T, %k : index
    %tk_i = arith.index_cast %tk : index to i64
    %slots = arith.sitofp %tk_i : i64 to f64
    %e_i = arith.index_cast %E : index to i64
    %experts = arith.sitofp %e_i : i64 to f64
    %p = arith.mulf %factor, %slots : f64
    %ratio = arith.divf %p, %experts : f64
    %above = arith.cmpf ogt, %ratio, %slots : f64
    %r = arith.select %above, %slots, %ratio : f64
    // ceil(r) for 0 <= r < 2^31.
    %t = arith.fptosi %r : f64 to i64
    %tf = arith.sitofp %t : i64 to f64
    %frac = arith.cmpf olt, %tf, %r : f64
    %up = arith.select %frac, %one, %zero : i64
    %c_i = arith.addi %t, %up : i64
    %c = arith.index_cast %c_i : i64 to index
    %at_least = arith.maxsi %c, %min : index
    %q = arith.ceildivsi %at_least, %align : index
    %cap = arith.muli %q, %align : index
    return %cap : index
  }

  // Capacity (spec section 4), after a dropless count_experts,
  // build_permutation and capacity_keys: block e keeps the first `cap` rows
  // of group e, those of the largest keys (@select_largest; the first `cap`
  // rows themselves for token_major), and marks the slots of the others
  // unused (ids -1). Block e also writes dropped[e] = max(n_e - cap, 0)
  // when dropped is not empty, and zeroes counts[e] for the recount of the
  // kept slots (no memset on the dropless path). Groups are independent,
  // and so are the blocks. `cap` is `cap_arg`, or, when `factor` has an
  // element (a run-time capacity factor in GPU memory, which a replayed
  // CUDA graph reads anew), @capacity_of_factor(factor[0], ..., cap_min,
  // cap_align).
  gpu.func @capacity_drop(%ids: memref<?x?xi32>, %offsets: memref<?xi32>,
                          %keys: memref<?xi64>, %cap_arg: index,
                          %factor: memref<?xf64>, %cap_min: index,
                          %cap_align: index,
                          %order: i32, %dropped: memref<?xi32>,
                          %counts: memref<?xi32>)
      workgroup(%hist: memref<256xi32, #gpu.address_space<workgroup>>,
                %scan: memref<256xi32, #gpu.address_space<workgroup>>,
                %found: memref<3xi64, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c256 = arith.constant 256 : index
    %m1 = arith.constant -1 : i32
    %i0 = arith.constant 0 : i32
    %i1 = arith.constant 1 : i32
    %l0 = arith.constant 0 : i64
    %true = arith.constant true
    %k = memref.dim %ids, %c1 : memref<?x?xi32>
    %nf = memref.dim %factor, %c0 : memref<?xf64>
    %on_device = arith.cmpi ne, %nf, %c0 : index
    %cap = scf.if %on_device -> (index) {
      %f = memref.load %factor[%c0] : memref<?xf64>
      %T = memref.dim %ids, %c0 : memref<?x?xi32>
      %E1 = memref.dim %offsets, %c0 : memref<?xi32>
      %E = arith.subi %E1, %c1 : index
      %c = func.call @capacity_of_factor(%f, %T, %k, %E, %cap_min, %cap_align)
          : (f64, index, index, index, index, index) -> index
      scf.yield %c : index
    } else {
      scf.yield %cap_arg : index
    }
    %e = gpu.block_id x
    %tid = gpu.thread_id x
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
    // Uniform over the block, so the barriers inside are reached by all.
    %token_major = arith.cmpi eq, %order, %i1 : i32
    %ranked = arith.xori %token_major, %true : i1
    %some = arith.cmpi ugt, %cap, %c0 : index
    %ranked_some = arith.andi %ranked, %some : i1
    %select = arith.andi %over, %ranked_some : i1
    %sel:2 = scf.if %select -> (i64, i64) {
      %pm:2 = func.call @select_largest(%keys, %lo, %hi, %cap, %hist, %scan, %found)
          : (memref<?xi64>, index, index, index,
             memref<256xi32, #gpu.address_space<workgroup>>,
             memref<256xi32, #gpu.address_space<workgroup>>,
             memref<3xi64, #gpu.address_space<workgroup>>) -> (i64, i64)
      scf.yield %pm#0, %pm#1 : i64, i64
    } else {
      scf.yield %l0, %l0 : i64, i64
    }
    scf.if %over {
      // token_major keeps the group's first `cap` rows; cap = 0 keeps none.
      %end = arith.addi %lo, %cap : index
      %r0 = arith.addi %lo, %tid : index
      scf.for %r = %r0 to %hi step %c256 {
        %key = memref.load %keys[%r] : memref<?xi64>
        %in_order = arith.cmpi ult, %r, %end : index
        %by_key = func.call @selected(%key, %sel#0, %sel#1) : (i64, i64, i64) -> i1
        %kept_ranked = arith.andi %by_key, %some : i1
        %kept = arith.select %token_major, %in_order, %kept_ranked : i1
        %drop = arith.xori %kept, %true : i1
        scf.if %drop {
          %a = func.call @entry_of(%key) : (i64) -> index
          %t = arith.divui %a, %k : index
          %j = arith.remui %a, %k : index
          memref.store %m1, %ids[%t, %j] : memref<?x?xi32>
        }
      }
    }
    gpu.return
  }

  // Expert-choice selection (spec section 2), grid E: expert e = block x
  // takes the `taken` tokens with the largest scores[:, e] (in the order of
  // @score_key, ties to the lower token): the keys (score, ~t) of the
  // column go to keys[e T, (e + 1) T) and @select_largest keeps `taken` of
  // them. Chosen tokens get expert e in slot e with their score as weight;
  // the others -1 and 0. O(T / 256) steps per thread and pass.
  gpu.func @expert_choice(%scores: memref<?x?xf32>, %taken: index,
                          %ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                          %keys: memref<?xi64>)
      workgroup(%hist: memref<256xi32, #gpu.address_space<workgroup>>,
                %scan: memref<256xi32, #gpu.address_space<workgroup>>,
                %found: memref<3xi64, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c256 = arith.constant 256 : index
    %f0 = arith.constant 0.0 : f32
    %m1 = arith.constant -1 : i32
    %l0 = arith.constant 0 : i64
    %T = memref.dim %scores, %c0 : memref<?x?xf32>
    %e = gpu.block_id x
    %tid = gpu.thread_id x
    %lo = arith.muli %e, %T : index
    %hi = arith.addi %lo, %T : index
    %some = arith.cmpi ugt, %taken, %c0 : index
    %part = arith.cmpi ult, %taken, %T : index
    // Uniform over the block.
    %select = arith.andi %some, %part : i1
    %sel:2 = scf.if %select -> (i64, i64) {
      scf.for %t = %tid to %T step %c256 {
        %v = memref.load %scores[%t, %e] : memref<?x?xf32>
        %sk = func.call @score_key(%v) : (f32) -> i32
        %key = func.call @entry_key(%sk, %t) : (i32, index) -> i64
        %at = arith.addi %lo, %t : index
        memref.store %key, %keys[%at] : memref<?xi64>
      }
      gpu.barrier
      %pm:2 = func.call @select_largest(%keys, %lo, %hi, %taken, %hist, %scan, %found)
          : (memref<?xi64>, index, index, index,
             memref<256xi32, #gpu.address_space<workgroup>>,
             memref<256xi32, #gpu.address_space<workgroup>>,
             memref<3xi64, #gpu.address_space<workgroup>>) -> (i64, i64)
      scf.yield %pm#0, %pm#1 : i64, i64
    } else {
      scf.yield %l0, %l0 : i64, i64
    }
    %ei = arith.index_cast %e : index to i32
    scf.for %t = %tid to %T step %c256 {
      %v = memref.load %scores[%t, %e] : memref<?x?xf32>
      %chosen = scf.if %select -> (i1) {
        %at = arith.addi %lo, %t : index
        %key = memref.load %keys[%at] : memref<?xi64>
        %s = func.call @selected(%key, %sel#0, %sel#1) : (i64, i64, i64) -> i1
        scf.yield %s : i1
      } else {
        scf.yield %some : i1
      }
      %id = arith.select %chosen, %ei, %m1 : i32
      %wv = arith.select %chosen, %v, %f0 : f32
      memref.store %id, %ids[%t, %e] : memref<?x?xi32>
      memref.store %wv, %wts[%t, %e] : memref<?x?xf32>
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

  // counts[0, e] += offsets[e + 1] - offsets[e] + dropped[e] and
  // counts[1, e] += dropped[e] for e < E: the assignments before the
  // capacity and the dropped ones, as the host adds them after a
  // synchronous call; counts[0, E] += T and counts[1, E] += 1 for e = E.
  func.func private @add_call_counts(%offsets: memref<?xi32>,
                                     %dropped: memref<?xi32>, %T: index,
                                     %counts: memref<?x?xi64>, %e: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %zero = arith.constant 0 : i32
    %E1 = memref.dim %offsets, %c0 : memref<?xi32>
    %E = arith.subi %E1, %c1 : index
    %nd = memref.dim %dropped, %c0 : memref<?xi32>
    %drops = arith.cmpi ne, %nd, %c0 : index
    %in = arith.cmpi ult, %e, %E : index
    scf.if %in {
      %e1 = arith.addi %e, %c1 : index
      %lo = memref.load %offsets[%e] : memref<?xi32>
      %hi = memref.load %offsets[%e1] : memref<?xi32>
      %lost = scf.if %drops -> (i32) {
        %v = memref.load %dropped[%e] : memref<?xi32>
        scf.yield %v : i32
      } else {
        scf.yield %zero : i32
      }
      %kept = arith.subi %hi, %lo : i32
      %n = arith.addi %kept, %lost : i32
      %n64 = arith.extsi %n : i32 to i64
      %lost64 = arith.extsi %lost : i32 to i64
      %a = memref.atomic_rmw addi %n64, %counts[%c0, %e]
          : (i64, memref<?x?xi64>) -> i64
      %b = memref.atomic_rmw addi %lost64, %counts[%c1, %e]
          : (i64, memref<?x?xi64>) -> i64
    } else {
      %call = arith.cmpi eq, %e, %E : index
      scf.if %call {
        %t64 = arith.index_cast %T : index to i64
        %one = arith.constant 1 : i64
        %a = memref.atomic_rmw addi %t64, %counts[%c0, %E]
            : (i64, memref<?x?xi64>) -> i64
        %b = memref.atomic_rmw addi %one, %counts[%c1, %E]
            : (i64, memref<?x?xi64>) -> i64
      }
    }
    return
  }

  // y = bf16(yf) ([T, n]) on blocks [0, ceil(T n / 256)), element
  // b * 256 + tid of block b in row-major order; on the blocks after
  // those, @add_call_counts for expert (b - ceil(T n / 256)) * 256 + tid
  // (the host launches them when counts has rows: ceil((E + 1) / 256)).
  gpu.func @finish_layer(%yf: memref<?x?xf32>, %y: memref<?x?xbf16>,
                         %offsets: memref<?xi32>, %dropped: memref<?xi32>,
                         %counts: memref<?x?xi64>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c255 = arith.constant 255 : index
    %c256 = arith.constant 256 : index
    %T = memref.dim %yf, %c0 : memref<?x?xf32>
    %n = memref.dim %yf, %c1 : memref<?x?xf32>
    %Tn = arith.muli %T, %n : index
    %Tn255 = arith.addi %Tn, %c255 : index
    %round_blocks = arith.divui %Tn255, %c256 : index
    %bid = gpu.block_id x
    %tid = gpu.thread_id x
    %rounds = arith.cmpi ult, %bid, %round_blocks : index
    scf.if %rounds {
      %i0 = arith.muli %bid, %c256 : index
      %i = arith.addi %i0, %tid : index
      %in = arith.cmpi ult, %i, %Tn : index
      scf.if %in {
        %r = arith.divui %i, %n : index
        %c = arith.remui %i, %n : index
        %v = memref.load %yf[%r, %c] : memref<?x?xf32>
        %b = arith.truncf %v : f32 to bf16
        memref.store %b, %y[%r, %c] : memref<?x?xbf16>
      }
    } else {
      %cb = arith.subi %bid, %round_blocks : index
      %e0 = arith.muli %cb, %c256 : index
      %e = arith.addi %e0, %tid : index
      func.call @add_call_counts(%offsets, %dropped, %T, %counts, %e)
          : (memref<?xi32>, memref<?xi32>, index, memref<?x?xi64>, index) -> ()
    }
    gpu.return
  }

  // The element of bf16 rows [T, n] that this thread of a launch of blocks
  // of 256 takes, one a thread in row-major order: whether there is one,
  // and its row and column.
  func.func private @bf16_element(%rows: memref<?x?xbf16>)
      -> (i1, index, index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c256 = arith.constant 256 : index
    %T = memref.dim %rows, %c0 : memref<?x?xbf16>
    %n = memref.dim %rows, %c1 : memref<?x?xbf16>
    %Tn = arith.muli %T, %n : index
    %bid = gpu.block_id x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %c256 : index
    %i = arith.addi %i0, %tid : index
    %in = arith.cmpi ult, %i, %Tn : index
    %n1 = arith.maxui %n, %c1 : index
    %r = arith.divui %i, %n1 : index
    %c = arith.remui %i, %n1 : index
    return %in, %r, %c : i1, index, index
  }

  // The rows of a layer that moe-narrow-to-bf16 computes in bf16, on a
  // device entry point: xb = bf16(x) of f32 rows xf, or of f16 rows xh
  // (through f32, exact) when xf has no rows; one element a thread. The
  // host code of the narrowed function rounds the same way (arith.truncf,
  // to nearest even).
  gpu.func @rows_to_bf16(%xf: memref<?x?xf32>, %xh: memref<?x?xf16>,
                         %xb: memref<?x?xbf16>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %f32_rows = memref.dim %xf, %c0 : memref<?x?xf32>
    %wide = arith.cmpi ne, %f32_rows, %c0 : index
    %in, %r, %c = func.call @bf16_element(%xb)
        : (memref<?x?xbf16>) -> (i1, index, index)
    scf.if %in {
      %v = scf.if %wide -> (f32) {
        %f = memref.load %xf[%r, %c] : memref<?x?xf32>
        scf.yield %f : f32
      } else {
        %h = memref.load %xh[%r, %c] : memref<?x?xf16>
        %f = arith.extf %h : f16 to f32
        scf.yield %f : f32
      }
      %b = arith.truncf %v : f32 to bf16
      memref.store %b, %xb[%r, %c] : memref<?x?xbf16>
    }
    gpu.return
  }

  // The inverse step of @rows_to_bf16 for the layer's output: yf =
  // f32(yb), or, when yf has no rows, yh = f16(f32(yb)) (rounded to
  // nearest even; an overflow is an infinity), as the narrowed function's
  // arith.extf and arith.truncf widen the layer's bf16 output.
  gpu.func @rows_from_bf16(%yb: memref<?x?xbf16>, %yf: memref<?x?xf32>,
                           %yh: memref<?x?xf16>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %f32_rows = memref.dim %yf, %c0 : memref<?x?xf32>
    %wide = arith.cmpi ne, %f32_rows, %c0 : index
    %in, %r, %c = func.call @bf16_element(%yb)
        : (memref<?x?xbf16>) -> (i1, index, index)
    scf.if %in {
      %b = memref.load %yb[%r, %c] : memref<?x?xbf16>
      %v = arith.extf %b : bf16 to f32
      scf.if %wide {
        memref.store %v, %yf[%r, %c] : memref<?x?xf32>
      } else {
        %h = arith.truncf %v : f32 to f16
        memref.store %h, %yh[%r, %c] : memref<?x?xf16>
      }
    }
    gpu.return
  }

  gpu.func @record_selection(%ids: memref<?x?xi32>,
                              %ids_out: memref<?x?xi32>,
                              %counts: memref<?x?xi64>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %one = arith.constant 1 : i64
    %T = memref.dim %ids, %c0 : memref<?x?xi32>
    %S = memref.dim %ids, %c1 : memref<?x?xi32>
    %copied = memref.dim %ids_out, %c0 : memref<?x?xi32>
    %copy = arith.cmpi ne, %copied, %c0 : index
    %rows = memref.dim %counts, %c0 : memref<?x?xi64>
    %pairs = arith.cmpi ugt, %rows, %c2 : index
    %E = arith.subi %rows, %c2 : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %t0 = arith.muli %bid, %bdim : index
    %t = arith.addi %t0, %tid : index
    %in = arith.cmpi ult, %t, %T : index
    scf.if %in {
      scf.for %a = %c0 to %S step %c1 {
        %ea = memref.load %ids[%t, %a] : memref<?x?xi32>
        scf.if %copy {
          memref.store %ea, %ids_out[%t, %a] : memref<?x?xi32>
        }
        %routed = func.call @is_expert(%ea, %E) : (i32, index) -> i1
        %count = arith.andi %pairs, %routed : i1
        scf.if %count {
          %b0 = arith.addi %a, %c1 : index
          scf.for %b = %b0 to %S step %c1 {
            %eb = memref.load %ids[%t, %b] : memref<?x?xi32>
            %ok = func.call @is_expert(%eb, %E) : (i32, index) -> i1
            %other = arith.cmpi ne, %ea, %eb : i32
            %both = arith.andi %ok, %other : i1
            scf.if %both {
              %lo = arith.minsi %ea, %eb : i32
              %hi = arith.maxsi %ea, %eb : i32
              %i = arith.index_cast %lo : i32 to index
              %j = arith.index_cast %hi : i32 to index
              %row = arith.addi %i, %c2 : index
              %old = memref.atomic_rmw addi %one, %counts[%row, %j]
                  : (i64, memref<?x?xi64>) -> i64
            }
          }
        }
      }
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
  %c2048 = arith.constant 2048 : index
  %rem = arith.remui %d, %c8 : index
  %d_ok = arith.cmpi eq, %rem, %c0 : index
  cf.assert %d_ok, "moe gpu dispatch: the hidden size d must be a multiple of 8"
  %e_ok = arith.cmpi ule, %E, %c2048 : index
  cf.assert %e_ok, "moe gpu dispatch: at most 2048 experts"
  return
}

// The dynamic shared memory of build_permutation, permute_count and
// permute_rows for E experts: the warps' 8 x E table of i32, then
// build_permutation's block scan (256 i32).
func.func private @permutation_shared_bytes(%E: index) -> i32 {
  %c32 = arith.constant 32 : index
  %c1024 = arith.constant 1024 : index
  %table = arith.muli %E, %c32 : index
  %bytes = arith.addi %table, %c1024 : index
  %b = arith.index_cast %bytes : index to i32
  return %b : i32
}

// Fast path: memset, counts, scan and permutation, gather, all enqueued on
// one stream.
// The blocks of the permutation for a number of slots (the runtime's
// choice, runtime/cuda/KernelChoices.h).
func.func private @moe_gpu_permutation_blocks(index) -> index

// The permutation of a dispatch (the counts of each expert, offsets,
// row_token, row_weight and slot_row from the routed slots), enqueued on
// the stream when %run is set: build_permutation, one block that also
// counts, when moe_gpu_permutation_blocks(T k) is 1, else the counts
// zeroed and count_experts on ceil(T k / 256) blocks, then permute_count
// on B blocks, permute_scan on E and permute_rows on B (a table of 8 B x E
// segment counts, allocated and freed in stream order). The kernels of
// the path not taken are launched on empty grids, which the runtime
// skips, and its memset has no elements. Both paths give the same
// layout. build_permutation also fills `tiles`, the expert GEMMs' tile
// map on tiles of `rows_per` rows, when it has entries; the i1 result
// says whether it did (else the caller builds the map).
func.func private @permute_async(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                                 %counts: memref<?xi32>,
                                 %offsets: memref<?xi32>,
                                 %row_token: memref<?xi32>,
                                 %row_weight: memref<?xf32>,
                                 %slot_row: memref<?x?xi32>,
                                 %rows_per: index, %tiles: memref<?x4xi32>,
                                 %run: i1, %stream: !gpu.async.token)
    -> (i1, !gpu.async.token) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c256 = arith.constant 256 : index
  %T = memref.dim %ids, %c0 : memref<?x?xi32>
  %k = memref.dim %ids, %c1 : memref<?x?xi32>
  %E = memref.dim %counts, %c0 : memref<?xi32>
  %TK = arith.muli %T, %k : index
  %nb = call @moe_gpu_permutation_blocks(%TK) : (index) -> index
  %many = arith.cmpi ugt, %nb, %c1 : index
  %one = arith.cmpi eq, %nb, %c1 : index
  %single = arith.andi %run, %one : i1
  %segmented = arith.andi %run, %many : i1
  %g_single = arith.select %single, %c1, %c0 : index
  %g_seg = arith.select %segmented, %nb, %c0 : index
  %g_scan = arith.select %segmented, %E, %c0 : index
  %ns = arith.muli %g_seg, %c8 : index
  %z = arith.constant 0 : i32
  %c255 = arith.constant 255 : index
  %n_zeroed = arith.select %segmented, %E, %c0 : index
  %zeroed = memref.reinterpret_cast %counts to offset: [0],
      sizes: [%n_zeroed], strides: [1] : memref<?xi32> to memref<?xi32>
  %m0 = gpu.memset async [%stream] %zeroed, %z : memref<?xi32>, i32
  %tkp = arith.addi %TK, %c255 : index
  %g_all = arith.divui %tkp, %c256 : index
  %g_count = arith.select %segmented, %g_all, %c0 : index
  %kc = gpu.launch_func async [%m0] @moe_dispatch_kernels::@count_experts
      blocks in (%g_count, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%ids : memref<?x?xi32>, %counts : memref<?xi32>,
           %slot_row : memref<?x?xi32>)
  %segc, %a0 = gpu.alloc async [%kc] (%ns, %E) : memref<?x?xi32>
  %smem = call @permutation_shared_bytes(%E) : (index) -> i32
  %k0 = gpu.launch_func async [%a0] @moe_dispatch_kernels::@build_permutation
      blocks in (%g_single, %c1, %c1) threads in (%c256, %c1, %c1)
      dynamic_shared_memory_size %smem
      args(%ids : memref<?x?xi32>, %wts : memref<?x?xf32>,
           %counts : memref<?xi32>, %offsets : memref<?xi32>,
           %row_token : memref<?xi32>, %row_weight : memref<?xf32>,
           %slot_row : memref<?x?xi32>, %rows_per : index,
           %tiles : memref<?x4xi32>)
  %k1 = gpu.launch_func async [%k0] @moe_dispatch_kernels::@permute_count
      blocks in (%g_seg, %c1, %c1) threads in (%c256, %c1, %c1)
      dynamic_shared_memory_size %smem
      args(%ids : memref<?x?xi32>, %segc : memref<?x?xi32>)
  %k2 = gpu.launch_func async [%k1] @moe_dispatch_kernels::@permute_scan
      blocks in (%g_scan, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%counts : memref<?xi32>, %segc : memref<?x?xi32>,
           %offsets : memref<?xi32>)
  %k3 = gpu.launch_func async [%k2] @moe_dispatch_kernels::@permute_rows
      blocks in (%g_seg, %c1, %c1) threads in (%c256, %c1, %c1)
      dynamic_shared_memory_size %smem
      args(%ids : memref<?x?xi32>, %wts : memref<?x?xf32>,
           %offsets : memref<?xi32>, %segc : memref<?x?xi32>,
           %row_token : memref<?xi32>, %row_weight : memref<?xf32>,
           %slot_row : memref<?x?xi32>)
  %f = gpu.dealloc async [%k3] %segc : memref<?x?xi32>
  %n_entries = memref.dim %tiles, %c0 : memref<?x4xi32>
  %has_entries = arith.cmpi ne, %n_entries, %c0 : index
  %mapped = arith.andi %single, %has_entries : i1
  return %mapped, %f : i1, !gpu.async.token
}

func.func @moe_dispatch(%ids: memref<?x?xi32>, %wts: memref<?x?xf32>,
                        %x: memref<?x?xbf16>, %offsets: memref<?xi32>,
                        %row_token: memref<?xi32>, %row_weight: memref<?xf32>,
                        %slot_row: memref<?x?xi32>, %xp: memref<?x?xbf16>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c128 = arith.constant 128 : index
  %c256 = arith.constant 256 : index
  %z = arith.constant 0 : i32
  %T = memref.dim %ids, %c0 : memref<?x?xi32>
  %k = memref.dim %ids, %c1 : memref<?x?xi32>
  %d = memref.dim %x, %c1 : memref<?x?xbf16>
  %E1 = memref.dim %offsets, %c0 : memref<?xi32>
  %E = arith.subi %E1, %c1 : index
  call @check_dispatch_limits(%d, %E) : (index, index) -> ()
  %smem = call @permutation_shared_bytes(%E) : (index) -> i32
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
  // No tile map to fill: an empty view.
  %c64 = arith.constant 64 : index
  %no_tiles = memref.reinterpret_cast %drt to offset: [0], sizes: [%c0, 4],
      strides: [4, 1] : memref<?xi32> to memref<?x4xi32>
  gpu.launch_func @moe_dispatch_kernels::@build_permutation
      blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1)
      dynamic_shared_memory_size %smem
      args(%dids : memref<?x?xi32>, %dwts : memref<?x?xf32>,
           %dcnt : memref<?xi32>, %doff : memref<?xi32>,
           %drt : memref<?xi32>, %drw : memref<?xf32>,
           %dsr : memref<?x?xi32>, %c64 : index,
           %no_tiles : memref<?x4xi32>)
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
