// RUN: moe-opt %s --moe-form-layers --split-input-file | FileCheck %s
// RUN: moe-opt %s --moe-form-layers=explain=1 --split-input-file \
// RUN:   --verify-diagnostics > /dev/null

// A Mixtral block written op by op: router, route, dispatch, gather, gated
// experts, combine. The assignment counts become the layer's; statistics
// that counted co-activation on the chain's ids count the layer's.

// CHECK-LABEL: func.func @mixtral
//  CHECK-SAME: (%[[X:.*]]: tensor<?x32xbf16>, %[[WG:.*]]: tensor<8x32xbf16>, %[[G:.*]]: tensor<8x48x32xbf16>, %[[U:.*]]: tensor<8x48x32xbf16>, %[[D:.*]]: tensor<8x32x48xbf16>)
//       CHECK: %[[Y:.*]], %[[LOAD:.*]], %[[DROP:.*]] = moe.layer %[[X]] router(%[[WG]] : tensor<8x32xbf16>)
//  CHECK-SAME:   experts(%[[G]], %[[U]], %[[D]] : tensor<8x48x32xbf16>, tensor<8x48x32xbf16>, tensor<8x32x48xbf16>)
//  CHECK-SAME:   {experts = #moe.experts<kind = gated>, routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>} : tensor<?x32xbf16>
//       CHECK: %[[T:.*]] = tensor.dim %[[X]]
//  CHECK-NEXT: moe.record_stats %[[LOAD]], %[[DROP]] tokens(%[[T]]) layer = "mixtral" {with_coactivation} : tensor<8xi64>
//  CHECK-NEXT: return %[[Y]], %[[LOAD]] :
//   CHECK-NOT: moe.
func.func @mixtral(%x: tensor<?x32xbf16>, %wg: tensor<8x32xbf16>,
                   %gate: tensor<8x48x32xbf16>, %up: tensor<8x48x32xbf16>,
                   %down: tensor<8x32x48xbf16>)
    -> (tensor<?x32xbf16>, tensor<8xi64>) {
  %z = moe.router %x, %wg : tensor<?x32xbf16>, tensor<8x32xbf16>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2,
                           renormalize = true> : tensor<?x8xf32>
  %load = moe.expert_load %ids experts = 8 : tensor<?x2xi32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xbf16>, tensor<?xi32>
  %yg = moe.gated_experts %xg, %sizes gate(%gate : tensor<8x48x32xbf16>)
      up(%up : tensor<8x48x32xbf16>) down(%down : tensor<8x32x48xbf16>)
      act = silu : tensor<?x32xbf16>, tensor<8xi64>
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xbf16>, tensor<?x2xi32>
  %c0 = arith.constant 0 : index
  %t = tensor.dim %x, %c0 : tensor<?x32xbf16>
  moe.record_stats %load, %dropped tokens(%t)
      coactivation(%ids : tensor<?x2xi32>) layer = "mixtral" : tensor<8xi64>
  return %y, %load : tensor<?x32xbf16>, tensor<8xi64>
}

// -----

// The fused spelling (moe-fuse-gating, moe-fuse-expert-io), with a run-time
// tau, a selection bias, a capacity factor operand and a shared expert
// whose fused gate_up moe-decompose sliced: joined again.

