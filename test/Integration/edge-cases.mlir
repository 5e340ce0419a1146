// Hard cases: exact ties (lower index wins), every token to one expert
// (with and without capacity), T = 0 and T = 1, E = 1, k = E, non-finite
// inputs (NaN and inf follow docs/semantics.md), and a large T.
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// Identical router rows: tied logits, the lower expert wins.
// RUN: moe-reference emit --case "op=route data=ties k=3" --seed 1 --tokens 0,1,7,33 --dir %t/ties-route
// RUN: moe-run %t/ties-route/case.mlir --entry case --quiet $(cat %t/ties-route/moe-run.args)
// RUN: moe-reference compare --dir %t/ties-route | FileCheck %s

// Ties across groups.
// RUN: moe-reference emit --case "op=route data=ties score=sigmoid select=grouped_top_k groups=4 topk_group=2" --seed 2 --tokens 0,1,7,33 --dir %t/ties-grouped
// RUN: moe-run %t/ties-grouped/case.mlir --entry case --quiet $(cat %t/ties-grouped/moe-run.args)
// RUN: moe-reference compare --dir %t/ties-grouped | FileCheck %s

// Ties in a layer.
// RUN: moe-reference emit --case "op=layer data=ties" --seed 3 --tokens 0,1,7,33 --dir %t/ties-layer
// RUN: moe-run %t/ties-layer/case.mlir --entry case --quiet $(cat %t/ties-layer/moe-run.args)
// RUN: moe-reference compare --dir %t/ties-layer | FileCheck %s

// Identical tokens: the lower token wins.
// RUN: moe-reference emit --case "op=expert_choice data=ties" --seed 4 --tokens 0,1,7,33 --dir %t/ties-expert-choice
// RUN: moe-run %t/ties-expert-choice/case.mlir --entry case --quiet $(cat %t/ties-expert-choice/moe-run.args)
// RUN: moe-reference compare --dir %t/ties-expert-choice | FileCheck %s

// Tied weights at the score-order cut.
// RUN: moe-reference emit --case "op=dispatch data=ties capacity=count:3 drop_order=score" --seed 5 --tokens 0,1,7,33 --dir %t/ties-score-drop
// RUN: moe-run %t/ties-score-drop/case.mlir --entry case --quiet $(cat %t/ties-score-drop/moe-run.args)
// RUN: moe-reference compare --dir %t/ties-score-drop | FileCheck %s

// Every token's first choice is expert 0.
// RUN: moe-reference emit --case "op=route data=one_expert" --seed 6 --tokens 0,1,7,33 --dir %t/one-expert-route
// RUN: moe-run %t/one-expert-route/case.mlir --entry case --quiet $(cat %t/one-expert-route/moe-run.args)
// RUN: moe-reference compare --dir %t/one-expert-route | FileCheck %s

// All tokens to expert 0, dropless.
// RUN: moe-reference emit --case "op=layer data=one_expert" --seed 7 --tokens 0,1,7,33 --dir %t/one-expert-layer
// RUN: moe-run %t/one-expert-layer/case.mlir --entry case --quiet $(cat %t/one-expert-layer/moe-run.args)
// RUN: moe-reference compare --dir %t/one-expert-layer | FileCheck %s

// All tokens to expert 0 with a capacity: overflow.
// RUN: moe-reference emit --case "op=layer data=one_expert capacity=count:4 drop_order=token_major" --seed 8 --tokens 0,1,7,33 --dir %t/one-expert-overflow
// RUN: moe-run %t/one-expert-overflow/case.mlir --entry case --quiet $(cat %t/one-expert-overflow/moe-run.args)
// RUN: moe-reference compare --dir %t/one-expert-overflow | FileCheck %s

// Overflow with the score order (a milder bias keeps weights apart).
// RUN: moe-reference emit --case "op=dispatch data=one_expert bias0=5.0 capacity=factor:1.0 drop_order=score" --seed 9 --tokens 0,1,7,33 --dir %t/one-expert-score
// RUN: moe-run %t/one-expert-score/case.mlir --entry case --quiet $(cat %t/one-expert-score/moe-run.args)
// RUN: moe-reference compare --dir %t/one-expert-score | FileCheck %s

