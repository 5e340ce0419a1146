// moe-run --pipeline cuda on a stand-in driver that logs its calls
// (test/Runtime/CUDA/Inputs/fake_libcuda.c): the JIT loads the four PTX
// modules and a layer call launches the library's kernels in order on one
// stream, on 7 tokens, k = 2, E = 8, d = 32, f = 48. The kernels do not run, so
// the outputs are not checked here (see execution.mlir).
// RUN: rm -rf %t && mkdir -p %t/fake
// RUN: %cc -shared -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-format-zero-length -Werror \
// RUN:   %moe_src_root/test/Runtime/CUDA/Inputs/fake_libcuda.c -o %t/fake/libcuda.so.1
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1" --seed 1 --tokens 7 --dir %t/layer
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/layer/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/layer/moe-run.args) | FileCheck %s
// A CUDA call that fails (the first launch, as after a fault) is moe-run's
// error, naming the call and the kernel, and not a crash.
// RUN: env LD_LIBRARY_PATH=%t/fake FAKE_CUDA_FAIL=cuLaunchKernel:700:1 not moe-run %t/layer/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/layer/moe-run.args) 2>&1 | FileCheck %s --check-prefix=FAILED
// FAILED: moe-run: error: cuLaunchKernel(router_logits, grid 2x2x1, block 128x1x1) failed: an illegal memory access was encountered (CUDA_ERROR_ILLEGAL_ADDRESS)
// DeepSeek-V3-style routing (sigmoid, grouped_top_k, selection bias, scale)
// with 16 experts: the bias goes to the device with the weights (16 f32).
// RUN: moe-reference emit --case "op=layer dtype=bf16 score=sigmoid select=grouped_top_k groups=4 topk_group=2 group_score=sum_top2 selection_bias=1 renormalize=1 scale=2.5 E=16 k=4" \
// RUN:   --seed 1 --tokens 7 --dir %t/deepseek
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/deepseek/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/deepseek/moe-run.args) | FileCheck %s --check-prefix=DEEPSEEK
// DEEPSEEK:      cuda: cuMemcpyAsync(64)
// DEEPSEEK:      cuda: cuLaunchKernel(router_topk, grid 2x1x1, block 128x1x1, smem 768, a stream)
// DEEPSEEK:      cuda: cuLaunchKernel(combine, grid 1x7x1, block 256x1x1, smem 0, a stream)
// DEEPSEEK:      cuda: cuStreamSynchronize()
// A capacity (score order): capacity_drop on the 8 groups between a
// dropless dispatch and the dispatch of the kept slots.
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1 capacity=count:1 drop_order=score" \
// RUN:   --seed 1 --tokens 7 --dir %t/capacity
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/capacity/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/capacity/moe-run.args) | FileCheck %s --check-prefix=CAPACITY
// CAPACITY:      cuda: cuLaunchKernel(build_permutation, grid 1x1x1, block 256x1x1, smem 1280, a stream)
// CAPACITY:      cuda: cuLaunchKernel(capacity_drop, grid 8x1x1, block 256x1x1, smem 0, a stream)
// CAPACITY-NOT:  cuLaunchKernel(renormalize_kept
// CAPACITY-NOT:  cuLaunchKernel(count_experts
// CAPACITY:      cuda: cuLaunchKernel(build_permutation, grid 1x1x1, block 256x1x1, smem 1280, a stream)
// CAPACITY:      cuda: cuLaunchKernel(combine, grid 1x7x1, block 256x1x1, smem 0, a stream)
// CAPACITY:      cuda: cuStreamSynchronize()
// A Qwen2-MoE-style gated shared expert (fs = 64): after the combine, its
// offsets, its gate, the experts' GEMMs on one group of the 7 tokens
// (ceil(7 / 64) + 1 tiles; 7 rows: gemv_experts, 8 columns a block, and
// the down projection's short rows on gemv_pairs, 16) and the addition, on
// the layer's stream.
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1 shared=gated" \
// RUN:   --seed 1 --tokens 7 --dir %t/shared
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/shared/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/shared/moe-run.args) | FileCheck %s --check-prefix=SHARED
// SHARED:      cuda: cuLaunchKernel(combine, grid 1x7x1, block 256x1x1, smem 0, a stream)
// SHARED:      cuda: cuLaunchKernel(one_group, grid 1x1x1, block 1x1x1, smem 0, a stream)
// SHARED:      cuda: cuLaunchKernel(shared_gate, grid 1x1x1, block 256x1x1, smem 0, a stream)
// SHARED:      cuda: cuLaunchKernel(build_tile_map, grid 1x1x1, block 256x1x1, smem 0, a stream)
// SHARED:      cuda: cuLaunchKernel(gemv_experts, grid 8x2x1, block 256x1x1, smem 0, a stream)
// SHARED:      cuda: cuLaunchKernel(gemv_pairs, grid 2x2x1, block 256x1x1, smem 0, a stream)
// SHARED:      cuda: cuLaunchKernel(add_shared, grid 1x7x1, block 256x1x1, smem 0, a stream)
// SHARED-NOT:  cuStreamSynchronize
// SHARED:      cuda: cuMemcpyAsync(896)
// SHARED:      cuda: cuStreamSynchronize()
// Slots, rows and tokens are 32-bit on the device: expert choice over 512
// experts (a slot per expert) takes at most (2^31 - 1) / 512 = 4194303
// tokens a call, and more are refused before the call, naming the input.
// RUN: moe-reference emit --case "op=layer dtype=bf16 select=expert_choice k=2 E=512 d=8 f=8" \
// RUN:   --seed 1 --tokens 7 --dir %t/ec512
// RUN: env LD_LIBRARY_PATH=%t/fake not moe-run %t/ec512/case.mlir --entry case \
// RUN:   --pipeline cuda --random-inputs --dynamic-size 4194304 2>&1 \
// RUN:   | FileCheck %s --check-prefix=TOKENS
// TOKENS-NOT: cuLaunchKernel
// TOKENS: moe-run: error: input 0 (generated tensor<?x8xbf16>) has 4194304 tokens, expected at most 4194303: the most one call of the CUDA kernel library takes for this layer (docs/cuda.md)
// Grouped top-k over 128 groups of 2 of 256 experts: compiled and launched.
// RUN: moe-reference emit --case "op=layer dtype=bf16 score=sigmoid select=grouped_top_k groups=128 topk_group=8 group_score=sum_top2 renormalize=1 E=256 k=8" \
// RUN:   --seed 1 --tokens 7 --dir %t/groups
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/groups/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/groups/moe-run.args) | FileCheck %s --check-prefix=GROUPS
// GROUPS: cuda: cuLaunchKernel(router_topk, grid 2x1x1, block 128x1x1, smem 12288, a stream)
// GROUPS: cuda: cuLaunchKernel(gather_rows, grid 56x1x1, block 128x1x1, smem 0, a stream)

