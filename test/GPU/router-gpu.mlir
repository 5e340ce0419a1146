// Runs the router kernel and its scalar reference on the GPU and compares
// them. The inputs are small dyadic numbers whose products and sums are
// exact in f32, so both kernels see the same logits, ties included (ties go
// to the lower expert): the selected experts must agree exactly.
// REQUIRES: cuda-gpu, ptxas
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %gpu_kernels/router.mlir %gpu_pipeline_sm80_isa \
// RUN: | mlir-translate --mlir-to-llvmir -o %t/kernels.ll
// RUN: llc -O2 -filetype=obj -relocation-model=pic %t/kernels.ll -o %t/kernels.o
// RUN: %cc -shared %t/kernels.o -L%moe_lib_dir -lmoe_cuda_runtime \
// RUN:   -Wl,-rpath,%moe_lib_dir -o %t/libkernels.so
// RUN: moe-opt %s %gpu_pipeline_sm80_isa \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils%shlibext,%t/libkernels.so \
// RUN: | FileCheck %s

// The experts of tokens 0 and 60, computed independently (f64, ties to the
// lower index):
// CHECK: ( 9, 26, 15, 32, 4, 21 )
// CHECK: ( 3, 20, 37, 7, 24, 0 )
// CHECK: id mismatches
// CHECK-NEXT: 0
// CHECK: PASS

module {
  func.func private @moe_router(memref<?x?xbf16>, memref<?x?xbf16>,
                                memref<?x?xi32>, memref<?x?xf32>)
  func.func private @moe_router_ref(memref<?x?xbf16>, memref<?x?xbf16>,
                                    memref<?x?xi32>, memref<?x?xf32>)

  // m[i, j] = ((i * a + j * b + i * j) mod p - c) / s
  func.func @fill(%m: memref<?x?xbf16>, %a: index, %b: index, %p: index,
                  %c: index, %s: f32) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %n0 = memref.dim %m, %c0 : memref<?x?xbf16>
    %n1 = memref.dim %m, %c1 : memref<?x?xbf16>
    scf.for %i = %c0 to %n0 step %c1 {
      scf.for %j = %c0 to %n1 step %c1 {
        %ia = arith.muli %i, %a : index
        %jb = arith.muli %j, %b : index
        %ij = arith.muli %i, %j : index
        %s0 = arith.addi %ia, %jb : index
        %sum = arith.addi %s0, %ij : index
        %r = arith.remui %sum, %p : index
        %v = arith.subi %r, %c : index
        %vi = arith.index_cast %v : index to i64
        %vf = arith.sitofp %vi : i64 to f32
        %q = arith.divf %vf, %s : f32
        %b16 = arith.truncf %q : f32 to bf16
        memref.store %b16, %m[%i, %j] : memref<?x?xbf16>
      }
    }
    return
  }

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c3 = arith.constant 3 : index
    %c5 = arith.constant 5 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %c11 = arith.constant 11 : index
    %c13 = arith.constant 13 : index
    %c17 = arith.constant 17 : index
    %c60 = arith.constant 60 : index
    %T = arith.constant 61 : index
    %d = arith.constant 264 : index
    %E = arith.constant 40 : index
    %k = arith.constant 6 : index
    %f0 = arith.constant 0.0 : f32
    %s8 = arith.constant 8.0 : f32
    %s16 = arith.constant 16.0 : f32
    %tol = arith.constant 1.0e-6 : f32
    %x = memref.alloc(%T, %d) : memref<?x?xbf16>
    %Wr = memref.alloc(%E, %d) : memref<?x?xbf16>
    call @fill(%x, %c7, %c3, %c11, %c5, %s8)
        : (memref<?x?xbf16>, index, index, index, index, f32) -> ()
    call @fill(%Wr, %c13, %c5, %c17, %c8, %s16)
        : (memref<?x?xbf16>, index, index, index, index, f32) -> ()
    %ids = memref.alloc(%T, %k) : memref<?x?xi32>
    %wts = memref.alloc(%T, %k) : memref<?x?xf32>
    %ids_ref = memref.alloc(%T, %k) : memref<?x?xi32>
    %wts_ref = memref.alloc(%T, %k) : memref<?x?xf32>
    call @moe_router(%x, %Wr, %ids, %wts)
        : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?xi32>,
           memref<?x?xf32>) -> ()
    call @moe_router_ref(%x, %Wr, %ids_ref, %wts_ref)
        : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?xi32>,
           memref<?x?xf32>) -> ()
    %row0 = vector.load %ids[%c0, %c0] : memref<?x?xi32>, vector<6xi32>
    vector.print %row0 : vector<6xi32>
    %row60 = vector.load %ids[%c60, %c0] : memref<?x?xi32>, vector<6xi32>
    vector.print %row60 : vector<6xi32>
    %res:2 = scf.for %t = %c0 to %T step %c1 iter_args(%bad = %c0, %err = %f0)
        -> (index, f32) {
      %r:2 = scf.for %j = %c0 to %k step %c1 iter_args(%b = %bad, %e = %err)
          -> (index, f32) {
        %i1 = memref.load %ids[%t, %j] : memref<?x?xi32>
        %i2 = memref.load %ids_ref[%t, %j] : memref<?x?xi32>
        %w1 = memref.load %wts[%t, %j] : memref<?x?xf32>
        %w2 = memref.load %wts_ref[%t, %j] : memref<?x?xf32>
        %ne = arith.cmpi ne, %i1, %i2 : i32
        %inc = arith.select %ne, %c1, %c0 : index
        %nb = arith.addi %b, %inc : index
        %dw = arith.subf %w1, %w2 : f32
        %adw = math.absf %dw : f32
        // NaN-safe: a NaN difference becomes the error.
        %gt = arith.cmpf ugt, %adw, %e : f32
        %ne2 = arith.select %gt, %adw, %e : f32
        scf.yield %nb, %ne2 : index, f32
      }
      scf.yield %r#0, %r#1 : index, f32
    }
    vector.print str "id mismatches\n"
    vector.print %res#0 : index
    vector.print str "max weight error\n"
    vector.print %res#1 : f32
    %ok_ids = arith.cmpi eq, %res#0, %c0 : index
    %ok_w = arith.cmpf ole, %res#1, %tol : f32
    %ok = arith.andi %ok_ids, %ok_w : i1
    scf.if %ok {
      vector.print str "PASS\n"
    } else {
      vector.print str "FAIL\n"
    }
    memref.dealloc %x : memref<?x?xbf16>
    memref.dealloc %Wr : memref<?x?xbf16>
    memref.dealloc %ids : memref<?x?xi32>
    memref.dealloc %wts : memref<?x?xf32>
    memref.dealloc %ids_ref : memref<?x?xi32>
    memref.dealloc %wts_ref : memref<?x?xf32>
    return
  }
}
