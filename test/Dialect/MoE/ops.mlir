// RUN: moe-opt %s | moe-opt | FileCheck %s
// RUN: moe-opt %s --mlir-print-op-generic | moe-opt | FileCheck %s

// CHECK-LABEL: func @router
func.func @router(%x: tensor<?x64xbf16>, %wg: tensor<8x64xbf16>,
                  %bg: tensor<8xbf16>) -> (tensor<?x8xf32>, tensor<?x8xf32>) {
  // CHECK: %[[Z:.*]] = moe.router %{{.*}}, %{{.*}} : tensor<?x64xbf16>, tensor<8x64xbf16>
  %z = moe.router %x, %wg : tensor<?x64xbf16>, tensor<8x64xbf16>
  // CHECK: moe.router %{{.*}}, %{{.*}} bias(%{{.*}} : tensor<8xbf16>) : tensor<?x64xbf16>, tensor<8x64xbf16>
  %zb = moe.router %x, %wg bias(%bg : tensor<8xbf16>)
      : tensor<?x64xbf16>, tensor<8x64xbf16>
  return %z, %zb : tensor<?x8xf32>, tensor<?x8xf32>
}

// CHECK-LABEL: func @route_variants
func.func @route_variants(%z: tensor<?x16xf32>, %b: tensor<16xf32>, %tau: f32)
    -> (tensor<?x2xi32>, tensor<?x4xf32>, tensor<?x4xi32>, tensor<?x4xf32>,
        tensor<?x3xf32>, tensor<?x2xf32>, tensor<?x2xf32>) {
  // CHECK: moe.route %{{.*}} <score = softmax, selection = top_k, k = 2, renormalize = true> : tensor<?x16xf32>
  %i0, %w0 = moe.route %z <score = softmax, selection = top_k, k = 2,
                           renormalize = true> : tensor<?x16xf32>
  // CHECK: moe.route %{{.*}} bias(%{{.*}} : tensor<16xf32>) <score = sigmoid, selection = grouped_top_k, k = 4, groups = 4, topk_group = 2, group_score = sum_top2, renormalize = true, scale = 2.5> : tensor<?x16xf32>
  %i1, %w1 = moe.route %z bias(%b : tensor<16xf32>)
      <score = sigmoid, selection = grouped_top_k, k = 4, groups = 4,
       topk_group = 2, group_score = sum_top2, renormalize = true,
       scale = 2.5> : tensor<?x16xf32>
  // CHECK: moe.route %{{.*}} <score = softmax, selection = top_p, k = 4, top_p = 0.7> : tensor<?x16xf32>
  %i2, %w2 = moe.route %z <score = softmax, selection = top_p, k = 4,
                           top_p = 0.7> : tensor<?x16xf32>
  // CHECK: moe.route %{{.*}} tau(%{{.*}}) <score = sqrt_softplus, selection = threshold, k = 3> : tensor<?x16xf32>
  %i3, %w3 = moe.route %z tau(%tau)
      <score = sqrt_softplus, selection = threshold, k = 3> : tensor<?x16xf32>
  // CHECK: moe.route %{{.*}} <score = logits, selection = top_k, k = 2, weights = softmax_selected> : tensor<?x16xf32>
  %i4, %w4 = moe.route %z <score = logits, selection = top_k, k = 2,
                           weights = softmax_selected> : tensor<?x16xf32>
  // CHECK: moe.route %{{.*}} <score = softmax, selection = threshold, k = 2, tau = 0.125, apply_weight = input> : tensor<?x16xf32>
  %i5, %w5 = moe.route %z <score = softmax, selection = threshold, k = 2,
                           tau = 0.125, apply_weight = input> : tensor<?x16xf32>
  // CHECK: moe.route %{{.*}} <score = softmax, selection = grouped_top_k, k = 2, groups = 8, topk_group = 3> : tensor<?x16xf32>
  %i6, %w6 = moe.route %z <score = softmax, selection = grouped_top_k, k = 2,
                           groups = 8, topk_group = 3, group_score = max>
      : tensor<?x16xf32>
  return %i0, %w1, %i2, %w2, %w3, %w4, %w5
      : tensor<?x2xi32>, tensor<?x4xf32>, tensor<?x4xi32>, tensor<?x4xf32>,
        tensor<?x3xf32>, tensor<?x2xf32>, tensor<?x2xf32>
}

// CHECK-LABEL: func @expert_choice
func.func @expert_choice(%z: tensor<?x8xf32>, %zs: tensor<16x8xf32>)
    -> (tensor<8x?xi32>, tensor<?x8xf32>, tensor<8x4xi32>, tensor<8x6xf32>) {
  // CHECK: moe.expert_choice %{{.*}} k = 2 : tensor<?x8xf32>
  %t, %tw, %ids, %w = moe.expert_choice %z k = 2 : tensor<?x8xf32>
  // CHECK: moe.expert_choice %{{.*}} k = 2 : tensor<16x8xf32>
  %t2, %tw2, %ids2, %w2 = moe.expert_choice %zs k = 2 : tensor<16x8xf32>
  // CHECK: moe.expert_choice %{{.*}} k = 1 capacity <count = 5, align = 2> : tensor<?x8xf32>
  %t3, %tw3, %ids3, %w3 = moe.expert_choice %z k = 1
      capacity <count = 5, align = 2> : tensor<?x8xf32>
  return %t, %w, %t2, %tw3
      : tensor<8x?xi32>, tensor<?x8xf32>, tensor<8x4xi32>, tensor<8x6xf32>
}