// Decode (one token, k = 8 of 64 experts): the expert GEMMs on
// ceil(8 / 64) + min(64, 8) = 9 tiles, not one per expert, by
// gemv_experts (8 rows: one warp per output column, 8 a block) and, for the
// down projection's short rows (f = 48), gemv_pairs (two columns a warp).
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1 E=64 k=8" \
// RUN:   --seed 1 --tokens 1 --dir %t/decode
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/decode/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/decode/moe-run.args) | FileCheck %s --check-prefix=DECODE
// DECODE-NOT: cuLaunchKernel(gate_up_swiglu_mma
// DECODE: cuda: cuLaunchKernel(gemv_experts, grid 6x9x1, block 256x1x1, smem 0, a stream)
// DECODE: cuda: cuLaunchKernel(gemv_pairs, grid 2x9x1, block 256x1x1, smem 0, a stream)
// DECODE-NOT: cuLaunchKernel(grouped_gemm_mma

// Prefill-sized (40 tokens, 80 rows > max(16, 2 E)): the tensor-core
// kernels on ceil(80 / 64) + min(8, 80) = 10 tiles: those of wgmma on the
// stand-in device (compute capability 9.0), those of mma.sync with
// MOE_GPU_WGMMA=0.
// RUN: moe-reference emit --case "op=layer dtype=bf16 renormalize=1" \
// RUN:   --seed 1 --tokens 40 --dir %t/prefill
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/prefill/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/prefill/moe-run.args) | FileCheck %s --check-prefix=PREFILL
// RUN: env LD_LIBRARY_PATH=%t/fake MOE_GPU_WGMMA=0 moe-run %t/prefill/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/prefill/moe-run.args) | FileCheck %s --check-prefix=PREFILL-MMA
// PREFILL-NOT: cuLaunchKernel(gemv_experts
// PREFILL-NOT: cuLaunchKernel(gate_up_swiglu_mma
// PREFILL: cuda: cuLaunchKernel(grouped_gemm_wgmma, grid 1x10x1, block 128x1x1, smem 99328, a stream)
// PREFILL: cuda: cuLaunchKernel(grouped_gemm_wgmma, grid 1x10x1, block 128x1x1, smem 99328, a stream)
// PREFILL-NOT: cuLaunchKernel(gemv_experts
// PREFILL-NOT: cuLaunchKernel(grouped_gemm_mma
// PREFILL-MMA-NOT: cuLaunchKernel(gemv_experts
// PREFILL-MMA: cuda: cuLaunchKernel(gate_up_swiglu_mma, grid 1x10x1, block 128x1x1, smem 0, a stream)
// PREFILL-MMA: cuda: cuLaunchKernel(grouped_gemm_mma, grid 1x10x1, block 128x1x1, smem 0, a stream)
// PREFILL-MMA-NOT: cuLaunchKernel(gemv_experts
// PREFILL-MMA-NOT: cuLaunchKernel(grouped_gemm_wgmma

