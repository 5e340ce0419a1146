// RUN: moe-opt %s --moe-capacity-batching --split-input-file 2>/dev/null | FileCheck %s --check-prefix=TILE16
// RUN: moe-opt %s --moe-capacity-batching --split-input-file 2>&1 >/dev/null | FileCheck %s --check-prefix=REMARK
// RUN: moe-opt %s --moe-capacity-batching=tile-rows=1 --split-input-file | FileCheck %s --check-prefix=ANYROWS
// RUN: moe-opt %s --moe-capacity-batching="tile-rows=16 group-cost=32" --split-input-file | FileCheck %s --check-prefix=LAUNCH
// RUN: not moe-opt %s --moe-capacity-batching=tile-rows=0 --split-input-file 2>&1 | FileCheck %s --check-prefix=BAD

// Dropless, dynamic tokens: 512 * 2 / 8 = 128 rows per expert expected.
// Tile kernels get aligned groups; kernels that take any row count keep
// ragged groups (no attribute); a launch per group does not change that
// without a capacity.
// TILE16-LABEL: func @dropless
// TILE16: moe.dispatch %{{.*}}, %{{.*}} experts = 8 layout <kind = aligned, block = 16>
// ANYROWS-LABEL: func @dropless
// ANYROWS: moe.dispatch %{{.*}}, %{{.*}} experts = 8 : tensor<?x2xi32>
// LAUNCH-LABEL: func @dropless
// LAUNCH: layout <kind = aligned, block = 16>
func.func @dropless(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?xi32> {
  %r:7 = moe.dispatch %ids, %w experts = 8 : tensor<?x2xi32>, tensor<?x2xf32>
  return %r#0 : tensor<?xi32>
}

// -----

// A capacity of 128 rows (factor 1.0 of the expected 128): the same work
// as aligned, so aligned wins the tie; with a cost per group, the static
// [8 * 128] batch wins. Users keep their dynamic row type through a cast.
// TILE16-LABEL: func @capacity
// TILE16: layout <kind = aligned, block = 16>
// LAUNCH-LABEL: func @capacity
// LAUNCH: moe.dispatch {{.*}} capacity <factor = 1.0> layout <kind = padded> : tensor<?x2xi32>, tensor<?x2xf32>
// LAUNCH-NOT: tensor.cast
func.func @capacity(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?xi32> {
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <factor = 1.0>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return %r#0 : tensor<?xi32>
}

// -----

// A count capacity makes the padded row count static (8 * 64).
// LAUNCH-LABEL: func @count
// LAUNCH: %[[R:[a-z_0-9]+]], %{{.*}} = moe.dispatch {{.*}} capacity <count = 64> layout <kind = padded> : tensor<?x2xi32>, tensor<?x2xf32>
// LAUNCH: %[[C:.*]] = tensor.cast %[[R]] : tensor<512xi32> to tensor<?xi32>
// LAUNCH: return %[[C]]
func.func @count(%ids: tensor<?x2xi32>, %w: tensor<?x2xf32>) -> tensor<?xi32> {
  %r:7 = moe.dispatch %ids, %w experts = 8 capacity <count = 64>
      : tensor<?x2xi32>, tensor<?x2xf32>
  return %r#0 : tensor<?xi32>
}

// -----

// A static token count: aligning would change the static row count.
// REMARK: remark: kept the ragged layout: the aligned layout would change the static row count 128 to 248
// TILE16-LABEL: func @static_tokens
// TILE16: moe.dispatch %{{.*}}, %{{.*}} experts = 8 : tensor<64x2xi32>
func.func @static_tokens(%ids: tensor<64x2xi32>, %w: tensor<64x2xf32>) -> tensor<128xi32> {
  %r:7 = moe.dispatch %ids, %w experts = 8 : tensor<64x2xi32>, tensor<64x2xf32>
  return %r#0 : tensor<128xi32>
}

// BAD: moe-capacity-batching expects tile-rows >= 1
