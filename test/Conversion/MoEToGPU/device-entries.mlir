// RUN: moe-opt %s --split-input-file --verify-diagnostics \
// RUN:   '--convert-moe-to-gpu-kernels=device-entries=1' | FileCheck %s
// RUN: moe-opt %s --split-input-file --convert-moe-to-gpu-kernels \
// RUN:   | FileCheck %s --check-prefix=OFF

// A function that is one layer gets a device entry point: the rows in GPU
// memory, the statistics table, tau in GPU memory and the stream in, the
// stream out. It reads the same knob (the library reads the one in GPU
// memory instead when the runtime passes it), its weights and its f32 selection bias in GPU memory
// (moe.weight {device}), and records nothing on the host: the library adds
// the counts to the table on the device. The function itself is lowered
// as without the option.

// CHECK-LABEL: func.func @moe_layer_0(
// CHECK:         call @moe_layer_resident(
// CHECK:         moe.record_stats

// CHECK-LABEL: func.func @moe_layer_0.device(
// CHECK-SAME:      %[[X:[^:]*]]: memref<?x64xbf16>, %[[Y:[^:]*]]: memref<?x64xbf16>, %[[COUNTS:[^:]*]]: memref<?x?xi64>, %[[TAUD:[^:]*]]: memref<?xf32>, %[[STREAM:[^:]*]]: !gpu.async.token) -> !gpu.async.token
// CHECK-SAME:      attributes {llvm.emit_c_interface}
// CHECK-DAG:     %[[XT:.*]] = bufferization.to_tensor %[[X]] restrict : memref<?x64xbf16> to tensor<?x64xbf16>
// CHECK-DAG:     %[[YM:.*]] = memref.cast %[[Y]] : memref<?x64xbf16> to memref<?x?xbf16>
// CHECK-DAG:     %[[TAU:.*]] = moe.knob "tau" layer = "moe_layer_0" default = 1.000000e-01 : f32
// CHECK-DAG:     %[[WR:.*]] = moe.weight "router" {device} : tensor<8x64xbf16>
// CHECK-DAG:     %[[B:.*]] = moe.weight "bias" {device} : tensor<8xf32>
// CHECK-DAG:     %[[G:.*]] = moe.weight "gate" {device} : tensor<8x32x64xbf16>
// CHECK-DAG:     %[[U:.*]] = moe.weight "up" {device} : tensor<8x32x64xbf16>
// CHECK-DAG:     %[[D:.*]] = moe.weight "down" {device} : tensor<8x64x32xbf16>
// CHECK-DAG:     %[[XB:.*]] = bufferization.to_buffer %[[XT]] read_only
// CHECK-DAG:     %[[XM:.*]] = memref.cast %[[XB]] : memref<?x64xbf16> to memref<?x?xbf16>
// CHECK-DAG:     %[[BB:.*]] = bufferization.to_buffer %[[B]] read_only : tensor<8xf32> to memref<8xf32>
// CHECK-DAG:     %[[BM:.*]] = memref.cast %[[BB]] : memref<8xf32> to memref<?xf32>
// CHECK-DAG:     %[[NONE:.*]] = memref.alloca() : memref<0xf32>
// CHECK-DAG:     %[[NOBIAS:.*]] = memref.cast %[[NONE]] : memref<0xf32> to memref<?xf32>
// CHECK:         %[[DONE:.*]] = call @moe_layer_device_async(%[[XM]], %{{[^,]*}}, %[[NOBIAS]], %[[BM]], {{(%[^,]*, )+}}%[[TAU]], %[[TAUD]], {{(%[^,]*, )+}}%[[COUNTS]], %[[YM]], %[[STREAM]])
// CHECK-NOT:     moe.record_stats
// CHECK:         return %[[DONE]] : !gpu.async.token
// CHECK:       func.func private @moe_layer_device_async(
// CHECK-SAME:      memref<?x?xi64>, memref<?x?xbf16>, !gpu.async.token) -> !gpu.async.token

// OFF-NOT: .device
func.func @moe_layer_0(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %b = moe.weight "bias" : tensor<8xf32>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %tau = moe.knob "tau" layer = "moe_layer_0" default = 0.1 : f32
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      bias(%b : tensor<8xf32>) tau(%tau)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = sigmoid, selection = threshold, k = 4>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  %t = arith.constant 0 : index
  moe.record_stats %load, %dropped tokens(%t) layer = "moe_layer_0"
      : tensor<8xi64>
  return %y : tensor<?x64xbf16>
}

// -----

// Functions that are not one layer on checkpoint weights keep only their
// host entry point, with a warning that says why.

// CHECK-LABEL: func.func @weights_as_arguments(
// CHECK-NOT:   func.func @weights_as_arguments.device
// expected-warning @+1 {{no device entry point for @weights_as_arguments: its only argument must be the input of its moe.layer}}
func.func @weights_as_arguments(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
                                %g: tensor<8x32x64xbf16>,
                                %u: tensor<8x32x64xbf16>,
                                %d: tensor<8x64x32xbf16>)
    -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// expected-warning @+1 {{no device entry point for @two_results: it must return the output of its moe.layer, and nothing else}}
func.func @two_results(%x: tensor<?x64xbf16>)
    -> (tensor<?x64xbf16>, tensor<8xi64>) {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y, %load : tensor<?x64xbf16>, tensor<8xi64>
}

// -----

// expected-warning @+1 {{no device entry point for @constant_bias: its biases must be checkpoint weights (moe.weight)}}
func.func @constant_bias(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %b = arith.constant dense<0.5> : tensor<8xf32>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      bias(%b : tensor<8xf32>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = sigmoid, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
