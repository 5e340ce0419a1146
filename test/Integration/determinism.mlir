// The same inputs give bitwise the same outputs, call after call, process
// after process and whatever the CPU kernels' thread count (spec section
// 6: slot-order sums, no atomics; each output element has one writer).
// 1500 tokens of 4 slots span two of the expert kernel's token chunks.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-reference emit --case "op=layer E=16 k=4 renormalize=1 shared=gated capacity=factor:1.0 drop_order=score" --seed 21 --tokens 1,33,300,1500 --dir %t/a
// RUN: cp -r %t/a %t/b
// RUN: cp -r %t/a %t/d
// RUN: moe-run %t/a/case.mlir --entry case --quiet $(cat %t/a/moe-run.args)
// RUN: moe-run %t/b/case.mlir --entry case --quiet --num-threads 1 --case-dir=%t/b/set0 --case-dir=%t/b/set1 --case-dir=%t/b/set2 --case-dir=%t/b/set3
// RUN: moe-run %t/d/case.mlir --entry case --quiet --num-threads 3 --case-dir=%t/d/set2 --case-dir=%t/d/set3
// RUN: moe-reference compare --dir %t/a | FileCheck %s
// RUN: cmp %t/a/set0/out0.npy %t/b/set0/out0.npy
// RUN: cmp %t/a/set1/out0.npy %t/b/set1/out0.npy
// RUN: cmp %t/a/set2/out0.npy %t/b/set2/out0.npy
// RUN: cmp %t/a/set2/out1.npy %t/b/set2/out1.npy
// RUN: cmp %t/a/set2/out2.npy %t/b/set2/out2.npy
// RUN: cmp %t/a/set3/out0.npy %t/b/set3/out0.npy
// RUN: cmp %t/a/set2/out0.npy %t/d/set2/out0.npy
// RUN: cmp %t/a/set3/out0.npy %t/d/set3/out0.npy
// Repeated calls inside one process: --repeat reuses the compiled function.
// RUN: moe-run %t/a/case.mlir --entry case --input %t/a/set2/arg0.npy \
// RUN:   --input %t/a/set2/arg1.npy --input %t/a/set2/arg2.npy \
// RUN:   --input %t/a/set2/arg3.npy --input %t/a/set2/arg4.npy \
// RUN:   --input %t/a/set2/arg5.npy --input %t/a/set2/arg6.npy \
// RUN:   --input %t/a/set2/arg7.npy --input %t/a/set2/arg8.npy \
// RUN:   --output-dir %t/c --quiet --repeat 3
// RUN: cmp %t/a/set2/out0.npy %t/c/out0.npy
// CHECK: all ok
