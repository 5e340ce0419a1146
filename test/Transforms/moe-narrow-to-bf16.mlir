// RUN: moe-opt %s --moe-narrow-to-bf16 --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-narrow-to-bf16 --moe-narrow-to-bf16 --split-input-file \
// RUN:   | FileCheck %s --check-prefix=TWICE

// Checkpoint weights get a bf16 moe.weight of the same tensors that the
// runtime rounds at load time (`stored` names what the checkpoint holds,
// and goes where that is bf16); the input is rounded by arith.truncf and
// the output widened back. The router bias stays f32; the expert biases
// are rounded. FP8 weights keep their scales, and bitsandbytes' weights
// their states, dequantized to bf16 directly.
// CHECK-LABEL: func @checkpoint
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>) -> tensor<?x32xf32>
// CHECK-DAG: %[[WG:.*]] = moe.weight "router" {bitsandbytes} : tensor<8x32xbf16>
// CHECK-DAG: %[[BG:.*]] = moe.weight "router.bias" : tensor<8xf32>
// CHECK-DAG: %[[GU:.*]] = moe.weight "gate_up" : tensor<8x96x32xbf16>
// CHECK-DAG: %[[D:.*]] = moe.weight "down" {scale_block = array<i64: 16, 16>, scales = ["down_scale"], stored = f8E4M3FN} : tensor<8x32x48xbf16>
// CHECK-DAG: %[[BGU:.*]] = moe.weight "gate_up.bias" {stored = f16} : tensor<8x96xbf16>
// CHECK-DAG: %[[BD:.*]] = moe.weight "down.bias" {stored = f32} : tensor<8x32xbf16>
// CHECK-DAG: %[[XB:.*]] = arith.truncf %[[X]] : tensor<?x32xf32> to tensor<?x32xbf16>
// CHECK: %[[Y:.*]], %{{.*}}, %{{.*}} = moe.layer %[[XB]] router(%[[WG]], %[[BG]] : tensor<8x32xbf16>, tensor<8xf32>)
// CHECK-SAME: experts(%[[GU]], %[[D]] : tensor<8x96x32xbf16>, tensor<8x32x48xbf16>)
// CHECK-SAME: expert_biases(%[[BGU]], %[[BD]] : tensor<8x96xbf16>, tensor<8x32xbf16>)
// CHECK-SAME: : tensor<?x32xbf16>
// CHECK: %[[W:.*]] = arith.extf %[[Y]] : tensor<?x32xbf16> to tensor<?x32xf32>
// CHECK: return %[[W]] : tensor<?x32xf32>
// The f32 weights that only the layer read are gone.
// CHECK-NOT: tensor<8x32xf32>
// TWICE-LABEL: func @checkpoint
// TWICE-COUNT-1: arith.truncf
// TWICE-COUNT-1: arith.extf
// TWICE-NOT: arith.truncf
// TWICE: return
module attributes {moe.checkpoint = "model"} {
  func.func @checkpoint(%x: tensor<?x32xf32>) -> tensor<?x32xf32> {
    %wg = moe.weight "router" {bitsandbytes} : tensor<8x32xf32>
    %bg = moe.weight "router.bias" : tensor<8xf32>
    %gu = moe.weight "gate_up" {stored = bf16} : tensor<8x96x32xf32>
    %d = moe.weight "down" {stored = f8E4M3FN, scales = ["down_scale"],
                            scale_block = array<i64: 16, 16>}
        : tensor<8x32x48xf32>
    %bgu = moe.weight "gate_up.bias" {stored = f16} : tensor<8x96xf32>
    %bd = moe.weight "down.bias" : tensor<8x32xf32>
    %y, %l, %dr = moe.layer %x router(%wg, %bg : tensor<8x32xf32>, tensor<8xf32>)
        experts(%gu, %d : tensor<8x96x32xf32>, tensor<8x32x48xf32>)
        expert_biases(%bgu, %bd : tensor<8x96xf32>, tensor<8x32xf32>)
        {routing = #moe.routing<score = logits, selection = top_k, k = 4,
                                weights = softmax_selected>,
         experts = #moe.experts<kind = gated, act = swiglu_oai>} : tensor<?x32xf32>
    return %y : tensor<?x32xf32>
  }
}

// -----

// f16 operands that are not checkpoint weights are rounded by
// arith.truncf (through f32: one rounding), once each however many layers
// read them; a shared expert's weights too; the counts are left alone.
// CHECK-LABEL: func @arguments
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf16>, %[[WG:.*]]: tensor<8x32xf16>,
// CHECK-COUNT-7: arith.truncf %{{.*}} : tensor<{{[0-9x]+}}xf32> to tensor<{{[0-9x]+}}xbf16>
// CHECK: %[[XW:.*]] = arith.extf %[[X]] : tensor<?x32xf16> to tensor<?x32xf32>
// CHECK: %[[XB:.*]] = arith.truncf %[[XW]] : tensor<?x32xf32> to tensor<?x32xbf16>
// CHECK-NOT: arith.truncf
// CHECK: %[[A:.*]], %[[LA:.*]], %{{.*}} = moe.layer %[[XB]] router(%{{.*}} : tensor<8x32xbf16>)
// CHECK-SAME: shared(%{{.*}}, %{{.*}}, %{{.*}} : tensor<32x32xbf16>, tensor<32x32xbf16>, tensor<32x32xbf16>)
// CHECK-SAME: : tensor<?x32xbf16>
// CHECK: %[[A32:.*]] = arith.extf %[[A]] : tensor<?x32xbf16> to tensor<?x32xf32>
// CHECK: %[[AH:.*]] = arith.truncf %[[A32]] : tensor<?x32xf32> to tensor<?x32xf16>
// CHECK: %[[AW:.*]] = arith.extf %[[AH]] : tensor<?x32xf16> to tensor<?x32xf32>
// CHECK: %[[AB:.*]] = arith.truncf %[[AW]] : tensor<?x32xf32> to tensor<?x32xbf16>
// CHECK: %[[B:.*]], %[[LB:.*]], %{{.*}} = moe.layer %[[AB]]
// CHECK: %[[B32:.*]] = arith.extf %[[B]] : tensor<?x32xbf16> to tensor<?x32xf32>
// CHECK: %[[BH:.*]] = arith.truncf %[[B32]] : tensor<?x32xf32> to tensor<?x32xf16>
// CHECK: return %[[BH]], %[[LA]], %[[LB]] : tensor<?x32xf16>, tensor<8xi64>, tensor<8xi64>
func.func @arguments(%x: tensor<?x32xf16>, %wg: tensor<8x32xf16>,
                     %g: tensor<8x16x32xf16>, %u: tensor<8x16x32xf16>,
                     %d: tensor<8x32x16xf16>, %sg: tensor<32x32xf16>,
                     %su: tensor<32x32xf16>, %sd: tensor<32x32xf16>)
    -> (tensor<?x32xf16>, tensor<8xi64>, tensor<8xi64>) {
  %a, %la, %da = moe.layer %x router(%wg : tensor<8x32xf16>)
      experts(%g, %u, %d : tensor<8x16x32xf16>, tensor<8x16x32xf16>,
                           tensor<8x32x16xf16>)
      shared(%sg, %su, %sd : tensor<32x32xf16>, tensor<32x32xf16>,
                             tensor<32x32xf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated>} : tensor<?x32xf16>
  %b, %lb, %db = moe.layer %a router(%wg : tensor<8x32xf16>)
      experts(%g, %u, %d : tensor<8x16x32xf16>, tensor<8x16x32xf16>,
                           tensor<8x32x16xf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated>} : tensor<?x32xf16>
  return %b, %la, %lb : tensor<?x32xf16>, tensor<8xi64>, tensor<8xi64>
}

// -----

// A bf16 layer is left alone; a bf16 layer with f32 weights gets them
// rounded, and its output needs no widening.
// CHECK-LABEL: func @bf16
// CHECK-COUNT-1: arith.truncf %{{.*}} : tensor<8x16x32xf32> to tensor<8x16x32xbf16>
// CHECK-NOT: arith.truncf
// CHECK-NOT: arith.extf
// CHECK: return
func.func @bf16(%x: tensor<?x32xbf16>, %wg: tensor<8x32xbf16>,
                %w1: tensor<8x16x32xbf16>, %w2: tensor<8x32x16xbf16>,
                %g: tensor<8x16x32xf32>) -> tensor<?x32xbf16> {
  %a, %la, %da = moe.layer %x router(%wg : tensor<8x32xbf16>)
      experts(%w1, %w2 : tensor<8x16x32xbf16>, tensor<8x32x16xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x32xbf16>
  %b, %lb, %db = moe.layer %a router(%wg : tensor<8x32xbf16>)
      experts(%g, %w2 : tensor<8x16x32xf32>, tensor<8x32x16xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x32xbf16>
  return %b : tensor<?x32xbf16>
}

// -----

// An f16 layer's weight stored in f32 is rounded to bf16 from the
// checkpoint's values, once: `stored` stays f32.
// CHECK-LABEL: func @f16_layer
// CHECK: moe.weight "w1" {stored = f32} : tensor<8x32x64xbf16>
// CHECK: moe.weight "w2" {stored = f16} : tensor<8x64x32xbf16>
// CHECK: moe.layer {{.*}} : tensor<?x64xbf16>
module attributes {moe.checkpoint = "model"} {
  func.func @f16_layer(%x: tensor<?x64xf16>, %wg: tensor<8x64xf16>)
      -> tensor<?x64xf16> {
    %w1 = moe.weight "w1" {stored = f32} : tensor<8x32x64xf16>
    %w2 = moe.weight "w2" : tensor<8x64x32xf16>
    %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf16>)
        experts(%w1, %w2 : tensor<8x32x64xf16>, tensor<8x64x32xf16>)
        {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
         experts = #moe.experts<kind = mlp>} : tensor<?x64xf16>
    return %y : tensor<?x64xf16>
  }
}