// CHECK-LABEL: func @dispatch
func.func @dispatch(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>,
                    %ids4: tensor<4x2xi32>, %w4: tensor<4x2xf32>)
    -> (tensor<?xi32>, tensor<8xi64>, tensor<8xi32>, tensor<8xi64>) {
  // CHECK: moe.dispatch %{{.*}}, %{{.*}} experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  // CHECK: moe.dispatch %{{.*}}, %{{.*}} experts = 8 capacity <factor = 1.25, min = 4, align = 8, drop_order = score, renormalize_after_drop = true> : tensor<4x2xi32>, tensor<4x2xf32>
  %rt2, %rw2, %sr2, %sw2, %sizes2, %offsets2, %dropped2 =
      moe.dispatch %ids4, %w4 experts = 8
          capacity <factor = 1.25, min = 4, align = 8, drop_order = score,
                    renormalize_after_drop = true>
      : tensor<4x2xi32>, tensor<4x2xf32>
  // CHECK: moe.dispatch %{{.*}}, %{{.*}} experts = 8 layout <kind = aligned, block = 16> : tensor<?x2xi32>, tensor<?x2xf32>
  %al:7 = moe.dispatch %ids, %w experts = 8 layout <kind = aligned, block = 16>
      : tensor<?x2xi32>, tensor<?x2xf32>
  // CHECK: moe.dispatch %{{.*}}, %{{.*}} experts = 8 capacity <count = 3> layout <kind = padded> : tensor<?x2xi32>, tensor<?x2xf32>
  %pd:7 = moe.dispatch %ids, %w experts = 8 capacity <count = 3>
      layout <kind = padded> : tensor<?x2xi32>, tensor<?x2xf32>
  // CHECK: moe.dispatch %{{.*}}, %{{.*}} experts = 8 capacity <count = 3, drop_order = choice_major> : tensor<?x2xi32>, tensor<?x2xf32>
  %r:7 = moe.dispatch %ids, %w experts = 8
      capacity <count = 3, drop_order = choice_major>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return %rt, %sizes, %rt2, %r#6
      : tensor<?xi32>, tensor<8xi64>, tensor<8xi32>, tensor<8xi64>
}

// CHECK-LABEL: func @gather_combine
func.func @gather_combine(%x: tensor<?x64xf16>, %rt: tensor<?xi32>,
                          %rw: tensor<?xf32>, %sr: tensor<?x2xi32>,
                          %sw: tensor<?x2xf32>)
    -> (tensor<?x64xf16>, tensor<?x64xf16>) {
  // CHECK: %[[G:.*]] = moe.gather %{{.*}}, %{{.*}} : tensor<?x64xf16>, tensor<?xi32>
  %g = moe.gather %x, %rt : tensor<?x64xf16>, tensor<?xi32>
  // CHECK: moe.gather %{{.*}}, %{{.*}} scale(%{{.*}} : tensor<?xf32>) : tensor<?x64xf16>, tensor<?xi32>
  %gs = moe.gather %x, %rt scale(%rw : tensor<?xf32>)
      : tensor<?x64xf16>, tensor<?xi32>
  // CHECK: moe.combine %[[G]], %{{.*}} weights(%{{.*}} : tensor<?x2xf32>) : tensor<?x64xf16>, tensor<?x2xi32>
  %y = moe.combine %g, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x64xf16>, tensor<?x2xi32>
  // CHECK: moe.combine %{{.*}}, %{{.*}} addend(%{{.*}} : tensor<?x64xf16>) : tensor<?x64xf16>, tensor<?x2xi32>
  %y2 = moe.combine %gs, %sr addend(%x : tensor<?x64xf16>)
      : tensor<?x64xf16>, tensor<?x2xi32>
  return %y, %y2 : tensor<?x64xf16>, tensor<?x64xf16>
}

// CHECK-LABEL: func @grouped_matmul
func.func @grouped_matmul(%lhs: tensor<?x64xf32>, %rhs: tensor<8x64x32xf32>,
                          %rhs_t: tensor<8x32x64xbf16>, %sizes: tensor<8xi64>)
    -> (tensor<?x32xf32>, tensor<?x32xf32>) {
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<8x64x32xf32>, tensor<8xi64>
  %a = moe.grouped_matmul %lhs, %rhs, %sizes
      : tensor<?x64xf32>, tensor<8x64x32xf32>, tensor<8xi64>
  // CHECK: moe.grouped_matmul %{{.*}}, %{{.*}}, %{{.*}} transpose_rhs : tensor<?x64xf32>, tensor<8x32x64xbf16>, tensor<8xi64>
  %b = moe.grouped_matmul %lhs, %rhs_t, %sizes transpose_rhs
      : tensor<?x64xf32>, tensor<8x32x64xbf16>, tensor<8xi64>
  return %a, %b : tensor<?x32xf32>, tensor<?x32xf32>
}

