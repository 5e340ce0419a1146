// Whole layers with each grouped layout of moe-capacity-batching, against
// the f64 reference: the output does not depend on the layout. Each case
// runs on the CPU kernels and on the reference lowering.
//
// RUN: rm -rf %t && mkdir -p %t

// Dropless, groups aligned to 16 rows (padding rows inside the layout).
// RUN: moe-reference emit --case "op=layer k=2 shared=gated" --seed 401 --tokens 0,1,7,33,130 --dir %t/aligned
// RUN: moe-opt %t/aligned/case.mlir --moe-decompose --moe-capacity-batching=tile-rows=16 -o %t/aligned/laid.mlir
// RUN: FileCheck %s --check-prefix=ALIGNED --input-file %t/aligned/laid.mlir
// RUN: moe-run %t/aligned/laid.mlir --entry case --quiet $(cat %t/aligned/moe-run.args)
// RUN: moe-reference compare --dir %t/aligned | FileCheck %s
// RUN: moe-run %t/aligned/laid.mlir --reference --entry case --quiet $(cat %t/aligned/moe-run.args)
// RUN: moe-reference compare --dir %t/aligned | FileCheck %s
// ALIGNED: layout <kind = aligned, block = 16>

// A capacity, each expert a padded batch of C rows (drops counted).
// RUN: moe-reference emit --case "op=layer k=2 capacity=factor:1.0 drop_order=score experts=mlp act=gelu_erf" --seed 402 --tokens 0,1,7,33,130 --dir %t/padded
// RUN: moe-opt %t/padded/case.mlir --moe-decompose --moe-capacity-batching="tile-rows=1 group-cost=64" -o %t/padded/laid.mlir
// RUN: FileCheck %s --check-prefix=PADDED --input-file %t/padded/laid.mlir
// RUN: moe-run %t/padded/laid.mlir --entry case --quiet $(cat %t/padded/moe-run.args)
// RUN: moe-reference compare --dir %t/padded | FileCheck %s
// RUN: moe-run %t/padded/laid.mlir --reference --entry case --quiet $(cat %t/padded/moe-run.args)
// RUN: moe-reference compare --dir %t/padded | FileCheck %s
// PADDED: layout <kind = padded>

// bf16 with aligned groups of 16 (the AMX tile height).
// RUN: moe-reference emit --case "op=layer dtype=bf16 k=4 E=16 renormalize=1" --seed 403 --tokens 1,33,130 --dir %t/bf16
// RUN: moe-opt %t/bf16/case.mlir --moe-decompose --moe-capacity-batching=tile-rows=16 -o %t/bf16/laid.mlir
// RUN: moe-run %t/bf16/laid.mlir --entry case --quiet $(cat %t/bf16/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16 | FileCheck %s

// CHECK: all ok
