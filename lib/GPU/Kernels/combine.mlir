//===- combine.mlir - Weighted combine of expert outputs -------*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The combine step of a MoE layer (moe.combine, spec section 6): each
// token's expert outputs, weighted and summed in slot order.
//
//   rows        [N, d]  f32  expert outputs in the grouped layout
//   slot_row    [T, k]  i32  row of each slot; negative for unused slots
//   slot_weight [T, k]  f32  combine weight of each slot
//   y           [T, d]  f32  y[t] = sum over j = 0 .. k-1 with
//                            slot_row[t, j] >= 0 of
//                            slot_weight[t, j] * rows[slot_row[t, j]]
//
// Every output element is computed by one thread, adding the slots in the
// fixed order j = 0 .. k-1 in f32: the result is bitwise the same on every
// run, whatever the grouped layout's row order.
//
// Kernels of @moe_combine_kernels:
//
//   combine      Grid (ceil(d / 1024), T in y and z), block 256; each
//                thread owns 4 consecutive columns (16-byte vector loads
//                and stores).
//                With `unit` set the weights count as 1 (weights applied
//                to the expert input, spec section 3).
//                Reads of slot_row and slot_weight are uniform in the
//                block.
//   combine_ref  Scalar reference: one thread per element, 16 x 16 blocks.
//   one_group, shared_gate, add_shared
//                A shared expert (spec section 5) on the layer's tokens:
//                the offsets of one group of T rows for the experts' GEMMs,
//                the sigmoid gate g(x) = sigmoid(w . x) (one thread per
//                token), and y += bf16(g * S) after the routed sum (one
//                thread per element).
//
// Limits: d % 4 == 0 with 16-byte aligned rows (asserted by the host
// functions); slot_row values < N (not checked). T may pass 65535: the
// host splits it between the grid's y and z (moe_gpu_grid_y, _z), and
// the kernels read @block_index_y and skip blocks past T.
//
// Host functions (host memrefs in and out; one stream):
//   @moe_combine, @moe_combine_ref (rows, slot_row, slot_weight, y)
//
//===----------------------------------------------------------------------===//

module attributes {gpu.container_module} {

gpu.module @moe_combine_kernels {

  // The block's index along y when a launch splits more than 65535 blocks
  // between the grid's y and z (moe_gpu_grid_y and moe_gpu_grid_z):
  // blockIdx.y + gridDim.y * blockIdx.z.
  func.func private @block_index_y() -> index {
    %y = gpu.block_id y
    %ny = gpu.grid_dim y
    %z = gpu.block_id z
    %yz = arith.muli %ny, %z : index
    %i = arith.addi %y, %yz : index
    return %i : index
  }

  gpu.func @combine(%rows: memref<?x?xf32>, %slot_row: memref<?x?xi32>,
                    %slot_weight: memref<?x?xf32>, %y: memref<?x?xf32>,
                    %unit: i32)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c1024 = arith.constant 1024 : index
    %z = arith.constant 0 : i32
    %zero4 = arith.constant dense<0.0> : vector<4xf32>
    %d = memref.dim %y, %c1 : memref<?x?xf32>
    %k = memref.dim %slot_row, %c1 : memref<?x?xi32>
    %T = memref.dim %slot_row, %c0 : memref<?x?xi32>
    %bx = gpu.block_id x
    %t = func.call @block_index_y() : () -> index
    %tid = gpu.thread_id x
    %col0 = arith.muli %bx, %c1024 : index
    %lc = arith.muli %tid, %c4 : index
    %col = arith.addi %col0, %lc : index
    %in_col = arith.cmpi ult, %col, %d : index
    %in_t = arith.cmpi ult, %t, %T : index
    %in = arith.andi %in_col, %in_t : i1
    scf.if %in {
      %acc = scf.for %j = %c0 to %k step %c1 iter_args(%a = %zero4)
          -> (vector<4xf32>) {
        %r_i = memref.load %slot_row[%t, %j] : memref<?x?xi32>
        %used = arith.cmpi sge, %r_i, %z : i32
        %na = scf.if %used -> (vector<4xf32>) {
          %r = arith.index_cast %r_i : i32 to index
          %w0 = memref.load %slot_weight[%t, %j] : memref<?x?xf32>
          // Weights applied to the input already: 1 * v == v exactly.
          %one = arith.constant 1.0 : f32
          %is_unit = arith.cmpi ne, %unit, %z : i32
          %w = arith.select %is_unit, %one, %w0 : f32
          %wv = vector.broadcast %w : f32 to vector<4xf32>
          %v = vector.load %rows[%r, %col] {alignment = 16}
              : memref<?x?xf32>, vector<4xf32>
          %p = arith.mulf %wv, %v : vector<4xf32>
          %s = arith.addf %a, %p : vector<4xf32>
          scf.yield %s : vector<4xf32>
        } else {
          scf.yield %a : vector<4xf32>
        }
        scf.yield %na : vector<4xf32>
      }
      vector.store %acc, %y[%t, %col] {alignment = 16}
          : memref<?x?xf32>, vector<4xf32>
    }
    gpu.return
  }