// CHECK-LABEL: func @experts
func.func @experts(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>,
                   %g: tensor<8x128x64xf32>, %u: tensor<8x128x64xf32>,
                   %gu: tensor<8x256x64xbf16>, %d: tensor<8x64x128xf32>,
                   %a: tensor<8x4x64xf32>, %b: tensor<8x32x4xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>,
        tensor<?x32xf32>) {
  // CHECK: moe.gated_experts %{{.*}}, %{{.*}} gate(%{{.*}} : tensor<8x128x64xf32>) up(%{{.*}} : tensor<8x128x64xf32>) down(%{{.*}} : tensor<8x64x128xf32>) act = silu : tensor<?x64xf32>, tensor<8xi64>
  %y0 = moe.gated_experts %rows, %sizes gate(%g : tensor<8x128x64xf32>)
      up(%u : tensor<8x128x64xf32>) down(%d : tensor<8x64x128xf32>)
      act = silu : tensor<?x64xf32>, tensor<8xi64>
  // CHECK: moe.gated_experts %{{.*}}, %{{.*}} gate_up(%{{.*}} : tensor<8x256x64xbf16>) down(%{{.*}} : tensor<8x64x128xf32>) act = gelu_tanh : tensor<?x64xf32>, tensor<8xi64>
  %y1 = moe.gated_experts %rows, %sizes gate_up(%gu : tensor<8x256x64xbf16>)
      down(%d : tensor<8x64x128xf32>) act = gelu_tanh
      : tensor<?x64xf32>, tensor<8xi64>
  // CHECK: moe.mlp_experts %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} act = relu : tensor<?x64xf32>, tensor<8xi64>, tensor<8x128x64xf32>, tensor<8x64x128xf32>
  %y2 = moe.mlp_experts %rows, %sizes, %g, %d act = relu
      : tensor<?x64xf32>, tensor<8xi64>, tensor<8x128x64xf32>,
        tensor<8x64x128xf32>
  // CHECK: moe.lora_experts %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} alpha = 8.000000e+00 : tensor<?x64xf32>, tensor<8xi64>, tensor<8x4x64xf32>, tensor<8x32x4xf32>
  %y3 = moe.lora_experts %rows, %sizes, %a, %b alpha = 8.0
      : tensor<?x64xf32>, tensor<8xi64>, tensor<8x4x64xf32>, tensor<8x32x4xf32>
  return %y0, %y1, %y2, %y3
      : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x32xf32>
}

