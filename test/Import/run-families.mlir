// Runs moe_layer_L of an imported checkpoint of every family and compares
// it with the f64 reference, which reads the same checkpoint with its own
// reader and derives the layer from config.json independently:
// moe-gen-checkpoint -> moe-import -> moe-reference emit-model (hidden
// states and reference outputs) -> moe-run -> moe-reference compare.
//
// The weights are bound from the checkpoint named by the module's
// `moe.checkpoint` attribute when moe-run loads the module.
// run-families-weights-as-arguments.test runs the same layers with the
// weights passed as arguments instead.

// RUN: rm -rf %t && mkdir -p %t

// Mixtral, bf16, two layers (the module holds both; layer 1 is run).
// RUN: moe-gen-checkpoint --family mixtral --out %t/mixtral --seed 11 --hidden 32 --inner 48 --dtype bf16
// RUN: moe-import --model %t/mixtral -o %t/mixtral.mlir
// RUN: moe-reference emit-model --model %t/mixtral --layer 1 --seed 1 --tokens 0,1,7,33 --dir %t/mixtral-cases
// RUN: moe-run %t/mixtral.mlir --entry moe_layer_1 --quiet --stats $(cat %t/mixtral-cases/moe-run.args) | FileCheck %s --check-prefix=STATS
// RUN: moe-reference compare --dir %t/mixtral-cases | FileCheck %s
// Statistics are kept per imported layer: 4 calls of 0 + 1 + 7 + 33 tokens,
// top-2 of 8 experts; layers that were not called are not listed.
// STATS-NOT: moe_layer_0
// STATS: layer moe_layer_1: 4 calls, 41 tokens
// STATS-NEXT: experts/token 2.0000 max/mean load {{[0-9.]+}} cv {{[0-9.]+}} entropy {{[0-9.]+}} jain {{[0-9.]+}} drop rate 0.0000
// STATS-NOT: moe_layer_0

// Qwen2-MoE, f32, sparse every second layer, shared expert with its gate.
// RUN: moe-gen-checkpoint --family qwen2_moe --out %t/qwen2 --seed 12 --hidden 32 --inner 48 --shared-inner 64 --layers 4 --sparse-step 2
// RUN: moe-import --model %t/qwen2 -o %t/qwen2.mlir
// RUN: moe-reference emit-model --model %t/qwen2 --layer 3 --seed 2 --tokens 0,1,7,33 --dir %t/qwen2-cases
// RUN: moe-run %t/qwen2.mlir --entry moe_layer_3 --quiet $(cat %t/qwen2-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/qwen2-cases | FileCheck %s

// Qwen3-MoE, bf16, sharded.
// RUN: moe-gen-checkpoint --family qwen3_moe --out %t/qwen3 --seed 13 --hidden 32 --inner 48 --experts 16 --top-k 4 --shards 3 --dtype bf16
// RUN: moe-import --model %t/qwen3 -o %t/qwen3.mlir
// RUN: moe-reference emit-model --model %t/qwen3 --layer 0 --seed 3 --tokens 0,1,7,33 --dir %t/qwen3-cases
// RUN: moe-run %t/qwen3.mlir --entry moe_layer_0 --quiet $(cat %t/qwen3-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/qwen3-cases | FileCheck %s

// OLMoE, f32, raw top-k weights.
// RUN: moe-gen-checkpoint --family olmoe --out %t/olmoe --seed 14 --hidden 32 --inner 48 --experts 16 --top-k 4
// RUN: moe-import --model %t/olmoe -o %t/olmoe.mlir
// RUN: moe-reference emit-model --model %t/olmoe --layer 1 --seed 4 --tokens 0,1,7,33 --dir %t/olmoe-cases
// RUN: moe-run %t/olmoe.mlir --entry moe_layer_1 --quiet $(cat %t/olmoe-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/olmoe-cases | FileCheck %s

