// Router scores, token-choice selection and combine weights (spec sections
// 1 to 3), checked against the f64 reference model: moe.router + moe.route
// return the logits, the expert ids [T, k] and the weights [T, k].
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// Softmax top-2, raw weights (OLMoE, Qwen1.5).
// RUN: moe-reference emit --case "op=route" --seed 1 --tokens 0,1,7,33 --dir %t/softmax
// RUN: moe-run %t/softmax/case.mlir --entry case --quiet $(cat %t/softmax/moe-run.args)
// RUN: moe-reference compare --dir %t/softmax | FileCheck %s

// Softmax top-2, renormalized (Mixtral, Qwen3).
// RUN: moe-reference emit --case "op=route renormalize=1" --seed 2 --tokens 0,1,7,33 --dir %t/renormalize
// RUN: moe-run %t/renormalize/case.mlir --entry case --quiet $(cat %t/renormalize/moe-run.args)
// RUN: moe-reference compare --dir %t/renormalize | FileCheck %s

// Sigmoid scores, renormalized and scaled.
// RUN: moe-reference emit --case "op=route score=sigmoid renormalize=1 scale=2.5" --seed 3 --tokens 0,1,7,33 --dir %t/sigmoid
// RUN: moe-run %t/sigmoid/case.mlir --entry case --quiet $(cat %t/sigmoid/moe-run.args)
// RUN: moe-reference compare --dir %t/sigmoid | FileCheck %s

// sqrt(softplus(z)) scores, k = 3.
// RUN: moe-reference emit --case "op=route score=sqrt_softplus k=3" --seed 4 --tokens 0,1,7,33 --dir %t/sqrt-softplus
// RUN: moe-run %t/sqrt-softplus/case.mlir --entry case --quiet $(cat %t/sqrt-softplus/moe-run.args)
// RUN: moe-reference compare --dir %t/sqrt-softplus | FileCheck %s

// Logits as scores, softmax over the selected logits (Granite).
// RUN: moe-reference emit --case "op=route score=logits weights=softmax_selected" --seed 5 --tokens 0,1,7,33 --dir %t/granite
// RUN: moe-run %t/granite/case.mlir --entry case --quiet $(cat %t/granite/moe-run.args)
// RUN: moe-reference compare --dir %t/granite | FileCheck %s

// softmax_selected with softmax scores and k = 4.
// RUN: moe-reference emit --case "op=route weights=softmax_selected k=4" --seed 6 --tokens 0,1,7,33 --dir %t/softmax-selected
// RUN: moe-run %t/softmax-selected/case.mlir --entry case --quiet $(cat %t/softmax-selected/moe-run.args)
// RUN: moe-reference compare --dir %t/softmax-selected | FileCheck %s

// grouped_top_k with the group max (DeepSeek-V2).
// RUN: moe-reference emit --case "op=route select=grouped_top_k groups=4 topk_group=2 k=3" --seed 7 --tokens 0,1,7,33 --dir %t/grouped-max
// RUN: moe-run %t/grouped-max/case.mlir --entry case --quiet $(cat %t/grouped-max/moe-run.args)
// RUN: moe-reference compare --dir %t/grouped-max | FileCheck %s

// grouped_top_k, sum of the top two, selection bias, renormalize, scale (DeepSeek-V3).
// RUN: moe-reference emit --case "op=route score=sigmoid select=grouped_top_k E=16 groups=4 topk_group=2 group_score=sum_top2 k=4 selection_bias=1 renormalize=1 scale=2.5" --seed 8 --tokens 0,1,7,33 --dir %t/grouped-sum-top2
// RUN: moe-run %t/grouped-sum-top2/case.mlir --entry case --quiet $(cat %t/grouped-sum-top2/moe-run.args)
// RUN: moe-reference compare --dir %t/grouped-sum-top2 | FileCheck %s

// top_p: slots up to the crossing of p, at most k.
// RUN: moe-reference emit --case "op=route select=top_p top_p=0.6 k=4" --seed 9 --tokens 0,1,7,33 --dir %t/top-p
// RUN: moe-run %t/top-p/case.mlir --entry case --quiet $(cat %t/top-p/moe-run.args)
// RUN: moe-reference compare --dir %t/top-p | FileCheck %s

// top_p renormalized over the kept slots.
// RUN: moe-reference emit --case "op=route select=top_p top_p=0.9 k=3 renormalize=1" --seed 10 --tokens 0,1,7,33 --dir %t/top-p-renorm
// RUN: moe-run %t/top-p-renorm/case.mlir --entry case --quiet $(cat %t/top-p-renorm/moe-run.args)
// RUN: moe-reference compare --dir %t/top-p-renorm | FileCheck %s

