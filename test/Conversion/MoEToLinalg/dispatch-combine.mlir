// RUN: moe-opt %s --convert-moe-to-linalg --canonicalize --cse --split-input-file | FileCheck %s

// Combine is a gather: the slot loop is the innermost, reduction, loop, so
// each token's slots are summed in slot order.
// CHECK-DAG: #[[TJ:.*]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-DAG: #[[TI:.*]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-LABEL: func @combine
// CHECK-SAME: (%[[ROWS:.*]]: tensor<?x64xf32>, %[[SR:.*]]: tensor<?x2xi32>, %[[SW:.*]]: tensor<?x2xf32>)
// CHECK: linalg.generic {indexing_maps = [#[[TJ]], #[[TJ]], #[[TI]]], iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[SR]], %[[SW]] : tensor<?x2xi32>, tensor<?x2xf32>)
// CHECK:   %[[ROW:.*]] = arith.select
// CHECK:   %[[COL:.*]] = linalg.index 1
// CHECK:   tensor.extract %[[ROWS]][%[[ROW]], %[[COL]]]
func.func @combine(%rows: tensor<?x64xf32>, %sr: tensor<?x2xi32>,
                   %sw: tensor<?x2xf32>) -> tensor<?x64xf32> {
  %y = moe.combine %rows, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x64xf32>, tensor<?x2xi32>
  return %y : tensor<?x64xf32>
}

// -----

// Gather reads the token of each row; padding rows (token -1) are zero.
// CHECK-LABEL: func @gather
// CHECK: linalg.generic
// CHECK:   arith.cmpi sge
// CHECK:   tensor.extract
// CHECK:   arith.extf %{{.*}} : bf16 to f32
// CHECK:   arith.truncf %{{.*}} : f32 to bf16
// CHECK:   arith.select
func.func @gather(%x: tensor<?x64xbf16>, %rt: tensor<?xi32>, %rw: tensor<?xf32>)
    -> tensor<?x64xbf16> {
  %g = moe.gather %x, %rt scale(%rw : tensor<?xf32>)
      : tensor<?x64xbf16>, tensor<?xi32>
  return %g : tensor<?x64xbf16>
}

// -----

// Token-major capacity: one pass in token order counting per expert; then
// the layout pass places the kept assignments by expert.
// CHECK-LABEL: func @dispatch_token_major
// CHECK: math.ceil %{{.*}} : f64
// CHECK: scf.for %[[T:.*]] = %c0 to %{{.*}} step %c1
// CHECK:   scf.for %[[J:.*]] = %c0 to %c2 step %c1
// CHECK:     arith.cmpi slt, %{{.*}}, %{{.*}} : i64
// CHECK:     tensor.insert %{{.*}} into %{{.*}}[%[[T]], %[[J]]] : tensor<?x2xi1>
func.func @dispatch_token_major(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>)
    -> (tensor<?xi32>, tensor<8xi64>) {
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped = moe.dispatch %ids, %w
      experts = 8 capacity <factor = 1.25, drop_order = token_major>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return %rt, %dropped : tensor<?xi32>, tensor<8xi64>
}

// -----

// Choice-major visits slot 0 of every token before slot 1.
// CHECK-LABEL: func @dispatch_choice_major
// CHECK: scf.for %[[J:.*]] = %c0 to %c2 step %c1
// CHECK:   scf.for %[[T:.*]] = %c0 to %{{.*}} step %c1
// CHECK:     tensor.insert %{{.*}} into %{{.*}}[%[[T]], %[[J]]] : tensor<?x2xi1>
func.func @dispatch_choice_major(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>)
    -> tensor<8xi64> {
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped = moe.dispatch %ids, %w
      experts = 8 capacity <count = 4>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return %dropped : tensor<8xi64>
}
