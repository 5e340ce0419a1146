// Runs the dispatch kernels and their scalar reference on the GPU and
// compares every output exactly. Experts 7 and 8 are out of range for
// E = 7: those slots are unused (slot_row -1, padding rows at the end).
// REQUIRES: cuda-gpu, ptxas
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %gpu_kernels/dispatch.mlir %gpu_pipeline_sm80_isa \
// RUN: | mlir-translate --mlir-to-llvmir -o %t/kernels.ll
// RUN: llc -O2 -filetype=obj -relocation-model=pic %t/kernels.ll -o %t/kernels.o
// RUN: %cc -shared %t/kernels.o -L%moe_lib_dir -lmoe_cuda_runtime \
// RUN:   -Wl,-rpath,%moe_lib_dir -o %t/libkernels.so
// RUN: moe-opt %s %gpu_pipeline_sm80_isa \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_c_runner_utils%shlibext,%t/libkernels.so \
// RUN: | FileCheck %s

// Computed independently: the group offsets, the tokens of the first rows
// (expert 0 in token order) and the padding rows of the 24 unused slots.
// CHECK: ( 0, 30, 41, 53, 83, 95, 106, 135 )
// CHECK: ( 0, 1, 3, 6, 7, 9, 10, 12 )
// CHECK: ( -1, -1, -1, -1, -1, -1, -1 )
// CHECK: mismatches
// CHECK-NEXT: 0
// CHECK: PASS

