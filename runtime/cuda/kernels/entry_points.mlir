//===- entry_points.mlir - C entry points of libmoe_gpu_kernels -*- MLIR -*-===//
//
// Part of the moe-mlir project, under the Apache License v2.0 with LLVM
// Exceptions. See https://llvm.org/LICENSE.txt for license information.
// SPDX-License-Identifier: Apache-2.0 WITH LLVM-exception
//
//===----------------------------------------------------------------------===//
//
// The functions of the CUDA kernel library (lib/GPU/Kernels) that
// libmoe_gpu_kernels exports, with the C interface of MLIR (memrefs passed
// as pointers to descriptors). moe-link-gpu-kernels supplies the callees.
//
//   moe_gpu_layer_async, moe_gpu_lora_layer_async, moe_gpu_expert_ffn_async
//     Device buffers, enqueued on the caller's stream (a CUstream; the
//     token type lowers to it), no synchronization. GPUKernels.cpp wraps
//     them in the C API of moe_gpu_kernels.h.
//   moe_gpu_layer
//     The same layer on host buffers, on a stream of its own, synchronized
//     once (what compiled models call).
//
//===----------------------------------------------------------------------===//

module {
  func.func private @moe_layer_async(memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?xf32>, memref<?xf32>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, index, i32, i32, i32, f32, f32,
      index, index, i32,
      index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>,
      !gpu.async.token) -> !gpu.async.token
  func.func private @moe_expert_ffn_async(memref<?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?xi32>, memref<?x?xf32>, i32, !gpu.async.token)
      -> !gpu.async.token

  func.func @moe_gpu_layer_async(%x: memref<?x?xbf16>, %wr: memref<?x?xbf16>,
      %rb: memref<?xf32>, %sb: memref<?xf32>, %wg: memref<?x?x?xbf16>,
      %wu: memref<?x?x?xbf16>, %wd: memref<?x?x?xbf16>,
      %bg: memref<?x?xbf16>, %bu: memref<?x?xbf16>, %bd: memref<?x?xbf16>,
      %sg: memref<?x?x?xbf16>, %su: memref<?x?x?xbf16>,
      %sd: memref<?x?x?xbf16>, %sw: memref<?x?xbf16>, %k: index,
      %score: i32, %sel: i32, %flags: i32, %scale: f32, %param: f32,
      %g: index, %topkg: index, %gscore: i32, %cap: index,
      %off: memref<?xi32>, %dropped: memref<?xi32>, %y: memref<?x?xf32>,
      %stream: !gpu.async.token) -> !gpu.async.token
      attributes {llvm.emit_c_interface} {
    // No copy of the selection (ids_out): no co-activation counts here.
    // The expert biases (GPT-OSS's; [0, 0] without) as the C API passes
    // them.
    %ni = memref.alloca() : memref<0x0xi32>
    %no_ids = memref.cast %ni : memref<0x0xi32> to memref<?x?xi32>
    %r = call @moe_layer_async(%x, %wr, %rb, %sb, %wg, %wu, %wd, %bg, %bu,
        %bd, %sg, %su,
        %sd, %sw, %k, %score, %sel, %flags, %scale, %param, %g, %topkg,
        %gscore, %cap, %off, %dropped, %no_ids, %y, %stream)
        : (memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?xf32>, memref<?xf32>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, index, i32, i32, i32, f32, f32,
      index, index, i32,
      index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>,
      !gpu.async.token) -> !gpu.async.token
    return %r : !gpu.async.token
  }

  func.func private @moe_lora_layer_async(memref<?x?xbf16>,
      memref<?x?xbf16>, memref<?xf32>, memref<?xf32>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?xbf16>, index, i32,
      i32, i32, f32, f32, index, index, i32, f32, index, memref<?xi32>,
      memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>, !gpu.async.token)
      -> !gpu.async.token

  func.func @moe_gpu_lora_layer_async(%x: memref<?x?xbf16>,
      %wr: memref<?x?xbf16>, %rb: memref<?xf32>, %sb: memref<?xf32>,
      %pg: memref<?x?x?xbf16>, %pu: memref<?x?x?xbf16>,
      %pd: memref<?x?x?xbf16>, %ag: memref<?x?x?xbf16>,
      %bg: memref<?x?x?xbf16>, %au: memref<?x?x?xbf16>,
      %bu: memref<?x?x?xbf16>, %ad: memref<?x?x?xbf16>,
      %bd: memref<?x?x?xbf16>, %sg: memref<?x?x?xbf16>,
      %su: memref<?x?x?xbf16>, %sd: memref<?x?x?xbf16>,
      %sw: memref<?x?xbf16>, %k: index, %score: i32, %sel: i32, %flags: i32,
      %scale: f32, %param: f32, %g: index, %topkg: index, %gscore: i32,
      %s: f32, %cap: index, %off: memref<?xi32>, %dropped: memref<?xi32>,
      %y: memref<?x?xf32>, %stream: !gpu.async.token) -> !gpu.async.token
      attributes {llvm.emit_c_interface} {
    // No copy of the selection (ids_out): no co-activation counts here.
    %ni = memref.alloca() : memref<0x0xi32>
    %no_ids = memref.cast %ni : memref<0x0xi32> to memref<?x?xi32>
    %r = call @moe_lora_layer_async(%x, %wr, %rb, %sb, %pg, %pu, %pd, %ag,
        %bg, %au, %bu, %ad, %bd, %sg, %su, %sd, %sw, %k, %score, %sel,
        %flags, %scale, %param, %g, %topkg, %gscore, %s, %cap, %off,
        %dropped, %no_ids, %y, %stream)
        : (memref<?x?xbf16>, memref<?x?xbf16>, memref<?xf32>, memref<?xf32>,
           memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           memref<?x?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           memref<?x?xbf16>, index, i32, i32, i32, f32, f32, index, index,
           i32, f32, index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>,
           memref<?x?xf32>, !gpu.async.token) -> !gpu.async.token
    return %r : !gpu.async.token
  }

  func.func @moe_gpu_expert_ffn_async(%x: memref<?x?xbf16>,
      %wg: memref<?x?x?xbf16>, %wu: memref<?x?x?xbf16>,
      %wd: memref<?x?x?xbf16>, %off: memref<?xi32>, %y: memref<?x?xf32>,
      %act: i32, %stream: !gpu.async.token) -> !gpu.async.token
      attributes {llvm.emit_c_interface} {
    %r = call @moe_expert_ffn_async(%x, %wg, %wu, %wd, %off, %y, %act,
        %stream)
        : (memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
           memref<?x?x?xbf16>, memref<?xi32>, memref<?x?xf32>, i32,
           !gpu.async.token) -> !gpu.async.token
    return %r : !gpu.async.token
  }

  // The host-buffer layer.
  func.func private @moe_layer(memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?xf32>, memref<?xf32>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, index, i32, i32, i32, f32, f32,
      index, index, i32,
      index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>)
  func.func @moe_gpu_layer(%x: memref<?x?xbf16>, %wr: memref<?x?xbf16>,
      %rb: memref<?xf32>, %sb: memref<?xf32>, %wg: memref<?x?x?xbf16>,
      %wu: memref<?x?x?xbf16>, %wd: memref<?x?x?xbf16>,
      %sg: memref<?x?x?xbf16>, %su: memref<?x?x?xbf16>,
      %sd: memref<?x?x?xbf16>, %sw: memref<?x?xbf16>, %k: index,
      %score: i32, %sel: i32, %flags: i32, %scale: f32, %param: f32,
      %g: index, %topkg: index, %gscore: i32, %cap: index,
      %off: memref<?xi32>, %dropped: memref<?xi32>, %y: memref<?x?xf32>)
      attributes {llvm.emit_c_interface} {
    // No copy of the selection (ids_out): no co-activation counts here; no
    // expert biases.
    %ni = memref.alloca() : memref<0x0xi32>
    %no_ids = memref.cast %ni : memref<0x0xi32> to memref<?x?xi32>
    %nb = memref.alloca() : memref<0x0xbf16>
    %no_bias = memref.cast %nb : memref<0x0xbf16> to memref<?x?xbf16>
    call @moe_layer(%x, %wr, %rb, %sb, %wg, %wu, %wd, %no_bias, %no_bias,
        %no_bias, %sg, %su, %sd, %sw, %k,
        %score, %sel, %flags, %scale, %param, %g, %topkg, %gscore, %cap, %off,
        %dropped, %no_ids, %y)
        : (memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?xf32>, memref<?xf32>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, memref<?x?xbf16>,
      memref<?x?xbf16>, memref<?x?x?xbf16>, memref<?x?x?xbf16>,
      memref<?x?x?xbf16>, memref<?x?xbf16>, index, i32, i32, i32, f32, f32,
      index, index, i32,
      index, memref<?xi32>, memref<?xi32>, memref<?x?xi32>, memref<?x?xf32>)
      -> ()
    return
  }
}
