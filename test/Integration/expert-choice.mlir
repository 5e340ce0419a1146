// Expert-choice routing (Zhou et al. 2022): each expert takes its C best
// tokens; moe.expert_choice returns the per-expert view [E, C] and the slot
// form [T, E].
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// C = ceil(T k / E) without a capacity.
// RUN: moe-reference emit --case "op=expert_choice" --seed 1 --tokens 0,1,7,33 --dir %t/default
// RUN: moe-run %t/default/case.mlir --entry case --quiet $(cat %t/default/moe-run.args)
// RUN: moe-reference compare --dir %t/default | FileCheck %s

// C = count rounded up to align; static [E, C] results.
// RUN: moe-reference emit --case "op=expert_choice k=1 capacity=count:5 cap_align=2" --seed 2 --tokens 0,1,7,33 --dir %t/count-align
// RUN: moe-run %t/count-align/case.mlir --entry case --quiet $(cat %t/count-align/moe-run.args)
// RUN: moe-reference compare --dir %t/count-align | FileCheck %s

// C = ceil(factor T k / E), at least min.
// RUN: moe-reference emit --case "op=expert_choice capacity=factor:1.5 cap_min=2" --seed 3 --tokens 0,1,7,33 --dir %t/factor-min
// RUN: moe-run %t/factor-min/case.mlir --entry case --quiet $(cat %t/factor-min/moe-run.args)
// RUN: moe-reference compare --dir %t/factor-min | FileCheck %s

// C > T: the slots past T hold token -1 and weight 0.
// RUN: moe-reference emit --case "op=expert_choice capacity=count:40" --seed 4 --tokens 0,1,7,33 --dir %t/above-t
// RUN: moe-run %t/above-t/case.mlir --entry case --quiet $(cat %t/above-t/moe-run.args)
// RUN: moe-reference compare --dir %t/above-t | FileCheck %s

// Dispatch of the [T, E] slot form (dropless).
// RUN: moe-reference emit --case "op=dispatch select=expert_choice capacity=count:3" --seed 5 --tokens 0,1,7,33 --dir %t/dispatch
// RUN: moe-run %t/dispatch/case.mlir --entry case --quiet $(cat %t/dispatch/moe-run.args)
// RUN: moe-reference compare --dir %t/dispatch | FileCheck %s

// A whole layer with expert choice.
// RUN: moe-reference emit --case "op=layer select=expert_choice" --seed 6 --tokens 0,1,7,33 --dir %t/layer
// RUN: moe-run %t/layer/case.mlir --entry case --quiet $(cat %t/layer/moe-run.args)
// RUN: moe-reference compare --dir %t/layer | FileCheck %s

// Expert choice with a factor capacity and fused gate_up.
// RUN: moe-reference emit --case "op=layer select=expert_choice capacity=factor:1.25 experts=gated_fused" --seed 7 --tokens 0,1,7,33 --dir %t/layer-fused
// RUN: moe-run %t/layer-fused/case.mlir --entry case --quiet $(cat %t/layer-fused/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-fused | FileCheck %s

// Expert choice, weight on the input, a shared expert.
// RUN: moe-reference emit --case "op=layer select=expert_choice capacity=count:4 apply=input shared=plain" --seed 8 --tokens 0,1,7,33 --dir %t/layer-input-shared
// RUN: moe-run %t/layer-input-shared/case.mlir --entry case --quiet $(cat %t/layer-input-shared/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-input-shared | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
