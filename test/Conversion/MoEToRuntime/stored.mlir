// RUN: moe-opt %s --convert-moe-to-runtime | FileCheck %s

// A weight that the runtime converts keeps the checkpoint's element type in
// the table (`stored`), and one it transposes says so (`transposed`); the
// same tensor bound as the checkpoint holds it is another weight, with an
// id of its own. A block-scaled FP8 weight carries its scale tensors and
// block size, an NVFP4 one its global scales too, and whether they divide
// (`global_scales_inverse`); a tensor read interleaved is another weight.

// CHECK: moe.weights = [{id = 0 : i64, names = ["w"], stacked = false, stored = f32, type = tensor<4x16xbf16>}, {id = 1 : i64, names = ["w"], stacked = false, type = tensor<4x16xf32>}, {id = 2 : i64, names = ["w"], stacked = false, transposed = true, type = tensor<16x4xf32>}, {id = 3 : i64, names = ["w"], stacked = false, stored = f32, transposed = true, type = tensor<16x4xbf16>}, {id = 4 : i64, names = ["q"], scale_block = array<i64: 2, 8>, scales = ["q_scale_inv"], stacked = false, stored = f8E4M3FN, type = tensor<4x16xbf16>}, {id = 5 : i64, names = ["q"], scale_block = array<i64: 4, 8>, scales = ["q_scale_inv"], stacked = false, stored = f8E4M3FN, type = tensor<4x16xbf16>}, {global_scales = ["n_scale_2"], id = 6 : i64, names = ["n"], scale_block = array<i64: 1, 16>, scales = ["n_scale"], stacked = false, stored = f4E2M1FN, type = tensor<4x16xbf16>}, {global_scales = ["n_scale_2"], global_scales_inverse = true, id = 7 : i64, names = ["n"], scale_block = array<i64: 1, 16>, scales = ["n_scale"], stacked = false, stored = f4E2M1FN, type = tensor<4x16xbf16>}, {id = 8 : i64, interleaved = true, names = ["u"], stacked = false, type = tensor<2x4x16xf32>}, {id = 9 : i64, names = ["u"], stacked = false, type = tensor<2x4x16xf32>}]
// CHECK-LABEL: func @weights
// CHECK: moe.weight_buffer 0 : memref<4x16xbf16>
// CHECK: moe.weight_buffer 1 : memref<4x16xf32>
// CHECK: moe.weight_buffer 0 : memref<4x16xbf16>
// CHECK: moe.weight_buffer 2 : memref<16x4xf32>
// CHECK: moe.weight_buffer 3 : memref<16x4xbf16>
// CHECK: moe.weight_buffer 4 : memref<4x16xbf16>
// CHECK: moe.weight_buffer 5 : memref<4x16xbf16>
// CHECK: moe.weight_buffer 6 : memref<4x16xbf16>
// CHECK: moe.weight_buffer 7 : memref<4x16xbf16>
// CHECK: moe.weight_buffer 8 : memref<2x4x16xf32>
// CHECK: moe.weight_buffer 9 : memref<2x4x16xf32>
module attributes {moe.checkpoint = "ckpt"} {
  func.func @weights() -> (tensor<4x16xbf16>, tensor<4x16xf32>, tensor<4x16xbf16>, tensor<16x4xf32>, tensor<16x4xbf16>, tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<2x4x16xf32>, tensor<2x4x16xf32>) {
    %a = moe.weight "w" {stored = f32} : tensor<4x16xbf16>
    %b = moe.weight "w" : tensor<4x16xf32>
    %c = moe.weight "w" {stored = f32} : tensor<4x16xbf16>
    %d = moe.weight "w" {transposed} : tensor<16x4xf32>
    %e = moe.weight "w" {stored = f32, transposed} : tensor<16x4xbf16>
    %f = moe.weight "q" {stored = f8E4M3FN, scales = ["q_scale_inv"], scale_block = array<i64: 2, 8>} : tensor<4x16xbf16>
    %g = moe.weight "q" {stored = f8E4M3FN, scales = ["q_scale_inv"], scale_block = array<i64: 4, 8>} : tensor<4x16xbf16>
    %h = moe.weight "n" {stored = f4E2M1FN, scales = ["n_scale"], scale_block = array<i64: 1, 16>, global_scales = ["n_scale_2"]} : tensor<4x16xbf16>
    %i = moe.weight "n" {stored = f4E2M1FN, scales = ["n_scale"], scale_block = array<i64: 1, 16>, global_scales = ["n_scale_2"], global_scales_inverse} : tensor<4x16xbf16>
    %j = moe.weight "u" {interleaved} : tensor<2x4x16xf32>
    %k = moe.weight "u" : tensor<2x4x16xf32>
    return %a, %b, %c, %d, %e, %f, %g, %h, %i, %j, %k : tensor<4x16xbf16>, tensor<4x16xf32>, tensor<4x16xbf16>, tensor<16x4xf32>, tensor<16x4xbf16>, tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<2x4x16xf32>, tensor<2x4x16xf32>
  }
}
