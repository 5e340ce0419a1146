// A program compiled ahead of time from MLIR 22's GPU pipeline and linked
// with the runtime starts without a GPU driver: libcuda.so.1 is opened only
// when the module-loading global constructor runs. With the stand-in driver
// it runs to the end, the module unloaded by a global destructor after
// main returns; without a usable driver the module loads return NULL (the
// program starts: a library loaded by it must not end it) and the first
// GPU operation stops it with one line.
// RUN: rm -rf %t && mkdir -p %t/fake
// RUN: %cc -shared -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-format-zero-length -Werror \
// RUN:   %S/Inputs/fake_libcuda.c -o %t/fake/libcuda.so.1
// RUN: mlir-opt %s --gpu-kernel-outlining \
// RUN:   "--gpu-lower-to-nvvm-pipeline=cubin-chip=sm_80 cubin-features=+ptx70 cubin-format=isa" \
// RUN: | mlir-translate --mlir-to-llvmir -o %t/program.ll
// RUN: llc -O2 -filetype=obj -relocation-model=pic %t/program.ll -o %t/program.o
// RUN: %cc %t/program.o -L%moe_lib_dir -lmoe_cuda_runtime -Wl,-rpath,%moe_lib_dir -o %t/program
// RUN: env LD_LIBRARY_PATH=%t/fake %t/program | FileCheck %s
// RUN: env LD_LIBRARY_PATH=%t/fake FAKE_CUDA_VERSION=11020 not --crash %t/program 2>&1 \
// RUN:   | FileCheck %s --check-prefix=OLD

// CHECK:      cuda: cuModuleLoadDataEx(.target sm_80, O2, log 8192 bytes)
// CHECK-NEXT: cuda: cuModuleGetGlobal_v2(moe_dependent_launch: not found)
// CHECK-NEXT: cuda: cuStreamCreate(flags 1)
// CHECK-NEXT: cuda: cuMemPoolCreate(type 1, handles 0, location 1 device 0, max 0)
// CHECK-NEXT: cuda: cuMemPoolSetAttribute(the pool, attribute 4, 18446744073709551615)
// CHECK-NEXT: cuda: cuMemAllocFromPoolAsync(64)
// CHECK-NEXT: cuda: cuMemsetD32Async(0x3f800000, 16)
// CHECK-NEXT: cuda: cuModuleGetFunction(main_kernel)
// CHECK-NEXT: cuda: cuLaunchKernel(main_kernel, grid 1x1x1, block 16x1x1, smem 0, a stream)
// CHECK-NEXT: cuda: cuMemFreeAsync()
// CHECK-NEXT: cuda: cuStreamSynchronize()
// CHECK-NEXT: cuda: cuStreamDestroy_v2()
// CHECK-NEXT: cuda: cuModuleUnload()

// OLD: moe cuda runtime: mgpuStreamCreate failed: no usable CUDA GPU: driver too old: needs CUDA 12.0+, has 11.2

module attributes {gpu.container_module} {
  func.func @main() -> i32 {
    %c0 = arith.constant 0 : i32
    %c1 = arith.constant 1 : index
    %c16 = arith.constant 16 : index
    %v = arith.constant 1.0 : f32
    %t0 = gpu.wait async
    %d, %t1 = gpu.alloc async [%t0] () : memref<16xf32>
    %t2 = gpu.memset async [%t1] %d, %v : memref<16xf32>, f32
    %t3 = gpu.launch async [%t2]
        blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
        threads(%tx, %ty, %tz) in (%sx = %c16, %sy = %c1, %sz = %c1) {
      %x = memref.load %d[%tx] : memref<16xf32>
      %y = arith.addf %x, %x : f32
      memref.store %y, %d[%tx] : memref<16xf32>
      gpu.terminator
    }
    %t4 = gpu.dealloc async [%t3] %d : memref<16xf32>
    gpu.wait [%t4]
    return %c0 : i32
  }
}
