// RUN: moe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --pass-pipeline='builtin.module(gpu.module(moe-gpu-dependent-launch))' | FileCheck %s

// Every kernel of a module whose targets are all sm_90 or newer begins by
// waiting for the kernel before it, then lets the kernel after it launch;
// the module gets the marker the runtime looks for. Kernels already in the
// LLVM dialect (after convert-gpu-to-nvvm) and gpu.func kernels alike;
// functions that are not kernels, and modules with an older target or
// several targets of which one is older, or none, are left alone.

// CHECK-LABEL: gpu.module @hopper
// CHECK-NEXT:    llvm.mlir.global external constant @moe_dependent_launch(1 : i32) {addr_space = 1 : i32, alignment = 4 : i64} : i32
// CHECK:         llvm.func @helper
// CHECK-NOT:       griddepcontrol
// CHECK:           llvm.return
// CHECK:         llvm.func @lowered
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-NEXT:      nvvm.griddepcontrol launch_dependents
// CHECK-NEXT:      llvm.load
// CHECK:         gpu.func @kernel
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-NEXT:      nvvm.griddepcontrol launch_dependents
// CHECK-NEXT:      gpu.return
// CHECK-LABEL: gpu.module @arch_specific
// CHECK-NEXT:    llvm.mlir.global external constant @moe_dependent_launch
// CHECK:         gpu.func @k
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-LABEL: gpu.module @ampere
// CHECK-NOT:     griddepcontrol
// CHECK-NOT:     moe_dependent_launch
// CHECK-LABEL: gpu.module @mixed
// CHECK-NOT:     griddepcontrol
// CHECK-NOT:     moe_dependent_launch
// CHECK-LABEL: gpu.module @untargeted
// CHECK-NOT:     griddepcontrol
// CHECK-NOT:     moe_dependent_launch
// CHECK-LABEL: gpu.module @no_kernels
// CHECK-NOT:     moe_dependent_launch
// CHECK:       }
module attributes {gpu.container_module} {
  gpu.module @hopper [#nvvm.target<chip = "sm_90">] {
    llvm.func @helper() {
      llvm.return
    }
    llvm.func @lowered(%p: !llvm.ptr<1>) attributes {gpu.kernel, nvvm.kernel} {
      %v = llvm.load %p : !llvm.ptr<1> -> f32
      llvm.store %v, %p : f32, !llvm.ptr<1>
      llvm.return
    }
    gpu.func @kernel() kernel {
      gpu.return
    }
  }
  gpu.module @arch_specific [#nvvm.target<chip = "sm_90a", features = "+ptx80">] {
    gpu.func @k() kernel {
      gpu.return
    }
  }
  gpu.module @ampere [#nvvm.target<chip = "sm_80">] {
    gpu.func @k() kernel {
      gpu.return
    }
  }
  gpu.module @mixed [#nvvm.target<chip = "sm_90">, #nvvm.target<chip = "sm_80">] {
    gpu.func @k() kernel {
      gpu.return
    }
  }
  gpu.module @untargeted {
    gpu.func @k() kernel {
      gpu.return
    }
  }
  gpu.module @no_kernels [#nvvm.target<chip = "sm_100">] {
    llvm.func @helper() {
      llvm.return
    }
  }
}

// -----

// The marker's name taken by something else is an error; a marker that is
// there already (the pass ran before) leaves the module as it is.

module attributes {gpu.container_module} {
  gpu.module @taken [#nvvm.target<chip = "sm_90">] {
    // expected-error@+1 {{moe-gpu-dependent-launch: the symbol @moe_dependent_launch is taken}}
    llvm.func @moe_dependent_launch() {
      llvm.return
    }
  }
}

// -----

// CHECK-LABEL: gpu.module @twice
// CHECK:         gpu.func @k
// CHECK-NEXT:      nvvm.griddepcontrol wait
// CHECK-NEXT:      nvvm.griddepcontrol launch_dependents
// CHECK-NEXT:      gpu.return
module attributes {gpu.container_module} {
  gpu.module @twice [#nvvm.target<chip = "sm_90">] {
    llvm.mlir.global external constant @moe_dependent_launch(1 : i32) {addr_space = 1 : i32} : i32
    gpu.func @k() kernel {
      nvvm.griddepcontrol wait
      nvvm.griddepcontrol launch_dependents
      gpu.return
    }
  }
}
