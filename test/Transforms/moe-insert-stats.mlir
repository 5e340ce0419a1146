// RUN: moe-opt %s --moe-insert-stats --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-insert-stats --moe-insert-stats --split-input-file \
// RUN:   | FileCheck %s --check-prefix=TWICE

// CHECK-LABEL: func @moe_layer_3
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>
// CHECK: %[[Y:.*]], %[[LOAD:.*]], %[[DROP:.*]] = moe.layer %[[X]]
// CHECK: %[[T:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x64xf32>
// CHECK: moe.record_stats %[[LOAD]], %[[DROP]] tokens(%[[T]]) layer = "moe_layer_3" : tensor<8xi64>
// CHECK: return %[[Y]]
// TWICE-COUNT-1: moe.record_stats
func.func @moe_layer_3(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                       %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>)
    -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Two layers in one function are told apart by their position.
// CHECK-LABEL: func @two
// CHECK: moe.record_stats {{.*}} layer = "two#0"
// CHECK: moe.record_stats {{.*}} layer = "two#1"
func.func @two(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
               %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>)
    -> tensor<?x64xf32> {
  %y, %l, %d = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  %z, %l2, %d2 = moe.layer %y router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// -----

// With coactivation, the record waits for the layer's expert ids, which
// moe-decompose attaches when it creates them.
// RUN: moe-opt %s --moe-insert-stats=coactivation=true --split-input-file \
// RUN:   | FileCheck %s --check-prefix=COACT
// RUN: moe-opt %s --moe-insert-stats=coactivation=true --moe-decompose \
// RUN:   --split-input-file | FileCheck %s --check-prefix=ATTACHED
// COACT-LABEL: func @coactivated
// COACT: moe.record_stats %{{.*}}, %{{.*}} tokens(%{{.*}}) layer = "coactivated" {with_coactivation} : tensor<8xi64>
// ATTACHED-LABEL: func @coactivated
// ATTACHED: %[[IDS:.*]], %{{.*}} = moe.route
// ATTACHED: moe.record_stats %{{.*}}, %{{.*}} tokens(%{{.*}}) coactivation(%[[IDS]] : tensor<?x2xi32>) layer = "coactivated" : tensor<8xi64>
func.func @coactivated(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                       %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>)
    -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
