// RUN: moe-opt %s --moe-decompose --split-input-file | FileCheck %s

// One moe.layer per family preset of spec section 9, then the expert kinds
// and routing forms that no preset uses.

// CHECK-LABEL: func @mixtral
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WG:.*]]: tensor<8x64xf32>, %[[W1:.*]]: tensor<8x96x64xf32>, %[[W3:.*]]: tensor<8x96x64xf32>, %[[W2:.*]]: tensor<8x64x96xf32>)
// CHECK: %[[Z:.*]] = moe.router %[[X]], %[[WG]] : tensor<?x64xf32>, tensor<8x64xf32>
// CHECK: %[[IDS:.*]], %[[W:.*]] = moe.route %[[Z]] <score = softmax, selection = top_k, k = 2, renormalize = true> : tensor<?x8xf32>
// CHECK: %[[RT:.*]], %{{.*}}, %[[SR:.*]], %[[SW:.*]], %[[SIZES:.*]], %{{.*}}, %[[DROP:.*]] = moe.dispatch %[[IDS]], %[[W]] experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
// CHECK: %[[XG:.*]] = moe.gather %[[X]], %[[RT]] : tensor<?x64xf32>, tensor<?xi32>
// CHECK: %[[YG:.*]] = moe.gated_experts %[[XG]], %[[SIZES]] gate(%[[W1]] : tensor<8x96x64xf32>) up(%[[W3]] : tensor<8x96x64xf32>) down(%[[W2]] : tensor<8x64x96xf32>) act = silu : tensor<?x64xf32>, tensor<8xi64>
// CHECK: %[[Y:.*]] = moe.combine %[[YG]], %[[SR]] weights(%[[SW]] : tensor<?x2xf32>) : tensor<?x64xf32>, tensor<?x2xi32>
// CHECK: %[[LOAD:.*]] = moe.expert_load %[[IDS]] experts = 8 : tensor<?x2xi32>
// CHECK: return %[[Y]], %[[LOAD]], %[[DROP]]
// CHECK-NOT: moe.layer
func.func @mixtral(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                   %w1: tensor<8x96x64xf32>, %w3: tensor<8x96x64xf32>,
                   %w2: tensor<8x64x96xf32>)
    -> (tensor<?x64xf32>, tensor<8xi64>, tensor<8xi64>) {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w3, %w2 : tensor<8x96x64xf32>, tensor<8x96x64xf32>,
                              tensor<8x64x96xf32>)
      {family = #moe.family<mixtral>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xf32>
  return %y, %load, %dropped : tensor<?x64xf32>, tensor<8xi64>, tensor<8xi64>
}

// -----