// Compiled for sm_90 (--cuda-chip), every kernel waits for the kernel
// before it: with MOE_GPU_DEPENDENT_LAUNCH=1 each launch may overlap the one
// before it (programmatic stream serialization). Without --cuda-chip the
// portable kernels are PTX for sm_80, which is not marked, and only the
// sm_90a kernels (prefill) overlap.
// RUN: env LD_LIBRARY_PATH=%t/fake MOE_GPU_DEPENDENT_LAUNCH=1 moe-run %t/decode/case.mlir --entry case \
// RUN:   --pipeline cuda --cuda-chip sm_90 --quiet $(cat %t/decode/moe-run.args) | FileCheck %s --check-prefix=DEPENDENT
// RUN: env LD_LIBRARY_PATH=%t/fake MOE_GPU_DEPENDENT_LAUNCH=1 moe-run %t/decode/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/decode/moe-run.args) | FileCheck %s --check-prefix=INDEPENDENT
// RUN: env LD_LIBRARY_PATH=%t/fake MOE_GPU_DEPENDENT_LAUNCH=1 moe-run %t/prefill/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/prefill/moe-run.args) | FileCheck %s --check-prefix=DEPENDENT-SM90A
// DEPENDENT-COUNT-5: cuda: cuModuleGetGlobal_v2(moe_dependent_launch: found)
// DEPENDENT-NOT:     cuLaunchKernel(
// DEPENDENT:         cuda: cuLaunchKernelEx(router_logits, grid 1x16x1, block 128x1x1, programmatic stream serialization 1)
// DEPENDENT-NOT:     cuLaunchKernel(
// DEPENDENT:         cuda: cuLaunchKernelEx(gemv_experts, grid 6x9x1, block 256x1x1, programmatic stream serialization 1)
// DEPENDENT-NOT:     cuLaunchKernel(
// DEPENDENT:         cuda: cuLaunchKernelEx(gemv_pairs, grid 2x9x1, block 256x1x1, programmatic stream serialization 1)
// DEPENDENT-NOT:     cuLaunchKernel(
// DEPENDENT:         cuda: cuLaunchKernelEx(combine, grid 1x1x1, block 256x1x1, programmatic stream serialization 1)
// DEPENDENT-NOT:     cuLaunchKernel(
// INDEPENDENT-NOT:   programmatic
// DEPENDENT-SM90A:   cuda: cuLaunchKernel(gather_rows,
// DEPENDENT-SM90A:   cuda: cuLaunchKernelEx(grouped_gemm_wgmma, grid 1x10x1, block 128x1x1, programmatic stream serialization 1)
// DEPENDENT-SM90A:   cuda: cuLaunchKernel(combine,

