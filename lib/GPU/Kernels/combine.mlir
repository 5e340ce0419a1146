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
//   combine      Grid (ceil(d / 1024), T), block 256; each thread owns 4
//                consecutive columns (16-byte vector loads and stores).
//                Reads of slot_row and slot_weight are uniform in the
//                block.
//   combine_ref  Scalar reference: one thread per element, 16 x 16 blocks.
//
// Limits: d % 4 == 0 with 16-byte aligned rows (asserted by the host
// functions); T <= 65535 (grid y); slot_row values < N (not checked).
//
// Host functions (host memrefs in and out; one stream):
//   @moe_combine, @moe_combine_ref (rows, slot_row, slot_weight, y)
//
//===----------------------------------------------------------------------===//

module attributes {gpu.container_module} {

gpu.module @moe_combine_kernels {

  gpu.func @combine(%rows: memref<?x?xf32>, %slot_row: memref<?x?xi32>,
                    %slot_weight: memref<?x?xf32>, %y: memref<?x?xf32>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c1024 = arith.constant 1024 : index
    %z = arith.constant 0 : i32
    %zero4 = arith.constant dense<0.0> : vector<4xf32>
    %d = memref.dim %y, %c1 : memref<?x?xf32>
    %k = memref.dim %slot_row, %c1 : memref<?x?xi32>
    %bx = gpu.block_id x
    %t = gpu.block_id y
    %tid = gpu.thread_id x
    %col0 = arith.muli %bx, %c1024 : index
    %lc = arith.muli %tid, %c4 : index
    %col = arith.addi %col0, %lc : index
    %in = arith.cmpi ult, %col, %d : index
    scf.if %in {
      %acc = scf.for %j = %c0 to %k step %c1 iter_args(%a = %zero4)
          -> (vector<4xf32>) {
        %r_i = memref.load %slot_row[%t, %j] : memref<?x?xi32>
        %used = arith.cmpi sge, %r_i, %z : i32
        %na = scf.if %used -> (vector<4xf32>) {
          %r = arith.index_cast %r_i : i32 to index
          %w = memref.load %slot_weight[%t, %j] : memref<?x?xf32>
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
}

//===----------------------------------------------------------------------===//
// Host functions
//===----------------------------------------------------------------------===//

func.func @moe_combine(%rows: memref<?x?xf32>, %slot_row: memref<?x?xi32>,
                       %slot_weight: memref<?x?xf32>, %y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c256 = arith.constant 256 : index
  %c1023 = arith.constant 1023 : index
  %c1024 = arith.constant 1024 : index
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
  gpu.launch_func @moe_combine_kernels::@combine
      blocks in (%gx, %T, %c1) threads in (%c256, %c1, %c1)
      args(%drows : memref<?x?xf32>, %dsr : memref<?x?xi32>,
           %dsw : memref<?x?xf32>, %dy : memref<?x?xf32>)
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