// ceil(2.2 * 25 / 5) in f64 is 12, not 11: expert 0 keeps 12 of 25.
// RUN: moe-reference emit --case "op=dispatch E=5 k=1 data=one_expert capacity=factor:2.2" --seed 10 --tokens 25 --dir %t/capacity-f64
// RUN: moe-run %t/capacity-f64/case.mlir --entry case --quiet $(cat %t/capacity-f64/moe-run.args)
// RUN: moe-reference compare --dir %t/capacity-f64 | FileCheck %s

// Expert choice when one expert dominates.
// RUN: moe-reference emit --case "op=expert_choice data=one_expert bias0=3.0" --seed 11 --tokens 0,1,7,33 --dir %t/one-expert-ec
// RUN: moe-run %t/one-expert-ec/case.mlir --entry case --quiet $(cat %t/one-expert-ec/moe-run.args)
// RUN: moe-reference compare --dir %t/one-expert-ec | FileCheck %s

// T = 0 and T = 1 with capacity.
// RUN: moe-reference emit --case "op=layer capacity=factor:1.0" --seed 12 --tokens 0,1 --dir %t/small-t
// RUN: moe-run %t/small-t/case.mlir --entry case --quiet $(cat %t/small-t/moe-run.args)
// RUN: moe-reference compare --dir %t/small-t | FileCheck %s

// T = 0 and T = 1 with expert choice.
// RUN: moe-reference emit --case "op=expert_choice capacity=count:2" --seed 13 --tokens 0,1 --dir %t/small-t-ec
// RUN: moe-run %t/small-t-ec/case.mlir --entry case --quiet $(cat %t/small-t-ec/moe-run.args)
// RUN: moe-reference compare --dir %t/small-t-ec | FileCheck %s

// E = 1, k = 1.
// RUN: moe-reference emit --case "op=layer E=1 k=1" --seed 14 --tokens 0,1,7,33 --dir %t/e1
// RUN: moe-run %t/e1/case.mlir --entry case --quiet $(cat %t/e1/moe-run.args)
// RUN: moe-reference compare --dir %t/e1 | FileCheck %s

// E = 1 with a capacity.
// RUN: moe-reference emit --case "op=dispatch E=1 k=1 capacity=count:5" --seed 15 --tokens 0,1,7,33 --dir %t/e1-capacity
// RUN: moe-run %t/e1-capacity/case.mlir --entry case --quiet $(cat %t/e1-capacity/moe-run.args)
// RUN: moe-reference compare --dir %t/e1-capacity | FileCheck %s

// k = E.
// RUN: moe-reference emit --case "op=layer k=8 renormalize=1" --seed 16 --tokens 0,1,7,33 --dir %t/k-eq-e
// RUN: moe-run %t/k-eq-e/case.mlir --entry case --quiet $(cat %t/k-eq-e/moe-run.args)
// RUN: moe-reference compare --dir %t/k-eq-e | FileCheck %s

// k = E = 4, sigmoid.
// RUN: moe-reference emit --case "op=route E=4 k=4 score=sigmoid" --seed 17 --tokens 0,1,7,33 --dir %t/k-eq-e-sigmoid
// RUN: moe-run %t/k-eq-e-sigmoid/case.mlir --entry case --quiet $(cat %t/k-eq-e-sigmoid/moe-run.args)
// RUN: moe-reference compare --dir %t/k-eq-e-sigmoid | FileCheck %s

// A NaN token and an inf token: their rows are NaN.
// RUN: moe-reference emit --case "op=layer data=nonfinite" --seed 18 --tokens 0,1,7,33 --dir %t/nan-layer
// RUN: moe-run %t/nan-layer/case.mlir --entry case --quiet $(cat %t/nan-layer/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-layer | FileCheck %s

// Non-finite logits with sigmoid scores.
// RUN: moe-reference emit --case "op=route data=nonfinite score=sigmoid" --seed 19 --tokens 0,1,7,33 --dir %t/nan-route-sigmoid
// RUN: moe-run %t/nan-route-sigmoid/case.mlir --entry case --quiet $(cat %t/nan-route-sigmoid/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-route-sigmoid | FileCheck %s