module {
  func.func private @moe_dispatch(memref<?x?xi32>, memref<?x?xf32>,
                                  memref<?x?xbf16>, memref<?xi32>,
                                  memref<?xi32>, memref<?xf32>,
                                  memref<?x?xi32>, memref<?x?xbf16>)
  func.func private @moe_dispatch_ref(memref<?x?xi32>, memref<?x?xf32>,
                                      memref<?x?xbf16>, memref<?xi32>,
                                      memref<?xi32>, memref<?xf32>,
                                      memref<?x?xi32>, memref<?x?xbf16>)

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c3 = arith.constant 3 : index
    %c5 = arith.constant 5 : index
    %c9 = arith.constant 9 : index
    %c152 = arith.constant 152 : index
    %T = arith.constant 53 : index
    %k = arith.constant 3 : index
    %E1 = arith.constant 8 : index
    %d = arith.constant 24 : index
    %TK = arith.constant 159 : index
    %s64 = arith.constant 64.0 : f32
    %ids = memref.alloc(%T, %k) : memref<?x?xi32>
    %wts = memref.alloc(%T, %k) : memref<?x?xf32>
    %x = memref.alloc(%T, %d) : memref<?x?xbf16>
    // ids[t, j] = (3 t + 5 j + t j) mod 9, wts[t, j] = (t k + j) / 64,
    // x[t, c] = t + c / 64.
    scf.for %t = %c0 to %T step %c1 {
      scf.for %j = %c0 to %k step %c1 {
        %a = arith.muli %t, %c3 : index
        %b = arith.muli %j, %c5 : index
        %tj = arith.muli %t, %j : index
        %s0 = arith.addi %a, %b : index
        %s1 = arith.addi %s0, %tj : index
        %e = arith.remui %s1, %c9 : index
        %ei = arith.index_cast %e : index to i32
        memref.store %ei, %ids[%t, %j] : memref<?x?xi32>
        %tk = arith.muli %t, %k : index
        %f = arith.addi %tk, %j : index
        %fi = arith.index_cast %f : index to i32
        %ff = arith.sitofp %fi : i32 to f32
        %w = arith.divf %ff, %s64 : f32
        memref.store %w, %wts[%t, %j] : memref<?x?xf32>
      }
      scf.for %c = %c0 to %d step %c1 {
        %ti = arith.index_cast %t : index to i32
        %tf = arith.sitofp %ti : i32 to f32
        %ci = arith.index_cast %c : index to i32
        %cf = arith.sitofp %ci : i32 to f32
        %cs = arith.divf %cf, %s64 : f32
        %v = arith.addf %tf, %cs : f32
        %vb = arith.truncf %v : f32 to bf16
        memref.store %vb, %x[%t, %c] : memref<?x?xbf16>
      }
    }
    %off = memref.alloc(%E1) : memref<?xi32>
    %rt = memref.alloc(%TK) : memref<?xi32>
    %rw = memref.alloc(%TK) : memref<?xf32>
    %sr = memref.alloc(%T, %k) : memref<?x?xi32>
    %xp = memref.alloc(%TK, %d) : memref<?x?xbf16>
    %off2 = memref.alloc(%E1) : memref<?xi32>
    %rt2 = memref.alloc(%TK) : memref<?xi32>
    %rw2 = memref.alloc(%TK) : memref<?xf32>
    %sr2 = memref.alloc(%T, %k) : memref<?x?xi32>
    %xp2 = memref.alloc(%TK, %d) : memref<?x?xbf16>
    call @moe_dispatch(%ids, %wts, %x, %off, %rt, %rw, %sr, %xp)
        : (memref<?x?xi32>, memref<?x?xf32>, memref<?x?xbf16>, memref<?xi32>,
           memref<?xi32>, memref<?xf32>, memref<?x?xi32>,
           memref<?x?xbf16>) -> ()
    call @moe_dispatch_ref(%ids, %wts, %x, %off2, %rt2, %rw2, %sr2, %xp2)
        : (memref<?x?xi32>, memref<?x?xf32>, memref<?x?xbf16>, memref<?xi32>,
           memref<?xi32>, memref<?xf32>, memref<?x?xi32>,
           memref<?x?xbf16>) -> ()
    %vo = vector.load %off[%c0] : memref<?xi32>, vector<8xi32>
    vector.print %vo : vector<8xi32>
    %vr = vector.load %rt[%c0] : memref<?xi32>, vector<8xi32>
    vector.print %vr : vector<8xi32>
    %vp = vector.load %rt[%c152] : memref<?xi32>, vector<7xi32>
    vector.print %vp : vector<7xi32>

    // Exact comparison of every output; also each used slot's row must
    // hold its token, its weight and its activations.
    %m0 = scf.for %e = %c0 to %E1 step %c1 iter_args(%n = %c0) -> (index) {
      %a = memref.load %off[%e] : memref<?xi32>
      %b = memref.load %off2[%e] : memref<?xi32>
      %ne = arith.cmpi ne, %a, %b : i32
      %i = arith.select %ne, %c1, %c0 : index
      %nn = arith.addi %n, %i : index
      scf.yield %nn : index
    }
    %m1 = scf.for %r = %c0 to %TK step %c1 iter_args(%n = %m0) -> (index) {
      %a = memref.load %rt[%r] : memref<?xi32>
      %b = memref.load %rt2[%r] : memref<?xi32>
      %wa = memref.load %rw[%r] : memref<?xf32>
      %wb = memref.load %rw2[%r] : memref<?xf32>
      %ne = arith.cmpi ne, %a, %b : i32
      %nw = arith.cmpf une, %wa, %wb : f32
      %bad = arith.ori %ne, %nw : i1
      %n1 = scf.for %c = %c0 to %d step %c1 iter_args(%bb = %bad) -> (i1) {
        %xa = memref.load %xp[%r, %c] : memref<?x?xbf16>
        %xb = memref.load %xp2[%r, %c] : memref<?x?xbf16>
        %xe = arith.cmpf une, %xa, %xb : bf16
        %o = arith.ori %bb, %xe : i1
        scf.yield %o : i1
      }
      %i = arith.select %n1, %c1, %c0 : index
      %nn = arith.addi %n, %i : index
      scf.yield %nn : index
    }
    %m2 = scf.for %t = %c0 to %T step %c1 iter_args(%n = %m1) -> (index) {
      %n2 = scf.for %j = %c0 to %k step %c1 iter_args(%nj = %n) -> (index) {
        %a = memref.load %sr[%t, %j] : memref<?x?xi32>
        %b = memref.load %sr2[%t, %j] : memref<?x?xi32>
        %ne = arith.cmpi ne, %a, %b : i32
        %z = arith.constant 0 : i32
        %TKi = arith.index_cast %TK : index to i32
        %ge = arith.cmpi sge, %a, %z : i32
        %lt = arith.cmpi slt, %a, %TKi : i32
        %used = arith.andi %ge, %lt : i1
        %wrong = scf.if %used -> (i1) {
          %r = arith.index_cast %a : i32 to index
          %tok = memref.load %rt[%r] : memref<?xi32>
          %ti = arith.index_cast %t : index to i32
          %w = memref.load %rw[%r] : memref<?xf32>
          %ws = memref.load %wts[%t, %j] : memref<?x?xf32>
          %x0 = memref.load %xp[%r, %c5] : memref<?x?xbf16>
          %x1 = memref.load %x[%t, %c5] : memref<?x?xbf16>
          %e1 = arith.cmpi ne, %tok, %ti : i32
          %e2 = arith.cmpf une, %w, %ws : f32
          %e3 = arith.cmpf une, %x0, %x1 : bf16
          %e12 = arith.ori %e1, %e2 : i1
          %e123 = arith.ori %e12, %e3 : i1
          scf.yield %e123 : i1
        } else {
          scf.yield %ne : i1
        }
        %bad = arith.ori %ne, %wrong : i1
        %i = arith.select %bad, %c1, %c0 : index
        %nn = arith.addi %nj, %i : index
        scf.yield %nn : index
      }
      scf.yield %n2 : index
    }
    vector.print str "mismatches\n"
    vector.print %m2 : index
    %ok = arith.cmpi eq, %m2, %c0 : index
    scf.if %ok {
      vector.print str "PASS\n"
    } else {
      vector.print str "FAIL\n"
    }
    memref.dealloc %ids : memref<?x?xi32>
    memref.dealloc %wts : memref<?x?xf32>
    memref.dealloc %x : memref<?x?xbf16>
    memref.dealloc %off : memref<?xi32>
    memref.dealloc %rt : memref<?xi32>
    memref.dealloc %rw : memref<?xf32>
    memref.dealloc %sr : memref<?x?xi32>
    memref.dealloc %xp : memref<?x?xbf16>
    memref.dealloc %off2 : memref<?xi32>
    memref.dealloc %rt2 : memref<?xi32>
    memref.dealloc %rw2 : memref<?xf32>
    memref.dealloc %sr2 : memref<?x?xi32>
    memref.dealloc %xp2 : memref<?x?xbf16>
    return
  }
}
