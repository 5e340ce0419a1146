// Times the gated expert FFN of lib/GPU/Kernels/experts.mlir
// (@moe_expert_ffn_device: tile map, fused gate/up + SwiGLU, down
// projection; bf16 in, f32 accumulation) on device-resident buffers, for two
// expert shapes and T = 1, 16, 256, 4096 tokens with uniform routing.
//
// Every call of @moe_expert_ffn_device creates a stream, launches three
// kernels and synchronizes; the cost of that, measured with an empty kernel,
// is printed and subtracted in the "net" column.
//
// Output, one line per case:
//   ( T, rows, us/call, net us/call, TFLOP/s, weight GB/s )
// TFLOP/s counts 2 * rows * d * f * 3 (gate, up, down) over the net time;
// weight GB/s counts the bytes of the experts that received rows
// (3 * f * d * 2 each) over the net time.
//
// Run by bench/gpu/run.sh, linked with the kernel library built as a
// shared object.

module attributes {gpu.container_module} {

gpu.module @bench_kernels {
  // m[i] = ((i * 7919) mod 251 - 125) / 2048 over the elements i of m in
  // row-major order, a deterministic filler.
  func.func private @value(%i: index) -> bf16 {
    %c251 = arith.constant 251 : index
    %c125 = arith.constant 125 : index
    %c7919 = arith.constant 7919 : index
    %s = arith.constant 2048.0 : f32
    %p = arith.muli %i, %c7919 : index
    %r = arith.remui %p, %c251 : index
    %v = arith.subi %r, %c125 : index
    %vi = arith.index_cast %v : index to i64
    %vf = arith.sitofp %vi : i64 to f32
    %f = arith.divf %vf, %s : f32
    %b = arith.truncf %f : f32 to bf16
    return %b : bf16
  }

  // Grid-stride loops over the elements of a 2-D or 3-D memref.
  gpu.func @fill2(%m: memref<?x?xbf16>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %n0 = memref.dim %m, %c0 : memref<?x?xbf16>
    %n1 = memref.dim %m, %c1 : memref<?x?xbf16>
    %n = arith.muli %n0, %n1 : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %gdim = gpu.grid_dim x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %bdim : index
    %i = arith.addi %i0, %tid : index
    %stride = arith.muli %gdim, %bdim : index
    scf.for %j = %i to %n step %stride {
      %a = arith.divui %j, %n1 : index
      %b = arith.remui %j, %n1 : index
      %v = func.call @value(%j) : (index) -> bf16
      memref.store %v, %m[%a, %b] : memref<?x?xbf16>
    }
    gpu.return
  }

  gpu.func @fill3(%m: memref<?x?x?xbf16>) kernel {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    %n0 = memref.dim %m, %c0 : memref<?x?x?xbf16>
    %n1 = memref.dim %m, %c1 : memref<?x?x?xbf16>
    %n2 = memref.dim %m, %c2 : memref<?x?x?xbf16>
    %n12 = arith.muli %n1, %n2 : index
    %n = arith.muli %n0, %n12 : index
    %bid = gpu.block_id x
    %bdim = gpu.block_dim x
    %gdim = gpu.grid_dim x
    %tid = gpu.thread_id x
    %i0 = arith.muli %bid, %bdim : index
    %i = arith.addi %i0, %tid : index
    %stride = arith.muli %gdim, %bdim : index
    scf.for %j = %i to %n step %stride {
      %a = arith.divui %j, %n12 : index
      %r = arith.remui %j, %n12 : index
      %b = arith.divui %r, %n2 : index
      %c = arith.remui %r, %n2 : index
      %v = func.call @value(%j) : (index) -> bf16
      memref.store %v, %m[%a, %b, %c] : memref<?x?x?xbf16>
    }
    gpu.return
  }

  gpu.func @noop() kernel {
    gpu.return
  }
}

func.func private @rtclock() -> f64
func.func private @moe_expert_ffn_device(memref<?x?xbf16>, memref<?x?x?xbf16>,
                                         memref<?x?x?xbf16>,
                                         memref<?x?x?xbf16>, memref<?xi32>,
                                         memref<?xi32>, memref<?xi32>,
                                         memref<1xi32>, memref<?x?xbf16>,
                                         memref<?x?xf32>)

func.func @fill2(%m: memref<?x?xbf16>) {
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c1024 = arith.constant 1024 : index
  gpu.launch_func @bench_kernels::@fill2
      blocks in (%c1024, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%m : memref<?x?xbf16>)
  return
}

func.func @fill3(%m: memref<?x?x?xbf16>) {
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %c1024 = arith.constant 1024 : index
  gpu.launch_func @bench_kernels::@fill3
      blocks in (%c1024, %c1, %c1) threads in (%c256, %c1, %c1)
      args(%m : memref<?x?x?xbf16>)
  return
}

func.func @noop() {
  %c1 = arith.constant 1 : index
  gpu.launch_func @bench_kernels::@noop
      blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
  return
}

// Seconds per call of an empty launch-and-synchronize.
func.func @overhead() -> f64 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c200 = arith.constant 200 : index
  %n = arith.constant 200.0 : f64
  call @noop() : () -> ()
  %t0 = call @rtclock() : () -> f64
  scf.for %i = %c0 to %c200 step %c1 {
    func.call @noop() : () -> ()
  }
  %t1 = call @rtclock() : () -> f64
  %dt = arith.subf %t1, %t0 : f64
  %per = arith.divf %dt, %n : f64
  return %per : f64
}

