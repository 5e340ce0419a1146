// f16 and bf16 activations and weights: inputs are rounded to the type
// first and the reference computes from the rounded values; results in these
// types are compared with tolerance 1e-2, f32 results (logits, weights) with
// 1e-5.
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// A bf16 layer.
// RUN: moe-reference emit --case "op=layer dtype=bf16" --seed 1 --tokens 0,1,7,33 --dir %t/bf16-layer
// RUN: moe-run %t/bf16-layer/case.mlir --entry case --quiet $(cat %t/bf16-layer/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16-layer | FileCheck %s

// An f16 layer.
// RUN: moe-reference emit --case "op=layer dtype=f16" --seed 2 --tokens 0,1,7,33 --dir %t/f16-layer
// RUN: moe-run %t/f16-layer/case.mlir --entry case --quiet $(cat %t/f16-layer/moe-run.args)
// RUN: moe-reference compare --dir %t/f16-layer | FileCheck %s

// bf16, fused gate_up and a gated shared expert.
// RUN: moe-reference emit --case "op=layer dtype=bf16 experts=gated_fused shared=gated" --seed 3 --tokens 0,1,7,33 --dir %t/bf16-qwen2
// RUN: moe-run %t/bf16-qwen2/case.mlir --entry case --quiet $(cat %t/bf16-qwen2/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16-qwen2 | FileCheck %s

// f16 with d = 512.
// RUN: moe-reference emit --case "op=layer dtype=f16 d=512 f=128" --seed 4 --tokens 0,1,7,33 --dir %t/f16-wide
// RUN: moe-run %t/f16-wide/case.mlir --entry case --quiet $(cat %t/f16-wide/moe-run.args)
// RUN: moe-reference compare --dir %t/f16-wide | FileCheck %s

// bf16 router: f32 logits and weights.
// RUN: moe-reference emit --case "op=route dtype=bf16 renormalize=1" --seed 5 --tokens 0,1,7,33 --dir %t/bf16-route
// RUN: moe-run %t/bf16-route/case.mlir --entry case --quiet $(cat %t/bf16-route/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16-route | FileCheck %s

// f16 router, sigmoid scores.
// RUN: moe-reference emit --case "op=route dtype=f16 score=sigmoid" --seed 6 --tokens 0,1,7,33 --dir %t/f16-route
// RUN: moe-run %t/f16-route/case.mlir --entry case --quiet $(cat %t/f16-route/moe-run.args)
// RUN: moe-reference compare --dir %t/f16-route | FileCheck %s

// bf16 relu MLP experts with a capacity.
// RUN: moe-reference emit --case "op=layer dtype=bf16 experts=mlp act=relu capacity=count:3" --seed 7 --tokens 0,1,7,33 --dir %t/bf16-capacity
// RUN: moe-run %t/bf16-capacity/case.mlir --entry case --quiet $(cat %t/bf16-capacity/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16-capacity | FileCheck %s

// f16 LoRA experts.
// RUN: moe-reference emit --case "op=layer dtype=f16 experts=lora" --seed 8 --tokens 0,1,7,33 --dir %t/f16-lora
// RUN: moe-run %t/f16-lora/case.mlir --entry case --quiet $(cat %t/f16-lora/moe-run.args)
// RUN: moe-reference compare --dir %t/f16-lora | FileCheck %s

// bf16 MixLoRA experts.
// RUN: moe-reference emit --case "op=layer dtype=bf16 experts=lora_gated" --seed 9 --tokens 0,1,7,33 --dir %t/bf16-lora-gated
// RUN: moe-run %t/bf16-lora-gated/case.mlir --entry case --quiet $(cat %t/bf16-lora-gated/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16-lora-gated | FileCheck %s

// bf16 router, score-order dispatch.
// RUN: moe-reference emit --case "op=dispatch dtype=bf16 capacity=count:3 drop_order=score" --seed 10 --tokens 0,1,7,33 --dir %t/bf16-dispatch
// RUN: moe-run %t/bf16-dispatch/case.mlir --entry case --quiet $(cat %t/bf16-dispatch/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16-dispatch | FileCheck %s

// bf16 with a NaN token and an inf token.
// RUN: moe-reference emit --case "op=layer dtype=bf16 data=nonfinite" --seed 11 --tokens 0,1,7,33 --dir %t/bf16-nonfinite
// RUN: moe-run %t/bf16-nonfinite/case.mlir --entry case --quiet $(cat %t/bf16-nonfinite/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16-nonfinite | FileCheck %s

// f16 with the weight on the expert input.
// RUN: moe-reference emit --case "op=layer dtype=f16 apply=input renormalize=1" --seed 12 --tokens 0,1,7,33 --dir %t/f16-input
// RUN: moe-run %t/f16-input/case.mlir --entry case --quiet $(cat %t/f16-input/moe-run.args)
// RUN: moe-reference compare --dir %t/f16-input | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
