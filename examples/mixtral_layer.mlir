// A Mixtral-style sparse MoE block (scaled down: d 256, f 704, E 8, k 2):
// softmax router, top-2 selection renormalized over the two chosen experts,
// SwiGLU experts, dropless dispatch.
func.func @mixtral_layer(%x: tensor<?x256xf32>, %router: tensor<8x256xf32>,
                         %w1: tensor<8x704x256xf32>, %w3: tensor<8x704x256xf32>,
                         %w2: tensor<8x256x704xf32>)
    -> (tensor<?x256xf32>, tensor<8xi64>, tensor<8xi64>)
    attributes {llvm.emit_c_interface} {
  %y, %load, %dropped = moe.layer %x router(%router : tensor<8x256xf32>)
      experts(%w1, %w3, %w2 : tensor<8x704x256xf32>, tensor<8x704x256xf32>,
                              tensor<8x256x704xf32>)
      {family = #moe.family<mixtral>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x256xf32>
  return %y, %load, %dropped : tensor<?x256xf32>, tensor<8xi64>, tensor<8xi64>
}