// A fused gate_up [8, 96, 32] (GraniteMoE) is the gate and the up operand:
// copied to the device once.
// RUN: moe-reference emit --case "op=layer dtype=bf16 experts=gated_fused score=logits weights=softmax_selected" \
// RUN:   --seed 1 --tokens 7 --dir %t/fused
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/fused/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/fused/moe-run.args) | FileCheck %s --check-prefix=FUSED
// FUSED:      cuda: cuStreamCreate(flags 1)
// FUSED-NEXT: cuda: cuMemPoolCreate(type 1, handles 0, location 1 device 0, max 0)
// FUSED-NEXT: cuda: cuMemPoolSetAttribute(the pool, attribute 4, 18446744073709551615)
// FUSED-NEXT: cuda: cuMemAllocFromPoolAsync(49152)
// FUSED-NEXT: cuda: cuMemcpyAsync(49152)
// FUSED-NEXT: cuda: cuMemAllocFromPoolAsync(24576)
// FUSED-NEXT: cuda: cuMemcpyAsync(24576)
// FUSED-NEXT: cuda: cuMemAllocFromPoolAsync(512)
// FUSED-NEXT: cuda: cuMemcpyAsync(512)
// FUSED-NEXT: cuda: cuStreamSynchronize()
// FUSED:      cuda: cuLaunchKernel(gemv_experts, grid 6x9x1, block 256x1x1, smem 0, a stream)