// Granite, f16, fused gate_up.
// RUN: moe-gen-checkpoint --family granitemoe --out %t/granite --seed 15 --hidden 32 --inner 48 --dtype f16
// RUN: moe-import --model %t/granite -o %t/granite.mlir
// RUN: moe-reference emit-model --model %t/granite --layer 0 --seed 5 --tokens 0,1,7,33 --dir %t/granite-cases
// RUN: moe-run %t/granite.mlir --entry moe_layer_0 --quiet $(cat %t/granite-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/granite-cases | FileCheck %s

// DeepSeek-V2, f32, group-limited greedy, scaled raw weights, first layer
// dense.
// RUN: moe-gen-checkpoint --family deepseek_v2 --out %t/dsv2 --seed 16 --hidden 32 --inner 48 --experts 16 --top-k 3 --groups 4 --topk-group 2 --layers 3
// RUN: moe-import --model %t/dsv2 -o %t/dsv2.mlir
// RUN: moe-reference emit-model --model %t/dsv2 --layer 2 --seed 6 --tokens 0,1,7,33 --dir %t/dsv2-cases
// RUN: moe-run %t/dsv2.mlir --entry moe_layer_2 --quiet $(cat %t/dsv2-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/dsv2-cases | FileCheck %s

// DeepSeek-V3, bf16 with the F32 correction bias, sharded.
// RUN: moe-gen-checkpoint --family deepseek_v3 --out %t/dsv3 --seed 17 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 3 --shards 2 --dtype bf16
// RUN: moe-import --model %t/dsv3 -o %t/dsv3.mlir
// RUN: moe-reference emit-model --model %t/dsv3 --layer 1 --seed 7 --tokens 0,1,7,33 --dir %t/dsv3-cases
// RUN: moe-run %t/dsv3.mlir --entry moe_layer_1 --quiet $(cat %t/dsv3-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/dsv3-cases | FileCheck %s

// Qwen3-Next, bf16: 512 experts, top-10, a gated shared expert.
// RUN: moe-gen-checkpoint --family qwen3_next --out %t/qwen3-next --seed 19 --hidden 32 --inner 16 --shared-inner 24 --experts 512 --top-k 10 --layers 1 --dtype bf16
// RUN: moe-import --model %t/qwen3-next -o %t/qwen3-next.mlir
// RUN: moe-reference emit-model --model %t/qwen3-next --layer 0 --seed 9 --tokens 0,1,7,33 --dir %t/qwen3-next-cases
// RUN: moe-run %t/qwen3-next.mlir --entry moe_layer_0 --quiet $(cat %t/qwen3-next-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/qwen3-next-cases | FileCheck %s

// GLM-4.5, bf16, scaled, with a shared expert, the first layer dense.
// RUN: moe-gen-checkpoint --family glm4_moe --out %t/glm --seed 18 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 3 --scaling-factor 2.5 --dtype bf16
// RUN: moe-import --model %t/glm -o %t/glm.mlir
// RUN: moe-reference emit-model --model %t/glm --layer 2 --seed 8 --tokens 0,1,7,33 --dir %t/glm-cases
// RUN: moe-run %t/glm.mlir --entry moe_layer_2 --quiet $(cat %t/glm-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/glm-cases | FileCheck %s

// MiniMax-M2, f16: Mixtral's block with sigmoid scores and the F32
// correction bias beside the router, 32 experts, top-8.
// RUN: moe-gen-checkpoint --family minimax_m2 --out %t/minimax --seed 20 --hidden 32 --inner 48 --experts 32 --top-k 8 --layers 2 --dtype f16
// RUN: moe-import --model %t/minimax -o %t/minimax.mlir
// RUN: moe-reference emit-model --model %t/minimax --layer 1 --seed 10 --tokens 0,1,7,33 --dir %t/minimax-cases
// RUN: moe-run %t/minimax.mlir --entry moe_layer_1 --quiet $(cat %t/minimax-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/minimax-cases | FileCheck %s

