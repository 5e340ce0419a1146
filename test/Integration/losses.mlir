// Losses and statistics (spec section 7): moe.aux_loss with its three
// conventions, moe.z_loss and moe.expert_load. T = 0 gives 0.
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// Softmax top-2.
// RUN: moe-reference emit --case "op=losses" --seed 1 --tokens 0,1,7,33 --dir %t/top2
// RUN: moe-run %t/top2/case.mlir --entry case --quiet $(cat %t/top2/moe-run.args)
// RUN: moe-reference compare --dir %t/top2 | FileCheck %s

// Top-1 (Switch).
// RUN: moe-reference emit --case "op=losses k=1" --seed 2 --tokens 0,1,7,33 --dir %t/top1
// RUN: moe-run %t/top1/case.mlir --entry case --quiet $(cat %t/top1/moe-run.args)
// RUN: moe-reference compare --dir %t/top1 | FileCheck %s

// Sigmoid scores, k = 4: P still uses softmax(z).
// RUN: moe-reference emit --case "op=losses score=sigmoid k=4" --seed 3 --tokens 0,1,7,33 --dir %t/sigmoid
// RUN: moe-run %t/sigmoid/case.mlir --entry case --quiet $(cat %t/sigmoid/moe-run.args)
// RUN: moe-reference compare --dir %t/sigmoid | FileCheck %s

// Unused slots (-1) are not counted.
// RUN: moe-reference emit --case "op=losses select=threshold tau=0.2 k=4" --seed 4 --tokens 0,1,7,33 --dir %t/threshold
// RUN: moe-run %t/threshold/case.mlir --entry case --quiet $(cat %t/threshold/moe-run.args)
// RUN: moe-reference compare --dir %t/threshold | FileCheck %s

// Grouped selection.
// RUN: moe-reference emit --case "op=losses select=grouped_top_k groups=2 topk_group=1" --seed 5 --tokens 0,1,7,33 --dir %t/grouped
// RUN: moe-run %t/grouped/case.mlir --entry case --quiet $(cat %t/grouped/moe-run.args)
// RUN: moe-reference compare --dir %t/grouped | FileCheck %s

// E = 16, k = 6.
// RUN: moe-reference emit --case "op=losses E=16 k=6" --seed 6 --tokens 0,1,7,33 --dir %t/wide
// RUN: moe-run %t/wide/case.mlir --entry case --quiet $(cat %t/wide/moe-run.args)
// RUN: moe-reference compare --dir %t/wide | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