// MixLoRA (lora_gated, r = 8): the library's LoRA layer, weights as
// arguments copied for the call.
// RUN: moe-reference emit --case "op=layer dtype=bf16 experts=lora_gated r=8 renormalize=1" \
// RUN:   --seed 1 --tokens 7 --dir %t/mixlora
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/mixlora/case.mlir --entry case \
// RUN:   --pipeline cuda --quiet $(cat %t/mixlora/moe-run.args) | FileCheck %s --check-prefix=MIXLORA
// MIXLORA-COUNT-9: cuda: cuMemcpyAsync(
// MIXLORA:         cuda: cuLaunchKernel(gather_rows, grid 14x1x1, block 128x1x1, smem 0, a stream)
// MIXLORA:         cuda: cuLaunchKernel(kept_as_one_group, grid 1x1x1, block 1x1x1, smem 0, a stream)
// MIXLORA:         cuda: cuLaunchKernel(lora_gated, grid 3x1x1, block 256x1x1, smem 0, a stream)
// MIXLORA:         cuda: cuLaunchKernel(lora_sum, grid 2x1x1, block 256x1x1, smem 0, a stream)
// MIXLORA-NEXT:    cuda: cuModuleGetFunction(combine)
// MIXLORA-NEXT:    cuda: cuLaunchKernel(combine, grid 1x7x1, block 256x1x1, smem 0, a stream)
// MIXLORA-NOT:     cuLaunchKernel
// MIXLORA:         cuda: cuMemcpyAsync(896)
// MIXLORA:         cuda: cuStreamSynchronize()
// Run-time knobs: threshold routing's tau and the capacity factor are read
// on every call and passed to the library (the value reaching the kernels
// is checked on a GPU by execution.mlir); unknown knobs are reported.
// RUN: moe-reference emit --case "op=layer dtype=bf16 select=threshold tau=0.3 k=3 renormalize=1 capacity=factor:1.0" \
// RUN:   --seed 1 --tokens 7 --dir %t/knobs
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/knobs/case.mlir --entry case --pipeline cuda --quiet \
// RUN:   --knob case:tau=0.2 --knob case:capacity_factor=1.5 $(cat %t/knobs/moe-run.args) \
// RUN:   | FileCheck %s --check-prefix=KNOBS
// RUN: env LD_LIBRARY_PATH=%t/fake not moe-run %t/knobs/case.mlir --entry case --pipeline cuda \
// RUN:   --knob case:top_p=0.5 $(cat %t/knobs/moe-run.args) 2>&1 | FileCheck %s --check-prefix=UNKNOWN
// RUN: env LD_LIBRARY_PATH=%t/fake not moe-run %t/knobs/case.mlir --entry case --pipeline cuda \
// RUN:   --no-knobs --knob case:tau=0.2 $(cat %t/knobs/moe-run.args) 2>&1 | FileCheck %s --check-prefix=NOKNOBS
// KNOBS:   cuda: cuLaunchKernel(router_topk, grid 2x1x1, block 128x1x1, smem 384, a stream)
// KNOBS:   cuda: cuLaunchKernel(capacity_drop, grid 8x1x1, block 256x1x1, smem 0, a stream)
// KNOBS:   cuda: cuStreamSynchronize()
// UNKNOWN: error: --knob case:top_p=0.5: the module has no knob top_p of layer case (knobs: case:tau, case:capacity_factor)
// NOKNOBS: error: --knob case:tau=0.2: the module has no knob tau of layer case (knobs: none)
// RUN: not moe-run %t/layer/case.mlir --entry case --pipeline cuda --reference \
// RUN:   $(cat %t/layer/moe-run.args) 2>&1 | FileCheck %s --check-prefix=REFERENCE
// Co-activation counts: the selection is copied for them (one thread a
// token) and comes back with the other results, 7 tokens x 2 slots x 4
// bytes, before the one synchronization of the layer.
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/layer/case.mlir --entry case --pipeline cuda --quiet \
// RUN:   --stats-coactivation $(cat %t/layer/moe-run.args) 2>/dev/null | FileCheck %s --check-prefix=COACT
// COACT:      cuda: cuLaunchKernel(record_selection, grid 1x1x1, block 256x1x1, smem 0, a stream)
// COACT:      cuda: cuMemcpyAsync(896)
// COACT-NEXT: cuda: cuMemcpyAsync(36)
// COACT-NEXT: cuda: cuMemcpyAsync(56)
// COACT-NOT:  cuMemcpy
// COACT:      cuda: cuStreamSynchronize()

