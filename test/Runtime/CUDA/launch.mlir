// Runs host code from MLIR 22's GPU pipeline on the GPU, through the
// runtime: two streams joined by events, device and managed (host_shared)
// memory, memsets, a kernel compiled from PTX by the driver, a copy. Each
// element becomes 2 * 2.5 + i.
// REQUIRES: cuda-gpu
// RUN: mlir-opt %s --gpu-kernel-outlining \
// RUN:   "--gpu-lower-to-nvvm-pipeline=cubin-chip=sm_80 cubin-features=+ptx70 cubin-format=isa" \
// RUN: | mlir-runner -e main -entry-point-result=void \
// RUN:   -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%moe_lib_dir/libmoe_cuda_runtime%shlibext \
// RUN: | FileCheck %s

// The managed buffer, read by the host:
// CHECK: [5,  6,  7,  8,  9,  10,  11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36]
// The device buffer, copied back:
// CHECK: [5,  6,  7,  8,  9,  10,  11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36]

module attributes {gpu.container_module} {
  func.func @main() {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %two = arith.constant 2.0 : f32
    %fill = arith.constant 2.5 : f32
    %zero = arith.constant 0.0 : f32
    %shared = gpu.alloc host_shared () : memref<32xf32>
    %a0 = gpu.wait async
    %b0 = gpu.wait async
    %x, %a1 = gpu.alloc async [%a0] () : memref<32xf32>
    %a2 = gpu.memset async [%a1] %x, %fill : memref<32xf32>, f32
    %b1 = gpu.memset async [%b0] %shared, %zero : memref<32xf32>, f32
    %joined = gpu.wait async [%a2, %b1]
    %t0 = gpu.launch async [%joined]
        blocks(%bx, %by, %bz) in (%gx = %c4, %gy = %c1, %gz = %c1)
        threads(%tx, %ty, %tz) in (%sx = %c8, %sy = %c1, %sz = %c1) {
      %base = arith.muli %bx, %c8 : index
      %i = arith.addi %base, %tx : index
      %v = memref.load %x[%i] : memref<32xf32>
      %i32 = arith.index_cast %i : index to i32
      %fi = arith.sitofp %i32 : i32 to f32
      %twice = arith.mulf %v, %two : f32
      %y = arith.addf %twice, %fi : f32
      memref.store %y, %shared[%i] : memref<32xf32>
      memref.store %y, %x[%i] : memref<32xf32>
      gpu.terminator
    }
    %host = memref.alloc() : memref<32xf32>
    %t1 = gpu.memcpy async [%t0] %host, %x : memref<32xf32>, memref<32xf32>
    %t2 = gpu.dealloc async [%t1] %x : memref<32xf32>
    gpu.wait [%t2]
    %s = memref.cast %shared : memref<32xf32> to memref<*xf32>
    call @printMemrefF32(%s) : (memref<*xf32>) -> ()
    %h = memref.cast %host : memref<32xf32> to memref<*xf32>
    call @printMemrefF32(%h) : (memref<*xf32>) -> ()
    %t3 = gpu.wait async
    %t4 = gpu.dealloc async [%t3] %shared : memref<32xf32>
    gpu.wait [%t4]
    memref.dealloc %host : memref<32xf32>
    return
  }
  func.func private @printMemrefF32(memref<*xf32>)
}
