// wgmma.mma_async on the SIMT emulator: D = A B for a 64 x 32 x 32 product
// (two m64n32k16 steps) with A and B K-major in shared memory, once in the
// 128-byte swizzled layout (8-row atoms of 128-byte rows, 16-byte chunk c
// of row r at chunk c ^ (r % 8), the atoms 1024-byte aligned) and once
// without swizzling (8 x 16-byte core matrices, 128 bytes apart along K and
// 512 along M or N). Each thread checks its fragment (warp w: rows
// 16 w + lane / 4 (+ 8), columns 8 j + 2 (lane % 4) (+ 1)) against a
// scalar product of the same elements, and rows 0, 37 and 63 are compared
// with values computed independently:
//   A[m][k] = ((7 m + 3 k + (m k mod 5)) mod 13) - 6,
//   B[k][n] = ((5 k + 2 n + (k n mod 7)) mod 11) - 5.
// RUN: moe-opt %s --moe-gpu-emulation-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext,%moe_lib_dir/libmoe_cuda_emulator%shlibext \
// RUN: | FileCheck %s

// CHECK: mismatches: 0
// CHECK: [92,  1,  -12,  -92,  41,  49,  58,  80,  -77,  9,  -16,  -4,  -73,  -119,  -64,  109,  96,  5,  -38,  -85,  122,  -87,  64,  -37,  114,  -83,  -42,  -209,  143,  -58,  -49,  -19]
// CHECK: [-62,  22,  21,  -101,  -36,  51,  72,  103,  -33,  -12,  31,  30,  -15,  -38,  59,  44,  76,  9,  19,  -48,  72,  -51,  -33,  -56,  53,  -80,  40,  -60,  -62,  -11,  -1,  -35]
// CHECK: [-44,  -40,  -65,  -105,  28,  186,  62,  -19,  7,  48,  74,  31,  -97,  -221,  39,  32,  62,  11,  -54,  -105,  101,  -57,  -20,  -1,  25,  -18,  52,  16,  -32,  5,  46,  -27]
// CHECK: [92,  1,  -12,  -92,  41,  49,  58,  80,  -77,  9,  -16,  -4,  -73,  -119,  -64,  109,  96,  5,  -38,  -85,  122,  -87,  64,  -37,  114,  -83,  -42,  -209,  143,  -58,  -49,  -19]
// CHECK: [-62,  22,  21,  -101,  -36,  51,  72,  103,  -33,  -12,  31,  30,  -15,  -38,  59,  44,  76,  9,  19,  -48,  72,  -51,  -33,  -56,  53,  -80,  40,  -60,  -62,  -11,  -1,  -35]
// CHECK: [-44,  -40,  -65,  -105,  28,  186,  62,  -19,  7,  48,  74,  31,  -97,  -221,  39,  32,  62,  11,  -54,  -105,  101,  -57,  -20,  -1,  25,  -18,  52,  16,  -32,  5,  46,  -27]

!acc = !llvm.struct<(f32, f32, f32, f32, f32, f32, f32, f32,
                     f32, f32, f32, f32, f32, f32, f32, f32)>

