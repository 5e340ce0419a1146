// RUN: moe-opt %s -split-input-file -verify-diagnostics

// Verifier of moe.layer: operand forms per expert kind, shapes, and the
// family presets of spec section 9.

func.func @router_operands(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %b: tensor<8xf32>, %w: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op expected router(weight [E, d]) or router(weight, bias [E]), found 3 operands}}
  %y, %l, %dr = moe.layer %x router(%wg, %b, %b : tensor<8x64xf32>, tensor<8xf32>, tensor<8xf32>) experts(%w, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @router_rank(%x: tensor<?x64xf32>, %wg: tensor<8x64x1xf32>, %w: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `router weight` to be a rank-2 tensor [E, d], found 'tensor<8x64x1xf32>'}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64x1xf32>) experts(%w, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @dynamic_experts(%x: tensor<?x64xf32>, %wg: tensor<?x64xf32>, %w: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op expected a static number of experts E (router weight dim 0), found a dynamic size}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<?x64xf32>) experts(%w, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @k_above_experts(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %w: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op expected k <= E = 8 experts, found k = 10}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%w, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 10>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @selection_bias(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %b: tensor<16xf32>, %w: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `bias` dim 0 (E) to be 8 (E = 8 from `router weight` dim 0 (E)), found 16}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) bias(%b : tensor<16xf32>) experts(%w, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @gated_count(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %w: tensor<8x128x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expected experts(gate, up, down) or experts(gate_up, down) for kind = gated, found 1 expert operands}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%w : tensor<8x128x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @mlp_count(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %w: tensor<8x128x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expected experts(w1, w2) for kind = mlp, found 3 expert operands}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%w, %w, %w : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x128x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @lora_count(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %w: tensor<8x128x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expected experts(base, A, B) for kind = lora, found 1 expert operands}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%w : tensor<8x128x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = lora, alpha = 1.0>} : tensor<?x64xf32>
  return
}

// -----

func.func @lora_gated_count(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %w: tensor<8x128x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expected experts(gate, up, down, A_gate, B_gate, A_up, B_up, A_down, B_down) for kind = lora_gated, found 1 expert operands}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%w : tensor<8x128x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = lora_gated, alpha = 1.0>} : tensor<?x64xf32>
  return
}

// -----

