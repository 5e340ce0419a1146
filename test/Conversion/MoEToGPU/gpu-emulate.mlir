// RUN: moe-opt %s --moe-gpu-emulation-pipeline | FileCheck %s
// RUN: moe-opt %s --moe-gpu-emulation-pipeline --mlir-print-ir-after=moe-gpu-emulate 2>&1 >/dev/null \
// RUN: | FileCheck %s --check-prefix=NO-GPU

// moe-gpu-emulate: the kernel moves into the host module, its shared memory
// comes from the emulator, its NVVM operations become emulator calls and
// libdevice's expf the C library's; the launch packs its arguments as
// cuLaunchKernel takes them and calls the emulator with the kernel's entry,
// its name, the grid, the block, 256 bytes of static shared memory and none
// dynamic, the stream, the 6 argument pointers and the 48 bytes they point
// into (for a stream capture to copy). Every access to shared memory is
// checked by the emulator first.

// CHECK:      llvm.mlir.global internal constant @kernels__scale__launch__name("kernels::scale\00")
// CHECK-LABEL: llvm.func @run(
// CHECK-DAG:    %[[NAME:.*]] = llvm.mlir.addressof @kernels__scale__launch__name
// CHECK-DAG:    %[[ENTRY:.*]] = llvm.mlir.addressof @kernels__scale__launch :
// CHECK-DAG:    %[[SHARED:.*]] = llvm.mlir.constant(256 : i64) : i64
// CHECK-DAG:    %[[NODYNAMIC:.*]] = llvm.mlir.constant(0 : i64) : i64
// CHECK-DAG:    %[[COUNT:.*]] = llvm.mlir.constant(6 : i64) : i64
// CHECK-DAG:    %[[BYTES:.*]] = llvm.mlir.constant(48 : i64) : i64
// CHECK-DAG:    %[[THREADS:.*]] = llvm.mlir.constant(64 : index) : i64
// CHECK-DAG:    %[[ONE:.*]] = llvm.mlir.constant(1 : index) : i64
// CHECK:        %[[VALUES:.*]] = llvm.alloca %{{.*}} x !llvm.struct<(ptr, ptr, i64, i64, i64, f32)>
// CHECK:        %[[PARAMS:.*]] = llvm.alloca %{{.*}} x !llvm.array<6 x ptr>
// CHECK:        %[[STREAM:.*]] = llvm.call @mgpuStreamCreate()
// CHECK-COUNT-6: llvm.store %{{.*}}, %{{.*}} : !llvm.ptr, !llvm.ptr
// CHECK:        llvm.call @moe_emu_launch(%[[ENTRY]], %[[NAME]], %[[ONE]], %[[ONE]], %[[ONE]], %[[THREADS]], %[[ONE]], %[[ONE]], %[[SHARED]], %[[NODYNAMIC]], %[[STREAM]], %[[PARAMS]], %[[COUNT]], %[[VALUES]], %[[BYTES]])
// CHECK:        llvm.call @mgpuStreamSynchronize(%[[STREAM]])

// CHECK:       llvm.func @expf(f32) -> f32
// CHECK-LABEL: llvm.func @kernels__scale(
// CHECK-NOT:     nvvm.
// CHECK:         llvm.call @moe_emu_shared()
// CHECK:         llvm.call @moe_emu_sreg(%{{.*}}) : (i32) -> i32
// CHECK:         llvm.call @expf(
// CHECK:         llvm.call @moe_emu_shared_access(%{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i32) -> ()
// CHECK-NEXT:    llvm.store
// CHECK:         llvm.call @moe_emu_barrier()
// CHECK:         llvm.call @moe_emu_shared_access(%{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, i64, i32) -> ()
// CHECK-NEXT:    llvm.load
// CHECK:         llvm.call @moe_emu_shfl(
// CHECK-NOT:     nvvm.
// CHECK:         llvm.return

// The entry loads each argument through its pointer.
// CHECK-LABEL: llvm.func @kernels__scale__launch(%{{.*}}: !llvm.ptr) {
// CHECK:         llvm.call @kernels__scale(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : (!llvm.ptr, !llvm.ptr, i64, i64, i64, f32) -> ()

// Nothing of the GPU dialects or address spaces is left.
// NO-GPU:     IR Dump After MoEGPUEmulate
// NO-GPU-NOT: gpu.
// NO-GPU-NOT: nvvm.
// NO-GPU-NOT: !llvm.ptr<

module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @scale(%x: memref<64xf32>, %s: f32)
        workgroup(%tile: memref<64xf32, #gpu.address_space<workgroup>>) kernel {
      %t = gpu.thread_id x
      %v = memref.load %x[%t] : memref<64xf32>
      %e = math.exp %v : f32
      memref.store %e, %tile[%t] : memref<64xf32, #gpu.address_space<workgroup>>
      gpu.barrier
      %c63 = arith.constant 63 : index
      %r = arith.subi %c63, %t : index
      %w = memref.load %tile[%r] : memref<64xf32, #gpu.address_space<workgroup>>
      %i1 = arith.constant 1 : i32
      %i32 = arith.constant 32 : i32
      %y, %p = gpu.shuffle xor %w, %i1, %i32 : f32
      %z = arith.mulf %y, %s : f32
      memref.store %z, %x[%t] : memref<64xf32>
      gpu.return
    }
  }
  func.func @run(%x: memref<64xf32>, %s: f32) {
    %c1 = arith.constant 1 : index
    %c64 = arith.constant 64 : index
    %t0 = gpu.wait async
    %t1 = gpu.launch_func async [%t0] @kernels::@scale
        blocks in (%c1, %c1, %c1) threads in (%c64, %c1, %c1)
        args(%x : memref<64xf32>, %s : f32)
    gpu.wait [%t1]
    return
  }
}
