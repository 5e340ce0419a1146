// RUN: moe-opt %s --split-input-file --convert-moe-to-gpu-kernels | FileCheck %s
// RUN: moe-opt %s --split-input-file --convert-moe-to-gpu-kernels \
// RUN:   --moe-link-gpu-kernels | FileCheck %s --check-prefix=LINK

// A Mixtral-style bf16 layer becomes one call of the kernel library's
// @moe_layer, on buffers with dynamic sizes.

// CHECK-LABEL: func.func @layer(
// CHECK-SAME:      %[[X:.*]]: tensor<?x64xbf16>, %[[WR:.*]]: tensor<8x64xbf16>, %[[G:.*]]: tensor<8x32x64xbf16>, %[[U:.*]]: tensor<8x32x64xbf16>, %[[D:.*]]: tensor<8x64x32xbf16>)
// CHECK-DAG:   %[[XB:.*]] = bufferization.to_buffer %[[X]] read_only : tensor<?x64xbf16> to memref<?x64xbf16>
// CHECK-DAG:   %[[XM:.*]] = memref.cast %[[XB]] : memref<?x64xbf16> to memref<?x?xbf16>
// CHECK-DAG:   %[[WRB:.*]] = bufferization.to_buffer %[[WR]] read_only : tensor<8x64xbf16> to memref<8x64xbf16>
// CHECK-DAG:   %[[WRM:.*]] = memref.cast %[[WRB]] : memref<8x64xbf16> to memref<?x?xbf16>
// CHECK-DAG:   %[[GB:.*]] = bufferization.to_buffer %[[G]] read_only
// CHECK-DAG:   %[[GM:.*]] = memref.cast %[[GB]] : memref<8x32x64xbf16> to memref<?x?x?xbf16>
// CHECK-DAG:   %[[UB:.*]] = bufferization.to_buffer %[[U]] read_only
// CHECK-DAG:   %[[UM:.*]] = memref.cast %[[UB]] : memref<8x32x64xbf16> to memref<?x?x?xbf16>
// CHECK-DAG:   %[[DB:.*]] = bufferization.to_buffer %[[D]] read_only
// CHECK-DAG:   %[[DM:.*]] = memref.cast %[[DB]] : memref<8x64x32xbf16> to memref<?x?x?xbf16>
// CHECK-DAG:   %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG:   %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG:   %[[C9:.*]] = arith.constant 9 : index
// CHECK-DAG:   %[[C64:.*]] = arith.constant 64 : index
// CHECK-DAG:   %[[T:.*]] = memref.dim %[[XM]], %[[C0]] : memref<?x?xbf16>
// No shared expert: empty buffers in its place.
// CHECK:       %[[SG:.*]] = memref.alloc(%[[C0]], %[[C0]], %[[C0]]) : memref<?x?x?xbf16>
// CHECK:       %[[SU:.*]] = memref.alloc(%[[C0]], %[[C0]], %[[C0]]) : memref<?x?x?xbf16>
// CHECK:       %[[SD:.*]] = memref.alloc(%[[C0]], %[[C0]], %[[C0]]) : memref<?x?x?xbf16>
// CHECK:       %[[SW:.*]] = memref.alloc(%[[C0]], %[[C0]]) : memref<?x?xbf16>
// No expert biases: [0, 0] buffers.
// CHECK:       %[[BG:.*]] = memref.alloc(%[[C0]], %[[C0]]) : memref<?x?xbf16>
// CHECK:       %[[BU:.*]] = memref.alloc(%[[C0]], %[[C0]]) : memref<?x?xbf16>
// CHECK:       %[[BD:.*]] = memref.alloc(%[[C0]], %[[C0]]) : memref<?x?xbf16>
// CHECK:       %[[OFF:.*]] = memref.alloc(%[[C9]]) : memref<?xi32>
// No capacity, no dropped counts: a buffer of no elements.
// CHECK:       %[[DR:.*]] = memref.alloc(%c0{{[_0-9]*}}) : memref<?xi32>
// CHECK:       %[[YF:.*]] = memref.alloc(%[[T]], %[[C64]]) : memref<?x?xf32>
// No biases: one-element placeholders.
// CHECK:       %[[RB:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK:       %[[SB:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK-NOT:   call
// No co-activation counts: the selection's copy has no rows.
// CHECK:       %[[IDS:.*]] = memref.alloc(%[[C0]], %[[C2]]) : memref<?x?xi32>
// The routing: softmax (0), top_k (0), flags 1 (renormalize), scale 1,
// groups 1, topk_group 1, group score max (0), no capacity.
// CHECK:       call @moe_layer(%[[XM]], %[[WRM]], %[[RB]], %[[SB]], %[[GM]], %[[UM]], %[[DM]], %[[BG]], %[[BU]], %[[BD]], %[[SG]], %[[SU]], %[[SD]], %[[SW]], %[[C2]], %c0_i32{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %c1_i32{{[_0-9]*}}, %cst{{[_0-9]*}}, %cst{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %[[C0]], %[[OFF]], %[[DR]], %[[IDS]], %[[YF]])
// CHECK-NOT:   call
// CHECK:       %[[OUT:.*]] = memref.alloc(%[[T]], %[[C64]]) : memref<?x?xbf16>
// CHECK:       scf.for %[[I:.*]] = %[[C0]] to %[[T]]
// CHECK:         scf.for %[[J:.*]] = %[[C0]] to %[[C64]]
// CHECK:           %[[V:.*]] = memref.load %[[YF]][%[[I]], %[[J]]] : memref<?x?xf32>
// CHECK:           %[[R:.*]] = arith.truncf %[[V]] : f32 to bf16
// CHECK:           memref.store %[[R]], %[[OUT]][%[[I]], %[[J]]] : memref<?x?xbf16>
// CHECK:       %[[OC:.*]] = memref.cast %[[OUT]] : memref<?x?xbf16> to memref<?x64xbf16>
// CHECK:       %[[Y:.*]] = bufferization.to_tensor %[[OC]] restrict : memref<?x64xbf16> to tensor<?x64xbf16>
// CHECK-NOT:   moe.layer
// CHECK:       return %[[Y]] : tensor<?x64xbf16>
// CHECK:       func.func private @moe_layer(memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index, i32, index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>)
// CHECK-NOT:   func.func private

