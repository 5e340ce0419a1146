// moe.grouped_matmul alone (StableHLO ragged_dot mode 1): random group
// sizes summing to at most N, rows past the groups zero.
//
// Each case: moe-reference emits @case, inputs and f64 references for
// several token counts; moe-run compiles and runs it; compare checks.

// RUN: rm -rf %t && mkdir -p %t

// rhs [E, K, M].
// RUN: moe-reference emit --case "op=grouped_matmul" --seed 1 --tokens 0,1,7,33 --dir %t/plain
// RUN: moe-run %t/plain/case.mlir --entry case --quiet $(cat %t/plain/moe-run.args)
// RUN: moe-reference compare --dir %t/plain | FileCheck %s

// rhs [E, M, K] (transpose_rhs).
// RUN: moe-reference emit --case "op=grouped_matmul transpose=1" --seed 2 --tokens 0,1,7,33 --dir %t/transposed
// RUN: moe-run %t/transposed/case.mlir --entry case --quiet $(cat %t/transposed/moe-run.args)
// RUN: moe-reference compare --dir %t/transposed | FileCheck %s

// E = 4, K = 64, M = 16, transposed.
// RUN: moe-reference emit --case "op=grouped_matmul E=4 d=64 f=16 transpose=1" --seed 3 --tokens 0,1,7,33 --dir %t/narrow
// RUN: moe-run %t/narrow/case.mlir --entry case --quiet $(cat %t/narrow/moe-run.args)
// RUN: moe-reference compare --dir %t/narrow | FileCheck %s

// A single group.
// RUN: moe-reference emit --case "op=grouped_matmul E=1" --seed 4 --tokens 0,1,7,33 --dir %t/one-group
// RUN: moe-run %t/one-group/case.mlir --entry case --quiet $(cat %t/one-group/moe-run.args)
// RUN: moe-reference compare --dir %t/one-group | FileCheck %s

// bf16 operands, transposed.
// RUN: moe-reference emit --case "op=grouped_matmul dtype=bf16 transpose=1" --seed 5 --tokens 0,1,7,33 --dir %t/bf16
// RUN: moe-run %t/bf16/case.mlir --entry case --quiet $(cat %t/bf16/moe-run.args)
// RUN: moe-reference compare --dir %t/bf16 | FileCheck %s

// f16 operands.
// RUN: moe-reference emit --case "op=grouped_matmul dtype=f16" --seed 6 --tokens 0,1,7,33 --dir %t/f16
// RUN: moe-run %t/f16/case.mlir --entry case --quiet $(cat %t/f16/moe-run.args)
// RUN: moe-reference compare --dir %t/f16 | FileCheck %s

// CHECK: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