// CHECK-LABEL: func @qwen2_moe
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xbf16>, %[[WG:.*]]: tensor<16x64xbf16>, %[[G:.*]]: tensor<16x32x64xbf16>, %[[U:.*]]: tensor<16x32x64xbf16>, %[[D:.*]]: tensor<16x64x32xbf16>, %[[SG:.*]]: tensor<128x64xbf16>, %[[SU:.*]]: tensor<128x64xbf16>, %[[SD:.*]]: tensor<64x128xbf16>, %[[WS:.*]]: tensor<1x64xbf16>)
// CHECK: %[[Z:.*]] = moe.router %[[X]], %[[WG]]
// CHECK: %[[IDS:.*]], %[[W:.*]] = moe.route %[[Z]] <score = softmax, selection = top_k, k = 4> : tensor<?x16xf32>
// CHECK: %[[RT:.*]], %{{.*}}, %[[SR:.*]], %[[SW:.*]], %[[SIZES:.*]], %{{.*}}, %{{.*}} = moe.dispatch %[[IDS]], %[[W]] experts = 16
// CHECK: %[[XG:.*]] = moe.gather %[[X]], %[[RT]]
// CHECK: %[[YG:.*]] = moe.gated_experts %[[XG]], %[[SIZES]] gate(%[[G]] : {{.*}}) up(%[[U]] : {{.*}}) down(%[[D]] : {{.*}}) act = silu
// CHECK: %[[S:.*]] = moe.shared_expert %[[X]], %[[SG]], %[[SU]], %[[SD]] gate(%[[WS]] : tensor<1x64xbf16>) act = silu
// CHECK: %[[Y:.*]] = moe.combine %[[YG]], %[[SR]] weights(%[[SW]] : tensor<?x4xf32>) addend(%[[S]] : tensor<?x64xbf16>) : tensor<?x64xbf16>, tensor<?x4xi32>
// CHECK: return %[[Y]]
func.func @qwen2_moe(%x: tensor<?x64xbf16>, %wg: tensor<16x64xbf16>,
                     %g: tensor<16x32x64xbf16>, %u: tensor<16x32x64xbf16>,
                     %d: tensor<16x64x32xbf16>, %sg: tensor<128x64xbf16>,
                     %su: tensor<128x64xbf16>, %sd: tensor<64x128xbf16>,
                     %ws: tensor<1x64xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<16x64xbf16>)
      experts(%g, %u, %d : tensor<16x32x64xbf16>, tensor<16x32x64xbf16>,
                           tensor<16x64x32xbf16>)
      shared(%sg, %su, %sd, %ws : tensor<128x64xbf16>, tensor<128x64xbf16>,
                                  tensor<64x128xbf16>, tensor<1x64xbf16>)
      {family = #moe.family<qwen2_moe>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 4>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// CHECK-LABEL: func @qwen3_moe
// CHECK: moe.route %{{.*}} <score = softmax, selection = top_k, k = 8, renormalize = true> : tensor<?x32xf32>
// CHECK: moe.dispatch %{{.*}}, %{{.*}} experts = 32 : tensor<?x8xi32>, tensor<?x8xf32>
// CHECK: moe.gated_experts
// CHECK-NOT: moe.shared_expert
// CHECK: moe.combine
func.func @qwen3_moe(%x: tensor<?x64xf32>, %wg: tensor<32x64xf32>,
                     %g: tensor<32x16x64xf32>, %u: tensor<32x16x64xf32>,
                     %d: tensor<32x64x16xf32>) -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<32x64xf32>)
      experts(%g, %u, %d : tensor<32x16x64xf32>, tensor<32x16x64xf32>,
                           tensor<32x64x16xf32>)
      {family = #moe.family<qwen3_moe>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 8,
                              renormalize = true>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func @olmoe
// CHECK: moe.route %{{.*}} <score = softmax, selection = top_k, k = 8> : tensor<?x64xf32>
// CHECK: moe.gated_experts
// CHECK: moe.combine
func.func @olmoe(%x: tensor<?x32xf32>, %wg: tensor<64x32xf32>,
                 %g: tensor<64x16x32xf32>, %u: tensor<64x16x32xf32>,
                 %d: tensor<64x32x16xf32>) -> tensor<?x32xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<64x32xf32>)
      experts(%g, %u, %d : tensor<64x16x32xf32>, tensor<64x16x32xf32>,
                           tensor<64x32x16xf32>)
      {family = #moe.family<olmoe>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 8>,
       experts = #moe.experts<kind = gated>} : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// CHECK-LABEL: func @granitemoe
// CHECK-SAME: %[[GU:[^:]*]]: tensor<8x192x64xf32>, %[[D:[^:]*]]: tensor<8x64x96xf32>
// CHECK: moe.route %{{.*}} <score = logits, selection = top_k, k = 2, weights = softmax_selected> : tensor<?x8xf32>
// CHECK: moe.gated_experts %{{.*}}, %{{.*}} gate_up(%[[GU]] : tensor<8x192x64xf32>) down(%[[D]] : tensor<8x64x96xf32>) act = silu
func.func @granitemoe(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                      %gu: tensor<8x192x64xf32>, %d: tensor<8x64x96xf32>)
    -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%gu, %d : tensor<8x192x64xf32>, tensor<8x64x96xf32>)
      {family = #moe.family<granitemoe>,
       routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func @deepseek_v2
// CHECK: moe.route %{{.*}} <score = softmax, selection = grouped_top_k, k = 6, groups = 8, topk_group = 3, scale = 16.0> : tensor<?x64xf32>
// CHECK: moe.gated_experts
// CHECK: %[[S:.*]] = moe.shared_expert %{{.*}} act = silu
// CHECK: moe.combine %{{.*}} addend(%[[S]] : tensor<?x32xf32>)
func.func @deepseek_v2(%x: tensor<?x32xf32>, %wg: tensor<64x32xf32>,
                       %g: tensor<64x16x32xf32>, %u: tensor<64x16x32xf32>,
                       %d: tensor<64x32x16xf32>, %sg: tensor<32x32xf32>,
                       %su: tensor<32x32xf32>, %sd: tensor<32x32xf32>)
    -> tensor<?x32xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<64x32xf32>)
      experts(%g, %u, %d : tensor<64x16x32xf32>, tensor<64x16x32xf32>,
                           tensor<64x32x16xf32>)
      shared(%sg, %su, %sd : tensor<32x32xf32>, tensor<32x32xf32>,
                             tensor<32x32xf32>)
      {family = #moe.family<deepseek_v2>,
       routing = #moe.routing<score = softmax, selection = grouped_top_k,
                              k = 6, groups = 8, topk_group = 3,
                              scale = 16.0>,
       experts = #moe.experts<kind = gated>} : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// CHECK-LABEL: func @deepseek_v3
// CHECK-SAME: %[[B:[^:]*]]: tensor<64xf32>
// CHECK: moe.route %{{.*}} bias(%[[B]] : tensor<64xf32>) <score = sigmoid, selection = grouped_top_k, k = 8, groups = 8, topk_group = 4, group_score = sum_top2, renormalize = true, scale = 2.5> : tensor<?x64xf32>
// CHECK: moe.shared_expert
// CHECK: moe.combine
func.func @deepseek_v3(%x: tensor<?x32xf32>, %wg: tensor<64x32xf32>,
                       %b: tensor<64xf32>,
                       %g: tensor<64x16x32xf32>, %u: tensor<64x16x32xf32>,
                       %d: tensor<64x32x16xf32>, %sg: tensor<16x32xf32>,
                       %su: tensor<16x32xf32>, %sd: tensor<32x16xf32>)
    -> tensor<?x32xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<64x32xf32>)
      bias(%b : tensor<64xf32>)
      experts(%g, %u, %d : tensor<64x16x32xf32>, tensor<64x16x32xf32>,
                           tensor<64x32x16xf32>)
      shared(%sg, %su, %sd : tensor<16x32xf32>, tensor<16x32xf32>,
                             tensor<32x16xf32>)
      {family = #moe.family<deepseek_v3>,
       routing = #moe.routing<score = sigmoid, selection = grouped_top_k,
                              k = 8, groups = 8, topk_group = 4,
                              group_score = sum_top2, renormalize = true,
                              scale = 2.5>,
       experts = #moe.experts<kind = gated>} : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// CHECK-LABEL: func @switch
// CHECK: %[[Z:.*]] = moe.router
// CHECK: %[[IDS:.*]], %[[W:.*]] = moe.route %[[Z]] <score = softmax, selection = top_k, k = 1> : tensor<?x8xf32>
// CHECK: %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %[[SIZES:.*]], %{{.*}}, %[[DROP:.*]] = moe.dispatch %[[IDS]], %[[W]] experts = 8 capacity <factor = 1.25, drop_order = token_major> : tensor<?x1xi32>, tensor<?x1xf32>
// CHECK: moe.mlp_experts %{{.*}}, %[[SIZES]], %{{.*}}, %{{.*}} act = relu
// CHECK: %[[LOAD:.*]] = moe.expert_load %[[IDS]] experts = 8
// CHECK: return %{{.*}}, %[[LOAD]], %[[DROP]]
func.func @switch(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                  %w1: tensor<8x256x64xf32>, %w2: tensor<8x64x256xf32>)
    -> (tensor<?x64xf32>, tensor<8xi64>, tensor<8xi64>) {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w1, %w2 : tensor<8x256x64xf32>, tensor<8x64x256xf32>)
      {family = #moe.family<switch>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 1>,
       capacity = #moe.capacity<factor = 1.25, drop_order = token_major>,
       experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x64xf32>
  return %y, %load, %dropped : tensor<?x64xf32>, tensor<8xi64>, tensor<8xi64>
}

// -----

// LoRA experts on a frozen base: the base is a dense projection of every
// token, added by the combine.
// CHECK-LABEL: func @lora
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WG:.*]]: tensor<8x64xf32>, %[[W0:.*]]: tensor<48x64xf32>, %[[A:.*]]: tensor<8x4x64xf32>, %[[B:.*]]: tensor<8x48x4xf32>)
// CHECK: %[[RT:.*]], %{{.*}}, %[[SR:.*]], %[[SW:.*]], %[[SIZES:.*]], %{{.*}}, %{{.*}} = moe.dispatch
// CHECK: %[[XG:.*]] = moe.gather %[[X]], %[[RT]]
// CHECK: %[[DG:.*]] = moe.lora_experts %[[XG]], %[[SIZES]], %[[A]], %[[B]] alpha = 8.000000e+00 : tensor<?x64xf32>, tensor<8xi64>, tensor<8x4x64xf32>, tensor<8x48x4xf32>
// CHECK: %[[BASE:.*]] = moe.linear %[[X]], %[[W0]] : tensor<?x64xf32>, tensor<48x64xf32>
// CHECK: %[[Y:.*]] = moe.combine %[[DG]], %[[SR]] weights(%[[SW]] : tensor<?x2xf32>) addend(%[[BASE]] : tensor<?x48xf32>) : tensor<?x48xf32>, tensor<?x2xi32>
// CHECK: return %[[Y]] : tensor<?x48xf32>
func.func @lora(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                %w0: tensor<48x64xf32>, %a: tensor<8x4x64xf32>,
                %b: tensor<8x48x4xf32>) -> tensor<?x48xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%w0, %a, %b : tensor<48x64xf32>, tensor<8x4x64xf32>,
                            tensor<8x48x4xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       experts = #moe.experts<kind = lora, alpha = 8.0>} : tensor<?x64xf32>
  return %y : tensor<?x48xf32>
}