// dots.llm1, f32: DeepSeek-V3's router over one group, two shared
// experts, raw weights (norm_topk_prob false), the first layer dense.
// RUN: moe-gen-checkpoint --family dots1 --out %t/dots --seed 24 --hidden 32 --inner 48 --experts 16 --top-k 6 --layers 2 --first-dense 1 --groups 1 --topk-group 1 --shared-experts 2 --dtype f32
// RUN: moe-import --model %t/dots -o %t/dots.mlir
// RUN: moe-reference emit-model --model %t/dots --layer 1 --seed 14 --tokens 0,1,7,33 --dir %t/dots-cases
// RUN: moe-run %t/dots.mlir --entry moe_layer_1 --quiet $(cat %t/dots-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/dots-cases | FileCheck %s

// Kimi K2, bf16: 64 experts in one group, top-8, the scale of its
// release, a shared expert.
// RUN: moe-gen-checkpoint --family kimi_k2 --out %t/kimi --seed 40 --hidden 32 --inner 48 --experts 64 --top-k 8 --layers 2 --first-dense 1 --groups 1 --topk-group 1 --scaling-factor 2.827 --dtype bf16
// RUN: moe-import --model %t/kimi -o %t/kimi.mlir
// RUN: moe-reference emit-model --model %t/kimi --layer 1 --seed 15 --tokens 0,1,7,33 --dir %t/kimi-cases
// RUN: moe-run %t/kimi.mlir --entry moe_layer_1 --quiet $(cat %t/kimi-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/kimi-cases | FileCheck %s

// DeepSeek-V3.2, f32 and GLM-4.7-Flash, bf16: the sparse layers from
// mlp_layer_types (every other one for DeepSeek-V3.2).
// RUN: moe-gen-checkpoint --family deepseek_v32 --out %t/v32 --seed 41 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 4 --first-dense 1 --groups 8 --topk-group 4 --dtype f32
// RUN: %python -c "import json, sys; c = json.load(open(sys.argv[1])); c['mlp_layer_types'] = ['dense', 'sparse', 'dense', 'sparse']; json.dump(c, open(sys.argv[1], 'w'))" %t/v32/config.json
// RUN: moe-import --model %t/v32 -o %t/v32.mlir
// RUN: moe-reference emit-model --model %t/v32 --layer 3 --seed 16 --tokens 0,1,7,33 --dir %t/v32-cases --dtype f32
// RUN: moe-run %t/v32.mlir --entry moe_layer_3 --quiet $(cat %t/v32-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/v32-cases | FileCheck %s
// RUN: not moe-reference emit-model --model %t/v32 --layer 2 --seed 16 --tokens 1 --dir %t/v32-dense 2>&1 | FileCheck %s --check-prefix=V32-DENSE
// V32-DENSE: error: {{.*}}config.json: layer 2 is dense, not a sparse MoE layer
// RUN: moe-gen-checkpoint --family glm4_moe_lite --out %t/glm-flash --seed 42 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 2 --first-dense 1 --groups 1 --topk-group 1 --dtype bf16
// RUN: moe-import --model %t/glm-flash -o %t/glm-flash.mlir
// RUN: moe-reference emit-model --model %t/glm-flash --layer 1 --seed 17 --tokens 0,1,7,33 --dir %t/glm-flash-cases
// RUN: moe-run %t/glm-flash.mlir --entry moe_layer_1 --quiet $(cat %t/glm-flash-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/glm-flash-cases | FileCheck %s

// Qwen3-VL-MoE, f16: the text model's fused experts transposed when the
// model loads; the first layer dense (mlp_only_layers).
// RUN: moe-gen-checkpoint --family qwen3_vl_moe --out %t/qwen3vl --seed 23 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 2 --mlp-only-layers 0 --dtype f16
// RUN: moe-import --model %t/qwen3vl -o %t/qwen3vl.mlir
// RUN: moe-reference emit-model --model %t/qwen3vl --layer 1 --seed 13 --tokens 0,1,7,33 --dir %t/qwen3vl-cases
// RUN: moe-run %t/qwen3vl.mlir --entry moe_layer_1 --quiet $(cat %t/qwen3vl-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/qwen3vl-cases | FileCheck %s