// top_p on a NaN row takes slot 0 only.
// RUN: moe-reference emit --case "op=route data=nonfinite select=top_p top_p=0.5 k=3" --seed 20 --tokens 0,1,7,33 --dir %t/nan-top-p
// RUN: moe-run %t/nan-top-p/case.mlir --entry case --quiet $(cat %t/nan-top-p/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-top-p | FileCheck %s

// threshold keeps NaN slots.
// RUN: moe-reference emit --case "op=route data=nonfinite select=threshold tau=0.1 k=3" --seed 21 --tokens 0,1,7,33 --dir %t/nan-threshold
// RUN: moe-run %t/nan-threshold/case.mlir --entry case --quiet $(cat %t/nan-threshold/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-threshold | FileCheck %s

// Non-finite rows in grouped selection: NaN group scores rank last.
// RUN: moe-reference emit --case "op=route data=nonfinite select=grouped_top_k groups=4 topk_group=2 group_score=sum_top2" --seed 22 --tokens 0,1,7,33 --dir %t/nan-grouped
// RUN: moe-run %t/nan-grouped/case.mlir --entry case --quiet $(cat %t/nan-grouped/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-grouped | FileCheck %s

// NaN weights rank last in the score order.
// RUN: moe-reference emit --case "op=dispatch data=nonfinite capacity=count:3 drop_order=score" --seed 23 --tokens 0,1,7,33 --dir %t/nan-score-drop
// RUN: moe-run %t/nan-score-drop/case.mlir --entry case --quiet $(cat %t/nan-score-drop/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-score-drop | FileCheck %s

// Losses including a NaN token are NaN.
// RUN: moe-reference emit --case "op=losses data=nonfinite" --seed 24 --tokens 0,1,7,33 --dir %t/nan-losses
// RUN: moe-run %t/nan-losses/case.mlir --entry case --quiet $(cat %t/nan-losses/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-losses | FileCheck %s

// NaN scores rank below every token.
// RUN: moe-reference emit --case "op=expert_choice data=nonfinite" --seed 25 --tokens 0,1,7,33 --dir %t/nan-expert-choice
// RUN: moe-run %t/nan-expert-choice/case.mlir --entry case --quiet $(cat %t/nan-expert-choice/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-expert-choice | FileCheck %s

// Non-finite tokens with a LoRA base.
// RUN: moe-reference emit --case "op=layer data=nonfinite experts=lora" --seed 26 --tokens 0,1,7,33 --dir %t/nan-lora
// RUN: moe-run %t/nan-lora/case.mlir --entry case --quiet $(cat %t/nan-lora/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-lora | FileCheck %s

// Non-finite tokens with a gated shared expert.
// RUN: moe-reference emit --case "op=layer data=nonfinite shared=gated" --seed 27 --tokens 0,1,7,33 --dir %t/nan-shared
// RUN: moe-run %t/nan-shared/case.mlir --entry case --quiet $(cat %t/nan-shared/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-shared | FileCheck %s

// Non-finite rows in grouped_matmul.
// RUN: moe-reference emit --case "op=grouped_matmul data=nonfinite" --seed 28 --tokens 0,1,7,33 --dir %t/nan-grouped-matmul
// RUN: moe-run %t/nan-grouped-matmul/case.mlir --entry case --quiet $(cat %t/nan-grouped-matmul/moe-run.args)
// RUN: moe-reference compare --dir %t/nan-grouped-matmul | FileCheck %s

// T = 4096.
// RUN: moe-reference emit --case "op=layer d=16 f=16" --seed 29 --tokens 4096 --dir %t/large-t
// RUN: moe-run %t/large-t/case.mlir --entry case --quiet $(cat %t/large-t/moe-run.args)
// RUN: moe-reference compare --dir %t/large-t | FileCheck %s

// T = 4096 with a capacity.
// RUN: moe-reference emit --case "op=dispatch capacity=factor:1.25 drop_order=token_major" --seed 30 --tokens 4096 --dir %t/large-t-capacity
// RUN: moe-run %t/large-t-capacity/case.mlir --entry case --quiet $(cat %t/large-t-capacity/moe-run.args)
// RUN: moe-reference compare --dir %t/large-t-capacity | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
