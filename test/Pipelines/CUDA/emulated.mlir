// The bf16 layers of Inputs/layers.sh compiled by moe-cuda-pipeline with
// emulate=1 and run by moe-run --pipeline cuda-emu: the kernels the GPU runs
// (the same passes, up to the NVVM dialect) execute on the host's SIMT
// emulator, against moe-reference's f64 results: every routing, capacity,
// expert kind and knob of execution.mlir, and the co-activation counts of
// each, without a GPU.
// UNSUPPORTED: reference-pipeline
// RUN: bash %S/Inputs/layers.sh cuda-emu %t %moe_obj_root/bin | FileCheck %s
// The same with the sm_90a kernels (wgmma) for the expert GEMMs.
// RUN: env MOE_GPU_WGMMA=1 bash %S/Inputs/layers.sh cuda-emu %t.wgmma %moe_obj_root/bin | FileCheck %s

// CHECK-COUNT-38: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok; coactivation: {{[0-9]+}} sets, {{[0-9]+}} pairs, {{[0-9]+}} co-activations, as the reference
// CHECK-NOT: compare:
