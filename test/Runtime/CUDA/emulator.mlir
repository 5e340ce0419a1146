// The SIMT emulator (runtime/cuda/Emulator.cpp) on kernels compiled by
// moe-gpu-emulation-pipeline, against values worked out by hand from the
// PTX ISA: warp shuffles in each mode and segment width, match.sync, a block
// barrier over shared memory, ldmatrix with and without .trans, and
// mma.sync m16n8k16 on bf16 fragments; and gpu.printf, whose lines come in
// the emulator's fixed order of blocks and threads.
// RUN: moe-opt %s --moe-gpu-emulation-pipeline \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%moe_lib_dir/libmoe_cuda_emulator%shlibext \
// RUN: | FileCheck %s

// CHECK:      block 0 thread 0: x = 0.500000, big = 4294967296, hex 0x0000002a, s = moe
// CHECK-NEXT: block 0 thread 1: x = 1.500000, big = 4294967297, hex 0x0000002a, s = moe
// CHECK-NEXT: block 1 thread 0: x = 10.500000, big = 4294967306, hex 0x0000002a, s = moe
// CHECK-NEXT: block 1 thread 1: x = 11.500000, big = 4294967307, hex 0x0000002a, s = moe

// Lane l holds 100 + l. xor 1; down 3 within segments of 8 (lanes past the
// segment keep their value); up 3 (lanes 0-2 keep theirs); idx 3 within
// segments of 8; match.any on l / 8.
// CHECK:      [101,   100,   103,   102,   105,   104,   107,   106,   109,   108,   111,   110,   113,   112,   115,   114,   117,   116,   119,   118,   121,   120,   123,   122,   125,   124,   127,   126,   129,   128,   131,   130],
// CHECK-NEXT: [103,   104,   105,   106,   107,   105,   106,   107,   111,   112,   113,   114,   115,   113,   114,   115,   119,   120,   121,   122,   123,   121,   122,   123,   127,   128,   129,   130,   131,   129,   130,   131],
// CHECK-NEXT: [100,   101,   102,   100,   101,   102,   103,   104,   105,   106,   107,   108,   109,   110,   111,   112,   113,   114,   115,   116,   117,   118,   119,   120,   121,   122,   123,   124,   125,   126,   127,   128],
// CHECK-NEXT: [103,   103,   103,   103,   103,   103,   103,   103,   111,   111,   111,   111,   111,   111,   111,   111,   119,   119,   119,   119,   119,   119,   119,   119,   127,   127,   127,   127,   127,   127,   127,   127],
// CHECK-NEXT: [255,   255,   255,   255,   255,   255,   255,   255,   65280,   65280,   65280,   65280,   65280,   65280,   65280,   65280,   16711680,   16711680,   16711680,   16711680,   16711680,   16711680,   16711680,   16711680,   -16777216,   -16777216,   -16777216,   -16777216,   -16777216,   -16777216,   -16777216,   -16777216]]

// Thread t writes t * t to shared memory and, after the barrier, reads
// thread 63 - t's.
// CHECK: [3969,  3844,  3721,  3600,  3481,  3364,  3249,  3136,  3025,  2916,  2809,  2704,  2601,  2500,  2401,  2304,  2209,  2116,  2025,  1936,  1849,  1764,  1681,  1600,  1521,  1444,  1369,  1296,  1225,  1156,  1089,  1024,  961,  900,  841,  784,  729,  676,  625,  576,  529,  484,  441,  400,  361,  324,  289,  256,  225,  196,  169,  144,  121,  100,  81,  64,  49,  36,  25,  16,  9,  4,  1,  0]

