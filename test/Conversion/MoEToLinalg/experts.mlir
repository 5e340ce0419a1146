// RUN: moe-opt %s --convert-moe-to-linalg --canonicalize --cse --split-input-file | FileCheck %s

// Experts run on their own rows: a loop over the experts slices each
// expert's group out of the grouped rows (never all rows times all experts)
// and writes it back; rows outside the groups keep the zero fill.

// CHECK-LABEL: func @gated
// CHECK-SAME: (%[[ROWS:.*]]: tensor<?x64xf32>, %[[SIZES:.*]]: tensor<8xi64>, %[[G:.*]]: tensor<8x128x64xf32>, %[[U:.*]]: tensor<8x128x64xf32>, %[[D:.*]]: tensor<8x64x128xf32>)
// CHECK: %[[ZERO:.*]] = linalg.fill
// CHECK: scf.for %[[E:.*]] = %c0 to %c8 step %c1 iter_args(%[[ACC:.*]] = %[[ZERO]], %[[OFF:.*]] = %c0)
// CHECK:   %[[N:.*]] = tensor.extract %[[SIZES]][%[[E]]]
// CHECK:   %[[GROUP:.*]] = tensor.extract_slice %[[ROWS]][%[[OFF]], 0] [%[[LEN:.*]], 64] [1, 1] : tensor<?x64xf32> to tensor<?x64xf32>
// CHECK-DAG: %[[GE:.*]] = tensor.extract_slice %[[G]][%[[E]], 0, 0] [1, 128, 64] [1, 1, 1] : tensor<8x128x64xf32> to tensor<128x64xf32>
// CHECK-DAG: %[[UE:.*]] = tensor.extract_slice %[[U]][%[[E]], 0, 0] [1, 128, 64] [1, 1, 1] : tensor<8x128x64xf32> to tensor<128x64xf32>
// CHECK: %[[GATE:.*]] = linalg.generic {{.*}} ins(%[[GROUP]], %[[GE]] : tensor<?x64xf32>, tensor<128x64xf32>)
// CHECK: %[[UP:.*]] = linalg.generic {{.*}} ins(%[[GROUP]], %[[UE]] : tensor<?x64xf32>, tensor<128x64xf32>)
// CHECK: %[[H:.*]] = linalg.generic {{.*}} ins(%[[GATE]], %[[UP]] : tensor<?x128xf32>, tensor<?x128xf32>)
// CHECK:   math.exp
// CHECK: %[[DE:.*]] = tensor.extract_slice %[[D]][%[[E]], 0, 0] [1, 64, 128] [1, 1, 1]
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%[[H]], %[[DE]] : tensor<?x128xf32>, tensor<64x128xf32>)
// CHECK: %[[NEXT:.*]] = tensor.insert_slice %[[Y]] into %[[ACC]][%[[OFF]], 0] [%[[LEN]], 64] [1, 1]
// CHECK: scf.yield %[[NEXT]]
func.func @gated(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>,
                 %g: tensor<8x128x64xf32>, %u: tensor<8x128x64xf32>,
                 %d: tensor<8x64x128xf32>) -> tensor<?x64xf32> {
  %y = moe.gated_experts %rows, %sizes gate(%g : tensor<8x128x64xf32>)
      up(%u : tensor<8x128x64xf32>) down(%d : tensor<8x64x128xf32>)
      act = silu : tensor<?x64xf32>, tensor<8xi64>
  return %y : tensor<?x64xf32>
}

// -----

