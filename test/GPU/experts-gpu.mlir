// Runs the grouped GEMM and the gated expert FFN on tensor cores and with
// the scalar reference kernels on the GPU, and compares them. Ragged groups
// (70, 0, 1, 130, 19 rows, then 4 rows past the last group), K = 104 (not a
// multiple of the k step 32) and 72 output columns (not a multiple of the
// 64-column tile). The GEMM inputs are small dyadic numbers, so its sums
// are exact: a few of them are checked against values computed
// independently (times 128).
// REQUIRES: cuda-gpu, ptxas
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %gpu_kernels/experts.mlir %gpu_pipeline_sm80_isa \
// RUN: | mlir-translate --mlir-to-llvmir -o %t/kernels.ll
// RUN: llc -O2 -filetype=obj -relocation-model=pic %t/kernels.ll -o %t/kernels.o
// RUN: %cc -shared %t/kernels.o -L%moe_lib_dir -lmoe_cuda_runtime \
// RUN:   -Wl,-rpath,%moe_lib_dir -o %t/libkernels.so
// RUN: moe-opt %s %gpu_pipeline_sm80_isa \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils%shlibext,%t/libkernels.so \
// RUN: | FileCheck %s

// Rows 0 (expert 0), 70 (expert 2), 219 (expert 4), columns 0, 1, 2, 71;
// row 221 lies past the groups and keeps its initial value -7.
// CHECK: ( 58, -1, -9, 0 )
// CHECK-NEXT: ( -44, -61, 126, 24 )
// CHECK-NEXT: ( 114, 135, -133, -27 )
// CHECK-NEXT: ( -896, -896, -896, -896 )
// CHECK: gemm max error
// CHECK-NEXT: 0
// CHECK: gemm PASS
// CHECK: ffn max relative error
// CHECK: ffn PASS

