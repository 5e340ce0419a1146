// Kernels that are wrong on a GPU stop the SIMT emulator with one line that
// names the kernel, the block and the threads, instead of a result: a lane
// that exits before a warp-wide operation naming it, a shuffle whose mask
// leaves out the lane that runs it, a deadlock between a barrier and a
// shuffle, a race on shared memory, a shared access out of bounds, a read
// past the end of a device allocation, and a read of shared memory that a
// cp.async no wait has covered may still be writing. A
// warp that exchanges values through shared memory with a warp sync in
// between is no race.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %s --moe-gpu-emulation-pipeline -o %t/host.mlir
// RUN: not --crash mlir-runner %t/host.mlir -e exited -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=EXITED
// RUN: not --crash mlir-runner %t/host.mlir -e own_lane -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=OWN-LANE
// RUN: not --crash mlir-runner %t/host.mlir -e partial_warp -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=PARTIAL
// RUN: not --crash mlir-runner %t/host.mlir -e deadlock -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=DEADLOCK
// RUN: not --crash mlir-runner %t/host.mlir -e race -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=RACE
// RUN: not --crash mlir-runner %t/host.mlir -e out_of_bounds -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=BOUNDS
// RUN: not --crash mlir-runner %t/host.mlir -e global_out_of_bounds -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=GLOBAL
// RUN: not --crash mlir-runner %t/host.mlir -e no_wait -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext 2>&1 \
// RUN: | FileCheck %s --check-prefix=NO-WAIT
// RUN: mlir-runner %t/host.mlir -e warp_exchange -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_emulator%shlibext

// EXITED: moe cuda emulator: kernel kernels::exited, block (1, 0, 0): thread 1 is at shfl.sync with thread 0 in its mask, which has exited
// OWN-LANE: moe cuda emulator: kernel kernels::own_lane, block (0, 0, 0): thread 8 runs shfl.sync with mask 0x000000ff, which does not name its own lane (undefined in PTX)
// PARTIAL: moe cuda emulator: kernel kernels::partial_warp, block (0, 0, 0): shfl.sync names lane 16 of warp 0, which the block does not have
// DEADLOCK: moe cuda emulator: kernel kernels::deadlock, block (0, 0, 0): deadlock: threads 0-15 at shfl.sync (mask 0xffffffff); threads 16-31 at a barrier

