// The bf16 layers of Inputs/layers.sh compiled by moe-cuda-pipeline with
// emulate=1 and run by moe-run --pipeline cuda-emu: the kernels the GPU runs
// (the same passes, up to the NVVM dialect) execute on the host's SIMT
// emulator, against moe-reference's f64 results: every routing, capacity,
// expert kind and knob of execution.mlir, without a GPU.
// UNSUPPORTED: reference-pipeline
// RUN: bash %S/Inputs/layers.sh cuda-emu %t %moe_obj_root/bin | FileCheck %s

// CHECK-COUNT-34: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok
// CHECK-NOT: compare:
