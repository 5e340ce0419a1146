// RUN: moe-opt %s --convert-moe-to-linalg --canonicalize --cse --split-input-file | FileCheck %s

// Softmax scores are four linalg ops (row max, exp, row sum, divide). Then,
// per token, the k picks: each scans the experts for the best one that
// comes after the previous pick (NaN is tested with `uno`), and the
// weights are renormalized over the kept slots.

// CHECK-LABEL: func @top_k
// CHECK: %[[MAX:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK:   arith.maximumf
// CHECK: %[[EXP:.*]] = linalg.generic
// CHECK:   math.exp
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "reduction"]
// CHECK: %[[SCORES:.*]] = linalg.generic
// CHECK:   arith.divf
// CHECK: scf.for %[[T:.*]] = %c0 to %{{.*}} step %c1 iter_args(%[[IDS:.*]] = %{{.*}}, %[[W:.*]] = %{{.*}}) -> (tensor<?x2xi32>, tensor<?x2xf32>)
// CHECK:   scf.for %[[J:.*]] = %c0 to %c2 step %c1 iter_args({{.*}}) -> (tensor<?x2xi32>, i1, f32, index)
// CHECK:     scf.for %[[E:.*]] = %c0 to %c8 step %c1 iter_args({{.*}}) -> (i1, f32, index)
// CHECK:       tensor.extract %[[SCORES]][%[[T]], %[[E]]]
// CHECK:       arith.cmpf uno
// CHECK:     tensor.insert %{{.*}} into %{{.*}}[%[[T]], %[[J]]] : tensor<?x2xi32>
// CHECK:   arith.addf %{{.*}}, %cst{{.*}} : f32
// CHECK:   arith.divf
func.func @top_k(%z: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 2,
                         renormalize = true> : tensor<?x8xf32>
  return %i, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// Group scores are a reduction over each group's experts with two
// accumulators (best and second best); the kept groups bound the experts
// that a pick may take.
// CHECK-LABEL: func @grouped
// CHECK: %[[GS:.*]]:2 = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]
// CHECK: %[[SUM2:.*]] = linalg.generic {{.*}} ins(%[[GS]]#0, %[[GS]]#1
// CHECK:   arith.addf
// CHECK: scf.for
// CHECK:   scf.for %{{.*}} = %c0 to %c4 step %c1
// CHECK:     tensor.extract %[[SUM2]]
// CHECK:   scf.for %{{.*}} = %c0 to %c4 step %c1
// CHECK:   scf.for %{{.*}} = %c0 to %c4 step %c1 iter_args
// CHECK:     scf.for %{{.*}} = %c0 to %c16 step %c1
// CHECK:       arith.divui
func.func @grouped(%z: tensor<?x16xf32>, %b: tensor<16xf32>)
    -> (tensor<?x4xi32>, tensor<?x4xf32>) {
  %i, %w = moe.route %z bias(%b : tensor<16xf32>)
      <score = sigmoid, selection = grouped_top_k, k = 4, groups = 4,
       topk_group = 2, group_score = sum_top2, renormalize = true,
       scale = 2.5> : tensor<?x16xf32>
  return %i, %w : tensor<?x4xi32>, tensor<?x4xf32>
}

// -----

// A run-time tau is read by the threshold test of every slot.
// CHECK-LABEL: func @threshold
// CHECK-SAME: %[[TAU:[^:]*]]: f32
// CHECK: scf.for
// CHECK:   arith.cmpf olt, %{{.*}}, %[[TAU]] : f32
func.func @threshold(%z: tensor<?x8xf32>, %tau: f32)
    -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %i, %w = moe.route %z tau(%tau)
      <score = softmax, selection = threshold, k = 3> : tensor<?x8xf32>
  return %i, %w : tensor<?x3xi32>, tensor<?x3xf32>
}

// -----

// Expert choice: for each expert, pick its tokens one after the other.
// CHECK-LABEL: func @expert_choice
// CHECK: scf.for %[[E:.*]] = %c0 to %c8 step %c1
// CHECK:   scf.for %{{.*}} = %c0 to %{{.*}} step %c1
// CHECK:     scf.for %[[T:.*]] = %c0 to %{{.*}} step %c1
// CHECK:       tensor.extract %{{.*}}[%[[T]], %[[E]]]
func.func @expert_choice(%z: tensor<?x8xf32>)
    -> (tensor<8x?xi32>, tensor<?x8xf32>) {
  %t, %tw, %ids, %w = moe.expert_choice %z k = 2 : tensor<?x8xf32>
  return %t, %w : tensor<8x?xi32>, tensor<?x8xf32>
}

// -----

// CHECK-LABEL: func @losses
// CHECK-NOT: moe.
// CHECK: tensor.from_elements %{{.*}} : tensor<f32>
// CHECK: tensor.from_elements %{{.*}} : tensor<f32>
func.func @losses(%z: tensor<?x8xf32>, %ids: tensor<?x2xi32>)
    -> (tensor<f32>, tensor<f32>, tensor<8xi64>) {
  %a = moe.aux_loss %z, %ids convention = all_k
      : tensor<?x8xf32>, tensor<?x2xi32>
  %l = moe.z_loss %z : tensor<?x8xf32>
  %c = moe.expert_load %ids experts = 8 : tensor<?x2xi32>
  return %a, %l, %c : tensor<f32>, tensor<f32>, tensor<8xi64>
}
