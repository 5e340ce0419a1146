// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-link-gpu-kernels | FileCheck %s

// A module that calls no host function of the library is left unchanged.

// CHECK-LABEL: module {
// CHECK-NEXT:    func.func private @moe_router_other(memref<?xf32>)
// CHECK-NEXT:  }
func.func private @moe_router_other(memref<?xf32>)

// -----

// A symbol of the module with the name of one of the library's.

func.func private @moe_router(memref<?x?xbf16>, memref<?x?xbf16>,
                              memref<?x?xi32>, memref<?x?xf32>)
// expected-error @+1 {{symbol 'tiles64' clashes with the CUDA kernel library (experts.mlir): expected no other symbol of that name, or a declaration of type '(index) -> index'; found 'func.func'}}
func.func @tiles64(%n: index) -> index {
  return %n : index
}

// -----

// A declaration of a library host function with another type.

// expected-error @+1 {{symbol 'moe_combine' clashes with the CUDA kernel library (combine.mlir): expected no other symbol of that name, or a declaration of type '(memref<?x?xf32>, memref<?x?xi32>, memref<?x?xf32>, memref<?x?xf32>) -> ()'; found 'func.func'}}
func.func private @moe_combine(memref<?x?xf32>)