module {
  func.func private @moe_grouped_gemm(memref<?x?xbf16>, memref<?x?x?xbf16>,
                                      memref<?xi32>, memref<?x?xf32>)
  func.func private @moe_grouped_gemm_ref(memref<?x?xbf16>,
                                          memref<?x?x?xbf16>, memref<?xi32>,
                                          memref<?x?xf32>)
  func.func private @moe_expert_ffn(memref<?x?xbf16>, memref<?x?x?xbf16>,
                                    memref<?x?x?xbf16>, memref<?x?x?xbf16>,
                                    memref<?xi32>, memref<?x?xf32>)
  func.func private @moe_expert_ffn_ref(memref<?x?xbf16>, memref<?x?x?xbf16>,
                                        memref<?x?x?xbf16>,
                                        memref<?x?x?xbf16>, memref<?xi32>,
                                        memref<?x?xf32>)

  // ((a + b + c) mod p - q) / s as bf16
  func.func @value(%a: index, %b: index, %c: index, %p: index, %q: index,
                   %s: f32) -> bf16 {
    %s0 = arith.addi %a, %b : index
    %s1 = arith.addi %s0, %c : index
    %r = arith.remui %s1, %p : index
    %v = arith.subi %r, %q : index
    %vi = arith.index_cast %v : index to i64
    %vf = arith.sitofp %vi : i64 to f32
    %f = arith.divf %vf, %s : f32
    %b16 = arith.truncf %f : f32 to bf16
    return %b16 : bf16
  }

  // X[r, c] = ((7 r + 3 c + r c) mod 11 - 5) / 8
  func.func @fill_x(%X: memref<?x?xbf16>) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c3 = arith.constant 3 : index
    %c5 = arith.constant 5 : index
    %c7 = arith.constant 7 : index
    %c11 = arith.constant 11 : index
    %s8 = arith.constant 8.0 : f32
    %n0 = memref.dim %X, %c0 : memref<?x?xbf16>
    %n1 = memref.dim %X, %c1 : memref<?x?xbf16>
    scf.for %r = %c0 to %n0 step %c1 {
      scf.for %c = %c0 to %n1 step %c1 {
        %a = arith.muli %r, %c7 : index
        %b = arith.muli %c, %c3 : index
        %rc = arith.muli %r, %c : index
        %v = func.call @value(%a, %b, %rc, %c11, %c5, %s8)
            : (index, index, index, index, index, f32) -> bf16
        memref.store %v, %X[%r, %c] : memref<?x?xbf16>
      }
    }
    return
  }

  // W[e, j, c] = ((5 e + 13 j + 5 c + j c) mod 17 - 8) / s
  func.func @fill_w(%W: memref<?x?x?xbf16>, %s: f32) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c5 = arith.constant 5 : index
    %c8 = arith.constant 8 : index
    %c13 = arith.constant 13 : index
    %c17 = arith.constant 17 : index
    %n0 = memref.dim %W, %c0 : memref<?x?x?xbf16>
    %n1 = memref.dim %W, %c1 : memref<?x?x?xbf16>
    %n2 = memref.dim %W, %c2 : memref<?x?x?xbf16>
    scf.for %e = %c0 to %n0 step %c1 {
      scf.for %j = %c0 to %n1 step %c1 {
        scf.for %c = %c0 to %n2 step %c1 {
          %a = arith.muli %e, %c5 : index
          %b0 = arith.muli %j, %c13 : index
          %b1 = arith.muli %c, %c5 : index
          %b = arith.addi %b0, %b1 : index
          %jc = arith.muli %j, %c : index
          %v = func.call @value(%a, %b, %jc, %c17, %c8, %s)
              : (index, index, index, index, index, f32) -> bf16
          memref.store %v, %W[%e, %j, %c] : memref<?x?x?xbf16>
        }
      }
    }
    return
  }

  func.func @fill_f32(%Y: memref<?x?xf32>, %v: f32) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %n0 = memref.dim %Y, %c0 : memref<?x?xf32>
    %n1 = memref.dim %Y, %c1 : memref<?x?xf32>
    scf.for %r = %c0 to %n0 step %c1 {
      scf.for %c = %c0 to %n1 step %c1 {
        memref.store %v, %Y[%r, %c] : memref<?x?xf32>
      }
    }
    return
  }

  // (max |A - B|, max |B|) over all elements; a NaN difference wins.
  func.func @max_error(%A: memref<?x?xf32>, %B: memref<?x?xf32>)
      -> (f32, f32) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    %n0 = memref.dim %A, %c0 : memref<?x?xf32>
    %n1 = memref.dim %A, %c1 : memref<?x?xf32>
    %r:2 = scf.for %i = %c0 to %n0 step %c1 iter_args(%e = %f0, %m = %f0)
        -> (f32, f32) {
      %q:2 = scf.for %j = %c0 to %n1 step %c1 iter_args(%e1 = %e, %m1 = %m)
          -> (f32, f32) {
        %a = memref.load %A[%i, %j] : memref<?x?xf32>
        %b = memref.load %B[%i, %j] : memref<?x?xf32>
        %d = arith.subf %a, %b : f32
        %ad = math.absf %d : f32
        %ab = math.absf %b : f32
        %gt = arith.cmpf ugt, %ad, %e1 : f32
        %ne = arith.select %gt, %ad, %e1 : f32
        %nm = arith.maximumf %m1, %ab : f32
        scf.yield %ne, %nm : f32, f32
      }
      scf.yield %q#0, %q#1 : f32, f32
    }
    return %r#0, %r#1 : f32, f32
  }

  func.func @print_row(%Y: memref<?x?xf32>, %r: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c71 = arith.constant 71 : index
    %s = arith.constant 128.0 : f32
    %a = memref.load %Y[%r, %c0] : memref<?x?xf32>
    %b = memref.load %Y[%r, %c1] : memref<?x?xf32>
    %c = memref.load %Y[%r, %c2] : memref<?x?xf32>
    %d = memref.load %Y[%r, %c71] : memref<?x?xf32>
    %v = vector.from_elements %a, %b, %c, %d : vector<4xf32>
    %sv = vector.broadcast %s : f32 to vector<4xf32>
    %p = arith.mulf %v, %sv : vector<4xf32>
    vector.print %p : vector<4xf32>
    return
  }

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c70 = arith.constant 70 : index
    %c219 = arith.constant 219 : index
    %c221 = arith.constant 221 : index
    %N = arith.constant 224 : index
    %K = arith.constant 104 : index
    %Nout = arith.constant 72 : index
    %E = arith.constant 5 : index
    %E1 = arith.constant 6 : index
    %F = arith.constant 200 : index
    %s16 = arith.constant 16.0 : f32
    %s64 = arith.constant 64.0 : f32
    %init = arith.constant -7.0 : f32
    %zero = arith.constant 0.0 : f32
    %tol = arith.constant 1.0e-4 : f32
    // Group offsets of 70, 0, 1, 130, 19 rows.
    %off = memref.alloc(%E1) : memref<?xi32>
    %o = arith.constant dense<[0, 70, 70, 71, 201, 220]> : vector<6xi32>
    vector.store %o, %off[%c0] : memref<?xi32>, vector<6xi32>
    %X = memref.alloc(%N, %K) : memref<?x?xbf16>
    call @fill_x(%X) : (memref<?x?xbf16>) -> ()

    // Grouped GEMM.
    %W = memref.alloc(%E, %Nout, %K) : memref<?x?x?xbf16>
    call @fill_w(%W, %s16) : (memref<?x?x?xbf16>, f32) -> ()
    %Y = memref.alloc(%N, %Nout) : memref<?x?xf32>
    %Yr = memref.alloc(%N, %Nout) : memref<?x?xf32>
    call @fill_f32(%Y, %init) : (memref<?x?xf32>, f32) -> ()
    call @fill_f32(%Yr, %init) : (memref<?x?xf32>, f32) -> ()
    call @moe_grouped_gemm(%X, %W, %off, %Y)
        : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?xi32>,
           memref<?x?xf32>) -> ()
    call @moe_grouped_gemm_ref(%X, %W, %off, %Yr)
        : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?xi32>,
           memref<?x?xf32>) -> ()
    call @print_row(%Y, %c0) : (memref<?x?xf32>, index) -> ()
    call @print_row(%Y, %c70) : (memref<?x?xf32>, index) -> ()
    call @print_row(%Y, %c219) : (memref<?x?xf32>, index) -> ()
    call @print_row(%Y, %c221) : (memref<?x?xf32>, index) -> ()
    %ge:2 = call @max_error(%Y, %Yr)
        : (memref<?x?xf32>, memref<?x?xf32>) -> (f32, f32)
    vector.print str "gemm max error\n"
    vector.print %ge#0 : f32
    %gok = arith.cmpf oeq, %ge#0, %zero : f32
    scf.if %gok {
      vector.print str "gemm PASS\n"
    } else {
      vector.print str "gemm FAIL\n"
    }

    // Gated expert FFN: D = K, inner size F.
    %Wg = memref.alloc(%E, %F, %K) : memref<?x?x?xbf16>
    %Wu = memref.alloc(%E, %F, %K) : memref<?x?x?xbf16>
    %Wd = memref.alloc(%E, %K, %F) : memref<?x?x?xbf16>
    call @fill_w(%Wg, %s16) : (memref<?x?x?xbf16>, f32) -> ()
    call @fill_w(%Wu, %s64) : (memref<?x?x?xbf16>, f32) -> ()
    call @fill_w(%Wd, %s64) : (memref<?x?x?xbf16>, f32) -> ()
    %Z = memref.alloc(%N, %K) : memref<?x?xf32>
    %Zr = memref.alloc(%N, %K) : memref<?x?xf32>
    // Zeros: the check on max |reference| below fails if nothing ran.
    call @fill_f32(%Z, %zero) : (memref<?x?xf32>, f32) -> ()
    call @fill_f32(%Zr, %zero) : (memref<?x?xf32>, f32) -> ()
    call @moe_expert_ffn(%X, %Wg, %Wu, %Wd, %off, %Z)
        : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           memref<?x?x?xbf16>, memref<?xi32>, memref<?x?xf32>) -> ()
    call @moe_expert_ffn_ref(%X, %Wg, %Wu, %Wd, %off, %Zr)
        : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           memref<?x?x?xbf16>, memref<?xi32>, memref<?x?xf32>) -> ()
    %fe:2 = call @max_error(%Z, %Zr)
        : (memref<?x?xf32>, memref<?x?xf32>) -> (f32, f32)
    %rel = arith.divf %fe#0, %fe#1 : f32
    vector.print str "ffn max relative error\n"
    vector.print %rel : f32
    // The reference must not be trivially small either (its largest
    // element is about 4.96).
    %big = arith.constant 1.0 : f32
    %fok1 = arith.cmpf ole, %rel, %tol : f32
    %fok2 = arith.cmpf oge, %fe#1, %big : f32
    %fok = arith.andi %fok1, %fok2 : i1
    scf.if %fok {
      vector.print str "ffn PASS\n"
    } else {
      vector.print str "ffn FAIL\n"
    }
    memref.dealloc %off : memref<?xi32>
    memref.dealloc %X : memref<?x?xbf16>
    memref.dealloc %W : memref<?x?x?xbf16>
    memref.dealloc %Y : memref<?x?xf32>
    memref.dealloc %Yr : memref<?x?xf32>
    memref.dealloc %Wg : memref<?x?x?xbf16>
    memref.dealloc %Wu : memref<?x?x?xbf16>
    memref.dealloc %Wd : memref<?x?x?xbf16>
    memref.dealloc %Z : memref<?x?xf32>
    memref.dealloc %Zr : memref<?x?xf32>
    return
  }
}
