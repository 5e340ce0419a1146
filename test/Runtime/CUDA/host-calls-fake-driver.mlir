// More of the host calls MLIR 22 emits, from a fatbin: events joining two
// streams, an f16 memset, host registration, a cluster launch and the
// default device. Run on a stand-in driver that logs its calls.
// REQUIRES: ptxas
// RUN: rm -rf %t && mkdir -p %t/fake
// RUN: %cc -shared -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-format-zero-length -Werror \
// RUN:   %S/Inputs/fake_libcuda.c -o %t/fake/libcuda.so.1
// RUN: mlir-opt %s --gpu-kernel-outlining \
// RUN:   "--gpu-lower-to-nvvm-pipeline=cubin-chip=sm_90 cubin-features=+ptx80 cubin-format=fatbin" \
// RUN: | env LD_LIBRARY_PATH=%t/fake mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%moe_lib_dir/libmoe_cuda_runtime%shlibext \
// RUN: | FileCheck %s

// MLIR's own lowering does not mark the module (moe-gpu-dependent-launch):
// its kernels are never launched to overlap the kernel before them.
// CHECK:      cuda: cuModuleLoadData(fatbin)
// CHECK-NEXT: cuda: cuModuleGetGlobal_v2(moe_dependent_launch: not found)
// CHECK-NEXT: cuda: cuStreamCreate(flags 1)
// CHECK-NEXT: cuda: cuStreamCreate(flags 1)
// CHECK-NEXT: cuda: cuMemPoolCreate(type 1, handles 0, location 1 device 0, max 0)
// CHECK-NEXT: cuda: cuMemPoolSetAttribute(the pool, attribute 4, 18446744073709551615)
// CHECK-NEXT: cuda: cuMemAllocFromPoolAsync(16)
// CHECK-NEXT: cuda: cuEventCreate(flags 2)
// CHECK-NEXT: cuda: cuEventRecord()
// CHECK-NEXT: cuda: cuMemAllocFromPoolAsync(8)
// CHECK-NEXT: cuda: cuMemsetD16Async(0x3c00, 4)
// CHECK-NEXT: cuda: cuEventCreate(flags 2)
// CHECK-NEXT: cuda: cuEventRecord()
// CHECK-NEXT: cuda: cuStreamCreate(flags 1)
// CHECK-NEXT: cuda: cuStreamWaitEvent(flags 0)
// CHECK-NEXT: cuda: cuStreamWaitEvent(flags 0)
// CHECK-NEXT: cuda: cuEventDestroy_v2()
// CHECK-NEXT: cuda: cuEventDestroy_v2()
// CHECK-NEXT: cuda: cuModuleGetFunction(main_kernel)
// The grid counts blocks: one cluster of two here.
// CHECK-NEXT: cuda: cuLaunchKernelEx(main_kernel, grid 2x1x1, block 32x1x1, cluster 2x1x1, attribute 5 = 1)
// CHECK-NEXT: cuda: cuMemFreeAsync()
// CHECK-NEXT: cuda: cuMemFreeAsync()
// CHECK-NEXT: cuda: cuStreamSynchronize()
// CHECK-NEXT: cuda: cuStreamDestroy_v2()
// A 2x3 f32 memref spans 24 bytes.
// CHECK-NEXT: cuda: cuMemHostRegister_v2(24, flags 0)
// CHECK-NEXT: cuda: cuMemHostUnregister()
// CHECK-NEXT: cuda: cuModuleUnload()

module attributes {gpu.container_module} {
  func.func @main() {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c32 = arith.constant 32 : index
    %one = arith.constant 1.0 : f16
    %a0 = gpu.wait async
    %b0 = gpu.wait async
    %x, %a1 = gpu.alloc async [%a0] () : memref<4xf32>
    %y, %b1 = gpu.alloc async [%b0] () : memref<4xf16>
    %b2 = gpu.memset async [%b1] %y, %one : memref<4xf16>, f16
    %j = gpu.wait async [%a1, %b2]
    %t = gpu.launch async [%j] clusters(%cx, %cy, %cz) in (%ncx = %c2, %ncy = %c1, %ncz = %c1)
        blocks(%bx, %by, %bz) in (%gx = %c2, %gy = %c1, %gz = %c1)
        threads(%tx, %ty, %tz) in (%sx = %c32, %sy = %c1, %sz = %c1) {
      gpu.terminator
    }
    %t1 = gpu.dealloc async [%t] %x : memref<4xf32>
    %t2 = gpu.dealloc async [%t1] %y : memref<4xf16>
    gpu.wait [%t2]
    %h = memref.alloc() : memref<2x3xf32>
    %u = memref.cast %h : memref<2x3xf32> to memref<*xf32>
    gpu.host_register %u : memref<*xf32>
    gpu.host_unregister %u : memref<*xf32>
    memref.dealloc %h : memref<2x3xf32>
    return
  }
}