func.func @expert_weights_d(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x32xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `gate` dim 2 (d) to be 64 (d = 64 from `input` dim 1 (d)), found 32}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x32xf32>, tensor<8x128x32xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @expert_weights_e(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<4x128x64xf32>, %d: tensor<4x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `w1` dim 0 (E) to be 8 (E = 8 from `router weight` dim 0 (E)), found 4}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<4x128x64xf32>, tensor<4x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @shared_count(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>, %s: tensor<96x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expected shared(gate, up, down), shared(gate, up, down, gate_weight) or shared(gate_up, down), found 1 operands}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) shared(%s : tensor<96x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

// The fused form: gate_up [2 fs, d], then down [d, fs].
func.func @shared_gate_up(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>, %s: tensor<96x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `shared down` dim 0 (d) to be 64 (d = 64 from `input` dim 1 (d)), found 96}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) shared(%s, %s : tensor<96x64xf32>, tensor<96x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @shared_gate_up_odd(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>, %s: tensor<95x64xf32>, %sd: tensor<64x47xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `shared gate_up` dim 0 (2*fs) to be a multiple of 2, found 95}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) shared(%s, %sd : tensor<95x64xf32>, tensor<64x47xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @shared_gate_up_rows(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>, %s: tensor<96x64xf32>, %sd: tensor<64x40xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `shared down` dim 1 (fs) to be 48}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) shared(%s, %sd : tensor<96x64xf32>, tensor<64x40xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @shared_down(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>, %s: tensor<96x64xf32>, %sd: tensor<64x80xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `shared down` dim 1 (fs) to be 96 (fs = 96 from `shared gate` dim 0 (fs)), found 80}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) shared(%s, %s, %sd : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x80xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @expert_choice_drop_order(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op `drop_order` and `renormalize_after_drop` do not apply to expert-choice routing: an expert never takes more tokens than its capacity}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = expert_choice, k = 2>, capacity = #moe.capacity<count = 4, renormalize_after_drop = true>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @threshold_needs_tau(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op selection = threshold needs tau: a `tau` parameter or a tau operand}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = threshold, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_score(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = mixtral expects score = softmax, found score = sigmoid}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<mixtral>, routing = #moe.routing<score = sigmoid, selection = top_k, k = 2, renormalize = true>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_selection(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = olmoe expects selection = top_k, found selection = top_p}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<olmoe>, routing = #moe.routing<score = softmax, selection = top_p, k = 2, top_p = 0.5>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_v2_selection(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = deepseek_v2 expects selection = top_k or grouped_top_k with group_score = max}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<deepseek_v2>, routing = #moe.routing<score = softmax, selection = grouped_top_k, k = 2, groups = 4, topk_group = 2, group_score = sum_top2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_v3_group_score(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %b: tensor<8xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = deepseek_v3 expects group_score = sum_top2, found group_score = max}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) bias(%b : tensor<8xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<deepseek_v3>, routing = #moe.routing<score = sigmoid, selection = grouped_top_k, k = 2, groups = 4, topk_group = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_weights(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = granitemoe expects weights = softmax_selected, found weights = scores}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<granitemoe>, routing = #moe.routing<score = logits, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_apply(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = qwen3_moe expects apply_weight = output, found apply_weight = input}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<qwen3_moe>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true, apply_weight = input>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_renormalize(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = mixtral expects renormalize = true, found renormalize = false}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<mixtral>, routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_scale(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = olmoe expects scale = 1 (it has no routed scaling factor)}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<olmoe>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, scale = 2.0>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_v2_scale(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = deepseek_v2 expects scale = 1 when it renormalizes (the published code scales only raw weights)}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<deepseek_v2>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true, scale = 16.0>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_kind(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = qwen3_moe expects kind = gated, found kind = mlp}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<qwen3_moe>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_switch_act(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = switch expects act = relu, found act = silu}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<switch>, routing = #moe.routing<score = softmax, selection = top_k, k = 1>, capacity = #moe.capacity<factor = 1.0, drop_order = token_major>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_switch_k(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = switch expects k = 1, found k = 2}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<switch>, routing = #moe.routing<score = softmax, selection = top_k, k = 2>, capacity = #moe.capacity<factor = 1.0, drop_order = token_major>, experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_switch_capacity(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = switch expects a capacity with drop_order = token_major}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<switch>, routing = #moe.routing<score = softmax, selection = top_k, k = 1>, experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_qwen2_shared(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = qwen2_moe expects a shared expert with its sigmoid gate: shared(gate, up, down, gate_weight)}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<qwen2_moe>, routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_deepseek_shared_gate(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>, %s: tensor<96x64xf32>, %sd: tensor<64x96xf32>, %ws: tensor<1x64xf32>) {
  // expected-error@+1 {{'moe.layer' op family = deepseek_v2 expects ungated shared experts: shared(gate, up, down), shared(gate_up, down) or none}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) shared(%s, %s, %sd, %ws : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>, tensor<1x64xf32>) {family = #moe.family<deepseek_v2>, routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_no_shared(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>, %s: tensor<96x64xf32>, %sd: tensor<64x96xf32>) {
  // expected-error@+1 {{'moe.layer' op family = mixtral expects no shared experts}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) shared(%s, %s, %sd : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>) {family = #moe.family<mixtral>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_v3_bias(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = deepseek_v3 expects a selection bias (e_score_correction_bias)}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<deepseek_v3>, routing = #moe.routing<score = sigmoid, selection = grouped_top_k, k = 2, groups = 4, topk_group = 2, group_score = sum_top2, renormalize = true>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @family_no_bias(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %b: tensor<8xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op family = qwen3_moe expects no selection bias}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) bias(%b : tensor<8xf32>) experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<qwen3_moe>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @unknown_family(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+2 {{expected one of [mixtral, qwen2_moe, qwen3_moe, olmoe, granitemoe, deepseek_v2, deepseek_v3, switch] for model family preset, got: llama}}
  // expected-error@+1 {{failed to parse MoE_FamilyAttr parameter 'value'}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {family = #moe.family<llama>, routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @renormalize_after_drop_scale(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %g: tensor<8x128x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.layer' op renormalize_after_drop makes each token's weights sum to 1, which would cancel scale = 2.5}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%g, %d : tensor<8x128x64xf32>, tensor<8x64x128xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2, scale = 2.5>, capacity = #moe.capacity<count = 4, renormalize_after_drop = true>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @lora_shared_out(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %w0: tensor<32x64xf32>, %a: tensor<8x4x64xf32>, %b: tensor<8x32x4xf32>, %s: tensor<96x64xf32>, %sd: tensor<64x96xf32>) {
  // expected-error@+1 {{'moe.layer' op expected d_out = 64 (shared experts add a [T, d] output), found d_out = 32 from `base` dim 0 (d_out)}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%w0, %a, %b : tensor<32x64xf32>, tensor<8x4x64xf32>, tensor<8x32x4xf32>) shared(%s, %s, %sd : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = lora, alpha = 4.0>} : tensor<?x64xf32>
  return
}

