// wgmma.mma_async that is wrong on a GPU stops the SIMT emulator with one
// line naming the kernel and the block: a wgmma with no wgmma.fence before
// it, shared memory written while a wgmma that no wgmma.wait_group has
// covered may still read it, a block that is not whole warpgroups, and a
// descriptor the emulator does not model (64-byte swizzling). Waiting
// before the write is no error.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %s --moe-gpu-emulation-pipeline -o %t/host.mlir
// RUN: not --crash mlir-runner %t/host.mlir -e no_fence -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=FENCE
// RUN: not --crash mlir-runner %t/host.mlir -e no_wait -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=NO-WAIT
// RUN: not --crash mlir-runner %t/host.mlir -e half_warpgroup -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=HALF
// RUN: not --crash mlir-runner %t/host.mlir -e swizzle64 -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=SWIZZLE
// RUN: mlir-runner %t/host.mlir -e waited -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext

// FENCE: moe cuda emulator: kernel kernels::wgmma, block (0, 0, 0): thread {{[0-9]+}}: wgmma.mma_async with no wgmma.fence before it
// NO-WAIT: moe cuda emulator: kernel kernels::wgmma, block (0, 0, 0): thread 0 writes shared offset 0, which a wgmma.mma_async may still be reading (no wgmma.wait_group of its warpgroup covers it)
// HALF: moe cuda emulator: kernel kernels::wgmma, block (0, 0, 0): wgmma.mma_async in a block of 64 threads, not whole warpgroups of 128
// SWIZZLE: moe cuda emulator: kernel kernels::wgmma, block (0, 0, 0): wgmma A descriptor 0x800000100008{{[0-9a-f]+}}: only 128-byte swizzling or none is emulated

!acc = !llvm.struct<(f32, f32, f32, f32)>

module attributes {gpu.container_module} {
  gpu.module @kernels [#nvvm.target<chip = "sm_90a", features = "+ptx80">] {
    // D = A B (m64n8k16) with A at shared offset 0 and B at 2048, in core
    // matrices (leading byte offset 128, stride byte offset 256) or, with
    // %mode 2, a 64-byte swizzled A. %fence: a wgmma.fence first; %wait:
    // a wgmma.wait_group 0 before thread 0 clears A's first byte.
    gpu.func @wgmma(%out: memref<128xf32>, %fence: i1, %wait: i1, %mode: i64)
        workgroup(%smem: memref<4096xi8, #gpu.address_space<workgroup>>)
        kernel {
      %c0 = arith.constant 0 : index
      %c128 = arith.constant 128 : index
      %c4096 = arith.constant 4096 : index
      %c2048 = arith.constant 2048 : index
      %one = arith.constant 1 : i8
      %zero = arith.constant 0 : i8
      %t = gpu.thread_id x
      %n = gpu.block_dim x
      scf.for %i = %t to %c4096 step %n {
        memref.store %one, %smem[%i] : memref<4096xi8, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      %base = memref.extract_aligned_pointer_as_index %smem
          : memref<4096xi8, #gpu.address_space<workgroup>> -> index
      %bbase = arith.addi %base, %c2048 : index
      %a = arith.index_cast %base : index to i64
      %b = arith.index_cast %bbase : index to i64
      %mask = arith.constant 262143 : i64
      %c4 = arith.constant 4 : i64
      %c62 = arith.constant 62 : i64
      // LBO 128 / 16 at bit 16, SBO 256 / 16 at bit 32.
      %fields = arith.constant 68719476736 : i64
      %lbo = arith.constant 524288 : i64
      %am = arith.andi %a, %mask : i64
      %a4 = arith.shrui %am, %c4 : i64
      %bm = arith.andi %b, %mask : i64
      %b4 = arith.shrui %bm, %c4 : i64
      %swz = arith.shli %mode, %c62 : i64
      %da0 = arith.ori %a4, %fields : i64
      %da1 = arith.ori %da0, %lbo : i64
      %da = arith.ori %da1, %swz : i64
      %db0 = arith.ori %b4, %fields : i64
      %db = arith.ori %db0, %lbo : i64
      scf.if %fence {
        nvvm.wgmma.fence.aligned
      }
      %z = llvm.mlir.zero : !acc
      %d = nvvm.wgmma.mma_async %da, %db, %z, #nvvm.shape<m = 64, n = 8, k = 16>,
          D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
          : !acc -> !acc
      nvvm.wgmma.commit.group.sync.aligned
      scf.if %wait {
        nvvm.wgmma.wait.group.sync.aligned 0
      }
      gpu.barrier
      %first = arith.cmpi eq, %t, %c0 : index
      scf.if %first {
        memref.store %zero, %smem[%c0] : memref<4096xi8, #gpu.address_space<workgroup>>
      }
      nvvm.wgmma.wait.group.sync.aligned 0
      %v = llvm.extractvalue %d[0] : !acc
      memref.store %v, %out[%t] : memref<128xf32>
      gpu.return
    }
  }

  func.func @run(%threads: index, %fence: i1, %wait: i1, %mode: i64) {
    %c1 = arith.constant 1 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<128xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@wgmma
        blocks in (%c1, %c1, %c1) threads in (%threads, %c1, %c1)
        args(%d : memref<128xf32>, %fence : i1, %wait : i1, %mode : i64)
    %t3 = gpu.dealloc async [%t2] %d : memref<128xf32>
    gpu.wait [%t3]
    return
  }
  func.func @no_fence() {
    %c128 = arith.constant 128 : index
    %f = arith.constant false
    %t = arith.constant true
    %m = arith.constant 0 : i64
    call @run(%c128, %f, %t, %m) : (index, i1, i1, i64) -> ()
    return
  }
  func.func @no_wait() {
    %c128 = arith.constant 128 : index
    %f = arith.constant false
    %t = arith.constant true
    %m = arith.constant 0 : i64
    call @run(%c128, %t, %f, %m) : (index, i1, i1, i64) -> ()
    return
  }
  func.func @half_warpgroup() {
    %c64 = arith.constant 64 : index
    %t = arith.constant true
    %m = arith.constant 0 : i64
    call @run(%c64, %t, %t, %m) : (index, i1, i1, i64) -> ()
    return
  }
  func.func @swizzle64() {
    %c128 = arith.constant 128 : index
    %t = arith.constant true
    %m = arith.constant 2 : i64
    call @run(%c128, %t, %t, %m) : (index, i1, i1, i64) -> ()
    return
  }
  func.func @waited() {
    %c128 = arith.constant 128 : index
    %t = arith.constant true
    %m = arith.constant 0 : i64
    call @run(%c128, %t, %t, %m) : (index, i1, i1, i64) -> ()
    return
  }
}
