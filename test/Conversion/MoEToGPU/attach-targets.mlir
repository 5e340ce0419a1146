// RUN: moe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --moe-gpu-attach-targets="chip=sm_80 features=+ptx80 O=3" | FileCheck %s

// The kernel marked moe.sm90a moves into @lib_sm90a (target sm_90a, PTX
// 8.0) with the helpers it calls, its launch follows it; the portable
// kernel keeps the helpers it calls. Every module without targets gets the
// pass's; a module with targets of its own keeps them.

// CHECK-LABEL: gpu.module @lib [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// CHECK-NEXT:    func.func private @shared
// CHECK-NOT:     func.func private @tensor_cores
// CHECK:         gpu.func @portable
// CHECK-NOT:     gpu.func @fast
// CHECK:       gpu.module @lib_sm90a [#nvvm.target<O = 3, chip = "sm_90a", features = "+ptx80">]
// CHECK-NEXT:    func.func private @shared
// CHECK:         func.func private @tensor_cores
// CHECK-NOT:     gpu.func @portable
// CHECK:         gpu.func @fast
// CHECK-NOT:       moe.sm90a
// CHECK:       gpu.module @own [#nvvm.target<chip = "sm_75">]
// CHECK:       gpu.module @plain [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
// CHECK-LABEL: func.func @host
// CHECK:         gpu.launch_func @lib::@portable
// CHECK:         gpu.launch_func @lib_sm90a::@fast
// CHECK:         gpu.launch_func @plain::@k
module attributes {gpu.container_module} {
  gpu.module @lib {
    func.func private @shared(%x: f32) -> f32 {
      return %x : f32
    }
    func.func private @tensor_cores(%x: f32) -> f32 {
      %y = func.call @shared(%x) : (f32) -> f32
      return %y : f32
    }
    gpu.func @portable(%p: memref<f32>) kernel {
      %v = memref.load %p[] : memref<f32>
      %w = func.call @shared(%v) : (f32) -> f32
      memref.store %w, %p[] : memref<f32>
      gpu.return
    }
    gpu.func @fast(%p: memref<f32>) kernel attributes {moe.sm90a} {
      %v = memref.load %p[] : memref<f32>
      %w = func.call @tensor_cores(%v) : (f32) -> f32
      memref.store %w, %p[] : memref<f32>
      gpu.return
    }
  }
  gpu.module @own [#nvvm.target<chip = "sm_75">] {
    gpu.func @k() kernel {
      gpu.return
    }
  }
  gpu.module @plain {
    gpu.func @k() kernel {
      gpu.return
    }
  }
  func.func @host(%p: memref<f32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @lib::@portable blocks in (%c1, %c1, %c1)
        threads in (%c1, %c1, %c1) args(%p : memref<f32>)
    gpu.launch_func @lib::@fast blocks in (%c1, %c1, %c1)
        threads in (%c1, %c1, %c1) args(%p : memref<f32>)
    gpu.launch_func @plain::@k blocks in (%c1, %c1, %c1)
        threads in (%c1, %c1, %c1)
    return
  }
}

// -----

module attributes {gpu.container_module} {
  // expected-error @below {{moe-gpu-attach-targets: a module with targets of its own cannot hold `moe.sm90a` kernels; give them a module with the sm_90a target instead}}
  gpu.module @lib [#nvvm.target<chip = "sm_80">] {
    gpu.func @fast() kernel attributes {moe.sm90a} {
      gpu.return
    }
  }
}

// -----

module attributes {gpu.container_module} {
  // expected-error @below {{moe-gpu-attach-targets: the symbol @lib_sm90a for the sm_90a kernels is taken}}
  gpu.module @lib {
    gpu.func @fast() kernel attributes {moe.sm90a} {
      gpu.return
    }
  }
  gpu.module @lib_sm90a {
  }
}

// -----

module attributes {gpu.container_module} {
  gpu.module @lib {
    // expected-error @below {{'moe.sm90a' expects a unit attribute on a gpu.func kernel}}
    func.func private @helper() attributes {moe.sm90a} {
      return
    }
  }
}