  gpu.func @combine_ref(%rows: memref<?x?xf32>, %slot_row: memref<?x?xi32>,
                        %slot_weight: memref<?x?xf32>, %y: memref<?x?xf32>)
      kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %f0 = arith.constant 0.0 : f32
    %T = memref.dim %y, %c0 : memref<?x?xf32>
    %d = memref.dim %y, %c1 : memref<?x?xf32>
    %k = memref.dim %slot_row, %c1 : memref<?x?xi32>
    %bx = gpu.block_id x
    %by = gpu.block_id y
    %tx = gpu.thread_id x
    %ty = gpu.thread_id y
    %dx = gpu.block_dim x
    %dy = gpu.block_dim y
    %col0 = arith.muli %bx, %dx : index
    %col = arith.addi %col0, %tx : index
    %t0 = arith.muli %by, %dy : index
    %t = arith.addi %t0, %ty : index
    %okt = arith.cmpi ult, %t, %T : index
    %okc = arith.cmpi ult, %col, %d : index
    %ok = arith.andi %okt, %okc : i1
    scf.if %ok {
      %acc = scf.for %j = %c0 to %k step %c1 iter_args(%a = %f0) -> (f32) {
        %r_i = memref.load %slot_row[%t, %j] : memref<?x?xi32>
        %used = arith.cmpi sge, %r_i, %z : i32
        %na = scf.if %used -> (f32) {
          %r = arith.index_cast %r_i : i32 to index
          %w = memref.load %slot_weight[%t, %j] : memref<?x?xf32>
          %v = memref.load %rows[%r, %col] : memref<?x?xf32>
          %p = arith.mulf %w, %v : f32
          %s = arith.addf %a, %p : f32
          scf.yield %s : f32
        } else {
          scf.yield %a : f32
        }
        scf.yield %na : f32
      }
      memref.store %acc, %y[%t, %col] : memref<?x?xf32>
    }
    gpu.return
  }

  //===--------------------------------------------------------------------===//
  // Shared experts (spec section 5): y += g(x) * S(x)
  //===--------------------------------------------------------------------===//

  // The group offsets of one expert owning rows [0, n): off = {0, n}.
  gpu.func @one_group(%off: memref<?xi32>, %n: index) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %ni = arith.index_cast %n : index to i32
    memref.store %z, %off[%c0] : memref<?xi32>
    memref.store %ni, %off[%c1] : memref<?xi32>
    gpu.return
  }

  // all = [0, off[E]]: the kept rows of the groups of `off` as one group
  // (the frozen projections of LoRA experts).
  gpu.func @kept_as_one_group(%off: memref<?xi32>, %E: index,
                              %all: memref<?xi32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %n = memref.load %off[%E] : memref<?xi32>
    memref.store %z, %all[%c0] : memref<?xi32>
    memref.store %n, %all[%c1] : memref<?xi32>
    gpu.return
  }

  // g[t] = sigmoid(w[0] . x[t]): the products of bf16 values summed in f32
  // in column order, one thread per token.
  gpu.func @shared_gate(%x: memref<?x?xbf16>, %w: memref<?x?xbf16>,
                        %g: memref<?xf32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    %one = arith.constant 1.0 : f32
    %T = memref.dim %x, %c0 : memref<?x?xbf16>
    %d = memref.dim %x, %c1 : memref<?x?xbf16>
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %t0 = arith.muli %bid, %bdim : index
    %t = arith.addi %t0, %tid : index
    %in = arith.cmpi ult, %t, %T : index
    scf.if %in {
      %z = scf.for %i = %c0 to %d step %c1 iter_args(%acc = %f0) -> (f32) {
        %xv = memref.load %x[%t, %i] : memref<?x?xbf16>
        %wv = memref.load %w[%c0, %i] : memref<?x?xbf16>
        %xf = arith.extf %xv : bf16 to f32
        %wf = arith.extf %wv : bf16 to f32
        %p = arith.mulf %xf, %wf : f32
        %nacc = arith.addf %acc, %p : f32
        scf.yield %nacc : f32
      }
      %nz = arith.negf %z : f32
      %e = math.exp %nz : f32
      %den = arith.addf %one, %e : f32
      %sg = arith.divf %one, %den : f32
      memref.store %sg, %g[%t] : memref<?xf32>
    }
    gpu.return
  }

  // y[t, c] += bf16(g[t] * s[t, c]) (or bf16(s[t, c]) when not gated): the
  // shared expert's output rounded to the layer's type, as moe.shared_expert
  // gives it, added after the routed sum. Grid (ceil(d / 256), T), T split
  // between y and z as moe_gpu_grid_y and moe_gpu_grid_z say.
  gpu.func @add_shared(%y: memref<?x?xf32>, %s: memref<?x?xf32>,
                       %g: memref<?xf32>, %gated: i32) kernel {
    %c1 = arith.constant 1 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %c0 = arith.constant 0 : index
    %d = memref.dim %y, %c1 : memref<?x?xf32>
    %T = memref.dim %y, %c0 : memref<?x?xf32>
    %bx = gpu.block_id x
    %t = func.call @block_index_y() : () -> index
    %tid = gpu.thread_id x
    %col0 = arith.muli %bx, %c256 : index
    %col = arith.addi %col0, %tid : index
    %in_col = arith.cmpi ult, %col, %d : index
    %in_t = arith.cmpi ult, %t, %T : index
    %in = arith.andi %in_col, %in_t : i1
    scf.if %in {
      %sv = memref.load %s[%t, %col] : memref<?x?xf32>
      %is_gated = arith.cmpi ne, %gated, %z : i32
      %v = scf.if %is_gated -> (f32) {
        %gv = memref.load %g[%t] : memref<?xf32>
        %m = arith.mulf %gv, %sv : f32
        scf.yield %m : f32
      } else {
        scf.yield %sv : f32
      }
      %r = arith.truncf %v : f32 to bf16
      %rf = arith.extf %r : bf16 to f32
      %yv = memref.load %y[%t, %col] : memref<?x?xf32>
      %sum = arith.addf %yv, %rf : f32
      memref.store %sum, %y[%t, %col] : memref<?x?xf32>
    }
    gpu.return
  }
}

