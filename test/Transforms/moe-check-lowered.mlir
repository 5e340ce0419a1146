// RUN: moe-opt %s --moe-check-lowered --split-input-file --verify-diagnostics
// RUN: moe-opt %s --split-input-file \
// RUN:   --moe-check-lowered="dialects=builtin,llvm,func,arith stage=test" \
// RUN:   | FileCheck %s --check-prefix=ALLOWED

// ALLOWED-LABEL: func @leftover
func.func @leftover(%a: i32) -> i32 {
  // expected-error@+1 {{'arith.addi' is left after lowering: expected only ops of the dialects builtin, llvm}}
  %b = arith.addi %a, %a : i32
  return %b : i32
}

// -----

// ALLOWED-LABEL: llvm.func @lowered
llvm.func @lowered(%a: i32) -> i32 {
  %b = llvm.add %a, %a : i32
  llvm.return %b : i32
}
