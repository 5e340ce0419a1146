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
// The statistics snapshot and history of a CUDA layer that drops, with
// its pairs: the identities and metrics test/Tools/moe-run/stats-json.test
// checks on the CPU.
// RUN: rm -rf %t.stats
// RUN: moe-reference emit --case "op=layer dtype=bf16 E=16 k=4 renormalize=1 capacity=factor:0.75 drop_order=score" --seed 5 --tokens 0,1,7,33 --dir %t.stats > /dev/null
// RUN: moe-run %t.stats/case.mlir --entry case --pipeline cuda-emu --quiet --stats-coactivation \
// RUN:   --stats-json %t.stats/stats.json --stats-history %t.stats/history.jsonl $(cat %t.stats/moe-run.args) > /dev/null
// RUN: %python %S/../../Tools/moe-run/Inputs/check_stats.py %t.stats/stats.json %t.stats/history.jsonl 4 41 4 | FileCheck %s --check-prefix=STATS
// STATS: OK: 16 experts, {{[0-9]+}} pairs
// Decoding's down projection on gemv_pairs (two columns a warp, the
// default for its rows of 48 bf16) and on gemv_experts (one): the second
// column of a pair is summed in the same order as a column alone, so the
// outputs are bitwise the same, and the reference's.
// RUN: rm -rf %t.pairs
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1 E=16 k=4 f=48" --seed 9 --tokens 1,7 --dir %t.pairs > /dev/null
// RUN: moe-run %t.pairs/case.mlir --entry case --pipeline cuda-emu --quiet $(cat %t.pairs/moe-run.args) > /dev/null
// RUN: moe-reference compare --dir %t.pairs | FileCheck %s --check-prefix=PAIRS
// RUN: cp %t.pairs/set0/out0.npy %t.pairs/set0.npy && cp %t.pairs/set1/out0.npy %t.pairs/set1.npy
// RUN: env MOE_GPU_GEMV_PAIRS=0 moe-run %t.pairs/case.mlir --entry case --pipeline cuda-emu --quiet $(cat %t.pairs/moe-run.args) > /dev/null
// RUN: cmp %t.pairs/set0/out0.npy %t.pairs/set0.npy
// RUN: cmp %t.pairs/set1/out0.npy %t.pairs/set1.npy
// PAIRS: compare: 2 sets, 6 outputs, all ok
// The kernels compiled for sm_90 begin by waiting for the kernel before
// them (moe-gpu-dependent-launch), which the emulator, running kernels in
// order, drops: the same outputs, bitwise, as sm_80's, launched with
// MOE_GPU_DEPENDENT_LAUNCH=1 or not.
// RUN: env MOE_GPU_DEPENDENT_LAUNCH=1 moe-run %t.pairs/case.mlir --entry case --pipeline cuda-emu --cuda-chip sm_90 --quiet $(cat %t.pairs/moe-run.args) > /dev/null
// RUN: moe-reference compare --dir %t.pairs | FileCheck %s --check-prefix=PAIRS
// RUN: cmp %t.pairs/set0/out0.npy %t.pairs/set0.npy
// RUN: cmp %t.pairs/set1/out0.npy %t.pairs/set1.npy

// CHECK-COUNT-47: compare: {{[0-9]+}} sets, {{[0-9]+}} outputs, all ok; coactivation: {{[0-9]+}} sets, {{[0-9]+}} pairs, {{[0-9]+}} co-activations, as the reference
// CHECK-NOT: compare:
