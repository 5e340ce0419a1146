// Expert kinds and activations (spec section 5) and shared experts, in
// whole layers (moe.layer returns y, the assignment and the drop counts).
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// Gated (SwiGLU) experts, separate gate and up.
// RUN: moe-reference emit --case "op=layer experts=gated act=silu" --seed 1 --tokens 0,1,7,33 --dir %t/gated-silu
// RUN: moe-run %t/gated-silu/case.mlir --entry case --quiet $(cat %t/gated-silu/moe-run.args)
// RUN: moe-reference compare --dir %t/gated-silu | FileCheck %s

// Gated, gelu_tanh.
// RUN: moe-reference emit --case "op=layer experts=gated act=gelu_tanh" --seed 2 --tokens 0,1,7,33 --dir %t/gated-gelu-tanh
// RUN: moe-run %t/gated-gelu-tanh/case.mlir --entry case --quiet $(cat %t/gated-gelu-tanh/moe-run.args)
// RUN: moe-reference compare --dir %t/gated-gelu-tanh | FileCheck %s

// Gated, gelu_erf.
// RUN: moe-reference emit --case "op=layer experts=gated act=gelu_erf" --seed 3 --tokens 0,1,7,33 --dir %t/gated-gelu-erf
// RUN: moe-run %t/gated-gelu-erf/case.mlir --entry case --quiet $(cat %t/gated-gelu-erf/moe-run.args)
// RUN: moe-reference compare --dir %t/gated-gelu-erf | FileCheck %s

// Gated, relu.
// RUN: moe-reference emit --case "op=layer experts=gated act=relu" --seed 4 --tokens 0,1,7,33 --dir %t/gated-relu
// RUN: moe-run %t/gated-relu/case.mlir --entry case --quiet $(cat %t/gated-relu/moe-run.args)
// RUN: moe-reference compare --dir %t/gated-relu | FileCheck %s

// Fused gate_up [E, 2f, d], gate rows first.
// RUN: moe-reference emit --case "op=layer experts=gated_fused act=silu" --seed 5 --tokens 0,1,7,33 --dir %t/fused-silu
// RUN: moe-run %t/fused-silu/case.mlir --entry case --quiet $(cat %t/fused-silu/moe-run.args)
// RUN: moe-reference compare --dir %t/fused-silu | FileCheck %s

// Fused gate_up with Granite routing.
// RUN: moe-reference emit --case "op=layer experts=gated_fused act=gelu_tanh score=logits weights=softmax_selected" --seed 6 --tokens 0,1,7,33 --dir %t/fused-granite
// RUN: moe-run %t/fused-granite/case.mlir --entry case --quiet $(cat %t/fused-granite/moe-run.args)
// RUN: moe-reference compare --dir %t/fused-granite | FileCheck %s

// MLP experts, relu, k = 1.
// RUN: moe-reference emit --case "op=layer experts=mlp act=relu k=1" --seed 7 --tokens 0,1,7,33 --dir %t/mlp-relu
// RUN: moe-run %t/mlp-relu/case.mlir --entry case --quiet $(cat %t/mlp-relu/moe-run.args)
// RUN: moe-reference compare --dir %t/mlp-relu | FileCheck %s

// MLP experts, gelu_erf.
// RUN: moe-reference emit --case "op=layer experts=mlp act=gelu_erf" --seed 8 --tokens 0,1,7,33 --dir %t/mlp-gelu-erf
// RUN: moe-run %t/mlp-gelu-erf/case.mlir --entry case --quiet $(cat %t/mlp-gelu-erf/moe-run.args)
// RUN: moe-reference compare --dir %t/mlp-gelu-erf | FileCheck %s

// MLP experts, silu.
// RUN: moe-reference emit --case "op=layer experts=mlp act=silu" --seed 9 --tokens 0,1,7,33 --dir %t/mlp-silu
// RUN: moe-run %t/mlp-silu/case.mlir --entry case --quiet $(cat %t/mlp-silu/moe-run.args)
// RUN: moe-reference compare --dir %t/mlp-silu | FileCheck %s

// MLP experts, gelu_tanh.
// RUN: moe-reference emit --case "op=layer experts=mlp act=gelu_tanh" --seed 10 --tokens 0,1,7,33 --dir %t/mlp-gelu-tanh
// RUN: moe-run %t/mlp-gelu-tanh/case.mlir --entry case --quiet $(cat %t/mlp-gelu-tanh/moe-run.args)
// RUN: moe-reference compare --dir %t/mlp-gelu-tanh | FileCheck %s

// LoRA experts on a frozen base projection.
// RUN: moe-reference emit --case "op=layer experts=lora alpha=16.0 renormalize=1" --seed 11 --tokens 0,1,7,33 --dir %t/lora
// RUN: moe-run %t/lora/case.mlir --entry case --quiet $(cat %t/lora/moe-run.args)
// RUN: moe-reference compare --dir %t/lora | FileCheck %s

// LoRA with d_out != d and r = 8.
// RUN: moe-reference emit --case "op=layer experts=lora d_out=24 r=8" --seed 12 --tokens 0,1,7,33 --dir %t/lora-dout
// RUN: moe-run %t/lora-dout/case.mlir --entry case --quiet $(cat %t/lora-dout/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-dout | FileCheck %s

// LoRA with the weight on the expert input.
// RUN: moe-reference emit --case "op=layer experts=lora apply=input" --seed 13 --tokens 0,1,7,33 --dir %t/lora-input
// RUN: moe-run %t/lora-input/case.mlir --entry case --quiet $(cat %t/lora-input/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-input | FileCheck %s

// MixLoRA: a gated base FFN with per-expert LoRA pairs.
// RUN: moe-reference emit --case "op=layer experts=lora_gated act=silu alpha=16.0" --seed 14 --tokens 0,1,7,33 --dir %t/lora-gated-silu
// RUN: moe-run %t/lora-gated-silu/case.mlir --entry case --quiet $(cat %t/lora-gated-silu/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-gated-silu | FileCheck %s

// MixLoRA, gelu_tanh, weight on the input.
// RUN: moe-reference emit --case "op=layer experts=lora_gated act=gelu_tanh apply=input" --seed 15 --tokens 0,1,7,33 --dir %t/lora-gated-gelu-tanh
// RUN: moe-run %t/lora-gated-gelu-tanh/case.mlir --entry case --quiet $(cat %t/lora-gated-gelu-tanh/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-gated-gelu-tanh | FileCheck %s

// MixLoRA, relu.
// RUN: moe-reference emit --case "op=layer experts=lora_gated act=relu" --seed 16 --tokens 0,1,7,33 --dir %t/lora-gated-relu
// RUN: moe-run %t/lora-gated-relu/case.mlir --entry case --quiet $(cat %t/lora-gated-relu/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-gated-relu | FileCheck %s

// MixLoRA, gelu_erf.
// RUN: moe-reference emit --case "op=layer experts=lora_gated act=gelu_erf" --seed 17 --tokens 0,1,7,33 --dir %t/lora-gated-gelu-erf
// RUN: moe-run %t/lora-gated-gelu-erf/case.mlir --entry case --quiet $(cat %t/lora-gated-gelu-erf/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-gated-gelu-erf | FileCheck %s

// An ungated shared expert (DeepSeek).
// RUN: moe-reference emit --case "op=layer shared=plain" --seed 18 --tokens 0,1,7,33 --dir %t/shared-plain
// RUN: moe-run %t/shared-plain/case.mlir --entry case --quiet $(cat %t/shared-plain/moe-run.args)
// RUN: moe-reference compare --dir %t/shared-plain | FileCheck %s

// An ungated shared expert stored fused, gate rows then up rows (Granite
// 4.0's shared_mlp), with Granite's routing; f16 on the f32 panels.
// RUN: moe-reference emit --case "op=layer shared=plain_fused fs=40 score=logits weights=softmax_selected dtype=f16" --seed 26 --tokens 0,1,7,33 --dir %t/shared-fused
// RUN: moe-run %t/shared-fused/case.mlir --entry case --quiet $(cat %t/shared-fused/moe-run.args)
// RUN: moe-reference compare --dir %t/shared-fused | FileCheck %s

// A sigmoid-gated shared expert (Qwen2-MoE).
// RUN: moe-reference emit --case "op=layer shared=gated" --seed 19 --tokens 0,1,7,33 --dir %t/shared-gated
// RUN: moe-run %t/shared-gated/case.mlir --entry case --quiet $(cat %t/shared-gated/moe-run.args)
// RUN: moe-reference compare --dir %t/shared-gated | FileCheck %s

// A shared expert with gelu_erf.
// RUN: moe-reference emit --case "op=layer shared=plain act=gelu_erf fs=32" --seed 20 --tokens 0,1,7,33 --dir %t/shared-gelu
// RUN: moe-run %t/shared-gelu/case.mlir --entry case --quiet $(cat %t/shared-gelu/moe-run.args)
// RUN: moe-reference compare --dir %t/shared-gelu | FileCheck %s

// A LoRA base and a gated shared expert: their sum is added.
// RUN: moe-reference emit --case "op=layer experts=lora shared=gated" --seed 21 --tokens 0,1,7,33 --dir %t/lora-shared
// RUN: moe-run %t/lora-shared/case.mlir --entry case --quiet $(cat %t/lora-shared/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-shared | FileCheck %s

// DeepSeek-V2-style: grouped max, scale 16, shared expert.
// RUN: moe-reference emit --case "op=layer E=16 select=grouped_top_k groups=4 topk_group=2 k=4 scale=16.0 shared=plain fs=32" --seed 22 --tokens 0,1,7,33 --dir %t/deepseek-v2
// RUN: moe-run %t/deepseek-v2/case.mlir --entry case --quiet $(cat %t/deepseek-v2/moe-run.args)
// RUN: moe-reference compare --dir %t/deepseek-v2 | FileCheck %s

// GPT-OSS's experts: a bias on every projection (wide, so that the clamps
// at +-7 bite) and the clamped SwiGLU; its router's bias, the top k of the
// logits, a softmax over them; bf16. Then each feature alone, and the
// biases with a shared expert, a capacity and the weights on the input.
// RUN: moe-reference emit --case "op=layer experts=gated_fused act=swiglu_oai expert_bias=1 score=logits weights=softmax_selected router_bias=1 k=4 dtype=bf16" --seed 23 --tokens 0,1,7,33 --dir %t/gpt-oss
// RUN: moe-run %t/gpt-oss/case.mlir --entry case --quiet $(cat %t/gpt-oss/moe-run.args)
// RUN: moe-reference compare --dir %t/gpt-oss | FileCheck %s
// RUN: moe-reference emit --case "op=layer experts=gated act=swiglu_oai" --seed 24 --tokens 0,1,7,33 --dir %t/swiglu-oai
// RUN: moe-run %t/swiglu-oai/case.mlir --entry case --quiet $(cat %t/swiglu-oai/moe-run.args)
// RUN: moe-reference compare --dir %t/swiglu-oai | FileCheck %s
// RUN: moe-reference emit --case "op=layer experts=gated act=silu expert_bias=1 shared=plain capacity=factor:1.0 dtype=f16" --seed 25 --tokens 0,1,7,33 --dir %t/biases-shared
// RUN: moe-run %t/biases-shared/case.mlir --entry case --quiet $(cat %t/biases-shared/moe-run.args)
// RUN: moe-reference compare --dir %t/biases-shared | FileCheck %s
// RUN: moe-reference emit --case "op=layer experts=gated_fused act=gelu_tanh expert_bias=1 apply=input" --seed 26 --tokens 0,1,7,33 --dir %t/biases-input
// RUN: moe-run %t/biases-input/case.mlir --entry case --quiet $(cat %t/biases-input/moe-run.args)
// RUN: moe-reference compare --dir %t/biases-input | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
