// The three grouped layouts of moe.dispatch, exactly, through the reference
// lowering. Five tokens of two slots over four experts:
//   expert 0: tokens 0, 2, 3   expert 1: tokens 0, 1, 3, 4
//   expert 2: tokens 1, 4      expert 3: token 2
// RUN: moe-opt %s --moe-cpu-pipeline="stats=false reference=true" \
// RUN:   | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext \
// RUN:   | FileCheck %s

func.func private @printMemrefI32(memref<*xi32>)
func.func private @printMemrefI64(memref<*xi64>)

func.func @print32(%t: tensor<?xi32>) {
  %m = bufferization.to_buffer %t : tensor<?xi32> to memref<?xi32>
  %u = memref.cast %m : memref<?xi32> to memref<*xi32>
  call @printMemrefI32(%u) : (memref<*xi32>) -> ()
  return
}

func.func @print64(%t: tensor<4xi64>) {
  %m = bufferization.to_buffer %t : tensor<4xi64> to memref<4xi64>
  %u = memref.cast %m : memref<4xi64> to memref<*xi64>
  call @printMemrefI64(%u) : (memref<*xi64>) -> ()
  return
}

func.func @main() {
  %ids0 = arith.constant dense<[[0, 1], [1, 2], [0, 3], [1, 0], [2, 1]]>
      : tensor<5x2xi32>
  %w0 = arith.constant dense<0.5> : tensor<5x2xf32>
  %ids = tensor.cast %ids0 : tensor<5x2xi32> to tensor<?x2xi32>
  %w = tensor.cast %w0 : tensor<5x2xf32> to tensor<?x2xf32>

  // Ragged: groups back to back, then the unused rows.
  %r:7 = moe.dispatch %ids, %w experts = 4 : tensor<?x2xi32>, tensor<?x2xf32>
  // CHECK: [0,  2,  3,  0,  1,  3,  4,  1,  4,  2]
  call @print32(%r#0) : (tensor<?xi32>) -> ()
  // CHECK: [3,  4,  2,  1]
  call @print64(%r#4) : (tensor<4xi64>) -> ()

  // Aligned to blocks of 4: 10 + 4 * 3 = 22 rows, groups at 0, 4, 8, 12.
  %a:7 = moe.dispatch %ids, %w experts = 4 layout <kind = aligned, block = 4>
      : tensor<?x2xi32>, tensor<?x2xf32>
  // CHECK: [0,  2,  3,  -1,  0,  1,  3,  4,  1,  4,  -1,  -1,  2,  -1,  -1,  -1,  -1,  -1,  -1,  -1,  -1,  -1]
  call @print32(%a#0) : (tensor<?xi32>) -> ()
  // CHECK: [4,  4,  4,  4]
  call @print64(%a#4) : (tensor<4xi64>) -> ()
  // CHECK: [0,  4,  8,  12]
  call @print64(%a#5) : (tensor<4xi64>) -> ()
  // Slot rows point into the aligned groups: token 1 -> rows 5 and 8.
  %sr = tensor.extract_slice %a#2[1, 0] [1, 2] [1, 1]
      : tensor<?x2xi32> to tensor<2xi32>
  %srd = tensor.cast %sr : tensor<2xi32> to tensor<?xi32>
  // CHECK: [5,  8]
  call @print32(%srd) : (tensor<?xi32>) -> ()

  // Padded with capacity 3: every expert 3 rows; expert 1 drops token 4.
  %p:7 = moe.dispatch %ids, %w experts = 4 capacity <count = 3>
      layout <kind = padded> : tensor<?x2xi32>, tensor<?x2xf32>
  %pr = tensor.cast %p#0 : tensor<12xi32> to tensor<?xi32>
  // CHECK: [0,  2,  3,  0,  1,  3,  1,  4,  -1,  2,  -1,  -1]
  call @print32(%pr) : (tensor<?xi32>) -> ()
  // CHECK: [3,  3,  3,  3]
  call @print64(%p#4) : (tensor<4xi64>) -> ()
  // CHECK: [0,  1,  0,  0]
  call @print64(%p#6) : (tensor<4xi64>) -> ()
  return
}
