// The output of moe-cpu-pipeline runs under upstream mlir-runner. Without
// the moe runtime in the process, statistics are off (stats=false). The
// reference lowering then calls nothing but libc and libm; the fast path
// also calls the CPU kernels, which libmoe_cpu_kernels provides alone.
// RUN: moe-opt %s --moe-cpu-pipeline="stats=false reference=true" \
// RUN:   | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext \
// RUN:   | FileCheck %s
// RUN: moe-opt %s --moe-cpu-pipeline="stats=false" \
// RUN:   | mlir-runner -e main -entry-point-result=void \
// RUN:     -shared-libs=%mlir_lib_dir/libmlir_runner_utils%shlibext,%mlir_lib_dir/libmlir_c_runner_utils%shlibext,%moe_lib_dir/libmoe_cpu_kernels%shlibext \
// RUN:   | FileCheck %s

// Two tokens, two ReLU MLP experts, top-1 softmax routing. Router logits
// are [ln 3, 0] and [0, ln 3], so each token picks its own expert with
// weight 3/4. Expert 0 doubles its input, expert 1 negates it:
//   y[0] = 0.75 * 2 * relu([1, 0])  = [1.5, 0]
//   y[1] = 0.75 * -relu([0, 1])     = [0, -0.75]

func.func @layer(%x: tensor<?x2xf32>, %wg: tensor<2x2xf32>,
                 %w1: tensor<2x2x2xf32>, %w2: tensor<2x2x2xf32>)
    -> (tensor<?x2xf32>, tensor<2xi64>, tensor<2xi64>) {
  %y, %load, %dropped = moe.layer %x router(%wg : tensor<2x2xf32>)
      experts(%w1, %w2 : tensor<2x2x2xf32>, tensor<2x2x2xf32>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 1>,
       experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x2xf32>
  return %y, %load, %dropped : tensor<?x2xf32>, tensor<2xi64>, tensor<2xi64>
}

func.func private @printMemrefF32(memref<*xf32>)
func.func private @printMemrefI64(memref<*xi64>)

func.func @main() {
  %x = arith.constant dense<[[1.0, 0.0], [0.0, 1.0]]> : tensor<2x2xf32>
  %wg = arith.constant dense<[[1.0986123, 0.0], [0.0, 1.0986123]]> : tensor<2x2xf32>
  %w1 = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]],
                              [[1.0, 0.0], [0.0, 1.0]]]> : tensor<2x2x2xf32>
  %w2 = arith.constant dense<[[[2.0, 0.0], [0.0, 2.0]],
                              [[-1.0, 0.0], [0.0, -1.0]]]> : tensor<2x2x2xf32>
  %xd = tensor.cast %x : tensor<2x2xf32> to tensor<?x2xf32>
  %y, %load, %dropped = call @layer(%xd, %wg, %w1, %w2)
      : (tensor<?x2xf32>, tensor<2x2xf32>, tensor<2x2x2xf32>, tensor<2x2x2xf32>)
      -> (tensor<?x2xf32>, tensor<2xi64>, tensor<2xi64>)
  %ym = bufferization.to_buffer %y : tensor<?x2xf32> to memref<?x2xf32>
  %yu = memref.cast %ym : memref<?x2xf32> to memref<*xf32>
  // CHECK: sizes = [2, 2]
  // CHECK-NEXT: {{\[\[}}1.5, 0],
  // CHECK-NEXT: [0, -0.75]]
  call @printMemrefF32(%yu) : (memref<*xf32>) -> ()
  %lm = bufferization.to_buffer %load : tensor<2xi64> to memref<2xi64>
  %lu = memref.cast %lm : memref<2xi64> to memref<*xi64>
  // CHECK: sizes = [2]
  // CHECK-NEXT: [1, 1]
  call @printMemrefI64(%lu) : (memref<*xi64>) -> ()
  return
}
