// RUN: moe-opt %s --moe-expose-knobs --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-expose-knobs --moe-expose-knobs --split-input-file \
// RUN:   | FileCheck %s --check-prefix=TWICE

// threshold's tau moves from the attribute to a knob; a factor capacity
// reads its factor from another.
// CHECK-LABEL: func @moe_layer_0
// CHECK: %[[TAU:.*]] = moe.knob "tau" layer = "moe_layer_0" default = 1.500000e-01 : f32
// CHECK: %[[CF:.*]] = moe.knob "capacity_factor" layer = "moe_layer_0" default = 1.250000e+00 : f64
// CHECK: moe.layer %{{.*}} router(%{{.*}} : tensor<8x64xf32>) tau(%[[TAU]]) capacity_factor(%[[CF]]) experts
// CHECK-SAME: capacity = #moe.capacity<factor = 1.25>
// CHECK-SAME: routing = #moe.routing<score = softmax, selection = threshold, k = 3>
// TWICE-LABEL: func @moe_layer_0
// TWICE-COUNT-2: moe.knob
// TWICE-NOT: moe.knob
// TWICE: return
func.func @moe_layer_0(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                       %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>)
    -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = threshold, k = 3,
                              tau = 0.15>,
       capacity = #moe.capacity<factor = 1.25>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Nothing to expose: top_k without capacity, a count capacity, expert
// choice, and a tau that already is an operand.
// CHECK-LABEL: func @constants
// CHECK-NOT: moe.knob
// CHECK: return
func.func @constants(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                     %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>,
                     %tau: f32) -> tensor<?x64xf32> {
  %a, %l0, %d0 = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  %b, %l1, %d1 = moe.layer %a router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       capacity = #moe.capacity<count = 4>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  %c, %l2, %d2 = moe.layer %b router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = expert_choice,
                              k = 2>,
       capacity = #moe.capacity<factor = 1.0>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  %d, %l3, %d3 = moe.layer %c router(%wg : tensor<8x64xf32>) tau(%tau)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = threshold, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %d : tensor<?x64xf32>
}

// -----

// The run-time factor reaches dispatch when the layer is decomposed.
// RUN: moe-opt %s --moe-expose-knobs --moe-decompose --split-input-file \
// RUN:   | FileCheck %s --check-prefix=DECOMPOSED
// DECOMPOSED-LABEL: func @decomposed
// DECOMPOSED: %[[CF:.*]] = moe.knob "capacity_factor" layer = "decomposed" default = 2.000000e+00 : f64
// DECOMPOSED: moe.dispatch %{{.*}}, %{{.*}} experts = 8 capacity <factor = 2.0> capacity_factor(%[[CF]])
func.func @decomposed(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                      %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>)
    -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       capacity = #moe.capacity<factor = 2.0>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
