// moe-cuda-pipeline on an imported bf16 Mixtral-style checkpoint: the
// weights (moe.weight) become runtime weight buffers in GPU memory, copied
// there once, at the first call, and kept until the model is unloaded; each
// layer records its statistics through the runtime, as on the CPU; the
// module keeps the moe.weights and moe.stats tables. moe-run runs it on
// the stand-in driver that logs its calls
// (test/Runtime/CUDA/Inputs/fake_libcuda.c): the modules load and the
// kernels launch. The kernels do not run, so neither the outputs nor the
// per-expert counts are checked here; the token count is the host's.
// RUN: rm -rf %t && mkdir -p %t/fake
// RUN: %cc -shared -fPIC -Wall -Wextra -Wno-unused-parameter -Wno-format-zero-length -Werror \
// RUN:   %moe_src_root/test/Runtime/CUDA/Inputs/fake_libcuda.c -o %t/fake/libcuda.so.1
// RUN: moe-gen-checkpoint --family mixtral --dtype bf16 --hidden 32 --inner 48 --out %t/ckpt --seed 3
// RUN: moe-import --model %t/ckpt -o %t/model.mlir
// RUN: moe-opt %t/model.mlir --moe-cuda-pipeline="chip=sm_80 format=isa" | FileCheck %s --check-prefix=IR
// RUN: moe-opt %t/model.mlir --moe-cuda-pipeline="chip=sm_80 format=isa stats=false" | FileCheck %s --check-prefix=NOSTATS
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/model.mlir --entry moe_layer_1 \
// RUN:   --checkpoint %t/ckpt --pipeline cuda --random-inputs --dynamic-size 5 \
// RUN:   --quiet --stats --stats-json %t/stats.json > %t/run.out
// RUN: FileCheck %s < %t/run.out
// RUN: FileCheck %s --check-prefix=STATS < %t/run.out
// RUN: FileCheck %s --check-prefix=JSON < %t/stats.json
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/model.mlir --entry moe_layer_1 \
// RUN:   --checkpoint %t/ckpt --pipeline cuda --random-inputs --dynamic-size 5 \
// RUN:   --quiet --repeat 3 | FileCheck %s --check-prefix=ONCE
// A Qwen2-MoE checkpoint: the shared expert's gate, up and down ([64, 32],
// 8192 bytes each) and its gate vector ([1, 32]) go to the GPU once, like
// the routed experts', and every call adds the shared expert.
// RUN: moe-gen-checkpoint --family qwen2_moe --dtype bf16 --hidden 32 --inner 48 --out %t/qwen --seed 3
// RUN: moe-import --model %t/qwen -o %t/qwen.mlir
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/qwen.mlir --entry moe_layer_1 \
// RUN:   --checkpoint %t/qwen --pipeline cuda --random-inputs --dynamic-size 5 \
// RUN:   --quiet --repeat 3 | FileCheck %s --check-prefix=QWEN
// QWEN-COUNT-3: cuda: cuMemcpyAsync(24576)
// QWEN-COUNT-3: cuda: cuMemcpyAsync(8192)
// QWEN:         cuda: cuMemcpyAsync(64)
// QWEN-NOT:     cuMemcpyAsync(8192)
// A GraniteMoE checkpoint: the fused gate_up [8, 96, 32] goes to the GPU
// once (49152 bytes) and serves as both gate and up; the fused gate/up of
// the 10 rows (gemv_experts) covers the 48 columns of f (6 blocks of 8),
// not 96.
// RUN: moe-gen-checkpoint --family granitemoe --dtype bf16 --hidden 32 --inner 48 --out %t/granite --seed 3
// RUN: moe-import --model %t/granite -o %t/granite.mlir
// RUN: env LD_LIBRARY_PATH=%t/fake moe-run %t/granite.mlir --entry moe_layer_1 \
// RUN:   --checkpoint %t/granite --pipeline cuda --random-inputs --dynamic-size 5 \
// RUN:   --quiet --repeat 3 | FileCheck %s --check-prefix=GRANITE
// GRANITE:       cuda: cuMemcpyAsync(49152)
// GRANITE-NOT:   cuMemcpyAsync(49152)
// GRANITE:       cuda: cuMemcpyAsync(24576)
// GRANITE-NOT:   cuMemcpyAsync(49152)
// GRANITE-COUNT-5: cuda: cuLaunchKernel(gemv_experts, grid 6x9x1, block 256x1x1, smem 0, a stream)
// GRANITE-NOT:   cuMemcpyAsync(49152)
// QWEN-COUNT-5: cuda: cuLaunchKernel(add_shared, grid 1x5x1, block 256x1x1, smem 0, a stream)
// QWEN-NOT:     cuMemcpyAsync(8192)

