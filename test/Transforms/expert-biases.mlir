// Expert biases and swiglu_oai (GPT-OSS) through the passes: moe-decompose
// hands the biases to moe.gated_experts, moe-fuse-expert-io to
// moe.fused_experts, which convert-moe-to-cpu hands to the expert_ffn
// kernel and convert-moe-to-linalg lowers (the reference lowering).
// RUN: moe-opt %s --moe-decompose | FileCheck %s --check-prefix=DECOMPOSED
// RUN: moe-opt %s --moe-decompose --moe-fuse-expert-io | FileCheck %s --check-prefix=FUSED
// RUN: moe-opt %s --moe-decompose --moe-fuse-expert-io --convert-moe-to-cpu | FileCheck %s --check-prefix=CPU
// RUN: moe-opt %s --moe-decompose --moe-fuse-expert-io --convert-moe-to-linalg | FileCheck %s --check-prefix=LINALG

// DECOMPOSED-LABEL: func @gpt_oss
// DECOMPOSED: moe.gated_experts %{{.*}}, %{{.*}} gate_up(%[[GU:.*]] : tensor<8x96x32xbf16>) down(%[[D:.*]] : tensor<8x32x48xbf16>) biases(%[[BGU:.*]], %[[BD:.*]] : tensor<8x96xbf16>, tensor<8x32xbf16>) act = swiglu_oai
// DECOMPOSED-NOT: moe.layer

// FUSED-LABEL: func @gpt_oss
// FUSED: moe.fused_experts %{{.*}} rows({{.*}}) slots({{.*}}) weights({{.*}}) experts(%{{.*}}, %{{.*}} : tensor<8x96x32xbf16>, tensor<8x32x48xbf16>) expert_biases(%{{.*}}, %{{.*}} : tensor<8x96xbf16>, tensor<8x32xbf16>) {experts = #moe.experts<kind = gated, act = swiglu_oai>}

// CPU-LABEL: func @gpt_oss
// CPU-NOT: moe.fused_experts
// CPU: moe.ukernel "expert_ffn" {{.*}} config = [48, 5, 0, 5, 32, 1065353216, 48]

// LINALG-LABEL: func @gpt_oss
// LINALG-NOT: moe.fused_experts
// LINALG-NOT: moe.gated_experts
// LINALG: arith.minimumf
// LINALG: return
func.func @gpt_oss(%x: tensor<?x32xbf16>, %wg: tensor<8x32xbf16>,
    %bg: tensor<8xbf16>, %gu: tensor<8x96x32xbf16>,
    %d: tensor<8x32x48xbf16>, %bgu: tensor<8x96xbf16>,
    %bd: tensor<8x32xbf16>) -> tensor<?x32xbf16> {
  %y, %l, %dr = moe.layer %x router(%wg, %bg : tensor<8x32xbf16>, tensor<8xbf16>)
      experts(%gu, %d : tensor<8x96x32xbf16>, tensor<8x32x48xbf16>)
      expert_biases(%bgu, %bd : tensor<8x96xbf16>, tensor<8x32xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 4,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated, act = swiglu_oai>} : tensor<?x32xbf16>
  return %y : tensor<?x32xbf16>
}