// -----

func.func @layer_factor_expert_choice(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
    %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>, %f: f64) -> tensor<?x64xf32> {
  // expected-error@+1 {{'moe.layer' op expected token-choice routing with a run-time capacity_factor, found selection = expert_choice}}
  %y, %l, %d = moe.layer %x router(%wg : tensor<8x64xf32>) capacity_factor(%f)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = expert_choice, k = 2>,
       capacity = #moe.capacity<factor = 1.0>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @layer_factor_no_capacity(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
    %w1: tensor<8x32x64xf32>, %w2: tensor<8x64x32xf32>, %f: f64) -> tensor<?x64xf32> {
  // expected-error@+1 {{'moe.layer' op expected a capacity with a factor when a run-time capacity_factor is given, found no capacity}}
  %y, %l, %d = moe.layer %x router(%wg : tensor<8x64xf32>) capacity_factor(%f)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Expert biases: one [E, n] per expert weight [E, n, k], in its order and
// element type; gated experts only.
func.func @expert_bias_count(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %gu: tensor<8x256x64xf32>, %d: tensor<8x64x128xf32>, %b: tensor<8x256xf32>) {
  // expected-error@+1 {{'moe.layer' op expected one expert bias per expert weight (2), found 1}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%gu, %d : tensor<8x256x64xf32>, tensor<8x64x128xf32>) expert_biases(%b : tensor<8x256xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @expert_bias_rows(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %gu: tensor<8x256x64xf32>, %d: tensor<8x64x128xf32>, %b: tensor<8x128xf32>, %bd: tensor<8x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expected `gate_up bias` dim 1 (2*f) to be 256 (f = 128 from `gate_up` dim 1 (2*f)), found 128}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%gu, %d : tensor<8x256x64xf32>, tensor<8x64x128xf32>) expert_biases(%b, %bd : tensor<8x128xf32>, tensor<8x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @expert_bias_type(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %gu: tensor<8x256x64xf32>, %d: tensor<8x64x128xf32>, %b: tensor<8x256xf32>, %bd: tensor<8x64xbf16>) {
  // expected-error@+1 {{'moe.layer' op expected `down bias` to have element type 'f32' (that of `down`), found 'bf16'}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%gu, %d : tensor<8x256x64xf32>, tensor<8x64x128xf32>) expert_biases(%b, %bd : tensor<8x256xf32>, tensor<8x64xbf16>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @expert_bias_mlp(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>, %b: tensor<8x128xf32>, %bd: tensor<8x64xf32>) {
  // expected-error@+1 {{'moe.layer' op expert biases apply to kind = gated, found kind = mlp}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%w1, %w2 : tensor<8x128x64xf32>, tensor<8x64x128xf32>) expert_biases(%b, %bd : tensor<8x128xf32>, tensor<8x64xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @expert_bias_family(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %gu: tensor<8x256x64xf32>, %d: tensor<8x64x128xf32>, %b: tensor<8x256xf32>, %bd: tensor<8x64xf32>) {
  // expected-error@+1 {{'moe.layer' op family = mixtral expects no expert biases}}
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>) experts(%gu, %d : tensor<8x256x64xf32>, tensor<8x64x128xf32>) expert_biases(%b, %bd : tensor<8x256xf32>, tensor<8x64xf32>) {family = #moe.family<mixtral>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>, experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}
