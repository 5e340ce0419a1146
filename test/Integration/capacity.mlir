// Capacity and dropping (spec section 4): moe.dispatch returns the grouped
// layout, the slot rows and weights and the per-expert counts; whole layers
// return the output with the assignment and drop counts.
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// Dropless dispatch.
// RUN: moe-reference emit --case "op=dispatch" --seed 1 --tokens 0,1,7,33 --dir %t/dropless
// RUN: moe-run %t/dropless/case.mlir --entry case --quiet $(cat %t/dropless/moe-run.args)
// RUN: moe-reference compare --dir %t/dropless | FileCheck %s

// A count capacity with the default order (choice_major).
// RUN: moe-reference emit --case "op=dispatch capacity=count:3" --seed 2 --tokens 0,1,7,33 --dir %t/count-default
// RUN: moe-run %t/count-default/case.mlir --entry case --quiet $(cat %t/count-default/moe-run.args)
// RUN: moe-reference compare --dir %t/count-default | FileCheck %s

// choice_major named explicitly.
// RUN: moe-reference emit --case "op=dispatch capacity=count:3 drop_order=choice_major" --seed 3 --tokens 0,1,7,33 --dir %t/choice-major
// RUN: moe-run %t/choice-major/case.mlir --entry case --quiet $(cat %t/choice-major/moe-run.args)
// RUN: moe-reference compare --dir %t/choice-major | FileCheck %s

// token_major.
// RUN: moe-reference emit --case "op=dispatch capacity=count:3 drop_order=token_major" --seed 4 --tokens 0,1,7,33 --dir %t/token-major
// RUN: moe-run %t/token-major/case.mlir --entry case --quiet $(cat %t/token-major/moe-run.args)
// RUN: moe-reference compare --dir %t/token-major | FileCheck %s

// score: the largest weights keep their slot.
// RUN: moe-reference emit --case "op=dispatch capacity=count:3 drop_order=score" --seed 5 --tokens 0,1,7,33 --dir %t/score
// RUN: moe-run %t/score/case.mlir --entry case --quiet $(cat %t/score/moe-run.args)
// RUN: moe-reference compare --dir %t/score | FileCheck %s

// score order and renormalize_after_drop.
// RUN: moe-reference emit --case "op=dispatch capacity=factor:1.0 drop_order=score renorm_after_drop=1" --seed 6 --tokens 0,1,7,33 --dir %t/score-renorm
// RUN: moe-run %t/score-renorm/case.mlir --entry case --quiet $(cat %t/score-renorm/moe-run.args)
// RUN: moe-reference compare --dir %t/score-renorm | FileCheck %s

// factor, then min, then align.
// RUN: moe-reference emit --case "op=dispatch capacity=factor:0.5 cap_min=2 cap_align=4 drop_order=token_major" --seed 7 --tokens 0,1,7,33 --dir %t/min-align
// RUN: moe-run %t/min-align/case.mlir --entry case --quiet $(cat %t/min-align/moe-run.args)
// RUN: moe-reference compare --dir %t/min-align | FileCheck %s

// Switch: k = 1, factor 1.25, token_major.
// RUN: moe-reference emit --case "op=dispatch k=1 capacity=factor:1.25 drop_order=token_major" --seed 8 --tokens 0,1,7,33 --dir %t/switch
// RUN: moe-run %t/switch/case.mlir --entry case --quiet $(cat %t/switch/moe-run.args)
// RUN: moe-reference compare --dir %t/switch | FileCheck %s

// Threshold routing leaves unused slots; they are not assignments.
// RUN: moe-reference emit --case "op=dispatch select=threshold tau=0.15 k=3 capacity=count:4" --seed 9 --tokens 0,1,7,33 --dir %t/unused-slots
// RUN: moe-run %t/unused-slots/case.mlir --entry case --quiet $(cat %t/unused-slots/moe-run.args)
// RUN: moe-reference compare --dir %t/unused-slots | FileCheck %s

// renormalize_after_drop with choice_major.
// RUN: moe-reference emit --case "op=dispatch capacity=count:2 renorm_after_drop=1 renormalize=1" --seed 10 --tokens 0,1,7,33 --dir %t/renorm-choice
// RUN: moe-run %t/renorm-choice/case.mlir --entry case --quiet $(cat %t/renorm-choice/moe-run.args)
// RUN: moe-reference compare --dir %t/renorm-choice | FileCheck %s

// A layer with a count capacity.
// RUN: moe-reference emit --case "op=layer capacity=count:3" --seed 11 --tokens 0,1,7,33 --dir %t/layer-count
// RUN: moe-run %t/layer-count/case.mlir --entry case --quiet $(cat %t/layer-count/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-count | FileCheck %s

// A Switch-style layer: relu MLP experts, k = 1.
// RUN: moe-reference emit --case "op=layer k=1 experts=mlp act=relu capacity=factor:1.0 drop_order=token_major" --seed 12 --tokens 0,1,7,33 --dir %t/layer-switch
// RUN: moe-run %t/layer-switch/case.mlir --entry case --quiet $(cat %t/layer-switch/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-switch | FileCheck %s

// factor, min, align, score order, renormalize after drop.
// RUN: moe-reference emit --case "op=layer capacity=factor:1.25 cap_min=4 cap_align=8 drop_order=score renorm_after_drop=1" --seed 13 --tokens 0,1,7,33 --dir %t/layer-score-renorm
// RUN: moe-run %t/layer-score-renorm/case.mlir --entry case --quiet $(cat %t/layer-score-renorm/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-score-renorm | FileCheck %s

// Capacity with the weight on the expert input.
// RUN: moe-reference emit --case "op=layer capacity=count:2 renormalize=1 apply=input" --seed 14 --tokens 0,1,7,33 --dir %t/layer-input
// RUN: moe-run %t/layer-input/case.mlir --entry case --quiet $(cat %t/layer-input/moe-run.args)
// RUN: moe-reference compare --dir %t/layer-input | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
