// RUN: moe-opt %s --moe-fuse-gating --split-input-file | FileCheck %s --check-prefix=GATING
// RUN: moe-opt %s --moe-fuse-expert-io --split-input-file | FileCheck %s --check-prefix=IO

// moe-fuse-gating: router + route -> gate, carrying bias, selection bias,
// tau and the routing.
// GATING-LABEL: func @gating
// GATING-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WG:.*]]: tensor<8x64xf32>, %[[BG:.*]]: tensor<8xf32>, %[[B:.*]]: tensor<8xf32>, %[[TAU:.*]]: f32)
// GATING-NEXT: %[[IDS:.*]], %[[W:.*]] = moe.gate %[[X]], %[[WG]] bias(%[[BG]] : tensor<8xf32>) selection_bias(%[[B]] : tensor<8xf32>) tau(%[[TAU]]) <score = sigmoid, selection = threshold, k = 2> : tensor<?x64xf32>, tensor<8x64xf32>
// GATING-NEXT: return %[[IDS]], %[[W]]
// IO-LABEL: func @gating
// IO: moe.router
func.func @gating(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                  %bg: tensor<8xf32>, %b: tensor<8xf32>, %tau: f32)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %z = moe.router %x, %wg bias(%bg : tensor<8xf32>)
      : tensor<?x64xf32>, tensor<8x64xf32>
  %ids, %w = moe.route %z bias(%b : tensor<8xf32>) tau(%tau)
      <score = sigmoid, selection = threshold, k = 2> : tensor<?x8xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// A loss reads the logits: the [T, E] tensor must exist, so nothing fuses.
// GATING-LABEL: func @gating_with_loss
// GATING-NOT: moe.gate %
// GATING: moe.router
// GATING: moe.route
// GATING: moe.z_loss
// GATING-NOT: moe.gate %
// GATING: return
func.func @gating_with_loss(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<f32>) {
  %z = moe.router %x, %wg : tensor<?x64xf32>, tensor<8x64xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %l = moe.z_loss %z : tensor<?x8xf32>
  return %ids, %w, %l : tensor<?x2xi32>, tensor<?x2xf32>, tensor<f32>
}

// -----

// moe-fuse-expert-io: gather -> gated experts -> combine (+ shared expert
// with its sigmoid gate) -> fused_experts.
// IO-LABEL: func @gated_shared
// IO-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[RT:.*]]: tensor<?xi32>, %[[SIZES:.*]]: tensor<8xi64>, %[[SR:.*]]: tensor<?x2xi32>, %[[SW:.*]]: tensor<?x2xf32>, %[[G:.*]]: tensor<8x96x64xf32>, %[[U:.*]]: tensor<8x96x64xf32>, %[[D:.*]]: tensor<8x64x96xf32>, %[[SG:.*]]: tensor<32x64xf32>, %[[SD:.*]]: tensor<64x32xf32>, %[[WS:.*]]: tensor<1x64xf32>)
// IO-NEXT: %[[Y:.*]] = moe.fused_experts %[[X]] rows(%[[RT]], %[[SIZES]] : tensor<?xi32>, tensor<8xi64>) slots(%[[SR]] : tensor<?x2xi32>) weights(%[[SW]] : tensor<?x2xf32>) experts(%[[G]], %[[U]], %[[D]] : tensor<8x96x64xf32>, tensor<8x96x64xf32>, tensor<8x64x96xf32>) shared(%[[SG]], %[[SG]], %[[SD]], %[[WS]] : tensor<32x64xf32>, tensor<32x64xf32>, tensor<64x32xf32>, tensor<1x64xf32>) {experts = #moe.experts<kind = gated, act = gelu_tanh>} : tensor<?x64xf32>
// IO-NEXT: return %[[Y]]
func.func @gated_shared(%x: tensor<?x64xf32>, %rt: tensor<?xi32>,
                        %sizes: tensor<8xi64>, %sr: tensor<?x2xi32>,
                        %sw: tensor<?x2xf32>, %g: tensor<8x96x64xf32>,
                        %u: tensor<8x96x64xf32>, %d: tensor<8x64x96xf32>,
                        %sg: tensor<32x64xf32>, %sd: tensor<64x32xf32>,
                        %ws: tensor<1x64xf32>) -> tensor<?x64xf32> {
  %xg = moe.gather %x, %rt : tensor<?x64xf32>, tensor<?xi32>
  %yg = moe.gated_experts %xg, %sizes gate(%g : tensor<8x96x64xf32>)
      up(%u : tensor<8x96x64xf32>) down(%d : tensor<8x64x96xf32>)
      act = gelu_tanh : tensor<?x64xf32>, tensor<8xi64>
  %s = moe.shared_expert %x, %sg, %sg, %sd gate(%ws : tensor<1x64xf32>)
      act = gelu_tanh : tensor<?x64xf32>, tensor<32x64xf32>,
                        tensor<32x64xf32>, tensor<64x32xf32>
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      addend(%s : tensor<?x64xf32>) : tensor<?x64xf32>, tensor<?x2xi32>
  return %y : tensor<?x64xf32>
}

