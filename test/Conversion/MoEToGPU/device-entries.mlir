// RUN: moe-opt %s --split-input-file --verify-diagnostics \
// RUN:   '--convert-moe-to-gpu-kernels=device-entries=1' | FileCheck %s
// RUN: moe-opt %s --split-input-file --convert-moe-to-gpu-kernels \
// RUN:   | FileCheck %s --check-prefix=OFF

// A function that is one layer gets a device entry point: the rows in GPU
// memory, the statistics table and the stream in, the stream out. Its
// weights and its f32 selection bias are read in GPU memory (moe.weight
// {device}), and so is its tau knob (moe.knob {device}, an f64 that the
// library reads when the router runs, so that a replayed graph follows the
// knob); it records nothing on the host: the library adds the counts to
// the table on the device. The function itself is lowered as without the
// option.

// CHECK-LABEL: func.func @moe_layer_0(
// CHECK:         call @moe_layer_resident(
// CHECK:         moe.record_stats

// CHECK-LABEL: func.func @moe_layer_0.device(
// CHECK-SAME:      %[[X:[^:]*]]: memref<?x64xbf16>, %[[Y:[^:]*]]: memref<?x64xbf16>, %[[COUNTS:[^:]*]]: memref<?x?xi64>, %[[STREAM:[^:]*]]: !gpu.async.token) -> !gpu.async.token
// CHECK-SAME:      attributes {llvm.emit_c_interface}
// CHECK-DAG:     %[[XT:.*]] = bufferization.to_tensor %[[X]] restrict : memref<?x64xbf16> to tensor<?x64xbf16>
// CHECK-DAG:     %[[YM:.*]] = memref.cast %[[Y]] : memref<?x64xbf16> to memref<?x?xbf16>
// CHECK-DAG:     %[[TAU:.*]] = moe.knob "tau" layer = "moe_layer_0" default = 1.000000e-01 : f32
// CHECK-DAG:     %[[TAUD:.*]] = moe.knob "tau" layer = "moe_layer_0" default = 1.000000e-01 {device} : tensor<1xf64>
// CHECK-DAG:     %[[WR:.*]] = moe.weight "router" {device} : tensor<8x64xbf16>
// CHECK-DAG:     %[[B:.*]] = moe.weight "bias" {device} : tensor<8xf32>
// CHECK-DAG:     %[[G:.*]] = moe.weight "gate" {device} : tensor<8x32x64xbf16>
// CHECK-DAG:     %[[U:.*]] = moe.weight "up" {device} : tensor<8x32x64xbf16>
// CHECK-DAG:     %[[D:.*]] = moe.weight "down" {device} : tensor<8x64x32xbf16>
// CHECK-DAG:     %[[XB:.*]] = bufferization.to_buffer %[[XT]] read_only
// CHECK-DAG:     %[[XM:.*]] = memref.cast %[[XB]] : memref<?x64xbf16> to memref<?x?xbf16>
// CHECK-DAG:     %[[BB:.*]] = bufferization.to_buffer %[[B]] read_only : tensor<8xf32> to memref<8xf32>
// CHECK-DAG:     %[[BM:.*]] = memref.cast %[[BB]] : memref<8xf32> to memref<?xf32>
// CHECK-DAG:     %[[TB:.*]] = bufferization.to_buffer %[[TAUD]] read_only : tensor<1xf64> to memref<1xf64>
// CHECK-DAG:     %[[TM:.*]] = memref.cast %[[TB]] : memref<1xf64> to memref<?xf64>
// CHECK-DAG:     %[[NONE:.*]] = memref.alloca() : memref<0xf32>
// CHECK-DAG:     %[[NOBIAS:.*]] = memref.cast %[[NONE]] : memref<0xf32> to memref<?xf32>
// CHECK-DAG:     %[[NONE64:.*]] = memref.alloca() : memref<0xf64>
// CHECK-DAG:     %[[NOCAP:.*]] = memref.cast %[[NONE64]] : memref<0xf64> to memref<?xf64>
// CHECK:         %[[DONE:.*]] = call @moe_layer_device_async(%[[XM]], %{{[^,]*}}, %[[NOBIAS]], %[[BM]], {{(%[^,]*, )+}}%[[TAU]], %[[TM]], {{(%[^,]*, )+}}%[[NOCAP]], %{{[^,]*}}, %{{[^,]*}}, %[[COUNTS]], %[[YM]], %[[STREAM]])
// CHECK-NOT:     moe.record_stats
// CHECK:         return %[[DONE]] : !gpu.async.token
// CHECK:       func.func private @moe_layer_device_async(
// CHECK-SAME:      f32, f32, memref<?xf64>, index, index, i32, index, memref<?xf64>, index, index, memref<?x?xi64>, memref<?x?xbf16>, !gpu.async.token) -> !gpu.async.token

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