//===----------------------------------------------------------------------===//
// Host functions
//===----------------------------------------------------------------------===//

// The grid's y and z for n blocks along y, past CUDA's 65535 in y
// (runtime/include/moe_cuda.h); kernels read @block_index_y.
func.func private @moe_gpu_grid_y(index) -> index
func.func private @moe_gpu_grid_z(index) -> index

func.func @moe_combine(%rows: memref<?x?xf32>, %slot_row: memref<?x?xi32>,
                       %slot_weight: memref<?x?xf32>, %y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c256 = arith.constant 256 : index
  %c1023 = arith.constant 1023 : index
  %c1024 = arith.constant 1024 : index
  %z = arith.constant 0 : i32
  %N = memref.dim %rows, %c0 : memref<?x?xf32>
  %d = memref.dim %rows, %c1 : memref<?x?xf32>
  %T = memref.dim %slot_row, %c0 : memref<?x?xi32>
  %k = memref.dim %slot_row, %c1 : memref<?x?xi32>
  %rem = arith.remui %d, %c4 : index
  %d_ok = arith.cmpi eq, %rem, %c0 : index
  cf.assert %d_ok, "moe gpu combine: the row size d must be a multiple of 4"
  %drows = gpu.alloc (%N, %d) : memref<?x?xf32>
  %dsr = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dsw = gpu.alloc (%T, %k) : memref<?x?xf32>
  %dy = gpu.alloc (%T, %d) : memref<?x?xf32>
  gpu.memcpy %drows, %rows : memref<?x?xf32>, memref<?x?xf32>
  gpu.memcpy %dsr, %slot_row : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %dsw, %slot_weight : memref<?x?xf32>, memref<?x?xf32>
  %cp = arith.addi %d, %c1023 : index
  %gx = arith.divui %cp, %c1024 : index
  %ty = call @moe_gpu_grid_y(%T) : (index) -> index
  %tz = call @moe_gpu_grid_z(%T) : (index) -> index
  gpu.launch_func @moe_combine_kernels::@combine
      blocks in (%gx, %ty, %tz) threads in (%c256, %c1, %c1)
      args(%drows : memref<?x?xf32>, %dsr : memref<?x?xi32>,
           %dsw : memref<?x?xf32>, %dy : memref<?x?xf32>, %z : i32)
  gpu.memcpy %y, %dy : memref<?x?xf32>, memref<?x?xf32>
  gpu.dealloc %drows : memref<?x?xf32>
  gpu.dealloc %dsr : memref<?x?xi32>
  gpu.dealloc %dsw : memref<?x?xf32>
  gpu.dealloc %dy : memref<?x?xf32>
  return
}

