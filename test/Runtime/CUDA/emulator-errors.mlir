// Kernels that are wrong on a GPU stop the SIMT emulator with one line that
// names the kernel, the block and the threads, instead of a result: a lane
// that exits before a warp-wide operation naming it, a shuffle whose mask
// leaves out the lane that runs it, and a deadlock between a barrier and a
// shuffle.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %s --moe-gpu-emulation-pipeline -o %t/host.mlir
// RUN: not --crash mlir-runner %t/host.mlir -e exited -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=EXITED
// RUN: not --crash mlir-runner %t/host.mlir -e own_lane -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=OWN-LANE
// RUN: not --crash mlir-runner %t/host.mlir -e deadlock -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=DEADLOCK

// EXITED: moe cuda emulator: kernel kernels::exited, block (1, 0, 0): thread 1 is at shfl.sync with thread 0 in its mask, which has exited
// OWN-LANE: moe cuda emulator: kernel kernels::own_lane, block (0, 0, 0): thread 8 runs shfl.sync with mask 0x000000ff, which does not name its own lane (undefined in PTX)
// DEADLOCK: moe cuda emulator: kernel kernels::deadlock, block (0, 0, 0): deadlock: threads 0-15 at shfl.sync (mask 0xffffffff); threads 16-31 at a barrier

module attributes {gpu.container_module} {
  gpu.module @kernels {
    // Block 1's thread 0 returns before the warp's shuffle.
    gpu.func @exited(%out: memref<32xf32>) kernel {
      %t = gpu.thread_id x
      %b = gpu.block_id x
      %c0 = arith.constant 0 : index
      %c1 = arith.constant 1 : index
      %first = arith.cmpi eq, %t, %c0 : index
      %second = arith.cmpi eq, %b, %c1 : index
      %leave = arith.andi %first, %second : i1
      cf.cond_br %leave, ^exit, ^work
    ^work:
      %v = arith.constant 1.0 : f32
      %i1 = arith.constant 1 : i32
      %i32 = arith.constant 32 : i32
      %s, %p = gpu.shuffle xor %v, %i1, %i32 : f32
      memref.store %s, %out[%t] : memref<32xf32>
      gpu.return
    ^exit:
      gpu.return
    }

    // gpu.shuffle with a width of 8 names lanes 0-7 only.
    gpu.func @own_lane(%out: memref<32xf32>) kernel {
      %t = gpu.thread_id x
      %v = arith.constant 1.0 : f32
      %i1 = arith.constant 1 : i32
      %i8 = arith.constant 8 : i32
      %s, %p = gpu.shuffle xor %v, %i1, %i8 : f32
      memref.store %s, %out[%t] : memref<32xf32>
      gpu.return
    }

    // Lanes 0-15 shuffle while lanes 16-31 wait at a barrier.
    gpu.func @deadlock(%out: memref<32xf32>) kernel {
      %t = gpu.thread_id x
      %c16 = arith.constant 16 : index
      %low = arith.cmpi ult, %t, %c16 : index
      %v = arith.constant 1.0 : f32
      scf.if %low {
        %i1 = arith.constant 1 : i32
        %i32 = arith.constant 32 : i32
        %s, %p = gpu.shuffle xor %v, %i1, %i32 : f32
        memref.store %s, %out[%t] : memref<32xf32>
      } else {
        gpu.barrier
        memref.store %v, %out[%t] : memref<32xf32>
      }
      gpu.return
    }
  }

  func.func @exited() {
    %c1 = arith.constant 1 : index
    %blocks = arith.constant 2 : index
    %c32 = arith.constant 32 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@exited
        blocks in (%blocks, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
  func.func @own_lane() {
    %c1 = arith.constant 1 : index
    %blocks = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@own_lane
        blocks in (%blocks, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
  func.func @deadlock() {
    %c1 = arith.constant 1 : index
    %blocks = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@deadlock
        blocks in (%blocks, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
}
