// The fused ops (moe.gate, moe.fused_experts) against the f64 reference,
// both ways they are compiled: by the reference lowering, which expands
// them back into the primitive ops (--reference), and by the CPU kernels
// for each instruction set the runtime has (MOE_CPU_ISA=generic, avx2,
// avx512, amx; a set this CPU lacks falls back to the best one it has,
// with a warning).
//
// RUN: rm -rf %t && mkdir -p %t

// Gated experts with a gated shared expert (Qwen2-MoE style).
// RUN: moe-reference emit --case "op=layer shared=gated" --seed 301 --tokens 0,1,7,33 --dir %t/shared
// RUN: moe-opt %t/shared/case.mlir --moe-decompose --moe-fuse-gating --moe-fuse-expert-io -o %t/shared/fused.mlir
// RUN: FileCheck %s --check-prefix=FUSED --input-file %t/shared/fused.mlir
// RUN: moe-run %t/shared/fused.mlir --reference --entry case --quiet $(cat %t/shared/moe-run.args)
// RUN: moe-reference compare --dir %t/shared | FileCheck %s
// RUN: env MOE_CPU_ISA=generic moe-run %t/shared/case.mlir --entry case --quiet $(cat %t/shared/moe-run.args)
// RUN: moe-reference compare --dir %t/shared | FileCheck %s
// RUN: env MOE_CPU_ISA=avx2 moe-run %t/shared/case.mlir --entry case --quiet $(cat %t/shared/moe-run.args) 2>/dev/null
// RUN: moe-reference compare --dir %t/shared | FileCheck %s
// RUN: env MOE_CPU_ISA=avx512 moe-run %t/shared/case.mlir --entry case --quiet $(cat %t/shared/moe-run.args) 2>/dev/null
// RUN: moe-reference compare --dir %t/shared | FileCheck %s

// bf16 weights and activations, fused gate_up: bf16 panels.
// RUN: moe-reference emit --case "op=layer dtype=bf16 experts=gated_fused shared=gated" --seed 302 --tokens 0,1,7,33 --dir %t/bf16
// RUN: moe-opt %t/bf16/case.mlir --moe-decompose --moe-fuse-gating --moe-fuse-expert-io -o %t/bf16/fused.mlir
// RUN: moe-run %t/bf16/fused.mlir --reference --entry case --quiet $(cat %t/bf16/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16 | FileCheck %s
// RUN: env MOE_CPU_ISA=generic moe-run %t/bf16/case.mlir --entry case --quiet $(cat %t/bf16/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16 | FileCheck %s
// RUN: env MOE_CPU_ISA=avx2 moe-run %t/bf16/case.mlir --entry case --quiet $(cat %t/bf16/moe-run.args) 2>/dev/null
// RUN: moe-reference compare --dir %t/bf16 | FileCheck %s
// RUN: env MOE_CPU_ISA=avx512 moe-run %t/bf16/case.mlir --entry case --quiet $(cat %t/bf16/moe-run.args) 2>/dev/null
// RUN: moe-reference compare --dir %t/bf16 | FileCheck %s
// RUN: env MOE_CPU_ISA=amx moe-run %t/bf16/case.mlir --entry case --quiet $(cat %t/bf16/moe-run.args) 2>/dev/null
// RUN: moe-reference compare --dir %t/bf16 | FileCheck %s

// bf16 weights with f32 activations: the router multiplies the f32 input
// as it is (its panels are f32), so selection matches the reference even
// among 2048 assignments; the experts use bf16 panels (bf16 tolerance).
// RUN: moe-reference emit --case "op=layer wdtype=bf16 d=256 f=512" --seed 5 --tokens 1,64,1024 --dir %t/mixed
// RUN: moe-run %t/mixed/case.mlir --entry case --quiet $(cat %t/mixed/moe-run.args)
// RUN: moe-reference compare --dir %t/mixed --tol 1e-2 | FileCheck %s
// RUN: env MOE_CPU_ISA=avx512 moe-run %t/mixed/case.mlir --entry case --quiet $(cat %t/mixed/moe-run.args) 2>/dev/null
// RUN: moe-reference compare --dir %t/mixed --tol 1e-2 | FileCheck %s

