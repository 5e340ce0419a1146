//===- experts.mlir - Grouped expert GEMMs on tensor cores -----*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The expert computation of a MoE layer on the grouped layout that
// dispatch.mlir builds: the rows of expert e are X[off[e] .. off[e+1]).
//
//   X   [N, K]        bf16  grouped rows; rows past off[E] are ignored
//   W   [E, Nout, K]  bf16  checkpoint layout [out_features, in_features]
//   off [E + 1]       i32   group offsets: off[0] = 0, non-decreasing,
//                           off[E] <= N
//   Y   [N, Nout]     f32   Y[r, j] = sum_k X[r, k] * W[e(r), j, k]; rows
//                           past off[E] are not written
//
// Expert biases (GPT-OSS; gated experts): bf16 [E, n] operands, no rows
// when the layer has none, added in f32 to the sums in the epilogues
// (@plus_bias): the gate's and the up's before the activation (the up's
// from column columns(B) - F of the operand), the down projection's to Y.
//
// Kernels of @moe_experts:
//
//   build_tile_map      1 block of 256 threads (ceil(E / 256) consecutive
//                       groups a thread). A block scan of
//                       the groups' tile counts; then lists the 64-row
//                       tiles of every non-empty group in expert order,
//                       entry i (e, m0, mend, 0): rows m0 .. mend - 1 of
//                       expert e; at most ceil(N / 64) + min(E, N) tiles,
//                       and the entries past them (-1, 0, 0, 0). A GEMM
//                       block reads its entry with one 16-byte load.
//   grouped_gemm_mma    Y = X W[e]^T. Grid (ceil(Nout / 64),
//                       ceil(N / 64) + min(E, N)),
//                       block 128 (4 warps, 2 x 2). A block takes a tile of
//                       the map and 64 output columns, in launch order 16
//                       tiles of a column before the next column
//                       (@gemm_block; blocks past the map's tiles
//                       return at once). Block tile
//                       64 x 64, k step 32; warp tile 32 x 32 as 2 x 4
//                       mma.sync m16n8k16 (bf16 in, f32 accumulators).
//                       Operands are staged by cp.async (16 bytes, zero-fill
//                       for masked rows and the K tail) into two buffers of
//                       padded shared memory (row pitch 40 elements = 80
//                       bytes: 16-byte aligned, no ldmatrix bank conflicts)
//                       and read by ldmatrix.x4. 20 KiB of shared memory.
//   gate_up_swiglu_mma  H = act(X Wg[e]^T) * (X Wu[e]^T), H [N, F] bf16, act
//                       a kernel argument (0 silu, 1 gelu_tanh, 2 gelu_erf,
//                       3 relu, 4 swiglu_oai: @gate_up). Same grid, block
//                       and pipeline; each block
//                       loads one X tile and two weight tiles (30 KiB
//                       shared), keeps a gate and an up accumulator set per
//                       warp and applies the gated activation in registers
//                       before the bf16 store.
//   gemv_experts        The GEMMs for few rows (decoding; the host functions
//                       pick it when N <= max(16, 2 E)): one warp per output
//                       column, 8 per block of 256, a block per (8 columns,
//                       tile); the weight rows prefetched into L2 (a
//                       128-byte line a lane), then the rows of the tile 4
//                       at a time against each weight row (16-byte loads,
//                       two chunks of K in flight a lane, f32 sums, a
//                       butterfly across the lanes). Y = X W[e]^T (f32), or the gated
//                       activation H (bf16) of gate and up weights.
//   gemv_pairs          gemv_experts' Y = X W[e]^T with two adjacent output
//                       columns a warp (half the blocks, the bytes of two
//                       weight rows in flight a warp), for short rows: the
//                       host functions take it when a row is at most 4 KiB
//                       (@moe_gpu_gemv_pairs; MOE_GPU_GEMV_PAIRS overrides).
//                       Each column's sum is in gemv_experts' order: the
//                       outputs are bitwise the same.
//   gemv_experts_bias   gemv_experts with expert biases (GPT-OSS), a kernel
//                       of its own so that gemv_experts keeps its registers.
//   concat_biases       Separate gate and up biases [E, F] joined into one
//                       [E, 2F], the layout the gated kernels take.
//   activate            H = bf16(act(Hf)) elementwise, for plain MLP experts
//                       (an empty Wu: the first GEMM is grouped_gemm_mma
//                       into f32 rows Hf). One thread per element.
//   grouped_gemm_ref    Scalar reference of grouped_gemm_mma: one thread per
//   gate_up_swiglu_ref  element of Y (or H), blocks of 16 x 16, f32 sums in
//                       k order. For checking the fast kernels on a GPU.
//
// Limits (not checked on the device; the host functions assert the first
// two): K % 8 == 0 (a 16-byte cp.async chunk lies wholly inside or outside
// a row), E <= 2048 (the router's and the permutation's shared tables), base pointers 16-byte
// aligned (gpu.alloc gives 256), N < 2^31. The tiles of the map go in the
// grid's y, and in z past 65535 (moe_gpu_grid_y, _z; @block_index_y).
// N, Nout and the K tail are arbitrary. Every output element is computed by
// one thread in a fixed order: results are deterministic run to run.
//
// Host functions (host memrefs in and out; device buffers are allocated,
// copied and freed inside, one stream, one synchronization at the end):
//   @moe_grouped_gemm, @moe_grouped_gemm_ref (X, W, off, Y)
//   @moe_expert_ffn, @moe_expert_ffn_ref (X, Wg, Wu, Wd, off, Y): the gated
//     expert Y = (silu(X Wg^T) * (X Wu^T)) Wd^T, Wg/Wu [E, F, D],
//     Wd [E, D, F], H rounded to bf16 between the two GEMMs.
//   @moe_expert_ffn_async (X, Wg, Wu, Wd, off, Y, act, stream) -> stream:
//     the same with activation `act`, enqueued on the caller's stream, on device buffers; temporaries
//     in stream order, no synchronization. @moe_expert_ffn is this call
//     between its copies, and layer.mlir chains it with the other kernels.
//
//===----------------------------------------------------------------------===//

// A wgmma m64n128 f32 accumulator: the 64 registers of a thread, and the
// same as the LLVM type of an !nvgpu.warpgroup.accumulator of 64 x 128.
!wgmma_acc = !llvm.struct<(
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32)>
!wgmma_tile = !llvm.struct<(!wgmma_acc)>

// A wgmma m64n256 f32 accumulator: the 128 registers of a thread, the LLVM
// type of an !nvgpu.warpgroup.accumulator of 64 x 256.
!wgmma_acc256 = !llvm.struct<(
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32,
    f32, f32, f32, f32, f32, f32, f32, f32)>
!wgmma_tile256 = !llvm.struct<(!wgmma_acc256)>

module attributes {gpu.container_module} {

gpu.module @moe_experts {

  // ---------------------------------------------------------------------------
  // One m16n8k16 bf16 MMA.  a: 4 regs of 2xbf16 from ldmatrix.x4 (A fragment),
  // b: 2 regs of 2xbf16 (B fragment, "col" layout == W row-major [n][k]).
  // nvgpu.mma.sync cannot be used for bf16 in MLIR 22.1 (its lowering has no bf16
  // case: "failed to deduce operand PTX types"), hence nvvm.mma.sync.
  func.func private @mma_bf16(%a: vector<4x2xbf16>, %b: vector<2x2xbf16>,
                              %c: vector<4xf32>) -> vector<4xf32> {
    %a0v = vector.extract %a[0] : vector<2xbf16> from vector<4x2xbf16>
    %a1v = vector.extract %a[1] : vector<2xbf16> from vector<4x2xbf16>
    %a2v = vector.extract %a[2] : vector<2xbf16> from vector<4x2xbf16>
    %a3v = vector.extract %a[3] : vector<2xbf16> from vector<4x2xbf16>
    %b0v = vector.extract %b[0] : vector<2xbf16> from vector<2x2xbf16>
    %b1v = vector.extract %b[1] : vector<2xbf16> from vector<2x2xbf16>
    %a0c = vector.bitcast %a0v : vector<2xbf16> to vector<1xi32>
    %a1c = vector.bitcast %a1v : vector<2xbf16> to vector<1xi32>
    %a2c = vector.bitcast %a2v : vector<2xbf16> to vector<1xi32>
    %a3c = vector.bitcast %a3v : vector<2xbf16> to vector<1xi32>
    %b0c = vector.bitcast %b0v : vector<2xbf16> to vector<1xi32>
    %b1c = vector.bitcast %b1v : vector<2xbf16> to vector<1xi32>
    %a0 = vector.extract %a0c[0] : i32 from vector<1xi32>
    %a1 = vector.extract %a1c[0] : i32 from vector<1xi32>
    %a2 = vector.extract %a2c[0] : i32 from vector<1xi32>
    %a3 = vector.extract %a3c[0] : i32 from vector<1xi32>
    %b0 = vector.extract %b0c[0] : i32 from vector<1xi32>
    %b1 = vector.extract %b1c[0] : i32 from vector<1xi32>
    %c0 = vector.extract %c[0] : f32 from vector<4xf32>
    %c1 = vector.extract %c[1] : f32 from vector<4xf32>
    %c2 = vector.extract %c[2] : f32 from vector<4xf32>
    %c3 = vector.extract %c[3] : f32 from vector<4xf32>
    %d = nvvm.mma.sync A[%a0, %a1, %a2, %a3] B[%b0, %b1] C[%c0, %c1, %c2, %c3]
      {layoutA = #nvvm.mma_layout<row>, layoutB = #nvvm.mma_layout<col>,
       multiplicandAPtxType = #nvvm.mma_type<bf16>,
       multiplicandBPtxType = #nvvm.mma_type<bf16>,
       shape = #nvvm.shape<m = 16, n = 8, k = 16>}
      : (i32, i32, f32) -> !llvm.struct<(f32, f32, f32, f32)>
    %d0 = llvm.extractvalue %d[0] : !llvm.struct<(f32, f32, f32, f32)>
    %d1 = llvm.extractvalue %d[1] : !llvm.struct<(f32, f32, f32, f32)>
    %d2 = llvm.extractvalue %d[2] : !llvm.struct<(f32, f32, f32, f32)>
    %d3 = llvm.extractvalue %d[3] : !llvm.struct<(f32, f32, f32, f32)>
    %r = vector.from_elements %d0, %d1, %d2, %d3 : vector<4xf32>
    return %r : vector<4xf32>
  }

  // Guarded store of one accumulator fragment: acc[0..1] -> (r0, c..c+1),
  // acc[2..3] -> (r0+8, c..c+1); rows must be < rend, columns < nout.
  func.func private @store_frag(%Y: memref<?x?xf32>, %acc0: vector<4xf32>, %r0: index,
                                %c: index, %rend: index, %nout: index,
                                %Bias: memref<?x?xbf16>, %e: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %r1 = arith.addi %r0, %c8 : index
    %cc1 = arith.addi %c, %c1 : index
    %acc = func.call @plus_bias_frag(%acc0, %Bias, %e, %c0, %c, %nout)
        : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index)
        -> vector<4xf32>
    %v0 = vector.extract %acc[0] : f32 from vector<4xf32>
    %v1 = vector.extract %acc[1] : f32 from vector<4xf32>
    %v2 = vector.extract %acc[2] : f32 from vector<4xf32>
    %v3 = vector.extract %acc[3] : f32 from vector<4xf32>
    %okr0 = arith.cmpi ult, %r0, %rend : index
    %okr1 = arith.cmpi ult, %r1, %rend : index
    %okc0 = arith.cmpi ult, %c, %nout : index
    %okc1 = arith.cmpi ult, %cc1, %nout : index
    %p00 = arith.andi %okr0, %okc0 : i1
    %p01 = arith.andi %okr0, %okc1 : i1
    %p10 = arith.andi %okr1, %okc0 : i1
    %p11 = arith.andi %okr1, %okc1 : i1
    scf.if %p00 { memref.store %v0, %Y[%r0, %c] : memref<?x?xf32> }
    scf.if %p01 { memref.store %v1, %Y[%r0, %cc1] : memref<?x?xf32> }
    scf.if %p10 { memref.store %v2, %Y[%r1, %c] : memref<?x?xf32> }
    scf.if %p11 { memref.store %v3, %Y[%r1, %cc1] : memref<?x?xf32> }
    return
  }

  // Number of bf16 elements of the 8-wide chunk starting at column kcol that lie
  // inside a row of length K (0..8); 0 when the row itself is masked.
  func.func private @chunk_elems(%valid: i1, %kcol: index, %K: index) -> index {
    %c0 = arith.constant 0 : index
    %c8 = arith.constant 8 : index
    %inK = arith.cmpi ult, %kcol, %K : index
    %rem = arith.subi %K, %kcol : index
    %remc = arith.minui %rem, %c8 : index
    %n0 = arith.select %inK, %remc, %c0 : index
    %n = arith.select %valid, %n0, %c0 : index
    return %n : index
  }

  // act(g) for the activation code `act` (0 silu, 1 gelu_tanh, 2 gelu_erf,
  // 3 relu), in the operations of the CPU lowering.
  func.func private @activation(%g: f32, %act: i32) -> f32 {
    %one = arith.constant 1.0 : f32
    %half = arith.constant 0.5 : f32
    %zero = arith.constant 0.0 : f32
    %a = arith.index_cast %act : i32 to index
    %h = scf.index_switch %a -> f32
    case 1 {
      // 0.5 g (1 + tanh(sqrt(2 / pi) (g + 0.044715 g^3)))
      %k0 = arith.constant 0.797884583 : f32
      %k1 = arith.constant 0.044715 : f32
      %g2 = arith.mulf %g, %g : f32
      %g3 = arith.mulf %g, %g2 : f32
      %c = arith.mulf %k1, %g3 : f32
      %in = arith.addf %g, %c : f32
      %sc = arith.mulf %k0, %in : f32
      %t = math.tanh %sc : f32
      %hg = arith.mulf %half, %g : f32
      %t1 = arith.addf %one, %t : f32
      %r = arith.mulf %hg, %t1 : f32
      scf.yield %r : f32
    }
    case 2 {
      // 0.5 g (1 + erf(g / sqrt(2)))
      %k = arith.constant 0.707106769 : f32
      %sc = arith.mulf %g, %k : f32
      %e = math.erf %sc : f32
      %hg = arith.mulf %half, %g : f32
      %e1 = arith.addf %one, %e : f32
      %r = arith.mulf %hg, %e1 : f32
      scf.yield %r : f32
    }
    case 3 {
      %r = arith.maximumf %g, %zero : f32
      scf.yield %r : f32
    }
    default {
      // g / (1 + exp(-g))
      %ng = arith.negf %g : f32
      %e = math.exp %ng : f32
      %den = arith.addf %one, %e : f32
      %r = arith.divf %g, %den : f32
      scf.yield %r : f32
    }
    return %h : f32
  }

  // The gated activation of one gate value g and up value u: act(g) * u,
  // and for act 4 (swiglu_oai) GPT-OSS's clamped SwiGLU
  // (clamp(u, -7, 7) + 1) * g' * sigmoid(1.702 g'), g' = min(g, 7), in the
  // operations of the CPU lowering (a NaN propagates through the clamps).
  func.func private @gate_up(%g: f32, %u: f32, %act: i32) -> f32 {
    %oai = arith.constant 4 : i32
    %is_oai = arith.cmpi eq, %act, %oai : i32
    %h = scf.if %is_oai -> f32 {
      %one = arith.constant 1.0 : f32
      %limit = arith.constant 7.0 : f32
      %nlimit = arith.constant -7.0 : f32
      %alpha = arith.constant 1.702 : f32
      %gc = arith.minimumf %g, %limit : f32
      %u1 = arith.minimumf %u, %limit : f32
      %uc = arith.maximumf %u1, %nlimit : f32
      %ga = arith.mulf %gc, %alpha : f32
      %nga = arith.negf %ga : f32
      %ex = math.exp %nga : f32
      %den = arith.addf %one, %ex : f32
      %sig = arith.divf %one, %den : f32
      %glu = arith.mulf %gc, %sig : f32
      %up = arith.addf %uc, %one : f32
      %r = arith.mulf %up, %glu : f32
      scf.yield %r : f32
    } else {
      %a = func.call @activation(%g, %act) : (f32, i32) -> f32
      %r = arith.mulf %a, %u : f32
      scf.yield %r : f32
    }
    return %h : f32
  }

  // @gate_up on an accumulator fragment.
  func.func private @gated(%g: vector<4xf32>, %u: vector<4xf32>, %act: i32) -> vector<4xf32> {
    %a0 = vector.extract %g[0] : f32 from vector<4xf32>
    %a1 = vector.extract %g[1] : f32 from vector<4xf32>
    %a2 = vector.extract %g[2] : f32 from vector<4xf32>
    %a3 = vector.extract %g[3] : f32 from vector<4xf32>
    %u0 = vector.extract %u[0] : f32 from vector<4xf32>
    %u1 = vector.extract %u[1] : f32 from vector<4xf32>
    %u2 = vector.extract %u[2] : f32 from vector<4xf32>
    %u3 = vector.extract %u[3] : f32 from vector<4xf32>
    %h0 = func.call @gate_up(%a0, %u0, %act) : (f32, f32, i32) -> f32
    %h1 = func.call @gate_up(%a1, %u1, %act) : (f32, f32, i32) -> f32
    %h2 = func.call @gate_up(%a2, %u2, %act) : (f32, f32, i32) -> f32
    %h3 = func.call @gate_up(%a3, %u3, %act) : (f32, f32, i32) -> f32
    %h = vector.from_elements %h0, %h1, %h2, %h3 : vector<4xf32>
    return %h : vector<4xf32>
  }

  // B[e, boff + c] in f32, the expert bias of output column c < n, or -0
  // when B has no rows or c >= n: v + -0 is v for every v (-0 included,
  // which v + 0 would turn into +0), so adding the result is exact
  // without biases.
  func.func private @bias_value(%B: memref<?x?xbf16>, %e: index,
                                %boff: index, %c: index, %n: index) -> f32 {
    %c0 = arith.constant 0 : index
    %nzero = arith.constant -0.0 : f32
    %rows = memref.dim %B, %c0 : memref<?x?xbf16>
    %has = arith.cmpi ne, %rows, %c0 : index
    %inside = arith.cmpi ult, %c, %n : index
    %add = arith.andi %has, %inside : i1
    %v = scf.if %add -> f32 {
      %col = arith.addi %boff, %c : index
      %b = memref.load %B[%e, %col] : memref<?x?xbf16>
      %bf = arith.extf %b : bf16 to f32
      scf.yield %bf : f32
    } else {
      scf.yield %nzero : f32
    }
    return %v : f32
  }

  // v + @bias_value(B, e, boff, c, n).
  func.func private @plus_bias(%v: f32, %B: memref<?x?xbf16>, %e: index,
                               %boff: index, %c: index, %n: index) -> f32 {
    %b = func.call @bias_value(%B, %e, %boff, %c, %n)
        : (memref<?x?xbf16>, index, index, index, index) -> f32
    %r = arith.addf %v, %b : f32
    return %r : f32
  }

  // @plus_bias on four values of columns c0, c1, c2 and c3.
  func.func private @plus_bias_cols(%v: vector<4xf32>, %B: memref<?x?xbf16>,
                                    %e: index, %boff: index, %c0: index,
                                    %c1: index, %c2: index, %c3: index,
                                    %n: index) -> vector<4xf32> {
    %v0 = vector.extract %v[0] : f32 from vector<4xf32>
    %v1 = vector.extract %v[1] : f32 from vector<4xf32>
    %v2 = vector.extract %v[2] : f32 from vector<4xf32>
    %v3 = vector.extract %v[3] : f32 from vector<4xf32>
    %b0 = func.call @plus_bias(%v0, %B, %e, %boff, %c0, %n)
        : (f32, memref<?x?xbf16>, index, index, index, index) -> f32
    %b1 = func.call @plus_bias(%v1, %B, %e, %boff, %c1, %n)
        : (f32, memref<?x?xbf16>, index, index, index, index) -> f32
    %b2 = func.call @plus_bias(%v2, %B, %e, %boff, %c2, %n)
        : (f32, memref<?x?xbf16>, index, index, index, index) -> f32
    %b3 = func.call @plus_bias(%v3, %B, %e, %boff, %c3, %n)
        : (f32, memref<?x?xbf16>, index, index, index, index) -> f32
    %r = vector.from_elements %b0, %b1, %b2, %b3 : vector<4xf32>
    return %r : vector<4xf32>
  }

  // @plus_bias on an mma.sync accumulator fragment: elements 0 and 2 are of
  // column c, 1 and 3 of column c + 1.
  func.func private @plus_bias_frag(%acc: vector<4xf32>, %B: memref<?x?xbf16>,
                                    %e: index, %boff: index, %c: index,
                                    %n: index) -> vector<4xf32> {
    %one = arith.constant 1 : index
    %cc1 = arith.addi %c, %one : index
    %r = func.call @plus_bias_cols(%acc, %B, %e, %boff, %c, %cc1, %c, %cc1, %n)
        : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index, index,
           index, index) -> vector<4xf32>
    return %r : vector<4xf32>
  }

