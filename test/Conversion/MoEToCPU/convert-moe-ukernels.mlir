// RUN: moe-opt %s --convert-moe-ukernels --split-input-file --verify-diagnostics | FileCheck %s

// Each buffer becomes (address, dtype code, rank, sizes...), then the
// config words, stored into a stack array of the function's frame.
// CHECK-LABEL: func.func private @moe_rt_ukernel_pack(memref<?xi64>) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @pack
// CHECK-SAME: (%[[W:.*]]: memref<2x40x8xbf16>, %[[P:.*]]: memref<1024xbf16>)
// CHECK: %[[WORDS:.*]] = memref.alloca() : memref<12xi64>
// CHECK: %[[WA:.*]] = memref.extract_aligned_pointer_as_index %[[W]] : memref<2x40x8xbf16> -> index
// CHECK: %[[WA64:.*]] = arith.index_cast %[[WA]] : index to i64
// CHECK-DAG: %[[BF16:.*]] = arith.constant 2 : i64
// CHECK-DAG: %[[RANK3:.*]] = arith.constant 3 : i64
// CHECK-DAG: %[[C40:.*]] = arith.constant 40 : i64
// CHECK-DAG: %[[C8:.*]] = arith.constant 8 : i64
// CHECK: %[[PA:.*]] = memref.extract_aligned_pointer_as_index %[[P]]
// CHECK: %[[PA64:.*]] = arith.index_cast %[[PA]] : index to i64
// CHECK-DAG: %[[RANK1:.*]] = arith.constant 1 : i64
// CHECK-DAG: %[[C1024:.*]] = arith.constant 1024 : i64
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : i64
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : i64
// CHECK: memref.store %[[WA64]], %[[WORDS]][%{{.*}}] : memref<12xi64>
// CHECK: memref.store %[[BF16]], %[[WORDS]]
// CHECK: memref.store %[[RANK3]], %[[WORDS]]
// CHECK: memref.store %{{.*}}, %[[WORDS]]
// CHECK: memref.store %[[C40]], %[[WORDS]]
// CHECK: memref.store %[[C8]], %[[WORDS]]
// CHECK: memref.store %[[PA64]], %[[WORDS]]
// CHECK: memref.store %{{.*}}, %[[WORDS]]
// CHECK: memref.store %[[RANK1]], %[[WORDS]]
// CHECK: memref.store %[[C1024]], %[[WORDS]]
// CHECK: memref.store %[[C0]], %[[WORDS]]
// CHECK: memref.store %[[C32]], %[[WORDS]]
// CHECK: %[[CAST:.*]] = memref.cast %[[WORDS]] : memref<12xi64> to memref<?xi64>
// CHECK: call @moe_rt_ukernel_pack(%[[CAST]]) : (memref<?xi64>) -> ()
// CHECK-NOT: moe.ukernel
func.func @pack(%w: memref<2x40x8xbf16>, %p: memref<1024xbf16>) {
  moe.ukernel "pack" ins(%w : memref<2x40x8xbf16>)
      outs(%p : memref<1024xbf16>) config = [0, 32]
  return
}

// -----

// Dynamic sizes are read from the buffer; a strided buffer is copied into
// a dense one around the call, and back when it is written.
// CHECK-LABEL: func @strided
// CHECK-SAME: (%[[X:.*]]: memref<?x8xf32, strided<[16, 1]>>, %[[Y:.*]]: memref<4x8xf32, strided<[16, 1], offset: ?>>)
// CHECK: %[[WORDS:.*]] = memref.alloca() : memref<10xi64>
// CHECK: %[[DX:.*]] = memref.alloc(%{{.*}}) : memref<?x8xf32>
// CHECK: memref.copy %[[X]], %[[DX]]
// CHECK: %[[DY:.*]] = memref.alloc() : memref<4x8xf32>
// CHECK: memref.copy %[[Y]], %[[DY]]
// CHECK: %[[T:.*]] = memref.dim %[[DX]], %{{.*}} : memref<?x8xf32>
// CHECK: arith.index_cast %[[T]] : index to i64
// CHECK: call @moe_rt_ukernel_scale
// CHECK-NEXT: memref.dealloc %[[DX]]
// CHECK-NEXT: memref.copy %[[DY]], %[[Y]]
// CHECK-NEXT: memref.dealloc %[[DY]]
func.func @strided(%x: memref<?x8xf32, strided<[16, 1]>>,
                   %y: memref<4x8xf32, strided<[16, 1], offset: ?>>) {
  moe.ukernel "scale" ins(%x : memref<?x8xf32, strided<[16, 1]>>)
      outs(%y : memref<4x8xf32, strided<[16, 1], offset: ?>>) config = []
  return
}

// -----

func.func @on_tensors(%w: tensor<4x4xf32>, %p: tensor<128xf32>) -> tensor<128xf32> {
  // expected-error@+1 {{'moe.ukernel' op expected a kernel on buffers; run bufferization before convert-moe-ukernels}}
  %r = moe.ukernel "pack" ins(%w : tensor<4x4xf32>) outs(%p : tensor<128xf32>)
      config = [0, 4] -> tensor<128xf32>
  return %r : tensor<128xf32>
}
