// One compiled module runs T = 0, 1, 7 and 4096 tokens (--dynamic-size
// sweeps the size of every dynamic dimension of the generated inputs).
// RUN: rm -rf %t
// RUN: moe-run %moe_src_root/examples/mixtral_layer.mlir --entry mixtral_layer \
// RUN:   --random-inputs --seed 3 --dynamic-size 0,1,7,4096 --output-dir %t \
// RUN:   | FileCheck %s
// CHECK: size0/out0: float32 (0, 256)
// CHECK: size0/out1: int64 (8,) [0, 0, 0, 0, 0, 0, 0, 0]
// CHECK: size1/out0: float32 (1, 256)
// CHECK: size7/out0: float32 (7, 256)
// CHECK: size4096/out0: float32 (4096, 256)
// RUN: ls %t/size4096/out0.npy %t/size0/out2.npy

// Timing prints one last line in the contract's format.
// RUN: moe-run %moe_src_root/examples/mixtral_layer.mlir --entry mixtral_layer \
// RUN:   --random-inputs --dynamic-size 4 --repeat 3 --quiet \
// RUN:   | FileCheck %s --check-prefix=TIME
// TIME: {{^}}median_ms={{[0-9.]+}} min_ms={{[0-9.]+}} max_ms={{[0-9.]+$}}

// RUN: not moe-run %moe_src_root/examples/mixtral_layer.mlir --entry mixtral_layer \
// RUN:   --random-inputs --dynamic-size=-2 2>&1 | FileCheck %s --check-prefix=NEG
// NEG: moe-run: error: --dynamic-size must be >= 0, found -2
// RUN: not moe-run %moe_src_root/examples/mixtral_layer.mlir --entry mixtral_layer \
// RUN:   --random-inputs --pipeline rocm 2>&1 | FileCheck %s --check-prefix=PIPELINE
// PIPELINE: moe-run: error: --pipeline=rocm is not available in this build (supported: cpu, cuda, cuda-emu)
// The example layer is f32, which the CUDA kernel library does not take.
// RUN: not moe-run %moe_src_root/examples/mixtral_layer.mlir --entry mixtral_layer \
// RUN:   --random-inputs --pipeline cuda 2>&1 | FileCheck %s --check-prefix=CUDA
// CUDA: mixtral_layer.mlir:{{[0-9]+}}:{{[0-9]+}}: error: moe-cuda-pipeline supports moe.layer with {{.*}}; found input tensor<?x256xf32>
// CUDA: moe-run: error: compilation of @mixtral_layer failed
