// RUN: moe-opt %s --convert-moe-to-runtime --split-input-file -verify-diagnostics | FileCheck %s

// Knobs become calls by id (one id per layer and name, read as f64 and
// truncated for f32); co-activation records pass the expert ids, and their
// statistics entry says so (a device entry point's table has the pair rows).

// CHECK: module attributes {moe.knobs = [{default = 1.500000e-01 : f64, id = 0 : i64, layer = "moe_layer_0", name = "tau"}, {default = 1.250000e+00 : f64, id = 1 : i64, layer = "moe_layer_0", name = "capacity_factor"}], moe.stats = [{coactivation = true, experts = 4 : i64, id = 0 : i64, layer = "moe_layer_0"}]}
// CHECK-DAG: func.func private @moe_rt_knob(i64) -> f64 attributes {llvm.emit_c_interface}
// CHECK-DAG: func.func private @moe_rt_record_coactivation(i64, memref<?x?xi32>) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @moe_layer_0
// CHECK: call @moe_rt_record_stats
// CHECK: %[[IDS:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<?x2xi32> to memref<?x2xi32>
// CHECK: %[[CAST:.*]] = memref.cast %[[IDS]] : memref<?x2xi32> to memref<?x?xi32>
// CHECK: call @moe_rt_record_coactivation(%{{.*}}, %[[CAST]]) : (i64, memref<?x?xi32>) -> ()
// CHECK: %[[K0:.*]] = arith.constant 0 : i64
// CHECK: %[[TAU64:.*]] = call @moe_rt_knob(%[[K0]]) : (i64) -> f64
// CHECK: %[[TAU:.*]] = arith.truncf %[[TAU64]] : f64 to f32
// CHECK: %[[K1:.*]] = arith.constant 1 : i64
// CHECK: %[[CF:.*]] = call @moe_rt_knob(%[[K1]]) : (i64) -> f64
// CHECK: %[[K0B:.*]] = arith.constant 0 : i64
// CHECK: call @moe_rt_knob(%[[K0B]]) : (i64) -> f64
// CHECK: return %[[TAU]], %[[CF]]
func.func @moe_layer_0(%a: tensor<4xi64>, %t: index, %ids: tensor<?x2xi32>)
    -> (f32, f64, f32) {
  moe.record_stats %a, %a tokens(%t) coactivation(%ids : tensor<?x2xi32>) layer = "moe_layer_0" : tensor<4xi64>
  %tau = moe.knob "tau" layer = "moe_layer_0" default = 0.15 : f32
  %cf = moe.knob "capacity_factor" layer = "moe_layer_0" default = 1.25 : f64
  %again = moe.knob "tau" layer = "moe_layer_0" default = 0.15 : f32
  return %tau, %cf, %again : f32, f64, f32
}

// -----

func.func @conflict() -> (f32, f32) {
  // expected-note@+1 {{first declared here}}
  %a = moe.knob "tau" layer = "l" default = 0.15 : f32
  // expected-error@+1 {{knob 'tau' of layer 'l' declared with two defaults}}
  %b = moe.knob "tau" layer = "l" default = 0.25 : f32
  return %a, %b : f32, f32
}

// -----

// A device knob shares the id of the same knob read on the host; the table
// marks it `device` (the runtime keeps a copy in GPU memory), and the read
// becomes moe.knob_buffer, which convert-moe-weight-buffers turns into
// moe_rt_device_knob after bufferization.

// CHECK: module attributes {moe.knobs = [{default = 2.000000e+00 : f64, id = 0 : i64, layer = "l", name = "capacity_factor"}, {default = 1.000000e-01 : f64, device = true, id = 1 : i64, layer = "l", name = "tau"}]}
// CHECK-LABEL: func @device_knob
// CHECK: call @moe_rt_knob
// CHECK: %[[B:.*]] = moe.knob_buffer 1 : memref<1xf64>
// CHECK: %[[T:.*]] = bufferization.to_tensor %[[B]] restrict : memref<1xf64> to tensor<1xf64>
// CHECK: call @moe_rt_knob
// CHECK: return %{{.*}}, %[[T]], %{{.*}}
func.func @device_knob() -> (f64, tensor<1xf64>, f32) {
  %cf = moe.knob "capacity_factor" layer = "l" default = 2.0 : f64
  %dev = moe.knob "tau" layer = "l" default = 0.1 {device} : tensor<1xf64>
  %tau = moe.knob "tau" layer = "l" default = 0.1 : f32
  return %cf, %dev, %tau : f64, tensor<1xf64>, f32
}