// CHECK-LABEL: func.func @fused
//  CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[WG:.*]]: tensor<8x32xf32>, %[[B:.*]]: tensor<8xf32>, %[[SB:.*]]: tensor<8xf32>, %[[TAU:.*]]: f32, %[[CF:.*]]: f64, %[[W1:.*]]: tensor<8x48x32xf32>, %[[W2:.*]]: tensor<8x32x48xf32>, %[[SGU:.*]]: tensor<64x32xf32>, %[[SD:.*]]: tensor<32x32xf32>)
//   CHECK-NOT: tensor.extract_slice
//       CHECK: %[[Y:.*]], %{{.*}}, %[[DROP:.*]] = moe.layer %[[X]] router(%[[WG]], %[[B]] : tensor<8x32xf32>, tensor<8xf32>)
//  CHECK-SAME:   bias(%[[SB]] : tensor<8xf32>) tau(%[[TAU]]) capacity_factor(%[[CF]])
//  CHECK-SAME:   experts(%[[W1]], %[[W2]] : tensor<8x48x32xf32>, tensor<8x32x48xf32>)
//  CHECK-SAME:   shared(%[[SGU]], %[[SD]] : tensor<64x32xf32>, tensor<32x32xf32>)
//  CHECK-SAME:   {capacity = #moe.capacity<factor = 1.0, drop_order = score>, experts = #moe.experts<kind = mlp, act = relu>, routing = #moe.routing<score = sigmoid, selection = threshold, k = 2>} : tensor<?x32xf32>
//  CHECK-NEXT: return %[[Y]], %[[DROP]] :
func.func @fused(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                 %b: tensor<8xf32>, %sb: tensor<8xf32>, %tau: f32, %cf: f64,
                 %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>,
                 %sgu: tensor<64x32xf32>, %sd: tensor<32x32xf32>)
    -> (tensor<?x32xf32>, tensor<8xi64>) {
  %ids, %w = moe.gate %x, %wg bias(%b : tensor<8xf32>)
      selection_bias(%sb : tensor<8xf32>) tau(%tau)
      <score = sigmoid, selection = threshold, k = 2>
      : tensor<?x32xf32>, tensor<8x32xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8
          capacity <factor = 1.0, drop_order = score> capacity_factor(%cf)
      : tensor<?x2xi32>, tensor<?x2xf32>
  %sg = tensor.extract_slice %sgu[0, 0] [32, 32] [1, 1]
      : tensor<64x32xf32> to tensor<32x32xf32>
  %su = tensor.extract_slice %sgu[32, 0] [32, 32] [1, 1]
      : tensor<64x32xf32> to tensor<32x32xf32>
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x2xf32>)
      experts(%w1, %w2 : tensor<8x48x32xf32>, tensor<8x32x48xf32>)
      shared(%sg, %su, %sd : tensor<32x32xf32>, tensor<32x32xf32>,
             tensor<32x32xf32>)
      {experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x32xf32>
  return %y, %dropped : tensor<?x32xf32>, tensor<8xi64>
}

// -----

// The weights applied to the expert input (the gather scales, the combine
// takes none), whatever the route's attribute says; expert choice with its
// capacity; LoRA experts with their base and a shared expert summed.

// CHECK-LABEL: func.func @apply_input
//       CHECK: moe.layer
//  CHECK-SAME:   routing = #moe.routing<score = softmax, selection = top_k, k = 2, apply_weight = input>
//   CHECK-NOT: moe.gather
func.func @apply_input(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                       %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>)
    -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt scale(%rw : tensor<?xf32>)
      : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = gelu_tanh
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  %y = moe.combine %yg, %sr : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @expert_choice
//       CHECK: moe.layer
//  CHECK-SAME:   capacity = #moe.capacity<count = 4>
//  CHECK-SAME:   routing = #moe.routing<score = softmax, selection = expert_choice, k = 2>
//   CHECK-NOT: moe.expert_choice
func.func @expert_choice(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                         %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>)
    -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %tok, %tw, %ids, %w = moe.expert_choice %z k = 2
      capacity <count = 4> : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x8xi32>, tensor<?x8xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x8xf32>)
      : tensor<?x32xf32>, tensor<?x8xi32>
  return %y : tensor<?x32xf32>
}