// -----

// gate_up experts, and weights applied to the input (gather scale).
// IO-LABEL: func @gate_up_scaled
// IO: moe.fused_experts %{{.*}} rows(%{{.*}}, %{{.*}} : tensor<?xi32>, tensor<4xi64>) scale(%{{.*}} : tensor<?xf32>) slots(%{{.*}} : tensor<?x2xi32>) experts(%{{.*}}, %{{.*}} : tensor<4x64x32xbf16>, tensor<4x32x32xbf16>) {experts = #moe.experts<kind = gated>} : tensor<?x32xbf16>
// IO-NOT: moe.gather
func.func @gate_up_scaled(%x: tensor<?x32xbf16>, %rt: tensor<?xi32>,
                          %rw: tensor<?xf32>, %sizes: tensor<4xi64>,
                          %sr: tensor<?x2xi32>, %gu: tensor<4x64x32xbf16>,
                          %d: tensor<4x32x32xbf16>) -> tensor<?x32xbf16> {
  %xg = moe.gather %x, %rt scale(%rw : tensor<?xf32>)
      : tensor<?x32xbf16>, tensor<?xi32>
  %yg = moe.gated_experts %xg, %sizes gate_up(%gu : tensor<4x64x32xbf16>)
      down(%d : tensor<4x32x32xbf16>) act = silu
      : tensor<?x32xbf16>, tensor<4xi64>
  %y = moe.combine %yg, %sr : tensor<?x32xbf16>, tensor<?x2xi32>
  return %y : tensor<?x32xbf16>
}

// -----

// IO-LABEL: func @mlp
// IO: moe.fused_experts {{.*}} experts(%{{.*}}, %{{.*}} : tensor<4x48x32xf32>, tensor<4x32x48xf32>) {experts = #moe.experts<kind = mlp, act = relu>}
func.func @mlp(%x: tensor<?x32xf32>, %rt: tensor<?xi32>, %sizes: tensor<4xi64>,
               %sr: tensor<?x1xi32>, %sw: tensor<?x1xf32>,
               %w1: tensor<4x48x32xf32>, %w2: tensor<4x32x48xf32>)
    -> tensor<?x32xf32> {
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<4xi64>, tensor<4x48x32xf32>, tensor<4x32x48xf32>
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x1xf32>)
      : tensor<?x32xf32>, tensor<?x1xi32>
  return %y : tensor<?x32xf32>
}

// -----

// Chains the fused op cannot express stay apart: gathered rows read by
// something else, a shared expert of another activation, LoRA experts.
// IO-LABEL: func @not_fused
// IO-NOT: moe.fused_experts
// IO: return
func.func @not_fused(%x: tensor<?x32xf32>, %rt: tensor<?xi32>,
                     %sizes: tensor<4xi64>, %sr: tensor<?x1xi32>,
                     %w1: tensor<4x48x32xf32>, %w2: tensor<4x32x48xf32>,
                     %sg: tensor<16x32xf32>, %sd: tensor<32x16xf32>,
                     %a: tensor<4x4x32xf32>, %b: tensor<4x32x4xf32>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>) {
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<4xi64>, tensor<4x48x32xf32>, tensor<4x32x48xf32>
  %y0 = moe.combine %yg, %sr : tensor<?x32xf32>, tensor<?x1xi32>

  %xg1 = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg1 = moe.mlp_experts %xg1, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<4xi64>, tensor<4x48x32xf32>, tensor<4x32x48xf32>
  %s = moe.shared_expert %x, %sg, %sg, %sd act = silu
      : tensor<?x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x16xf32>
  %y1 = moe.combine %yg1, %sr addend(%s : tensor<?x32xf32>)
      : tensor<?x32xf32>, tensor<?x1xi32>

  %xg2 = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg2 = moe.lora_experts %xg2, %sizes, %a, %b alpha = 8.0
      : tensor<?x32xf32>, tensor<4xi64>, tensor<4x4x32xf32>, tensor<4x32x4xf32>
  %y2 = moe.combine %yg2, %sr : tensor<?x32xf32>, tensor<?x1xi32>
  return %y0, %y1, %y2, %xg : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// LoRA experts with their frozen base and a shared expert: the base and
// the shared expert are the combine's addend (their sum).
// IO-LABEL: func @lora
// IO-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[RT:.*]]: tensor<?xi32>, %[[SIZES:.*]]: tensor<4xi64>, %[[SR:.*]]: tensor<?x2xi32>, %[[SW:.*]]: tensor<?x2xf32>, %[[BASE:.*]]: tensor<32x32xf32>, %[[A:.*]]: tensor<4x4x32xf32>, %[[B:.*]]: tensor<4x32x4xf32>, %[[SG:.*]]: tensor<16x32xf32>, %[[SD:.*]]: tensor<32x16xf32>)
// IO-NEXT: %[[Y:.*]] = moe.fused_experts %[[X]] rows(%[[RT]], %[[SIZES]] : tensor<?xi32>, tensor<4xi64>) slots(%[[SR]] : tensor<?x2xi32>) weights(%[[SW]] : tensor<?x2xf32>) experts(%[[BASE]], %[[A]], %[[B]] : tensor<32x32xf32>, tensor<4x4x32xf32>, tensor<4x32x4xf32>) shared(%[[SG]], %[[SG]], %[[SD]] : tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x16xf32>) {experts = #moe.experts<kind = lora, act = gelu_tanh, alpha = 8.0>} : tensor<?x32xf32>
// IO-NEXT: return %[[Y]]
func.func @lora(%x: tensor<?x32xf32>, %rt: tensor<?xi32>, %sizes: tensor<4xi64>,
                %sr: tensor<?x2xi32>, %sw: tensor<?x2xf32>,
                %base: tensor<32x32xf32>, %a: tensor<4x4x32xf32>,
                %b: tensor<4x32x4xf32>, %sg: tensor<16x32xf32>,
                %sd: tensor<32x16xf32>) -> tensor<?x32xf32> {
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.lora_experts %xg, %sizes, %a, %b alpha = 8.0
      : tensor<?x32xf32>, tensor<4xi64>, tensor<4x4x32xf32>, tensor<4x32x4xf32>
  %b0 = moe.linear %x, %base : tensor<?x32xf32>, tensor<32x32xf32>
  %s = moe.shared_expert %x, %sg, %sg, %sd act = gelu_tanh
      : tensor<?x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>, tensor<32x16xf32>
  %add = arith.addf %b0, %s : tensor<?x32xf32>
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      addend(%add : tensor<?x32xf32>) : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}