// IR:      module attributes {gpu.container_module, moe.checkpoint = "{{.*}}ckpt",
// IR-SAME:   moe.stats = [{experts = 8 : i64, id = 0 : i64, layer = "moe_layer_0"}, {experts = 8 : i64, id = 1 : i64, layer = "moe_layer_1"}],
// IR-SAME:   moe.weights = [{device = true, id = 0 : i64, names = ["model.layers.0.block_sparse_moe.gate.weight"], stacked = false, type = tensor<8x32xbf16>},
// IR-SAME:   names = ["model.layers.0.block_sparse_moe.experts.0.w1.weight",
// IR-SAME:   stacked = true, type = tensor<8x48x32xbf16>}
// IR-NOT:    packing
// IR-DAG:    llvm.call @_mlir_ciface_moe_rt_device_weight_bf16_2d(
// IR-DAG:    llvm.call @_mlir_ciface_moe_rt_device_weight_bf16_3d(
// IR-DAG:    llvm.call @_mlir_ciface_moe_rt_record_stats(
// IR-DAG:    llvm.func @moe_layer_1(
// IR-DAG:    gpu.binary @

// NOSTATS-NOT: moe.stats
// NOSTATS-NOT: record_stats
// NOSTATS:     moe.weights
// NOSTATS-NOT: record_stats

// Weights to the device (router [8, 32], gate, up and down [8, 48, 32]
// bf16), then only the tokens in and out; the layer's kernels in order.
// CHECK-COUNT-4: cuda: cuModuleLoadDataEx(.target sm_80, O3, log 8192 bytes)
// CHECK-NEXT:    cuda: cuModuleGetGlobal_v2(moe_dependent_launch: not found)
// CHECK-NEXT:    cuda: cuMemAlloc_v2(512)
// CHECK-NEXT:    cuda: cuMemcpyAsync(512)
// CHECK-NEXT:    cuda: cuStreamSynchronize()
// CHECK-COUNT-3: cuda: cuMemcpyAsync(24576)
// CHECK-NOT:     cuLaunchKernel
// CHECK:         cuda: cuStreamCreate(flags 1)
// CHECK-NOT:     cuMemcpyAsync(24576)
// CHECK-NOT:     cuLaunchKernel
// CHECK:         cuda: cuLaunchKernel(router_logits, grid 2x2x1, block 128x1x1, smem 0, a stream)
// CHECK-NOT:     cuLaunchKernel
// CHECK:         cuda: cuLaunchKernel(router_topk, grid 2x1x1, block 128x1x1, smem 384, a stream)
// CHECK-NOT:     cuLaunchKernel
// CHECK:         cuda: cuLaunchKernel(build_permutation, grid 1x1x1, block 256x1x1, smem 1280, a stream)
// CHECK:         cuda: cuLaunchKernel(gather_rows, grid 10x1x1, block 128x1x1, smem 0, a stream)
// CHECK-NOT:     cuLaunchKernel
// CHECK:         cuda: cuLaunchKernel(gemv_experts, grid 6x9x1, block 256x1x1, smem 0, a stream)
// CHECK:         cuda: cuLaunchKernel(gemv_pairs, grid 2x9x1, block 256x1x1, smem 0, a stream)
// CHECK-NOT:     cuLaunchKernel
// CHECK:         cuda: cuLaunchKernel(combine, grid 1x5x1, block 256x1x1, smem 0, a stream)
// CHECK-NOT:     cuLaunchKernel
// The weights are freed with the model, before the modules unload.
// CHECK-COUNT-4: cuda: cuMemFree_v2()
// CHECK-COUNT-4: cuda: cuModuleUnload()

// Five calls (two warm-up, three timed), one upload of each weight.
// ONCE-COUNT-4:  cuda: cuMemAlloc_v2(
// ONCE:          cuda: cuStreamCreate(flags 1)
// ONCE-NOT:      cuMemAlloc_v2
// ONCE-NOT:      cuMemcpyAsync(24576)
// ONCE-COUNT-5:  cuda: cuLaunchKernel(router_topk,
// ONCE-NOT:      cuMemAlloc_v2
// ONCE-NOT:      cuMemcpyAsync(24576)
// ONCE-COUNT-4:  cuda: cuMemFree_v2()

// STATS:         layer moe_layer_1: 1 calls, 5 tokens
// STATS:         expert  assignments  dropped
// STATS-COUNT-8: {{^ +[0-7] +-?[0-9]+ +0$}}

// JSON: {"layers":[{"assignments":[{{.*}}],"calls":1,{{.*}}"dropped":[0,0,0,0,0,0,0,0],"function":"moe_layer_1",{{.*}}"num_experts":8,"tokens":5}],"version":1}
