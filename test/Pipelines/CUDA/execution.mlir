// The bf16 layers of Inputs/layers.sh compiled by moe-cuda-pipeline and run
// on the GPU by moe-run, against moe-reference's f64 results: the outputs
// within bf16 tolerance, the per-expert assignments and dropped counts
// exactly, and the co-activated pairs as the reference's selection has
// them. emulated.mlir runs the same cases on the SIMT emulator.
// REQUIRES: cuda-gpu
// UNSUPPORTED: reference-pipeline
// RUN: bash %S/Inputs/layers.sh cuda %t %moe_obj_root/bin | FileCheck %s

// CHECK-COUNT-47: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok; coactivation: {{[0-9]+}} sets, {{[0-9]+}} pairs, {{[0-9]+}} co-activations, as the reference
// CHECK-NOT: compare:
