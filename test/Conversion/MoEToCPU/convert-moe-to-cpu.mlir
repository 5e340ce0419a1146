// RUN: moe-opt %s --convert-moe-to-cpu --split-input-file | FileCheck %s

// moe.gate: the router packed by the `pack` kernel (a function argument),
// the bias widened to f32, tau as a one-element tensor, and the routing as
// config words: E, score, selection, k, groups, topk_group, group_score,
// top_p bits, tau bits, softmax_selected, renormalize, scale bits.
// CHECK-LABEL: func @gate
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WG:.*]]: tensor<8x64xf32>, %[[BG:.*]]: tensor<8xbf16>, %[[B:.*]]: tensor<8xf32>, %[[TAU:.*]]: f32)
// CHECK: %[[E0:.*]] = tensor.empty() : tensor<2048xf32>
// CHECK: %[[R:.*]] = moe.ukernel "pack" ins(%[[WG]] : tensor<8x64xf32>) outs(%[[E0]] : tensor<2048xf32>) config = [0, 8] -> tensor<2048xf32>
// CHECK: %[[BIAS:.*]] = arith.extf %[[BG]] : tensor<8xbf16> to tensor<8xf32>
// CHECK: %[[T:.*]] = tensor.from_elements %[[TAU]] : tensor<1xf32>
// CHECK: %[[DIM:.*]] = tensor.dim %[[X]], %{{.*}} : tensor<?x64xf32>
// CHECK: %[[IDS:.*]] = tensor.empty(%[[DIM]]) : tensor<?x2xi32>
// CHECK: %[[W:.*]] = tensor.empty(%{{.*}}) : tensor<?x2xf32>
// CHECK: %[[K:.*]]:2 = moe.ukernel "gate" ins(%[[X]], %[[R]], %[[BIAS]], %[[B]], %[[T]] : tensor<?x64xf32>, tensor<2048xf32>, tensor<8xf32>, tensor<8xf32>, tensor<1xf32>) outs(%[[IDS]], %[[W]] : tensor<?x2xi32>, tensor<?x2xf32>) config = [8, 1, 3, 2, 1, 1, 0, 1065353216, 0, 0, 1, 1075838976] -> tensor<?x2xi32>, tensor<?x2xf32>
// CHECK: return %[[K]]#0, %[[K]]#1
func.func @gate(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                %bg: tensor<8xbf16>, %b: tensor<8xf32>, %tau: f32)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.gate %x, %wg bias(%bg : tensor<8xbf16>)
      selection_bias(%b : tensor<8xf32>) tau(%tau)
      <score = sigmoid, selection = threshold, k = 2, renormalize = true,
       scale = 2.5> : tensor<?x64xf32>, tensor<8x64xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// A checkpoint router is packed at load time (bf16 panels); grouped
// top-k's parameters and top_p land in the config.
// CHECK-LABEL: func @gate_checkpoint
// CHECK: %[[R:.*]] = moe.weight "router" {packing = #moe.packing<source = tensor<16x64xbf16>, first_row = 0, rows = 16>} : tensor<2048xbf16>
// CHECK-NOT: moe.weight "router" :
// CHECK: %[[NONE:.*]] = tensor.empty() : tensor<0xf32>
// CHECK: moe.ukernel "gate" ins(%{{.*}}, %[[R]], %[[NONE]], %{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<2048xbf16>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>) outs({{.*}}) config = [16, 0, 1, 4, 4, 2, 1, 1065353216, 0, 1, 0, 1065353216]
module attributes {moe.checkpoint = "model"} {
  func.func @gate_checkpoint(%x: tensor<?x64xbf16>)
      -> (tensor<?x4xi32>, tensor<?x4xf32>) {
    %wg = moe.weight "router" : tensor<16x64xbf16>
    %ids, %w = moe.gate %x, %wg
        <score = softmax, selection = grouped_top_k, k = 4, groups = 4,
         topk_group = 2, group_score = sum_top2, weights = softmax_selected>
        : tensor<?x64xbf16>, tensor<16x64xbf16>
    return %ids, %w : tensor<?x4xi32>, tensor<?x4xf32>
  }
}

// -----