// D = A B with A[i][k] = (7 (16 i + k) mod 13) - 6 and
// B[k][n] = (5 (8 k + n) mod 11) - 5, B's fragments by ldmatrix from its
// transpose and by ldmatrix.trans from B itself.
// CHECK:      {{\[\[\[}}33,    16,    43,    -73,    31,    -52,    74,    13],
// CHECK-NEXT:   [-63,    -14,    -31,    62,    34,    -38,    11,    -39],
// CHECK-NEXT:   [62,    -31,    -14,    -63,    -2,    15,    65,    -39],
// CHECK-NEXT:   [-73,    43,    16,    33,    -38,    -10,    -37,    13],
// CHECK-NEXT:   [-52,    0,    -58,    38,    -9,    43,    -48,    26],
// CHECK-NEXT:   [99,    9,    -15,    -61,    -19,    -21,    32,    52],
// CHECK-NEXT:   [-10,    -34,    41,    61,    -29,    -20,    -44,    -13],
// CHECK-NEXT:   [102,    -64,    45,    -77,    65,    20,    -3,    -26],
// CHECK-NEXT:   [-59,    62,    62,    -59,    29,    -70,    51,    -26],
// CHECK-NEXT:   [-77,    45,    -64,    102,    -7,    -17,    -38,    -26],
// CHECK-NEXT:   [61,    41,    -34,    -10,    -30,    49,    29,    -13],
// CHECK-NEXT:   [-61,    -15,    9,    99,    -53,    37,    -60,    52],
// CHECK-NEXT:   [38,    -58,    0,    -52,    28,    64,    -32,    26],
// CHECK-NEXT:   [33,    16,    43,    -73,    31,    -52,    74,    13],
// CHECK-NEXT:   [-63,    -14,    -31,    62,    34,    -38,    11,    -39],
// CHECK-NEXT:   [62,    -31,    -14,    -63,    -2,    15,    65,    -39]],
// CHECK-NEXT:  {{\[\[}}33,    16,    43,    -73,    31,    -52,    74,    13],
// CHECK-NEXT:   [-63,    -14,    -31,    62,    34,    -38,    11,    -39],
// CHECK-NEXT:   [62,    -31,    -14,    -63,    -2,    15,    65,    -39],
// CHECK-NEXT:   [-73,    43,    16,    33,    -38,    -10,    -37,    13],
// CHECK-NEXT:   [-52,    0,    -58,    38,    -9,    43,    -48,    26],
// CHECK-NEXT:   [99,    9,    -15,    -61,    -19,    -21,    32,    52],
// CHECK-NEXT:   [-10,    -34,    41,    61,    -29,    -20,    -44,    -13],
// CHECK-NEXT:   [102,    -64,    45,    -77,    65,    20,    -3,    -26],
// CHECK-NEXT:   [-59,    62,    62,    -59,    29,    -70,    51,    -26],
// CHECK-NEXT:   [-77,    45,    -64,    102,    -7,    -17,    -38,    -26],
// CHECK-NEXT:   [61,    41,    -34,    -10,    -30,    49,    29,    -13],
// CHECK-NEXT:   [-61,    -15,    9,    99,    -53,    37,    -60,    52],
// CHECK-NEXT:   [38,    -58,    0,    -52,    28,    64,    -32,    26],
// CHECK-NEXT:   [33,    16,    43,    -73,    31,    -52,    74,    13],
// CHECK-NEXT:   [-63,    -14,    -31,    62,    34,    -38,    11,    -39],
// CHECK-NEXT:   [62,    -31,    -14,    -63,    -2,    15,    65,    -39]]]

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @hello() kernel {
      %t = gpu.thread_id x
      %b = gpu.block_id x
      %c10 = arith.constant 10 : index
      %bt = arith.muli %b, %c10 : index
      %n = arith.addi %bt, %t : index
      %ni = arith.index_cast %n : index to i64
      %bi = arith.index_cast %b : index to i32
      %ti = arith.index_cast %t : index to i32
      %nf = arith.uitofp %ni : i64 to f32
      %half = arith.constant 0.5 : f32
      %x = arith.addf %nf, %half : f32
      %two32 = arith.constant 4294967296 : i64
      %big = arith.addi %two32, %ni : i64
      %h = arith.constant 42 : i32
      gpu.printf "block %d thread %d: x = %f, big = %lld, hex 0x%08x, s = moe\n", %bi, %ti, %x, %big, %h : i32, i32, f32, i64, i32
      gpu.return
    }

    gpu.func @shuffles(%out: memref<5x32xi32>) kernel {
      %lane = gpu.thread_id x
      %l = arith.index_cast %lane : index to i32
      %c100 = arith.constant 100 : i32
      %v = arith.addi %l, %c100 : i32
      %i1 = arith.constant 1 : i32
      %i3 = arith.constant 3 : i32
      %i8 = arith.constant 8 : i32
      %i32 = arith.constant 32 : i32
      %full = arith.constant -1 : i32
      %x, %px = gpu.shuffle xor %v, %i1, %i32 : i32
      // Segments of 8 lanes: shfl.sync's clamp operand is
      // (32 - 8) << 8 | 31 (gpu.shuffle with a width below 32 names only
      // the first segment's lanes in its mask).
      %seg = arith.constant 6175 : i32
      %d = nvvm.shfl.sync down %full, %v, %i3, %seg : i32 -> i32
      %u, %pu = gpu.shuffle up %v, %i3, %i32 : i32
      %s = nvvm.shfl.sync idx %full, %v, %i3, %seg : i32 -> i32
      %key = arith.divui %l, %i8 : i32
      %m = nvvm.match.sync any %full, %key : i32 -> i32
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c3 = arith.constant 3 : index
      %c4 = arith.constant 4 : index
      memref.store %x, %out[%c0, %lane] : memref<5x32xi32>
      memref.store %d, %out[%c1, %lane] : memref<5x32xi32>
      memref.store %u, %out[%c2, %lane] : memref<5x32xi32>
      memref.store %s, %out[%c3, %lane] : memref<5x32xi32>
      memref.store %m, %out[%c4, %lane] : memref<5x32xi32>
      gpu.return
    }

    gpu.func @reverse(%out: memref<64xi32>)
        workgroup(%s: memref<64xi32, #gpu.address_space<workgroup>>) kernel {
      %t = gpu.thread_id x
      %ti = arith.index_cast %t : index to i32
      %sq = arith.muli %ti, %ti : i32
      memref.store %sq, %s[%t] : memref<64xi32, #gpu.address_space<workgroup>>
      gpu.barrier
      %c63 = arith.constant 63 : index
      %r = arith.subi %c63, %t : index
      %v = memref.load %s[%r] : memref<64xi32, #gpu.address_space<workgroup>>
      memref.store %v, %out[%t] : memref<64xi32>
      gpu.return
    }

    // One bf16 MMA from ldmatrix fragments: D[0] with B's fragment loaded
    // from its transpose, D[1] with ldmatrix.trans from B.
    gpu.func @mma(%out: memref<2x16x8xf32>)
        workgroup(%sa: memref<16x16xbf16, #gpu.address_space<workgroup>>,
                  %sb: memref<16x8xbf16, #gpu.address_space<workgroup>>,
                  %sbt: memref<8x16xbf16, #gpu.address_space<workgroup>>)
        kernel {
      %t = gpu.thread_id x
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %c2 = arith.constant 2 : index
      %c4 = arith.constant 4 : index
      %c8 = arith.constant 8 : index
      %c16 = arith.constant 16 : index
      %c32 = arith.constant 32 : index
      %c128 = arith.constant 128 : index
      %c256 = arith.constant 256 : index
      %i5 = arith.constant 5 : i32
      %i6 = arith.constant 6 : i32
      %i7 = arith.constant 7 : i32
      %i11 = arith.constant 11 : i32
      %i13 = arith.constant 13 : i32
      scf.for %e = %t to %c256 step %c32 {
        %i = arith.divui %e, %c16 : index
        %k = arith.remui %e, %c16 : index
        %ei = arith.index_cast %e : index to i32
        %p = arith.muli %ei, %i7 : i32
        %r = arith.remui %p, %i13 : i32
        %v = arith.subi %r, %i6 : i32
        %f = arith.sitofp %v : i32 to bf16
        memref.store %f, %sa[%i, %k] : memref<16x16xbf16, #gpu.address_space<workgroup>>
      }
      scf.for %e = %t to %c128 step %c32 {
        %k = arith.divui %e, %c8 : index
        %n = arith.remui %e, %c8 : index
        %ei = arith.index_cast %e : index to i32
        %p = arith.muli %ei, %i5 : i32
        %r = arith.remui %p, %i11 : i32
        %v = arith.subi %r, %i5 : i32
        %f = arith.sitofp %v : i32 to bf16
        memref.store %f, %sb[%k, %n] : memref<16x8xbf16, #gpu.address_space<workgroup>>
        memref.store %f, %sbt[%n, %k] : memref<8x16xbf16, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      // A: lanes 0-15 give rows 0-15 at column 0, lanes 16-31 at column 8.
      %ar = arith.remui %t, %c16 : index
      %ah = arith.divui %t, %c16 : index
      %ac = arith.muli %ah, %c8 : index
      %a = nvgpu.ldmatrix %sa[%ar, %ac] {numTiles = 4 : i32, transpose = false}
          : memref<16x16xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
      // B's transpose [n][k]: lanes 0-7 rows 0-7 at k 0, lanes 8-15 at k 8.
      %br = arith.remui %t, %c8 : index
      %bh = arith.divui %t, %c8 : index
      %bh2 = arith.remui %bh, %c2 : index
      %bc = arith.muli %bh2, %c8 : index
      %b0 = nvgpu.ldmatrix %sbt[%br, %bc] {numTiles = 2 : i32, transpose = false}
          : memref<8x16xbf16, #gpu.address_space<workgroup>> -> vector<2x2xbf16>
      // B [k][n] transposed on load: lanes 0-15 give rows k = 0-15.
      %b1 = nvgpu.ldmatrix %sb[%ar, %c0] {numTiles = 2 : i32, transpose = true}
          : memref<16x8xbf16, #gpu.address_space<workgroup>> -> vector<2x2xbf16>
      %g = arith.divui %t, %c4 : index
      %q = arith.remui %t, %c4 : index
      %col = arith.muli %q, %c2 : index
      %col1 = arith.addi %col, %c1 : index
      %g8 = arith.addi %g, %c8 : index
      %zero = arith.constant 0.0 : f32
      %a0v = vector.extract %a[0] : vector<2xbf16> from vector<4x2xbf16>
      %a1v = vector.extract %a[1] : vector<2xbf16> from vector<4x2xbf16>
      %a2v = vector.extract %a[2] : vector<2xbf16> from vector<4x2xbf16>
      %a3v = vector.extract %a[3] : vector<2xbf16> from vector<4x2xbf16>
      %a0c = vector.bitcast %a0v : vector<2xbf16> to vector<1xi32>
      %a1c = vector.bitcast %a1v : vector<2xbf16> to vector<1xi32>
      %a2c = vector.bitcast %a2v : vector<2xbf16> to vector<1xi32>
      %a3c = vector.bitcast %a3v : vector<2xbf16> to vector<1xi32>
      %a0 = vector.extract %a0c[0] : i32 from vector<1xi32>
      %a1 = vector.extract %a1c[0] : i32 from vector<1xi32>
      %a2 = vector.extract %a2c[0] : i32 from vector<1xi32>
      %a3 = vector.extract %a3c[0] : i32 from vector<1xi32>
      scf.for %which = %c0 to %c2 step %c1 {
        %is0 = arith.cmpi eq, %which, %c0 : index
        %b = arith.select %is0, %b0, %b1 : vector<2x2xbf16>
        %bv0 = vector.extract %b[0] : vector<2xbf16> from vector<2x2xbf16>
        %bv1 = vector.extract %b[1] : vector<2xbf16> from vector<2x2xbf16>
        %bc0 = vector.bitcast %bv0 : vector<2xbf16> to vector<1xi32>
        %bc1 = vector.bitcast %bv1 : vector<2xbf16> to vector<1xi32>
        %bw0 = vector.extract %bc0[0] : i32 from vector<1xi32>
        %bw1 = vector.extract %bc1[0] : i32 from vector<1xi32>
        %d = nvvm.mma.sync A[%a0, %a1, %a2, %a3] B[%bw0, %bw1]
            C[%zero, %zero, %zero, %zero]
            {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
             multiplicandAPtxType = #nvvm.mma_type<bf16>,
             multiplicandBPtxType = #nvvm.mma_type<bf16>,
             shape = #nvvm.shape<m = 16, n = 8, k = 16>}
            : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
        %d0 = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
        %d1 = llvm.extractvalue %d[1] : !llvm.struct<(f32, f32, f32, f32)>
        %d2 = llvm.extractvalue %d[2] : !llvm.struct<(f32, f32, f32, f32)>
        %d3 = llvm.extractvalue %d[3] : !llvm.struct<(f32, f32, f32, f32)>
        memref.store %d0, %out[%which, %g, %col] : memref<2x16x8xf32>
        memref.store %d1, %out[%which, %g, %col1] : memref<2x16x8xf32>
        memref.store %d2, %out[%which, %g8, %col] : memref<2x16x8xf32>
        memref.store %d3, %out[%which, %g8, %col1] : memref<2x16x8xf32>
      }
      gpu.return
    }
  }

  func.func @main() {
    %c1 = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    %c64 = arith.constant 64 : index
    %h1 = memref.alloc() : memref<5x32xi32>
    %h2 = memref.alloc() : memref<64xi32>
    %h3 = memref.alloc() : memref<2x16x8xf32>

    %c2 = arith.constant 2 : index
    %t00 = gpu.wait async
    %t0 = gpu.launch_func async [%t00] @kernels::@hello
        blocks in (%c2, %c1, %c1) threads in (%c2, %c1, %c1)
    %d1, %t1 = gpu.alloc async [%t0] () : memref<5x32xi32>
    %d2, %t2 = gpu.alloc async [%t1] () : memref<64xi32>
    %d3, %t3 = gpu.alloc async [%t2] () : memref<2x16x8xf32>
    %t4 = gpu.launch_func async [%t3] @kernels::@shuffles
        blocks in (%c1, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%d1 : memref<5x32xi32>)
    %t5 = gpu.launch_func async [%t4] @kernels::@reverse
        blocks in (%c1, %c1, %c1) threads in (%c64, %c1, %c1)
        args(%d2 : memref<64xi32>)
    %t6 = gpu.launch_func async [%t5] @kernels::@mma
        blocks in (%c1, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%d3 : memref<2x16x8xf32>)
    %t7 = gpu.memcpy async [%t6] %h1, %d1 : memref<5x32xi32>, memref<5x32xi32>
    %t8 = gpu.memcpy async [%t7] %h2, %d2 : memref<64xi32>, memref<64xi32>
    %t9 = gpu.memcpy async [%t8] %h3, %d3 : memref<2x16x8xf32>, memref<2x16x8xf32>
    %t10 = gpu.dealloc async [%t9] %d1 : memref<5x32xi32>
    %t11 = gpu.dealloc async [%t10] %d2 : memref<64xi32>
    %t12 = gpu.dealloc async [%t11] %d3 : memref<2x16x8xf32>
    gpu.wait [%t12]

    %u1 = memref.cast %h1 : memref<5x32xi32> to memref<*xi32>
    call @printMemrefI32(%u1) : (memref<*xi32>) -> ()
    %u2 = memref.cast %h2 : memref<64xi32> to memref<*xi32>
    call @printMemrefI32(%u2) : (memref<*xi32>) -> ()
    %u3 = memref.cast %h3 : memref<2x16x8xf32> to memref<*xf32>
    call @printMemrefF32(%u3) : (memref<*xf32>) -> ()
    memref.dealloc %h1 : memref<5x32xi32>
    memref.dealloc %h2 : memref<64xi32>
    memref.dealloc %h3 : memref<2x16x8xf32>
    return
  }
  func.func private @printMemrefI32(memref<*xi32>)
  func.func private @printMemrefF32(memref<*xf32>)
}
