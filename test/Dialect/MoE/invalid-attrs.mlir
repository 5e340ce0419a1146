// RUN: moe-opt %s -split-input-file -verify-diagnostics

// Verifiers of the structured attributes #moe.routing, #moe.capacity and
// #moe.experts, which run wherever the attributes appear.

func.func @k_zero(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{expected k >= 1, found k = 0}}
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 0> : tensor<?x8xf32>
  return
}

// -----

func.func @scale_negative(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{expected a finite scale > 0, found scale = -1}}
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 2, scale = -1.0> : tensor<?x8xf32>
  return
}

// -----

func.func @groups_without_grouped(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{`groups`, `topk_group` and `group_score` apply only to selection = grouped_top_k, found selection = top_k}}
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 2, groups = 4> : tensor<?x8xf32>
  return
}

// -----

func.func @groups_zero(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{expected groups >= 1, found groups = 0}}
  %i, %w = moe.route %z <score = softmax, selection = grouped_top_k, k = 2, groups = 0, topk_group = 1> : tensor<?x8xf32>
  return
}

// -----

func.func @grouped_needs_topk_group(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{selection = grouped_top_k needs `topk_group`}}
  %i, %w = moe.route %z <score = softmax, selection = grouped_top_k, k = 2, groups = 4> : tensor<?x8xf32>
  return
}

// -----

func.func @topk_group_above_groups(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{expected 1 <= topk_group <= groups = 4, found topk_group = 5}}
  %i, %w = moe.route %z <score = softmax, selection = grouped_top_k, k = 2, groups = 4, topk_group = 5> : tensor<?x8xf32>
  return
}

// -----

func.func @top_p_missing(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{selection = top_p needs `top_p`}}
  %i, %w = moe.route %z <score = softmax, selection = top_p, k = 2> : tensor<?x8xf32>
  return
}

// -----

func.func @top_p_without_top_p_selection(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{`top_p` applies only to selection = top_p}}
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 2, top_p = 0.5> : tensor<?x8xf32>
  return
}

// -----

func.func @top_p_zero(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{expected top_p in (0, 1], found top_p = 0}}
  %i, %w = moe.route %z <score = softmax, selection = top_p, k = 2, top_p = 0.0> : tensor<?x8xf32>
  return
}

// -----

func.func @top_p_above_one(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{expected top_p in (0, 1], found top_p = 1.5}}
  %i, %w = moe.route %z <score = softmax, selection = top_p, k = 2, top_p = 1.5> : tensor<?x8xf32>
  return
}

// -----

func.func @top_p_sigmoid(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{selection = top_p accumulates softmax scores: expected score = softmax, found score = sigmoid}}
  %i, %w = moe.route %z <score = sigmoid, selection = top_p, k = 2, top_p = 0.5> : tensor<?x8xf32>
  return
}

// -----

func.func @tau_without_threshold(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{`tau` applies only to selection = threshold}}
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 2, tau = 0.5> : tensor<?x8xf32>
  return
}

// -----

func.func @tau_infinite(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{expected a finite tau, found INF}}
  %i, %w = moe.route %z <score = softmax, selection = threshold, k = 2, tau = 0x7FF0000000000000> : tensor<?x8xf32>
  return
}

// -----

func.func @expert_choice_sigmoid(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{selection = expert_choice ranks softmax scores: expected score = softmax, found score = sigmoid}}
  %y, %l, %d = moe.layer %z router(%z : tensor<?x8xf32>) experts(%z : tensor<?x8xf32>) {routing = #moe.routing<score = sigmoid, selection = expert_choice, k = 2>, experts = #moe.experts<kind = gated>} : tensor<?x8xf32>
  return
}

// -----

func.func @expert_choice_renormalize(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{selection = expert_choice weights each token by its score: `weights = softmax_selected`, `renormalize` and `scale` do not apply}}
  %y, %l, %d = moe.layer %z router(%z : tensor<?x8xf32>) experts(%z : tensor<?x8xf32>) {routing = #moe.routing<score = softmax, selection = expert_choice, k = 2, renormalize = true>, experts = #moe.experts<kind = gated>} : tensor<?x8xf32>
  return
}

// -----

func.func @bad_bool(%z: tensor<?x8xf32>) {
  // expected-error@+2 {{failed to parse MoE_RoutingAttr parameter 'renormalize'}}
  // expected-error@+1 {{expected `true` or `false`}}
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 2, renormalize = 1> : tensor<?x8xf32>
  return
}

// -----

func.func @unknown_score(%z: tensor<?x8xf32>) {
  // expected-error@+2 {{failed to parse MoE_RoutingAttr parameter 'score'}}
  // expected-error@+1 {{expected keyword for router score function}}
  %i, %w = moe.route %z <score = 3, selection = top_k, k = 2> : tensor<?x8xf32>
  return
}

// -----

func.func @capacity_without_capacity(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{capacity options given without a capacity: expected `count` or `factor`}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <min = 4, drop_order = token_major> : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @capacity_both(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{expected one of `count` and `factor`, found both}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <count = 4, factor = 1.0> : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @capacity_count_zero(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{expected count >= 1, found count = 0}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <count = 0> : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @capacity_factor_negative(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{expected a finite factor > 0, found factor = -1.5}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <factor = -1.5> : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @capacity_min_negative(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{expected min >= 0, found min = -1}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <count = 4, min = -1> : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @capacity_align_zero(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{expected align >= 1, found align = 0}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <count = 4, align = 0> : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @lora_needs_alpha(%x: tensor<?x8xf32>) {
  // expected-error@+1 {{LoRA experts (kind = lora) need `alpha`}}
  %y, %l, %d = moe.layer %x router(%x : tensor<?x8xf32>) experts(%x : tensor<?x8xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = lora>} : tensor<?x8xf32>
  return
}

// -----

func.func @alpha_without_lora(%x: tensor<?x8xf32>) {
  // expected-error@+1 {{`alpha` applies only to LoRA experts, found kind = gated}}
  %y, %l, %d = moe.layer %x router(%x : tensor<?x8xf32>) experts(%x : tensor<?x8xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = gated, alpha = 2.0>} : tensor<?x8xf32>
  return
}

// -----

func.func @alpha_nan(%x: tensor<?x8xf32>) {
  // expected-error@+1 {{expected a finite alpha, found nan}}
  %y, %l, %d = moe.layer %x router(%x : tensor<?x8xf32>) experts(%x : tensor<?x8xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = lora, alpha = 0x7FF8000000000000>} : tensor<?x8xf32>
  return
}

// -----

func.func @layout_block(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{expected block >= 1, found block = 0}}
  %r:7 = moe.dispatch %ids, %w experts = 8 layout <kind = aligned, block = 0>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @layout_block_ragged(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{expected `block` only with kind = aligned, found kind = ragged}}
  %r:7 = moe.dispatch %ids, %w experts = 8 layout <kind = ragged, block = 4>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @swiglu_oai_mlp(%x: tensor<?x8xf32>) {
  // expected-error@+1 {{act = swiglu_oai combines gate and up, so it needs kind = gated, found kind = mlp}}
  %y, %l, %d = moe.layer %x router(%x : tensor<?x8xf32>) experts(%x : tensor<?x8xf32>) {routing = #moe.routing<score = softmax, selection = top_k, k = 2>, experts = #moe.experts<kind = mlp, act = swiglu_oai>} : tensor<?x8xf32>
  return
}