// RACE: moe cuda emulator: kernel kernels::race, block (0, 0, 0): shared-memory race at offset 128: thread 32 writes a byte that thread 0 read with no barrier (or warp-wide operation naming both) in between
// BOUNDS: moe cuda emulator: kernel kernels::out_of_bounds, block (0, 0, 0): thread 31 writes 4 bytes at shared offset 128, outside the block's 128 bytes of shared memory
// GLOBAL: moe cuda emulator: kernel kernels::global_out_of_bounds, block (0, 0, 0): thread 31 reads 4 bytes at 0x{{[0-9a-f]+}}, outside every live device allocation
// NO-WAIT: moe cuda emulator: kernel kernels::no_wait, block (0, 0, 0): thread 0 reads shared offset 0, which a cp.async of thread 0 may still be writing (no cp.async.wait_group covers it)

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

    // A block of 16 threads: a shuffle across the whole warp names lanes
    // 16-31, which the block does not have.
    gpu.func @partial_warp(%out: memref<32xf32>) kernel {
      %t = gpu.thread_id x
      %v = arith.constant 1.0 : f32
      %i1 = arith.constant 1 : i32
      %i32 = arith.constant 32 : i32
      %s, %p = gpu.shuffle xor %v, %i1, %i32 : f32
      memref.store %s, %out[%t] : memref<32xf32>
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

    // Thread t writes word t and reads word t + 32 (mod 64) without a
    // barrier: thread 32 reads what thread 0 wrote.
    gpu.func @race(%out: memref<32xf32>)
        workgroup(%s: memref<64xf32, #gpu.address_space<workgroup>>) kernel {
      %t = gpu.thread_id x
      %c32 = arith.constant 32 : index
      %c64 = arith.constant 64 : index
      %v = arith.constant 1.0 : f32
      memref.store %v, %s[%t] : memref<64xf32, #gpu.address_space<workgroup>>
      %u = arith.addi %t, %c32 : index
      %o = arith.remui %u, %c64 : index
      %w = memref.load %s[%o] : memref<64xf32, #gpu.address_space<workgroup>>
      %i = arith.remui %t, %c32 : index
      memref.store %w, %out[%i] : memref<32xf32>
      gpu.return
    }

    // Lane 31 writes one word past the end.
    gpu.func @out_of_bounds(%out: memref<32xf32>)
        workgroup(%s: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
      %t = gpu.thread_id x
      %c1 = arith.constant 1 : index
      %n = arith.addi %t, %c1 : index
      %v = arith.constant 1.0 : f32
      %p = memref.reinterpret_cast %s to offset: [0], sizes: [33], strides: [1]
          : memref<32xf32, #gpu.address_space<workgroup>>
            to memref<33xf32, #gpu.address_space<workgroup>>
      memref.store %v, %p[%n] : memref<33xf32, #gpu.address_space<workgroup>>
      gpu.return
    }

    // Thread t reads element t + 1 of a 32-element buffer.
    gpu.func @global_out_of_bounds(%out: memref<32xf32>) kernel {
      %t = gpu.thread_id x
      %c1 = arith.constant 1 : index
      %n = arith.addi %t, %c1 : index
      %p = memref.reinterpret_cast %out to offset: [0], sizes: [33], strides: [1]
          : memref<32xf32> to memref<33xf32>
      %v = memref.load %p[%n] : memref<33xf32>
      memref.store %v, %out[%t] : memref<32xf32>
      gpu.return
    }

    // Each thread copies one word into shared memory with cp.async, commits
    // the group, and reads the word without waiting for it.
    gpu.func @no_wait(%out: memref<32xf32>)
        workgroup(%s: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
      %t = gpu.thread_id x
      %copy = nvgpu.device_async_copy %out[%t], %s[%t], 1
          : memref<32xf32> to memref<32xf32, #gpu.address_space<workgroup>>
      %group = nvgpu.device_async_create_group %copy
      %v = memref.load %s[%t] : memref<32xf32, #gpu.address_space<workgroup>>
      memref.store %v, %out[%t] : memref<32xf32>
      gpu.return
    }

    // Lane l writes word l, syncs the warp, and reads word l ^ 1: no race.
    gpu.func @warp_exchange(%out: memref<32xf32>)
        workgroup(%s: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
      %t = gpu.thread_id x
      %c1 = arith.constant 1 : index
      %v = arith.constant 1.0 : f32
      memref.store %v, %s[%t] : memref<32xf32, #gpu.address_space<workgroup>>
      %full = arith.constant -1 : i32
      nvvm.bar.warp.sync %full : i32
      %o = arith.xori %t, %c1 : index
      %w = memref.load %s[%o] : memref<32xf32, #gpu.address_space<workgroup>>
      memref.store %w, %out[%t] : memref<32xf32>
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
  func.func @partial_warp() {
    %c1 = arith.constant 1 : index
    %c16 = arith.constant 16 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@partial_warp
        blocks in (%c1, %c1, %c1) threads in (%c16, %c1, %c1)
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
  func.func @race() {
    %c1 = arith.constant 1 : index
    %blocks = arith.constant 1 : index
    %threads = arith.constant 64 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@race
        blocks in (%blocks, %c1, %c1) threads in (%threads, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
  func.func @out_of_bounds() {
    %c1 = arith.constant 1 : index
    %blocks = arith.constant 1 : index
    %threads = arith.constant 32 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@out_of_bounds
        blocks in (%blocks, %c1, %c1) threads in (%threads, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
  func.func @warp_exchange() {
    %c1 = arith.constant 1 : index
    %blocks = arith.constant 1 : index
    %threads = arith.constant 32 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@warp_exchange
        blocks in (%blocks, %c1, %c1) threads in (%threads, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
  func.func @global_out_of_bounds() {
    %c1 = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@global_out_of_bounds
        blocks in (%c1, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
  func.func @no_wait() {
    %c1 = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<32xf32>
    %t2 = gpu.launch_func async [%t1] @kernels::@no_wait
        blocks in (%c1, %c1, %c1) threads in (%c32, %c1, %c1)
        args(%d : memref<32xf32>)
    %t3 = gpu.dealloc async [%t2] %d : memref<32xf32>
    gpu.wait [%t3]
    return
  }
}