// The fused gate_up weight is read as its two halves, gate rows first; bf16
// rows are widened before every product and the result rounded once.
// CHECK-LABEL: func @gated_fused_bf16
// CHECK-SAME: %[[GU:[^:]*]]: tensor<4x64x16xbf16>
// CHECK: scf.for
// CHECK-DAG: tensor.extract_slice %[[GU]][%{{.*}}, 0, 0] [1, 32, 16] [1, 1, 1] : tensor<4x64x16xbf16> to tensor<32x16xbf16>
// CHECK-DAG: tensor.extract_slice %[[GU]][%{{.*}}, 32, 0] [1, 32, 16] [1, 1, 1] : tensor<4x64x16xbf16> to tensor<32x16xbf16>
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: math.tanh
// CHECK: arith.truncf %{{.*}} : f32 to bf16
// CHECK: tensor.insert_slice
func.func @gated_fused_bf16(%rows: tensor<?x16xbf16>, %sizes: tensor<4xi64>,
                            %gu: tensor<4x64x16xbf16>,
                            %d: tensor<4x16x32xbf16>) -> tensor<?x16xbf16> {
  %y = moe.gated_experts %rows, %sizes gate_up(%gu : tensor<4x64x16xbf16>)
      down(%d : tensor<4x16x32xbf16>) act = gelu_tanh
      : tensor<?x16xbf16>, tensor<4xi64>
  return %y : tensor<?x16xbf16>
}

// -----

// CHECK-LABEL: func @lora
// CHECK: scf.for
// CHECK:   %[[GROUP:.*]] = tensor.extract_slice %{{.*}}[%{{.*}}, 0] [%{{.*}}, 64] [1, 1]
// CHECK:   %[[AX:.*]] = linalg.generic {{.*}} ins(%[[GROUP]], %{{.*}} : tensor<?x64xf32>, tensor<4x64xf32>)
// CHECK:   %[[BAX:.*]] = linalg.generic {{.*}} ins(%[[AX]], %{{.*}} : tensor<?x4xf32>, tensor<32x4xf32>)
// CHECK:   %[[SCALED:.*]] = linalg.generic {{.*}} ins(%[[BAX]] : tensor<?x32xf32>)
// CHECK:     arith.mulf %{{.*}}, %[[ALPHA:.*]] : f32
// CHECK:   tensor.insert_slice %[[SCALED]]
func.func @lora(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>,
                %a: tensor<8x4x64xf32>, %b: tensor<8x32x4xf32>)
    -> tensor<?x32xf32> {
  %y = moe.lora_experts %rows, %sizes, %a, %b alpha = 8.0
      : tensor<?x64xf32>, tensor<8xi64>, tensor<8x4x64xf32>, tensor<8x32x4xf32>
  return %y : tensor<?x32xf32>
}

// -----

// ragged_dot: lhs rows by group times rhs[e], with or without transpose.
// CHECK-DAG: #[[MAP_KN:.*]] = affine_map<(d0, d1, d2) -> (d2, d1)>
// CHECK-LABEL: func @grouped_matmul
// CHECK: scf.for
// CHECK:   %[[R:.*]] = tensor.extract_slice %{{.*}}[%{{.*}}, 0, 0] [1, 64, 32] [1, 1, 1] : tensor<8x64x32xf32> to tensor<64x32xf32>
// CHECK:   linalg.generic {indexing_maps = [#{{.*}}, #[[MAP_KN]], #{{.*}}]{{.*}} ins(%{{.*}}, %[[R]] : tensor<?x64xf32>, tensor<64x32xf32>)
func.func @grouped_matmul(%lhs: tensor<?x64xf32>, %rhs: tensor<8x64x32xf32>,
                          %sizes: tensor<8xi64>) -> tensor<?x32xf32> {
  %y = moe.grouped_matmul %lhs, %rhs, %sizes
      : tensor<?x64xf32>, tensor<8x64x32xf32>, tensor<8xi64>
  return %y : tensor<?x32xf32>
}

// -----

// Shared experts see every token; the optional gate is a per-token sigmoid.
// CHECK-LABEL: func @shared
// CHECK-NOT: scf.for
// CHECK: %[[LOGIT:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<1x64xf32>)
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[LOGIT]] : tensor<?x64xf32>, tensor<?x1xf32>)
// CHECK:   math.exp
func.func @shared(%x: tensor<?x64xf32>, %g: tensor<96x64xf32>,
                  %u: tensor<96x64xf32>, %d: tensor<64x96xf32>,
                  %ws: tensor<1x64xf32>) -> tensor<?x64xf32> {
  %s = moe.shared_expert %x, %g, %u, %d gate(%ws : tensor<1x64xf32>)
      act = silu : tensor<?x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>,
                   tensor<64x96xf32>
  return %s : tensor<?x64xf32>
}