// CHECK-COUNT-4: cuda: cuModuleLoadDataEx(.target sm_80, O3, log 8192 bytes)
// CHECK-NOT:     cuLaunchKernel
// The weights are arguments of the case: they go to the device for the
// call (router [8, 32], gate, up, down [8, 48, 32] bf16), synchronized.
// CHECK:         cuda: cuStreamCreate(flags 1)
// CHECK-NEXT:    cuda: cuMemPoolCreate(type 1, handles 0, location 1 device 0, max 0)
// CHECK-NEXT:    cuda: cuMemPoolSetAttribute(the pool, attribute 4, 18446744073709551615)
// CHECK-NEXT:    cuda: cuMemAllocFromPoolAsync(24576)
// CHECK-NEXT:    cuda: cuMemcpyAsync(24576)
// CHECK-NEXT:    cuda: cuMemAllocFromPoolAsync(24576)
// CHECK-NEXT:    cuda: cuMemcpyAsync(24576)
// CHECK-NEXT:    cuda: cuMemAllocFromPoolAsync(24576)
// CHECK-NEXT:    cuda: cuMemcpyAsync(24576)
// CHECK-NEXT:    cuda: cuMemAllocFromPoolAsync(512)
// CHECK-NEXT:    cuda: cuMemcpyAsync(512)
// CHECK-NEXT:    cuda: cuStreamSynchronize()
// CHECK-NEXT:    cuda: cuStreamDestroy_v2()
// Then one stream for the whole layer (@moe_layer_resident around
// @moe_layer_async), and no synchronization until the results have been
// copied back.
// CHECK-NEXT:    cuda: cuStreamCreate(flags 1)
// CHECK-NOT:     cuStream
// CHECK:         cuda: cuLaunchKernel(router_topk, grid 2x1x1, block 128x1x1, smem 384, a stream)
// CHECK-NOT:     cuLaunchKernel
// CHECK-NOT:     cuStream
// One block counts and places the 14 slots: no memset of the counts, no
// count_experts.
// CHECK:         cuda: cuModuleGetFunction(count_experts)
// CHECK-NEXT:    cuda: cuModuleGetFunction(build_permutation)
// CHECK-NEXT:    cuda: cuLaunchKernel(build_permutation, grid 1x1x1, block 256x1x1, smem 1280, a stream)
// CHECK-NOT:     cuStream
// CHECK:         cuda: cuLaunchKernel(gather_rows, grid 14x1x1, block 128x1x1, smem 0, a stream)
// The router's and the dispatch's other temporaries freed in stream order
// (the capacity's scratch is empty).
// CHECK-COUNT-5: cuda: cuMemFreeAsync()
// CHECK-NOT:     cuLaunchKernel
// CHECK-NOT:     cuStream
// The expert GEMMs on ceil(14 / 64) + min(8, 14) = 9 tiles, the bound of
// the tile map, which build_permutation filled (no build_tile_map): the
// group sizes are never read on the host. 14 rows are few (at most
// max(16, 2 E)): gemv_experts, 8 output columns a block, for the gate/up
// (f = 48), and gemv_pairs, 16, for the down projection (d = 32, on rows
// of 48 bf16).
// CHECK:         cuda: cuLaunchKernel(gemv_experts, grid 6x9x1, block 256x1x1, smem 0, a stream)
// CHECK-NOT:     cuStream
// CHECK:         cuda: cuLaunchKernel(gemv_pairs, grid 2x9x1, block 256x1x1, smem 0, a stream)
// CHECK-NOT:     cuLaunchKernel
// CHECK-NOT:     cuStream
// CHECK:         cuda: cuLaunchKernel(combine, grid 1x7x1, block 256x1x1, smem 0, a stream)
// No shared expert: nothing allocated or launched for it.
// CHECK-NOT:     cuLaunchKernel
// CHECK-NOT:     cuMemAllocFromPoolAsync
// CHECK:         cuda: cuModuleGetFunction(add_shared)
// The rows, slots, weights and expert rows freed in stream order, y (7 x
// 32 f32) and the offsets (9 i32) copied back (no capacity: no dropped
// counts), the operands freed, then the layer's only synchronization.
// CHECK-NEXT:    cuda: cuMemFreeAsync()
// CHECK-COUNT-3: cuda: cuMemFreeAsync()
// CHECK-NEXT:    cuda: cuMemcpyAsync(896)
// CHECK-NEXT:    cuda: cuMemcpyAsync(36)
// CHECK-NEXT:    cuda: cuMemFreeAsync()
// CHECK-COUNT-7: cuda: cuMemFreeAsync()
// CHECK-NOT:     cuStreamSynchronize
// CHECK-NOT:     cuMemFree_v2
// CHECK-NOT:     cuLaunchKernel
// CHECK-NOT:     cuMemcpy
// CHECK:         cuda: cuStreamSynchronize()
// CHECK-NEXT:    cuda: cuStreamDestroy_v2()
// CHECK-NOT:     cuLaunchKernel
// CHECK-COUNT-4: cuda: cuModuleUnload()

// REFERENCE: moe-run: error: --pipeline=cuda has no reference mode: drop --reference