// CHECK-LABEL: func.func @lora
//  CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[WG:.*]]: tensor<8x32xf32>, %[[BASE:.*]]: tensor<32x32xf32>, %[[A:.*]]: tensor<8x4x32xf32>, %[[B:.*]]: tensor<8x32x4xf32>, %[[SG:.*]]: tensor<16x32xf32>, %[[SU:.*]]: tensor<16x32xf32>, %[[SD:.*]]: tensor<32x16xf32>)
//       CHECK: moe.layer %[[X]] router(%[[WG]] : tensor<8x32xf32>)
//  CHECK-SAME:   experts(%[[BASE]], %[[A]], %[[B]] :
//  CHECK-SAME:   shared(%[[SG]], %[[SU]], %[[SD]] :
//  CHECK-SAME:   experts = #moe.experts<kind = lora, act = gelu_erf, alpha = 16.0>
//   CHECK-NOT: moe.linear
func.func @lora(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                %base: tensor<32x32xf32>, %a: tensor<8x4x32xf32>,
                %b: tensor<8x32x4xf32>, %sg: tensor<16x32xf32>,
                %su: tensor<16x32xf32>, %sd: tensor<32x16xf32>)
    -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %dg = moe.lora_experts %xg, %sizes, %a, %b alpha = 16.0
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x4x32xf32>,
        tensor<8x32x4xf32>
  %s = moe.shared_expert %x, %sg, %su, %sd act = gelu_erf
      : tensor<?x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>,
        tensor<32x16xf32>
  %p = moe.linear %x, %base : tensor<?x32xf32>, tensor<32x32xf32>
  %sum = arith.addf %s, %p : tensor<?x32xf32>
  %y = moe.combine %dg, %sr weights(%sw : tensor<?x2xf32>)
      addend(%sum : tensor<?x32xf32>) : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}

// -----

// Chains left as they are. Each function keeps its combine.

// The logits read by a loss too.
// CHECK-LABEL: func.func @logits_read
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @logits_read(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                       %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>)
    -> (tensor<?x32xf32>, tensor<f32>) {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: the logits are also read by moe.z_loss}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  %l = moe.z_loss %z : tensor<?x8xf32>
  return %y, %l : tensor<?x32xf32>, tensor<f32>
}

// The ids read by a loss.
// CHECK-LABEL: func.func @ids_read
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @ids_read(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                    %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>)
    -> (tensor<?x32xf32>, tensor<f32>) {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: the expert ids are also read by moe.aux_loss}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  %zz = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %l = moe.aux_loss %zz, %ids convention = all_k
      : tensor<?x8xf32>, tensor<?x2xi32>
  return %y, %l : tensor<?x32xf32>, tensor<f32>
}

// The group offsets read elsewhere.
// CHECK-LABEL: func.func @offsets_read
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @offsets_read(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                        %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>)
    -> (tensor<?x32xf32>, tensor<8xi64>) {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: a result of moe.dispatch is also read by func.return}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  return %y, %offsets : tensor<?x32xf32>, tensor<8xi64>
}

// Rows gathered from another input than the router's.
// CHECK-LABEL: func.func @two_inputs
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @two_inputs(%x: tensor<?x32xf32>, %x2: tensor<?x32xf32>,
                      %wg: tensor<8x32xf32>, %w1: tensor<8x48x32xf32>,
                      %w2: tensor<8x32x48xf32>) -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x2, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: the router reads another input than the experts}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}

// The weights applied twice: by the gather and by the combine.
// CHECK-LABEL: func.func @weighted_twice
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @weighted_twice(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                          %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>)
    -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt scale(%rw : tensor<?xf32>)
      : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: the weights are applied twice: to the gathered rows and in the combine}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}

// A shared expert of another activation than the routed experts'.
// CHECK-LABEL: func.func @shared_act
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @shared_act(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                      %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>,
                      %sg: tensor<16x32xf32>, %su: tensor<16x32xf32>,
                      %sd: tensor<32x16xf32>) -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  %s = moe.shared_expert %x, %sg, %su, %sd act = silu
      : tensor<?x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>,
        tensor<32x16xf32>
  // expected-remark @below {{not formed into a moe.layer: the shared expert's activation (silu) is not the routed experts' (relu)}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      addend(%s : tensor<?x32xf32>) : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}

