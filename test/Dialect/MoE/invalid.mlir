// RUN: moe-opt %s -split-input-file -verify-diagnostics

// Op verifiers: shapes, operand forms and routing constraints that depend on
// the number of experts.

func.func @router_dim_mismatch(%x: tensor<?x64xf32>, %wg: tensor<8x32xf32>) {
  // expected-error@+1 {{'moe.router' op expected `weight` dim 1 (d) to be 64 (d = 64 from `input` dim 1 (d)), found 32}}
  %z = moe.router %x, %wg : tensor<?x64xf32>, tensor<8x32xf32>
  return
}

// -----

func.func @router_bias_mismatch(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>, %b: tensor<4xf32>) {
  // expected-error@+1 {{'moe.router' op expected `bias` dim 0 (E) to be 8 (E = 8 from `weight` dim 0 (E)), found 4}}
  %z = moe.router %x, %wg bias(%b : tensor<4xf32>) : tensor<?x64xf32>, tensor<8x64xf32>
  return
}

// -----

func.func @router_int_input(%x: tensor<?x64xi32>, %wg: tensor<8x64xf32>) {
  // expected-error@+1 {{'moe.router' op operand #0 must be 2D tensor of 32-bit float or 16-bit float or bfloat16 type values}}
  %z = moe.router %x, %wg : tensor<?x64xi32>, tensor<8x64xf32>
  return
}

// -----

func.func @route_k_above_experts(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.route' op expected k <= E = 8 experts, found k = 9}}
  %i, %w = moe.route %z <score = softmax, selection = top_k, k = 9> : tensor<?x8xf32>
  return
}

// -----

func.func @route_groups_do_not_divide(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.route' op expected the E = 8 experts to split into groups = 3 equal groups}}
  %i, %w = moe.route %z <score = softmax, selection = grouped_top_k, k = 2, groups = 3, topk_group = 1> : tensor<?x8xf32>
  return
}

// -----

func.func @route_sum_top2_small_groups(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.route' op group_score = sum_top2 needs at least 2 experts per group, found 1}}
  %i, %w = moe.route %z <score = softmax, selection = grouped_top_k, k = 2, groups = 8, topk_group = 2, group_score = sum_top2> : tensor<?x8xf32>
  return
}

// -----

func.func @route_k_above_kept_groups(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.route' op expected k <= topk_group * E / groups = 2 selectable experts, found k = 3}}
  %i, %w = moe.route %z <score = softmax, selection = grouped_top_k, k = 3, groups = 4, topk_group = 1> : tensor<?x8xf32>
  return
}

// -----

func.func @route_threshold_needs_tau(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.route' op selection = threshold needs tau: a `tau` parameter or a tau operand}}
  %i, %w = moe.route %z <score = softmax, selection = threshold, k = 2> : tensor<?x8xf32>
  return
}

// -----

func.func @route_tau_twice(%z: tensor<?x8xf32>, %tau: f32) {
  // expected-error@+1 {{'moe.route' op tau given both as a `tau` parameter and as an operand}}
  %i, %w = moe.route %z tau(%tau) <score = softmax, selection = threshold, k = 2, tau = 0.1> : tensor<?x8xf32>
  return
}

// -----

func.func @route_tau_operand_without_threshold(%z: tensor<?x8xf32>, %tau: f32) {
  // expected-error@+1 {{'moe.route' op a tau operand applies only to selection = threshold, found selection = top_k}}
  %i, %w = moe.route %z tau(%tau) <score = softmax, selection = top_k, k = 2> : tensor<?x8xf32>
  return
}

// -----

func.func @route_expert_choice(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.route' op selection = expert_choice is expressed by `moe.expert_choice`, not `moe.route`}}
  %i, %w = moe.route %z <score = softmax, selection = expert_choice, k = 2> : tensor<?x8xf32>
  return
}

// -----

func.func @route_bias_mismatch(%z: tensor<?x8xf32>, %b: tensor<7xf32>) {
  // expected-error@+1 {{'moe.route' op expected `bias` dim 0 (E) to be 8 (E = 8 from `logits` dim 1 (E)), found 7}}
  %i, %w = moe.route %z bias(%b : tensor<7xf32>) <score = softmax, selection = top_k, k = 2> : tensor<?x8xf32>
  return
}

// -----

