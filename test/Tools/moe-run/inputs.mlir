// moe-run reads .npy inputs, checks them against the signature, and writes
// .npy outputs. The inputs are made by moe-run itself from @make.
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-run %s --entry make --output-dir %t/in | FileCheck %s --check-prefix=MAKE
// MAKE: out0: float32 (3, 4) mean 0.5 absmax 1.5
// MAKE: out1: float32 (4,) mean 1 absmax 2.5
// MAKE: out2: int64 (2,) [7, -1]
// MAKE: out3: float32 () mean 0.25 absmax 0.25

// RUN: moe-run %s --entry scale --input %t/in/out0.npy --input %t/in/out1.npy \
// RUN:   --input %t/in/out3.npy --output-dir %t/out | FileCheck %s --check-prefix=SCALE
// SCALE: out0: float32 (3, 4) mean 0.125 absmax 0.375
// RUN: moe-run %s --entry make --output-dir %t/again
// RUN: cmp %t/in/out0.npy %t/again/out0.npy

// RUN: not moe-run %s --entry scale --input %t/in/out0.npy 2>&1 \
// RUN:   | FileCheck %s --check-prefix=COUNT
// COUNT: moe-run: error: @scale takes 3 arguments, got 1 inputs

// RUN: not moe-run %s --entry scale --input %t/in/out2.npy --input %t/in/out1.npy \
// RUN:   --input %t/in/out3.npy 2>&1 | FileCheck %s --check-prefix=DTYPE
// DTYPE: moe-run: error: input 0 ({{.*}}out2.npy) for argument 0 of type tensor<?x4xf32>: dtype is int64, expected float32

// RUN: not moe-run %s --entry scale --input %t/in/out1.npy --input %t/in/out1.npy \
// RUN:   --input %t/in/out3.npy 2>&1 | FileCheck %s --check-prefix=RANK
// RANK: moe-run: error: input 0 ({{.*}}out1.npy) for argument 0 of type tensor<?x4xf32>: shape is (4,), expected (?, 4)

// RUN: not moe-run %s --entry scale --input %t/in/out0.npy --input %t/in/out1.npy \
// RUN:   --input %t/in/out1.npy 2>&1 | FileCheck %s --check-prefix=SCALAR
// SCALAR: moe-run: error: input 2 ({{.*}}out1.npy) for argument 2 of type f32: shape is (4,), expected a 0-d array ()

// RUN: not moe-run %s --entry nope --input %t/in/out0.npy 2>&1 \
// RUN:   | FileCheck %s --check-prefix=ENTRY
// ENTRY: moe-run: error: no function @nope with a body in the module

// RUN: not moe-run %s --entry scale --input %t/missing.npy 2>&1 \
// RUN:   | FileCheck %s --check-prefix=MISSING
// MISSING: moe-run: error: {{.*}}missing.npy: cannot read

// RUN: echo "not an array" > %t/bad.npy
// RUN: not moe-run %s --entry scale --input %t/bad.npy 2>&1 \
// RUN:   | FileCheck %s --check-prefix=BAD
// BAD: moe-run: error: {{.*}}bad.npy: not a .npy file

func.func @make() -> (tensor<3x4xf32>, tensor<4xf32>, tensor<2xi64>, tensor<f32>) {
  %x = arith.constant dense<[[0.0, 1.0, 0.5, -0.5], [1.5, 0.5, 0.0, 1.0],
                             [0.5, 0.5, 0.5, 0.5]]> : tensor<3x4xf32>
  %v = arith.constant dense<[2.5, 0.0, -0.5, 2.0]> : tensor<4xf32>
  %i = arith.constant dense<[7, -1]> : tensor<2xi64>
  %s = arith.constant dense<0.25> : tensor<f32>
  return %x, %v, %i, %s : tensor<3x4xf32>, tensor<4xf32>, tensor<2xi64>, tensor<f32>
}

func.func @scale(%x: tensor<?x4xf32>, %v: tensor<4xf32>, %s: f32) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x4xf32>
  %init = tensor.empty(%n) : tensor<?x4xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i, j)>],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<?x4xf32>) outs(%init : tensor<?x4xf32>) {
  ^bb0(%a: f32, %b: f32):
    %m = arith.mulf %a, %s : f32
    linalg.yield %m : f32
  } -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}