  // @plus_bias on four consecutive columns c .. c + 3.
  func.func private @plus_bias4(%v: vector<4xf32>, %B: memref<?x?xbf16>,
                                %e: index, %boff: index, %c: index,
                                %n: index) -> vector<4xf32> {
    %one = arith.constant 1 : index
    %two = arith.constant 2 : index
    %three = arith.constant 3 : index
    %cc1 = arith.addi %c, %one : index
    %cc2 = arith.addi %c, %two : index
    %cc3 = arith.addi %c, %three : index
    %r = func.call @plus_bias_cols(%v, %B, %e, %boff, %c, %cc1, %cc2, %cc3, %n)
        : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index, index,
           index, index) -> vector<4xf32>
    return %r : vector<4xf32>
  }

  // H = bf16(act(Hf)) elementwise (plain MLP experts), one thread per
  // element.
  gpu.func @activate(%Hf: memref<?x?xf32>, %H: memref<?x?xbf16>, %act: i32)
      kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %N = memref.dim %Hf, %c0 : memref<?x?xf32>
    %F = memref.dim %Hf, %c1 : memref<?x?xf32>
    %NF = arith.muli %N, %F : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %bdim : index
    %i = arith.addi %i0, %tid : index
    %in = arith.cmpi ult, %i, %NF : index
    scf.if %in {
      %r = arith.divui %i, %F : index
      %c = arith.remui %i, %F : index
      %v = memref.load %Hf[%r, %c] : memref<?x?xf32>
      %a = func.call @activation(%v, %act) : (f32, i32) -> f32
      %b = arith.truncf %a : f32 to bf16
      memref.store %b, %H[%r, %c] : memref<?x?xbf16>
    }
    gpu.return
  }

  // LoRA experts (moe.lora_experts, moe.lora_gated_experts): the products
  // are the grouped GEMMs above; these kernels join them, one thread per
  // element of an [N, n] output, elements in row-major order.

  // B[e] = (Bg[e], Bu[e]): separate gate and up biases [E, F] as one
  // [E, 2F], the layout of a fused gate_up's, for gemv_experts. One thread
  // per element.
  gpu.func @concat_biases(%Bg: memref<?x?xbf16>, %Bu: memref<?x?xbf16>,
                          %B: memref<?x?xbf16>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %E = memref.dim %B, %c0 : memref<?x?xbf16>
    %W = memref.dim %B, %c1 : memref<?x?xbf16>
    %F = memref.dim %Bg, %c1 : memref<?x?xbf16>
    %EW = arith.muli %E, %W : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %bdim : index
    %i = arith.addi %i0, %tid : index
    %in = arith.cmpi ult, %i, %EW : index
    scf.if %in {
      %e = arith.divui %i, %W : index
      %c = arith.remui %i, %W : index
      %gate = arith.cmpi ult, %c, %F : index
      %v = scf.if %gate -> bf16 {
        %g = memref.load %Bg[%e, %c] : memref<?x?xbf16>
        scf.yield %g : bf16
      } else {
        %cu = arith.subi %c, %F : index
        %u = memref.load %Bu[%e, %cu] : memref<?x?xbf16>
        scf.yield %u : bf16
      }
      memref.store %v, %B[%e, %c] : memref<?x?xbf16>
    }
    gpu.return
  }

  // H = bf16(Y): the rank-r rows X A[e]^T as the input of the second
  // low-rank GEMM.
  gpu.func @round_bf16(%Y: memref<?x?xf32>, %H: memref<?x?xbf16>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %N = memref.dim %Y, %c0 : memref<?x?xf32>
    %n = memref.dim %Y, %c1 : memref<?x?xf32>
    %Nn = arith.muli %N, %n : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %bdim : index
    %i = arith.addi %i0, %tid : index
    %in = arith.cmpi ult, %i, %Nn : index
    scf.if %in {
      %r = arith.divui %i, %n : index
      %c = arith.remui %i, %n : index
      %v = memref.load %Y[%r, %c] : memref<?x?xf32>
      %b = arith.truncf %v : f32 to bf16
      memref.store %b, %H[%r, %c] : memref<?x?xbf16>
    }
    gpu.return
  }

  // Y = bf16(P + D * s), kept in f32: a projection with its LoRA delta
  // (alpha / r) B (A x), rounded as the LoRA ops return it. P with no rows
  // is absent (a lone delta). Y may be D.
  gpu.func @lora_sum(%P: memref<?x?xf32>, %D: memref<?x?xf32>, %s: f32,
                     %Y: memref<?x?xf32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    %N = memref.dim %Y, %c0 : memref<?x?xf32>
    %n = memref.dim %Y, %c1 : memref<?x?xf32>
    %Np = memref.dim %P, %c0 : memref<?x?xf32>
    %has_p = arith.cmpi ne, %Np, %c0 : index
    %Nn = arith.muli %N, %n : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %bdim : index
    %i = arith.addi %i0, %tid : index
    %in = arith.cmpi ult, %i, %Nn : index
    scf.if %in {
      %r = arith.divui %i, %n : index
      %c = arith.remui %i, %n : index
      %dv = memref.load %D[%r, %c] : memref<?x?xf32>
      %pv = scf.if %has_p -> (f32) {
        %v = memref.load %P[%r, %c] : memref<?x?xf32>
        scf.yield %v : f32
      } else {
        scf.yield %f0 : f32
      }
      %sd = arith.mulf %dv, %s : f32
      %sum = arith.addf %pv, %sd : f32
      %b = arith.truncf %sum : f32 to bf16
      %v = arith.extf %b : bf16 to f32
      memref.store %v, %Y[%r, %c] : memref<?x?xf32>
    }
    gpu.return
  }

  // H = bf16(act(G + Gd * s) * (U + Ud * s)): the gated activation of a
  // frozen FFN whose gate and up projections carry LoRA deltas (MixLoRA).
  // Gd and Ud have a row per row of H; G and U too when `base` is empty,
  // else a row per token, row r of H reading row base[r] (its token; the
  // unused rows, token -1, are not written).
  gpu.func @lora_gated(%G: memref<?x?xf32>, %Gd: memref<?x?xf32>,
                       %U: memref<?x?xf32>, %Ud: memref<?x?xf32>, %s: f32,
                       %act: i32, %base: memref<?xi32>,
                       %H: memref<?x?xbf16>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %N = memref.dim %H, %c0 : memref<?x?xbf16>
    %F = memref.dim %H, %c1 : memref<?x?xbf16>
    %NF = arith.muli %N, %F : index
    %nb = memref.dim %base, %c0 : memref<?xi32>
    %by_token = arith.cmpi ne, %nb, %c0 : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %bdim : index
    %i = arith.addi %i0, %tid : index
    %in = arith.cmpi ult, %i, %NF : index
    scf.if %in {
      %r = arith.divui %i, %F : index
      %c = arith.remui %i, %F : index
      // The row of G and U: r, or the row's token (-1: an unused row).
      %b_i = scf.if %by_token -> (i32) {
        %t = memref.load %base[%r] : memref<?xi32>
        scf.yield %t : i32
      } else {
        %ri = arith.index_cast %r : index to i32
        scf.yield %ri : i32
      }
      %used = arith.cmpi sge, %b_i, %z : i32
      scf.if %used {
        %b = arith.index_cast %b_i : i32 to index
        %g = memref.load %G[%b, %c] : memref<?x?xf32>
        %gd = memref.load %Gd[%r, %c] : memref<?x?xf32>
        %u = memref.load %U[%b, %c] : memref<?x?xf32>
        %ud = memref.load %Ud[%r, %c] : memref<?x?xf32>
        %gs = arith.mulf %gd, %s : f32
        %gate = arith.addf %g, %gs : f32
        %us = arith.mulf %ud, %s : f32
        %up = arith.addf %u, %us : f32
        %a = func.call @activation(%gate, %act) : (f32, i32) -> f32
        %h = arith.mulf %a, %up : f32
        %hb = arith.truncf %h : f32 to bf16
        memref.store %hb, %H[%r, %c] : memref<?x?xbf16>
      }
    }
    gpu.return
  }

  // sum over the 32 lanes of a warp, a butterfly of xor shuffles (every
  // lane gets the same value, in the same order of additions).
  // The block's index along y when a launch splits more than 65535 blocks
  // between the grid's y and z (moe_gpu_grid_y and moe_gpu_grid_z):
  // blockIdx.y + gridDim.y * blockIdx.z.
  func.func private @block_index_y() -> index {
    %y = gpu.block_id y
    %ny = gpu.grid_dim y
    %z = gpu.block_id z
    %yz = arith.muli %ny, %z : index
    %i = arith.addi %y, %yz : index
    return %i : index
  }

  // The (column block, tile) of a tensor-core GEMM block, in a grid of
  // gridDim.x column blocks over the tiles along y (and z). Blocks start
  // in launch order (blockIdx.x fastest); taking them `group` tiles of a
  // column at a time, then the same tiles of the next column, makes the
  // blocks that run at once share both their weight columns (across
  // `group` tiles) and their rows (across the columns), so that both come
  // from L2 rather than memory: with the columns fastest, a GEMM whose
  // output has many columns (Mixtral's gate and up, 224 blocks of 64)
  // reads every weight tile from memory again for every tile of rows. A
  // bijection of the grid: the last group may have fewer tiles, and tiles
  // past the map's count exit as before. `group` 1 is the plain order.
  func.func private @gemm_block(%group: index) -> (index, index) {
    %bx = gpu.block_id x
    %gx = gpu.grid_dim x
    %by = func.call @block_index_y() : () -> index
    %gy = gpu.grid_dim y
    %gz = gpu.grid_dim z
    %tiles = arith.muli %gy, %gz : index
    %row = arith.muli %gx, %by : index
    %l = arith.addi %row, %bx : index
    %per = arith.muli %group, %gx : index
    %g = arith.divui %l, %per : index
    %first = arith.muli %g, %group : index
    %left = arith.subi %tiles, %first : index
    %rows = arith.minui %left, %group : index
    %start = arith.muli %g, %per : index
    %local = arith.subi %l, %start : index
    %ti = arith.remui %local, %rows : index
    %tile = arith.addi %first, %ti : index
    %col = arith.divui %local, %rows : index
    return %col, %tile : index, index
  }

  func.func private @warp_sum(%v: f32) -> f32 {
    %c32 = arith.constant 32 : i32
    %o16 = arith.constant 16 : i32
    %o8 = arith.constant 8 : i32
    %o4 = arith.constant 4 : i32
    %o2 = arith.constant 2 : i32
    %o1 = arith.constant 1 : i32
    %s16, %p16 = gpu.shuffle xor %v, %o16, %c32 : f32
    %v16 = arith.addf %v, %s16 : f32
    %s8, %p8 = gpu.shuffle xor %v16, %o8, %c32 : f32
    %v8 = arith.addf %v16, %s8 : f32
    %s4, %p4 = gpu.shuffle xor %v8, %o4, %c32 : f32
    %v4 = arith.addf %v8, %s4 : f32
    %s2, %p2 = gpu.shuffle xor %v4, %o2, %c32 : f32
    %v2 = arith.addf %v4, %s2 : f32
    %s1, %p1 = gpu.shuffle xor %v2, %o1, %c32 : f32
    %v1 = arith.addf %v2, %s1 : f32
    return %v1 : f32
  }

  // Row `row` of W[e] (K bf16) into L2, the lanes of the calling warp
  // splitting its 128-byte lines: one prefetch a line, no registers held
  // for the bytes in flight, so the warp's loads of the row then wait on
  // L2 rather than on memory.
  func.func private @prefetch_row_l2(%W: memref<?x?x?xbf16>, %e: index,
                                     %row: index) {
    %c32 = arith.constant 32 : index
    %c2i = arith.constant 2 : i64
    %c127i = arith.constant 127 : i64
    %c128i = arith.constant 128 : i64
    %not127 = arith.constant -128 : i64
    %base, %offset, %sizes:3, %strides:3 = memref.extract_strided_metadata %W
        : memref<?x?x?xbf16> -> memref<bf16>, index, index, index, index,
          index, index, index
    %ptr = memref.extract_aligned_pointer_as_index %W : memref<?x?x?xbf16> -> index
    %eo = arith.muli %e, %strides#0 : index
    %ro = arith.muli %row, %strides#1 : index
    %o1 = arith.addi %offset, %eo : index
    %o = arith.addi %o1, %ro : index
    %oi = arith.index_cast %o : index to i64
    %pi = arith.index_cast %ptr : index to i64
    %ob = arith.muli %oi, %c2i : i64
    %start = arith.addi %pi, %ob : i64
    %Ki = arith.index_cast %sizes#2 : index to i64
    %bytes = arith.muli %Ki, %c2i : i64
    %end = arith.addi %start, %bytes : i64
    %first = arith.andi %start, %not127 : i64
    %span = arith.subi %end, %first : i64
    %span1 = arith.addi %span, %c127i : i64
    %lines_i = arith.divui %span1, %c128i : i64
    %lines = arith.index_cast %lines_i : i64 to index
    %tid = gpu.thread_id x
    %lane = arith.remui %tid, %c32 : index
    scf.for %l = %lane to %lines step %c32 {
      %li = arith.index_cast %l : index to i64
      %lo = arith.muli %li, %c128i : i64
      %a = arith.addi %first, %lo : i64
      // prefetch.L2 on a generic address (PTX ISA 2.0, every sm): LLVM 22
      // selects its intrinsic (nvvm.prefetch) on sm_90 only.
      llvm.inline_asm has_side_effects "prefetch.L2 [$0];", "l" %a : (i64) -> ()
    }
    return
  }

  // Row r of gemv_experts at one chunk of K (8 elements at k), when r is
  // below mend: a += X[r, k..] . wa and, gated, b += X[r, k..] . wb, each
  // in element order.
  func.func private @gemv_row(%X: memref<?x?xbf16>, %r: index, %mend: index,
                              %k: index, %waf: vector<8xf32>,
                              %wbf: vector<8xf32>, %gated_b: i1, %a: f32,
                              %b: f32) -> (f32, f32) {
    %in = arith.cmpi ult, %r, %mend : index
    %na, %nb = scf.if %in -> (f32, f32) {
      %xv = vector.load %X[%r, %k] {alignment = 16} : memref<?x?xbf16>, vector<8xbf16>
      %xf = arith.extf %xv : vector<8xbf16> to vector<8xf32>
      %pa = arith.mulf %xf, %waf : vector<8xf32>
      %sa = vector.reduction <add>, %pa, %a : vector<8xf32> into f32
      %sb = scf.if %gated_b -> (f32) {
        %pb = arith.mulf %xf, %wbf : vector<8xf32>
        %v = vector.reduction <add>, %pb, %b : vector<8xf32> into f32
        scf.yield %v : f32
      } else {
        scf.yield %b : f32
      }
      scf.yield %sa, %sb : f32, f32
    } else {
      scf.yield %a, %b : f32, f32
    }
    return %na, %nb : f32, f32
  }

  // The four rows rb .. rb + 3 of gemv_experts at one chunk of K:
  // @gemv_row for each, (a_i, b_i) the sums of row rb + i.
  func.func private @gemv_chunk(%X: memref<?x?xbf16>, %rb: index, %mend: index,
                                %k: index, %wa: vector<8xbf16>,
                                %wb: vector<8xbf16>, %gated_b: i1,
                                %a0: f32, %a1: f32, %a2: f32, %a3: f32,
                                %b0: f32, %b1: f32, %b2: f32, %b3: f32)
      -> (f32, f32, f32, f32, f32, f32, f32, f32) {
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %waf = arith.extf %wa : vector<8xbf16> to vector<8xf32>
    %wbf = arith.extf %wb : vector<8xbf16> to vector<8xf32>
    %r1 = arith.addi %rb, %c1 : index
    %r2 = arith.addi %rb, %c2 : index
    %r3 = arith.addi %rb, %c3 : index
    %n0:2 = func.call @gemv_row(%X, %rb, %mend, %k, %waf, %wbf, %gated_b, %a0, %b0)
        : (memref<?x?xbf16>, index, index, index, vector<8xf32>, vector<8xf32>, i1, f32, f32) -> (f32, f32)
    %n1:2 = func.call @gemv_row(%X, %r1, %mend, %k, %waf, %wbf, %gated_b, %a1, %b1)
        : (memref<?x?xbf16>, index, index, index, vector<8xf32>, vector<8xf32>, i1, f32, f32) -> (f32, f32)
    %n2:2 = func.call @gemv_row(%X, %r2, %mend, %k, %waf, %wbf, %gated_b, %a2, %b2)
        : (memref<?x?xbf16>, index, index, index, vector<8xf32>, vector<8xf32>, i1, f32, f32) -> (f32, f32)
    %n3:2 = func.call @gemv_row(%X, %r3, %mend, %k, %waf, %wbf, %gated_b, %a3, %b3)
        : (memref<?x?xbf16>, index, index, index, vector<8xf32>, vector<8xf32>, i1, f32, f32) -> (f32, f32)
    return %n0#0, %n1#0, %n2#0, %n3#0, %n0#1, %n1#1, %n2#1, %n3#1
        : f32, f32, f32, f32, f32, f32, f32, f32
  }

  // Entry %by of a tile map (@build_tile_map): whether it is a tile, and
  // if so its expert e and its rows [m0, mend). One 16-byte load: a block
  // knows its work after one trip to memory, where reading the tile count,
  // then the entry, then the group's end took three in a row. A grid split
  // between y and z (@block_index_y) may have a few blocks past the map's
  // entries (a grid has blocks only when the map has entries): they read
  // the last entry and have no tile. (A load on a branch of its own costs
  // gemv_experts a spill on sm_80.)
  func.func private @map_tile(%tiles: memref<?x4xi32>, %by: index)
      -> (i1, index, index, index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %size = memref.dim %tiles, %c0 : memref<?x4xi32>
    %in = arith.cmpi ult, %by, %size : index
    %last = arith.subi %size, %c1 : index
    %i = arith.minui %by, %last : index
    %t = vector.load %tiles[%i, %c0] {alignment = 16}
        : memref<?x4xi32>, vector<4xi32>
    %e_i = vector.extract %t[0] : i32 from vector<4xi32>
    %m0_i = vector.extract %t[1] : i32 from vector<4xi32>
    %mend_i = vector.extract %t[2] : i32 from vector<4xi32>
    %is_tile = arith.cmpi sge, %e_i, %z : i32
    %ok = arith.andi %in, %is_tile : i1
    %e = arith.index_cast %e_i : i32 to index
    %m0 = arith.index_cast %m0_i : i32 to index
    %mend = arith.index_cast %mend_i : i32 to index
    return %ok, %e, %m0, %mend : i1, index, index, index
  }

  // The sums of gemv_experts and gemv_pairs for rows rb .. rb + 3 of a
  // tile (those below mend) against the weight row Wa[e, ja] and, when
  // `second`, Wb[e, jb]: (a_0 .. a_3, b_0 .. b_3), the lane's part of each
  // dot product (8-element chunks from 8 lane, two 256-element strides
  // apart an iteration), for a butterfly to add up.
  func.func private @gemv_sums(%X: memref<?x?xbf16>, %Wa: memref<?x?x?xbf16>,
                               %Wb: memref<?x?x?xbf16>, %e: index, %j: index,
                               %jb: index, %rb: index, %mend: index, %second: i1)
      -> (f32, f32, f32, f32, f32, f32, f32, f32) {
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c256 = arith.constant 256 : index
    %c512 = arith.constant 512 : index
    %f0 = arith.constant 0.0 : f32
    %zero8b = arith.constant dense<0.0> : vector<8xbf16>
    %K = memref.dim %X, %c1 : memref<?x?xbf16>
    %klast = arith.subi %K, %c8 : index
    %tid = gpu.thread_id x
    %lane = arith.remui %tid, %c32 : index
    %k0 = arith.muli %lane, %c8 : index
    // Two chunks of K an iteration (k and k + 256, the second clamped
    // to the row and its sums discarded past it): every weight load of
    // the iteration is issued before the first is used, twice the bytes
    // in flight a warp; the sums still go in K order.
    %acc:8 = scf.for %k = %k0 to %K step %c512
        iter_args(%a0 = %f0, %a1 = %f0, %a2 = %f0, %a3 = %f0, %b0 = %f0, %b1 = %f0, %b2 = %f0, %b3 = %f0)
        -> (f32, f32, f32, f32, f32, f32, f32, f32) {
      %k2 = arith.addi %k, %c256 : index
      %has2 = arith.cmpi ult, %k2, %K : index
      %k2_in = arith.minui %k2, %klast : index
      %wa = vector.load %Wa[%e, %j, %k] {alignment = 16} : memref<?x?x?xbf16>, vector<8xbf16>
      %wa2 = vector.load %Wa[%e, %j, %k2_in] {alignment = 16} : memref<?x?x?xbf16>, vector<8xbf16>
      %wb:2 = scf.if %second -> (vector<8xbf16>, vector<8xbf16>) {
        %v = vector.load %Wb[%e, %jb, %k] {alignment = 16} : memref<?x?x?xbf16>, vector<8xbf16>
        %v2 = vector.load %Wb[%e, %jb, %k2_in] {alignment = 16} : memref<?x?x?xbf16>, vector<8xbf16>
        scf.yield %v, %v2 : vector<8xbf16>, vector<8xbf16>
      } else {
        scf.yield %zero8b, %zero8b : vector<8xbf16>, vector<8xbf16>
      }
      %p:8 = func.call @gemv_chunk(%X, %rb, %mend, %k, %wa, %wb#0, %second,
                                   %a0, %a1, %a2, %a3, %b0, %b1, %b2, %b3)
          : (memref<?x?xbf16>, index, index, index, vector<8xbf16>, vector<8xbf16>, i1,
             f32, f32, f32, f32, f32, f32, f32, f32)
          -> (f32, f32, f32, f32, f32, f32, f32, f32)
      %q:8 = func.call @gemv_chunk(%X, %rb, %mend, %k2_in, %wa2, %wb#1, %second,
                                   %p#0, %p#1, %p#2, %p#3, %p#4, %p#5, %p#6, %p#7)
          : (memref<?x?xbf16>, index, index, index, vector<8xbf16>, vector<8xbf16>, i1,
             f32, f32, f32, f32, f32, f32, f32, f32)
          -> (f32, f32, f32, f32, f32, f32, f32, f32)
      %o0 = arith.select %has2, %q#0, %p#0 : f32
      %o1 = arith.select %has2, %q#1, %p#1 : f32
      %o2 = arith.select %has2, %q#2, %p#2 : f32
      %o3 = arith.select %has2, %q#3, %p#3 : f32
      %o4 = arith.select %has2, %q#4, %p#4 : f32
      %o5 = arith.select %has2, %q#5, %p#5 : f32
      %o6 = arith.select %has2, %q#6, %p#6 : f32
      %o7 = arith.select %has2, %q#7, %p#7 : f32
      scf.yield %o0, %o1, %o2, %o3, %o4, %o5, %o6, %o7 : f32, f32, f32, f32, f32, f32, f32, f32
    }
    return %acc#0, %acc#1, %acc#2, %acc#3, %acc#4, %acc#5, %acc#6, %acc#7
        : f32, f32, f32, f32, f32, f32, f32, f32
  }

  // Row r of gemv_experts below mend: the butterfly of the sum a, and
  // gated, of b; lane 0 adds the column's expert biases (@bias_value,
  // kept in `biases` by the warp's lane 0: the gate's or the output's to
  // a, the up's to b) and stores bf16(@gate_up(a, b)) into H, or a into Y.
  func.func private @gemv_store_row(%H: memref<?x?xbf16>, %Y: memref<?x?xf32>,
                                    %r: index, %mend: index, %j: index,
                                    %a: f32, %b: f32, %gated: i1, %act: i32,
                                    %lane0: i1,
                                    %biases: memref<8x2xf32, #gpu.address_space<workgroup>>,
                                    %biased: i1) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c32 = arith.constant 32 : index
    // The warp, from the thread index: one register less through the
    // caller's loop.
    %tid = gpu.thread_id x
    %warp = arith.divui %tid, %c32 : index
    %in = arith.cmpi ult, %r, %mend : index
    scf.if %in {
      %ta = func.call @warp_sum(%a) : (f32) -> f32
      scf.if %gated {
        %tb = func.call @warp_sum(%b) : (f32) -> f32
        scf.if %lane0 {
          %g, %u = scf.if %biased -> (f32, f32) {
            %bg = memref.load %biases[%warp, %c0] : memref<8x2xf32, #gpu.address_space<workgroup>>
            %bu = memref.load %biases[%warp, %c1] : memref<8x2xf32, #gpu.address_space<workgroup>>
            %gb = arith.addf %ta, %bg : f32
            %ubv = arith.addf %tb, %bu : f32
            scf.yield %gb, %ubv : f32, f32
          } else {
            scf.yield %ta, %tb : f32, f32
          }
          %h = func.call @gate_up(%g, %u, %act) : (f32, f32, i32) -> f32
          %hb = arith.truncf %h : f32 to bf16
          memref.store %hb, %H[%r, %j] : memref<?x?xbf16>
        }
      } else {
        scf.if %lane0 {
          %g = scf.if %biased -> f32 {
            %bg = memref.load %biases[%warp, %c0] : memref<8x2xf32, #gpu.address_space<workgroup>>
            %gb = arith.addf %ta, %bg : f32
            scf.yield %gb : f32
          } else {
            scf.yield %ta : f32
          }
          memref.store %g, %Y[%r, %j] : memref<?x?xf32>
        }
      }
    }
    return
  }

  // The expert GEMMs for few rows per group (decoding), bound by reading
  // the weights: one warp per output column j (8 per block of 256
  // threads), one block per (8 columns, tile of the map). For the tile's
  // rows, 4 at a time, the lanes split K into 8-element chunks (16-byte
  // loads of the weight row, read once per 4 rows) and add their partial
  // sums with a butterfly. gated = 0: Y[r, j] = X[r] . Wa[e, j] (f32);
  // gated = 1: H[r, j] = bf16(act(X[r] . Wa[e, j]) * (X[r] . Wb[e, ub + j]))
  // with ub = rows(Wb) - F (a fused gate_up holds the up rows from F).
  // Every output element is one warp's fixed order of additions.
  // Decoding is bound by the weight bytes in flight: a warp keeps two
  // chunks of each weight row in flight (1 KiB, 2 KiB gated), and
  // nvvm.maxnreg = 80 (ptxas takes 92 unbounded and spills at 72) keeps
  // three blocks of 256 threads an SM, where the one-chunk loop had four
  // at 64 registers: 1.5 times the bytes in flight an SM.
  gpu.func @gemv_experts(%X: memref<?x?xbf16>, %Wa: memref<?x?x?xbf16>,
                         %Wb: memref<?x?x?xbf16>, %tiles: memref<?x4xi32>,
                         %Y: memref<?x?xf32>,
                         %H: memref<?x?xbf16>, %act: i32, %gated: i32)
      workgroup(%biases: memref<8x2xf32, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>, nvvm.maxnreg = 80 : i32} {
    %c0 = arith.constant 0 : index
    %false = arith.constant false
    %none = memref.reinterpret_cast %X to offset: [0], sizes: [%c0, %c0],
        strides: [%c0, 1] : memref<?x?xbf16> to memref<?x?xbf16>
    %z = arith.constant 0 : i32
    %gated_b = arith.cmpi ne, %gated, %z : i32
    %active, %e, %m0, %mend, %j, %n, %ub = func.call @gemv_warp(%Wb, %tiles,
        %Y, %H, %gated_b)
        : (memref<?x?x?xbf16>, memref<?x4xi32>, memref<?x?xf32>,
           memref<?x?xbf16>, i1)
        -> (i1, index, index, index, index, index, index)
    // Warp-uniform: no barrier below.
    scf.if %active {
      func.call @gemv_column(%X, %Wa, %Wb, %none, %Y, %H, %act, %gated_b, %e,
                             %m0, %mend, %j, %n, %ub, %biases, %false)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
             memref<?x?xbf16>, memref<?x?xf32>, memref<?x?xbf16>, i32, i1,
             index, index, index, index, index, index,
             memref<8x2xf32, #gpu.address_space<workgroup>>, i1) -> ()
    }
    gpu.return
  }

  // gemv_experts with expert biases (a layer that has them, GPT-OSS's):
  // its own kernel, so that gemv_experts keeps every register it had for
  // the weights in flight. Bias: the biases of Y's columns [E, nout], or
  // gated one [E, 2F] of gate then up (a fused gate_up's; one operand, for
  // the registers). The column's biases are read before the loop and kept
  // in shared memory by lane 0, which adds them (held in registers through
  // the loop, ptxas spills them at 80).
  gpu.func @gemv_experts_bias(%X: memref<?x?xbf16>, %Wa: memref<?x?x?xbf16>,
                              %Wb: memref<?x?x?xbf16>,
                              %Bias: memref<?x?xbf16>,
                              %tiles: memref<?x4xi32>, %Y: memref<?x?xf32>,
                              %H: memref<?x?xbf16>, %act: i32, %gated: i32)
      workgroup(%biases: memref<8x2xf32, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>, nvvm.maxnreg = 80 : i32} {
    %true = arith.constant true
    %z = arith.constant 0 : i32
    %gated_b = arith.cmpi ne, %gated, %z : i32
    %active, %e, %m0, %mend, %j, %n, %ub = func.call @gemv_warp(%Wb, %tiles,
        %Y, %H, %gated_b)
        : (memref<?x?x?xbf16>, memref<?x4xi32>, memref<?x?xf32>,
           memref<?x?xbf16>, i1)
        -> (i1, index, index, index, index, index, index)
    // Warp-uniform: no barrier below.
    scf.if %active {
      func.call @gemv_column(%X, %Wa, %Wb, %Bias, %Y, %H, %act, %gated_b, %e,
                             %m0, %mend, %j, %n, %ub, %biases, %true)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
             memref<?x?xbf16>, memref<?x?xf32>, memref<?x?xbf16>, i32, i1,
             index, index, index, index, index, index,
             memref<8x2xf32, #gpu.address_space<workgroup>>, i1) -> ()
    }
    gpu.return
  }

  // The work of a gemv_experts block's warp: whether it has a column
  // (j < n, on a tile of the map), the tile's expert e and rows m0 .. mend,
  // the column j, the number n of output columns and the first up row ub.
  func.func private @gemv_warp(%Wb: memref<?x?x?xbf16>,
      %tiles: memref<?x4xi32>, %Y: memref<?x?xf32>, %H: memref<?x?xbf16>,
      %gated: i1) -> (i1, index, index, index, index, index, index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %nh = memref.dim %H, %c1 : memref<?x?xbf16>
    %ny = memref.dim %Y, %c1 : memref<?x?xf32>
    %n = arith.select %gated, %nh, %ny : index
    %rows_b = memref.dim %Wb, %c1 : memref<?x?x?xbf16>
    %ub0 = arith.subi %rows_b, %n : index
    %ub = arith.select %gated, %ub0, %c0 : index
    %bx = gpu.block_id x
    %by = func.call @block_index_y() : () -> index
    %tid = gpu.thread_id x
    %warp = arith.divui %tid, %c32 : index
    %j0 = arith.muli %bx, %c8 : index
    %j = arith.addi %j0, %warp : index
    %tile_ok, %e, %m0, %mend = func.call @map_tile(%tiles, %by)
        : (memref<?x4xi32>, index) -> (i1, index, index, index)
    %col_ok = arith.cmpi ult, %j, %n : index
    %active = arith.andi %tile_ok, %col_ok : i1
    return %active, %e, %m0, %mend, %j, %n, %ub
        : i1, index, index, index, index, index, index
  }

  // Column j of a gemv_experts block's warp (@gemv_warp), with the
  // expert biases (gemv_experts_bias) when `biased`.
  func.func private @gemv_column(%X: memref<?x?xbf16>,
      %Wa: memref<?x?x?xbf16>, %Wb: memref<?x?x?xbf16>,
      %Bias: memref<?x?xbf16>, %Y: memref<?x?xf32>, %H: memref<?x?xbf16>,
      %act: i32, %gated_b: i1, %e: index, %m0: index, %mend: index,
      %j: index, %n: index, %ub: index,
      %biases: memref<8x2xf32, #gpu.address_space<workgroup>>,
      %biased: i1) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c32 = arith.constant 32 : index
    %tid = gpu.thread_id x
    %warp = arith.divui %tid, %c32 : index
    %lane = arith.remui %tid, %c32 : index
    %lane0 = arith.cmpi eq, %lane, %c0 : index
    %jb = arith.addi %ub, %j : index
    // The warp's weight rows into L2 first, as soon as the expert is
    // known.
    func.call @prefetch_row_l2(%Wa, %e, %j) : (memref<?x?x?xbf16>, index, index) -> ()
    scf.if %gated_b {
      func.call @prefetch_row_l2(%Wb, %e, %jb) : (memref<?x?x?xbf16>, index, index) -> ()
    }
    %bias_lane = arith.andi %lane0, %biased : i1
    scf.if %bias_lane {
      %bcols = memref.dim %Bias, %c1 : memref<?x?xbf16>
      %ubias = arith.subi %bcols, %n : index
      %bg = func.call @bias_value(%Bias, %e, %c0, %j, %n)
          : (memref<?x?xbf16>, index, index, index, index) -> f32
      %bu = func.call @bias_value(%Bias, %e, %ubias, %j, %n)
          : (memref<?x?xbf16>, index, index, index, index) -> f32
      memref.store %bg, %biases[%warp, %c0] : memref<8x2xf32, #gpu.address_space<workgroup>>
      memref.store %bu, %biases[%warp, %c1] : memref<8x2xf32, #gpu.address_space<workgroup>>
    }
    // Rows past the tile's end, and the second product when not gated,
    // are skipped (uniform across the warp), so that decoding (a row or
    // two per expert) does the multiply-adds of its rows only.
    scf.for %rb = %m0 to %mend step %c4 {
      %acc:8 = func.call @gemv_sums(%X, %Wa, %Wb, %e, %j, %jb, %rb, %mend, %gated_b)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>, index, index,
             index, index, index, i1) -> (f32, f32, f32, f32, f32, f32, f32, f32)
      func.call @gemv_store_row(%H, %Y, %rb, %mend, %j, %acc#0, %acc#4, %gated_b, %act, %lane0,
                                  %biases, %biased)
          : (memref<?x?xbf16>, memref<?x?xf32>, index, index, index, f32, f32, i1, i32, i1,
             memref<8x2xf32, #gpu.address_space<workgroup>>, i1) -> ()
      %r1 = arith.addi %rb, %c1 : index
      func.call @gemv_store_row(%H, %Y, %r1, %mend, %j, %acc#1, %acc#5, %gated_b, %act, %lane0,
                                  %biases, %biased)
          : (memref<?x?xbf16>, memref<?x?xf32>, index, index, index, f32, f32, i1, i32, i1,
             memref<8x2xf32, #gpu.address_space<workgroup>>, i1) -> ()
      %r2 = arith.addi %rb, %c2 : index
      func.call @gemv_store_row(%H, %Y, %r2, %mend, %j, %acc#2, %acc#6, %gated_b, %act, %lane0,
                                  %biases, %biased)
          : (memref<?x?xbf16>, memref<?x?xf32>, index, index, index, f32, f32, i1, i32, i1,
             memref<8x2xf32, #gpu.address_space<workgroup>>, i1) -> ()
      %r3 = arith.addi %rb, %c3 : index
      func.call @gemv_store_row(%H, %Y, %r3, %mend, %j, %acc#3, %acc#7, %gated_b, %act, %lane0,
                                  %biases, %biased)
          : (memref<?x?xbf16>, memref<?x?xf32>, index, index, index, f32, f32, i1, i32, i1,
             memref<8x2xf32, #gpu.address_space<workgroup>>, i1) -> ()
    }
    return
  }

  // Rows r of gemv_pairs below mend: the butterflies of the sums a (of
  // column j) and b (of column jb), stored by lane 0.
  func.func private @gemv_store_pair(%Y: memref<?x?xf32>, %r: index,
                                     %mend: index, %j: index, %jb: index,
                                     %a: f32, %b: f32, %lane0: i1,
                                     %ba: f32, %bb: f32) {
    %in = arith.cmpi ult, %r, %mend : index
    scf.if %in {
      %ta = func.call @warp_sum(%a) : (f32) -> f32
      %tb = func.call @warp_sum(%b) : (f32) -> f32
      scf.if %lane0 {
        %ya = arith.addf %ta, %ba : f32
        %yb = arith.addf %tb, %bb : f32
        memref.store %ya, %Y[%r, %j] : memref<?x?xf32>
        memref.store %yb, %Y[%r, %jb] : memref<?x?xf32>
      }
    }
    return
  }

  // gemv_experts' Y = X W[e]^T (f32, no gated activation) with two
  // adjacent output columns a warp, 2 w and 2 w + 1 for warp w of the
  // grid (when the number of columns is odd, the last warp reads its row
  // twice and stores the same sum twice): each warp has the bytes of two
  // weight rows in flight, as the gated GEMM's does, and there are half as
  // many blocks. The host functions take it for short rows (the runtime's
  // choice, @moe_gpu_gemv_pairs: at most 4 KiB, e.g. the down projection
  // of small experts at decoding, where one column a warp makes many
  // short-lived blocks). Same grid y (the tile map), block and order of
  // additions as gemv_experts.
  gpu.func @gemv_pairs(%X: memref<?x?xbf16>, %W: memref<?x?x?xbf16>,
                       %Bias: memref<?x?xbf16>,
                       %tiles: memref<?x4xi32>, %Y: memref<?x?xf32>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>, nvvm.maxnreg = 80 : i32} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c3 = arith.constant 3 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %true = arith.constant true
    %n = memref.dim %Y, %c1 : memref<?x?xf32>
    %last = arith.subi %n, %c1 : index
    %bx = gpu.block_id x
    %by = func.call @block_index_y() : () -> index
    %tid = gpu.thread_id x
    %warp = arith.divui %tid, %c32 : index
    %lane = arith.remui %tid, %c32 : index
    %lane0 = arith.cmpi eq, %lane, %c0 : index
    %w0 = arith.muli %bx, %c8 : index
    %w = arith.addi %w0, %warp : index
    %j = arith.muli %w, %c2 : index
    %tile_ok, %e, %m0, %mend = func.call @map_tile(%tiles, %by)
        : (memref<?x4xi32>, index) -> (i1, index, index, index)
    %col_ok = arith.cmpi ult, %j, %n : index
    // Warp-uniform: no barrier below.
    %active = arith.andi %tile_ok, %col_ok : i1
    scf.if %active {
      %j1 = arith.addi %j, %c1 : index
      %jb = arith.minui %j1, %last : index
      func.call @prefetch_row_l2(%W, %e, %j) : (memref<?x?x?xbf16>, index, index) -> ()
      func.call @prefetch_row_l2(%W, %e, %jb) : (memref<?x?x?xbf16>, index, index) -> ()
      %ba = func.call @bias_value(%Bias, %e, %c0, %j, %n)
          : (memref<?x?xbf16>, index, index, index, index) -> f32
      %bb = func.call @bias_value(%Bias, %e, %c0, %jb, %n)
          : (memref<?x?xbf16>, index, index, index, index) -> f32
      scf.for %rb = %m0 to %mend step %c4 {
        %acc:8 = func.call @gemv_sums(%X, %W, %W, %e, %j, %jb, %rb, %mend, %true)
            : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>, index, index,
               index, index, index, i1) -> (f32, f32, f32, f32, f32, f32, f32, f32)
        %r1 = arith.addi %rb, %c1 : index
        %r2 = arith.addi %rb, %c2 : index
        %r3 = arith.addi %rb, %c3 : index
        func.call @gemv_store_pair(%Y, %rb, %mend, %j, %jb, %acc#0, %acc#4, %lane0, %ba, %bb)
            : (memref<?x?xf32>, index, index, index, index, f32, f32, i1,
               f32, f32) -> ()
        func.call @gemv_store_pair(%Y, %r1, %mend, %j, %jb, %acc#1, %acc#5, %lane0, %ba, %bb)
            : (memref<?x?xf32>, index, index, index, index, f32, f32, i1,
               f32, f32) -> ()
        func.call @gemv_store_pair(%Y, %r2, %mend, %j, %jb, %acc#2, %acc#6, %lane0, %ba, %bb)
            : (memref<?x?xf32>, index, index, index, index, f32, f32, i1,
               f32, f32) -> ()
        func.call @gemv_store_pair(%Y, %r3, %mend, %j, %jb, %acc#3, %acc#7, %lane0, %ba, %bb)
            : (memref<?x?xf32>, index, index, index, index, f32, f32, i1,
               f32, f32) -> ()
      }
    }
    gpu.return
  }

  // bf16 variant of @store_frag: acc[0..1] -> (r0, c..c+1),
  // acc[2..3] -> (r0+8, c..c+1); rows must be < rend, columns < nout.
  func.func private @store_frag_bf16(%Y: memref<?x?xbf16>, %acc: vector<4xf32>, %r0: index,
                                %c: index, %rend: index, %nout: index) {
    %c1 = arith.constant 1 : index
    %c8 = arith.constant 8 : index
    %r1 = arith.addi %r0, %c8 : index
    %cc1 = arith.addi %c, %c1 : index
    %accb = arith.truncf %acc : vector<4xf32> to vector<4xbf16>
    %v0 = vector.extract %accb[0] : bf16 from vector<4xbf16>
    %v1 = vector.extract %accb[1] : bf16 from vector<4xbf16>
    %v2 = vector.extract %accb[2] : bf16 from vector<4xbf16>
    %v3 = vector.extract %accb[3] : bf16 from vector<4xbf16>
    %okr0 = arith.cmpi ult, %r0, %rend : index
    %okr1 = arith.cmpi ult, %r1, %rend : index
    %okc0 = arith.cmpi ult, %c, %nout : index
    %okc1 = arith.cmpi ult, %cc1, %nout : index
    %p00 = arith.andi %okr0, %okc0 : i1
    %p01 = arith.andi %okr0, %okc1 : i1
    %p10 = arith.andi %okr1, %okc0 : i1
    %p11 = arith.andi %okr1, %okc1 : i1
    scf.if %p00 { memref.store %v0, %Y[%r0, %c] : memref<?x?xbf16> }
    scf.if %p01 { memref.store %v1, %Y[%r0, %cc1] : memref<?x?xbf16> }
    scf.if %p10 { memref.store %v2, %Y[%r1, %c] : memref<?x?xbf16> }
    scf.if %p11 { memref.store %v3, %Y[%r1, %cc1] : memref<?x?xbf16> }
    return
  }

  // ---------------------------------------------------------------------------
  // The 64-row tiles of group e, 0 past the last group.
  func.func private @group_tiles(%off: memref<?xi32>, %e: index,
                                 %E: index, %rows: index) -> i32 {
    %c1 = arith.constant 1 : index
    %z = arith.constant 0 : i32
    %rows1 = arith.subi %rows, %c1 : index
    %in = arith.cmpi ult, %e, %E : index
    %tiles = scf.if %in -> (i32) {
      %e1 = arith.addi %e, %c1 : index
      %lo = memref.load %off[%e] : memref<?xi32>
      %hi = memref.load %off[%e1] : memref<?xi32>
      %cnt = arith.subi %hi, %lo : i32
      %cnti = arith.index_cast %cnt : i32 to index
      %tp = arith.addi %cnti, %rows1 : index
      %t = arith.divui %tp, %rows : index
      %ti = arith.index_cast %t : index to i32
      scf.yield %ti : i32
    } else {
      scf.yield %z : i32
    }
    return %tiles : i32
  }

  // The tiles of `rows` rows (64, or 128 for the two-warpgroup wgmma
  // kernel) of the groups, in expert order: entry i of `tiles` is (e, m0,
  // mend, 0), tile i covering rows m0 .. mend - 1 of expert e, where mend
  // = min(m0 + rows, off[e + 1]); the entries past the last tile are (-1,
  // 0, 0, 0). Grid 1, block 256: thread t owns the q = ceil(E / 256)
  // consecutive groups from t q; a block scan of their tile counts gives
  // each thread the first entry of its groups, which it fills, and then
  // every 256th entry past the tiles from t.
  gpu.func @build_tile_map(%off: memref<?xi32>, %E: index, %rows_per: index,
                           %tiles: memref<?x4xi32>)
      workgroup(%scan: memref<256xi32, #gpu.address_space<workgroup>>)
      kernel attributes {known_block_size = array<i32: 256, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c255 = arith.constant 255 : index
    %c256 = arith.constant 256 : index
    %z = arith.constant 0 : i32
    %tid = gpu.thread_id x
    %bdim = gpu.block_dim x
    %rows_per_i = arith.index_cast %rows_per : index to i32
    %ep = arith.addi %E, %c255 : index
    %q = arith.divui %ep, %c256 : index
    %e0u = arith.muli %tid, %q : index
    %e0 = arith.minui %e0u, %E : index
    %e1u = arith.addi %e0, %q : index
    %e1 = arith.minui %e1u, %E : index
    %ntiles = scf.for %e = %e0 to %e1 step %c1 iter_args(%acc = %z) -> (i32) {
      %n = func.call @group_tiles(%off, %e, %E, %rows_per)
          : (memref<?xi32>, index, index, index) -> i32
      %next = arith.addi %acc, %n : i32
      scf.yield %next : i32
    }
    // Inclusive block scan (Hillis-Steele in %scan, 8 steps): thread t gets
    // the sum of the values of threads 0..t.
    memref.store %ntiles, %scan[%tid] : memref<256xi32, #gpu.address_space<workgroup>>
    gpu.barrier
    %c8s = arith.constant 8 : index
    %incl = scf.for %si = %c0 to %c8s step %c1 iter_args(%cur = %ntiles) -> (i32) {
      %s = arith.shli %c1, %si : index
      %has = arith.cmpi uge, %tid, %s : index
      %from = arith.subi %tid, %s : index
      %src = arith.select %has, %from, %c0 : index
      %w = memref.load %scan[%src] : memref<256xi32, #gpu.address_space<workgroup>>
      %x = arith.select %has, %w, %z : i32
      gpu.barrier
      %next = arith.addi %cur, %x : i32
      memref.store %next, %scan[%tid] : memref<256xi32, #gpu.address_space<workgroup>>
      gpu.barrier
      scf.yield %next : i32
    }
    %first = arith.subi %incl, %ntiles : i32
    %first_i = arith.index_cast %first : i32 to index
    %done = scf.for %e = %e0 to %e1 step %c1 iter_args(%slot0 = %first_i) -> (index) {
      %e1g = arith.addi %e, %c1 : index
      %lo = memref.load %off[%e] : memref<?xi32>
      %hi = memref.load %off[%e1g] : memref<?xi32>
      %ntile_i = func.call @group_tiles(%off, %e, %E, %rows_per)
          : (memref<?xi32>, index, index, index) -> i32
      %ntile = arith.index_cast %ntile_i : i32 to index
      %ei = arith.index_cast %e : index to i32
      scf.for %t = %c0 to %ntile step %c1 {
        %slot = arith.addi %slot0, %t : index
        %rows = arith.muli %t, %rows_per : index
        %rowsi = arith.index_cast %rows : index to i32
        %m0 = arith.addi %lo, %rowsi : i32
        %m1 = arith.addi %m0, %rows_per_i : i32
        %mend = arith.minsi %m1, %hi : i32
        %entry = vector.from_elements %ei, %m0, %mend, %z : vector<4xi32>
        vector.store %entry, %tiles[%slot, %c0] {alignment = 16}
            : memref<?x4xi32>, vector<4xi32>
      }
      %next = arith.addi %slot0, %ntile : index
      scf.yield %next : index
    }
    // The scan's last value is the number of tiles.
    %count_i = memref.load %scan[%c255] : memref<256xi32, #gpu.address_space<workgroup>>
    %count = arith.index_cast %count_i : i32 to index
    %size = memref.dim %tiles, %c0 : memref<?x4xi32>
    %from0 = arith.addi %count, %tid : index
    %none = arith.constant dense<[-1, 0, 0, 0]> : vector<4xi32>
    scf.for %slot = %from0 to %size step %bdim {
      vector.store %none, %tiles[%slot, %c0] {alignment = 16}
          : memref<?x4xi32>, vector<4xi32>
    }
    gpu.return
  }

  // ---------------------------------------------------------------------------
  // Y[r, n] = sum_k X[r, k] * W[e, n, k] for the 64 x 64 tile
  // (a tile of the map and 64 columns, @gemm_block with `group`). Grid
  // (ceil(Nout / 64), ceil(N / 64) + min(E, N)), block 128.
  gpu.func @grouped_gemm_mma(%X: memref<?x?xbf16>, %W: memref<?x?x?xbf16>,
                             %Bias: memref<?x?xbf16>,
                             %tiles: memref<?x4xi32>, %Y: memref<?x?xf32>,
                             %group: index)
      // llvm.align = 16 is required: without it the shared arrays are emitted with
      // `.shared .align 2` (element alignment), but cp.async.cg 16 and ldmatrix need
      // 16-byte aligned shared addresses.
      workgroup(%sA: memref<2x64x40xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64},
                %sB: memref<2x64x40xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
      kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c16 = arith.constant 16 : index
    %c24 = arith.constant 24 : index
    %c31 = arith.constant 31 : index
    %c32 = arith.constant 32 : index
    %c64 = arith.constant 64 : index
    %c128 = arith.constant 128 : index
    %zero4 = arith.constant dense<0.0> : vector<4xf32>

    %K = memref.dim %X, %c1 : memref<?x?xbf16>
    %nout = memref.dim %W, %c1 : memref<?x?x?xbf16>
    %bx, %by = func.call @gemm_block(%group) : (index) -> (index, index)
    %active, %e, %m0, %mend = func.call @map_tile(%tiles, %by)
        : (memref<?x4xi32>, index) -> (i1, index, index, index)
    // Block-uniform early exit: everything (including barriers) is inside this if.
    scf.if %active {
      %n0 = arith.muli %bx, %c64 : index

      %tid = gpu.thread_id x
      %warp = arith.divui %tid, %c32 : index
      %lane = arith.remui %tid, %c32 : index
      %wm = arith.divui %warp, %c2 : index
      %wn = arith.remui %warp, %c2 : index
      %wrow = arith.muli %wm, %c32 : index      // warp row offset in the tile
      %wcol = arith.muli %wn, %c32 : index      // warp col offset in the tile
      // ldmatrix.x4 per-lane addresses.
      //  A (16x16 at (r,k)): lane -> row r + lane%16, col k + (lane/16)*8
      //    => regs: [rows 0-7,k0-7] [rows 8-15,k0-7] [rows 0-7,k8-15] [rows 8-15,k8-15]
      //  B (two n8 tiles x k16 at (n,k)): lane -> row n + lane%8 + (lane/16)*8,
      //    col k + ((lane/8)%2)*8 => regs: [n0-7,k0-7] [n0-7,k8-15] [n8-15,k0-7] [n8-15,k8-15]
      %l16 = arith.remui %lane, %c16 : index
      %lhi = arith.divui %lane, %c16 : index
      %a_koff = arith.muli %lhi, %c8 : index
      %a_row0 = arith.addi %wrow, %l16 : index
      %a_row1 = arith.addi %a_row0, %c16 : index
      %l8 = arith.remui %lane, %c8 : index
      %lhi8 = arith.muli %lhi, %c8 : index
      %b_r = arith.addi %l8, %lhi8 : index
      %b_row0 = arith.addi %wcol, %b_r : index
      %b_row1 = arith.addi %b_row0, %c16 : index
      %l8d = arith.divui %lane, %c8 : index
      %l8m = arith.remui %l8d, %c2 : index
      %b_koff = arith.muli %l8m, %c8 : index

      // number of K stages
      %kp = arith.addi %K, %c31 : index
      %nk = arith.divui %kp, %c32 : index

      // Software pipeline over nk+1 iterations: iteration `it` issues stage `it`
      // (buffer it%2; chunks with k >= K are zero-filled, so the issue is
      // unconditional and every iteration commits exactly one group) and, for it >= 1,
      // waits until all groups but the newest are complete, then computes stage it-1.
      %nk1 = arith.addi %nk, %c1 : index
      %acc:8 = scf.for %it = %c0 to %nk1 step %c1
          iter_args(%x0 = %zero4, %x1 = %zero4, %x2 = %zero4, %x3 = %zero4,
                    %x4 = %zero4, %x5 = %zero4, %x6 = %zero4, %x7 = %zero4)
          -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
              vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
        %sIss = arith.remui %it, %c2 : index
        %kIss = arith.muli %it, %c32 : index
        // chunk ids tid and tid+128 -> (row = id / 4, kc = (id % 4) * 8)
        %id1 = arith.addi %tid, %c128 : index
        %row0 = arith.divui %tid, %c4 : index
        %row1 = arith.divui %id1, %c4 : index
        %q = arith.remui %tid, %c4 : index
        %kc = arith.muli %q, %c8 : index
        %kcol = arith.addi %kIss, %kc : index
        %kin = arith.cmpi ult, %kcol, %K : index
        %kcol_s = arith.select %kin, %kcol, %c0 : index
        // ---- A = X rows m0+row
        %ga0 = arith.addi %m0, %row0 : index
        %ga1 = arith.addi %m0, %row1 : index
        %va0 = arith.cmpi ult, %ga0, %mend : index
        %va1 = arith.cmpi ult, %ga1, %mend : index
        %sa0 = arith.select %va0, %ga0, %m0 : index
        %sa1 = arith.select %va1, %ga1, %m0 : index
        %na0 = func.call @chunk_elems(%va0, %kcol, %K) : (i1, index, index) -> index
        %na1 = func.call @chunk_elems(%va1, %kcol, %K) : (i1, index, index) -> index
        %t0 = nvgpu.device_async_copy %X[%sa0, %kcol_s], %sA[%sIss, %row0, %kc], 8, %na0 {bypassL1}
        : memref<?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %t1 = nvgpu.device_async_copy %X[%sa1, %kcol_s], %sA[%sIss, %row1, %kc], 8, %na1 {bypassL1}
        : memref<?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        // ---- B = W[e] rows n0+row
        %gb0 = arith.addi %n0, %row0 : index
        %gb1 = arith.addi %n0, %row1 : index
        %vb0 = arith.cmpi ult, %gb0, %nout : index
        %vb1 = arith.cmpi ult, %gb1, %nout : index
        %sb0 = arith.select %vb0, %gb0, %c0 : index
        %sb1 = arith.select %vb1, %gb1, %c0 : index
        %nb0 = func.call @chunk_elems(%vb0, %kcol, %K) : (i1, index, index) -> index
        %nb1 = func.call @chunk_elems(%vb1, %kcol, %K) : (i1, index, index) -> index
        %t2 = nvgpu.device_async_copy %W[%e, %sb0, %kcol_s], %sB[%sIss, %row0, %kc], 8, %nb0 {bypassL1}
        : memref<?x?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %t3 = nvgpu.device_async_copy %W[%e, %sb1, %kcol_s], %sB[%sIss, %row1, %kc], 8, %nb1 {bypassL1}
        : memref<?x?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %g = nvgpu.device_async_create_group %t0, %t1, %t2, %t3
        %hasprev = arith.cmpi uge, %it, %c1 : index
        %o:8 = scf.if %hasprev
            -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
                vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
          // all groups except the newest one are complete => stage it-1 is in smem
          nvgpu.device_async_wait %g {numGroups = 1 : i32}
          gpu.barrier
          %kt = arith.subi %it, %c1 : index
          %s = arith.remui %kt, %c2 : index
          %r:8 = scf.for %ks = %c0 to %c32 step %c16
              iter_args(%y0 = %x0, %y1 = %x1, %y2 = %x2, %y3 = %x3,
                        %y4 = %x4, %y5 = %x5, %y6 = %x6, %y7 = %x7)
              -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
                  vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
            %ak = arith.addi %ks, %a_koff : index
            %bk = arith.addi %ks, %b_koff : index
            %fa0 = nvgpu.ldmatrix %sA[%s, %a_row0, %ak] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fa1 = nvgpu.ldmatrix %sA[%s, %a_row1, %ak] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fb01 = nvgpu.ldmatrix %sB[%s, %b_row0, %bk] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fb23 = nvgpu.ldmatrix %sB[%s, %b_row1, %bk] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fb0 = vector.extract_strided_slice %fb01 {offsets = [0, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fb1 = vector.extract_strided_slice %fb01 {offsets = [2, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fb2 = vector.extract_strided_slice %fb23 {offsets = [0, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fb3 = vector.extract_strided_slice %fb23 {offsets = [2, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            // accumulator index = mi * 4 + nj
            %z0 = func.call @mma_bf16(%fa0, %fb0, %y0) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            %z1 = func.call @mma_bf16(%fa0, %fb1, %y1) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            %z2 = func.call @mma_bf16(%fa0, %fb2, %y2) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            %z3 = func.call @mma_bf16(%fa0, %fb3, %y3) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            %z4 = func.call @mma_bf16(%fa1, %fb0, %y4) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            %z5 = func.call @mma_bf16(%fa1, %fb1, %y5) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            %z6 = func.call @mma_bf16(%fa1, %fb2, %y6) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            %z7 = func.call @mma_bf16(%fa1, %fb3, %y7) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            scf.yield %z0, %z1, %z2, %z3, %z4, %z5, %z6, %z7
              : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
                vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
          }
          // the next iteration overwrites buffer (it+1)%2 == s
          gpu.barrier
          scf.yield %r#0, %r#1, %r#2, %r#3, %r#4, %r#5, %r#6, %r#7
            : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
              vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
        } else {
          scf.yield %x0, %x1, %x2, %x3, %x4, %x5, %x6, %x7
            : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
              vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
        }
        scf.yield %o#0, %o#1, %o#2, %o#3, %o#4, %o#5, %o#6, %o#7
          : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
            vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
      }
      // drain the zero-fill group issued by the last iteration
      nvvm.cp.async.wait.group 0

      // Epilogue. C fragment: c0,c1 -> (row lane/4, cols 2*(lane%4)+{0,1}); c2,c3 -> row+8.
      %lr = arith.divui %lane, %c4 : index
      %lq = arith.remui %lane, %c4 : index
      %lc = arith.muli %lq, %c2 : index
      %rb = arith.addi %m0, %wrow : index
      %r_mi0 = arith.addi %rb, %lr : index
      %r_mi1 = arith.addi %r_mi0, %c16 : index
      %cb0 = arith.addi %n0, %wcol : index
      %cb = arith.addi %cb0, %lc : index
      %c_nj1 = arith.addi %cb, %c8 : index
      %c_nj2 = arith.addi %cb, %c16 : index
      %c_nj3 = arith.addi %cb, %c24 : index
      func.call @store_frag(%Y, %acc#0, %r_mi0, %cb,    %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
      func.call @store_frag(%Y, %acc#1, %r_mi0, %c_nj1, %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
      func.call @store_frag(%Y, %acc#2, %r_mi0, %c_nj2, %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
      func.call @store_frag(%Y, %acc#3, %r_mi0, %c_nj3, %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
      func.call @store_frag(%Y, %acc#4, %r_mi1, %cb,    %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
      func.call @store_frag(%Y, %acc#5, %r_mi1, %c_nj1, %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
      func.call @store_frag(%Y, %acc#6, %r_mi1, %c_nj2, %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
      func.call @store_frag(%Y, %acc#7, %r_mi1, %c_nj3, %mend, %nout, %Bias, %e) : (memref<?x?xf32>, vector<4xf32>, index, index, index, index, memref<?x?xbf16>, index) -> ()
    }
    gpu.return
  }

  // ---------------------------------------------------------------------------
  // H[r, n] = bf16(act(X Wg[e]^T) * (X Wu[e]^T)) for the 64 x 64 tile (act
  // silu unless `act` says otherwise: see @activation);
  // the grouped_gemm_mma pipeline with a second weight operand. Grid
  // (ceil(F / 64), ceil(N / 64) + min(E, N)), block 128.
  gpu.func @gate_up_swiglu_mma(%X: memref<?x?xbf16>, %Wg: memref<?x?x?xbf16>, %Wu: memref<?x?x?xbf16>,
                             %Bg: memref<?x?xbf16>, %Bu: memref<?x?xbf16>,
                             %tiles: memref<?x4xi32>, %H: memref<?x?xbf16>,
                             %act: i32, %group: index)
      // llvm.align = 16 is required: without it the shared arrays are emitted with
      // `.shared .align 2` (element alignment), but cp.async.cg 16 and ldmatrix need
      // 16-byte aligned shared addresses.
      workgroup(%sA: memref<2x64x40xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64},
                %sG: memref<2x64x40xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64},
                %sU: memref<2x64x40xbf16, #gpu.address_space<workgroup>> {llvm.align = 16 : i64})
      kernel attributes {known_block_size = array<i32: 128, 1, 1>} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c16 = arith.constant 16 : index
    %c24 = arith.constant 24 : index
    %c31 = arith.constant 31 : index
    %c32 = arith.constant 32 : index
    %c64 = arith.constant 64 : index
    %c128 = arith.constant 128 : index
    %zero4 = arith.constant dense<0.0> : vector<4xf32>

    %K = memref.dim %X, %c1 : memref<?x?xbf16>
    // F: H's width. The up rows start at row uoff of Wu: 0 for separate
    // gate and up operands, F when both are one fused gate_up [E, 2F, K]
    // (gate rows first).
    %nout = memref.dim %H, %c1 : memref<?x?xbf16>
    %urows = memref.dim %Wu, %c1 : memref<?x?x?xbf16>
    %uoff = arith.subi %urows, %nout : index
    %bx, %by = func.call @gemm_block(%group) : (index) -> (index, index)
    %active, %e, %m0, %mend = func.call @map_tile(%tiles, %by)
        : (memref<?x4xi32>, index) -> (i1, index, index, index)
    // Block-uniform early exit: everything (including barriers) is inside this if.
    scf.if %active {
      %n0 = arith.muli %bx, %c64 : index

      %tid = gpu.thread_id x
      %warp = arith.divui %tid, %c32 : index
      %lane = arith.remui %tid, %c32 : index
      %wm = arith.divui %warp, %c2 : index
      %wn = arith.remui %warp, %c2 : index
      %wrow = arith.muli %wm, %c32 : index      // warp row offset in the tile
      %wcol = arith.muli %wn, %c32 : index      // warp col offset in the tile
      // ldmatrix.x4 per-lane addresses.
      //  A (16x16 at (r,k)): lane -> row r + lane%16, col k + (lane/16)*8
      //    => regs: [rows 0-7,k0-7] [rows 8-15,k0-7] [rows 0-7,k8-15] [rows 8-15,k8-15]
      //  B (two n8 tiles x k16 at (n,k)): lane -> row n + lane%8 + (lane/16)*8,
      //    col k + ((lane/8)%2)*8 => regs: [n0-7,k0-7] [n0-7,k8-15] [n8-15,k0-7] [n8-15,k8-15]
      %l16 = arith.remui %lane, %c16 : index
      %lhi = arith.divui %lane, %c16 : index
      %a_koff = arith.muli %lhi, %c8 : index
      %a_row0 = arith.addi %wrow, %l16 : index
      %a_row1 = arith.addi %a_row0, %c16 : index
      %l8 = arith.remui %lane, %c8 : index
      %lhi8 = arith.muli %lhi, %c8 : index
      %b_r = arith.addi %l8, %lhi8 : index
      %b_row0 = arith.addi %wcol, %b_r : index
      %b_row1 = arith.addi %b_row0, %c16 : index
      %l8d = arith.divui %lane, %c8 : index
      %l8m = arith.remui %l8d, %c2 : index
      %b_koff = arith.muli %l8m, %c8 : index

      // number of K stages
      %kp = arith.addi %K, %c31 : index
      %nk = arith.divui %kp, %c32 : index

      // Software pipeline over nk+1 iterations: iteration `it` issues stage `it`
      // (buffer it%2; chunks with k >= K are zero-filled, so the issue is
      // unconditional and every iteration commits exactly one group) and, for it >= 1,
      // waits until all groups but the newest are complete, then computes stage it-1.
      %nk1 = arith.addi %nk, %c1 : index
      %acc:16 = scf.for %it = %c0 to %nk1 step %c1
          iter_args(%x0 = %zero4, %x1 = %zero4, %x2 = %zero4, %x3 = %zero4,
                    %x4 = %zero4, %x5 = %zero4, %x6 = %zero4, %x7 = %zero4,
                    %x8 = %zero4, %x9 = %zero4, %x10 = %zero4, %x11 = %zero4,
                    %x12 = %zero4, %x13 = %zero4, %x14 = %zero4, %x15 = %zero4)
          -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
        %sIss = arith.remui %it, %c2 : index
        %kIss = arith.muli %it, %c32 : index
        // chunk ids tid and tid+128 -> (row = id / 4, kc = (id % 4) * 8)
        %id1 = arith.addi %tid, %c128 : index
        %row0 = arith.divui %tid, %c4 : index
        %row1 = arith.divui %id1, %c4 : index
        %q = arith.remui %tid, %c4 : index
        %kc = arith.muli %q, %c8 : index
        %kcol = arith.addi %kIss, %kc : index
        %kin = arith.cmpi ult, %kcol, %K : index
        %kcol_s = arith.select %kin, %kcol, %c0 : index
        // ---- A = X rows m0+row
        %ga0 = arith.addi %m0, %row0 : index
        %ga1 = arith.addi %m0, %row1 : index
        %va0 = arith.cmpi ult, %ga0, %mend : index
        %va1 = arith.cmpi ult, %ga1, %mend : index
        %sa0 = arith.select %va0, %ga0, %m0 : index
        %sa1 = arith.select %va1, %ga1, %m0 : index
        %na0 = func.call @chunk_elems(%va0, %kcol, %K) : (i1, index, index) -> index
        %na1 = func.call @chunk_elems(%va1, %kcol, %K) : (i1, index, index) -> index
        %t0 = nvgpu.device_async_copy %X[%sa0, %kcol_s], %sA[%sIss, %row0, %kc], 8, %na0 {bypassL1}
        : memref<?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %t1 = nvgpu.device_async_copy %X[%sa1, %kcol_s], %sA[%sIss, %row1, %kc], 8, %na1 {bypassL1}
        : memref<?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        // ---- B = W[e] rows n0+row
        %gb0 = arith.addi %n0, %row0 : index
        %gb1 = arith.addi %n0, %row1 : index
        %vb0 = arith.cmpi ult, %gb0, %nout : index
        %vb1 = arith.cmpi ult, %gb1, %nout : index
        %sb0 = arith.select %vb0, %gb0, %c0 : index
        %sb1 = arith.select %vb1, %gb1, %c0 : index
        %nb0 = func.call @chunk_elems(%vb0, %kcol, %K) : (i1, index, index) -> index
        %nb1 = func.call @chunk_elems(%vb1, %kcol, %K) : (i1, index, index) -> index
        %t2 = nvgpu.device_async_copy %Wg[%e, %sb0, %kcol_s], %sG[%sIss, %row0, %kc], 8, %nb0 {bypassL1}
        : memref<?x?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %t3 = nvgpu.device_async_copy %Wg[%e, %sb1, %kcol_s], %sG[%sIss, %row1, %kc], 8, %nb1 {bypassL1}
        : memref<?x?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %su0 = arith.addi %sb0, %uoff : index
        %su1 = arith.addi %sb1, %uoff : index
        %t4 = nvgpu.device_async_copy %Wu[%e, %su0, %kcol_s], %sU[%sIss, %row0, %kc], 8, %nb0 {bypassL1}
        : memref<?x?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %t5 = nvgpu.device_async_copy %Wu[%e, %su1, %kcol_s], %sU[%sIss, %row1, %kc], 8, %nb1 {bypassL1}
        : memref<?x?x?xbf16> to memref<2x64x40xbf16, #gpu.address_space<workgroup>>
        %g = nvgpu.device_async_create_group %t0, %t1, %t2, %t3, %t4, %t5
        %hasprev = arith.cmpi uge, %it, %c1 : index
        %o:16 = scf.if %hasprev
            -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
          // all groups except the newest one are complete => stage it-1 is in smem
          nvgpu.device_async_wait %g {numGroups = 1 : i32}
          gpu.barrier
          %kt = arith.subi %it, %c1 : index
          %s = arith.remui %kt, %c2 : index
          %r:16 = scf.for %ks = %c0 to %c32 step %c16
              iter_args(%y0 = %x0, %y1 = %x1, %y2 = %x2, %y3 = %x3,
                    %y4 = %x4, %y5 = %x5, %y6 = %x6, %y7 = %x7,
                    %y8 = %x8, %y9 = %x9, %y10 = %x10, %y11 = %x11,
                    %y12 = %x12, %y13 = %x13, %y14 = %x14, %y15 = %x15)
              -> (vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>,
    vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>) {
            %ak = arith.addi %ks, %a_koff : index
            %bk = arith.addi %ks, %b_koff : index
            %fa0 = nvgpu.ldmatrix %sA[%s, %a_row0, %ak] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fa1 = nvgpu.ldmatrix %sA[%s, %a_row1, %ak] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fg01 = nvgpu.ldmatrix %sG[%s, %b_row0, %bk] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fg23 = nvgpu.ldmatrix %sG[%s, %b_row1, %bk] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fg0 = vector.extract_strided_slice %fg01 {offsets = [0, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fg1 = vector.extract_strided_slice %fg01 {offsets = [2, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fg2 = vector.extract_strided_slice %fg23 {offsets = [0, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fg3 = vector.extract_strided_slice %fg23 {offsets = [2, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fu01 = nvgpu.ldmatrix %sU[%s, %b_row0, %bk] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fu23 = nvgpu.ldmatrix %sU[%s, %b_row1, %bk] {numTiles = 4 : i32, transpose = false}
              : memref<2x64x40xbf16, #gpu.address_space<workgroup>> -> vector<4x2xbf16>
            %fu0 = vector.extract_strided_slice %fu01 {offsets = [0, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fu1 = vector.extract_strided_slice %fu01 {offsets = [2, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fu2 = vector.extract_strided_slice %fu23 {offsets = [0, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
            %fu3 = vector.extract_strided_slice %fu23 {offsets = [2, 0], sizes = [2, 2], strides = [1, 1]}
              : vector<4x2xbf16> to vector<2x2xbf16>
          // accumulator index: gate = mi*4+nj, up = 8+mi*4+nj
          %z0 = func.call @mma_bf16(%fa0, %fg0, %y0) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z1 = func.call @mma_bf16(%fa0, %fg1, %y1) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z2 = func.call @mma_bf16(%fa0, %fg2, %y2) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z3 = func.call @mma_bf16(%fa0, %fg3, %y3) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z4 = func.call @mma_bf16(%fa1, %fg0, %y4) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z5 = func.call @mma_bf16(%fa1, %fg1, %y5) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z6 = func.call @mma_bf16(%fa1, %fg2, %y6) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z7 = func.call @mma_bf16(%fa1, %fg3, %y7) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z8 = func.call @mma_bf16(%fa0, %fu0, %y8) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z9 = func.call @mma_bf16(%fa0, %fu1, %y9) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z10 = func.call @mma_bf16(%fa0, %fu2, %y10) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z11 = func.call @mma_bf16(%fa0, %fu3, %y11) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z12 = func.call @mma_bf16(%fa1, %fu0, %y12) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z13 = func.call @mma_bf16(%fa1, %fu1, %y13) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z14 = func.call @mma_bf16(%fa1, %fu2, %y14) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
          %z15 = func.call @mma_bf16(%fa1, %fu3, %y15) : (vector<4x2xbf16>, vector<2x2xbf16>, vector<4xf32>) -> vector<4xf32>
            scf.yield %z0, %z1, %z2, %z3, %z4, %z5, %z6, %z7, %z8, %z9, %z10, %z11, %z12, %z13, %z14, %z15
            : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
          }
          // the next iteration overwrites buffer (it+1)%2 == s
          gpu.barrier
          scf.yield %r#0, %r#1, %r#2, %r#3, %r#4, %r#5, %r#6, %r#7, %r#8, %r#9, %r#10, %r#11, %r#12, %r#13, %r#14, %r#15
            : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
        } else {
          scf.yield %x0, %x1, %x2, %x3, %x4, %x5, %x6, %x7, %x8, %x9, %x10, %x11, %x12, %x13, %x14, %x15
            : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
        }
        scf.yield %o#0, %o#1, %o#2, %o#3, %o#4, %o#5, %o#6, %o#7, %o#8, %o#9, %o#10, %o#11, %o#12, %o#13, %o#14, %o#15
            : vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>
      }
      // drain the zero-fill group issued by the last iteration
      nvvm.cp.async.wait.group 0

      // Epilogue. C fragment: c0,c1 -> (row lane/4, cols 2*(lane%4)+{0,1}); c2,c3 -> row+8.
      %lr = arith.divui %lane, %c4 : index
      %lq = arith.remui %lane, %c4 : index
      %lc = arith.muli %lq, %c2 : index
      %rb = arith.addi %m0, %wrow : index
      %r_mi0 = arith.addi %rb, %lr : index
      %r_mi1 = arith.addi %r_mi0, %c16 : index
      %cb0 = arith.addi %n0, %wcol : index
      %cb = arith.addi %cb0, %lc : index
      %c_nj1 = arith.addi %cb, %c8 : index
      %c_nj2 = arith.addi %cb, %c16 : index
      %c_nj3 = arith.addi %cb, %c24 : index
      // The expert biases (none when Bg has no rows; the up bias from
      // column ubias = columns(Bu) - F, F for a fused gate_up bias), then
      // h = act(g) * u on the accumulators, then bf16
      %bucols = memref.dim %Bu, %c1 : memref<?x?xbf16>
      %ubias = arith.subi %bucols, %nout : index
      %g0 = func.call @plus_bias_frag(%acc#0, %Bg, %e, %c0, %cb, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u0 = func.call @plus_bias_frag(%acc#8, %Bu, %e, %ubias, %cb, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %g1 = func.call @plus_bias_frag(%acc#1, %Bg, %e, %c0, %c_nj1, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u1 = func.call @plus_bias_frag(%acc#9, %Bu, %e, %ubias, %c_nj1, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %g2 = func.call @plus_bias_frag(%acc#2, %Bg, %e, %c0, %c_nj2, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u2 = func.call @plus_bias_frag(%acc#10, %Bu, %e, %ubias, %c_nj2, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %g3 = func.call @plus_bias_frag(%acc#3, %Bg, %e, %c0, %c_nj3, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u3 = func.call @plus_bias_frag(%acc#11, %Bu, %e, %ubias, %c_nj3, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %g4 = func.call @plus_bias_frag(%acc#4, %Bg, %e, %c0, %cb, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u4 = func.call @plus_bias_frag(%acc#12, %Bu, %e, %ubias, %cb, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %g5 = func.call @plus_bias_frag(%acc#5, %Bg, %e, %c0, %c_nj1, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u5 = func.call @plus_bias_frag(%acc#13, %Bu, %e, %ubias, %c_nj1, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %g6 = func.call @plus_bias_frag(%acc#6, %Bg, %e, %c0, %c_nj2, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u6 = func.call @plus_bias_frag(%acc#14, %Bu, %e, %ubias, %c_nj2, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %g7 = func.call @plus_bias_frag(%acc#7, %Bg, %e, %c0, %c_nj3, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %u7 = func.call @plus_bias_frag(%acc#15, %Bu, %e, %ubias, %c_nj3, %nout)
          : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index) -> vector<4xf32>
      %h0 = func.call @gated(%g0, %u0, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      %h1 = func.call @gated(%g1, %u1, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      %h2 = func.call @gated(%g2, %u2, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      %h3 = func.call @gated(%g3, %u3, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      %h4 = func.call @gated(%g4, %u4, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      %h5 = func.call @gated(%g5, %u5, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      %h6 = func.call @gated(%g6, %u6, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      %h7 = func.call @gated(%g7, %u7, %act) : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
      func.call @store_frag_bf16(%H, %h0, %r_mi0, %cb, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
      func.call @store_frag_bf16(%H, %h1, %r_mi0, %c_nj1, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
      func.call @store_frag_bf16(%H, %h2, %r_mi0, %c_nj2, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
      func.call @store_frag_bf16(%H, %h3, %r_mi0, %c_nj3, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
      func.call @store_frag_bf16(%H, %h4, %r_mi1, %cb, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
      func.call @store_frag_bf16(%H, %h5, %r_mi1, %c_nj1, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
      func.call @store_frag_bf16(%H, %h6, %r_mi1, %c_nj2, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
      func.call @store_frag_bf16(%H, %h7, %r_mi1, %c_nj3, %mend, %nout) : (memref<?x?xbf16>, vector<4xf32>, index, index, index, index) -> ()
    }
    gpu.return
  }

  // A wgmma matrix descriptor of a K-major operand in 128-byte swizzled
  // 8-row atoms: start address bits 0-13 (bytes / 16, of the 18-bit shared
  // address), leading byte offset 1 (unused when swizzled), stride byte
  // offset 1024 / 16 at bit 32 (between atoms), swizzling 1 (128 bytes) at
  // bit 62.
  func.func private @wgmma_descriptor(%address: index) -> i64 {
    %a = arith.index_cast %address : index to i64
    %mask = arith.constant 262143 : i64
    %c4 = arith.constant 4 : i64
    // (1 << 16) | (64 << 32) | (1 << 62)
    %fields = arith.constant 4611686293305360384 : i64
    %am = arith.andi %a, %mask : i64
    %a4 = arith.shrui %am, %c4 : i64
    %d = arith.ori %a4, %fields : i64
    return %d : i64
  }

  // ---------------------------------------------------------------------------
  // sm_90a (moe.sm90a: moe-gpu-attach-targets compiles it into
  // @moe_experts_sm90a). The tiles of the map on wgmma: W = 1 or 2
  // warpgroups a block of 128 W threads on tiles of 64 W rows (a map of
  // 64 W-row tiles; warpgroup w computes rows 64 w .. 64 w + 63), and NB =
  // 128 or 256 weight rows a block (%bcols), which the warpgroups share.
  // Per k step of 64, A (64 W rows of X) and B (NB weight rows) in 128-byte
  // swizzled shared memory, filled by cp.async S - 2 steps ahead into S
  // buffers (%stages, 4 unless MOE_GPU_WGMMA_STAGES asks for 3 to 8), and
  // four wgmma m64nNBk16 a warpgroup with f32 accumulators in registers (64
  // a thread for NB = 128, 128 for 256), one step in flight.
  // The block's tile and column x come from @gemm_block (`group` tiles of
  // a column at a time). Plain (Wu empty): Y = X W[e]^T, B the rows n0 ..
  // n0 + NB - 1 of W[e] (n0 = NB x). Gated: B's first half is Wg[e]'s rows
  // n0 .. n0 + NB / 2 - 1 and its second half the matching rows of Wu[e]
  // (from row uoff as in @gate_up_swiglu_mma; n0 = NB / 2 x), so that
  // accumulator column c < NB / 2 is the gate and c + NB / 2 its up, and H
  // = bf16(act(gate) * up); the epilogue reads the accumulators back from
  // shared memory. Grid (ceil(Nout / NB) or ceil(F / (NB / 2)), ceil(N /
  // (64 W)) + min(E, N)), dynamic shared memory S x (8 W + NB / 8) KiB + 1
  // KiB (@wgmma_shared_bytes; the buffers start at the first 1024-byte
  // aligned address, as the swizzle atoms must).

  // The copies of k step %it into its buffer, %buf elements into the
  // dynamic shared memory seen as %view_elems bf16 (A: 64 W rows, then B:
  // NB = 2 %half rows, of 64 bf16 each). Thread t copies, of each row r =
  // r0 + S j it owns (r0 = t / 8, S = 16 W: 4 rows of A and %half_mine =
  // NB / (32 W) of each half of B, at most %most, a constant of the caller,
  // 4 or 8, so that the copies unroll), the 16-byte chunk q = t % 8 of the
  // step's 64 columns into chunk q ^ (r % 8) = q ^ (r0 % 8) of the row's
  // 128 bytes, rows in 8-row atoms of 1024 bytes. A is X's rows m0 + r;
  // B's first half W's rows n0 + r, its second half W_hi's rows src_hi +
  // r, valid while col_hi + r < nout; rows past the group (mend) or the
  // weight's rows and columns past K are zero-filled. The rows and their
  // sources do not depend on the step (inlined into the k loop, they are
  // computed once, before it): a step only moves the column.
  func.func private @wgmma_copy_step(%X: memref<?x?xbf16>,
      %W: memref<?x?x?xbf16>, %W_hi: memref<?x?x?xbf16>,
      %view_elems: index, %buf: index,
      %a_elems: index, %half: index, %half_mine: index, %most: index,
      %it: index, %e: index, %m0: index, %mend: index, %n0: index,
      %col_hi: index, %src_hi: index, %nout: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c64 = arith.constant 64 : index
    %true = arith.constant true
    %K = memref.dim %X, %c1 : memref<?x?xbf16>
    %smem = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %view = memref.view %smem[%c0][%view_elems] : memref<?xi8, #gpu.address_space<workgroup>>
        to memref<?xbf16, #gpu.address_space<workgroup>>
    %tid = gpu.thread_id x
    %nthreads = gpu.block_dim x
    %r0 = arith.divui %tid, %c8 : index
    %q = arith.remui %tid, %c8 : index
    %rr = arith.remui %r0, %c8 : index
    %sq = arith.xori %q, %rr : index
    %q8 = arith.muli %q, %c8 : index
    %r0_64 = arith.muli %r0, %c64 : index
    %sq8 = arith.muli %sq, %c8 : index
    %my_off = arith.addi %r0_64, %sq8 : index
    %rstep = arith.divui %nthreads, %c8 : index
    %dstep = arith.muli %rstep, %c64 : index
    %k0 = arith.muli %it, %c64 : index
    %kcol = arith.addi %k0, %q8 : index
    %kin = arith.cmpi ult, %kcol, %K : index
    %kcol_s = arith.select %kin, %kcol, %c0 : index
    %nkc = func.call @chunk_elems(%true, %kcol, %K) : (i1, index, index) -> index
    %dst0 = arith.addi %buf, %my_off : index
    // A: X's rows m0 + r (j < 4).
    scf.for %j = %c0 to %c4 step %c1 {
      %rj = arith.muli %rstep, %j : index
      %r = arith.addi %r0, %rj : index
      %ga = arith.addi %m0, %r : index
      %va = arith.cmpi ult, %ga, %mend : index
      %sa = arith.select %va, %ga, %m0 : index
      %na = arith.select %va, %nkc, %c0 : index
      %dj = arith.muli %dstep, %j : index
      %dst = arith.addi %dst0, %dj : index
      %t = nvgpu.device_async_copy %X[%sa, %kcol_s], %view[%dst], 8, %na {bypassL1}
          : memref<?x?xbf16> to memref<?xbf16, #gpu.address_space<workgroup>>
    }
    // B's first half: W's rows n0 + r.
    %dstb = arith.addi %dst0, %a_elems : index
    scf.for %j = %c0 to %most step %c1 {
      %mine = arith.cmpi ult, %j, %half_mine : index
      scf.if %mine {
        %rj = arith.muli %rstep, %j : index
        %r = arith.addi %r0, %rj : index
        %gb = arith.addi %n0, %r : index
        %vb = arith.cmpi ult, %gb, %nout : index
        %sb = arith.select %vb, %gb, %c0 : index
        %nb = arith.select %vb, %nkc, %c0 : index
        %dj = arith.muli %dstep, %j : index
        %dst = arith.addi %dstb, %dj : index
        %t = nvgpu.device_async_copy %W[%e, %sb, %kcol_s], %view[%dst], 8, %nb {bypassL1}
            : memref<?x?x?xbf16> to memref<?xbf16, #gpu.address_space<workgroup>>
      }
    }
    // B's second half: gated, Wu's up rows uoff + n0 + r; plain, W's rows
    // n0 + NB / 2 + r.
    %half_elems = arith.muli %half, %c64 : index
    %dstu = arith.addi %dstb, %half_elems : index
    scf.for %j = %c0 to %most step %c1 {
      %mine = arith.cmpi ult, %j, %half_mine : index
      scf.if %mine {
        %rj = arith.muli %rstep, %j : index
        %r = arith.addi %r0, %rj : index
        %col = arith.addi %col_hi, %r : index
        %vb = arith.cmpi ult, %col, %nout : index
        %src = arith.addi %src_hi, %r : index
        %sb = arith.select %vb, %src, %c0 : index
        %nb = arith.select %vb, %nkc, %c0 : index
        %dj = arith.muli %dstep, %j : index
        %dst = arith.addi %dstu, %dj : index
        %t = nvgpu.device_async_copy %W_hi[%e, %sb, %kcol_s], %view[%dst], 8, %nb {bypassL1}
            : memref<?x?x?xbf16> to memref<?xbf16, #gpu.address_space<workgroup>>
      }
    }
    return
  }

  // A wgmma k loop keeps S = %stages buffers in shared memory and copies D
  // = S - 2 steps ahead of the tensor cores, one wgmma step in flight. The
  // loop computes k step kt in buffer kt % S after @wgmma_step_begin:
  //   - @wgmma_wait_step: a wait for the copies of step kt (those of steps
  //     kt + 1 .. kt + D - 1 may stay pending), then the proxy fence and a
  //     block barrier, after which every thread's copies of step kt have
  //     landed and every warpgroup is past the wgmma of step kt - 2;
  //   - @wgmma_issue of step kt + D into buffer (kt + D) % S = (kt - 2) % S,
  //     which that barrier freed.
  // The first D steps are issued before the loop (@wgmma_issue_first), by
  // a loop of 6 (the largest D) iterations that skips those past D: when
  // that loop runs to D itself, ptxas serializes the k loop's wgmma
  // (C7515, accumulators defined by other instructions between a wgmma
  // and its wait), which experts.test checks it does not report. The k
  // loop counts the buffers rather than dividing by S (a 64-bit division,
  // and a branch, a step).

  // The copies of k step %step into buffer %ib (none past the last step,
  // %nk) and one cp.async group (empty past the last step, so that every
  // step has its group).
  func.func private @wgmma_issue(%X: memref<?x?xbf16>,
      %W: memref<?x?x?xbf16>, %W_hi: memref<?x?x?xbf16>,
      %view_elems: index, %pad_e: index, %buf_elems: index, %a_elems: index,
      %half: index, %half_mine: index, %most: index, %step: index,
      %ib: index, %nk: index, %e: index, %m0: index, %mend: index,
      %n0: index, %col_hi: index, %src_hi: index, %nout: index) {
    %issue = arith.cmpi ult, %step, %nk : index
    scf.if %issue {
      %ibo = arith.muli %ib, %buf_elems : index
      %buf = arith.addi %pad_e, %ibo : index
      func.call @wgmma_copy_step(%X, %W, %W_hi, %view_elems, %buf, %a_elems,
                                 %half, %half_mine, %most, %step, %e, %m0,
                                 %mend, %n0, %col_hi, %src_hi, %nout)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>, index,
             index, index, index, index, index, index, index, index, index,
             index, index, index, index) -> ()
    }
    nvvm.cp.async.commit.group
    return
  }

  // The wait of a k loop with the copies %ahead = D steps ahead (2 to 6)
  // for its oldest step: D - 1 groups may stay pending (the count is an
  // immediate), then the fence that makes the copies visible to the
  // tensor cores, and the block barrier.
  func.func private @wgmma_wait_step(%ahead: index) {
    scf.index_switch %ahead
    case 2 {
      nvvm.cp.async.wait.group 1
      scf.yield
    }
    case 3 {
      nvvm.cp.async.wait.group 2
      scf.yield
    }
    case 4 {
      nvvm.cp.async.wait.group 3
      scf.yield
    }
    case 5 {
      nvvm.cp.async.wait.group 4
      scf.yield
    }
    case 6 {
      nvvm.cp.async.wait.group 5
      scf.yield
    }
    default {
      nvvm.cp.async.wait.group 0
    }
    nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
    gpu.barrier
    return
  }

  // The copies of the first %ahead = D (at most 6) steps of a k loop, step
  // it into buffer it, by a loop of a fixed 6 iterations (see above).
  func.func private @wgmma_issue_first(%X: memref<?x?xbf16>,
      %W: memref<?x?x?xbf16>, %W_hi: memref<?x?x?xbf16>,
      %view_elems: index, %pad_e: index, %buf_elems: index, %a_elems: index,
      %half: index, %half_mine: index, %most: index, %ahead: index,
      %nk: index, %e: index, %m0: index, %mend: index, %n0: index,
      %col_hi: index, %src_hi: index, %nout: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c6 = arith.constant 6 : index
    scf.for %it = %c0 to %c6 step %c1 {
      %first = arith.cmpi ult, %it, %ahead : index
      scf.if %first {
        func.call @wgmma_issue(%X, %W, %W_hi, %view_elems, %pad_e,
            %buf_elems, %a_elems, %half, %half_mine, %most, %it, %it, %nk,
            %e, %m0, %mend, %n0, %col_hi, %src_hi, %nout)
            : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
               index, index, index, index, index, index, index, index,
               index, index, index, index, index, index, index, index,
               index) -> ()
      }
    }
    return
  }

  // Iteration %kt of a k loop up to its wgmma, with %stages = S buffers,
  // step kt in buffer %kb: the wait for step kt, the copies of step kt + D
  // into buffer (kb - 2) mod S (counted without a division), and the shared
  // addresses of this thread's A and of B in buffer %kb.
  func.func private @wgmma_step_begin(%X: memref<?x?xbf16>,
      %W: memref<?x?x?xbf16>, %W_hi: memref<?x?x?xbf16>,
      %view_elems: index, %pad_e: index, %buf_elems: index, %a_elems: index,
      %half: index, %half_mine: index, %most: index, %stages: index,
      %kt: index, %kb: index, %nk: index, %e: index, %m0: index,
      %mend: index, %n0: index, %col_hi: index, %src_hi: index,
      %nout: index, %start: index, %buf_bytes: index, %a_bytes: index)
      -> (index, index) {
    %c2 = arith.constant 2 : index
    %ahead = arith.subi %stages, %c2 : index
    func.call @wgmma_wait_step(%ahead) : (index) -> ()
    %next = arith.addi %kt, %ahead : index
    %back = arith.subi %kb, %c2 : index
    %wrapped = arith.addi %kb, %ahead : index
    %low = arith.cmpi ult, %kb, %c2 : index
    %ib = arith.select %low, %wrapped, %back : index
    func.call @wgmma_issue(%X, %W, %W_hi, %view_elems, %pad_e, %buf_elems,
        %a_elems, %half, %half_mine, %most, %next, %ib, %nk, %e, %m0, %mend,
        %n0, %col_hi, %src_hi, %nout)
        : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           index, index, index, index, index, index, index, index,
           index, index, index, index, index, index, index, index,
           index) -> ()
    %aaddr, %baddr = func.call @wgmma_step_operands(%kb, %start,
        %buf_bytes, %a_bytes) : (index, index, index, index) -> (index, index)
    return %aaddr, %baddr : index, index
  }

  // The buffer after %kb of %stages: (kb + 1) mod S, without a division.
  func.func private @wgmma_buffer_next(%kb: index, %stages: index) -> index {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %kb1 = arith.addi %kb, %c1 : index
    %wrap = arith.cmpi eq, %kb1, %stages : index
    %next = arith.select %wrap, %c0, %kb1 : index
    return %next : index
  }

  // The shared addresses of this thread's warpgroup's A (64 rows) and of B
  // in buffer %kb: buffers of %buf_bytes from %start (the first 1024-byte
  // aligned address), A of %a_bytes first.
  func.func private @wgmma_step_operands(%kb: index, %start: index,
                                         %buf_bytes: index, %a_bytes: index)
      -> (index, index) {
    %c128 = arith.constant 128 : index
    %c8192 = arith.constant 8192 : index
    %tid = gpu.thread_id x
    %wgi = arith.divui %tid, %c128 : index
    %bo = arith.muli %kb, %buf_bytes : index
    %abuf = arith.addi %start, %bo : index
    %wgo = arith.muli %wgi, %c8192 : index
    %aaddr = arith.addi %abuf, %wgo : index
    %baddr = arith.addi %abuf, %a_bytes : index
    return %aaddr, %baddr : index, index
  }

  // The epilogue of grouped_gemm_wgmma: the %rows x %bcols f32 tile staged
  // %pad bytes into the dynamic shared memory, written out row by row,
  // consecutive threads on consecutive columns, guarded by the group's end
  // and the output's width. Gated: column c < NB / 2 is a gate and c + NB /
  // 2 its up, H[m0 + r, n0 + c] = bf16(act(gate) * up) for n0 + c < F,
  // four columns a thread (16-byte loads from shared memory, an 8-byte
  // store); plain: Y[m0 + r, n0 + c] for n0 + c < nout, a column a thread
  // (the output's width is arbitrary). The expert biases of expert e (none
  // when Bg has no rows) join before the activation, or before the store:
  // Bg the gate's or the plain output's, Bu the up's from its column
  // columns(Bu) - F.
  func.func private @wgmma_epilogue(%pad: index, %rows: index,
      %bcols: index, %gated: i1, %m0: index, %n0: index, %mend: index,
      %nout: index, %Y: memref<?x?xf32>, %H: memref<?x?xbf16>, %act: i32,
      %Bg: memref<?x?xbf16>, %Bu: memref<?x?xbf16>, %e: index) {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c6 = arith.constant 6 : index
    %c7 = arith.constant 7 : index
    %c8 = arith.constant 8 : index
    %c256 = arith.constant 256 : index
    %tid = gpu.thread_id x
    %nthreads = gpu.block_dim x
    %smem = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
    %stage = memref.view %smem[%pad][%rows, %bcols] : memref<?xi8, #gpu.address_space<workgroup>>
        to memref<?x?xf32, #gpu.address_space<workgroup>>
    %half = arith.divui %bcols, %c2 : index
    %wide = arith.cmpi eq, %bcols, %c256 : index
    // log2 of the half (64 or 128) and of NB.
    %lh = arith.select %wide, %c7, %c6 : index
    %lb = arith.select %wide, %c8, %c7 : index
    %bmask = arith.subi %bcols, %c1 : index
    scf.if %gated {
      // Four columns a thread: F, the down GEMM's K, is a multiple of 8
      // (@check_expert_limits), so four columns from a multiple of 4 are
      // all below F or all past it, and H's rows are 16-byte aligned.
      %F = memref.dim %H, %c1 : memref<?x?xbf16>
      %bucols = memref.dim %Bu, %c1 : memref<?x?xbf16>
      %ubias = arith.subi %bucols, %F : index
      %quads = arith.divui %half, %c4 : index
      %lq = arith.subi %lh, %c2 : index
      %qmask = arith.subi %quads, %c1 : index
      %n = arith.muli %rows, %quads : index
      scf.for %i = %tid to %n step %nthreads {
        %r = arith.shrui %i, %lq : index
        %cq = arith.andi %i, %qmask : index
        %c = arith.muli %cq, %c4 : index
        %row = arith.addi %m0, %r : index
        %col = arith.addi %n0, %c : index
        %rin = arith.cmpi ult, %row, %mend : index
        %cin = arith.cmpi ult, %col, %F : index
        %in = arith.andi %rin, %cin : i1
        scf.if %in {
          %cu = arith.addi %c, %half : index
          %g = vector.load %stage[%r, %c] {alignment = 16}
              : memref<?x?xf32, #gpu.address_space<workgroup>>, vector<4xf32>
          %u = vector.load %stage[%r, %cu] {alignment = 16}
              : memref<?x?xf32, #gpu.address_space<workgroup>>, vector<4xf32>
          %gb = func.call @plus_bias4(%g, %Bg, %e, %c0, %col, %F)
              : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index)
              -> vector<4xf32>
          %ub = func.call @plus_bias4(%u, %Bu, %e, %ubias, %col, %F)
              : (vector<4xf32>, memref<?x?xbf16>, index, index, index, index)
              -> vector<4xf32>
          %h = func.call @gated(%gb, %ub, %act)
              : (vector<4xf32>, vector<4xf32>, i32) -> vector<4xf32>
          %hb = arith.truncf %h : vector<4xf32> to vector<4xbf16>
          vector.store %hb, %H[%row, %col] {alignment = 8}
              : memref<?x?xbf16>, vector<4xbf16>
        }
      }
    } else {
      %n = arith.muli %rows, %bcols : index
      scf.for %i = %tid to %n step %nthreads {
        %r = arith.shrui %i, %lb : index
        %c = arith.andi %i, %bmask : index
        %row = arith.addi %m0, %r : index
        %col = arith.addi %n0, %c : index
        %rin = arith.cmpi ult, %row, %mend : index
        %cin = arith.cmpi ult, %col, %nout : index
        %in = arith.andi %rin, %cin : i1
        scf.if %in {
          %v = memref.load %stage[%r, %c] : memref<?x?xf32, #gpu.address_space<workgroup>>
          %vb = func.call @plus_bias(%v, %Bg, %e, %c0, %col, %nout)
              : (f32, memref<?x?xbf16>, index, index, index, index) -> f32
          memref.store %vb, %Y[%row, %col] : memref<?x?xf32>
        }
      }
    }
    return
  }

  gpu.func @grouped_gemm_wgmma(%X: memref<?x?xbf16>, %W: memref<?x?x?xbf16>,
                               %Wu: memref<?x?x?xbf16>,
                               %Bg: memref<?x?xbf16>, %Bu: memref<?x?xbf16>,
                               %tiles: memref<?x4xi32>,
                               %Y: memref<?x?xf32>, %H: memref<?x?xbf16>,
                               %act: i32, %bcols: index, %stages: index,
                               %group: index)
      kernel attributes {moe.sm90a} {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %c4 = arith.constant 4 : index
    %c8 = arith.constant 8 : index
    %c32 = arith.constant 32 : index
    %c63 = arith.constant 63 : index
    %c64 = arith.constant 64 : index
    %c128 = arith.constant 128 : index
    %c256 = arith.constant 256 : index
    %c1024 = arith.constant 1024 : index
    %c512 = arith.constant 512 : index
    %c4096 = arith.constant 4096 : index
    %c8192 = arith.constant 8192 : index

    %K = memref.dim %X, %c1 : memref<?x?xbf16>
    %Eu = memref.dim %Wu, %c0 : memref<?x?x?xbf16>
    %gated = arith.cmpi ne, %Eu, %c0 : index
    %wrows = memref.dim %W, %c1 : memref<?x?x?xbf16>
    %F = memref.dim %H, %c1 : memref<?x?xbf16>
    %urows = memref.dim %Wu, %c1 : memref<?x?x?xbf16>
    %uoff = arith.subi %urows, %F : index
    %nout = arith.select %gated, %F, %wrows : index
    %bx, %by = func.call @gemm_block(%group) : (index) -> (index, index)
    %active, %e, %m0, %mend = func.call @map_tile(%tiles, %by)
        : (memref<?x4xi32>, index) -> (i1, index, index, index)
    // Block-uniform early exit: everything (including barriers) is inside this if.
    scf.if %active {
      %half = arith.divui %bcols, %c2 : index
      %ncols = arith.select %gated, %half, %bcols : index
      %n0 = arith.muli %bx, %ncols : index
      // W warpgroups (the block's 128 W threads) share the B operand; the
      // tile has 64 W rows, warpgroup w computing rows 64 w .. 64 w + 63.
      %nthreads = gpu.block_dim x
      %nwg = arith.divui %nthreads, %c128 : index
      %rows = arith.muli %nwg, %c64 : index
      // A buffer: A (64 W rows of 64 bf16) then B (NB rows), in elements.
      %a_elems = arith.muli %nwg, %c4096 : index
      %a_bytes = arith.muli %nwg, %c8192 : index
      %b_elems = arith.muli %bcols, %c64 : index
      %buf_elems = arith.addi %a_elems, %b_elems : index
      %buf_bytes = arith.muli %buf_elems, %c2 : index
      %bufs_elems = arith.muli %buf_elems, %stages : index
      %view_elems = arith.addi %bufs_elems, %c512 : index

      // %stages buffers after the pad to 1024 bytes, within the launch's
      // dynamic shared memory (@wgmma_shared_bytes).
      %smem = gpu.dynamic_shared_memory : memref<?xi8, #gpu.address_space<workgroup>>
      %base = memref.extract_aligned_pointer_as_index %smem
          : memref<?xi8, #gpu.address_space<workgroup>> -> index
      %mis = arith.remui %base, %c1024 : index
      %pad0 = arith.subi %c1024, %mis : index
      %pad = arith.remui %pad0, %c1024 : index
      %start = arith.addi %base, %pad : index
      %pad_e = arith.divui %pad, %c2 : index

      %kp = arith.addi %K, %c63 : index
      %nk = arith.divui %kp, %c64 : index
      %ahead = arith.subi %stages, %c2 : index
      // The rows of each half of B a thread copies (@wgmma_copy_step).
      %half_chunks = arith.muli %half, %c8 : index
      %half_mine = arith.divui %half_chunks, %nthreads : index
      // B's second half: gated, Wu's up rows from uoff + n0; plain, W's
      // rows from n0 + NB / 2. Valid while the output column is below nout
      // (gated: F).
      %W_hi = arith.select %gated, %Wu, %W : memref<?x?x?xbf16>
      %n0_half = arith.addi %n0, %half : index
      %up0 = arith.addi %uoff, %n0 : index
      %col_hi = arith.select %gated, %n0, %n0_half : index
      %src_hi = arith.select %gated, %up0, %n0_half : index

      // The k loop (see @wgmma_issue): the first D = S - 2 steps' copies,
      // then each step's wgmma after the copies of the step D ahead. The
      // accumulators stay in registers, so each width has its own loop;
      // then every warp is past its last wgmma, the buffers are free, and nvgpu.warpgroup.mma.store writes the
      // accumulators as the (64 W) x NB f32 tile at the start of the
      // buffers. The store takes a 64 x NB destination (its verifier asks
      // for the accumulator's size), and MLIR 22 lowers it with the row 16
      // (tid / 32) + lane / 4 (+ 8): the warps of the second warpgroup (4
      // .. 7) write rows 64 .. 127, right after the view, where the tile's
      // rows 64 .. 127 belong.
      %wide = arith.cmpi eq, %bcols, %c256 : index
      scf.if %wide {
        %acc0 = llvm.mlir.zero : !wgmma_acc256
        func.call @wgmma_issue_first(%X, %W, %W_hi, %view_elems, %pad_e,
            %buf_elems, %a_elems, %half, %half_mine, %c8, %ahead, %nk,
            %e, %m0, %mend, %n0, %col_hi, %src_hi, %nout)
            : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
               index, index, index, index, index, index, index, index,
               index, index, index, index, index, index, index, index) -> ()
        %accN, %kbN = scf.for %kt = %c0 to %nk step %c1
            iter_args(%acc = %acc0, %kb = %c0) -> (!wgmma_acc256, index) {
          %aaddr, %baddr = func.call @wgmma_step_begin(%X, %W, %W_hi,
              %view_elems, %pad_e, %buf_elems, %a_elems, %half, %half_mine,
              %c8, %stages, %kt, %kb, %nk, %e, %m0, %mend, %n0, %col_hi,
              %src_hi, %nout, %start, %buf_bytes, %a_bytes)
              : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
                 index, index, index, index, index, index, index, index,
                 index, index, index, index, index, index, index, index,
                 index, index, index, index, index) -> (index, index)
          nvvm.wgmma.fence.aligned
          %r = scf.for %kk = %c0 to %c4 step %c1 iter_args(%d = %acc) -> (!wgmma_acc256) {
            %ko = arith.muli %kk, %c32 : index
            %ak = arith.addi %aaddr, %ko : index
            %bk = arith.addi %baddr, %ko : index
            %da = func.call @wgmma_descriptor(%ak) : (index) -> i64
            %db = func.call @wgmma_descriptor(%bk) : (index) -> i64
            %d1 = nvvm.wgmma.mma_async %da, %db, %d, #nvvm.shape<m = 64, n = 256, k = 16>,
                D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
                : !wgmma_acc256 -> !wgmma_acc256
            scf.yield %d1 : !wgmma_acc256
          }
          nvvm.wgmma.commit.group.sync.aligned
          nvvm.wgmma.wait.group.sync.aligned 1
          %kbn = func.call @wgmma_buffer_next(%kb, %stages) : (index, index) -> index
          scf.yield %r, %kbn : !wgmma_acc256, index
        }
        nvvm.wgmma.wait.group.sync.aligned 0
        nvvm.cp.async.wait.group 0
        gpu.barrier
        %first64 = memref.view %smem[%pad][] : memref<?xi8, #gpu.address_space<workgroup>>
            to memref<64x256xf32, #gpu.address_space<workgroup>>
        %outer = llvm.mlir.poison : !wgmma_tile256
        %tile = llvm.insertvalue %accN, %outer[0] : !wgmma_tile256
        %acc = builtin.unrealized_conversion_cast %tile : !wgmma_tile256
            to !nvgpu.warpgroup.accumulator<fragmented = vector<64x256xf32>>
        nvgpu.warpgroup.mma.store %acc, %first64
            : !nvgpu.warpgroup.accumulator<fragmented = vector<64x256xf32>>
            to memref<64x256xf32, #gpu.address_space<workgroup>>
      } else {
        %acc0 = llvm.mlir.zero : !wgmma_acc
        func.call @wgmma_issue_first(%X, %W, %W_hi, %view_elems, %pad_e,
            %buf_elems, %a_elems, %half, %half_mine, %c4, %ahead, %nk,
            %e, %m0, %mend, %n0, %col_hi, %src_hi, %nout)
            : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
               index, index, index, index, index, index, index, index,
               index, index, index, index, index, index, index, index) -> ()
        %accN, %kbN = scf.for %kt = %c0 to %nk step %c1
            iter_args(%acc = %acc0, %kb = %c0) -> (!wgmma_acc, index) {
          %aaddr, %baddr = func.call @wgmma_step_begin(%X, %W, %W_hi,
              %view_elems, %pad_e, %buf_elems, %a_elems, %half, %half_mine,
              %c4, %stages, %kt, %kb, %nk, %e, %m0, %mend, %n0, %col_hi,
              %src_hi, %nout, %start, %buf_bytes, %a_bytes)
              : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
                 index, index, index, index, index, index, index, index,
                 index, index, index, index, index, index, index, index,
                 index, index, index, index, index) -> (index, index)
          nvvm.wgmma.fence.aligned
          %r = scf.for %kk = %c0 to %c4 step %c1 iter_args(%d = %acc) -> (!wgmma_acc) {
            %ko = arith.muli %kk, %c32 : index
            %ak = arith.addi %aaddr, %ko : index
            %bk = arith.addi %baddr, %ko : index
            %da = func.call @wgmma_descriptor(%ak) : (index) -> i64
            %db = func.call @wgmma_descriptor(%bk) : (index) -> i64
            %d1 = nvvm.wgmma.mma_async %da, %db, %d, #nvvm.shape<m = 64, n = 128, k = 16>,
                D[<f32>, <one>], A[<bf16>, <one>, <row>], B[<bf16>, <one>, <col>]
                : !wgmma_acc -> !wgmma_acc
            scf.yield %d1 : !wgmma_acc
          }
          nvvm.wgmma.commit.group.sync.aligned
          nvvm.wgmma.wait.group.sync.aligned 1
          %kbn = func.call @wgmma_buffer_next(%kb, %stages) : (index, index) -> index
          scf.yield %r, %kbn : !wgmma_acc, index
        }
        nvvm.wgmma.wait.group.sync.aligned 0
        nvvm.cp.async.wait.group 0
        gpu.barrier
        %first64 = memref.view %smem[%pad][] : memref<?xi8, #gpu.address_space<workgroup>>
            to memref<64x128xf32, #gpu.address_space<workgroup>>
        %outer = llvm.mlir.poison : !wgmma_tile
        %tile = llvm.insertvalue %accN, %outer[0] : !wgmma_tile
        %acc = builtin.unrealized_conversion_cast %tile : !wgmma_tile
            to !nvgpu.warpgroup.accumulator<fragmented = vector<64x128xf32>>
        nvgpu.warpgroup.mma.store %acc, %first64
            : !nvgpu.warpgroup.accumulator<fragmented = vector<64x128xf32>>
            to memref<64x128xf32, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      func.call @wgmma_epilogue(%pad, %rows, %bcols, %gated, %m0, %n0, %mend,
                                %nout, %Y, %H, %act, %Bg, %Bu, %e)
          : (index, index, index, i1, index, index, index, index,
             memref<?x?xf32>, memref<?x?xbf16>, i32, memref<?x?xbf16>,
             memref<?x?xbf16>, index) -> ()
    }
    gpu.return
  }

  //===--------------------------------------------------------------------===//
  // Reference kernels
  //===--------------------------------------------------------------------===//

  // The expert of row r: the number of j in 1..E-1 with off[j] <= r.
  func.func private @expert_of_row(%off: memref<?xi32>, %E: index,
                                   %row: index) -> index {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %rowi = arith.index_cast %row : index to i32
    %e = scf.for %j = %c1 to %E step %c1 iter_args(%acc = %c0) -> (index) {
      %o = memref.load %off[%j] : memref<?xi32>
      %le = arith.cmpi sle, %o, %rowi : i32
      %inc = arith.select %le, %c1, %c0 : index
      %nacc = arith.addi %acc, %inc : index
      scf.yield %nacc : index
    }
    return %e : index
  }

  // sum_k X[row, k] * W[e, col, k] in f32, in k order.
  func.func private @dot_row(%X: memref<?x?xbf16>, %W: memref<?x?x?xbf16>,
                             %row: index, %e: index, %col: index) -> f32 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %f0 = arith.constant 0.0 : f32
    %K = memref.dim %X, %c1 : memref<?x?xbf16>
    %sum = scf.for %k = %c0 to %K step %c1 iter_args(%s = %f0) -> (f32) {
      %xv = memref.load %X[%row, %k] : memref<?x?xbf16>
      %wv = memref.load %W[%e, %col, %k] : memref<?x?x?xbf16>
      %xf = arith.extf %xv : bf16 to f32
      %wf = arith.extf %wv : bf16 to f32
      %p = arith.mulf %xf, %wf : f32
      %ns = arith.addf %s, %p : f32
      scf.yield %ns : f32
    }
    return %sum : f32
  }

  // Y = X W[e]^T, one thread per element of Y, 16 x 16 blocks; rows past
  // off[E] are not written.
  gpu.func @grouped_gemm_ref(%X: memref<?x?xbf16>, %W: memref<?x?x?xbf16>,
                             %off: memref<?xi32>, %Y: memref<?x?xf32>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %E = memref.dim %W, %c0 : memref<?x?x?xbf16>
    %nout = memref.dim %W, %c1 : memref<?x?x?xbf16>
    %row, %col, %ok = func.call @ref_coords(%off, %E, %nout)
        : (memref<?xi32>, index, index) -> (index, index, i1)
    scf.if %ok {
      %e = func.call @expert_of_row(%off, %E, %row)
          : (memref<?xi32>, index, index) -> index
      %y = func.call @dot_row(%X, %W, %row, %e, %col)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, index, index, index) -> f32
      memref.store %y, %Y[%row, %col] : memref<?x?xf32>
    }
    gpu.return
  }

  // H = silu(X Wg[e]^T) * (X Wu[e]^T) rounded to bf16, one thread per
  // element of H.
  gpu.func @gate_up_swiglu_ref(%X: memref<?x?xbf16>, %Wg: memref<?x?x?xbf16>,
                               %Wu: memref<?x?x?xbf16>, %off: memref<?xi32>,
                               %H: memref<?x?xbf16>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %one = arith.constant 1.0 : f32
    %E = memref.dim %Wg, %c0 : memref<?x?x?xbf16>
    %F = memref.dim %Wg, %c1 : memref<?x?x?xbf16>
    %row, %col, %ok = func.call @ref_coords(%off, %E, %F)
        : (memref<?xi32>, index, index) -> (index, index, i1)
    scf.if %ok {
      %e = func.call @expert_of_row(%off, %E, %row)
          : (memref<?xi32>, index, index) -> index
      %g = func.call @dot_row(%X, %Wg, %row, %e, %col)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, index, index, index) -> f32
      %u = func.call @dot_row(%X, %Wu, %row, %e, %col)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, index, index, index) -> f32
      %ng = arith.negf %g : f32
      %ex = math.exp %ng : f32
      %den = arith.addf %one, %ex : f32
      %s = arith.divf %g, %den : f32
      %h = arith.mulf %s, %u : f32
      %hb = arith.truncf %h : f32 to bf16
      memref.store %hb, %H[%row, %col] : memref<?x?xbf16>
    }
    gpu.return
  }

  // (row, col) of this thread in a grid of 16 x 16 blocks over an
  // [off[E], ncols] output, and whether it lies inside.
  func.func private @ref_coords(%off: memref<?xi32>, %E: index, %ncols: index)
      -> (index, index, i1) {
    %bx = gpu.block_id x
    %by = gpu.block_id y
    %tx = gpu.thread_id x
    %ty = gpu.thread_id y
    %dx = gpu.block_dim x
    %dy = gpu.block_dim y
    %col0 = arith.muli %bx, %dx : index
    %col = arith.addi %col0, %tx : index
    %row0 = arith.muli %by, %dy : index
    %row = arith.addi %row0, %ty : index
    %endi = memref.load %off[%E] : memref<?xi32>
    %end = arith.index_cast %endi : i32 to index
    %okr = arith.cmpi ult, %row, %end : index
    %okc = arith.cmpi ult, %col, %ncols : index
    %ok = arith.andi %okr, %okc : i1
    return %row, %col, %ok : index, index, i1
  }
}

//===----------------------------------------------------------------------===//
// Host functions
//===----------------------------------------------------------------------===//

// The limits of the tensor-core kernels, checked once per call.
func.func private @check_expert_limits(%K: index, %E: index) {
  %c0 = arith.constant 0 : index
  %c8 = arith.constant 8 : index
  %c2048 = arith.constant 2048 : index
  %rem = arith.remui %K, %c8 : index
  %k_ok = arith.cmpi eq, %rem, %c0 : index
  cf.assert %k_ok, "moe gpu experts: the reduction size K must be a multiple of 8"
  %e_ok = arith.cmpi ule, %E, %c2048 : index
  cf.assert %e_ok, "moe gpu experts: at most 2048 experts"
  return
}

// ceil(n / 64)
func.func private @tiles64(%n: index) -> index {
  %c64 = arith.constant 64 : index
  %t = call @ceil_div(%n, %c64) : (index, index) -> index
  return %t : index
}

// The runtime's row threshold for gemv_experts: max(16, 2 E), unless
// MOE_GPU_GEMV_ROWS says otherwise.
func.func private @moe_gpu_gemv_max_rows(i64) -> i64

// Whether a GEMV without a gated activation on rows of `row_bytes` bytes
// takes gemv_pairs rather than gemv_experts (the runtime's choice: rows of
// at most 4 KiB, unless MOE_GPU_GEMV_PAIRS says otherwise).
func.func private @moe_gpu_gemv_pairs(i64) -> i32

// The grid's y and z for n blocks along y, past CUDA's 65535 in y
// (runtime/include/moe_cuda.h); kernels read @block_index_y.
func.func private @moe_gpu_grid_y(index) -> index
func.func private @moe_gpu_grid_z(index) -> index

// Whether N rows over the groups of E experts are few enough for
// gemv_experts (decoding: by default at most max(16, 2 E) rows, so a group
// has a row or two on average and the weights are read about once) rather
// than the 64-row tiles of the tensor-core kernels.
func.func private @few_rows(%N: index, %E: index) -> i1 {
  %Ei = arith.index_cast %E : index to i64
  %limi = call @moe_gpu_gemv_max_rows(%Ei) : (i64) -> i64
  %lim = arith.index_cast %limi : i64 to index
  %few = arith.cmpi ule, %N, %lim : index
  return %few : i1
}

// Whether the GEMMs take grouped_gemm_wgmma (the runtime's choice: a device
// of compute capability 9.0, unless MOE_GPU_WGMMA=0).
func.func private @moe_gpu_use_wgmma() -> i32

// The rows of grouped_gemm_wgmma's tiles that the runtime asks for: 64
// (one warpgroup a block) or 128 (two), MOE_GPU_WGMMA_ROWS.
func.func private @moe_gpu_wgmma_rows() -> i32

// The weight rows of grouped_gemm_wgmma's blocks that the runtime asks
// for: 128 or 256, MOE_GPU_WGMMA_COLS.
func.func private @moe_gpu_wgmma_cols() -> i32

// The tiles of a column that the tensor-core GEMMs' blocks take before
// the next column (@gemm_block): 16, or MOE_GPU_GEMM_GROUP.
func.func private @moe_gpu_gemm_group() -> i64
func.func private @gemm_group() -> index {
  %g = call @moe_gpu_gemm_group() : () -> i64
  %i = arith.index_cast %g : i64 to index
  return %i : index
}

// The k steps of 64 in shared memory (the buffers) of grouped_gemm_wgmma
// on tiles of `rows` x `cols` that the runtime asks for: 4, or 3 to 8 with
// MOE_GPU_WGMMA_STAGES where they fit.
func.func private @moe_gpu_wgmma_stages(i32, i32) -> i32
func.func private @wgmma_stages(%rows: index, %cols: index) -> index {
  %r = arith.index_cast %rows : index to i32
  %c = arith.index_cast %cols : index to i32
  %s = call @moe_gpu_wgmma_stages(%r, %c) : (i32, i32) -> i32
  %i = arith.index_cast %s : i32 to index
  return %i : index
}

// The dynamic shared memory of grouped_gemm_wgmma on tiles of `rows` rows
// and `cols` weight rows with `stages` buffers: a buffer of (rows + cols)
// rows of 128 bytes (A, then B) a stage and 1 KiB to align them to 1024
// bytes; with 4 stages, 97 KiB for 64 x 128, 129 KiB for 128 x 128, 193
// KiB for 128 x 256.
func.func private @wgmma_shared_bytes(%rows: index, %cols: index,
                                      %stages: index) -> i32 {
  %c128 = arith.constant 128 : index
  %c1024 = arith.constant 1024 : index
  %r = arith.addi %rows, %cols : index
  %buffer = arith.muli %r, %c128 : index
  %buffers = arith.muli %buffer, %stages : index
  %b = arith.addi %buffers, %c1024 : index
  %bi = arith.index_cast %b : index to i32
  return %bi : i32
}

// Whether the GEMMs take grouped_gemm_wgmma: the tensor-core path (the
// rows not %few, as @few_rows says) on a device that runs it.
func.func private @use_wgmma(%few: i1) -> i1 {
  %choice = call @moe_gpu_use_wgmma() : () -> i32
  %z = arith.constant 0 : i32
  %true = arith.constant true
  %on = arith.cmpi ne, %choice, %z : i32
  %many = arith.xori %few, %true : i1
  %use = arith.andi %on, %many : i1
  return %use : i1
}

// The rows of the tiles of the expert GEMMs on N rows in E groups: 128
// when they take grouped_gemm_wgmma and the runtime asks for two
// warpgroups a block, else 64 (the other kernels' tiles). The tile map
// (@tile_map_async) and the GEMMs that read it ask with the same N and E,
// so they agree.
func.func private @gemm_tile_rows(%N: index, %E: index) -> index {
  %few = call @few_rows(%N, %E) : (index, index) -> i1
  %wg = call @use_wgmma(%few) : (i1) -> i1
  %rows = call @wgmma_tile_rows(%wg) : (i1) -> index
  return %rows : index
}

// The same for a caller that already knows whether the GEMMs take
// grouped_gemm_wgmma (%wg).
func.func private @wgmma_tile_rows(%wg: i1) -> index {
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %i128 = arith.constant 128 : i32
  %asked = call @moe_gpu_wgmma_rows() : () -> i32
  %two = arith.cmpi eq, %asked, %i128 : i32
  %wide = arith.andi %wg, %two : i1
  %rows = arith.select %wide, %c128, %c64 : index
  return %rows : index
}

// The weight rows of grouped_gemm_wgmma's blocks (its %bcols): 256 when
// the GEMMs take it (%wg) and the runtime asks for 256, else 128.
func.func private @wgmma_tile_cols(%wg: i1) -> index {
  %c128 = arith.constant 128 : index
  %c256 = arith.constant 256 : index
  %i256 = arith.constant 256 : i32
  %asked = call @moe_gpu_wgmma_cols() : () -> i32
  %two = arith.cmpi eq, %asked, %i256 : i32
  %wide = arith.andi %wg, %two : i1
  %cols = arith.select %wide, %c256, %c128 : index
  return %cols : index
}

// ceil(n / d)
func.func private @ceil_div(%n: index, %d: index) -> index {
  %c1 = arith.constant 1 : index
  %d1 = arith.subi %d, %c1 : index
  %p = arith.addi %n, %d1 : index
  %t = arith.divui %p, %d : index
  return %t : index
}

// ceil(n / 8)
func.func private @tiles8(%n: index) -> index {
  %c8 = arith.constant 8 : index
  %t = call @ceil_div(%n, %c8) : (index, index) -> index
  return %t : index
}

// ceil(n / 16)
func.func private @tiles16(%n: index) -> index {
  %c16 = arith.constant 16 : index
  %t = call @ceil_div(%n, %c16) : (index, index) -> index
  return %t : index
}

// Y = X W[e]^T on tensor cores.
func.func @moe_grouped_gemm(%X: memref<?x?xbf16>, %W: memref<?x?x?xbf16>,
                            %off: memref<?xi32>, %Y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %c128 = arith.constant 128 : index
  %c256 = arith.constant 256 : index
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %K = memref.dim %X, %c1 : memref<?x?xbf16>
  %E = memref.dim %W, %c0 : memref<?x?x?xbf16>
  %nout = memref.dim %W, %c1 : memref<?x?x?xbf16>
  call @check_expert_limits(%K, %E) : (index, index) -> ()
  %E1 = arith.addi %E, %c1 : index
  %ntn = call @tiles64(%N) : (index) -> index
  %groups = arith.minui %E, %N : index
  %maxtiles = arith.addi %ntn, %groups : index
  %gx = call @tiles64(%nout) : (index) -> index
  %dX = gpu.alloc (%N, %K) : memref<?x?xbf16>
  %dW = gpu.alloc (%E, %nout, %K) : memref<?x?x?xbf16>
  %doff = gpu.alloc (%E1) : memref<?xi32>
  %dY = gpu.alloc (%N, %nout) : memref<?x?xf32>
  %dtiles = gpu.alloc (%maxtiles) : memref<?x4xi32>
  %nob = call @no_bias(%dX) : (memref<?x?xbf16>) -> memref<?x?xbf16>
  gpu.memcpy %dX, %X : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.memcpy %dW, %W : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  gpu.memcpy %doff, %off : memref<?xi32>, memref<?xi32>
  gpu.memcpy %dY, %Y : memref<?x?xf32>, memref<?x?xf32>
  gpu.launch_func @moe_experts::@build_tile_map
      blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%doff : memref<?xi32>, %E : index, %c64 : index,
           %dtiles : memref<?x4xi32>)
  %ty = call @moe_gpu_grid_y(%maxtiles) : (index) -> index
  %tz = call @moe_gpu_grid_z(%maxtiles) : (index) -> index
  %group = call @gemm_group() : () -> index
  gpu.launch_func @moe_experts::@grouped_gemm_mma
      blocks in (%gx, %ty, %tz) threads in (%c128, %c1, %c1)
      args(%dX : memref<?x?xbf16>, %dW : memref<?x?x?xbf16>,
           %nob : memref<?x?xbf16>,
           %dtiles : memref<?x4xi32>, %dY : memref<?x?xf32>, %group : index)
  gpu.memcpy %Y, %dY : memref<?x?xf32>, memref<?x?xf32>
  gpu.dealloc %dX : memref<?x?xbf16>
  gpu.dealloc %dW : memref<?x?x?xbf16>
  gpu.dealloc %doff : memref<?xi32>
  gpu.dealloc %dY : memref<?x?xf32>
  gpu.dealloc %dtiles : memref<?x4xi32>
  return
}

// Y = X W[e]^T with the scalar reference kernel.
func.func @moe_grouped_gemm_ref(%X: memref<?x?xbf16>, %W: memref<?x?x?xbf16>,
                                %off: memref<?xi32>, %Y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %K = memref.dim %X, %c1 : memref<?x?xbf16>
  %E = memref.dim %W, %c0 : memref<?x?x?xbf16>
  %nout = memref.dim %W, %c1 : memref<?x?x?xbf16>
  %E1 = arith.addi %E, %c1 : index
  %gy = call @tiles16(%N) : (index) -> index
  %gx = call @tiles16(%nout) : (index) -> index
  %dX = gpu.alloc (%N, %K) : memref<?x?xbf16>
  %dW = gpu.alloc (%E, %nout, %K) : memref<?x?x?xbf16>
  %doff = gpu.alloc (%E1) : memref<?xi32>
  %dY = gpu.alloc (%N, %nout) : memref<?x?xf32>
  gpu.memcpy %dX, %X : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.memcpy %dW, %W : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  gpu.memcpy %doff, %off : memref<?xi32>, memref<?xi32>
  gpu.memcpy %dY, %Y : memref<?x?xf32>, memref<?x?xf32>
  gpu.launch_func @moe_experts::@grouped_gemm_ref
      blocks in (%gx, %gy, %c1) threads in (%c16, %c16, %c1)
      args(%dX : memref<?x?xbf16>, %dW : memref<?x?x?xbf16>,
           %doff : memref<?xi32>, %dY : memref<?x?xf32>)
  gpu.memcpy %Y, %dY : memref<?x?xf32>, memref<?x?xf32>
  gpu.dealloc %dX : memref<?x?xbf16>
  gpu.dealloc %dW : memref<?x?x?xbf16>
  gpu.dealloc %doff : memref<?xi32>
  gpu.dealloc %dY : memref<?x?xf32>
  return
}

// The tile map of the E groups of `off` (at most N rows) on `stream`: the
// entries of build_tile_map on tiles of @gemm_tile_rows rows, as many as
// the GEMMs' grid bound (@alloc_tile_map_async). @free_tile_map_async
// frees it.
func.func private @tile_map_async(%off: memref<?xi32>, %E: index, %N: index,
                                  %stream: !gpu.async.token)
    -> (memref<?x4xi32>, index, !gpu.async.token) {
  %false = arith.constant false
  %c0 = arith.constant 0 : index
  %tiles, %rows, %a0 = call @alloc_tile_map_async(%E, %N, %stream)
      : (index, index, !gpu.async.token)
      -> (memref<?x4xi32>, index, !gpu.async.token)
  %k = call @build_tile_map_async(%off, %E, %rows, %tiles, %false, %a0)
      : (memref<?xi32>, index, index, memref<?x4xi32>, i1, !gpu.async.token)
      -> !gpu.async.token
  %maxtiles = memref.dim %tiles, %c0 : memref<?x4xi32>
  return %tiles, %maxtiles, %k : memref<?x4xi32>, index, !gpu.async.token
}

// A tile map for E groups over at most N rows, allocated on `stream` and
// not yet filled, and the rows of its tiles (@gemm_tile_rows). Its
// entries are the GEMMs' grid bound, ceil(N / rows) + min(E, N) (at most
// min(E, N) groups have rows, and each has at most one partial tile).
func.func private @alloc_tile_map_async(%E: index, %N: index,
                                        %stream: !gpu.async.token)
    -> (memref<?x4xi32>, index, !gpu.async.token) {
  %rows = call @gemm_tile_rows(%N, %E) : (index, index) -> index
  %ntn = call @ceil_div(%N, %rows) : (index, index) -> index
  %groups = arith.minui %E, %N : index
  %maxtiles = arith.addi %ntn, %groups : index
  %tiles, %a0 = gpu.alloc async [%stream] (%maxtiles) : memref<?x4xi32>
  return %tiles, %rows, %a0 : memref<?x4xi32>, index, !gpu.async.token
}

// build_tile_map of the E groups of `off` into `tiles` (tiles of `rows`
// rows), unless the map is `filled` already (by the permutation) or has
// no entries: then an empty grid.
func.func private @build_tile_map_async(%off: memref<?xi32>, %E: index,
                                        %rows: index,
                                        %tiles: memref<?x4xi32>, %filled: i1,
                                        %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %true = arith.constant true
  %n = memref.dim %tiles, %c0 : memref<?x4xi32>
  %any = arith.cmpi ne, %n, %c0 : index
  %empty = arith.xori %filled, %true : i1
  %build = arith.andi %empty, %any : i1
  %g_map = arith.select %build, %c1, %c0 : index
  %k = gpu.launch_func async [%stream] @moe_experts::@build_tile_map
      blocks in (%g_map, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%off : memref<?xi32>, %E : index, %rows : index,
           %tiles : memref<?x4xi32>)
  return %k : !gpu.async.token
}

func.func private @free_tile_map_async(%tiles: memref<?x4xi32>,
                                       %stream: !gpu.async.token)
    -> !gpu.async.token {
  %f = gpu.dealloc async [%stream] %tiles : memref<?x4xi32>
  return %f : !gpu.async.token
}

// gemv_experts on grid (gx, ty, tz), or gemv_experts_bias when B (its
// biases) has rows; the other on an empty grid.
func.func private @gemv_async(%X: memref<?x?xbf16>, %Wa: memref<?x?x?xbf16>,
                              %Wb: memref<?x?x?xbf16>, %B: memref<?x?xbf16>,
                              %tiles: memref<?x4xi32>, %Y: memref<?x?xf32>,
                              %H: memref<?x?xbf16>, %act: i32, %gated: i32,
                              %gx: index, %ty: index, %tz: index,
                              %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %Eb = memref.dim %B, %c0 : memref<?x?xbf16>
  %biased = arith.cmpi ne, %Eb, %c0 : index
  %g_plain = arith.select %biased, %c0, %gx : index
  %g_bias = arith.select %biased, %gx, %c0 : index
  %k0 = gpu.launch_func async [%stream] @moe_experts::@gemv_experts
      blocks in (%g_plain, %ty, %tz) threads in (%c256, %c1, %c1)
      args(%X : memref<?x?xbf16>, %Wa : memref<?x?x?xbf16>,
           %Wb : memref<?x?x?xbf16>, %tiles : memref<?x4xi32>,
           %Y : memref<?x?xf32>, %H : memref<?x?xbf16>, %act : i32,
           %gated : i32)
  %k1 = gpu.launch_func async [%k0] @moe_experts::@gemv_experts_bias
      blocks in (%g_bias, %ty, %tz) threads in (%c256, %c1, %c1)
      args(%X : memref<?x?xbf16>, %Wa : memref<?x?x?xbf16>,
           %Wb : memref<?x?x?xbf16>, %B : memref<?x?xbf16>,
           %tiles : memref<?x4xi32>, %Y : memref<?x?xf32>,
           %H : memref<?x?xbf16>, %act : i32, %gated : i32)
  return %k1 : !gpu.async.token
}

// An empty bias operand of the expert kernels (no rows: nothing added),
// a view of X.
func.func private @no_bias(%X: memref<?x?xbf16>) -> memref<?x?xbf16> {
  %c0 = arith.constant 0 : index
  %none = memref.reinterpret_cast %X to offset: [0], sizes: [%c0, %c0],
      strides: [%c0, 1] : memref<?x?xbf16> to memref<?x?xbf16>
  return %none : memref<?x?xbf16>
}

// @grouped_gemm_bias_async without a bias.
func.func private @grouped_gemm_async(%X: memref<?x?xbf16>,
                                      %W: memref<?x?x?xbf16>,
                                      %tiles: memref<?x4xi32>,
                                      %maxtiles: index, %Y: memref<?x?xf32>,
                                      %stream: !gpu.async.token)
    -> !gpu.async.token {
  %none = call @no_bias(%X) : (memref<?x?xbf16>) -> memref<?x?xbf16>
  %k = call @grouped_gemm_bias_async(%X, %W, %none, %tiles, %maxtiles, %Y,
                                     %stream)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?xbf16>,
         memref<?x4xi32>, index, memref<?x?xf32>, !gpu.async.token)
      -> !gpu.async.token
  return %k : !gpu.async.token
}

// Y = X W[e]^T (+ B[e], an expert bias [E, Nout] when B has rows) on a
// tile map of @tile_map_async: gemv_experts for few rows (@few_rows), else
// grouped_gemm_mma (the other launched on an empty grid); nothing is
// launched when W has no rows.
func.func private @grouped_gemm_bias_async(%X: memref<?x?xbf16>,
                                           %W: memref<?x?x?xbf16>,
                                           %B: memref<?x?xbf16>,
                                           %tiles: memref<?x4xi32>,
                                           %maxtiles: index,
                                           %Y: memref<?x?xf32>,
                                           %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c128 = arith.constant 128 : index
  %c256 = arith.constant 256 : index
  %z = arith.constant 0 : i32
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %E = memref.dim %W, %c0 : memref<?x?x?xbf16>
  %nout = memref.dim %W, %c1 : memref<?x?x?xbf16>
  %few = call @few_rows(%N, %E) : (index, index) -> i1
  %wg = call @use_wgmma(%few) : (i1) -> i1
  %tc = arith.ori %few, %wg : i1
  %g64 = call @tiles64(%nout) : (index) -> index
  %gx = arith.select %tc, %c0, %g64 : index
  %tcols = call @wgmma_tile_cols(%wg) : (i1) -> index
  %gwc = call @ceil_div(%nout, %tcols) : (index, index) -> index
  %gw = arith.select %wg, %gwc, %c0 : index
  // Few rows: gemv_experts, or gemv_pairs (two columns a warp) when the
  // runtime takes it for rows of K bf16.
  %K = memref.dim %X, %c1 : memref<?x?xbf16>
  %row_bytes = arith.muli %K, %c2 : index
  %row_bytes_i = arith.index_cast %row_bytes : index to i64
  %pairs_i = call @moe_gpu_gemv_pairs(%row_bytes_i) : (i64) -> i32
  %pairs = arith.cmpi ne, %pairs_i, %z : i32
  %g8 = call @tiles8(%nout) : (index) -> index
  %gv_few = arith.select %few, %g8, %c0 : index
  %gv = arith.select %pairs, %c0, %gv_few : index
  %nout1 = arith.addi %nout, %c1 : index
  %npairs = arith.divui %nout1, %c2 : index
  %gp8 = call @tiles8(%npairs) : (index) -> index
  %gp_few = arith.select %few, %gp8, %c0 : index
  %gp = arith.select %pairs, %gp_few, %c0 : index
  %ty = call @moe_gpu_grid_y(%maxtiles) : (index) -> index
  %tz = call @moe_gpu_grid_z(%maxtiles) : (index) -> index
  %group = call @gemm_group() : () -> index
  %k0 = gpu.launch_func async [%stream] @moe_experts::@grouped_gemm_mma
      blocks in (%gx, %ty, %tz) threads in (%c128, %c1, %c1)
      args(%X : memref<?x?xbf16>, %W : memref<?x?x?xbf16>,
           %B : memref<?x?xbf16>,
           %tiles : memref<?x4xi32>,
           %Y : memref<?x?xf32>, %group : index)
  // No bf16 output and no up weight: empty views.
  %noH = memref.reinterpret_cast %X to offset: [0], sizes: [%c0, %c0],
      strides: [%c0, 1] : memref<?x?xbf16> to memref<?x?xbf16>
  %noWu = memref.reinterpret_cast %W to offset: [0], sizes: [%c0, %c0, %c0],
      strides: [%c0, %c0, 1] : memref<?x?x?xbf16> to memref<?x?x?xbf16>
  %trows = call @wgmma_tile_rows(%wg) : (i1) -> index
  %stages = call @wgmma_stages(%trows, %tcols) : (index, index) -> index
  %smem = call @wgmma_shared_bytes(%trows, %tcols, %stages)
      : (index, index, index) -> i32
  %wthreads = arith.muli %trows, %c2 : index
  %kw = gpu.launch_func async [%k0] @moe_experts::@grouped_gemm_wgmma
      blocks in (%gw, %ty, %tz) threads in (%wthreads, %c1, %c1)
      dynamic_shared_memory_size %smem
      args(%X : memref<?x?xbf16>, %W : memref<?x?x?xbf16>,
           %noWu : memref<?x?x?xbf16>, %B : memref<?x?xbf16>,
           %B : memref<?x?xbf16>, %tiles : memref<?x4xi32>,
           %Y : memref<?x?xf32>, %noH : memref<?x?xbf16>, %z : i32,
           %tcols : index, %stages : index, %group : index)
  %k1 = call @gemv_async(%X, %W, %W, %B, %tiles, %Y, %noH, %z, %z, %gv, %ty,
                        %tz, %kw)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, memref<?x4xi32>, memref<?x?xf32>,
         memref<?x?xbf16>, i32, i32, index, index, index, !gpu.async.token)
      -> !gpu.async.token
  %k2 = gpu.launch_func async [%k1] @moe_experts::@gemv_pairs
      blocks in (%gp, %ty, %tz) threads in (%c256, %c1, %c1)
      args(%X : memref<?x?xbf16>, %W : memref<?x?x?xbf16>,
           %B : memref<?x?xbf16>, %tiles : memref<?x4xi32>,
           %Y : memref<?x?xf32>)
  return %k2 : !gpu.async.token
}

// D = bf16(X A[e]^T) B[e]^T: a LoRA delta before its scale alpha / r, the
// rank-r rows rounded to bf16 for the second GEMM (A [E, r, K], B [E, n, r],
// D [N, n] f32). Nothing is launched when A and B are empty.
func.func private @lora_delta_async(%X: memref<?x?xbf16>,
                                    %A: memref<?x?x?xbf16>,
                                    %B: memref<?x?x?xbf16>,
                                    %tiles: memref<?x4xi32>,
                                    %maxtiles: index, %D: memref<?x?xf32>,
                                    %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c255 = arith.constant 255 : index
  %c256 = arith.constant 256 : index
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %r = memref.dim %A, %c1 : memref<?x?x?xbf16>
  %t, %a0 = gpu.alloc async [%stream] (%N, %r) : memref<?x?xf32>
  %tb, %a1 = gpu.alloc async [%a0] (%N, %r) : memref<?x?xbf16>
  %k0 = call @grouped_gemm_async(%X, %A, %tiles, %maxtiles, %t,
                                 %a1)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x4xi32>, index,
         memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %Nr = arith.muli %N, %r : index
  %p = arith.addi %Nr, %c255 : index
  %g = arith.divui %p, %c256 : index
  %k1 = gpu.launch_func async [%k0] @moe_experts::@round_bf16
      blocks in (%g, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%t : memref<?x?xf32>, %tb : memref<?x?xbf16>)
  %k2 = call @grouped_gemm_async(%tb, %B, %tiles, %maxtiles, %D,
                                 %k1)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x4xi32>, index,
         memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %f0 = gpu.dealloc async [%k2] %t : memref<?x?xf32>
  %f1 = gpu.dealloc async [%f0] %tb : memref<?x?xbf16>
  return %f1 : !gpu.async.token
}

// The gated expert enqueued on `stream`, on device buffers: tile map, fused
// gate/up + act(gate) * up into H [N, F] (bf16; act 0 silu, 1 gelu_tanh,
// 2 gelu_erf, 3 relu), down projection into Y [N, D] (f32). F is Wd's
// inner size; Wg and Wu may be one fused gate_up [E, 2F, D] (gate rows
// first). The tile map and H are temporaries allocated and freed in stream
// order. Returns the stream; nothing is synchronized, so a CUDA graph can
// capture the call.
func.func @moe_expert_ffn_async(%X: memref<?x?xbf16>, %Wg: memref<?x?x?xbf16>,
                                %Wu: memref<?x?x?xbf16>,
                                %Wd: memref<?x?x?xbf16>, %off: memref<?xi32>,
                                %Y: memref<?x?xf32>, %act: i32,
                                %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %D = memref.dim %X, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wg, %c0 : memref<?x?x?xbf16>
  %F = memref.dim %Wd, %c2 : memref<?x?x?xbf16>
  call @check_expert_limits(%D, %E) : (index, index) -> ()
  call @check_expert_limits(%F, %E) : (index, index) -> ()
  %tiles, %unused, %k0 = call @tile_map_async(%off, %E, %N, %stream)
      : (memref<?xi32>, index, index, !gpu.async.token)
      -> (memref<?x4xi32>, index, !gpu.async.token)
  %none = call @no_bias(%X) : (memref<?x?xbf16>) -> memref<?x?xbf16>
  %k1 = call @expert_ffn_mapped_async(%X, %Wg, %Wu, %Wd, %none, %none,
                                      %none, %tiles, %Y, %act, %k0)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
         memref<?x?xbf16>, memref<?x4xi32>, memref<?x?xf32>, i32,
         !gpu.async.token) -> !gpu.async.token
  %f = call @free_tile_map_async(%tiles, %k1)
      : (memref<?x4xi32>, !gpu.async.token) -> !gpu.async.token
  return %f : !gpu.async.token
}

// @moe_expert_ffn_async on a tile map of @alloc_tile_map_async for X's
// rows, filled before the stream reaches the GEMMs (by build_tile_map, or
// by a permutation that fills it as it places the rows), with the expert
// biases Bg, Bu [E, F] and Bd [E, D] of gated experts (GPT-OSS; empty
// views of no rows otherwise; a fused gate_up bias [E, 2F] is passed as
// both Bg and Bu, as its weight is): H = act(X Wg^T + Bg, X Wu^T + Bu),
// Y = H Wd^T + Bd, the biases added in f32 to the GEMMs' sums. The limits
// are the caller's to check.
func.func private @expert_ffn_mapped_async(%X: memref<?x?xbf16>,
                                           %Wg: memref<?x?x?xbf16>,
                                           %Wu: memref<?x?x?xbf16>,
                                           %Wd: memref<?x?x?xbf16>,
                                           %Bg: memref<?x?xbf16>,
                                           %Bu: memref<?x?xbf16>,
                                           %Bd: memref<?x?xbf16>,
                                           %tiles: memref<?x4xi32>,
                                           %Y: memref<?x?xf32>, %act: i32,
                                           %stream: !gpu.async.token)
    -> !gpu.async.token {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c128 = arith.constant 128 : index
  %c256 = arith.constant 256 : index
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %E = memref.dim %Wg, %c0 : memref<?x?x?xbf16>
  %F = memref.dim %Wd, %c2 : memref<?x?x?xbf16>
  %maxtiles = memref.dim %tiles, %c0 : memref<?x4xi32>
  %gxf = call @tiles64(%F) : (index) -> index
  // Separate gate and up biases (each [E, F]) become one [E, 2F] first,
  // the fused layout, which the gated kernels take as both operands.
  %Eb = memref.dim %Bg, %c0 : memref<?x?xbf16>
  %Fu = memref.dim %Bu, %c1 : memref<?x?xbf16>
  %any_b = arith.cmpi ne, %Eb, %c0 : index
  %split_u = arith.cmpi eq, %Fu, %F : index
  %split = arith.andi %any_b, %split_u : i1
  %Es = arith.select %split, %Eb, %c0 : index
  %F2 = arith.addi %F, %F : index
  %Bcat, %a2b = gpu.alloc async [%stream] (%Es, %F2) : memref<?x?xbf16>
  %nb = arith.muli %Es, %F2 : index
  %c255b = arith.constant 255 : index
  %nbp = arith.addi %nb, %c255b : index
  %g_cat = arith.divui %nbp, %c256 : index
  %a2c = gpu.launch_func async [%a2b] @moe_experts::@concat_biases
      blocks in (%g_cat, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%Bg : memref<?x?xbf16>, %Bu : memref<?x?xbf16>,
           %Bcat : memref<?x?xbf16>)
  %Bgu = arith.select %split, %Bcat, %Bg : memref<?x?xbf16>
  %H, %a3h = gpu.alloc async [%a2c] (%N, %F) : memref<?x?xbf16>
  // Wu empty: plain MLP experts, act(X Wg^T) Wd^T. The first GEMM
  // (@grouped_gemm_async) writes f32 rows into Hf and @activate rounds
  // act(Hf) into H; the gated kernels are launched on empty grids. Gated
  // experts: Hf is empty, and so is the first GEMM's weight.
  %Eu = memref.dim %Wu, %c0 : memref<?x?x?xbf16>
  %gated = arith.cmpi ne, %Eu, %c0 : index
  %Nm = arith.select %gated, %c0, %N : index
  %Hf, %a3 = gpu.alloc async [%a3h] (%Nm, %F) : memref<?x?xf32>
  %noW = memref.reinterpret_cast %Wg to offset: [0], sizes: [%c0, %c0, %c0],
      strides: [%c0, %c0, 1] : memref<?x?x?xbf16> to memref<?x?x?xbf16>
  %W1 = arith.select %gated, %noW, %Wg : memref<?x?x?xbf16>
  // The gated activation: gemv_experts for few rows (decoding), else the
  // fused tensor-core kernel.
  %few = call @few_rows(%N, %E) : (index, index) -> i1
  %wg = call @use_wgmma(%few) : (i1) -> i1
  %tc = arith.ori %few, %wg : i1
  %gxf_mma = arith.select %tc, %c0, %gxf : index
  %g_gated = arith.select %gated, %gxf_mma, %c0 : index
  // grouped_gemm_wgmma: NB / 2 gate columns a block.
  %tcols = call @wgmma_tile_cols(%wg) : (i1) -> index
  %thalf = arith.divui %tcols, %c2 : index
  %gxf_half = call @ceil_div(%F, %thalf) : (index, index) -> index
  %gxf_wg = arith.select %wg, %gxf_half, %c0 : index
  %g_gated_wg = arith.select %gated, %gxf_wg, %c0 : index
  %gvf = call @tiles8(%F) : (index) -> index
  %gvf_few = arith.select %few, %gvf, %c0 : index
  %gv_gated = arith.select %gated, %gvf_few, %c0 : index
  %one_i = arith.constant 1 : i32
  %nact = arith.muli %Nm, %F : index
  %c255 = arith.constant 255 : index
  %nactp = arith.addi %nact, %c255 : index
  %g_act = arith.divui %nactp, %c256 : index
  %ty = call @moe_gpu_grid_y(%maxtiles) : (index) -> index
  %tz = call @moe_gpu_grid_z(%maxtiles) : (index) -> index
  %group = call @gemm_group() : () -> index
  %k1g = gpu.launch_func async [%a3] @moe_experts::@gate_up_swiglu_mma
      blocks in (%g_gated, %ty, %tz) threads in (%c128, %c1, %c1)
      args(%X : memref<?x?xbf16>, %Wg : memref<?x?x?xbf16>,
           %Wu : memref<?x?x?xbf16>, %Bgu : memref<?x?xbf16>,
           %Bgu : memref<?x?xbf16>,
           %tiles : memref<?x4xi32>, %H : memref<?x?xbf16>, %act : i32,
           %group : index)
  // No f32 output: an empty view.
  %noY = memref.reinterpret_cast %Y to offset: [0], sizes: [%c0, %c0],
      strides: [%c0, 1] : memref<?x?xf32> to memref<?x?xf32>
  %trows = call @wgmma_tile_rows(%wg) : (i1) -> index
  %stages = call @wgmma_stages(%trows, %tcols) : (index, index) -> index
  %smem = call @wgmma_shared_bytes(%trows, %tcols, %stages)
      : (index, index, index) -> i32
  %wthreads = arith.muli %trows, %c2 : index
  %k1w = gpu.launch_func async [%k1g] @moe_experts::@grouped_gemm_wgmma
      blocks in (%g_gated_wg, %ty, %tz) threads in (%wthreads, %c1, %c1)
      dynamic_shared_memory_size %smem
      args(%X : memref<?x?xbf16>, %Wg : memref<?x?x?xbf16>,
           %Wu : memref<?x?x?xbf16>, %Bgu : memref<?x?xbf16>,
           %Bgu : memref<?x?xbf16>, %tiles : memref<?x4xi32>,
           %noY : memref<?x?xf32>, %H : memref<?x?xbf16>, %act : i32,
           %tcols : index, %stages : index, %group : index)
  %k1vg = call @gemv_async(%X, %Wg, %Wu, %Bgu, %tiles, %Hf, %H, %act,
                           %one_i, %gv_gated, %ty, %tz, %k1w)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?xbf16>, memref<?x4xi32>, memref<?x?xf32>,
         memref<?x?xbf16>, i32, i32, index, index, index, !gpu.async.token)
      -> !gpu.async.token
  %k1vp = call @grouped_gemm_async(%X, %W1, %tiles, %maxtiles,
                                   %Hf, %k1vg)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x4xi32>, index,
         memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %k1 = gpu.launch_func async [%k1vp] @moe_experts::@activate
      blocks in (%g_act, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%Hf : memref<?x?xf32>, %H : memref<?x?xbf16>, %act : i32)
  %k2 = call @grouped_gemm_bias_async(%H, %Wd, %Bd, %tiles, %maxtiles,
                                      %Y, %k1)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?xbf16>,
         memref<?x4xi32>, index, memref<?x?xf32>,
         !gpu.async.token) -> !gpu.async.token
  %f3h = gpu.dealloc async [%k2] %H : memref<?x?xbf16>
  %f3f = gpu.dealloc async [%f3h] %Hf : memref<?x?xf32>
  %f3 = gpu.dealloc async [%f3f] %Bcat : memref<?x?xbf16>
  return %f3 : !gpu.async.token
}

// Y = (silu(X Wg[e]^T) * (X Wu[e]^T)) Wd[e]^T on tensor cores.
func.func @moe_expert_ffn(%X: memref<?x?xbf16>, %Wg: memref<?x?x?xbf16>,
                          %Wu: memref<?x?x?xbf16>, %Wd: memref<?x?x?xbf16>,
                          %off: memref<?xi32>, %Y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %D = memref.dim %X, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wg, %c0 : memref<?x?x?xbf16>
  %c2 = arith.constant 2 : index
  %F = memref.dim %Wd, %c2 : memref<?x?x?xbf16>
  %Fg = memref.dim %Wg, %c1 : memref<?x?x?xbf16>
  %Eu = memref.dim %Wu, %c0 : memref<?x?x?xbf16>
  %Fu = memref.dim %Wu, %c1 : memref<?x?x?xbf16>
  %Du = memref.dim %Wu, %c2 : memref<?x?x?xbf16>
  %E1 = arith.addi %E, %c1 : index
  %t0 = gpu.wait async
  %dX, %a0 = gpu.alloc async [%t0] (%N, %D) : memref<?x?xbf16>
  %dWg, %a1 = gpu.alloc async [%a0] (%E, %Fg, %D) : memref<?x?x?xbf16>
  %dWu, %a2 = gpu.alloc async [%a1] (%Eu, %Fu, %Du) : memref<?x?x?xbf16>
  %dWd, %a3 = gpu.alloc async [%a2] (%E, %D, %F) : memref<?x?x?xbf16>
  %doff, %a4 = gpu.alloc async [%a3] (%E1) : memref<?xi32>
  %dY, %a5 = gpu.alloc async [%a4] (%N, %D) : memref<?x?xf32>
  %m0 = gpu.memcpy async [%a5] %dX, %X : memref<?x?xbf16>, memref<?x?xbf16>
  %m1 = gpu.memcpy async [%m0] %dWg, %Wg
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m2 = gpu.memcpy async [%m1] %dWu, %Wu
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m3 = gpu.memcpy async [%m2] %dWd, %Wd
      : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  %m4 = gpu.memcpy async [%m3] %doff, %off : memref<?xi32>, memref<?xi32>
  %m5 = gpu.memcpy async [%m4] %dY, %Y : memref<?x?xf32>, memref<?x?xf32>
  %silu = arith.constant 0 : i32
  %k = call @moe_expert_ffn_async(%dX, %dWg, %dWu, %dWd, %doff, %dY, %silu,
                                  %m5)
      : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
         memref<?x?x?xbf16>, memref<?xi32>, memref<?x?xf32>, i32,
         !gpu.async.token) -> !gpu.async.token
  %o = gpu.memcpy async [%k] %Y, %dY : memref<?x?xf32>, memref<?x?xf32>
  %f0 = gpu.dealloc async [%o] %dX : memref<?x?xbf16>
  %f1 = gpu.dealloc async [%f0] %dWg : memref<?x?x?xbf16>
  %f2 = gpu.dealloc async [%f1] %dWu : memref<?x?x?xbf16>
  %f3 = gpu.dealloc async [%f2] %dWd : memref<?x?x?xbf16>
  %f4 = gpu.dealloc async [%f3] %doff : memref<?xi32>
  %f5 = gpu.dealloc async [%f4] %dY : memref<?x?xf32>
  gpu.wait [%f5]
  return
}

// The gated expert with the scalar reference kernels.
func.func @moe_expert_ffn_ref(%X: memref<?x?xbf16>, %Wg: memref<?x?x?xbf16>,
                              %Wu: memref<?x?x?xbf16>, %Wd: memref<?x?x?xbf16>,
                              %off: memref<?xi32>, %Y: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %N = memref.dim %X, %c0 : memref<?x?xbf16>
  %D = memref.dim %X, %c1 : memref<?x?xbf16>
  %E = memref.dim %Wg, %c0 : memref<?x?x?xbf16>
  %F = memref.dim %Wg, %c1 : memref<?x?x?xbf16>
  %E1 = arith.addi %E, %c1 : index
  %gy = call @tiles16(%N) : (index) -> index
  %gxf = call @tiles16(%F) : (index) -> index
  %gxd = call @tiles16(%D) : (index) -> index
  %dX = gpu.alloc (%N, %D) : memref<?x?xbf16>
  %dWg = gpu.alloc (%E, %F, %D) : memref<?x?x?xbf16>
  %dWu = gpu.alloc (%E, %F, %D) : memref<?x?x?xbf16>
  %dWd = gpu.alloc (%E, %D, %F) : memref<?x?x?xbf16>
  %doff = gpu.alloc (%E1) : memref<?xi32>
  %dH = gpu.alloc (%N, %F) : memref<?x?xbf16>
  %dY = gpu.alloc (%N, %D) : memref<?x?xf32>
  gpu.memcpy %dX, %X : memref<?x?xbf16>, memref<?x?xbf16>
  gpu.memcpy %dWg, %Wg : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  gpu.memcpy %dWu, %Wu : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  gpu.memcpy %dWd, %Wd : memref<?x?x?xbf16>, memref<?x?x?xbf16>
  gpu.memcpy %doff, %off : memref<?xi32>, memref<?xi32>
  gpu.memcpy %dY, %Y : memref<?x?xf32>, memref<?x?xf32>
  gpu.launch_func @moe_experts::@gate_up_swiglu_ref
      blocks in (%gxf, %gy, %c1) threads in (%c16, %c16, %c1)
      args(%dX : memref<?x?xbf16>, %dWg : memref<?x?x?xbf16>,
           %dWu : memref<?x?x?xbf16>, %doff : memref<?xi32>,
           %dH : memref<?x?xbf16>)
  gpu.launch_func @moe_experts::@grouped_gemm_ref
      blocks in (%gxd, %gy, %c1) threads in (%c16, %c16, %c1)
      args(%dH : memref<?x?xbf16>, %dWd : memref<?x?x?xbf16>,
           %doff : memref<?xi32>, %dY : memref<?x?xf32>)
  gpu.memcpy %Y, %dY : memref<?x?xf32>, memref<?x?xf32>
  gpu.dealloc %dX : memref<?x?xbf16>
  gpu.dealloc %dWg : memref<?x?x?xbf16>
  gpu.dealloc %dWu : memref<?x?x?xbf16>
  gpu.dealloc %dWd : memref<?x?x?xbf16>
  gpu.dealloc %doff : memref<?xi32>
  gpu.dealloc %dH : memref<?x?xbf16>
  gpu.dealloc %dY : memref<?x?xf32>
  return
}

}
