// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-gpu-emulation-pipeline

// An NVVM operation the emulator does not model.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @ballot(%out: memref<32xi32>) kernel {
      %t = gpu.thread_id x
      %full = arith.constant -1 : i32
      %true = arith.constant true
      // expected-error @+1 {{moe-gpu-emulate: no emulation of this operation}}
      %b = nvvm.vote.sync ballot %full, %true -> i32
      memref.store %b, %out[%t] : memref<32xi32>
      gpu.return
    }
  }
}

// -----

// A libdevice function without a C library counterpart.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @rsqrt(%x: memref<32xf32>) kernel {
      %t = gpu.thread_id x
      %v = memref.load %x[%t] : memref<32xf32>
      // expected-error @+1 {{moe-gpu-emulate: the device function @__nv_rsqrtf has no C library counterpart on the host}}
      %r = math.rsqrt %v : f32
      memref.store %r, %x[%t] : memref<32xf32>
      gpu.return
    }
  }
}