// top_p visits experts in biased key order, sums unbiased scores.
// RUN: moe-reference emit --case "op=route select=top_p top_p=0.5 k=4 selection_bias=1" --seed 11 --tokens 0,1,7,33 --dir %t/top-p-bias
// RUN: moe-run %t/top-p-bias/case.mlir --entry case --quiet $(cat %t/top-p-bias/moe-run.args)
// RUN: moe-reference compare --dir %t/top-p-bias | FileCheck %s

// threshold with a tau parameter.
// RUN: moe-reference emit --case "op=route select=threshold tau=0.15 k=3" --seed 12 --tokens 0,1,7,33 --dir %t/threshold
// RUN: moe-run %t/threshold/case.mlir --entry case --quiet $(cat %t/threshold/moe-run.args)
// RUN: moe-reference compare --dir %t/threshold | FileCheck %s

// threshold with tau as a run-time f32 operand, renormalized.
// RUN: moe-reference emit --case "op=route select=threshold tau=0.15 k=3 tau_operand=1 renormalize=1" --seed 13 --tokens 0,1,7,33 --dir %t/threshold-operand
// RUN: moe-run %t/threshold-operand/case.mlir --entry case --quiet $(cat %t/threshold-operand/moe-run.args)
// RUN: moe-reference compare --dir %t/threshold-operand | FileCheck %s

// threshold with a selection bias: an unused slot may precede a kept one.
// RUN: moe-reference emit --case "op=route score=sigmoid select=threshold tau=0.5 k=3 selection_bias=1" --seed 14 --tokens 0,1,7,33 --dir %t/threshold-bias
// RUN: moe-run %t/threshold-bias/case.mlir --entry case --quiet $(cat %t/threshold-bias/moe-run.args)
// RUN: moe-reference compare --dir %t/threshold-bias | FileCheck %s

// A selection bias chooses, the unbiased scores weigh.
// RUN: moe-reference emit --case "op=route score=sigmoid selection_bias=1" --seed 15 --tokens 0,1,7,33 --dir %t/selection-bias
// RUN: moe-run %t/selection-bias/case.mlir --entry case --quiet $(cat %t/selection-bias/moe-run.args)
// RUN: moe-reference compare --dir %t/selection-bias | FileCheck %s

// A router bias on the logits.
// RUN: moe-reference emit --case "op=route router_bias=1" --seed 16 --tokens 0,1,7,33 --dir %t/router-bias
// RUN: moe-run %t/router-bias/case.mlir --entry case --quiet $(cat %t/router-bias/moe-run.args)
// RUN: moe-reference compare --dir %t/router-bias | FileCheck %s

// The weight applied to the expert input (Llama-4).
// RUN: moe-reference emit --case "op=layer apply=input renormalize=1" --seed 17 --tokens 0,1,7,33 --dir %t/layer-apply-input
// RUN: moe-run %t/layer-apply-input/case.mlir --entry case --quiet $(cat %t/layer-apply-input/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-apply-input | FileCheck %s

// A routed scaling factor in the layer.
// RUN: moe-reference emit --case "op=layer score=sigmoid scale=2.0" --seed 18 --tokens 0,1,7,33 --dir %t/layer-scale
// RUN: moe-run %t/layer-scale/case.mlir --entry case --quiet $(cat %t/layer-scale/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-scale | FileCheck %s

// A whole layer with top_p routing.
// RUN: moe-reference emit --case "op=layer select=top_p top_p=0.7 k=3" --seed 19 --tokens 0,1,7,33 --dir %t/layer-top-p
// RUN: moe-run %t/layer-top-p/case.mlir --entry case --quiet $(cat %t/layer-top-p/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-top-p | FileCheck %s

// A whole layer with a run-time tau.
// RUN: moe-reference emit --case "op=layer select=threshold tau=0.15 k=3 tau_operand=1" --seed 20 --tokens 0,1,7,33 --dir %t/layer-threshold
// RUN: moe-run %t/layer-threshold/case.mlir --entry case --quiet $(cat %t/layer-threshold/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-threshold | FileCheck %s

// A DeepSeek-V3-style layer.
// RUN: moe-reference emit --case "op=layer score=sigmoid select=grouped_top_k groups=4 topk_group=2 group_score=sum_top2 selection_bias=1 renormalize=1 scale=2.5 shared=plain" --seed 21 --tokens 0,1,7,33 --dir %t/layer-deepseek-v3
// RUN: moe-run %t/layer-deepseek-v3/case.mlir --entry case --quiet $(cat %t/layer-deepseek-v3/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-deepseek-v3 | FileCheck %s

// Router bias and selection bias in a layer.
// RUN: moe-reference emit --case "op=layer router_bias=1 selection_bias=1" --seed 22 --tokens 0,1,7,33 --dir %t/layer-biases
// RUN: moe-run %t/layer-biases/case.mlir --entry case --quiet $(cat %t/layer-biases/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-biases | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