// The library linked in: its kernels, and its host functions, private and
// internal, in place of the declarations.
// LINK:     module attributes {gpu.container_module}
// LINK-DAG: gpu.module @moe_router_kernels
// LINK-DAG: gpu.module @moe_dispatch_kernels
// LINK-DAG: gpu.module @moe_experts
// LINK-DAG: gpu.module @moe_combine_kernels
// LINK-DAG: func.func private @moe_layer(%{{.*}}: memref<?x?xbf16>, %{{.*}}: memref<?x?xbf16>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?xf32>, %{{.*}}: memref<?x?x?xbf16>, %{{.*}}: memref<?x?x?xbf16>, %{{.*}}: memref<?x?x?xbf16>, %{{.*}}: memref<?x?x?xbf16>, %{{.*}}: memref<?x?x?xbf16>, %{{.*}}: memref<?x?x?xbf16>, %{{.*}}: memref<?x?xbf16>, %{{.*}}: index, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: f32, %{{.*}}: f32, %{{.*}}: index, %{{.*}}: index, %{{.*}}: i32, %{{.*}}: index, %{{.*}}: memref<?xi32>, %{{.*}}: memref<?xi32>, %{{.*}}: memref<?x?xf32>) attributes {llvm.linkage = #llvm.linkage<internal>} {
// LINK-DAG: gpu.launch_func async [%{{.*}}] @moe_experts::@gate_up_swiglu_mma
// LINK-DAG: func.func private @moe_router(%{{.*}}: memref<?x?xbf16>, %{{.*}}: memref<?x?xbf16>, %{{.*}}: memref<?x?xi32>, %{{.*}}: memref<?x?xf32>) attributes {llvm.linkage = #llvm.linkage<internal>} {
// LINK-DAG: func.func private @moe_expert_ffn(
// LINK-DAG: gpu.launch_func @moe_combine_kernels::@combine

