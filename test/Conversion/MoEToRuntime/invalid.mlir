// RUN: moe-opt %s --convert-moe-to-runtime --verify-diagnostics -o /dev/null

// expected-error@+1 {{the module reads checkpoint weights (moe.weight) but has no 'moe.checkpoint' attribute}}
module {
  func.func @no_checkpoint() -> tensor<2xf32> {
    %w = moe.weight "w" : tensor<2xf32>
    return %w : tensor<2xf32>
  }
}
