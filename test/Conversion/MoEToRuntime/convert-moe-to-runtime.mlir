// RUN: moe-opt %s --convert-moe-to-runtime | FileCheck %s
// RUN: moe-opt %s --convert-moe-to-runtime --convert-moe-weight-buffers \
// RUN:   | FileCheck %s --check-prefix=CALLS

// Weights become buffers bound by the runtime (ids in a module table, one
// per distinct tensor, `device` when some use reads it in GPU memory);
// statistics become runtime calls; a knob read in GPU memory becomes its
// buffer, then the runtime call that returns it.

// CHECK: module attributes {moe.checkpoint = "ckpt", moe.knobs = [{default = 5.000000e-01 : f64, device = true, id = 0 : i64, layer = "moe_layer_0", name = "tau"}], moe.stats = [{experts = 4 : i64, id = 0 : i64, layer = "moe_layer_0"}], moe.weights = [{id = 0 : i64, names = ["gate.weight"], stacked = false, type = tensor<4x16xbf16>}, {device = true, id = 1 : i64, names = ["e0", "e1", "e2", "e3"], stacked = true, type = tensor<4x8x16xbf16>}]}
// CHECK: func.func private @moe_rt_record_stats(i64, memref<?xi64>, memref<?xi64>, i64) attributes {llvm.emit_c_interface}
// CHECK-LABEL: func @moe_layer_0
// CHECK: %[[B0:.*]] = moe.weight_buffer 0 : memref<4x16xbf16>
// CHECK: bufferization.to_tensor %[[B0]] restrict : memref<4x16xbf16> to tensor<4x16xbf16>
// CHECK: %[[B1:.*]] = moe.weight_buffer 1 : memref<4x8x16xbf16>
// CHECK-NOT: moe.weight_buffer 2
// CHECK: moe.weight_buffer 1 {device} : memref<4x8x16xbf16>
// CHECK: %[[T:.*]] = arith.index_cast %{{.*}} : index to i64
// CHECK: %[[A:.*]] = bufferization.to_buffer %{{.*}} read_only : tensor<4xi64> to memref<4xi64>
// CHECK: %[[AC:.*]] = memref.cast %[[A]] : memref<4xi64> to memref<?xi64>
// CHECK: call @moe_rt_record_stats(%{{.*}}, %[[AC]], %{{.*}}, %[[T]]) : (i64, memref<?xi64>, memref<?xi64>, i64) -> ()
// CHECK: moe.knob_buffer 0 : memref<1xf64>

// CALLS: func.func private @moe_rt_device_knob(i64) -> memref<?xf64> attributes {llvm.emit_c_interface}
// CALLS: func.func private @moe_rt_weight_bf16_3d(i64) -> memref<?x?x?xbf16> attributes {llvm.emit_c_interface}
// CALLS: func.func private @moe_rt_weight_bf16_2d(i64) -> memref<?x?xbf16> attributes {llvm.emit_c_interface}
// CALLS-LABEL: func @moe_layer_0
// CALLS: %[[ID:.*]] = arith.constant 0 : i64
// CALLS: %[[M:.*]] = call @moe_rt_weight_bf16_2d(%[[ID]]) : (i64) -> memref<?x?xbf16>
// CALLS: memref.cast %[[M]] : memref<?x?xbf16> to memref<4x16xbf16>
// CALLS: call @moe_rt_record_stats
// CALLS: %[[KID:.*]] = arith.constant 0 : i64
// CALLS-NEXT: %[[KM:.*]] = call @moe_rt_device_knob(%[[KID]]) : (i64) -> memref<?xf64>
// CALLS: memref.cast %[[KM]] : memref<?xf64> to memref<1xf64>
// CALLS-NOT: moe.weight_buffer
// CALLS-NOT: moe.knob_buffer
module attributes {moe.checkpoint = "ckpt"} {
  func.func @moe_layer_0(%x: tensor<?x16xbf16>, %a: tensor<4xi64>,
                         %d: tensor<4xi64>, %t: index)
      -> (tensor<4x16xbf16>, tensor<4x8x16xbf16>, tensor<4x8x16xbf16>,
          tensor<1xf64>) {
    %wg = moe.weight "gate.weight" : tensor<4x16xbf16>
    %w1 = moe.weight stacked ["e0", "e1", "e2", "e3"] : tensor<4x8x16xbf16>
    %again = moe.weight stacked ["e0", "e1", "e2", "e3"] {device} : tensor<4x8x16xbf16>
    moe.record_stats %a, %d tokens(%t) layer = "moe_layer_0" : tensor<4xi64>
    %tau = moe.knob "tau" layer = "moe_layer_0" default = 0.5 {device} : tensor<1xf64>
    return %wg, %w1, %again, %tau : tensor<4x16xbf16>, tensor<4x8x16xbf16>,
                                    tensor<4x8x16xbf16>, tensor<1xf64>
  }
}