func.func @layer(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
                 %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
                 %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// The assignments are the dispatch's group sizes, offsets[e + 1] -
// offsets[e], plus the dropped ones, which the library counts for a layer
// with a capacity.

// CHECK-LABEL: func.func @counts(
// CHECK-DAG:   %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG:   %[[C1:.*]] = arith.constant 1 : index
// CHECK:       %[[OFF:.*]] = memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK:       %[[DR:.*]] = memref.alloc(%{{.*}}) : memref<?xi32>
// CHECK:       %[[C4:.*]] = arith.constant 4 : index
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%[[OFF]], %[[DR]],
// CHECK:       %[[LOAD:.*]] = memref.alloc(%[[C4]]) : memref<?xi64>
// CHECK:       %[[DROP:.*]] = memref.alloc(%[[C4]]) : memref<?xi64>
// CHECK:       scf.for %[[E:.*]] = %[[C0]] to %[[C4]] step %[[C1]] {
// CHECK:         %[[E1:.*]] = arith.addi %[[E]], %[[C1]] : index
// CHECK:         %[[LO:.*]] = memref.load %[[OFF]][%[[E]]] : memref<?xi32>
// CHECK:         %[[HI:.*]] = memref.load %[[OFF]][%[[E1]]] : memref<?xi32>
// CHECK:         %[[KEPT:.*]] = arith.subi %[[HI]], %[[LO]] : i32
// CHECK:         %[[LOST:.*]] = memref.load %[[DR]][%[[E]]] : memref<?xi32>
// CHECK:         %[[NE:.*]] = arith.addi %[[KEPT]], %[[LOST]] : i32
// CHECK:         %[[NE64:.*]] = arith.extsi %[[NE]] : i32 to i64
// CHECK:         memref.store %[[NE64]], %[[LOAD]][%[[E]]] : memref<?xi64>
// CHECK:         %[[LOST64:.*]] = arith.extsi %[[LOST]] : i32 to i64
// CHECK:         memref.store %[[LOST64]], %[[DROP]][%[[E]]] : memref<?xi64>
// CHECK:       %[[LC:.*]] = memref.cast %[[LOAD]] : memref<?xi64> to memref<4xi64>
// CHECK:       %[[LT:.*]] = bufferization.to_tensor %[[LC]] restrict : memref<4xi64> to tensor<4xi64>
// CHECK:       %[[DC:.*]] = memref.cast %[[DROP]] : memref<?xi64> to memref<4xi64>
// CHECK:       %[[DT:.*]] = bufferization.to_tensor %[[DC]] restrict : memref<4xi64> to tensor<4xi64>
// CHECK:       return %{{.*}}, %[[LT]], %[[DT]]

func.func @counts(%x: tensor<16x32xbf16>, %wr: tensor<4x32xbf16>,
                  %g: tensor<4x16x32xbf16>, %u: tensor<4x16x32xbf16>,
                  %d: tensor<4x32x16xbf16>)
    -> (tensor<16x32xbf16>, tensor<4xi64>, tensor<4xi64>) {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<4x32xbf16>)
      experts(%g, %u, %d : tensor<4x16x32xbf16>, tensor<4x16x32xbf16>,
              tensor<4x32x16xbf16>)
      {capacity = #moe.capacity<count = 3>,
       routing = #moe.routing<score = softmax, selection = top_k, k = 1,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<16x32xbf16>
  return %y, %load, %dropped : tensor<16x32xbf16>, tensor<4xi64>, tensor<4xi64>
}

// -----

// DeepSeek-V3-style routing: sigmoid (1), grouped_top_k (1), flags 5
// (renormalize, selection bias), scale 2.5, 4 groups, 2 kept, sum_top2 (1);
// the selection bias becomes an f32 buffer [E].

// CHECK-LABEL: func.func @deepseek(
// CHECK-SAME:      %[[B:[^:]*]]: tensor<8xf32>
// CHECK:       %[[BB:.*]] = bufferization.to_buffer %[[B]] read_only
// CHECK:       %[[BM:.*]] = memref.cast %[[BB]] : memref<8xf32> to memref<?xf32>
// CHECK:       %[[SB:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK:       scf.for %[[E:.*]] =
// CHECK:         %[[V:.*]] = memref.load %[[BM]][%[[E]]] : memref<?xf32>
// CHECK:         memref.store %[[V]], %[[SB]][%[[E]]] : memref<?xf32>
// CHECK:       %[[SCALE:.*]] = arith.constant 2.500000e+00 : f32
// CHECK:       call @moe_layer(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[SB]], {{(%[^,]*, )+}}%c1_i32{{[_0-9]*}}, %c1_i32{{[_0-9]*}}, %c5_i32{{[_0-9]*}}, %[[SCALE]], %{{[^,]*}}, %c4{{[_0-9]*}}, %c2{{[_0-9]*}}, %c1_i32{{[_0-9]*}},
func.func @deepseek(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
                    %b: tensor<8xf32>,
                    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
                    %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      bias(%b : tensor<8xf32>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = sigmoid, selection = grouped_top_k,
                              k = 2, groups = 4, topk_group = 2,
                              group_score = sum_top2, renormalize = true,
                              scale = 2.5>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A run-time tau (threshold, 3) is passed as the routing parameter.

// CHECK-LABEL: func.func @threshold(
// CHECK-SAME:      %[[TAU:[^:]*]]: f32
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%c0_i32{{[_0-9]*}}, %c3_i32{{[_0-9]*}}, %c1_i32{{[_0-9]*}}, %{{[^,]*}}, %[[TAU]],
func.func @threshold(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
                     %tau: f32,
                     %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
                     %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      tau(%tau)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = threshold, k = 4,
                              renormalize = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Expert choice: one slot per expert (k = E = 8), softmax scores (0), no
// flags, scale 1, and each expert takes ceil(T * 2 / 8) tokens.

// CHECK-LABEL: func.func @expert_choice(
// CHECK-DAG:   %[[C0:.*]] = arith.constant 0 : index
// CHECK:       %[[T:.*]] = memref.dim %{{.*}}, %[[C0]] : memref<?x?xbf16>
// CHECK:       %[[SLOTS:.*]] = arith.muli %[[T]], %c2{{[_0-9]*}} : index
// CHECK:       %[[CAP:.*]] = arith.ceildivsi %[[SLOTS]], %c8{{[_0-9]*}} : index
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%c8{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %c4_i32{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, {{(%[^,]*, )+}}%[[CAP]], %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}})
func.func @expert_choice(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
                         %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
                         %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = expert_choice,
                              k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// An expert-choice capacity (factor 1.5, at least 2, a multiple of 4):
// ceil(1.5 * T * 2 / 8) in f64, then the minimum and the alignment.

// CHECK-LABEL: func.func @expert_choice_capacity(
// CHECK:       %[[N:.*]] = arith.sitofp %{{.*}} : i64 to f64
// CHECK:       %[[M:.*]] = arith.mulf %{{.*}}, %[[N]] : f64
// CHECK:       %[[Q:.*]] = arith.divf %[[M]], %{{.*}} : f64
// CHECK:       %[[UP:.*]] = math.ceil %[[Q]] : f64
// CHECK:       %[[I:.*]] = arith.fptosi %[[UP]] : f64 to i64
// CHECK:       %[[C:.*]] = arith.index_cast %[[I]] : i64 to index
// CHECK:       %[[LO:.*]] = arith.maxsi %[[C]], %c2{{[_0-9]*}} : index
// CHECK:       %[[A:.*]] = arith.ceildivsi %[[LO]], %c4{{[_0-9]*}} : index
// CHECK:       %[[CAP:.*]] = arith.muli %[[A]], %c4{{[_0-9]*}} : index
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%[[CAP]], %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}})
func.func @expert_choice_capacity(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = expert_choice,
                              k = 2>,
       capacity = #moe.capacity<factor = 1.5, min = 2, align = 4>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A capacity of 4 per expert, score order, renormalized after the drop:
// flags 1 (renormalize) | 16 (capacity) | 2 << 5 (score) | 128 = 209, and
// the capacity passed as `cap`.

// CHECK-LABEL: func.func @capacity_score(
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%c0_i32{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %c209_i32{{[_0-9]*}}, %cst{{[_0-9]*}}, %cst{{[_0-9]*}}, %c1{{[_0-9]*}}, %c1{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}})
func.func @capacity_score(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       capacity = #moe.capacity<count = 4, drop_order = score,
                                renormalize_after_drop = true>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A run-time capacity factor (moe-expose-knobs) in the default
// choice_major order: flags 1 | 16 | 0 << 5 = 17, and the capacity is
// ceil(factor * T * 2 / 8) of the operand (at least 0, a multiple of 1).

// CHECK-LABEL: func.func @capacity_factor(
// CHECK-SAME:      %[[CF:[^:]*]]: f64
// CHECK:       %[[N:.*]] = arith.sitofp %{{.*}} : i64 to f64
// CHECK:       %[[M:.*]] = arith.mulf %[[CF]], %[[N]] : f64
// CHECK:       %[[Q:.*]] = arith.divf %[[M]], %{{.*}} : f64
// CHECK:       %[[UP:.*]] = math.ceil %[[Q]] : f64
// CHECK:       %[[I:.*]] = arith.fptosi %[[UP]] : f64 to i64
// CHECK:       %[[C:.*]] = arith.index_cast %[[I]] : i64 to index
// CHECK:       %[[LO:.*]] = arith.maxsi %[[C]], %{{.*}} : index
// CHECK:       %[[A:.*]] = arith.ceildivsi %[[LO]], %{{.*}} : index
// CHECK:       %[[CAP:.*]] = arith.muli %[[A]], %{{.*}} : index
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%c17_i32{{[_0-9]*}}, {{(%[^,]*, )+}}%[[CAP]], %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}})
func.func @capacity_factor(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %cf: f64, %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      capacity_factor(%cf)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       capacity = #moe.capacity<factor = 1.25>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A Qwen2-MoE shared expert with its sigmoid gate: the projections as one
// expert [1, fs, d] / [1, d, fs], the gate vector [1, d], after the routed
// experts' operands.

// CHECK-LABEL: func.func @shared(
// CHECK-SAME:      %[[SG:[^:]*]]: tensor<128x64xbf16>, %[[SU:[^:]*]]: tensor<128x64xbf16>, %[[SD:[^:]*]]: tensor<64x128xbf16>, %[[WS:[^:]*]]: tensor<1x64xbf16>)
// CHECK:       %[[SGB:.*]] = bufferization.to_buffer %[[SG]] read_only : tensor<128x64xbf16> to memref<128x64xbf16>
// CHECK:       %[[SGE:.*]] = memref.expand_shape %[[SGB]] {{\[\[}}0, 1], [2]] output_shape [1, 128, 64] : memref<128x64xbf16> into memref<1x128x64xbf16>
// CHECK:       %[[SGM:.*]] = memref.cast %[[SGE]] : memref<1x128x64xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[SUM:.*]] = memref.cast %{{.*}} : memref<1x128x64xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[SDB:.*]] = bufferization.to_buffer %[[SD]] read_only : tensor<64x128xbf16> to memref<64x128xbf16>
// CHECK:       %[[SDE:.*]] = memref.expand_shape %[[SDB]] {{\[\[}}0, 1], [2]] output_shape [1, 64, 128] : memref<64x128xbf16> into memref<1x64x128xbf16>
// CHECK:       %[[SDM:.*]] = memref.cast %[[SDE]] : memref<1x64x128xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[WSB:.*]] = bufferization.to_buffer %[[WS]] read_only : tensor<1x64xbf16> to memref<1x64xbf16>
// CHECK:       %[[WSM:.*]] = memref.cast %[[WSB]] : memref<1x64xbf16> to memref<?x?xbf16>
// CHECK:       call @moe_layer(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[SGM]], %[[SUM]], %[[SDM]], %[[WSM]],
func.func @shared(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %d: tensor<8x64x32xbf16>, %sg: tensor<128x64xbf16>,
    %su: tensor<128x64xbf16>, %sd: tensor<64x128xbf16>,
    %ws: tensor<1x64xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      shared(%sg, %su, %sd, %ws : tensor<128x64xbf16>, tensor<128x64xbf16>,
                                  tensor<64x128xbf16>, tensor<1x64xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 4>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// GELU (erf) experts: the activation in flags bits 9-10, 2 << 9 | 1 = 1025.

// CHECK-LABEL: func.func @gelu(
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%c0_i32{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %c1025_i32{{[_0-9]*}},
func.func @gelu(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true>,
       experts = #moe.experts<kind = gated, act = gelu_erf>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Weights applied to the expert input: flags bit 2048, 2048 | 1 = 2049.

// CHECK-LABEL: func.func @apply_input(
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%c0_i32{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %c2049_i32{{[_0-9]*}},
func.func @apply_input(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
              tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2,
                              renormalize = true, apply_weight = input>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// A fused gate_up [E, 2f, d] (GraniteMoE) is passed as both the gate and
// the up operand; the library reads the up rows from row f.

// CHECK-LABEL: func.func @fused_gate_up(
// CHECK-SAME:      %{{[^:]*}}: tensor<?x64xbf16>, %{{[^:]*}}: tensor<8x64xbf16>, %[[GU:[^:]*]]: tensor<8x64x64xbf16>
// CHECK:       %[[GUB:.*]] = bufferization.to_buffer %[[GU]] read_only : tensor<8x64x64xbf16> to memref<8x64x64xbf16>
// CHECK:       %[[GUM:.*]] = memref.cast %[[GUB]] : memref<8x64x64xbf16> to memref<?x?x?xbf16>
// CHECK-NOT:   bufferization.to_buffer %[[GU]]
// CHECK:       call @moe_layer(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[GUM]], %[[GUM]], %{{[^,]*}},
func.func @fused_gate_up(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %gu: tensor<8x64x64xbf16>, %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%gu, %d : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Switch-style plain MLP experts (w1, w2; relu, code 3): w1 as the gate, an
// empty up projection, w2 as the down; flags 3 << 9 | 16 (a capacity) |
// 0 << 5 (choice_major) = 1552.

// CHECK-LABEL: func.func @switch_mlp(
// CHECK-SAME:      %{{[^:]*}}: tensor<?x64xbf16>, %{{[^:]*}}: tensor<8x64xbf16>, %[[W1:[^:]*]]: tensor<8x128x64xbf16>, %[[W2:[^:]*]]: tensor<8x64x128xbf16>)
// CHECK:       %[[C0:.*]] = arith.constant 0 : index
// CHECK:       %[[W1B:.*]] = bufferization.to_buffer %[[W1]] read_only
// CHECK:       %[[W1M:.*]] = memref.cast %[[W1B]] : memref<8x128x64xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[UP:.*]] = memref.alloc(%[[C0]], %[[C0]], %[[C0]]) : memref<?x?x?xbf16>
// CHECK:       %[[W2B:.*]] = bufferization.to_buffer %[[W2]] read_only
// CHECK:       %[[W2M:.*]] = memref.cast %[[W2B]] : memref<8x64x128xbf16> to memref<?x?x?xbf16>
// CHECK:       call @moe_layer(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[W1M]], %[[UP]], %[[W2M]], {{(%[^,]*, )+}}%c0_i32{{[_0-9]*}}, %c0_i32{{[_0-9]*}}, %c1552_i32{{[_0-9]*}},
func.func @switch_mlp(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %w1: tensor<8x128x64xbf16>, %w2: tensor<8x64x128xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%w1, %w2 : tensor<8x128x64xbf16>, tensor<8x64x128xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 1>,
       capacity = #moe.capacity<factor = 1.25>,
       experts = #moe.experts<kind = mlp, act = relu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// LoRA experts (kind = lora): @moe_lora_layer with the base [40, 64] as one
// expert [1, 40, 64], empty up and down projections, the pair (A, B) as
// the gate's and the other pairs empty, and alpha / r = 16 / 8 = 2 after
// the routing; the output has d_out = 40 columns.

// CHECK-LABEL: func.func @lora(
// CHECK-SAME:      %{{[^:]*}}: tensor<?x64xbf16>, %{{[^:]*}}: tensor<8x64xbf16>, %[[BASE:[^:]*]]: tensor<40x64xbf16>, %[[A:[^:]*]]: tensor<8x8x64xbf16>, %[[B:[^:]*]]: tensor<8x40x8xbf16>)
// CHECK:       %[[C0:.*]] = arith.constant 0 : index
// CHECK:       %[[BB:.*]] = bufferization.to_buffer %[[BASE]] read_only : tensor<40x64xbf16> to memref<40x64xbf16>
// CHECK:       %[[BE:.*]] = memref.expand_shape %[[BB]] {{\[\[}}0, 1], [2]] output_shape [1, 40, 64] : memref<40x64xbf16> into memref<1x40x64xbf16>
// CHECK:       %[[P:.*]] = memref.cast %[[BE]] : memref<1x40x64xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[PU:.*]] = memref.alloc(%[[C0]], %[[C0]], %[[C0]]) : memref<?x?x?xbf16>
// CHECK:       %[[PD:.*]] = memref.alloc(%[[C0]], %[[C0]], %[[C0]]) : memref<?x?x?xbf16>
// CHECK:       %[[AB:.*]] = bufferization.to_buffer %[[A]] read_only
// CHECK:       %[[AM:.*]] = memref.cast %[[AB]] : memref<8x8x64xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[BBB:.*]] = bufferization.to_buffer %[[B]] read_only
// CHECK:       %[[BM:.*]] = memref.cast %[[BBB]] : memref<8x40x8xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[NONE:.*]] = memref.alloc(%[[C0]], %[[C0]], %[[C0]]) : memref<?x?x?xbf16>
// CHECK:       %[[Y:.*]] = memref.alloc(%{{.*}}, %c40{{[_0-9]*}}) : memref<?x?xf32>
// CHECK:       %[[S:.*]] = arith.constant 2.000000e+00 : f32
// CHECK:       call @moe_lora_layer(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[P]], %[[PU]], %[[PD]], %[[AM]], %[[BM]], %[[NONE]], %[[NONE]], %[[NONE]], %[[NONE]], {{(%[^,]*, )+}}%[[S]], %[[C0]], %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[Y]])
// CHECK-NOT:   moe.layer
func.func @lora(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %base: tensor<40x64xbf16>, %a: tensor<8x8x64xbf16>,
    %b: tensor<8x40x8xbf16>) -> tensor<?x40xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%base, %a, %b : tensor<40x64xbf16>, tensor<8x8x64xbf16>,
                              tensor<8x40x8xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = lora, alpha = 16.0>} : tensor<?x64xbf16>
  return %y : tensor<?x40xbf16>
}

// -----

// MixLoRA (kind = lora_gated): the frozen gate, up and down as experts
// [1, f, d], [1, f, d], [1, d, f], then the six LoRA operands in order, and
// alpha / r = 8 / 16.

// CHECK-LABEL: func.func @lora_gated(
// CHECK-SAME:      %[[G:[^:]*]]: tensor<32x64xbf16>, %[[U:[^:]*]]: tensor<32x64xbf16>, %[[D:[^:]*]]: tensor<64x32xbf16>, %[[AG:[^:]*]]: tensor<8x16x64xbf16>, %[[BG:[^:]*]]: tensor<8x32x16xbf16>, %[[AU:[^:]*]]: tensor<8x16x64xbf16>, %[[BU:[^:]*]]: tensor<8x32x16xbf16>, %[[AD:[^:]*]]: tensor<8x16x32xbf16>, %[[BD:[^:]*]]: tensor<8x64x16xbf16>)
// CHECK:       memref.expand_shape {{.*}} output_shape [1, 32, 64]
// CHECK:       memref.expand_shape {{.*}} output_shape [1, 32, 64]
// CHECK:       memref.expand_shape {{.*}} output_shape [1, 64, 32]
// CHECK:       bufferization.to_buffer %[[AG]]
// CHECK:       bufferization.to_buffer %[[BG]]
// CHECK:       bufferization.to_buffer %[[AU]]
// CHECK:       bufferization.to_buffer %[[BU]]
// CHECK:       bufferization.to_buffer %[[AD]]
// CHECK:       bufferization.to_buffer %[[BD]]
// CHECK:       %[[S:.*]] = arith.constant 5.000000e-01 : f32
// CHECK:       call @moe_lora_layer({{(%[^,]*, )+}}%[[S]], %c0{{[_0-9]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}})
func.func @lora_gated(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<32x64xbf16>, %u: tensor<32x64xbf16>, %d: tensor<64x32xbf16>,
    %ag: tensor<8x16x64xbf16>, %bg: tensor<8x32x16xbf16>,
    %au: tensor<8x16x64xbf16>, %bu: tensor<8x32x16xbf16>,
    %ad: tensor<8x16x32xbf16>, %bd: tensor<8x64x16xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d, %ag, %bg, %au, %bu, %ad, %bd
              : tensor<32x64xbf16>, tensor<32x64xbf16>, tensor<64x32xbf16>,
                tensor<8x16x64xbf16>, tensor<8x32x16xbf16>,
                tensor<8x16x64xbf16>, tensor<8x32x16xbf16>,
                tensor<8x16x32xbf16>, tensor<8x64x16xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2, renormalize = true>,
       experts = #moe.experts<kind = lora_gated, alpha = 8.0>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// Co-activation counts (moe.record_stats with_coactivation): the library
// copies the selection before any drop into a [T, k] host buffer, which
// becomes the record's expert ids (the CPU's decomposition gives it those).

// CHECK-LABEL: func.func @coactivation(
// CHECK:       %[[T:.*]] = memref.dim %{{.*}}, %c0{{[_0-9]*}} : memref<?x?xbf16>
// CHECK:       %[[IDS:.*]] = memref.alloc(%[[T]], %c2{{[_0-9]*}}) : memref<?x?xi32>
// CHECK:       call @moe_layer({{(%[^,]*, )+}}%[[IDS]], %{{[^,]*}})
// CHECK:       %[[IDC:.*]] = memref.cast %[[IDS]] : memref<?x?xi32> to memref<?x2xi32>
// CHECK:       %[[IDT:.*]] = bufferization.to_tensor %[[IDC]] restrict : memref<?x2xi32> to tensor<?x2xi32>
// CHECK:       moe.record_stats %{{.*}}, %{{.*}} tokens(%{{.*}}) coactivation(%[[IDT]] : tensor<?x2xi32>) layer = "coactivation" : tensor<8xi64>
func.func @coactivation(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %g: tensor<8x32x64xbf16>, %u: tensor<8x32x64xbf16>,
    %d: tensor<8x64x32xbf16>) -> tensor<?x64xbf16> {
  %c0 = arith.constant 0 : index
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%g, %u, %d : tensor<8x32x64xbf16>, tensor<8x32x64xbf16>,
                           tensor<8x64x32xbf16>)
      {routing = #moe.routing<score = softmax, selection = top_k, k = 2>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  %tokens = tensor.dim %x, %c0 : tensor<?x64xbf16>
  moe.record_stats %load, %dropped tokens(%tokens) layer = "coactivation"
      {with_coactivation} : tensor<8xi64>
  return %y : tensor<?x64xbf16>
}

// -----

// A fused shared gate_up [2 fs, d] is passed as both the shared gate and
// up projections [1, 2 fs, d] (the library reads the up rows from row fs),
// as a routed gate_up is.

// CHECK-LABEL: func.func @shared_gate_up(
// CHECK-SAME:      %[[SGU:[^:]*]]: tensor<256x64xbf16>, %[[SD:[^:]*]]: tensor<64x128xbf16>)
// CHECK:       %[[SGUB:.*]] = bufferization.to_buffer %[[SGU]] read_only : tensor<256x64xbf16> to memref<256x64xbf16>
// CHECK:       %[[SGUE:.*]] = memref.expand_shape %[[SGUB]] {{\[\[}}0, 1], [2]] output_shape [1, 256, 64] : memref<256x64xbf16> into memref<1x256x64xbf16>
// CHECK:       %[[SGUM:.*]] = memref.cast %[[SGUE]] : memref<1x256x64xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[SDB:.*]] = bufferization.to_buffer %[[SD]] read_only : tensor<64x128xbf16> to memref<64x128xbf16>
// CHECK:       %[[SDE:.*]] = memref.expand_shape %[[SDB]] {{\[\[}}0, 1], [2]] output_shape [1, 64, 128] : memref<64x128xbf16> into memref<1x64x128xbf16>
// CHECK:       %[[SDM:.*]] = memref.cast %[[SDE]] : memref<1x64x128xbf16> to memref<?x?x?xbf16>
// CHECK:       call @moe_layer(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[SGUM]], %[[SGUM]], %[[SDM]], %{{[^,]*}},
func.func @shared_gate_up(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %gu: tensor<8x64x64xbf16>, %d: tensor<8x64x32xbf16>,
    %sgu: tensor<256x64xbf16>, %sd: tensor<64x128xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%gu, %d : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      shared(%sgu, %sd : tensor<256x64xbf16>, tensor<64x128xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated, act = silu>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}

// -----

// GPT-OSS: expert biases after the experts' weights (a fused gate_up bias
// [E, 2f] as both gate and up, as its weight is), and swiglu_oai as
// activation code 4, flags bit 4096 (with 8, softmax_selected).

// CHECK-LABEL: func.func @gpt_oss(
// CHECK-SAME:      %[[BGU:[^:]*]]: tensor<8x64xbf16>, %[[BD:[^:]*]]: tensor<8x64xbf16>)
// CHECK:       %[[GUM:.*]] = memref.cast %{{.*}} : memref<8x64x64xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[DM:.*]] = memref.cast %{{.*}} : memref<8x64x32xbf16> to memref<?x?x?xbf16>
// CHECK:       %[[BGUB:.*]] = bufferization.to_buffer %[[BGU]] read_only : tensor<8x64xbf16> to memref<8x64xbf16>
// CHECK:       %[[BGUM:.*]] = memref.cast %[[BGUB]] : memref<8x64xbf16> to memref<?x?xbf16>
// CHECK:       %[[BDB:.*]] = bufferization.to_buffer %[[BD]] read_only : tensor<8x64xbf16> to memref<8x64xbf16>
// CHECK:       %[[BDM:.*]] = memref.cast %[[BDB]] : memref<8x64xbf16> to memref<?x?xbf16>
// CHECK:       %[[FLAGS:.*]] = arith.constant 4104 : i32
// CHECK:       call @moe_layer(%{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[GUM]], %[[GUM]], %[[DM]], %[[BGUM]], %[[BGUM]], %[[BDM]], %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %{{[^,]*}}, %[[FLAGS]],
func.func @gpt_oss(%x: tensor<?x64xbf16>, %wr: tensor<8x64xbf16>,
    %gu: tensor<8x64x64xbf16>, %dn: tensor<8x64x32xbf16>,
    %bgu: tensor<8x64xbf16>, %bd: tensor<8x64xbf16>) -> tensor<?x64xbf16> {
  %y, %load, %dropped = moe.layer %x router(%wr : tensor<8x64xbf16>)
      experts(%gu, %dn : tensor<8x64x64xbf16>, tensor<8x64x32xbf16>)
      expert_biases(%bgu, %bd : tensor<8x64xbf16>, tensor<8x64xbf16>)
      {routing = #moe.routing<score = logits, selection = top_k, k = 2,
                              weights = softmax_selected>,
       experts = #moe.experts<kind = gated, act = swiglu_oai>} : tensor<?x64xbf16>
  return %y : tensor<?x64xbf16>
}
