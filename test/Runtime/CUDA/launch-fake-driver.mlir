// Host code from MLIR 22's GPU pipeline, run by mlir-runner on the runtime
// and a stand-in driver that logs its calls (Inputs/fake_libcuda.c): the
// signatures MLIR declares and the ones the runtime defines agree. The
// kernel does not run; the memset and the copy do.
// RUN: rm -rf %t && mkdir -p %t/fake
// RUN: %cc -shared -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-format-zero-length -Werror \
// RUN:   %S/Inputs/fake_libcuda.c -o %t/fake/libcuda.so.1
// RUN: mlir-opt %s --gpu-kernel-outlining \
// RUN:   "--gpu-lower-to-nvvm-pipeline=cubin-chip=sm_80 cubin-features=+ptx70 cubin-format=isa" \
// RUN: | env LD_LIBRARY_PATH=%t/fake mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%moe_lib_dir/libmoe_cuda_runtime%shlibext \
// RUN: | FileCheck %s

// The module is compiled from PTX by a global constructor.
// CHECK:      cuda: cuModuleLoadDataEx(.target sm_80, O2, log 8192 bytes)
// CHECK-NEXT: cuda: cuModuleGetGlobal_v2(moe_dependent_launch: not found)
// CHECK-NEXT: cuda: cuStreamCreate(flags 1)
// CHECK-NEXT: cuda: cuMemPoolCreate(type 1, handles 0, location 1 device 0, max 0)
// CHECK-NEXT: cuda: cuMemPoolSetAttribute(the pool, attribute 4, 18446744073709551615)
// CHECK-NEXT: cuda: cuMemAllocFromPoolAsync(32)
// 2.5f, 8 elements:
// CHECK-NEXT: cuda: cuMemsetD32Async(0x40200000, 8)
// CHECK-NEXT: cuda: cuModuleGetFunction(main_kernel)
// CHECK-NEXT: cuda: cuLaunchKernel(main_kernel, grid 2x1x1, block 4x1x1, smem 0, a stream)
// CHECK-NEXT: cuda: cuMemcpyAsync(32)
// CHECK-NEXT: cuda: cuMemFreeAsync()
// CHECK-NEXT: cuda: cuStreamSynchronize()
// CHECK-NEXT: cuda: cuStreamDestroy_v2()
// CHECK:      [2.5,  2.5,  2.5,  2.5,  2.5,  2.5,  2.5,  2.5]
// And unloaded by a global destructor.
// CHECK-NEXT: cuda: cuModuleUnload()

module attributes {gpu.container_module} {
  func.func @main() {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %v = arith.constant 2.5 : f32
    %h = memref.alloc() : memref<8xf32>
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<8xf32>
    %t2 = gpu.memset async [%t1] %d, %v : memref<8xf32>, f32
    %t3 = gpu.launch async [%t2]
        blocks(%bx, %by, %bz) in (%gx = %c2, %gy = %c1, %gz = %c1)
        threads(%tx, %ty, %tz) in (%sx = %c4, %sy = %c1, %sz = %c1) {
      %base = arith.muli %bx, %c4 : index
      %i = arith.addi %base, %tx : index
      %x = memref.load %d[%i] : memref<8xf32>
      %y = arith.addf %x, %x : f32
      memref.store %y, %d[%i] : memref<8xf32>
      gpu.terminator
    }
    %t4 = gpu.memcpy async [%t3] %h, %d : memref<8xf32>, memref<8xf32>
    %t5 = gpu.dealloc async [%t4] %d : memref<8xf32>
    gpu.wait [%t5]
    %u = memref.cast %h : memref<8xf32> to memref<*xf32>
    call @printMemrefF32(%u) : (memref<*xf32>) -> ()
    memref.dealloc %h : memref<8xf32>
    return
  }
  func.func private @printMemrefF32(memref<*xf32>)
}
