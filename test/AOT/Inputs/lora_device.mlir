// LoRA experts (kind = lora) on the tensors of a Mixtral-style checkpoint
// with hidden = inner = 32 and 4 experts (device-entries.test): expert 0's
// w1 as the frozen base, the stacked w3 as the A matrices (r = 32) and the
// stacked w2 as the B matrices; 2 experts a token, at most 6 tokens each.
// The checkpoint is given when the library is loaded.
module attributes {moe.checkpoint = "lora-ckpt"} {
func.func @lora_layer(%x: tensor<?x32xbf16>) -> tensor<?x32xbf16> {
  %router = moe.weight "model.layers.0.block_sparse_moe.gate.weight" : tensor<4x32xbf16>
  %base = moe.weight "model.layers.0.block_sparse_moe.experts.0.w1.weight" : tensor<32x32xbf16>
  %a = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w3.weight", "model.layers.0.block_sparse_moe.experts.1.w3.weight", "model.layers.0.block_sparse_moe.experts.2.w3.weight", "model.layers.0.block_sparse_moe.experts.3.w3.weight"] : tensor<4x32x32xbf16>
  %b = moe.weight stacked ["model.layers.0.block_sparse_moe.experts.0.w2.weight", "model.layers.0.block_sparse_moe.experts.1.w2.weight", "model.layers.0.block_sparse_moe.experts.2.w2.weight", "model.layers.0.block_sparse_moe.experts.3.w2.weight"] : tensor<4x32x32xbf16>
  %y, %load, %dropped = moe.layer %x router(%router : tensor<4x32xbf16>)
      experts(%base, %a, %b : tensor<32x32xbf16>, tensor<4x32x32xbf16>,
                              tensor<4x32x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       capacity = #moe.capacity<count = 6>,
       experts = #moe.experts<kind = lora, alpha = 16.0>} : tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}
}