func.func @route_result_k(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.route' op expected k = 2 (k of the routing), found k = 3 from `expert_ids` dim 1 (k)}}
  %i, %w = "moe.route"(%z) <{operandSegmentSizes = array<i32: 1, 0, 0>, routing = #moe.routing<score = softmax, selection = top_k, k = 2>}> : (tensor<?x8xf32>) -> (tensor<?x3xi32>, tensor<?x3xf32>)
  return
}

// -----

func.func @expert_choice_k_zero(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.expert_choice' op expected k >= 1, found k = 0}}
  %t, %tw, %i, %w = moe.expert_choice %z k = 0 : tensor<?x8xf32>
  return
}

// -----

func.func @expert_choice_k_above_experts(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.expert_choice' op expected k <= E = 8 experts, found k = 9}}
  %t, %tw, %i, %w = moe.expert_choice %z k = 9 : tensor<?x8xf32>
  return
}

// -----

func.func @expert_choice_drop_order(%z: tensor<?x8xf32>) {
  // expected-error@+1 {{'moe.expert_choice' op `drop_order` and `renormalize_after_drop` do not apply to expert-choice routing: an expert never takes more tokens than its capacity}}
  %t, %tw, %i, %w = moe.expert_choice %z k = 2 capacity <count = 4, drop_order = score> : tensor<?x8xf32>
  return
}

// -----

func.func @dispatch_no_experts(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{'moe.dispatch' op expected num_experts >= 1, found 0}}
  %r:7 = moe.dispatch %ids, %w experts = 0 : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @dispatch_weights_mismatch(%ids: tensor<?x2xi32>, %w: tensor<?x3xf32>) {
  // expected-error@+1 {{'moe.dispatch' op expected `weights` dim 1 (S) to be 2 (S = 2 from `expert_ids` dim 1 (S)), found 3}}
  %r:7 = moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x3xf32>
  return
}

// -----

func.func @dispatch_rows(%ids: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error@+1 {{'moe.dispatch' op expected N = T * S = 8 grouped rows, found N = 6}}
  %r:7 = "moe.dispatch"(%ids, %w) <{num_experts = 8 : i64}> : (tensor<4x2xi32>, tensor<4x2xf32>) -> (tensor<6xi32>, tensor<6xf32>, tensor<4x2xi32>, tensor<4x2xf32>, tensor<8xi64>, tensor<8xi64>, tensor<8xi64>)
  return
}

// -----

func.func @dispatch_result_experts(%ids: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error@+1 {{'moe.dispatch' op expected E = 8 (num_experts), found E = 4 from `group_sizes` dim 0 (E)}}
  %r:7 = "moe.dispatch"(%ids, %w) <{num_experts = 8 : i64}> : (tensor<4x2xi32>, tensor<4x2xf32>) -> (tensor<8xi32>, tensor<8xf32>, tensor<4x2xi32>, tensor<4x2xf32>, tensor<4xi64>, tensor<4xi64>, tensor<4xi64>)
  return
}

// -----

func.func @gather_result_type(%x: tensor<?x64xf32>, %rt: tensor<?xi32>) {
  // expected-error@+1 {{'moe.gather' op expected `result` to have element type 'f32' (that of `input`), found 'bf16'}}
  %g = "moe.gather"(%x, %rt) : (tensor<?x64xf32>, tensor<?xi32>) -> tensor<?x64xbf16>
  return
}

// -----

func.func @gather_weight_rows(%x: tensor<?x64xf32>, %rt: tensor<8xi32>, %rw: tensor<6xf32>) {
  // expected-error@+1 {{'moe.gather' op expected `row_weight` dim 0 (N) to be 8 (N = 8 from `row_token` dim 0 (N)), found 6}}
  %g = moe.gather %x, %rt scale(%rw : tensor<6xf32>) : tensor<?x64xf32>, tensor<8xi32>
  return
}

// -----

func.func @combine_addend(%rows: tensor<?x64xf32>, %sr: tensor<?x2xi32>, %a: tensor<?x32xf32>) {
  // expected-error@+1 {{'moe.combine' op expected `addend` dim 1 (d) to be 64 (d = 64 from `rows` dim 1 (d)), found 32}}
  %y = moe.combine %rows, %sr addend(%a : tensor<?x32xf32>) : tensor<?x64xf32>, tensor<?x2xi32>
  return
}

// -----

func.func @combine_addend_type(%rows: tensor<?x64xf32>, %sr: tensor<?x2xi32>, %a: tensor<?x64xbf16>) {
  // expected-error@+1 {{'moe.combine' op expected `addend` to have element type 'f32' (that of `rows`), found 'bf16'}}
  %y = moe.combine %rows, %sr addend(%a : tensor<?x64xbf16>) : tensor<?x64xf32>, tensor<?x2xi32>
  return
}

// -----

func.func @combine_slot_weights(%rows: tensor<?x64xf32>, %sr: tensor<?x2xi32>, %sw: tensor<?x4xf32>) {
  // expected-error@+1 {{'moe.combine' op expected `slot_weight` dim 1 (S) to be 2 (S = 2 from `slot_row` dim 1 (S)), found 4}}
  %y = moe.combine %rows, %sr weights(%sw : tensor<?x4xf32>) : tensor<?x64xf32>, tensor<?x2xi32>
  return
}

// -----

func.func @grouped_matmul_k(%lhs: tensor<?x64xf32>, %rhs: tensor<8x32x32xf32>, %sizes: tensor<8xi64>) {
  // expected-error@+1 {{'moe.grouped_matmul' op expected `rhs` dim 1 (K) to be 64 (K = 64 from `lhs` dim 1 (K)), found 32}}
  %y = moe.grouped_matmul %lhs, %rhs, %sizes : tensor<?x64xf32>, tensor<8x32x32xf32>, tensor<8xi64>
  return
}

// -----

func.func @grouped_matmul_groups(%lhs: tensor<?x64xf32>, %rhs: tensor<8x32x64xf32>, %sizes: tensor<4xi64>) {
  // expected-error@+1 {{'moe.grouped_matmul' op expected `group_sizes` dim 0 (E) to be 8 (E = 8 from `rhs` dim 0 (E)), found 4}}
  %y = moe.grouped_matmul %lhs, %rhs, %sizes transpose_rhs : tensor<?x64xf32>, tensor<8x32x64xf32>, tensor<4xi64>
  return
}

// -----

func.func @gated_gate_and_fused(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>, %g: tensor<8x128x64xf32>, %gu: tensor<8x256x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.gated_experts' op expected either gate(...) and up(...), or gate_up(...)}}
  %y = moe.gated_experts %rows, %sizes gate(%g : tensor<8x128x64xf32>) gate_up(%gu : tensor<8x256x64xf32>) down(%d : tensor<8x64x128xf32>) act = silu : tensor<?x64xf32>, tensor<8xi64>
  return
}

// -----

func.func @gated_inner_mismatch(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>, %g: tensor<8x128x64xf32>, %u: tensor<8x128x64xf32>, %d: tensor<8x64x96xf32>) {
  // expected-error@+1 {{'moe.gated_experts' op expected `down` dim 2 (f) to be 128 (f = 128 from `gate` dim 1 (f)), found 96}}
  %y = moe.gated_experts %rows, %sizes gate(%g : tensor<8x128x64xf32>) up(%u : tensor<8x128x64xf32>) down(%d : tensor<8x64x96xf32>) act = silu : tensor<?x64xf32>, tensor<8xi64>
  return
}

// -----

func.func @gated_fused_odd(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>, %gu: tensor<8x255x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.gated_experts' op expected `gate_up` dim 1 (2*f) to be a multiple of 2, found 255}}
  %y = moe.gated_experts %rows, %sizes gate_up(%gu : tensor<8x255x64xf32>) down(%d : tensor<8x64x128xf32>) act = silu : tensor<?x64xf32>, tensor<8xi64>
  return
}

// -----

func.func @gated_unknown_act(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>, %gu: tensor<8x256x64xf32>, %d: tensor<8x64x128xf32>) {
  // expected-error@+1 {{unknown act `swish`}}
  %y = moe.gated_experts %rows, %sizes gate_up(%gu : tensor<8x256x64xf32>) down(%d : tensor<8x64x128xf32>) act = swish : tensor<?x64xf32>, tensor<8xi64>
  return
}

// -----

func.func @mlp_experts_count(%rows: tensor<?x64xf32>, %sizes: tensor<4xi64>, %w1: tensor<8x128x64xf32>, %w2: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.mlp_experts' op expected `w1` dim 0 (E) to be 4 (E = 4 from `group_sizes` dim 0 (E)), found 8}}
  %y = moe.mlp_experts %rows, %sizes, %w1, %w2 act = relu : tensor<?x64xf32>, tensor<4xi64>, tensor<8x128x64xf32>, tensor<8x64x128xf32>
  return
}

// -----

func.func @lora_rank(%rows: tensor<?x64xf32>, %sizes: tensor<8xi64>, %a: tensor<8x4x64xf32>, %b: tensor<8x32x8xf32>) {
  // expected-error@+1 {{'moe.lora_experts' op expected `lora_b` dim 2 (r) to be 4 (r = 4 from `lora_a` dim 1 (r)), found 8}}
  %y = moe.lora_experts %rows, %sizes, %a, %b alpha = 8.0 : tensor<?x64xf32>, tensor<8xi64>, tensor<8x4x64xf32>, tensor<8x32x8xf32>
  return
}

// -----

func.func @lora_gated_down(%rows: tensor<?x64xf32>, %sizes: tensor<4xi64>, %g: tensor<128x64xf32>, %u: tensor<128x64xf32>, %d: tensor<64x128xf32>, %ga: tensor<4x8x64xf32>, %gb: tensor<4x128x8xf32>, %ua: tensor<4x8x64xf32>, %ub: tensor<4x128x8xf32>, %da: tensor<4x8x64xf32>, %db: tensor<4x64x8xf32>) {
  // expected-error@+1 {{'moe.lora_gated_experts' op expected `down_a` dim 2 (f) to be 128 (f = 128 from `gate` dim 0 (f)), found 64}}
  %y = moe.lora_gated_experts %rows, %sizes base(%g, %u, %d : tensor<128x64xf32>, tensor<128x64xf32>, tensor<64x128xf32>) gate_lora(%ga, %gb : tensor<4x8x64xf32>, tensor<4x128x8xf32>) up_lora(%ua, %ub : tensor<4x8x64xf32>, tensor<4x128x8xf32>) down_lora(%da, %db : tensor<4x8x64xf32>, tensor<4x64x8xf32>) act = silu alpha = 16.0 : tensor<?x64xf32>, tensor<4xi64>
  return
}

// -----

func.func @shared_gate_rows(%x: tensor<?x64xf32>, %g: tensor<96x64xf32>, %u: tensor<96x64xf32>, %d: tensor<64x96xf32>, %ws: tensor<2x64xf32>) {
  // expected-error@+1 {{'moe.shared_expert' op expected `gate_weight` dim 0 (1) to be 1, found 2}}
  %s = moe.shared_expert %x, %g, %u, %d gate(%ws : tensor<2x64xf32>) act = silu : tensor<?x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>
  return
}

// -----

func.func @linear_in(%x: tensor<?x64xf32>, %w: tensor<32x48xf32>) {
  // expected-error@+1 {{'moe.linear' op expected `weight` dim 1 (d_in) to be 64 (d_in = 64 from `input` dim 1 (d_in)), found 48}}
  %y = moe.linear %x, %w : tensor<?x64xf32>, tensor<32x48xf32>
  return
}

// -----

func.func @aux_loss_tokens(%z: tensor<4x8xf32>, %ids: tensor<5x2xi32>) {
  // expected-error@+1 {{'moe.aux_loss' op expected `expert_ids` dim 0 (T) to be 4 (T = 4 from `logits` dim 0 (T)), found 5}}
  %l = moe.aux_loss %z, %ids convention = switch : tensor<4x8xf32>, tensor<5x2xi32>
  return
}

// -----

func.func @expert_load_no_experts(%ids: tensor<?x2xi32>) {
  // expected-error@+1 {{'moe.expert_load' op expected num_experts >= 1, found 0}}
  %l = moe.expert_load %ids experts = 0 : tensor<?x2xi32>
  return
}

// -----

func.func @weight_stack_count() {
  // expected-error@+1 {{'moe.weight' op expected 3 stacked tensors to match dim 0 of 'tensor<2x4xf32>'}}
  %w = moe.weight stacked ["a", "b", "c"] : tensor<2x4xf32>
  return
}

// -----

func.func @weight_names() {
  // expected-error@+1 {{'moe.weight' op expected one tensor name (or `stacked` for several), found 2}}
  %w = "moe.weight"() <{names = ["a", "b"]}> : () -> tensor<2x4xf32>
  return
}

// -----

func.func @weight_dynamic() {
  // expected-error@+1 {{'moe.weight' op expected a static shape, found 'tensor<?x4xf32>'}}
  %w = moe.weight "a" : tensor<?x4xf32>
  return
}

// -----

func.func @weight_stored_type() {
  // expected-error@+1 {{'moe.weight' op expected `stored` to be f32, f16, bf16, f8E4M3FN, f4E2M1FN, i4, i8 or si8, found 'i32'}}
  %w = moe.weight "a" {stored = i32} : tensor<2x4xf32>
  return
}

// -----

func.func @weight_transposed_vector() {
  // expected-error@+1 {{'moe.weight' op expected `transposed` tensors of rank 2 or more, found rank 1 for 'tensor<2x4xf32>' stacked}}
  %w = moe.weight stacked ["a", "b"] {transposed} : tensor<2x4xf32>
  return
}

// -----

// `interleaved`: one tensor, its dimension 1 even.
func.func @weight_interleaved_odd() {
  // expected-error@+1 {{'moe.weight' op expected an `interleaved` tensor that is not `stacked`, of rank 2 or more with an even dimension 1, found 'tensor<4x5xf32>'}}
  %w = moe.weight "a" {interleaved} : tensor<4x5xf32>
  return
}

// -----

func.func @weight_interleaved_stacked() {
  // expected-error@+1 {{'moe.weight' op expected an `interleaved` tensor that is not `stacked`, of rank 2 or more with an even dimension 1, found 'tensor<2x4x2xf32>' stacked}}
  %w = moe.weight stacked ["a", "b"] {interleaved} : tensor<2x4x2xf32>
  return
}

// -----

func.func @weight_fp8_without_scales() {
  // expected-error@+1 {{'moe.weight' op expected `scales` and `scale_block` with `stored = f8E4M3FN` (block-scaled FP8)}}
  %w = moe.weight "a" {stored = f8E4M3FN} : tensor<2x4xbf16>
  return
}

// -----

func.func @weight_scales_without_fp8() {
  // expected-error@+1 {{'moe.weight' op expected `scales`, `scale_block` and `global_scales` only with `stored = f8E4M3FN`, `stored = f4E2M1FN`, `stored = i4`, `stored = i8` or `stored = si8`}}
  %w = moe.weight "a" {scales = ["a_scale_inv"], scale_block = array<i64: 128, 128>} : tensor<2x4xbf16>
  return
}

// -----

func.func @weight_fp8_scale_count() {
  // expected-error@+1 {{'moe.weight' op expected one scale tensor per tensor (2), found 1}}
  %w = moe.weight stacked ["a", "b"] {stored = f8E4M3FN, scales = ["a_scale_inv"], scale_block = array<i64: 128, 128>} : tensor<2x2x4xbf16>
  return
}

// -----

func.func @weight_fp8_block() {
  // expected-error@+1 {{'moe.weight' op expected `scale_block` to be two positive sizes (rows, columns), found array<i64: 128, 0>}}
  %w = moe.weight "a" {stored = f8E4M3FN, scales = ["a_scale_inv"], scale_block = array<i64: 128, 0>} : tensor<2x4xbf16>
  return
}

// -----

func.func @weight_fp8_vector() {
  // expected-error@+1 {{'moe.weight' op expected block-scaled tensors of rank 2 or more, found rank 1}}
  %w = moe.weight stacked ["a", "b"] {stored = f8E4M3FN, scales = ["a_s", "b_s"], scale_block = array<i64: 128, 128>} : tensor<2x4xbf16>
  return
}

// -----

// Packed integers (compressed-tensors' pack-quantized): scales of groups
// of one row, not transposed, no global scales.
func.func @weight_ints_without_scales() {
  // expected-error@+1 {{'moe.weight' op expected `scales` and `scale_block` with `stored = i4` (block-scaled integer)}}
  %w = moe.weight "a_packed" {stored = i4} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_ints_block_rows() {
  // expected-error@+1 {{'moe.weight' op expected `scale_block = array<i64: 1, g>` (one scale a group of g of a row) with `stored = i8`, found array<i64: 2, 32>}}
  %w = moe.weight "a_packed" {stored = i8, scales = ["a_scale"], scale_block = array<i64: 2, 32>} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_ints_transposed() {
  // expected-error@+1 {{'moe.weight' op expected `scale_block = array<i64: g, 1>` (one scale a group of g of a stored column) with `stored = i4` and `transposed`, found array<i64: 1, 32>}}
  %w = moe.weight "a.qweight" {stored = i4, scales = ["a.scales"], scale_block = array<i64: 1, 32>, transposed} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_zero_points_of_floats() {
  // expected-error@+1 {{'moe.weight' op expected `zero_points`, `group_indices`, `pack_outputs` and `pack_order` only with `stored = i4`, `stored = i8` or `stored = si8`}}
  %w = moe.weight "a" {stored = f8E4M3FN, scales = ["a_scale"], scale_block = array<i64: 1, 32>, zero_points = ["a_zero"]} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_pack_outputs_not_transposed() {
  // expected-error@+1 {{'moe.weight' op expected `pack_outputs` only with `transposed` (words of outputs, as AWQ stores them [in, out])}}
  %w = moe.weight "a.qweight" {stored = i4, scales = ["a.scales"], scale_block = array<i64: 1, 32>, pack_outputs} : tensor<8x64xbf16>
  return
}

// -----

func.func @weight_bitsandbytes_stored() {
  // expected-error@+1 {{'moe.weight' op expected no `stored` with `bitsandbytes` (its state tensors say how the codes are read)}}
  %w = moe.weight "a.weight" {bitsandbytes, stored = f32} : tensor<8x64xbf16>
  return
}

// -----

func.func @weight_bitsandbytes_scales() {
  // expected-error@+1 {{'moe.weight' op expected no `scales` with `bitsandbytes` (its state tensors say how the codes are read)}}
  %w = moe.weight "a.weight" {bitsandbytes, scales = ["a.weight.absmax"], scale_block = array<i64: 1, 64>} : tensor<8x64xbf16>
  return
}

// -----

func.func @weight_bitsandbytes_transposed() {
  // expected-error@+1 {{'moe.weight' op expected no `transposed` with `bitsandbytes` (its state tensors say how the codes are read)}}
  %w = moe.weight "a.weight" {bitsandbytes, transposed} : tensor<8x64xbf16>
  return
}

// -----

func.func @weight_pack_order() {
  // expected-error@+1 {{'moe.weight' op expected `pack_order` to be a permutation of the 8 fields of a word, found array<i64: 0, 2, 4, 6, 1, 3, 5, 5>}}
  %w = moe.weight "a.qweight" {stored = i4, scales = ["a.scales"], scale_block = array<i64: 32, 1>, transposed, pack_outputs, pack_order = array<i64: 0, 2, 4, 6, 1, 3, 5, 5>} : tensor<8x64xbf16>
  return
}

// -----

func.func @weight_zero_point_offset_alone() {
  // expected-error@+1 {{'moe.weight' op expected `zero_point_offset` only with `zero_points`}}
  %w = moe.weight "a.qweight" {stored = i4, scales = ["a.scales"], scale_block = array<i64: 32, 1>, transposed, zero_point_offset = 1 : i64} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_group_index_count() {
  // expected-error@+1 {{'moe.weight' op expected one group index tensor per tensor (2), found 1}}
  %w = moe.weight stacked ["a.qweight", "b.qweight"] {stored = i4, scales = ["a.scales", "b.scales"], scale_block = array<i64: 32, 1>, transposed, group_indices = ["a.g_idx"]} : tensor<2x2x64xbf16>
  return
}

// -----

func.func @weight_ints_global_scales() {
  // expected-error@+1 {{'moe.weight' op expected `global_scales` only with `stored = f4E2M1FN` (NVFP4)}}
  %w = moe.weight "a_packed" {stored = i4, scales = ["a_scale"], scale_block = array<i64: 1, 32>, global_scales = ["a_global"]} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_ints_unsigned() {
  // expected-error@+1 {{'moe.weight' op expected `stored` to be f32, f16, bf16, f8E4M3FN, f4E2M1FN, i4, i8 or si8, found 'ui4'}}
  %w = moe.weight "a_packed" {stored = ui4, scales = ["a_scale"], scale_block = array<i64: 1, 32>} : tensor<2x64xbf16>
  return
}

// -----

// MXFP4: E8M0 scales of blocks of 1 x 32, rows of an even length, not
// transposed.
func.func @weight_mxfp4_without_scales() {
  // expected-error@+1 {{'moe.weight' op expected `scales` and `scale_block` with `stored = f4E2M1FN` (block-scaled MXFP4)}}
  %w = moe.weight "a" {stored = f4E2M1FN} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_mxfp4_block() {
  // expected-error@+1 {{'moe.weight' op expected `scale_block = array<i64: 1, 32>` (one E8M0 scale a block of 32) with `stored = f4E2M1FN`, found array<i64: 1, 16>}}
  %w = moe.weight "a_blocks" {stored = f4E2M1FN, scales = ["a_scales"], scale_block = array<i64: 1, 16>} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_mxfp4_odd() {
  // expected-error@+1 {{'moe.weight' op expected MXFP4 rows of an even length (two codes a byte), found 63}}
  %w = moe.weight "a_blocks" {stored = f4E2M1FN, scales = ["a_scales"], scale_block = array<i64: 1, 32>} : tensor<2x63xbf16>
  return
}

// -----

func.func @weight_mxfp4_transposed() {
  // expected-error@+1 {{'moe.weight' op expected block-scaled MXFP4 tensors that are not `transposed`}}
  %w = moe.weight "a_blocks" {stored = f4E2M1FN, scales = ["a_scales"], scale_block = array<i64: 1, 32>, transposed} : tensor<2x64xbf16>
  return
}

// -----

// NVFP4: E4M3 scales of blocks of 1 x 16 and a global scale per tensor.
func.func @weight_nvfp4_block() {
  // expected-error@+1 {{'moe.weight' op expected `scale_block = array<i64: 1, 16>` (one E4M3 scale a block of 16) with `stored = f4E2M1FN` and `global_scales` (NVFP4), found array<i64: 1, 32>}}
  %w = moe.weight "a" {stored = f4E2M1FN, scales = ["a_scale"], scale_block = array<i64: 1, 32>, global_scales = ["a_scale_2"]} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_nvfp4_globals() {
  // expected-error@+1 {{'moe.weight' op expected one global scale per tensor (2), found 1}}
  %w = moe.weight stacked ["a", "b"] {stored = f4E2M1FN, scales = ["a_scale", "b_scale"], scale_block = array<i64: 1, 16>, global_scales = ["a_scale_2"]} : tensor<2x2x64xbf16>
  return
}

// -----

func.func @weight_fp8_globals() {
  // expected-error@+1 {{'moe.weight' op expected `global_scales` only with `stored = f4E2M1FN` (NVFP4)}}
  %w = moe.weight "a" {stored = f8E4M3FN, scales = ["a_scale"], scale_block = array<i64: 1, 16>, global_scales = ["a_scale_2"]} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_inverse_without_globals() {
  // expected-error@+1 {{'moe.weight' op expected `global_scales_inverse` only with `global_scales` (NVFP4)}}
  %w = moe.weight "a" {stored = f4E2M1FN, scales = ["a_scales"], scale_block = array<i64: 1, 32>, global_scales_inverse} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_inverse_unscaled() {
  // expected-error@+1 {{'moe.weight' op expected `global_scales_inverse` only with `global_scales` (NVFP4)}}
  %w = moe.weight "a" {global_scales_inverse} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_nvfp4_transposed() {
  // expected-error@+1 {{'moe.weight' op expected block-scaled NVFP4 tensors that are not `transposed`}}
  %w = moe.weight "a" {stored = f4E2M1FN, scales = ["a_scale"], scale_block = array<i64: 1, 16>, global_scales = ["a_scale_2"], transposed} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_stored_same() {
  // expected-error@+1 {{'moe.weight' op expected `stored` to differ from the element type it is converted to, found 'f16' for both (omit `stored`)}}
  %w = moe.weight "a" {stored = f16} : tensor<2x4xf16>
  return
}

// -----

func.func @weight_empty_name() {
  // expected-error@+1 {{'moe.weight' op expected non-empty tensor names}}
  %w = moe.weight "" : tensor<2x4xf32>
  return
}

// -----

// expected-error@+1 {{'moe.checkpoint' expects a string (the checkpoint path) on a module}}
module attributes {moe.checkpoint = 3} {
}

// -----

// expected-error@+1 {{unknown moe attribute 'moe.frobnicate'}}
module attributes {moe.frobnicate} {
}

// -----

func.func @record_stats_dynamic(%a: tensor<?xi64>, %t: index) {
  // expected-error@+1 {{'moe.record_stats' op expected a static number of experts}}
  moe.record_stats %a, %a tokens(%t) layer = "l" : tensor<?xi64>
  return
}

// -----

func.func @record_stats_name(%a: tensor<4xi64>, %t: index) {
  // expected-error@+1 {{'moe.record_stats' op expected a non-empty layer name}}
  moe.record_stats %a, %a tokens(%t) layer = "" : tensor<4xi64>
  return
}

// -----

func.func @weight_buffer_layout() {
  // expected-error@+1 {{'moe.weight_buffer' op expected a static identity-layout memref, found 'memref<?x4xf32>'}}
  %b = moe.weight_buffer 0 : memref<?x4xf32>
  return
}

// -----

func.func @gate_expert_choice(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>) {
  // expected-error@+1 {{'moe.gate' op selection = expert_choice is expressed by `moe.expert_choice`, not `moe.gate`}}
  %i, %w = moe.gate %x, %wg <score = softmax, selection = expert_choice, k = 2>
      : tensor<?x64xf32>, tensor<8x64xf32>
  return
}

// -----

func.func @gate_hidden(%x: tensor<?x64xf32>, %wg: tensor<8x32xf32>) {
  // expected-error@+1 {{'moe.gate' op expected `weight` dim 1 (d) to be 64 (d = 64 from `input` dim 1 (d)), found 32}}
  %i, %w = moe.gate %x, %wg <score = softmax, selection = top_k, k = 2>
      : tensor<?x64xf32>, tensor<8x32xf32>
  return
}

// -----

func.func @gate_k(%x: tensor<?x64xf32>, %wg: tensor<8x64xf32>) {
  // expected-error@+1 {{'moe.gate' op expected k <= E = 8 experts, found k = 9}}
  %i, %w = moe.gate %x, %wg <score = softmax, selection = top_k, k = 9>
      : tensor<?x64xf32>, tensor<8x64xf32>
  return
}

// -----

func.func @fused_experts_kind(%x: tensor<?x64xf32>, %rt: tensor<?xi32>,
                              %sizes: tensor<4xi64>, %sr: tensor<?x2xi32>,
                              %g: tensor<96x64xf32>, %dn: tensor<64x96xf32>,
                              %a: tensor<4x4x64xf32>, %b: tensor<4x96x4xf32>,
                              %da: tensor<4x4x96xf32>, %db: tensor<4x64x4xf32>) {
  // expected-error@+1 {{'moe.fused_experts' op fuses gated, mlp and lora experts, found kind = lora_gated}}
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<4xi64>)
      slots(%sr : tensor<?x2xi32>)
      experts(%g, %g, %dn, %a, %b, %a, %b, %da, %db
          : tensor<96x64xf32>, tensor<96x64xf32>, tensor<64x96xf32>,
            tensor<4x4x64xf32>, tensor<4x96x4xf32>, tensor<4x4x64xf32>,
            tensor<4x96x4xf32>, tensor<4x4x96xf32>, tensor<4x64x4xf32>)
      {experts = #moe.experts<kind = lora_gated, alpha = 8.0>} : tensor<?x64xf32>
  return
}

// -----

func.func @fused_experts_down(%x: tensor<?x64xf32>, %rt: tensor<?xi32>,
                              %sizes: tensor<8xi64>, %sr: tensor<?x2xi32>,
                              %g: tensor<8x128x64xf32>, %d: tensor<8x64x96xf32>) {
  // expected-error@+1 {{'moe.fused_experts' op expected `down` dim 2 (f) to be 128 (f = 128 from `gate` dim 1 (f)), found 96}}
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      slots(%sr : tensor<?x2xi32>)
      experts(%g, %g, %d : tensor<8x128x64xf32>, tensor<8x128x64xf32>, tensor<8x64x96xf32>)
      {experts = #moe.experts<kind = gated>} : tensor<?x64xf32>
  return
}

// -----

func.func @fused_experts_slots(%x: tensor<?x64xf32>, %rt: tensor<?xi32>,
                               %sizes: tensor<8xi64>, %sr: tensor<?x2xi32>,
                               %sw: tensor<?x3xf32>, %w1: tensor<8x128x64xf32>,
                               %w2: tensor<8x64x128xf32>) {
  // expected-error@+1 {{'moe.fused_experts' op expected `slot_weight` dim 1 (S) to be 2 (S = 2 from `slot_row` dim 1 (S)), found 3}}
  %y = moe.fused_experts %x rows(%rt, %sizes : tensor<?xi32>, tensor<8xi64>)
      slots(%sr : tensor<?x2xi32>) weights(%sw : tensor<?x3xf32>)
      experts(%w1, %w2 : tensor<8x128x64xf32>, tensor<8x64x128xf32>)
      {experts = #moe.experts<kind = mlp>} : tensor<?x64xf32>
  return
}

// -----

func.func @ukernel_mixed(%w: tensor<4x4xf32>, %p: memref<128xf32>) {
  // expected-error@+1 {{'moe.ukernel' op expected every operand to be a memref, found 'tensor<4x4xf32>'}}
  moe.ukernel "pack" ins(%w : tensor<4x4xf32>) outs(%p : memref<128xf32>)
      config = [0, 4]
  return
}

// -----

func.func @ukernel_results(%w: tensor<4x4xf32>, %p: tensor<128xf32>) {
  // expected-error@+1 {{'moe.ukernel' op expected one result per output, of its type}}
  %r = moe.ukernel "pack" ins(%w : tensor<4x4xf32>) outs(%p : tensor<128xf32>)
      config = [0, 4] -> tensor<64xf32>
  return
}

// -----

func.func @ukernel_type(%w: memref<4x4xf64>, %p: memref<128xf32>) {
  // expected-error@+1 {{'moe.ukernel' op expected operands of f32, f16, bf16, i32, i64 or i8, found 'memref<4x4xf64>'}}
  moe.ukernel "pack" ins(%w : memref<4x4xf64>) outs(%p : memref<128xf32>)
      config = [0, 4]
  return
}

// -----

func.func @ukernel_name(%p: memref<128xf32>) {
  // expected-error@+1 {{'moe.ukernel' op expected a kernel name}}
  moe.ukernel "" ins() outs(%p : memref<128xf32>) config = []
  return
}

// -----

module attributes {moe.checkpoint = "model"} {
  func.func @packed_size() {
    // expected-error@+1 {{'moe.weight' op expected the packed result tensor<4096xf32> or tensor<4096xbf16>, found 'tensor<4000xf32>'}}
    %w = moe.weight "w" {packing = #moe.packing<
        source = tensor<64x64xf32>, first_row = 0, rows = 64>}
        : tensor<4000xf32>
    return
  }
}

// -----

module attributes {moe.checkpoint = "model"} {
  func.func @packed_rows() {
    // expected-error@+1 {{expected rows [first_row, first_row + rows) within the 64 rows of the source, found [32, 96)}}
    %w = moe.weight "w" {packing = #moe.packing<
        source = tensor<64x64xf32>, first_row = 32, rows = 64>}
        : tensor<4096xf32>
    return
  }
}

// -----

module attributes {moe.checkpoint = "model"} {
  func.func @packed_stacked() {
    // expected-error@+1 {{'moe.weight' op expected 3 stacked tensors to match dim 0 of 'tensor<2x64x64xf32>'}}
    %w = moe.weight stacked ["a", "b", "c"] {packing = #moe.packing<
        source = tensor<2x64x64xf32>, first_row = 0, rows = 64>}
        : tensor<8192xf32>
    return
  }
}

// -----

module attributes {moe.checkpoint = "model"} {
  func.func @packed_on_device() {
    // expected-error@+1 {{'moe.weight' op expected `packing` (a CPU layout) or `device`, found both}}
    %w = moe.weight "w" {device, packing = #moe.packing<
        source = tensor<64x64xf32>, first_row = 0, rows = 64>}
        : tensor<4096xf32>
    return
  }
}

// -----

func.func @dispatch_padded_without_capacity(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) {
  // expected-error@+1 {{'moe.dispatch' op expected a capacity with layout kind = padded (every expert gets C rows)}}
  %r:7 = moe.dispatch %ids, %w experts = 8 layout <kind = padded>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @dispatch_aligned_rows(%ids: tensor<4x2xi32>, %w: tensor<4x2xf32>) {
  // expected-error@+1 {{'moe.dispatch' op expected N = T * S + E * (block - 1) = 32 grouped rows, found N = 8}}
  %r:7 = "moe.dispatch"(%ids, %w) <{num_experts = 8 : i64,
      layout = #moe.layout<kind = aligned, block = 4>}>
      : (tensor<4x2xi32>, tensor<4x2xf32>)
      -> (tensor<8xi32>, tensor<8xf32>, tensor<4x2xi32>, tensor<4x2xf32>,
          tensor<8xi64>, tensor<8xi64>, tensor<8xi64>)
  return
}

// -----

func.func @record_stats_coactivation_slots(%a: tensor<4xi64>, %t: index,
                                           %ids: tensor<?x?xi32>) {
  // expected-error@+1 {{'moe.record_stats' op expected a static slot count in coactivation expert_ids, found 'tensor<?x?xi32>'}}
  moe.record_stats %a, %a tokens(%t) coactivation(%ids : tensor<?x?xi32>) layer = "l" : tensor<4xi64>
  return
}

// -----

func.func @knob_default_nan() {
  // expected-error@+1 {{'moe.knob' op expected a finite default, found nan}}
  %k = moe.knob "tau" layer = "l" default = 0x7FF8000000000000 : f32
  return
}

// -----

func.func @knob_capacity_factor(%x: f32) {
  // expected-error@+1 {{'moe.knob' op expected capacity_factor > 0, found 0}}
  %k = moe.knob "capacity_factor" layer = "l" default = 0.0 : f64
  return
}

// -----

func.func @knob_type() {
  // expected-error@+1 {{'moe.knob' op result #0 must be 32-bit float or 64-bit float or ranked tensor of 64-bit float values, but got 'i32'}}
  %k = moe.knob "tau" layer = "l" default = 0.5 : i32
  return
}

// -----

func.func @knob_device_scalar() {
  // expected-error@+1 {{'moe.knob' op expected tensor<1xf64> with device, found 'f64'}}
  %k = moe.knob "tau" layer = "l" default = 0.5 {device} : f64
  return
}

// -----

func.func @knob_device_shape() {
  // expected-error@+1 {{'moe.knob' op expected tensor<1xf64> with device, found 'tensor<2xf64>'}}
  %k = moe.knob "tau" layer = "l" default = 0.5 {device} : tensor<2xf64>
  return
}

// -----

func.func @knob_tensor_on_host() {
  // expected-error@+1 {{'moe.knob' op expected f32 or f64 (tensor<1xf64> with device), found 'tensor<1xf64>'}}
  %k = moe.knob "tau" layer = "l" default = 0.5 : tensor<1xf64>
  return
}

// -----

func.func @knob_buffer_shape() {
  // expected-error@+1 {{'moe.knob_buffer' op expected memref<1xf64>, found 'memref<2xf64>'}}
  %b = moe.knob_buffer 0 : memref<2xf64>
  return
}

// -----

func.func @dispatch_factor_without_capacity(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %f: f64) {
  // expected-error@+1 {{'moe.dispatch' op expected a capacity with a factor when a run-time capacity_factor is given, found no capacity}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity_factor(%f) : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @dispatch_factor_count(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %f: f64) {
  // expected-error@+1 {{'moe.dispatch' op expected a capacity with a factor when a run-time capacity_factor is given, found a count capacity}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <count = 4> capacity_factor(%f) : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @dispatch_factor_padded(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>, %f: f64) {
  // expected-error@+1 {{'moe.dispatch' op expected layout kind = ragged or aligned with a run-time capacity_factor, found padded}}
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <factor = 1.0> capacity_factor(%f) layout <kind = padded> : tensor<?x2xi32>, tensor<?x2xf32>
  return
}

// -----

func.func @weight_si4() {
  // expected-error@+1 {{'moe.weight' op expected `stored` to be f32, f16, bf16, f8E4M3FN, f4E2M1FN, i4, i8 or si8, found 'si4'}}
  %w = moe.weight "a" {stored = si4, scales = ["a_scale"], scale_block = array<i64: 1, 32>} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_si8_zero_points() {
  // expected-error@+1 {{'moe.weight' op expected no `zero_points`, `pack_outputs`, `pack_order` or `transposed` with `stored = si8` (one signed value a byte, each its own code)}}
  %w = moe.weight "a" {stored = si8, scales = ["a_scale"], scale_block = array<i64: 1, 32>, zero_points = ["a_zero_point"]} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_si8_transposed() {
  // expected-error@+1 {{'moe.weight' op expected no `zero_points`, `pack_outputs`, `pack_order` or `transposed` with `stored = si8` (one signed value a byte, each its own code)}}
  %w = moe.weight "a" {stored = si8, scales = ["a_scale"], scale_block = array<i64: 32, 1>, transposed} : tensor<2x64xbf16>
  return
}

// -----

func.func @weight_si8_without_scales() {
  // expected-error@+1 {{'moe.weight' op expected `scales` and `scale_block` with `stored = si8` (block-scaled integer)}}
  %w = moe.weight "a" {stored = si8} : tensor<2x64xbf16>
  return
}