func.func @moe_combine_ref(%rows: memref<?x?xf32>, %slot_row: memref<?x?xi32>,
                           %slot_weight: memref<?x?xf32>,
                           %y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c15 = arith.constant 15 : index
  %c16 = arith.constant 16 : index
  %N = memref.dim %rows, %c0 : memref<?x?xf32>
  %d = memref.dim %rows, %c1 : memref<?x?xf32>
  %T = memref.dim %slot_row, %c0 : memref<?x?xi32>
  %k = memref.dim %slot_row, %c1 : memref<?x?xi32>
  %drows = gpu.alloc (%N, %d) : memref<?x?xf32>
  %dsr = gpu.alloc (%T, %k) : memref<?x?xi32>
  %dsw = gpu.alloc (%T, %k) : memref<?x?xf32>
  %dy = gpu.alloc (%T, %d) : memref<?x?xf32>
  gpu.memcpy %drows, %rows : memref<?x?xf32>, memref<?x?xf32>
  gpu.memcpy %dsr, %slot_row : memref<?x?xi32>, memref<?x?xi32>
  gpu.memcpy %dsw, %slot_weight : memref<?x?xf32>, memref<?x?xf32>
  %cp = arith.addi %d, %c15 : index
  %gx = arith.divui %cp, %c16 : index
  %tp = arith.addi %T, %c15 : index
  %gy = arith.divui %tp, %c16 : index
  gpu.launch_func @moe_combine_kernels::@combine_ref
      blocks in (%gx, %gy, %c1) threads in (%c16, %c16, %c1)
      args(%drows : memref<?x?xf32>, %dsr : memref<?x?xi32>,
           %dsw : memref<?x?xf32>, %dy : memref<?x?xf32>)
  gpu.memcpy %y, %dy : memref<?x?xf32>, memref<?x?xf32>
  gpu.dealloc %drows : memref<?x?xf32>
  gpu.dealloc %dsr : memref<?x?xi32>
  gpu.dealloc %dsw : memref<?x?xf32>
  gpu.dealloc %dy : memref<?x?xf32>
  return
}

}