// bf16 router weights with an f32 input: f32 panels, so that the input is
// not rounded (logits multiply the input as it is).
// CHECK-LABEL: func @gate_mixed
// CHECK: moe.ukernel "pack" ins(%{{.*}} : tensor<8x64xbf16>) outs(%{{.*}} : tensor<2048xf32>)
func.func @gate_mixed(%x: tensor<?x64xf32>, %wg: tensor<8x64xbf16>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %ids, %w = moe.gate %x, %wg <score = softmax, selection = top_k, k = 2>
      : tensor<?x64xf32>, tensor<8x64xbf16>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// Gated experts with a shared expert and its sigmoid gate: every matrix
// packed into f32 panels; the sigmoid gate passes as it is.
// CHECK-LABEL: func @gated_shared
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[RT:.*]]: tensor<?xi32>, %[[SIZES:.*]]: tensor<8xi64>, %[[SR:.*]]: tensor<?x2xi32>, %[[SW:.*]]: tensor<?x2xf32>, %[[G:.*]]: tensor<8x96x64xf32>, %[[U:.*]]: tensor<8x96x64xf32>, %[[D:.*]]: tensor<8x64x96xf32>, %[[SG:.*]]: tensor<32x64xf32>, %[[SD:.*]]: tensor<64x32xf32>, %[[WS:.*]]: tensor<1x64xf32>)
// CHECK: %[[PG:.*]] = moe.ukernel "pack" ins(%[[G]] : tensor<8x96x64xf32>) outs(%{{.*}} : tensor<49152xf32>) config = [0, 96]
// CHECK: %[[PU:.*]] = moe.ukernel "pack" ins(%[[U]] : tensor<8x96x64xf32>) outs(%{{.*}} : tensor<49152xf32>) config = [0, 96]
// CHECK: %[[PD:.*]] = moe.ukernel "pack" ins(%[[D]] : tensor<8x64x96xf32>) outs(%{{.*}} : tensor<49152xf32>) config = [0, 64]
// CHECK: %[[PSG:.*]] = moe.ukernel "pack" ins(%[[SG]] : tensor<32x64xf32>) outs(%{{.*}} : tensor<2048xf32>) config = [0, 32]
// CHECK: %[[PSU:.*]] = moe.ukernel "pack" ins(%[[SG]] : tensor<32x64xf32>) outs(%{{.*}} : tensor<2048xf32>) config = [0, 32]
// CHECK: %[[PSD:.*]] = moe.ukernel "pack" ins(%[[SD]] : tensor<64x32xf32>) outs(%{{.*}} : tensor<2048xf32>) config = [0, 64]
// CHECK: %[[NONE:.*]] = tensor.empty() : tensor<0xf32>
// CHECK: %[[Y0:.*]] = tensor.empty(%{{.*}}) : tensor<?x64xf32>
// CHECK: %[[Y:.*]] = moe.ukernel "expert_ffn" ins(%[[X]], %[[RT]], %[[SIZES]], %[[NONE]], %[[SR]], %[[SW]], %[[PG]], %[[PU]], %[[PD]], %[[PSG]], %[[PSU]], %[[PSD]], %[[WS]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : {{.*}}) outs(%[[Y0]] : tensor<?x64xf32>) config = [96, 1, 32, 1, 64, 1065353216, 0] -> tensor<?x64xf32>
// CHECK: return %[[Y]]
func.func @gated_shared(%x: tensor<?x64xf32>, %rt: tensor<?xi32>,
                        %sizes: tensor<8xi64>, %sr: tensor<?x2xi32>,
                        %sw: tensor<?x2xf32>, %g: tensor<8x96x64xf32>,
                        %u: tensor<8x96x64xf32>, %d: tensor<8x64x96xf32>,
                        %sg: tensor<32x64xf32>, %sd: tensor<64x32xf32>,
                        %ws: tensor<1x64xf32>) -> tensor<?x64xf32> {
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
      experts(%g, %u, %d : tensor<8x96x64xf32>, tensor<8x96x64xf32>,
                           tensor<8x64x96xf32>)
      shared(%sg, %sg, %sd, %ws : tensor<32x64xf32>, tensor<32x64xf32>,
                                  tensor<64x32xf32>, tensor<1x64xf32>)
      {experts = #moe.experts<kind = gated, act = gelu_tanh>}
      : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A checkpoint gate_up [E, 2f, d] in bf16 becomes two load-time packed
// weights, rows [0, f) and [f, 2f); the checkpoint tensor itself goes.
// CHECK-LABEL: func @gate_up_checkpoint
// CHECK-NOT: moe.weight stacked ["gu0", "gu1"] :
// CHECK-DAG: %[[PG:.*]] = moe.weight stacked ["gu0", "gu1"] {packing = #moe.packing<source = tensor<2x64x32xbf16>, first_row = 0, rows = 32>} : tensor<2048xbf16>
// CHECK-DAG: %[[PU:.*]] = moe.weight stacked ["gu0", "gu1"] {packing = #moe.packing<source = tensor<2x64x32xbf16>, first_row = 32, rows = 32>} : tensor<2048xbf16>
// CHECK-DAG: %[[PD:.*]] = moe.weight stacked ["d0", "d1"] {packing = #moe.packing<source = tensor<2x32x32xbf16>, first_row = 0, rows = 32>} : tensor<2048xbf16>
// CHECK: moe.ukernel "expert_ffn" ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[PG]], %[[PU]], %[[PD]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x32xf32>, tensor<?xi32>, tensor<2xi64>, tensor<?xf32>, tensor<?x1xi32>, tensor<0xf32>, tensor<2048xbf16>, tensor<2048xbf16>, tensor<2048xbf16>, tensor<0xbf16>, tensor<0xbf16>, tensor<0xbf16>, tensor<0xf32>, tensor<0xbf16>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>) outs(%{{.*}} : tensor<?x32xf32>) config = [32, 0, 0, 0, 32, 1065353216, 0]
module attributes {moe.checkpoint = "model"} {
  func.func @gate_up_checkpoint(%x: tensor<?x32xf32>, %rt: tensor<?xi32>,
                                %rw: tensor<?xf32>, %sizes: tensor<2xi64>,
                                %sr: tensor<?x1xi32>) -> tensor<?x32xf32> {
    %gu = moe.weight stacked ["gu0", "gu1"] : tensor<2x64x32xbf16>
    %d = moe.weight stacked ["d0", "d1"] : tensor<2x32x32xbf16>
    %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<2xi64>)
        scale(%rw : tensor<?xf32>) slots(%sr : tensor<?x1xi32>)
        experts(%gu, %d : tensor<2x64x32xbf16>, tensor<2x32x32xbf16>)
        {experts = #moe.experts<kind = gated>} : tensor<?x32xf32>
    return %y : tensor<?x32xf32>
  }
}

// -----

// MLP experts have no up projection; f16 weights pack to f32 panels, and a
// bf16 router next to f32 experts does not make the experts bf16.
// CHECK-LABEL: func @mlp_f16
// CHECK: moe.ukernel "pack" ins(%{{.*}} : tensor<4x48x32xf16>) outs(%{{.*}} : tensor<8192xf32>) config = [0, 48]
// CHECK: moe.ukernel "pack" ins(%{{.*}} : tensor<4x32x48xf16>) outs(%{{.*}} : tensor<6144xf32>) config = [0, 32]
// CHECK: moe.ukernel "expert_ffn" ins({{.*}} : tensor<?x32xf16>, tensor<?xi32>, tensor<4xi64>, tensor<0xf32>, tensor<?x1xi32>, tensor<?x1xf32>, tensor<8192xf32>, tensor<0xf32>, tensor<6144xf32>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>, tensor<0xf32>) outs(%{{.*}} : tensor<?x32xf16>) config = [48, 3, 0, 3, 32, 1065353216, 0]
func.func @mlp_f16(%x: tensor<?x32xf16>, %rt: tensor<?xi32>,
                   %sizes: tensor<4xi64>, %sr: tensor<?x1xi32>,
                   %sw: tensor<?x1xf32>, %w1: tensor<4x48x32xf16>,
                   %w2: tensor<4x32x48xf16>) -> tensor<?x32xf16> {
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<4xi64>)
      slots(%sr : tensor<?x1xi32>) weights(%sw : tensor<?x1xf32>)
      experts(%w1, %w2 : tensor<4x48x32xf16>, tensor<4x32x48xf16>)
      {experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x32xf16>
  return %y : tensor<?x32xf16>
}

// -----

// bf16 routed experts with an f32 shared expert: one panel type for all,
// f32, so that nothing is rounded.
// CHECK-LABEL: func @mixed_panels
// CHECK-COUNT-6: moe.ukernel "pack" {{.*}} -> tensor<{{[0-9]+}}xf32>
// CHECK: moe.ukernel "expert_ffn"
func.func @mixed_panels(%x: tensor<?x32xf32>, %rt: tensor<?xi32>,
                        %sizes: tensor<4xi64>, %sr: tensor<?x1xi32>,
                        %g: tensor<4x48x32xbf16>, %d: tensor<4x32x48xbf16>,
                        %sg: tensor<16x32xf32>, %sd: tensor<32x16xf32>)
    -> tensor<?x32xf32> {
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<4xi64>)
      slots(%sr : tensor<?x1xi32>)
      experts(%g, %g, %d : tensor<4x48x32xbf16>, tensor<4x48x32xbf16>,
                           tensor<4x32x48xbf16>)
      shared(%sg, %sg, %sd : tensor<16x32xf32>, tensor<16x32xf32>,
                             tensor<32x16xf32>)
      {experts = #moe.experts<kind = gated>} : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// LoRA experts: A [E, r, d] packs like a gate of r rows, B [E, d_out, r]
// like a down projection, the frozen base [d_out, d] is one more operand,
// no activation (4), routed scale alpha / r = 16 / 8 = 2.0.
// CHECK-LABEL: func @lora
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %{{.*}}: tensor<?xi32>, %{{.*}}: tensor<4xi64>, %{{.*}}: tensor<?x1xi32>, %[[BASE:.*]]: tensor<48x64xf32>, %[[A:.*]]: tensor<4x8x64xf32>, %[[B:.*]]: tensor<4x48x8xf32>)
// CHECK-DAG: %[[PA:.*]] = moe.ukernel "pack" ins(%[[A]] : tensor<4x8x64xf32>) outs(%{{.*}} : tensor<8192xf32>) config = [0, 8]
// CHECK-DAG: %[[PBASE:.*]] = moe.ukernel "pack" ins(%[[BASE]] : tensor<48x64xf32>) outs(%{{.*}} : tensor<4096xf32>) config = [0, 48]
// CHECK-DAG: %[[PB:.*]] = moe.ukernel "pack" ins(%[[B]] : tensor<4x48x8xf32>) outs(%{{.*}} : tensor<2048xf32>) config = [0, 48]
// CHECK: moe.ukernel "expert_ffn" ins(%[[X]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[PA]], %{{.*}}, %[[PB]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[PBASE]], %{{.*}}, %{{.*}}, %{{.*}} : {{.*}}) outs(%{{.*}} : tensor<?x48xf32>) config = [8, 4, 0, 0, 48, 1073741824, 0] -> tensor<?x48xf32>
func.func @lora(%x: tensor<?x64xf32>, %rt: tensor<?xi32>, %sizes: tensor<4xi64>,
                %sr: tensor<?x1xi32>, %base: tensor<48x64xf32>,
                %a: tensor<4x8x64xf32>, %b: tensor<4x48x8xf32>)
    -> tensor<?x48xf32> {
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<4xi64>)
      slots(%sr : tensor<?x1xi32>)
      experts(%base, %a, %b : tensor<48x64xf32>, tensor<4x8x64xf32>,
                              tensor<4x48x8xf32>)
      {experts = #moe.experts<kind = lora, alpha = 16.0>} : tensor<?x64xf32>
  return %y : tensor<?x48xf32>
}

// -----

// Weights of dynamic shape are left to the reference lowering.
// CHECK-LABEL: func @dynamic_weights
// CHECK-NOT: moe.ukernel
// CHECK: moe.fused_experts
// CHECK: moe.gate
func.func @dynamic_weights(%x: tensor<?x32xf32>, %rt: tensor<?xi32>,
                           %sizes: tensor<4xi64>, %sr: tensor<?x1xi32>,
                           %w1: tensor<4x?x32xf32>, %w2: tensor<4x32x?xf32>,
                           %wg: tensor<?x32xf32>)
    -> (tensor<?x32xf32>, tensor<?x1xi32>, tensor<?x1xf32>) {
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<4xi64>)
      slots(%sr : tensor<?x1xi32>)
      experts(%w1, %w2 : tensor<4x?x32xf32>, tensor<4x32x?xf32>)
      {experts = #moe.experts<kind = mlp>} : tensor<?x32xf32>
  %ids, %w = moe.gate %x, %wg <score = softmax, selection = top_k, k = 1>
      : tensor<?x32xf32>, tensor<?x32xf32>
  return %y, %ids, %w : tensor<?x32xf32>, tensor<?x1xi32>, tensor<?x1xf32>
}

// -----

// A fused shared gate_up: rows [0, fs) and [fs, 2 fs) packed as the gate
// and up panels, no sigmoid gate.
// CHECK-LABEL: func @shared_gate_up
// CHECK-SAME: %[[SGU:[^:]*]]: tensor<64x64xbf16>, %[[SD:[^:]*]]: tensor<64x32xbf16>)
// CHECK: %[[PSG:.*]] = moe.ukernel "pack" ins(%[[SGU]] : tensor<64x64xbf16>) outs(%{{.*}} : tensor<2048xbf16>) config = [0, 32]
// CHECK: %[[PSU:.*]] = moe.ukernel "pack" ins(%[[SGU]] : tensor<64x64xbf16>) outs(%{{.*}} : tensor<2048xbf16>) config = [32, 32]
// CHECK: %[[PSD:.*]] = moe.ukernel "pack" ins(%[[SD]] : tensor<64x32xbf16>) outs(%{{.*}} : tensor<2048xbf16>) config = [0, 64]
// CHECK: moe.ukernel "expert_ffn" ins({{.*}}, %[[PSG]], %[[PSU]], %[[PSD]], %{{.*}}, %{{.*}} : {{.*}}) {{.*}} config = [32, 0, 32, 0, 64, 1065353216, 0]
func.func @shared_gate_up(%x: tensor<?x64xbf16>, %rt: tensor<?xi32>,
                          %sizes: tensor<8xi64>, %sr: tensor<?x2xi32>,
                          %sw: tensor<?x2xf32>, %gu: tensor<8x64x64xbf16>,
                          %d: tensor<8x64x32xbf16>, %sgu: tensor<64x64xbf16>,
                          %sd: tensor<64x32xbf16>) -> tensor<?x64xbf16> {
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
      experts(%gu, %d : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      shared(%sgu, %sd : tensor<64x64xbf16>, tensor<64x32xbf16>)
      {experts = #moe.experts<kind = gated>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// The rows of a checkpoint weight that moe-decompose took with
// tensor.extract_slice pack from the whole weight at load time; the
// slices and the unpacked weight go.
// CHECK-LABEL: func @sliced_checkpoint_rows
// CHECK-NOT: tensor.extract_slice
// CHECK-NOT: moe.weight "sgu" :
// CHECK: moe.weight "sgu" {packing = #moe.packing<source = tensor<64x64xbf16>, first_row = 0, rows = 32>} : tensor<2048xbf16>
// CHECK: moe.weight "sgu" {packing = #moe.packing<source = tensor<64x64xbf16>, first_row = 32, rows = 32>} : tensor<2048xbf16>
// CHECK-NOT: tensor.extract_slice
module attributes {moe.checkpoint = "ckpt"} {
func.func @sliced_checkpoint_rows(%x: tensor<?x64xbf16>, %rt: tensor<?xi32>,
    %sizes: tensor<8xi64>, %sr: tensor<?x2xi32>, %sw: tensor<?x2xf32>,
    %gu: tensor<8x64x64xbf16>, %d: tensor<8x64x32xbf16>,
    %sd: tensor<64x32xbf16>) -> tensor<?x64xbf16> {
  %sgu = moe.weight "sgu" : tensor<64x64xbf16>
  %sg = tensor.extract_slice %sgu[0, 0] [32, 64] [1, 1]
      : tensor<64x64xbf16> to tensor<32x64xbf16>
  %su = tensor.extract_slice %sgu[32, 0] [32, 64] [1, 1]
      : tensor<64x64xbf16> to tensor<32x64xbf16>
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
      experts(%gu, %d : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      shared(%sg, %su, %sd : tensor<32x64xbf16>, tensor<32x64xbf16>,
                             tensor<64x32xbf16>)
      {experts = #moe.experts<kind = gated>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
}

// -----

// GPT-OSS's experts: swiglu_oai (code 5) and the biases in f32, the fused
// gate_up bias twice, up from column `inner` (the last config word).
// CHECK-LABEL: func @expert_biases
// CHECK-SAME: %[[BGU:[^:]*]]: tensor<4x64xbf16>, %[[BD:[^:]*]]: tensor<4x32xbf16>
// CHECK-DAG: %[[FGU:.*]] = arith.extf %[[BGU]] : tensor<4x64xbf16> to tensor<4x64xf32>
// CHECK-DAG: %[[FD:.*]] = arith.extf %[[BD]] : tensor<4x32xbf16> to tensor<4x32xf32>
// CHECK: moe.ukernel "expert_ffn" ins({{.*}}, %[[FGU]], %[[FGU]], %[[FD]] : {{.*}}) outs({{.*}}) config = [32, 5, 0, 5, 32, 1065353216, 32]
func.func @expert_biases(%x: tensor<?x32xbf16>, %rt: tensor<?xi32>,
    %sizes: tensor<4xi64>, %sr: tensor<?x2xi32>, %sw: tensor<?x2xf32>,
    %gu: tensor<4x64x32xbf16>, %d: tensor<4x32x32xbf16>,
    %bgu: tensor<4x64xbf16>, %bd: tensor<4x32xbf16>) -> tensor<?x32xbf16> {
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<4xi64>)
      slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
      experts(%gu, %d : tensor<4x64x32xbf16>, tensor<4x32x32xbf16>)
      expert_biases(%bgu, %bd : tensor<4x64xbf16>, tensor<4x32xbf16>)
      {experts = #moe.experts<kind = gated, act = swiglu_oai>} : tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}