// -----

// A gated base FFN whose projections carry per-expert LoRA pairs (MixLoRA),
// with the combine weight applied to the expert input.
// CHECK-LABEL: func @lora_gated_apply_input
// CHECK: %[[RT:.*]], %[[RW:.*]], %[[SR:.*]], %{{.*}}, %[[SIZES:.*]], %{{.*}}, %{{.*}} = moe.dispatch
// CHECK: %[[XG:.*]] = moe.gather %{{.*}}, %[[RT]] scale(%[[RW]] : tensor<?xf32>)
// CHECK: %[[YG:.*]] = moe.lora_gated_experts %[[XG]], %[[SIZES]] base({{.*}}) gate_lora({{.*}}) up_lora({{.*}}) down_lora({{.*}}) act = gelu_tanh alpha = 1.600000e+01
// CHECK: %[[Y:.*]] = moe.combine %[[YG]], %[[SR]] : tensor<?x64xf32>, tensor<?x2xi32>
// CHECK: return %[[Y]]
func.func @lora_gated_apply_input(%x: tensor<?x64xf32>, %wg: tensor<4x64xf32>,
    %g: tensor<128x64xf32>, %u: tensor<128x64xf32>, %d: tensor<64x128xf32>,
    %ga: tensor<4x8x64xf32>, %gb: tensor<4x128x8xf32>,
    %ua: tensor<4x8x64xf32>, %ub: tensor<4x128x8xf32>,
    %da: tensor<4x8x128xf32>, %db: tensor<4x64x8xf32>) -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<4x64xf32>)
      experts(%g, %u, %d, %ga, %gb, %ua, %ub, %da, %db :
              tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>,
              tensor<4x8x64xf32>, tensor<4x128x8xf32>, tensor<4x8x64xf32>,
              tensor<4x128x8xf32>, tensor<4x8x128xf32>, tensor<4x64x8xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true, apply_weight = input>,
       experts = #moe.experts<kind = lora_gated, act = gelu_tanh,
                              alpha = 16.0>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Expert choice: the experts pick their tokens; dispatch of the per-token
// slot form is dropless.
// CHECK-LABEL: func @expert_choice
// CHECK: %[[Z:.*]] = moe.router
// CHECK: %{{.*}}, %{{.*}}, %[[IDS:.*]], %[[W:.*]] = moe.expert_choice %[[Z]] k = 2 capacity <factor = 1.5> : tensor<?x8xf32>
// CHECK: moe.dispatch %[[IDS]], %[[W]] experts = 8 : tensor<?x8xi32>, tensor<?x8xf32>
// CHECK: moe.gated_experts
// CHECK: moe.combine %{{.*}}, %{{.*}} weights(%{{.*}} : tensor<?x8xf32>)
func.func @expert_choice(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                         %gu: tensor<8x192x64xf32>, %d: tensor<8x64x96xf32>)
    -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%gu, %d : tensor<8x192x64xf32>, tensor<8x64x96xf32>)
      {routing = #moe.routing<score = softmax, selection = expert_choice,
                              k = 2>,
       capacity = #moe.capacity<factor = 1.5>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Threshold routing with a run-time tau, a router bias, and capacity.
// CHECK-LABEL: func @threshold_runtime_tau
// CHECK-SAME: (%[[X:.*]]: tensor<?x64xf32>, %[[WG:.*]]: tensor<8x64xf32>, %[[BG:.*]]: tensor<8xf32>, %[[TAU:.*]]: f32
// CHECK: %[[Z:.*]] = moe.router %[[X]], %[[WG]] bias(%[[BG]] : tensor<8xf32>)
// CHECK: moe.route %[[Z]] tau(%[[TAU]]) <score = softmax, selection = threshold, k = 3, renormalize = true>
// CHECK: moe.dispatch %{{.*}}, %{{.*}} experts = 8 capacity <count = 6, drop_order = score, renormalize_after_drop = true>
func.func @threshold_runtime_tau(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
                                 %bg: tensor<8xf32>, %tau: f32,
                                 %w1: tensor<8x32x64xf32>,
                                 %w2: tensor<8x64x32xf32>) -> tensor<?x64xf32> {
  %y, %load, %dropped = moe.layer %x
      router(%wg, %bg : tensor<8x64xf32>, tensor<8xf32>) tau(%tau)
      experts(%w1, %w2 : tensor<8x32x64xf32>, tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = threshold, k = 3,
                              renormalize = true>,
       capacity = #moe.capacity<count = 6, drop_order = score,
                                renormalize_after_drop = true>,
       experts = #moe.experts<kind = mlp, act = gelu_erf>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A fused shared gate_up [2 fs, d] (Granite's shared_mlp): its gate rows,
// then its up rows, into moe.shared_expert.
// CHECK-LABEL: func.func @shared_gate_up
// CHECK-SAME: %[[X:[^:]*]]: tensor<?x64xbf16>, {{.*}}, %[[SGU:[^:]*]]: tensor<96x64xbf16>, %[[SD:[^:]*]]: tensor<64x48xbf16>)
// CHECK: %[[SG:.*]] = tensor.extract_slice %[[SGU]][0, 0] [48, 64] [1, 1] : tensor<96x64xbf16> to tensor<48x64xbf16>
// CHECK: %[[SU:.*]] = tensor.extract_slice %[[SGU]][48, 0] [48, 64] [1, 1] : tensor<96x64xbf16> to tensor<48x64xbf16>
// CHECK: moe.shared_expert %[[X]], %[[SG]], %[[SU]], %[[SD]] act = silu
func.func @shared_gate_up(%x: tensor<?x64xbf16>, %wg: tensor<8x64xbf16>,
    %gu: tensor<8x64x64xbf16>, %d: tensor<8x64x32xbf16>,
    %sgu: tensor<96x64xbf16>, %sd: tensor<64x48xbf16>) -> tensor<?x64xbf16> {
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xbf16>)
      experts(%gu, %d : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      shared(%sgu, %sd : tensor<96x64xbf16>, tensor<64x48xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A fused shared gate_up of dynamic rows: fs from down's dim 1.
// CHECK-LABEL: func.func @shared_gate_up_dynamic
// CHECK-SAME: %[[SGU:[^:]*]]: tensor<?x64xf32>, %[[SD:[^:]*]]: tensor<64x?xf32>)
// CHECK: %[[FS:.*]] = tensor.dim %[[SD]], %{{.*}} : tensor<64x?xf32>
// CHECK: %[[SG:.*]] = tensor.extract_slice %[[SGU]][0, 0] [%[[FS]], 64] [1, 1] : tensor<?x64xf32> to tensor<?x64xf32>
// CHECK: %[[SU:.*]] = tensor.extract_slice %[[SGU]][%[[FS]], 0] [%[[FS]], 64] [1, 1] : tensor<?x64xf32> to tensor<?x64xf32>
// CHECK: moe.shared_expert %{{.*}}, %[[SG]], %[[SU]], %[[SD]] act = silu
func.func @shared_gate_up_dynamic(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>,
    %gu: tensor<8x64x64xf32>, %d: tensor<8x64x32xf32>,
    %sgu: tensor<?x64xf32>, %sd: tensor<64x?xf32>) -> tensor<?x64xf32> {
  %y, %l, %dr = moe.layer %x router(%wg : tensor<8x64xf32>)
      experts(%gu, %d : tensor<8x64x64xf32>, tensor<8x64x32xf32>)
      shared(%sgu, %sd : tensor<?x64xf32>, tensor<64x?xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
