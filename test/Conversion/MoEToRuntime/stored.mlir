// RUN: moe-opt %s --convert-moe-to-runtime | FileCheck %s

// A weight that the runtime converts keeps the checkpoint's element type in
// the table (`stored`); the same tensor bound as the checkpoint holds it is
// another weight, with an id of its own.

// CHECK: moe.weights = [{id = 0 : i64, names = ["w"], stacked = false, stored = f32, type = tensor<4x16xbf16>}, {id = 1 : i64, names = ["w"], stacked = false, type = tensor<4x16xf32>}]
// CHECK-LABEL: func @weights
// CHECK: moe.weight_buffer 0 : memref<4x16xbf16>
// CHECK: moe.weight_buffer 1 : memref<4x16xf32>
// CHECK: moe.weight_buffer 0 : memref<4x16xbf16>
module attributes {moe.checkpoint = "ckpt"} {
  func.func @weights() -> (tensor<4x16xbf16>, tensor<4x16xf32>, tensor<4x16xbf16>) {
    %a = moe.weight "w" {stored = f32} : tensor<4x16xbf16>
    %b = moe.weight "w" : tensor<4x16xf32>
    %c = moe.weight "w" {stored = f32} : tensor<4x16xbf16>
    return %a, %b, %c : tensor<4x16xbf16>, tensor<4x16xf32>, tensor<4x16xbf16>
  }
}
