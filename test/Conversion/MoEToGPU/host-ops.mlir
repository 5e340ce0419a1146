// RUN: moe-opt %s --split-input-file --verify-diagnostics \
// RUN:   --convert-moe-to-gpu-kernels | FileCheck %s

// moe ops outside a moe.layer (standalone routing, experts, losses) are
// left to the host's reference lowering, which moe-cuda-pipeline runs
// after this pass: one warning a function names them, at the first.

// CHECK-LABEL: func.func @routing_and_loss(
// CHECK:         moe.router
// CHECK:         moe.route
// CHECK:         moe.z_loss
func.func @routing_and_loss(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<f32>) {
  // expected-warning @+1 {{moe.router, moe.route, moe.z_loss in @routing_and_loss run on the host: the CUDA kernels compute whole moe.layer ops, and moe-cuda-pipeline lowers other moe ops with the reference lowering}}
  %z = moe.router %x, %wr : tensor<?x64xbf16>, tensor<8x64xbf16>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %l = moe.z_loss %z : tensor<?x8xf32>
  return %ids, %w, %l : tensor<?x2xi32>, tensor<?x2xf32>, tensor<f32>
}

// -----

// A layer (the kernel library's) and the same layer's load-balancing loss
// from a router of its own (the host's): the warning names only the
// latter's ops; the checkpoint weights, knobs and statistics are the
// runtime's, not host computations.

// CHECK-LABEL: func.func @layer_and_loss(
// CHECK:         call @moe_layer_resident(
// CHECK:         moe.aux_loss
func.func @layer_and_loss(%x: tensor<?x64xbf16>)
    -> (tensor<?x64xbf16>, tensor<f32>) {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %tau = moe.knob "tau" layer = "layer_and_loss" default = 0.1 : f32
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>) tau(%tau)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = sigmoid, selection = threshold, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  %t = arith.constant 0 : index
  moe.record_stats %load, %dropped tokens(%t) layer = "layer_and_loss"
      : tensor<8xi64>
  // expected-warning @+1 {{moe.router, moe.route, moe.aux_loss in @layer_and_loss run on the host}}
  %z = moe.router %x, %wr : tensor<?x64xbf16>, tensor<8x64xbf16>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %l = moe.aux_loss %z, %ids convention = switch : tensor<?x8xf32>, tensor<?x2xi32>
  return %y, %l : tensor<?x64xbf16>, tensor<f32>
}

// -----

// A function that is only a layer: no warning.

// CHECK-LABEL: func.func @layer_only(
func.func @layer_only(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