module attributes {gpu.container_module} {
  gpu.module @kernels [#nvvm.target<chip = "sm_90a", features = "+ptx80">] {
    // (x m + y k + (m k mod z)) mod p - h, exactly in bf16.
    func.func private @value(%m: index, %k: index, %x: index, %y: index,
                             %z: index, %p: index, %h: f32) -> bf16 {
      %xm = arith.muli %x, %m : index
      %yk = arith.muli %y, %k : index
      %mk = arith.muli %m, %k : index
      %mkz = arith.remui %mk, %z : index
      %s0 = arith.addi %xm, %yk : index
      %s1 = arith.addi %s0, %mkz : index
      %q = arith.remui %s1, %p : index
      %qi = arith.index_cast %q : index to i32
      %s = arith.sitofp %qi : i32 to f32
      %v = arith.subf %s, %h : f32
      %b = arith.truncf %v : f32 to bf16
      return %b : bf16
    }
    func.func private @a_value(%m: index, %k: index) -> bf16 {
      %c3 = arith.constant 3 : index
      %c5 = arith.constant 5 : index
      %c7 = arith.constant 7 : index
      %c13 = arith.constant 13 : index
      %h = arith.constant 6.0 : f32
      %v = func.call @value(%m, %k, %c7, %c3, %c5, %c13, %h)
          : (index, index, index, index, index, index, f32) -> bf16
      return %v : bf16
    }
    func.func private @b_value(%k: index, %n: index) -> bf16 {
      %c2 = arith.constant 2 : index
      %c5 = arith.constant 5 : index
      %c7 = arith.constant 7 : index
      %c11 = arith.constant 11 : index
      %h = arith.constant 5.0 : f32
      %v = func.call @value(%k, %n, %c5, %c2, %c7, %c11, %h)
          : (index, index, index, index, index, index, f32) -> bf16
      return %v : bf16
    }
    // Byte offset of element (r, k) of a K-major operand: 128-byte
    // swizzled (%swz) or in core matrices (LBO 128, SBO 512).
    func.func private @offset(%r: index, %k: index, %swz: i1) -> index {
      %c2 = arith.constant 2 : index
      %c8 = arith.constant 8 : index
      %c16 = arith.constant 16 : index
      %c128 = arith.constant 128 : index
      %c512 = arith.constant 512 : index
      %c1024 = arith.constant 1024 : index
      %rg = arith.divui %r, %c8 : index
      %rr = arith.remui %r, %c8 : index
      %kc = arith.divui %k, %c8 : index
      %ke = arith.remui %k, %c8 : index
      %ke2 = arith.muli %ke, %c2 : index
      %o = scf.if %swz -> index {
        %a = arith.muli %rg, %c1024 : index
        %b = arith.muli %rr, %c128 : index
        %c = arith.xori %kc, %rr : index
        %c16x = arith.muli %c, %c16 : index
        %s0 = arith.addi %a, %b : index
        %s1 = arith.addi %s0, %c16x : index
        %s2 = arith.addi %s1, %ke2 : index
        scf.yield %s2 : index
      } else {
        %a = arith.muli %rg, %c512 : index
        %b = arith.muli %kc, %c128 : index
        %c = arith.muli %rr, %c16 : index
        %s0 = arith.addi %a, %b : index
        %s1 = arith.addi %s0, %c : index
        %s2 = arith.addi %s1, %ke2 : index
        scf.yield %s2 : index
      }
      return %o : index
    }
    // Descriptor bits: start (bytes) >> 4, LBO >> 4 at 16, SBO >> 4 at 32,
    // 128-byte swizzling (1) at 62.
    func.func private @descriptor(%start: i64, %lbo: i64, %sbo: i64,
                                  %swz: i64) -> i64 {
      %c4 = arith.constant 4 : i64
      %c16 = arith.constant 16 : i64
      %c32 = arith.constant 32 : i64
      %c62 = arith.constant 62 : i64
      %mask = arith.constant 262143 : i64
      %a0 = arith.andi %start, %mask : i64
      %a = arith.shrui %a0, %c4 : i64
      %l0 = arith.shrui %lbo, %c4 : i64
      %l = arith.shli %l0, %c16 : i64
      %s0 = arith.shrui %sbo, %c4 : i64
      %s = arith.shli %s0, %c32 : i64
      %w = arith.shli %swz, %c62 : i64
      %d0 = arith.ori %a, %l : i64
      %d1 = arith.ori %d0, %s : i64
      %d = arith.ori %d1, %w : i64
      return %d : i64
    }

    gpu.func @wgmma(%out: memref<2x64x32xf32>, %bad: memref<1xi32>)
        workgroup(%smem: memref<13312xi8, #gpu.address_space<workgroup>>)
        kernel {
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c4 = arith.constant 4 : index
      %c8 = arith.constant 8 : index
      %c16 = arith.constant 16 : index
      %c32 = arith.constant 32 : index
      %c64 = arith.constant 64 : index
      %c128 = arith.constant 128 : index
      %c1024 = arith.constant 1024 : index
      %c2048 = arith.constant 2048 : index
      %c8192 = arith.constant 8192 : index
      %tid = gpu.thread_id x
      %view = memref.view %smem[%c0][] : memref<13312xi8, #gpu.address_space<workgroup>>
          to memref<6656xbf16, #gpu.address_space<workgroup>>
      // The first 1024-byte aligned byte of the buffer.
      %base = memref.extract_aligned_pointer_as_index %smem
          : memref<13312xi8, #gpu.address_space<workgroup>> -> index
      %mis = arith.remui %base, %c1024 : index
      %pad0 = arith.subi %c1024, %mis : index
      %pad = arith.remui %pad0, %c1024 : index
      %start = arith.addi %base, %pad : index
      %startB = arith.addi %start, %c8192 : index
      %sa = arith.index_cast %start : index to i64
      %sb = arith.index_cast %startB : index to i64
      %warp = arith.divui %tid, %c32 : index
      %lane = arith.remui %tid, %c32 : index
      %g = arith.divui %lane, %c4 : index
      %q = arith.remui %lane, %c4 : index
      %q2 = arith.muli %q, %c2 : index
      %w16 = arith.muli %warp, %c16 : index
      %row0 = arith.addi %w16, %g : index
      %row1 = arith.addi %row0, %c8 : index
      %true = arith.constant true
      %false = arith.constant false
      %lbo_i = arith.constant 128 : i64
      %sbo_n = arith.constant 512 : i64
      %sbo_s = arith.constant 1024 : i64
      %zero_i = arith.constant 0 : i64
      %one_i = arith.constant 1 : i64
      %step_n = arith.constant 256 : i64
      %step_s = arith.constant 32 : i64
      %c1_i32 = arith.constant 1 : i32
      %cnt1 = arith.constant 1 : i64
      %z0 = arith.constant 0.0 : f32
      scf.for %layout = %c0 to %c2 step %c1 {
        %swz = arith.cmpi eq, %layout, %c0 : index
        // A: 64 x 32, B^T: 32 x 32 (rows n), 8 KiB after A.
        scf.for %i = %tid to %c2048 step %c128 {
          %m = arith.divui %i, %c32 : index
          %k = arith.remui %i, %c32 : index
          %v = func.call @a_value(%m, %k) : (index, index) -> bf16
          %o = func.call @offset(%m, %k, %swz) : (index, index, i1) -> index
          %ob = arith.addi %o, %pad : index
          %e = arith.divui %ob, %c2 : index
          memref.store %v, %view[%e] : memref<6656xbf16, #gpu.address_space<workgroup>>
        }
        scf.for %i = %tid to %c1024 step %c128 {
          %n = arith.divui %i, %c32 : index
          %k = arith.remui %i, %c32 : index
          %v = func.call @b_value(%k, %n) : (index, index) -> bf16
          %o = func.call @offset(%n, %k, %swz) : (index, index, i1) -> index
          %o8 = arith.addi %o, %c8192 : index
          %ob = arith.addi %o8, %pad : index
          %e = arith.divui %ob, %c2 : index
          memref.store %v, %view[%e] : memref<6656xbf16, #gpu.address_space<workgroup>>
        }
        nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
        gpu.barrier
        %lbo = arith.select %swz, %one_i, %lbo_i : i64
        %sbo = arith.select %swz, %sbo_s, %sbo_n : i64
        %mode = arith.select %swz, %one_i, %zero_i : i64
        %step = arith.select %swz, %step_s, %step_n : i64
        %da0 = func.call @descriptor(%sa, %lbo, %sbo, %mode) : (i64, i64, i64, i64) -> i64
        %db0 = func.call @descriptor(%sb, %lbo, %sbo, %mode) : (i64, i64, i64, i64) -> i64
        %step4 = arith.shrui %step, %cnt1 : i64
        %step16 = arith.shrui %step4, %cnt1 : i64
        %stepd0 = arith.shrui %step16, %cnt1 : i64
        %stepd = arith.shrui %stepd0, %cnt1 : i64
        %da1 = arith.addi %da0, %stepd : i64
        %db1 = arith.addi %db0, %stepd : i64
        %z = llvm.mlir.zero : !acc
        nvvm.wgmma.fence.aligned
        %d0 = nvvm.wgmma.mma_async %da0, %db0, %z, #nvvm.shape<m = 64, n = 32, k = 16>,
            D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
            : !acc -> !acc
        %d1 = nvvm.wgmma.mma_async %da1, %db1, %d0, #nvvm.shape<m = 64, n = 32, k = 16>,
            D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
            : !acc -> !acc
        nvvm.wgmma.commit.group.sync.aligned
        nvvm.wgmma.wait.group.sync.aligned 0
        // The fragment through memory, as the GEMM epilogues read it.
        %one32 = llvm.mlir.constant(1 : i32) : i32
        %frag = llvm.alloca %one32 x !acc : (i32) -> !llvm.ptr
        llvm.store %d1, %frag : !acc, !llvm.ptr
        scf.for %j = %c0 to %c4 step %c1 {
          scf.for %r = %c0 to %c4 step %c1 {
            %j4 = arith.muli %j, %c4 : index
            %idx = arith.addi %j4, %r : index
            %idx_i = arith.index_cast %idx : index to i32
            %p = llvm.getelementptr %frag[%idx_i] : (!llvm.ptr, i32) -> !llvm.ptr, f32
            %d = llvm.load %p : !llvm.ptr -> f32
            %hi = arith.cmpi uge, %r, %c2 : index
            %row = arith.select %hi, %row1, %row0 : index
            %r2 = arith.remui %r, %c2 : index
            %j8 = arith.muli %j, %c8 : index
            %c_0 = arith.addi %j8, %q2 : index
            %col = arith.addi %c_0, %r2 : index
            memref.store %d, %out[%layout, %row, %col] : memref<2x64x32xf32>
            %sum = scf.for %k = %c0 to %c32 step %c1 iter_args(%s = %z0) -> (f32) {
              %a = func.call @a_value(%row, %k) : (index, index) -> bf16
              %b = func.call @b_value(%k, %col) : (index, index) -> bf16
              %af = arith.extf %a : bf16 to f32
              %bf = arith.extf %b : bf16 to f32
              %prod = arith.mulf %af, %bf : f32
              %s1 = arith.addf %s, %prod : f32
              scf.yield %s1 : f32
            }
            %ok = arith.cmpf oeq, %sum, %d : f32
            scf.if %ok {
            } else {
              %old = memref.atomic_rmw addi %c1_i32, %bad[%c0] : (i32, memref<1xi32>) -> i32
            }
          }
        }
        gpu.barrier
      }
      gpu.return
    }
  }

  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c37 = arith.constant 37 : index
    %c63 = arith.constant 63 : index
    %c128 = arith.constant 128 : index
    %z = arith.constant 0 : i32
    %h = memref.alloc() : memref<2x64x32xf32>
    %hb = memref.alloc() : memref<1xi32>
    memref.store %z, %hb[%c0] : memref<1xi32>
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<2x64x32xf32>
    %db, %t2 = gpu.alloc async [%t1] () : memref<1xi32>
    %t3 = gpu.memcpy async [%t2] %db, %hb : memref<1xi32>, memref<1xi32>
    %t4 = gpu.launch_func async [%t3] @kernels::@wgmma
        blocks in (%c1, %c1, %c1) threads in (%c128, %c1, %c1)
        args(%d : memref<2x64x32xf32>, %db : memref<1xi32>)
    %t5 = gpu.memcpy async [%t4] %h, %d : memref<2x64x32xf32>, memref<2x64x32xf32>
    %t6 = gpu.memcpy async [%t5] %hb, %db : memref<1xi32>, memref<1xi32>
    %t7 = gpu.dealloc async [%t6] %d : memref<2x64x32xf32>
    %t8 = gpu.dealloc async [%t7] %db : memref<1xi32>
    gpu.wait [%t8]
    %bad = memref.load %hb[%c0] : memref<1xi32>
    vector.print str "mismatches: "
    vector.print %bad : i32
    scf.for %l = %c0 to %c2 step %c1 {
      scf.for %which = %c0 to %c3 step %c1 {
        %is0 = arith.cmpi eq, %which, %c0 : index
        %is1 = arith.cmpi eq, %which, %c1 : index
        %r01 = arith.select %is1, %c37, %c63 : index
        %r = arith.select %is0, %c0, %r01 : index
        %row = memref.subview %h[%l, %r, 0] [1, 1, 32] [1, 1, 1]
            : memref<2x64x32xf32> to memref<32xf32, strided<[1], offset: ?>>
        %u = memref.cast %row : memref<32xf32, strided<[1], offset: ?>> to memref<*xf32>
        func.call @printMemrefF32(%u) : (memref<*xf32>) -> ()
      }
    }
    memref.dealloc %h : memref<2x64x32xf32>
    memref.dealloc %hb : memref<1xi32>
    return
  }
  func.func private @printMemrefF32(memref<*xf32>)
}