// Qwen3.5-MoE, bf16: the experts fused as released, the gated shared
// expert, renormalized.
// RUN: moe-gen-checkpoint --family qwen3_5_moe --out %t/qwen35 --seed 29 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 2 --shared-inner 24 --dtype bf16
// RUN: moe-import --model %t/qwen35 -o %t/qwen35.mlir
// RUN: moe-reference emit-model --model %t/qwen35 --layer 1 --seed 19 --tokens 0,1,7,33 --dir %t/qwen35-cases
// RUN: moe-run %t/qwen35.mlir --entry moe_layer_1 --quiet $(cat %t/qwen35-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/qwen35-cases | FileCheck %s

// Granite 4.0 (granitemoehybrid), f32 stored and run in bf16: the shared
// MLP's fused gate and up rows packed from one checkpoint tensor.
// RUN: moe-gen-checkpoint --family granitemoehybrid --out %t/granite4 --seed 27 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 2 --shared-inner 40 --dtype f32
// RUN: moe-import --model %t/granite4 --dtype bf16 -o %t/granite4.mlir
// RUN: moe-reference emit-model --model %t/granite4 --layer 1 --seed 17 --tokens 0,1,7,33 --dtype bf16 --dir %t/granite4-cases
// RUN: moe-run %t/granite4.mlir --entry moe_layer_1 --quiet $(cat %t/granite4-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/granite4-cases | FileCheck %s

// Jamba, bf16: softmax top-k, not renormalized, under feed_forward; every
// second layer sparse from layer 1.
// RUN: moe-gen-checkpoint --family jamba --out %t/jamba --seed 26 --hidden 32 --inner 48 --experts 16 --top-k 3 --layers 2 --dtype bf16
// RUN: moe-import --model %t/jamba -o %t/jamba.mlir
// RUN: moe-reference emit-model --model %t/jamba --layer 1 --seed 16 --tokens 0,1,7,33 --dir %t/jamba-cases
// RUN: moe-run %t/jamba.mlir --entry moe_layer_1 --quiet $(cat %t/jamba-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/jamba-cases | FileCheck %s

// DBRX, bf16: Mixtral's routing; the experts stacked as [E * f, d] tensors,
// the down projections [in, out] transposed when the weights are bound.
// RUN: moe-gen-checkpoint --family dbrx --out %t/dbrx --seed 28 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 2 --dtype bf16
// RUN: moe-import --model %t/dbrx -o %t/dbrx.mlir
// RUN: moe-reference emit-model --model %t/dbrx --layer 1 --seed 18 --tokens 0,1,7,33 --dir %t/dbrx-cases
// RUN: moe-run %t/dbrx.mlir --entry moe_layer_1 --quiet $(cat %t/dbrx-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/dbrx-cases | FileCheck %s

// GLM-4.5V, f16: GLM-4.5's block under text_config, the tensors under
// model.language_model, the first layer dense, a shared expert.
// RUN: moe-gen-checkpoint --family glm4v_moe --out %t/glmv --seed 29 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 2 --shared-experts 1 --dtype f16
// RUN: moe-import --model %t/glmv -o %t/glmv.mlir
// RUN: moe-reference emit-model --model %t/glmv --layer 1 --seed 19 --tokens 0,1,7,33 --dir %t/glmv-cases
// RUN: moe-run %t/glmv.mlir --entry moe_layer_1 --quiet $(cat %t/glmv-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/glmv-cases | FileCheck %s

