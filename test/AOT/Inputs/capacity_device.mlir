// A capacity (its factor a run-time knob once moe-expose-knobs runs; drops
// in choice_major order, the kept weights renormalized) on the tensors of
// layer 0 of a Mixtral-style checkpoint with hidden 32, inner 48 and 4
// experts (device-entries.test, cuda-graph-gpu.test). The checkpoint is
// given when the library is loaded.
module attributes {moe.checkpoint = "ckpt"} {
func.func @capacity_layer(%x: tensor<?x32xbf16>) -> tensor<?x32xbf16> {
  %router = moe.weight "model.layers.0.block_sparse_moe.gate.weight" : tensor<4x32xbf16>
  %gate = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w1.weight", "model.layers.0.block_sparse_moe.experts.1.w1.weight", "model.layers.0.block_sparse_moe.experts.2.w1.weight", "model.layers.0.block_sparse_moe.experts.3.w1.weight"] : tensor<4x48x32xbf16>
  %up = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w3.weight", "model.layers.0.block_sparse_moe.experts.1.w3.weight", "model.layers.0.block_sparse_moe.experts.2.w3.weight", "model.layers.0.block_sparse_moe.experts.3.w3.weight"] : tensor<4x48x32xbf16>
  %down = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w2.weight", "model.layers.0.block_sparse_moe.experts.1.w2.weight", "model.layers.0.block_sparse_moe.experts.2.w2.weight", "model.layers.0.block_sparse_moe.experts.3.w2.weight"] : tensor<4x32x48xbf16>
  %y, %load, %dropped = moe.layer %x router(%router : tensor<4x32xbf16>)
      experts(%gate, %up, %down : tensor<4x48x32xbf16>, tensor<4x48x32xbf16>,
                                  tensor<4x32x48xbf16>)
      {capacity = #moe.capacity<factor = 1.0, drop_order = choice_major,
                                 renormalize_after_drop = true>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}
}