// CHECK-LABEL: func @lora_gated
func.func @lora_gated(%rows: tensor<?x64xf32>, %sizes: tensor<4xi64>,
                      %g: tensor<128x64xf32>, %u: tensor<128x64xf32>,
                      %d: tensor<64x128xf32>,
                      %ga: tensor<4x8x64xf32>, %gb: tensor<4x128x8xf32>,
                      %ua: tensor<4x8x64xf32>, %ub: tensor<4x128x8xf32>,
                      %da: tensor<4x8x128xf32>, %db: tensor<4x64x8xf32>)
    -> tensor<?x64xf32> {
  // CHECK: moe.lora_gated_experts %{{.*}}, %{{.*}} base(%{{.*}}, %{{.*}}, %{{.*}} : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) gate_lora(%{{.*}}, %{{.*}} : tensor<4x8x64xf32>, tensor<4x128x8xf32>) up_lora({{.*}}) down_lora({{.*}}) act = silu alpha = 1.600000e+01 : tensor<?x64xf32>, tensor<4xi64>
  %y = moe.lora_gated_experts %rows, %sizes
      base(%g, %u, %d : tensor<128x64xf32>, tensor<128x64xf32>,
                        tensor<64x128xf32>)
      gate_lora(%ga, %gb : tensor<4x8x64xf32>, tensor<4x128x8xf32>)
      up_lora(%ua, %ub : tensor<4x8x64xf32>, tensor<4x128x8xf32>)
      down_lora(%da, %db : tensor<4x8x128xf32>, tensor<4x64x8xf32>)
      act = silu alpha = 16.0 : tensor<?x64xf32>, tensor<4xi64>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func @shared_linear
func.func @shared_linear(%x: tensor<?x64xf32>, %g: tensor<96x64xf32>,
                         %u: tensor<96x64xf32>, %d: tensor<64x96xf32>,
                         %ws: tensor<1x64xf32>, %w0: tensor<32x64xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x32xf32>) {
  // CHECK: moe.shared_expert %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} act = silu : tensor<?x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>
  %s0 = moe.shared_expert %x, %g, %u, %d act = silu
      : tensor<?x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>,
        tensor<64x96xf32>
  // CHECK: moe.shared_expert %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} gate(%{{.*}} : tensor<1x64xf32>) act = gelu_erf
  %s1 = moe.shared_expert %x, %g, %u, %d gate(%ws : tensor<1x64xf32>)
      act = gelu_erf : tensor<?x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>,
                       tensor<64x96xf32>
  // CHECK: moe.linear %{{.*}}, %{{.*}} : tensor<?x64xf32>, tensor<32x64xf32>
  %l = moe.linear %x, %w0 : tensor<?x64xf32>, tensor<32x64xf32>
  return %s0, %s1, %l : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x32xf32>
}

// CHECK-LABEL: func @losses
func.func @losses(%z: tensor<?x8xf32>, %ids: tensor<?x2xi32>)
    -> (tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<8xi64>) {
  // CHECK: moe.aux_loss %{{.*}}, %{{.*}} convention = switch : tensor<?x8xf32>, tensor<?x2xi32>
  %a = moe.aux_loss %z, %ids convention = switch
      : tensor<?x8xf32>, tensor<?x2xi32>
  // CHECK: moe.aux_loss %{{.*}}, %{{.*}} convention = all_k :
  %b = moe.aux_loss %z, %ids convention = all_k
      : tensor<?x8xf32>, tensor<?x2xi32>
  // CHECK: moe.aux_loss %{{.*}}, %{{.*}} convention = all_k_mean :
  %c = moe.aux_loss %z, %ids convention = all_k_mean
      : tensor<?x8xf32>, tensor<?x2xi32>
  // CHECK: moe.z_loss %{{.*}} : tensor<?x8xf32>
  %zl = moe.z_loss %z : tensor<?x8xf32>
  // CHECK: moe.expert_load %{{.*}} experts = 8 : tensor<?x2xi32>
  %load = moe.expert_load %ids experts = 8 : tensor<?x2xi32>
  return %a, %b, %c, %zl, %load
      : tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<8xi64>
}

// CHECK-LABEL: func @layer_variants
func.func @layer_variants(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
    %bg: tensor<8xf32>, %bias: tensor<8xf32>, %tau: f32,
    %g: tensor<8x128x64xf32>, %u: tensor<8x128x64xf32>,
    %d: tensor<8x64x128xf32>, %gu: tensor<8x256x64xf32>,
    %sg: tensor<96x64xf32>, %su: tensor<96x64xf32>, %sd: tensor<64x96xf32>,
    %ws: tensor<1x64xf32>, %w0: tensor<32x64xf32>, %a: tensor<8x4x64xf32>,
    %b: tensor<8x32x4xf32>) -> (tensor<?x64xf32>, tensor<8xi64>,
                                tensor<?x32xf32>, tensor<?x64xf32>) {
  // CHECK: moe.layer %{{.*}} router(%{{.*}}, %{{.*}} : tensor<8x64xf32>, tensor<8xf32>) bias(%{{.*}} : tensor<8xf32>) experts(%{{.*}}, %{{.*}} : tensor<8x256x64xf32>, tensor<8x64x128xf32>) shared(%{{.*}}, %{{.*}}, %{{.*}} : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>) {experts = #moe.experts<kind = gated>, family = #moe.family<deepseek_v3>, routing = #moe.routing<score = sigmoid, selection = grouped_top_k, k = 2, groups = 4, topk_group = 2, group_score = sum_top2, renormalize = true, scale = 2.5>} : tensor<?x64xf32>
  %y0, %l0, %d0 = moe.layer %x router(%wg, %bg : tensor<8x64xf32>, tensor<8xf32>)
      bias(%bias : tensor<8xf32>)
      experts(%gu, %d : tensor<8x256x64xf32>, tensor<8x64x128xf32>)
      shared(%sg, %su, %sd : tensor<96x64xf32>, tensor<96x64xf32>,
                             tensor<64x96xf32>)
      {family = #moe.family<deepseek_v3>,
       routing = #moe.routing<score = sigmoid, selection = grouped_top_k,
                              k = 2, groups = 4, topk_group = 2,
                              group_score = sum_top2, renormalize = true,
                              scale = 2.5>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xf32>
  // CHECK: moe.layer %{{.*}} router(%{{.*}} : tensor<8x64xf32>) tau(%{{.*}}) experts({{.*}}) {capacity = #moe.capacity<factor = 1.5, drop_order = token_major>, experts = #moe.experts<kind = mlp, act = relu>, routing = #moe.routing<score = softmax, selection = threshold, k = 2>} : tensor<?x64xf32>
  %y1, %l1, %d1 = moe.layer %x router(%wg : tensor<8x64xf32>) tau(%tau)
      experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>)
      {routing = #moe.routing<score = softmax, selection = threshold, k = 2>,
       capacity = #moe.capacity<factor = 1.5, drop_order = token_major>,
       experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x64xf32>
  // CHECK: moe.layer {{.*}} {experts = #moe.experts<kind = lora, alpha = 8.0>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>} : tensor<?x64xf32>
  %y2, %l2, %d2 = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w0, %a, %b : tensor<32x64xf32>, tensor<8x4x64xf32>,
                            tensor<8x32x4xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       experts = #moe.experts<kind = lora, alpha = 8.0>} : tensor<?x64xf32>
  // CHECK: moe.layer {{.*}} {capacity = #moe.capacity<count = 4>, experts = #moe.experts<kind = gated>, routing = #moe.routing<score = softmax, selection = expert_choice, k = 2>} : tensor<?x64xf32>
  %y3, %l3, %d3 = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%g, %u, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>,
                           tensor<8x64x128xf32>)
      {routing = #moe.routing<score = softmax, selection = expert_choice,
                              k = 2>,
       capacity = #moe.capacity<count = 4>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return %y0, %l1, %y2, %y3
      : tensor<?x64xf32>, tensor<8xi64>, tensor<?x32xf32>, tensor<?x64xf32>
}

// CHECK-LABEL: func @weights
func.func @weights() -> (tensor<8x64xbf16>, tensor<2x3x4xf32>) {
  // CHECK: moe.weight "model.layers.0.mlp.gate.weight" : tensor<8x64xbf16>
  %a = moe.weight "model.layers.0.mlp.gate.weight" : tensor<8x64xbf16>
  // CHECK: moe.weight stacked ["e.0.w1", "e.1.w1"] : tensor<2x3x4xf32>
  %b = moe.weight stacked ["e.0.w1", "e.1.w1"] : tensor<2x3x4xf32>
  // CHECK: moe.weight "model.layers.0.mlp.gate.weight" {device} : tensor<8x64xbf16>
  %c = moe.weight "model.layers.0.mlp.gate.weight" {device} : tensor<8x64xbf16>
  // CHECK: moe.weight stacked ["e.0.w1", "e.1.w1"] {stored = f32} : tensor<2x3x4xbf16>
  %s = moe.weight stacked ["e.0.w1", "e.1.w1"] {stored = f32} : tensor<2x3x4xbf16>
  // CHECK: moe.weight "experts.gate_up_proj" {stored = f32, transposed} : tensor<2x6x4xbf16>
  %t = moe.weight "experts.gate_up_proj" {stored = f32, transposed} : tensor<2x6x4xbf16>
  // CHECK: moe.weight stacked ["e.0.w3", "e.1.w3"] {scale_block = array<i64: 128, 128>, scales = ["e.0.w3_scale_inv", "e.1.w3_scale_inv"], stored = f8E4M3FN} : tensor<2x3x4xbf16>
  %q = moe.weight stacked ["e.0.w3", "e.1.w3"] {stored = f8E4M3FN, scales = ["e.0.w3_scale_inv", "e.1.w3_scale_inv"], scale_block = array<i64: 128, 128>} : tensor<2x3x4xbf16>
  // CHECK: moe.weight "experts.gate_up_proj" {scale_block = array<i64: 1, 6>, scales = ["experts.gate_up_proj_scale"], stored = f8E4M3FN, transposed} : tensor<2x6x4xbf16>
  %qt = moe.weight "experts.gate_up_proj" {stored = f8E4M3FN, scales = ["experts.gate_up_proj_scale"], scale_block = array<i64: 1, 6>, transposed} : tensor<2x6x4xbf16>
  // CHECK: moe.weight stacked ["e.0.w2", "e.1.w2"] {global_scales = ["e.0.w2_scale_2", "e.1.w2_scale_2"], scale_block = array<i64: 1, 16>, scales = ["e.0.w2_scale", "e.1.w2_scale"], stored = f4E2M1FN} : tensor<2x4x32xbf16>
  %nv = moe.weight stacked ["e.0.w2", "e.1.w2"] {stored = f4E2M1FN, scales = ["e.0.w2_scale", "e.1.w2_scale"], scale_block = array<i64: 1, 16>, global_scales = ["e.0.w2_scale_2", "e.1.w2_scale_2"]} : tensor<2x4x32xbf16>
  // CHECK: moe.weight "e.0.w2_packed" {global_scales = ["e.0.w2_global_scale"], global_scales_inverse, scale_block = array<i64: 1, 16>, scales = ["e.0.w2_scale"], stored = f4E2M1FN} : tensor<4x32xbf16>
  %nvi = moe.weight "e.0.w2_packed" {stored = f4E2M1FN, scales = ["e.0.w2_scale"], scale_block = array<i64: 1, 16>, global_scales = ["e.0.w2_global_scale"], global_scales_inverse} : tensor<4x32xbf16>
  // CHECK: moe.weight "experts.gate_up_proj_blocks" {interleaved, scale_block = array<i64: 1, 32>, scales = ["experts.gate_up_proj_scales"], stored = f4E2M1FN} : tensor<2x4x64xbf16>
  %mx = moe.weight "experts.gate_up_proj_blocks" {stored = f4E2M1FN, scales = ["experts.gate_up_proj_scales"], scale_block = array<i64: 1, 32>, interleaved} : tensor<2x4x64xbf16>
  // CHECK: moe.weight stacked ["e.0.w1_packed", "e.1.w1_packed"] {scale_block = array<i64: 1, 32>, scales = ["e.0.w1_scale", "e.1.w1_scale"], stored = i4} : tensor<2x3x64xbf16>
  %i4 = moe.weight stacked ["e.0.w1_packed", "e.1.w1_packed"] {stored = i4, scales = ["e.0.w1_scale", "e.1.w1_scale"], scale_block = array<i64: 1, 32>} : tensor<2x3x64xbf16>
  // CHECK: moe.weight "e.0.w2_packed" {scale_block = array<i64: 1, 64>, scales = ["e.0.w2_scale"], stored = i8} : tensor<4x64xf32>
  %i8 = moe.weight "e.0.w2_packed" {stored = i8, scales = ["e.0.w2_scale"], scale_block = array<i64: 1, 64>} : tensor<4x64xf32>
  // CHECK: moe.weight stacked ["e.0.w3.weight", "e.1.w3.weight"] {group_indices = ["e.0.w3.weight_g_idx", "e.1.w3.weight_g_idx"], scale_block = array<i64: 1, 16>, scales = ["e.0.w3.weight_scale", "e.1.w3.weight_scale"], stored = si8} : tensor<2x8x64xbf16>
  %si8 = moe.weight stacked ["e.0.w3.weight", "e.1.w3.weight"] {stored = si8, scales = ["e.0.w3.weight_scale", "e.1.w3.weight_scale"], scale_block = array<i64: 1, 16>, group_indices = ["e.0.w3.weight_g_idx", "e.1.w3.weight_g_idx"]} : tensor<2x8x64xbf16>
  // CHECK: moe.weight "e.0.w2.qweight" {pack_order = array<i64: 0, 2, 4, 6, 1, 3, 5, 7>, pack_outputs, scale_block = array<i64: 32, 1>, scales = ["e.0.w2.scales"], stored = i4, transposed, zero_points = ["e.0.w2.qzeros"]} : tensor<16x64xbf16>
  %awq = moe.weight "e.0.w2.qweight" {stored = i4, transposed, pack_outputs, pack_order = array<i64: 0, 2, 4, 6, 1, 3, 5, 7>, scales = ["e.0.w2.scales"], scale_block = array<i64: 32, 1>, zero_points = ["e.0.w2.qzeros"]} : tensor<16x64xbf16>
  // CHECK: moe.weight stacked ["e.0.w1.qweight", "e.1.w1.qweight"] {group_indices = ["e.0.w1.g_idx", "e.1.w1.g_idx"], scale_block = array<i64: 32, 1>, scales = ["e.0.w1.scales", "e.1.w1.scales"], stored = i4, transposed, zero_point_offset = 1 : i64, zero_points = ["e.0.w1.qzeros", "e.1.w1.qzeros"]} : tensor<2x8x64xbf16>
  %gptq = moe.weight stacked ["e.0.w1.qweight", "e.1.w1.qweight"] {stored = i4, transposed, scales = ["e.0.w1.scales", "e.1.w1.scales"], scale_block = array<i64: 32, 1>, zero_points = ["e.0.w1.qzeros", "e.1.w1.qzeros"], zero_point_offset = 1, group_indices = ["e.0.w1.g_idx", "e.1.w1.g_idx"]} : tensor<2x8x64xbf16>
  // CHECK: moe.weight stacked ["e.0.w3.weight", "e.1.w3.weight"] {bitsandbytes} : tensor<2x8x64xbf16>
  %bnb = moe.weight stacked ["e.0.w3.weight", "e.1.w3.weight"] {bitsandbytes} : tensor<2x8x64xbf16>
  // CHECK: moe.weight "gate.weight" {bitsandbytes, device} : tensor<4x64xf16>
  %bnbRouter = moe.weight "gate.weight" {bitsandbytes, device} : tensor<4x64xf16>
  return %a, %b : tensor<8x64xbf16>, tensor<2x3x4xf32>
}

// CHECK-LABEL: func @runtime_ops
func.func @runtime_ops(%a: tensor<8xi64>, %d: tensor<8xi64>, %t: index)
    -> memref<8x64xbf16> {
  // CHECK: moe.record_stats %{{.*}}, %{{.*}} tokens(%{{.*}}) layer = "moe_layer_1" : tensor<8xi64>
  moe.record_stats %a, %d tokens(%t) layer = "moe_layer_1" : tensor<8xi64>
  // CHECK: moe.weight_buffer 3 {device} : memref<8x64xbf16>
  %dev = moe.weight_buffer 3 {device} : memref<8x64xbf16>
  // CHECK: moe.weight_buffer 3 : memref<8x64xbf16>
  %b = moe.weight_buffer 3 : memref<8x64xbf16>
  // CHECK: moe.knob "tau" layer = "moe_layer_1" default = 2.500000e-01 : f32
  %tau = moe.knob "tau" layer = "moe_layer_1" default = 0.25 : f32
  // CHECK: moe.knob "tau" layer = "moe_layer_1" default = 2.500000e-01 {device} : tensor<1xf64>
  %tau_dev = moe.knob "tau" layer = "moe_layer_1" default = 0.25 {device} : tensor<1xf64>
  // CHECK: moe.knob_buffer 0 : memref<1xf64>
  %kb = moe.knob_buffer 0 : memref<1xf64>
  return %b : memref<8x64xbf16>
}

// CHECK-LABEL: func @gate
func.func @gate(%x: tensor<?x64xbf16>, %wg: tensor<16x64xbf16>,
                %bg: tensor<16xbf16>, %b: tensor<16xf32>, %tau: f32)
    -> (tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x4xi32>, tensor<?x4xf32>) {
  // CHECK: moe.gate %{{.*}}, %{{.*}} <score = softmax, selection = top_k, k = 2> : tensor<?x64xbf16>, tensor<16x64xbf16>
  %i0, %w0 = moe.gate %x, %wg <score = softmax, selection = top_k, k = 2>
      : tensor<?x64xbf16>, tensor<16x64xbf16>
  // CHECK: moe.gate %{{.*}}, %{{.*}} bias(%{{.*}} : tensor<16xbf16>) selection_bias(%{{.*}} : tensor<16xf32>) tau(%{{.*}}) <score = sigmoid, selection = threshold, k = 4> : tensor<?x64xbf16>, tensor<16x64xbf16>
  %i1, %w1 = moe.gate %x, %wg bias(%bg : tensor<16xbf16>)
      selection_bias(%b : tensor<16xf32>) tau(%tau)
      <score = sigmoid, selection = threshold, k = 4>
      : tensor<?x64xbf16>, tensor<16x64xbf16>
  return %i0, %w0, %i1, %w1
      : tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x4xi32>, tensor<?x4xf32>
}

// CHECK-LABEL: func @fused_experts
func.func @fused_experts(%x: tensor<?x64xf32>, %rt: tensor<?xi32>,
                         %sizes: tensor<8xi64>, %rw: tensor<?xf32>,
                         %sr: tensor<?x2xi32>, %sw: tensor<?x2xf32>,
                         %gu: tensor<8x256x64xbf16>, %d: tensor<8x64x128xbf16>,
                         %sg: tensor<96x64xf32>, %sd: tensor<64x96xf32>,
                         %sgw: tensor<1x64xf32>)
    -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  // CHECK: moe.fused_experts %{{.*}} rows(%{{.*}}, %{{.*}} : tensor<?xi32>, tensor<8xi64>) slots(%{{.*}} : tensor<?x2xi32>) weights(%{{.*}} : tensor<?x2xf32>) experts(%{{.*}}, %{{.*}} : tensor<8x256x64xbf16>, tensor<8x64x128xbf16>) shared(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>, tensor<1x64xf32>) {experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  %y0 = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
      experts(%gu, %d : tensor<8x256x64xbf16>, tensor<8x64x128xbf16>)
      shared(%sg, %sg, %sd, %sgw : tensor<96x64xf32>, tensor<96x64xf32>,
                                   tensor<64x96xf32>, tensor<1x64xf32>)
      {experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  // CHECK: moe.fused_experts %{{.*}} rows(%{{.*}}, %{{.*}} : tensor<?xi32>, tensor<8xi64>) scale(%{{.*}} : tensor<?xf32>) slots(%{{.*}} : tensor<?x2xi32>) experts(%{{.*}}, %{{.*}} : tensor<8x128x64xbf16>, tensor<8x64x128xbf16>) {experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x64xf32>
  %w1 = tensor.extract_slice %gu[0, 0, 0] [8, 128, 64] [1, 1, 1]
      : tensor<8x256x64xbf16> to tensor<8x128x64xbf16>
  %y1 = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      scale(%rw : tensor<?xf32>) slots(%sr : tensor<?x2xi32>)
      experts(%w1, %d : tensor<8x128x64xbf16>, tensor<8x64x128xbf16>)
      {experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x64xf32>
  return %y0, %y1 : tensor<?x64xf32>, tensor<?x64xf32>
}

// CHECK-LABEL: func @ukernel
func.func @ukernel(%w: tensor<8x64x32xf32>, %b: memref<8x64x32xf32>,
                   %p: memref<16384xf32>) -> tensor<16384xf32> {
  %e = tensor.empty() : tensor<16384xf32>
  // CHECK: moe.ukernel "pack" ins(%{{.*}} : tensor<8x64x32xf32>) outs(%{{.*}} : tensor<16384xf32>) config = [0, 64] -> tensor<16384xf32>
  %t = moe.ukernel "pack" ins(%w : tensor<8x64x32xf32>)
      outs(%e : tensor<16384xf32>) config = [0, 64] -> tensor<16384xf32>
  // CHECK: moe.ukernel "pack" ins(%{{.*}} : memref<8x64x32xf32>) outs(%{{.*}} : memref<16384xf32>) config = [0, 64]
  moe.ukernel "pack" ins(%b : memref<8x64x32xf32>)
      outs(%p : memref<16384xf32>) config = [0, 64]
  return %t : tensor<16384xf32>
}

// CHECK-LABEL: func @packed_weight
module attributes {moe.checkpoint = "model"} {
  func.func @packed_weight() -> tensor<24576xbf16> {
    // CHECK: moe.weight stacked ["e0", "e1"] {packing = #moe.packing<source = tensor<2x96x64xbf16>, first_row = 32, rows = 64>} : tensor<8192xbf16>
    %w = moe.weight stacked ["e0", "e1"] {packing = #moe.packing<
        source = tensor<2x96x64xbf16>, first_row = 32, rows = 64>}
        : tensor<8192xbf16>
    // CHECK: moe.weight "router" {packing = #moe.packing<source = tensor<8x64xbf16>, first_row = 0, rows = 8>} : tensor<2048xf32>
    %r = moe.weight "router" {packing = #moe.packing<
        source = tensor<8x64xbf16>, first_row = 0, rows = 8>}
        : tensor<2048xf32>
    %c = tensor.concat dim(0) %w, %w, %w
        : (tensor<8192xbf16>, tensor<8192xbf16>, tensor<8192xbf16>) -> tensor<24576xbf16>
    return %c : tensor<24576xbf16>
  }
}

// A shared expert stored fused, gate rows first (Granite's shared_mlp).
// CHECK-LABEL: func.func @shared_gate_up
func.func @shared_gate_up(%x: tensor<?x64xbf16>, %wg: tensor<8x64xbf16>,
    %gu: tensor<8x256x64xbf16>, %d: tensor<8x64x128xbf16>,
    %sgu: tensor<192x64xbf16>, %sd: tensor<64x96xbf16>) -> tensor<?x64xbf16> {
  // CHECK: moe.layer %{{.*}} router(%{{.*}} : tensor<8x64xbf16>) experts(%{{.*}}, %{{.*}} : tensor<8x256x64xbf16>, tensor<8x64x128xbf16>) shared(%{{.*}}, %{{.*}} : tensor<192x64xbf16>, tensor<64x96xbf16>) {experts = #moe.experts<kind = gated>, routing = #moe.routing<score = logits, selection = top_k, k = 2, weights = softmax_selected>} : tensor<?x64xbf16>
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xbf16>)
      experts(%gu, %d : tensor<8x256x64xbf16>, tensor<8x64x128xbf16>)
      shared(%sgu, %sd : tensor<192x64xbf16>, tensor<64x96xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// GPT-OSS's layer: the router's bias, the top k of the logits with a softmax
// over them, experts with a bias on every projection and the clamped
// SwiGLU; and the primitive experts op with its biases.
// CHECK-LABEL: func @expert_biases
func.func @expert_biases(%x: tensor<?x64xbf16>, %wg: tensor<8x64xbf16>,
    %bg: tensor<8xbf16>, %gu: tensor<8x256x64xbf16>,
    %d: tensor<8x64x128xbf16>, %bgu: tensor<8x256xbf16>,
    %bd: tensor<8x64xbf16>, %g: tensor<8x128x64xbf16>,
    %bg1: tensor<8x128xbf16>, %sizes: tensor<8xi64>)
    -> (tensor<?x64xbf16>, tensor<?x64xbf16>) {
  // CHECK: moe.layer %{{.*}} router(%{{.*}}, %{{.*}} : tensor<8x64xbf16>, tensor<8xbf16>) experts(%{{.*}}, %{{.*}} : tensor<8x256x64xbf16>, tensor<8x64x128xbf16>) expert_biases(%{{.*}}, %{{.*}} : tensor<8x256xbf16>, tensor<8x64xbf16>) {experts = #moe.experts<kind = gated, act = swiglu_oai>, routing = #moe.routing<score = logits, selection = top_k, k = 4, weights = softmax_selected>} : tensor<?x64xbf16>
  %y, %l, %dr = moe.layer %x router(%wg, %bg : tensor<8x64xbf16>, tensor<8xbf16>)
      experts(%gu, %d : tensor<8x256x64xbf16>, tensor<8x64x128xbf16>)
      expert_biases(%bgu, %bd : tensor<8x256xbf16>, tensor<8x64xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 4,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated, act = swiglu_oai>} : tensor<?x64xbf16>
  // CHECK: moe.gated_experts %{{.*}}, %{{.*}} gate(%{{.*}} : tensor<8x128x64xbf16>) up(%{{.*}} : tensor<8x128x64xbf16>) down(%{{.*}} : tensor<8x64x128xbf16>) biases(%{{.*}}, %{{.*}}, %{{.*}} : tensor<8x128xbf16>, tensor<8x128xbf16>, tensor<8x64xbf16>) act = swiglu_oai : tensor<?x64xbf16>, tensor<8xi64>
  %yg = moe.gated_experts %x, %sizes gate(%g : tensor<8x128x64xbf16>)
      up(%g : tensor<8x128x64xbf16>) down(%d : tensor<8x64x128xbf16>)
      biases(%bg1, %bg1, %bd : tensor<8x128xbf16>, tensor<8x128xbf16>,
                               tensor<8x64xbf16>)
      act = swiglu_oai : tensor<?x64xbf16>, tensor<8xi64>
  return %y, %yg : tensor<?x64xbf16>, tensor<?x64xbf16>
}
