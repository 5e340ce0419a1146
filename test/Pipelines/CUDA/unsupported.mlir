// Layers that the CUDA kernel library does not compute are rejected on the
// op, naming what is supported and what was found.
// RUN: moe-opt %s --split-input-file --verify-diagnostics --moe-cuda-pipeline
// An unknown binary format is an option error.
// RUN: not moe-opt %s --moe-cuda-pipeline=format=ptx 2>&1 \
// RUN:   | FileCheck %s --check-prefix=FORMAT
// FORMAT: for the --format option: Cannot find option named 'ptx'!

func.func @f32(%x: tensor<?x64xf32>, %wr: tensor<8x64xf32>,
    %g: tensor<8x32x64xf32>, %u: tensor<8x32x64xf32>,
    %dn: tensor<8x64x32xf32>, %gu: tensor<8x64x64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{moe-cuda-pipeline supports moe.layer with any selection (top_k, grouped_top_k, top_p, threshold, expert_choice; 1 <= k <= E <= 2048), any score function, combine weights and scale, router and selection biases, a run-time tau, any capacity (count or factor, also at run time; any drop order), weights applied to the output or the input, gated experts (silu, gelu_tanh, gelu_erf, relu or swiglu_oai, with or without expert biases; gate, up and down operands or fused gate_up and down), plain MLP experts or LoRA experts (lora or lora_gated), shared experts (gated or not; gate, up and down or fused gate_up and down), bf16 input and weights, and static expert and shared expert sizes that are multiples of 8; found input tensor<?x64xf32>, router weight tensor<8x64xf32>, expert weights tensor<8x32x64xf32> (moe-narrow-to-bf16, --narrow-to-bf16 of moe-run and moe-compile, computes an f32 or f16 layer in bf16)}}
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xf32>)
      experts(%g, %u, %dn : tensor<8x32x64xf32>, tensor<8x32x64xf32>,
              tensor<8x64x32xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @lora_rank_4(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %w0: tensor<64x64xbf16>, %a: tensor<8x4x64xbf16>,
    %b: tensor<8x64x4xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{moe-cuda-pipeline supports moe.layer with any selection (top_k, grouped_top_k, top_p, threshold, expert_choice; 1 <= k <= E <= 2048), any score function, combine weights and scale, router and selection biases, a run-time tau, any capacity (count or factor, also at run time; any drop order), weights applied to the output or the input, gated experts (silu, gelu_tanh, gelu_erf, relu or swiglu_oai, with or without expert biases; gate, up and down operands or fused gate_up and down), plain MLP experts or LoRA experts (lora or lora_gated), shared experts (gated or not; gate, up and down or fused gate_up and down), bf16 input and weights, and static expert and shared expert sizes that are multiples of 8; found expert weight tensor<8x4x64xbf16>}}
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%w0, %a, %b : tensor<64x64xbf16>, tensor<8x4x64xbf16>,
                            tensor<8x64x4xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = lora, alpha = 8.0>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

func.func @shared_odd_f(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %dn: tensor<8x64x32xbf16>, %sg: tensor<12x64xbf16>,
    %su: tensor<12x64xbf16>, %sd: tensor<64x12xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{moe-cuda-pipeline supports moe.layer with any selection (top_k, grouped_top_k, top_p, threshold, expert_choice; 1 <= k <= E <= 2048), any score function, combine weights and scale, router and selection biases, a run-time tau, any capacity (count or factor, also at run time; any drop order), weights applied to the output or the input, gated experts (silu, gelu_tanh, gelu_erf, relu or swiglu_oai, with or without expert biases; gate, up and down operands or fused gate_up and down), plain MLP experts or LoRA experts (lora or lora_gated), shared experts (gated or not; gate, up and down or fused gate_up and down), bf16 input and weights, and static expert and shared expert sizes that are multiples of 8; found shared down projection tensor<64x12xbf16>}}
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %dn : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      shared(%sg, %su, %sd : tensor<12x64xbf16>, tensor<12x64xbf16>,
                             tensor<64x12xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

func.func @odd_f(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x12x64xbf16>, %u: tensor<8x12x64xbf16>,
    %dn: tensor<8x64x12xbf16>, %gu: tensor<8x24x64xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{moe-cuda-pipeline supports moe.layer with any selection (top_k, grouped_top_k, top_p, threshold, expert_choice; 1 <= k <= E <= 2048), any score function, combine weights and scale, router and selection biases, a run-time tau, any capacity (count or factor, also at run time; any drop order), weights applied to the output or the input, gated experts (silu, gelu_tanh, gelu_erf, relu or swiglu_oai, with or without expert biases; gate, up and down operands or fused gate_up and down), plain MLP experts or LoRA experts (lora or lora_gated), shared experts (gated or not; gate, up and down or fused gate_up and down), bf16 input and weights, and static expert and shared expert sizes that are multiples of 8; found expert weight tensor<8x12x64xbf16>}}
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %dn : tensor<8x12x64xbf16>, tensor<8x12x64xbf16>,
              tensor<8x64x12xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

func.func @many_experts(%x: tensor<?x64xbf16>, %wr: tensor<4096x64xbf16>,
    %g: tensor<4096x32x64xbf16>, %u: tensor<4096x32x64xbf16>,
    %dn: tensor<4096x64x32xbf16>, %gu: tensor<4096x64x64xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{moe-cuda-pipeline supports moe.layer with any selection (top_k, grouped_top_k, top_p, threshold, expert_choice; 1 <= k <= E <= 2048), any score function, combine weights and scale, router and selection biases, a run-time tau, any capacity (count or factor, also at run time; any drop order), weights applied to the output or the input, gated experts (silu, gelu_tanh, gelu_erf, relu or swiglu_oai, with or without expert biases; gate, up and down operands or fused gate_up and down), plain MLP experts or LoRA experts (lora or lora_gated), shared experts (gated or not; gate, up and down or fused gate_up and down), bf16 input and weights, and static expert and shared expert sizes that are multiples of 8; found E = 4096}}
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<4096x64xbf16>)
      experts(%g, %u, %dn : tensor<4096x32x64xbf16>, tensor<4096x32x64xbf16>,
              tensor<4096x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A shared projection of dynamic size: the library takes static ones.
func.func @shared_dynamic(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %gu: tensor<8x64x64xbf16>, %dn: tensor<8x64x32xbf16>,
    %sgu: tensor<?x64xbf16>, %sd: tensor<64x16xbf16>) -> tensor<?x64xbf16> {
  // expected-error @+1 {{moe-cuda-pipeline supports moe.layer with any selection (top_k, grouped_top_k, top_p, threshold, expert_choice; 1 <= k <= E <= 2048), any score function, combine weights and scale, router and selection biases, a run-time tau, any capacity (count or factor, also at run time; any drop order), weights applied to the output or the input, gated experts (silu, gelu_tanh, gelu_erf, relu or swiglu_oai, with or without expert biases; gate, up and down operands or fused gate_up and down), plain MLP experts or LoRA experts (lora or lora_gated), shared experts (gated or not; gate, up and down or fused gate_up and down), bf16 input and weights, and static expert and shared expert sizes that are multiples of 8; found shared projection tensor<?x64xbf16>}}
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%gu, %dn : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      shared(%sgu, %sd : tensor<?x64xbf16>, tensor<64x16xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