// The assignment counts read before the combine, where the layer will be.
// CHECK-LABEL: func.func @load_read_early
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @load_read_early(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                           %w1: tensor<8x48x32xf32>,
                           %w2: tensor<8x32x48xf32>)
    -> (tensor<?x32xf32>, tensor<8xi64>) {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %load = moe.expert_load %ids experts = 8 : tensor<?x2xi32>
  %twice = arith.addi %load, %load : tensor<8xi64>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: arith.addi reads the assignment or dropped counts before the chain's end, where the layer would be}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  return %y, %twice : tensor<?x32xf32>, tensor<8xi64>
}

// A dispatch of more experts than the router scores.
// CHECK-LABEL: func.func @expert_count
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @expert_count(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                        %w1: tensor<16x48x32xf32>, %w2: tensor<16x32x48xf32>)
    -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 16 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<16xi64>, tensor<16x48x32xf32>,
        tensor<16x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: the dispatch has 16 experts, the router 8}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}

// A chain whose parts lie in different blocks.
// CHECK-LABEL: func.func @two_blocks
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @two_blocks(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                      %w1: tensor<8x48x32xf32>, %w2: tensor<8x32x48xf32>,
                      %c: i1) -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %r = scf.if %c -> tensor<?x32xf32> {
    %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
    %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
        : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
          tensor<8x32x48xf32>
    // expected-remark @below {{not formed into a moe.layer: its ops lie in more than one block}}
    %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
        : tensor<?x32xf32>, tensor<?x2xi32>
    scf.yield %y : tensor<?x32xf32>
  } else {
    scf.yield %x : tensor<?x32xf32>
  }
  return %r : tensor<?x32xf32>
}

// LoRA experts whose shared expert uses GPT-OSS's clamped SwiGLU, which
// #moe.experts allows gated experts only.
// CHECK-LABEL: func.func @lora_swiglu_oai
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @lora_swiglu_oai(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                           %base: tensor<32x32xf32>, %a: tensor<8x4x32xf32>,
                           %b: tensor<8x32x4xf32>, %sg: tensor<16x32xf32>,
                           %su: tensor<16x32xf32>, %sd: tensor<32x16xf32>)
    -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %dg = moe.lora_experts %xg, %sizes, %a, %b alpha = 16.0
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x4x32xf32>,
        tensor<8x32x4xf32>
  %s = moe.shared_expert %x, %sg, %su, %sd act = swiglu_oai
      : tensor<?x32xf32>, tensor<16x32xf32>, tensor<16x32xf32>,
        tensor<32x16xf32>
  %p = moe.linear %x, %base : tensor<?x32xf32>, tensor<32x32xf32>
  %sum = arith.addf %p, %s : tensor<?x32xf32>
  // expected-remark @below {{not formed into a moe.layer: moe.layer cannot express it: act = swiglu_oai combines gate and up, so it needs kind = gated, found kind = lora}}
  %y = moe.combine %dg, %sr weights(%sw : tensor<?x2xf32>)
      addend(%sum : tensor<?x32xf32>) : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}

// Scaled weights renormalized after the drop, which the layer's verifier
// refuses (the renormalization would cancel the scale).
// CHECK-LABEL: func.func @renormalized_scale
//   CHECK-NOT: moe.layer
//       CHECK: moe.combine
func.func @renormalized_scale(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                              %w1: tensor<8x48x32xf32>,
                              %w2: tensor<8x32x48xf32>) -> tensor<?x32xf32> {
  %z = moe.router %x, %wg : tensor<?x32xf32>, tensor<8x32xf32>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2,
                           scale = 2.5> : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8
          capacity <factor = 1.0, renormalize_after_drop = true>
      : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xf32>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xf32>, tensor<8xi64>, tensor<8x48x32xf32>,
        tensor<8x32x48xf32>
  // expected-remark @below {{not formed into a moe.layer: moe.layer cannot express it: 'moe.layer' op renormalize_after_drop makes each token's weights sum to 1, which would cancel scale = 2.5}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xf32>, tensor<?x2xi32>
  return %y : tensor<?x32xf32>
}