// A run-time capacity factor: the device entry point passes the knob's copy
// in GPU memory with the capacity's min and align, and no capacity of its
// own (0, which the library does not read with a factor in GPU memory);
// the library computes the capacity when the dispatch runs. No tau: an
// empty buffer.

// CHECK-LABEL: func.func @capacity_layer.device(
// CHECK-SAME:      %[[COUNTS:[^:]*]]: memref<?x?xi64>, %[[STREAM:[^:]*]]: !gpu.async.token) -> !gpu.async.token
// CHECK-DAG:     %[[CF:.*]] = moe.knob "capacity_factor" layer = "capacity_layer" default = 1.250000e+00 {device} : tensor<1xf64>
// CHECK-DAG:     %[[CB:.*]] = bufferization.to_buffer %[[CF]] read_only : tensor<1xf64> to memref<1xf64>
// CHECK-DAG:     %[[CM:.*]] = memref.cast %[[CB]] : memref<1xf64> to memref<?xf64>
// CHECK-DAG:     %[[NONE64:.*]] = memref.alloca() : memref<0xf64>
// CHECK-DAG:     %[[NOTAU:.*]] = memref.cast %[[NONE64]] : memref<0xf64> to memref<?xf64>
// CHECK-DAG:     %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG:     %[[MIN:.*]] = arith.constant 3 : index
// CHECK-DAG:     %[[ALIGN:.*]] = arith.constant 4 : index
// CHECK:         call @moe_layer_device_async({{(%[^,]*, )+}}%[[NOTAU]], {{(%[^,]*, )(%[^,]*, )(%[^,]*, )}}%[[C0]], %[[CM]], %[[MIN]], %[[ALIGN]], %[[COUNTS]], %{{[^,]*}}, %[[STREAM]])
func.func @capacity_layer(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %cf = moe.knob "capacity_factor" layer = "capacity_layer" default = 1.25 : f64
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      capacity_factor(%cf)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {capacity = #moe.capacity<factor = 1.25, min = 3, align = 4>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
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

// -----

// GPT-OSS: a bf16 router bias read in GPU memory as f32 (`stored = bf16`:
// the runtime widens it at load time), the expert biases in GPU memory as
// they are, after the experts' weights.

// CHECK-LABEL: func.func @gpt_oss.device(
// CHECK-DAG:     %[[RB:.*]] = moe.weight "router_bias" {device, stored = bf16} : tensor<8xf32>
// CHECK-DAG:     %[[GU:.*]] = moe.weight "gate_up" {device, interleaved, transposed} : tensor<8x64x64xbf16>
// CHECK-DAG:     %[[BGU:.*]] = moe.weight "gate_up_bias" {device, interleaved} : tensor<8x64xbf16>
// CHECK-DAG:     %[[BD:.*]] = moe.weight "down_bias" {device} : tensor<8x64xbf16>
// CHECK-DAG:     %[[RBB:.*]] = bufferization.to_buffer %[[RB]] read_only : tensor<8xf32> to memref<8xf32>
// CHECK-DAG:     %[[RBM:.*]] = memref.cast %[[RBB]] : memref<8xf32> to memref<?xf32>
// CHECK-DAG:     %[[BGUB:.*]] = bufferization.to_buffer %[[BGU]] read_only : tensor<8x64xbf16> to memref<8x64xbf16>
// CHECK-DAG:     %[[BGUM:.*]] = memref.cast %[[BGUB]] : memref<8x64xbf16> to memref<?x?xbf16>
// CHECK-DAG:     %[[BDB:.*]] = bufferization.to_buffer %[[BD]] read_only : tensor<8x64xbf16> to memref<8x64xbf16>
// CHECK-DAG:     %[[BDM:.*]] = memref.cast %[[BDB]] : memref<8x64xbf16> to memref<?x?xbf16>
// CHECK:         call @moe_layer_device_async(%{{[^,]*}}, %{{[^,]*}}, %[[RBM]], %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[BGUM]], %[[BGUM]], %[[BDM]],
func.func @gpt_oss(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %rb = moe.weight "router_bias" : tensor<8xbf16>
  %gu = moe.weight "gate_up" {interleaved, transposed} : tensor<8x64x64xbf16>
  %dn = moe.weight "down" {transposed} : tensor<8x64x32xbf16>
  %bgu = moe.weight "gate_up_bias" {interleaved} : tensor<8x64xbf16>
  %bd = moe.weight "down_bias" : tensor<8x64xbf16>
  %y, %load, %dropped = moe.layer %x router(%wr, %rb : tensor<8x64xbf16>, tensor<8xbf16>)
      experts(%gu, %dn : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      expert_biases(%bgu, %bd : tensor<8x64xbf16>, tensor<8x64xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated, act = swiglu_oai>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// bitsandbytes' router bias: its state describes the tensor, which the
// runtime dequantizes to f32 directly (no `stored`).

// CHECK-LABEL: func.func @bnb_bias.device(
// CHECK-DAG:     moe.weight "router_bias" {bitsandbytes, device} : tensor<8xf32>
func.func @bnb_bias(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" {bitsandbytes} : tensor<8x64xbf16>
  %rb = moe.weight "router_bias" {bitsandbytes} : tensor<8xbf16>
  %gu = moe.weight "gate_up" {bitsandbytes} : tensor<8x64x64xbf16>
  %dn = moe.weight "down" {bitsandbytes} : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %x router(%wr, %rb : tensor<8x64xbf16>, tensor<8xbf16>)
      experts(%gu, %dn : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated, act = swiglu_oai>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// expected-warning @+1 {{no device entry point for @constant_expert_bias: its expert biases must be checkpoint weights (moe.weight)}}
func.func @constant_expert_bias(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %gu = moe.weight "gate_up" : tensor<8x64x64xbf16>
  %dn = moe.weight "down" : tensor<8x64x32xbf16>
  %bgu = moe.weight "gate_up_bias" : tensor<8x64xbf16>
  %bd = arith.constant dense<1.0> : tensor<8x64xbf16>
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%gu, %dn : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      expert_biases(%bgu, %bd : tensor<8x64xbf16>, tensor<8x64xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A router bias rounded to bf16 at load time (`stored = f32`): the device,
// which reads biases in f32, would have the checkpoint's values instead.

// expected-warning @+1 {{no device entry point for @stored_f32_bias: its router and selection biases must be f32, or read from the checkpoint without a conversion (`stored`)}}
func.func @stored_f32_bias(%x: tensor<?x64xbf16>) -> tensor<?x64xbf16> {
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %rb = moe.weight "router_bias" {stored = f32} : tensor<8xbf16>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %x router(%wr, %rb : tensor<8x64xbf16>, tensor<8xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A layer that moe-narrow-to-bf16 computes in bf16 on f16 rows: the device
// entry point takes the f16 rows and two bf16 buffers of the caller, for
// the layer's own input and output; the library rounds the rows into the
// first before the layer (the f32 buffer it would take instead empty), and
// widens the layer's output from the second after it.

// CHECK-LABEL: func.func @narrowed_f16.device(
// CHECK-SAME:      %[[X:[^:]*]]: memref<?x64xf16>, %[[Y:[^:]*]]: memref<?x64xf16>, %[[COUNTS:[^:]*]]: memref<?x?xi64>, %[[XB:[^:]*]]: memref<?x64xbf16>, %[[YB:[^:]*]]: memref<?x64xbf16>, %[[STREAM:[^:]*]]: !gpu.async.token) -> !gpu.async.token
// CHECK:         %[[XH:.*]] = memref.cast %[[X]] : memref<?x64xf16> to memref<?x?xf16>
// CHECK:         %[[NOF:.*]] = memref.alloca() : memref<0x0xf32>
// CHECK:         %[[XF:.*]] = memref.cast %[[NOF]] : memref<0x0xf32> to memref<?x?xf32>
// CHECK:         %[[XBM:.*]] = memref.cast %[[XB]] : memref<?x64xbf16> to memref<?x?xbf16>
// CHECK:         %[[ROUNDED:.*]] = call @moe_rows_to_bf16_async(%[[XF]], %[[XH]], %[[XBM]], %[[STREAM]])
// CHECK:         %[[XT:.*]] = bufferization.to_tensor %[[XB]] restrict : memref<?x64xbf16> to tensor<?x64xbf16>
// CHECK-DAG:     moe.weight "router" {device, stored = f16} : tensor<8x64xbf16>
// CHECK-DAG:     %[[YBM:.*]] = memref.cast %[[YB]] : memref<?x64xbf16> to memref<?x?xbf16>
// CHECK:         %[[DONE:.*]] = call @moe_layer_device_async({{(%[^,]*, )+}}%[[COUNTS]], %[[YBM]], %[[ROUNDED]])
// CHECK:         %[[YH:.*]] = memref.cast %[[Y]] : memref<?x64xf16> to memref<?x?xf16>
// CHECK:         %[[NOF2:.*]] = memref.alloca() : memref<0x0xf32>
// CHECK:         %[[YF:.*]] = memref.cast %[[NOF2]] : memref<0x0xf32> to memref<?x?xf32>
// CHECK:         %[[WIDENED:.*]] = call @moe_rows_from_bf16_async(%[[YBM]], %[[YF]], %[[YH]], %[[DONE]])
// CHECK:         return %[[WIDENED]] : !gpu.async.token
// CHECK-DAG:   func.func private @moe_rows_to_bf16_async(memref<?x?xf32>, memref<?x?xf16>, memref<?x?xbf16>, !gpu.async.token) -> !gpu.async.token
// CHECK-DAG:   func.func private @moe_rows_from_bf16_async(memref<?x?xbf16>, memref<?x?xf32>, memref<?x?xf16>, !gpu.async.token) -> !gpu.async.token
func.func @narrowed_f16(%x: tensor<?x64xf16>) -> tensor<?x64xf16> {
  %wide = arith.extf %x : tensor<?x64xf16> to tensor<?x64xf32>
  %xb = arith.truncf %wide : tensor<?x64xf32> to tensor<?x64xbf16>
  %wr = moe.weight "router" {stored = f16} : tensor<8x64xbf16>
  %g = moe.weight "gate" {stored = f16} : tensor<8x32x64xbf16>
  %u = moe.weight "up" {stored = f16} : tensor<8x32x64xbf16>
  %d = moe.weight "down" {stored = f16} : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %xb router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  %yw = arith.extf %y : tensor<?x64xbf16> to tensor<?x64xf32>
  %yh = arith.truncf %yw : tensor<?x64xf32> to tensor<?x64xf16>
  return %yh : tensor<?x64xf16>
}

// -----

// The same on f32 rows: the f16 buffers are the empty ones.

// CHECK-LABEL: func.func @narrowed_f32.device(
// CHECK-SAME:      %[[X:[^:]*]]: memref<?x64xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %{{[^:]*}}: memref<?x?xi64>, %[[XB:[^:]*]]: memref<?x64xbf16>, %[[YB:[^:]*]]: memref<?x64xbf16>, %[[STREAM:[^:]*]]: !gpu.async.token) -> !gpu.async.token
// CHECK:         %[[XF:.*]] = memref.cast %[[X]] : memref<?x64xf32> to memref<?x?xf32>
// CHECK:         %[[NOH:.*]] = memref.alloca() : memref<0x0xf16>
// CHECK:         %[[XH:.*]] = memref.cast %[[NOH]] : memref<0x0xf16> to memref<?x?xf16>
// CHECK:         call @moe_rows_to_bf16_async(%[[XF]], %[[XH]], %{{[^,]*}}, %[[STREAM]])
// CHECK:         %[[DONE:.*]] = call @moe_layer_device_async(
// CHECK:         %[[YF:.*]] = memref.cast %[[Y]] : memref<?x64xf32> to memref<?x?xf32>
// CHECK:         call @moe_rows_from_bf16_async(%{{[^,]*}}, %[[YF]], %{{[^,]*}}, %[[DONE]])
func.func @narrowed_f32(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %xb = arith.truncf %x : tensor<?x64xf32> to tensor<?x64xbf16>
  %wr = moe.weight "router" {stored = f32} : tensor<8x64xbf16>
  %g = moe.weight "gate" {stored = f32} : tensor<8x32x64xbf16>
  %u = moe.weight "up" {stored = f32} : tensor<8x32x64xbf16>
  %d = moe.weight "down" {stored = f32} : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %xb router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  %yw = arith.extf %y : tensor<?x64xbf16> to tensor<?x64xf32>
  return %yw : tensor<?x64xf32>
}

// -----

// Rounded rows whose layer output is returned in bf16 are not a narrowed
// layer (moe-narrow-to-bf16 widens it back).

// expected-warning @+1 {{no device entry point for @rounded_input_only: its only argument must be the input of its moe.layer}}
func.func @rounded_input_only(%x: tensor<?x64xf32>) -> tensor<?x64xbf16> {
  %xb = arith.truncf %x : tensor<?x64xf32> to tensor<?x64xbf16>
  %wr = moe.weight "router" : tensor<8x64xbf16>
  %g = moe.weight "gate" : tensor<8x32x64xbf16>
  %u = moe.weight "up" : tensor<8x32x64xbf16>
  %d = moe.weight "down" : tensor<8x64x32xbf16>
  %y, %load, %dropped = moe.layer %xb router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
