// Run-time knobs (moe-expose-knobs): threshold routing's tau and the
// capacity factor are read on every call, so `moe-run --knob` (or
// moe_model_set_knob) changes what a compiled layer computes. Each case:
// the f64 reference is made for one value, the module is compiled with
// another as its default, and the knob sets the reference's value.

// RUN: rm -rf %t && mkdir -p %t

// tau: the reference uses 0.3; the module defaults to 0.05.
// RUN: moe-reference emit --case "op=layer select=threshold tau=0.3 k=3 renormalize=1" --seed 31 --tokens 0,1,7,33 --dir %t/tau
// RUN: sed -i -E 's/tau = 0.3([,>])/tau = 0.05\1/' %t/tau/case.mlir
// RUN: grep -c -E "tau = 0.05[,>]" %t/tau/case.mlir | FileCheck %s --check-prefix=EDITED
// RUN: moe-run %t/tau/case.mlir --entry case --quiet --knob case:tau=0.3 $(cat %t/tau/moe-run.args)
// RUN: moe-reference compare --dir %t/tau | FileCheck %s
// Without the knob the module computes its default, and the check fails.
// RUN: moe-run %t/tau/case.mlir --entry case --quiet $(cat %t/tau/moe-run.args)
// RUN: not moe-reference compare --dir %t/tau

// capacity factor: the reference uses 0.75 (drops); the module defaults to 4.
// RUN: moe-reference emit --case "op=layer k=2 capacity=factor:0.75 drop_order=token_major" --seed 32 --tokens 0,1,7,33 --dir %t/factor
// RUN: sed -i -E 's/factor = 0.75([,>])/factor = 4.0\1/' %t/factor/case.mlir
// RUN: grep -c -E "factor = 4.0[,>]" %t/factor/case.mlir | FileCheck %s --check-prefix=EDITED
// RUN: moe-run %t/factor/case.mlir --entry case --quiet --knob case:capacity_factor=0.75 $(cat %t/factor/moe-run.args)
// RUN: moe-reference compare --dir %t/factor | FileCheck %s

// Both at once, with score order and renormalization after drops.
// RUN: moe-reference emit --case "op=layer select=threshold tau=0.2 k=3 capacity=factor:0.5 drop_order=score renorm_after_drop=1" --seed 33 --tokens 0,1,7,33 --dir %t/both
// RUN: sed -i -E 's/tau = 0.2([,>])/tau = 0.01\1/; s/factor = 0.5([,>])/factor = 2.0\1/' %t/both/case.mlir
// RUN: grep -c -E "tau = 0.01[,>]" %t/both/case.mlir | FileCheck %s --check-prefix=EDITED
// RUN: grep -c -E "factor = 2.0[,>]" %t/both/case.mlir | FileCheck %s --check-prefix=EDITED
// RUN: moe-run %t/both/case.mlir --entry case --quiet --knob case:tau=0.2 --knob case:capacity_factor=0.5 $(cat %t/both/moe-run.args)
// RUN: moe-reference compare --dir %t/both | FileCheck %s

// Bad settings are reported with what exists.
// RUN: not moe-run %t/both/case.mlir --entry case --knob case:top_p=0.5 $(cat %t/both/moe-run.args) 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: not moe-run %t/both/case.mlir --entry case --knob case:capacity_factor=0 $(cat %t/both/moe-run.args) 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not moe-run %t/both/case.mlir --entry case --knob tau $(cat %t/both/moe-run.args) 2>&1 | FileCheck %s --check-prefix=SYNTAX
// RUN: not moe-run %t/both/case.mlir --entry case --no-knobs --knob case:tau=0.2 $(cat %t/both/moe-run.args) 2>&1 | FileCheck %s --check-prefix=NOKNOBS

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
// EDITED: 1
// UNKNOWN: error: --knob case:top_p=0.5: the module has no knob top_p of layer case (knobs: case:tau, case:capacity_factor)
// RANGE: error: knob capacity_factor of layer case: expected a finite value > 0, found 0
// SYNTAX: error: --knob expects LAYER:NAME=VALUE (e.g. moe_layer_0:tau=0.2), found 'tau'
// NOKNOBS: error: --knob case:tau=0.2: the module has no knob tau of layer case (knobs: none)