// GPT-OSS, f32 imported in bf16: the fused experts converted, transposed
// and put apart (gate and up interleaved) when the weights are bound; the
// router's and the experts' biases; the clamped SwiGLU.
// RUN: moe-gen-checkpoint --family gpt_oss --out %t/gpt-oss --seed 30 --hidden 32 --inner 48 --experts 16 --top-k 4 --layers 2
// RUN: moe-import --model %t/gpt-oss --dtype bf16 -o %t/gpt-oss.mlir
// RUN: moe-reference emit-model --model %t/gpt-oss --layer 1 --seed 20 --tokens 0,1,7,33 --dtype bf16 --dir %t/gpt-oss-cases
// RUN: moe-run %t/gpt-oss.mlir --entry moe_layer_1 --quiet $(cat %t/gpt-oss-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/gpt-oss-cases | FileCheck %s

// ERNIE-4.5-MoE, f32: softmax scores, the [1, E] correction bias choosing,
// renormalized; two experts' worth of ungated shared FFN; the first layer
// dense.
// RUN: moe-gen-checkpoint --family ernie4_5_moe --out %t/ernie --seed 25 --hidden 32 --inner 48 --experts 16 --top-k 6 --layers 3 --shared-experts 2 --dtype f32
// RUN: moe-import --model %t/ernie -o %t/ernie.mlir
// RUN: moe-reference emit-model --model %t/ernie --layer 1 --seed 15 --tokens 0,1,7,33 --dir %t/ernie-cases
// RUN: moe-run %t/ernie.mlir --entry moe_layer_1 --quiet $(cat %t/ernie-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/ernie-cases | FileCheck %s

// LFM2-MoE, f32: sigmoid scores with the F32 expert_bias, renormalized and
// scaled; the first layer dense.
// RUN: moe-gen-checkpoint --family lfm2_moe --out %t/lfm2 --seed 22 --hidden 32 --inner 48 --experts 16 --layers 2 --scaling-factor 2 --dtype f32
// RUN: moe-import --model %t/lfm2 -o %t/lfm2.mlir
// RUN: moe-reference emit-model --model %t/lfm2 --layer 1 --seed 12 --tokens 0,1,7,33 --dir %t/lfm2-cases
// RUN: moe-run %t/lfm2.mlir --entry moe_layer_1 --quiet $(cat %t/lfm2-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/lfm2-cases | FileCheck %s

// Llama-4 (the multimodal checkpoint), bf16: top-1, the weight applied to
// the expert input, the fused experts transposed when the model loads, the
// shared expert; every second layer sparse.
// RUN: moe-gen-checkpoint --family llama4 --out %t/llama4 --seed 21 --hidden 32 --inner 48 --experts 16 --layers 4 --interleave-step 2 --dtype bf16
// RUN: moe-import --model %t/llama4 -o %t/llama4.mlir
// RUN: moe-reference emit-model --model %t/llama4 --layer 3 --seed 11 --tokens 0,1,7,33 --dir %t/llama4-cases
// RUN: moe-run %t/llama4.mlir --entry moe_layer_3 --quiet $(cat %t/llama4-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/llama4-cases | FileCheck %s

// Llama-4 text-only, f32, top-2, with an f16 checkpoint converted as well
// as transposed when the model loads (hidden 32 and inner 16: gate_up is
// square, so only the values tell a missed transposition).
// RUN: moe-gen-checkpoint --family llama4_text --out %t/llama4-text --seed 22 --hidden 32 --inner 16 --experts 8 --top-k 2 --layers 1 --dtype f16
// RUN: moe-import --model %t/llama4-text --dtype f32 -o %t/llama4-text.mlir
// RUN: moe-reference emit-model --model %t/llama4-text --layer 0 --seed 12 --tokens 0,1,7,33 --dir %t/llama4-text-cases --dtype f32
// RUN: moe-run %t/llama4-text.mlir --entry moe_layer_0 --quiet $(cat %t/llama4-text-cases/moe-run.args)
// RUN: moe-reference compare --dir %t/llama4-text-cases | FileCheck %s

// CHECK: compare: 4 sets, 4 outputs, all ok
