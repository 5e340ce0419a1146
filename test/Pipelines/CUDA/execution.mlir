// A bf16 layer compiled by moe-cuda-pipeline and run on the GPU by
// moe-run, against moe-reference's f64 results: the output within bf16
// tolerance, the per-expert assignments and dropped counts exactly.
// REQUIRES: cuda-gpu
// RUN: rm -rf %t && mkdir -p %t

// Mixtral-style: k = 2 of 8 experts, renormalized.
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1" --seed 1 --tokens 0,1,7,33,130 --dir %t/mixtral
// RUN: moe-run %t/mixtral/case.mlir --entry case --pipeline cuda --quiet $(cat %t/mixtral/moe-run.args)
// RUN: moe-reference compare --dir %t/mixtral | FileCheck %s

// Wider: d = 256, f = 128, k = 4 of 16.
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1 E=16 k=4 d=256 f=128" --seed 2 --tokens 1,64,100 --dir %t/wide
// RUN: moe-run %t/wide/case.mlir --entry case --pipeline cuda --quiet $(cat %t/wide/moe-run.args)
// RUN: moe-reference compare --dir %t/wide | FileCheck %s

// Every routing of the router kernels, capacities in each drop order (the
// dropped counts compared exactly), shared experts, gated or not, every
// activation, weights applied to the expert input, a fused gate_up operand,
// and plain MLP experts (Switch).
// RUN: for spec in \
// RUN:     "score=sigmoid select=grouped_top_k groups=4 topk_group=2 group_score=sum_top2 selection_bias=1 renormalize=1 scale=2.5 E=16 k=4" \
// RUN:     "select=grouped_top_k groups=4 topk_group=2 E=16 k=3" \
// RUN:     "score=sigmoid select=grouped_top_k groups=128 topk_group=8 group_score=sum_top2 renormalize=1 E=256 k=8" \
// RUN:     "select=top_p top_p=0.4 renormalize=1 E=16 k=4" \
// RUN:     "select=threshold tau=0.15 tau_operand=1 renormalize=1 k=4" \
// RUN:     "score=logits weights=softmax_selected" \
// RUN:     "score=sqrt_softplus router_bias=1 renormalize=1 E=16" \
// RUN:     "E=64 k=8" \
// RUN:     "select=expert_choice k=2" \
// RUN:     "select=expert_choice k=2 capacity=factor:1.5 cap_min=2 router_bias=1 E=16" \
// RUN:     "renormalize=1 capacity=factor:1.0" \
// RUN:     "renormalize=1 capacity=count:3 drop_order=token_major" \
// RUN:     "capacity=factor:0.75 cap_align=2 drop_order=score renorm_after_drop=1" \
// RUN:     "E=16 k=4 renormalize=1 capacity=count:2 drop_order=score" \
// RUN:     "renormalize=1 shared=plain fs=128" \
// RUN:     "E=16 k=4 shared=gated capacity=factor:1.0 drop_order=token_major" \
// RUN:     "act=gelu_tanh renormalize=1" \
// RUN:     "act=gelu_erf E=16 k=4" \
// RUN:     "act=relu renormalize=1 shared=plain" \
// RUN:     "apply=input renormalize=1 E=16 k=4" \
// RUN:     "experts=gated_fused score=logits weights=softmax_selected" \
// RUN:     "experts=mlp act=relu k=1 capacity=factor:1.25 drop_order=token_major" \
// RUN:     "experts=mlp act=gelu_tanh E=16 k=4 shared=gated" \
// RUN:     "experts=lora r=8 alpha=16 renormalize=1" \
// RUN:     "experts=lora r=16 d_out=40 E=16 k=4 apply=input capacity=factor:1.0" \
// RUN:     "experts=lora_gated r=8 renormalize=1" \
// RUN:     "experts=lora_gated r=8 act=gelu_tanh E=16 k=4 shared=gated"; do \
// RUN:   rm -rf %t/v && \
// RUN:   moe-reference emit --case "op=layer dtype=bf16 $spec" --seed 3 --tokens 1,17,64 --dir %t/v && \
// RUN:   moe-run %t/v/case.mlir --entry case --pipeline cuda --quiet $(cat %t/v/moe-run.args) && \
// RUN:   moe-reference compare --dir %t/v || exit 1; \
// RUN: done | FileCheck %s --check-prefix=VARIANTS

// Run-time knobs (test/Integration/knobs.mlir on the GPU): the reference
// is made for tau = 0.3 and a capacity factor of 0.75, the module defaults
// to other values, and the knobs set the reference's.
// RUN: moe-reference emit --case "op=layer dtype=bf16 select=threshold tau=0.3 k=3 renormalize=1 capacity=factor:0.75 drop_order=token_major" \
// RUN:   --seed 31 --tokens 1,7,33 --dir %t/knobs
// RUN: sed -i -E 's/tau = 0.3([,>])/tau = 0.05\1/; s/factor = 0.75([,>])/factor = 4.0\1/' %t/knobs/case.mlir
// RUN: moe-run %t/knobs/case.mlir --entry case --pipeline cuda --quiet --knob case:tau=0.3 \
// RUN:   --knob case:capacity_factor=0.75 $(cat %t/knobs/moe-run.args)
// RUN: moe-reference compare --dir %t/knobs | FileCheck %s
// RUN: moe-run %t/knobs/case.mlir --entry case --pipeline cuda --quiet $(cat %t/knobs/moe-run.args)
// RUN: not moe-reference compare --dir %t/knobs

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
// VARIANTS-COUNT-27: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
