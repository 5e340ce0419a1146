// Threshold routing (tau a run-time knob once moe-expose-knobs runs) and
// expert choice on the tensors of layer 0 of a Mixtral-style checkpoint with
// hidden 32, inner 48 and 4 experts (device-entries.test): selections of a
// varying number of experts per token. The checkpoint is given when the
// library is loaded.
module attributes {moe.checkpoint = "ckpt"} {
func.func @threshold_layer(%x: tensor<?x32xbf16>) -> tensor<?x32xbf16> {
  %router = moe.weight "model.layers.0.block_sparse_moe.gate.weight" : tensor<4x32xbf16>
  %gate = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w1.weight", "model.layers.0.block_sparse_moe.experts.1.w1.weight", "model.layers.0.block_sparse_moe.experts.2.w1.weight", "model.layers.0.block_sparse_moe.experts.3.w1.weight"] : tensor<4x48x32xbf16>
  %up = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w3.weight", "model.layers.0.block_sparse_moe.experts.1.w3.weight", "model.layers.0.block_sparse_moe.experts.2.w3.weight", "model.layers.0.block_sparse_moe.experts.3.w3.weight"] : tensor<4x48x32xbf16>
  %down = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w2.weight", "model.layers.0.block_sparse_moe.experts.1.w2.weight", "model.layers.0.block_sparse_moe.experts.2.w2.weight", "model.layers.0.block_sparse_moe.experts.3.w2.weight"] : tensor<4x32x48xbf16>
  %y, %load, %dropped = moe.layer %x router(%router : tensor<4x32xbf16>)
      experts(%gate, %up, %down : tensor<4x48x32xbf16>, tensor<4x48x32xbf16>,
                                  tensor<4x32x48xbf16>)
      {routing = #moe.routing<score = softmax, selection = threshold, k = 4,
                              tau = 0.3>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}
func.func @choice_layer(%x: tensor<?x32xbf16>) -> tensor<?x32xbf16> {
  %router = moe.weight "model.layers.0.block_sparse_moe.gate.weight" : tensor<4x32xbf16>
  %gate = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w1.weight", "model.layers.0.block_sparse_moe.experts.1.w1.weight", "model.layers.0.block_sparse_moe.experts.2.w1.weight", "model.layers.0.block_sparse_moe.experts.3.w1.weight"] : tensor<4x48x32xbf16>
  %up = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w3.weight", "model.layers.0.block_sparse_moe.experts.1.w3.weight", "model.layers.0.block_sparse_moe.experts.2.w3.weight", "model.layers.0.block_sparse_moe.experts.3.w3.weight"] : tensor<4x48x32xbf16>
  %down = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w2.weight", "model.layers.0.block_sparse_moe.experts.1.w2.weight", "model.layers.0.block_sparse_moe.experts.2.w2.weight", "model.layers.0.block_sparse_moe.experts.3.w2.weight"] : tensor<4x32x48xbf16>
  %y, %load, %dropped = moe.layer %x router(%router : tensor<4x32xbf16>)
      experts(%gate, %up, %down : tensor<4x48x32xbf16>, tensor<4x48x32xbf16>,
                                  tensor<4x32x48xbf16>)
      {routing = #moe.routing<score = softmax, selection = expert_choice,
                              k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}
}
