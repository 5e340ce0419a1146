// Upstream mlir-opt loads the moe dialect and passes from the plugin. Passes
// that a plugin registers are reached through --pass-pipeline (the command
// line is parsed before plugins load).
// RUN: mlir-opt %s --load-dialect-plugin=%moe_lib_dir/MoEPlugin%shlibext \
// RUN:   | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: mlir-opt %s --load-dialect-plugin=%moe_lib_dir/MoEPlugin%shlibext \
// RUN:   --load-pass-plugin=%moe_lib_dir/MoEPlugin%shlibext \
// RUN:   --pass-pipeline="builtin.module(moe-decompose)" \
// RUN:   | FileCheck %s --check-prefix=DECOMPOSE

// ROUNDTRIP-LABEL: func @olmoe
// ROUNDTRIP: moe.layer %{{.*}} router(%{{.*}} : tensor<8x32xf32>) experts({{.*}}) {experts = #moe.experts<kind = gated>, family = #moe.family<olmoe>, routing = #moe.routing<score = softmax, selection = top_k, k = 2>}

// DECOMPOSE-LABEL: func @olmoe
// DECOMPOSE: moe.router
// DECOMPOSE: moe.route %{{.*}} <score = softmax, selection = top_k, k = 2>
// DECOMPOSE: moe.dispatch
// DECOMPOSE: moe.gated_experts
// DECOMPOSE: moe.combine
// DECOMPOSE-NOT: moe.layer
func.func @olmoe(%x: tensor<?x32xf32>, %wg: tensor<8x32xf32>,
                 %g: tensor<8x16x32xf32>, %u: tensor<8x16x32xf32>,
                 %d: tensor<8x32x16xf32>) -> tensor<?x32xf32> {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<8x32xf32>)
      experts(%g, %u, %d : tensor<8x16x32xf32>, tensor<8x16x32xf32>,
                           tensor<8x32x16xf32>)
      {family = #moe.family<olmoe>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated>} : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
