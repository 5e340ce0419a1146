// moe-cuda-pipeline forms a chain of moe ops that computes a whole layer
// into one (moe-form-layers), which then runs on the kernel library. A
// chain that stays apart runs on the host: a remark says why, then the
// warning of convert-moe-to-gpu-kernels names the ops.
// RUN: moe-opt %s --split-input-file --verify-diagnostics \
// RUN:   '--moe-cuda-pipeline=emulate=1' | FileCheck %s

// CHECK-LABEL: llvm.func @formed(
//       CHECK:   llvm.mlir.addressof @moe_router_kernels__router_logits__launch :
//       CHECK:   llvm.return
func.func @formed(%x: tensor<?x32xbf16>, %wg: tensor<8x32xbf16>,
                  %w1: tensor<8x48x32xbf16>, %w2: tensor<8x32x48xbf16>)
    -> tensor<?x32xbf16> {
  %z = moe.router %x, %wg : tensor<?x32xbf16>, tensor<8x32xbf16>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xbf16>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xbf16>, tensor<8xi64>, tensor<8x48x32xbf16>,
        tensor<8x32x48xbf16>
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xbf16>, tensor<?x2xi32>
  return %y : tensor<?x32xbf16>
}

// -----

// CHECK-LABEL: llvm.func @z_loss(
//   CHECK-NOT:   router_logits__launch
//       CHECK:   llvm.return
func.func @z_loss(%x: tensor<?x32xbf16>, %wg: tensor<8x32xbf16>,
                  %w1: tensor<8x48x32xbf16>, %w2: tensor<8x32x48xbf16>)
    -> (tensor<?x32xbf16>, tensor<f32>) {
  // expected-warning @below {{moe.router, moe.route, moe.dispatch, moe.gather, moe.mlp_experts, moe.combine, moe.z_loss in @z_loss run on the host}}
  %z = moe.router %x, %wg : tensor<?x32xbf16>, tensor<8x32xbf16>
  %ids, %w = moe.route %z <score = softmax, selection = top_k, k = 2>
      : tensor<?x8xf32>
  %rt, %rw, %sr, %sw, %sizes, %offsets, %dropped =
      moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  %xg = moe.gather %x, %rt : tensor<?x32xbf16>, tensor<?xi32>
  %yg = moe.mlp_experts %xg, %sizes, %w1, %w2 act = relu
      : tensor<?x32xbf16>, tensor<8xi64>, tensor<8x48x32xbf16>,
        tensor<8x32x48xbf16>
  // expected-remark @below {{not formed into a moe.layer: the logits are also read by moe.z_loss}}
  %y = moe.combine %yg, %sr weights(%sw : tensor<?x2xf32>)
      : tensor<?x32xbf16>, tensor<?x2xi32>
  %l = moe.z_loss %z : tensor<?x8xf32>
  return %y, %l : tensor<?x32xbf16>, tensor<f32>
}