func.func @bench_shape(%d: index, %f: index, %E: index, %k: index,
                       %ovh: f64) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  %c4 = arith.constant 4 : index
  %c63 = arith.constant 63 : index
  %c64 = arith.constant 64 : index
  %reps = arith.constant 20 : index
  %repsf = arith.constant 20.0 : f64
  %two = arith.constant 2.0 : f64
  %six = arith.constant 6.0 : f64
  %zero = arith.constant 0.0 : f64
  %tera = arith.constant 1.0e12 : f64
  %giga = arith.constant 1.0e9 : f64
  %mega = arith.constant 1.0e6 : f64
  %fd = arith.muli %f, %d : index
  %E1 = arith.addi %E, %c1 : index
  %Wg = gpu.alloc (%E, %f, %d) : memref<?x?x?xbf16>
  %Wu = gpu.alloc (%E, %f, %d) : memref<?x?x?xbf16>
  %Wd = gpu.alloc (%E, %d, %f) : memref<?x?x?xbf16>
  call @fill3(%Wg) : (memref<?x?x?xbf16>) -> ()
  call @fill3(%Wu) : (memref<?x?x?xbf16>) -> ()
  call @fill3(%Wd) : (memref<?x?x?xbf16>) -> ()
  %Ts = arith.constant dense<[1, 16, 256, 4096]> : vector<4xindex>
  scf.for %ti = %c0 to %c4 step %c1 {
    %T = vector.extract %Ts[%ti] : index from vector<4xindex>
    %N = arith.muli %T, %k : index
    // Uniform routing: off[e] = floor(e * N / E).
    %off_h = memref.alloc(%E1) : memref<?xi32>
    scf.for %e = %c0 to %E1 step %c1 {
      %en = arith.muli %e, %N : index
      %o = arith.divui %en, %E : index
      %oi = arith.index_cast %o : index to i32
      memref.store %oi, %off_h[%e] : memref<?xi32>
    }
    %active = arith.minui %N, %E : index
    %X = gpu.alloc (%N, %d) : memref<?x?xbf16>
    func.call @fill2(%X) : (memref<?x?xbf16>) -> ()
    %off = gpu.alloc (%E1) : memref<?xi32>
    gpu.memcpy %off, %off_h : memref<?xi32>, memref<?xi32>
    %np = arith.addi %N, %c63 : index
    %ntn = arith.divui %np, %c64 : index
    %maxtiles = arith.addi %ntn, %E : index
    %te = gpu.alloc (%maxtiles) : memref<?xi32>
    %tm = gpu.alloc (%maxtiles) : memref<?xi32>
    %nt = gpu.alloc () : memref<1xi32>
    %H = gpu.alloc (%N, %f) : memref<?x?xbf16>
    %Y = gpu.alloc (%N, %d) : memref<?x?xf32>
    scf.for %w = %c0 to %c3 step %c1 {
      func.call @moe_expert_ffn_device(%X, %Wg, %Wu, %Wd, %off, %te, %tm,
                                       %nt, %H, %Y)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
             memref<?x?x?xbf16>, memref<?xi32>, memref<?xi32>,
             memref<?xi32>, memref<1xi32>, memref<?x?xbf16>,
             memref<?x?xf32>) -> ()
    }
    %t0 = func.call @rtclock() : () -> f64
    scf.for %r = %c0 to %reps step %c1 {
      func.call @moe_expert_ffn_device(%X, %Wg, %Wu, %Wd, %off, %te, %tm,
                                       %nt, %H, %Y)
          : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
             memref<?x?x?xbf16>, memref<?xi32>, memref<?xi32>,
             memref<?xi32>, memref<1xi32>, memref<?x?xbf16>,
             memref<?x?xf32>) -> ()
    }
    %t1 = func.call @rtclock() : () -> f64
    %dt = arith.subf %t1, %t0 : f64
    %per = arith.divf %dt, %repsf : f64
    %net0 = arith.subf %per, %ovh : f64
    // Never below a tenth of the raw time (noise in the overhead).
    %floor = arith.constant 0.1 : f64
    %minnet = arith.mulf %per, %floor : f64
    %net = arith.maximumf %net0, %minnet : f64
    %Ni = arith.index_cast %N : index to i64
    %Nf = arith.sitofp %Ni : i64 to f64
    %fdi = arith.index_cast %fd : index to i64
    %fdf = arith.sitofp %fdi : i64 to f64
    %flop0 = arith.mulf %Nf, %fdf : f64
    %flop = arith.mulf %flop0, %six : f64
    %tflops0 = arith.divf %flop, %net : f64
    %tflops = arith.divf %tflops0, %tera : f64
    %ai = arith.index_cast %active : index to i64
    %af = arith.sitofp %ai : i64 to f64
    %wb0 = arith.mulf %af, %fdf : f64
    %wb = arith.mulf %wb0, %six : f64
    %gbs0 = arith.divf %wb, %net : f64
    %gbs = arith.divf %gbs0, %giga : f64
    %Ti = arith.index_cast %T : index to i64
    %Tf = arith.sitofp %Ti : i64 to f64
    %us = arith.mulf %per, %mega : f64
    %netus = arith.mulf %net, %mega : f64
    %line = vector.from_elements %Tf, %Nf, %us, %netus, %tflops, %gbs
        : vector<6xf64>
    vector.print %line : vector<6xf64>
    gpu.dealloc %X : memref<?x?xbf16>
    gpu.dealloc %off : memref<?xi32>
    gpu.dealloc %te : memref<?xi32>
    gpu.dealloc %tm : memref<?xi32>
    gpu.dealloc %nt : memref<1xi32>
    gpu.dealloc %H : memref<?x?xbf16>
    gpu.dealloc %Y : memref<?x?xf32>
    memref.dealloc %off_h : memref<?xi32>
  }
  gpu.dealloc %Wg : memref<?x?x?xbf16>
  gpu.dealloc %Wu : memref<?x?x?xbf16>
  gpu.dealloc %Wd : memref<?x?x?xbf16>
  return
}

func.func @main() {
  %ovh = call @overhead() : () -> f64
  %mega = arith.constant 1.0e6 : f64
  %ovh_us = arith.mulf %ovh, %mega : f64
  vector.print str "launch + synchronize overhead (us/call)\n"
  vector.print %ovh_us : f64
  vector.print str "columns: ( T, rows, us/call, net us/call, TFLOP/s, weight GB/s )\n"
  vector.print str "mixtral-like experts: d 4096, f 14336, E 8, k 2\n"
  %c2 = arith.constant 2 : index
  %c8 = arith.constant 8 : index
  %c128 = arith.constant 128 : index
  %c768 = arith.constant 768 : index
  %c2048 = arith.constant 2048 : index
  %c4096 = arith.constant 4096 : index
  %c14336 = arith.constant 14336 : index
  call @bench_shape(%c4096, %c14336, %c8, %c2, %ovh)
      : (index, index, index, index, f64) -> ()
  vector.print str "qwen3-like experts: d 2048, f 768, E 128, k 8\n"
  call @bench_shape(%c2048, %c768, %c128, %c8, %ovh)
      : (index, index, index, index, f64) -> ()
  return
}

}
