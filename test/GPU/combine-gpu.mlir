// Runs the combine kernel and its scalar reference on the GPU. Both add
// the slots in slot order with separately rounded f32 operations, so they
// must agree bitwise. Slots with (t + j) mod 5 == 4 are unused.
// REQUIRES: cuda-gpu, ptxas
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %gpu_kernels/combine.mlir %gpu_pipeline_sm80_isa \
// RUN: | mlir-translate --mlir-to-llvmir -o %t/kernels.ll
// RUN: llc -O2 -filetype=obj -relocation-model=pic %t/kernels.ll -o %t/kernels.o
// RUN: %cc -shared %t/kernels.o -L%moe_lib_dir -lmoe_cuda_runtime \
// RUN:   -Wl,-rpath,%moe_lib_dir -o %t/libkernels.so
// RUN: moe-opt %s %gpu_pipeline_sm80_isa \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils%shlibext,%t/libkernels.so \
// RUN: | FileCheck %s

// y[t, c] * 32 for tokens 0 and 36, columns 0, 1, 2, 259, computed
// independently:
// CHECK: ( -15, 17, -16, 31 )
// CHECK-NEXT: ( -32, -28, 2, 16 )
// CHECK: max error
// CHECK-NEXT: 0
// CHECK: PASS

module {
  func.func private @moe_combine(memref<?x?xf32>, memref<?x?xi32>,
                                 memref<?x?xf32>, memref<?x?xf32>)
  func.func private @moe_combine_ref(memref<?x?xf32>, memref<?x?xi32>,
                                     memref<?x?xf32>, memref<?x?xf32>)

  // i mod p as f32, minus q, divided by s
  func.func @value(%i: index, %p: index, %q: index, %s: f32) -> f32 {
    %r = arith.remui %i, %p : index
    %v = arith.subi %r, %q : index
    %vi = arith.index_cast %v : index to i64
    %vf = arith.sitofp %vi : i64 to f32
    %f = arith.divf %vf, %s : f32
    return %f : f32
  }

  func.func @print_row(%y: memref<?x?xf32>, %t: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c259 = arith.constant 259 : index
    %s = arith.constant 32.0 : f32
    %a = memref.load %y[%t, %c0] : memref<?x?xf32>
    %b = memref.load %y[%t, %c1] : memref<?x?xf32>
    %c = memref.load %y[%t, %c2] : memref<?x?xf32>
    %d = memref.load %y[%t, %c259] : memref<?x?xf32>
    %v = vector.from_elements %a, %b, %c, %d : vector<4xf32>
    %sv = vector.broadcast %s : f32 to vector<4xf32>
    %p = arith.mulf %v, %sv : vector<4xf32>
    vector.print %p : vector<4xf32>
    return
  }

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c5 = arith.constant 5 : index
    %c6 = arith.constant 6 : index
    %c7 = arith.constant 7 : index
    %c13 = arith.constant 13 : index
    %c36 = arith.constant 36 : index
    %T = arith.constant 37 : index
    %k = arith.constant 3 : index
    %d = arith.constant 260 : index
    %N = arith.constant 111 : index
    %s4 = arith.constant 4.0 : f32
    %s8 = arith.constant 8.0 : f32
    %f0 = arith.constant 0.0 : f32
    %m1 = arith.constant -1 : i32
    %rows = memref.alloc(%N, %d) : memref<?x?xf32>
    %sr = memref.alloc(%T, %k) : memref<?x?xi32>
    %sw = memref.alloc(%T, %k) : memref<?x?xf32>
    // rows[r, c] = ((3 r + 5 c + r c) mod 13 - 6) / 4
    scf.for %r = %c0 to %N step %c1 {
      scf.for %c = %c0 to %d step %c1 {
        %a = arith.muli %r, %c3 : index
        %b = arith.muli %c, %c5 : index
        %rc = arith.muli %r, %c : index
        %s0 = arith.addi %a, %b : index
        %s1 = arith.addi %s0, %rc : index
        %v = func.call @value(%s1, %c13, %c6, %s4)
            : (index, index, index, f32) -> f32
        memref.store %v, %rows[%r, %c] : memref<?x?xf32>
      }
    }
    // slot_row[t, j] = 7 (t k + j) mod N, or -1 when (t + j) mod 5 == 4;
    // slot_weight[t, j] = ((t + 2 j) mod 7 + 1) / 8.
    scf.for %t = %c0 to %T step %c1 {
      scf.for %j = %c0 to %k step %c1 {
        %tk = arith.muli %t, %k : index
        %a = arith.addi %tk, %j : index
        %a7 = arith.muli %a, %c7 : index
        %r = arith.remui %a7, %N : index
        %ri = arith.index_cast %r : index to i32
        %tj = arith.addi %t, %j : index
        %m5 = arith.remui %tj, %c5 : index
        %unused = arith.cmpi eq, %m5, %c4 : index
        %row = arith.select %unused, %m1, %ri : i32
        memref.store %row, %sr[%t, %j] : memref<?x?xi32>
        %j2 = arith.muli %j, %c2 : index
        %tj2 = arith.addi %t, %j2 : index
        %wv = func.call @value(%tj2, %c7, %c0, %s8)
            : (index, index, index, f32) -> f32
        %eighth = arith.constant 0.125 : f32
        %w = arith.addf %wv, %eighth : f32
        memref.store %w, %sw[%t, %j] : memref<?x?xf32>
      }
    }
    %y = memref.alloc(%T, %d) : memref<?x?xf32>
    %yr = memref.alloc(%T, %d) : memref<?x?xf32>
    call @moe_combine(%rows, %sr, %sw, %y)
        : (memref<?x?xf32>, memref<?x?xi32>, memref<?x?xf32>,
           memref<?x?xf32>) -> ()
    call @moe_combine_ref(%rows, %sr, %sw, %yr)
        : (memref<?x?xf32>, memref<?x?xi32>, memref<?x?xf32>,
           memref<?x?xf32>) -> ()
    call @print_row(%y, %c0) : (memref<?x?xf32>, index) -> ()
    call @print_row(%y, %c36) : (memref<?x?xf32>, index) -> ()
    %err = scf.for %t = %c0 to %T step %c1 iter_args(%e = %f0) -> (f32) {
      %e2 = scf.for %c = %c0 to %d step %c1 iter_args(%e1 = %e) -> (f32) {
        %a = memref.load %y[%t, %c] : memref<?x?xf32>
        %b = memref.load %yr[%t, %c] : memref<?x?xf32>
        %df = arith.subf %a, %b : f32
        %ad = math.absf %df : f32
        %gt = arith.cmpf ugt, %ad, %e1 : f32
        %ne = arith.select %gt, %ad, %e1 : f32
        scf.yield %ne : f32
      }
      scf.yield %e2 : f32
    }
    vector.print str "max error\n"
    vector.print %err : f32
    %ok = arith.cmpf oeq, %err, %f0 : f32
    scf.if %ok {
      vector.print str "PASS\n"
    } else {
      vector.print str "FAIL\n"
    }
    memref.dealloc %rows : memref<?x?xf32>
    memref.dealloc %sr : memref<?x?xi32>
    memref.dealloc %sw : memref<?x?xf32>
    memref.dealloc %y : memref<?x?xf32>
    memref.dealloc %yr : memref<?x?xf32>
    return
  }
}