// MLP experts, weights applied to the input, grouped routing with bias.
// RUN: moe-reference emit --case "op=layer experts=mlp act=gelu_erf apply=input renormalize=1 E=16 select=grouped_top_k groups=4 topk_group=2 k=3 selection_bias=1 router_bias=1" --seed 303 --tokens 0,1,7,33 --dir %t/mlp
// RUN: moe-opt %t/mlp/case.mlir --moe-decompose --moe-fuse-gating --moe-fuse-expert-io -o %t/mlp/fused.mlir
// RUN: moe-run %t/mlp/fused.mlir --reference --entry case --quiet $(cat %t/mlp/moe-run.args)
// RUN: moe-reference compare --dir %t/mlp | FileCheck %s
// RUN: env MOE_CPU_ISA=generic moe-run %t/mlp/case.mlir --entry case --quiet $(cat %t/mlp/moe-run.args)
// RUN: moe-reference compare --dir %t/mlp | FileCheck %s

// LoRA experts over their frozen base (one base product for all tokens,
// grouped low-rank products for the routed adapters), with a shared
// expert, and with another output width.
// RUN: moe-reference emit --case "op=layer experts=lora shared=gated alpha=16.0" --seed 306 --tokens 0,1,7,33 --dir %t/lora
// RUN: moe-opt %t/lora/case.mlir --moe-decompose --moe-fuse-gating --moe-fuse-expert-io -o %t/lora/fused.mlir
// RUN: FileCheck %s --check-prefix=FUSED --input-file %t/lora/fused.mlir
// RUN: moe-run %t/lora/fused.mlir --reference --entry case --quiet $(cat %t/lora/moe-run.args)
// RUN: moe-reference compare --dir %t/lora | FileCheck %s
// RUN: env MOE_CPU_ISA=generic moe-run %t/lora/case.mlir --entry case --quiet $(cat %t/lora/moe-run.args)
// RUN: moe-reference compare --dir %t/lora | FileCheck %s
// RUN: moe-reference emit --case "op=layer experts=lora d_out=24 r=8 dtype=bf16" --seed 307 --tokens 1,33,130 --dir %t/lora-out
// RUN: moe-run %t/lora-out/case.mlir --entry case --quiet $(cat %t/lora-out/moe-run.args)
// RUN: moe-reference compare --dir %t/lora-out | FileCheck %s

// Expert choice: rows grouped by expert in score order with padding rows,
// the layout the expert kernel computes whole instead of by token chunk.
// RUN: moe-reference emit --case "op=layer select=expert_choice capacity=factor:1.25 experts=gated_fused" --seed 304 --tokens 0,1,7,33,300 --dir %t/choice
// RUN: moe-opt %t/choice/case.mlir --moe-decompose --moe-fuse-expert-io -o %t/choice/fused.mlir
// RUN: moe-run %t/choice/fused.mlir --reference --entry case --quiet $(cat %t/choice/moe-run.args)
// RUN: moe-reference compare --dir %t/choice | FileCheck %s
// RUN: env MOE_CPU_ISA=generic moe-run %t/choice/case.mlir --entry case --quiet $(cat %t/choice/moe-run.args)
// RUN: moe-reference compare --dir %t/choice | FileCheck %s

// Tokens past one chunk of the expert kernel, with capacity drops.
// RUN: moe-reference emit --case "op=layer k=8 renormalize=1 capacity=factor:1.0 drop_order=token_major" --seed 305 --tokens 700 --dir %t/chunks
// RUN: moe-run %t/chunks/case.mlir --entry case --quiet $(cat %t/chunks/moe-run.args)
// RUN: moe-reference compare --dir %t/chunks | FileCheck %s

// FUSED: moe.gate
// FUSED: moe.fused_experts
// CHECK: all ok
