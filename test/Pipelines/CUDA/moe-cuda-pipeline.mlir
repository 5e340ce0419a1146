// moe-cuda-pipeline on a Mixtral-style bf16 layer: host code in the LLVM
// dialect that calls the kernel library, and one gpu.binary per library
// file, with the expert GEMMs on tensor cores.
// REQUIRES: ptxas
// RUN: rm -rf %t && mkdir -p %t
// RUN: moe-opt %s --moe-cuda-pipeline="format=isa chip=sm_80" -o %t/isa.mlir
// RUN: FileCheck %s --check-prefix=ISA < %t/isa.mlir
// RUN: FileCheck %s --check-prefix=PTX < %t/isa.mlir
// RUN: mlir-translate --mlir-to-llvmir %t/isa.mlir | FileCheck %s --check-prefix=HOST
// The default: a cubin for sm_90.
// RUN: moe-opt %s --moe-cuda-pipeline | FileCheck %s --check-prefix=BIN

// Only LLVM ops, gpu.binary and gpu.launch_func (translated with the
// binaries) are left.
// ISA-NOT:   {{^ *(func|memref|scf|arith|bufferization|moe|gpu\.(alloc|memcpy|dealloc|module))[.a-z_]* }}
// ISA:       llvm.func @layer(
// ISA-NOT:   llvm.call @moe_
// ISA-NOT:   llvm.func
// ISA:       gpu.launch_func {{.*}} @moe_router_kernels::@router_topk blocks
// PTX-DAG:   gpu.binary @moe_router_kernels [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, {{.*}}assembly = "{{.*}}.target sm_80
// PTX-DAG:   gpu.binary @moe_experts [#gpu.object<#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">, {{.*}}assembly = "{{.*}}mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// ISA-NOT:   {{^ *(func|memref|scf|arith|bufferization|moe)\.}}

// The library's @moe_layer, @moe_layer_resident and @moe_layer_async are
// inlined into the layer. The weights are function arguments: they go to
// the device for the call, on a stream synchronized before the layer's.
// Then the layer's GPU operations on one stream, synchronized once
// after the last of them, and no call of a library host function; then
// the statistics.
// HOST-LABEL: define {{.*}} @layer(
// HOST-NOT:   call {{.*}} @moe_
// HOST:       [[W:%[0-9]+]] = call ptr @mgpuStreamCreate()
// HOST-NOT:   @mgpuLaunchKernel
// HOST:       call void @mgpuStreamSynchronize(ptr [[W]])
// HOST-NEXT:  call void @mgpuStreamDestroy(ptr [[W]])
// HOST:       [[S:%[0-9]+]] = call ptr @mgpuStreamCreate()
// HOST-NOT:   @mgpuStream
// HOST:       call ptr @mgpuModuleGetFunction({{.*}}@moe_router_kernels_router_topk_name)
// HOST-NOT:   @mgpuStream
// HOST:       call ptr @mgpuModuleGetFunction({{.*}}@moe_experts_gate_up_swiglu_mma_name)
// HOST:       call void @mgpuLaunchKernel({{.*}}, ptr [[S]],
// HOST-NOT:   @mgpuStream
// HOST:       call ptr @mgpuModuleGetFunction({{.*}}@moe_experts_grouped_gemm_mma_name)
// HOST:       call void @mgpuLaunchKernel({{.*}}, ptr [[S]],
// HOST-NOT:   @mgpuStream
// HOST:       call ptr @mgpuModuleGetFunction({{.*}}@moe_combine_kernels_combine_name)
// HOST:       call void @mgpuLaunchKernel({{.*}}, ptr [[S]],
// HOST-NOT:   @mgpuStream
// HOST:       call void @mgpuStreamSynchronize(ptr [[S]])
// HOST-NEXT:  call void @mgpuStreamDestroy(ptr [[S]])
// HOST-NEXT:  [[F:%[0-9]+]] = call ptr @mgpuStreamCreate()
// The weights freed (the four of the absent shared expert and the three
// of the absent expert biases are empty).
// HOST-COUNT-11: call void @mgpuMemFree(ptr {{%[0-9]+}}, ptr [[F]])
// HOST-NEXT:  call void @mgpuStreamSynchronize(ptr [[F]])
// HOST-NOT:   call {{.*}} @moe_{{router|dispatch|expert|combine|layer}}
// HOST:       call void @moe_rt_record_stats(
// HOST:       call void @free(
// No host function of the library is left.
// HOST-NOT:   define {{.*}} @moe_{{(layer|router|dispatch|expert_ffn|grouped_gemm|combine)(_async|_ref)?}}(
// HOST:       call ptr @mgpuModuleLoadJIT(ptr @moe_experts_binary, i32 3)

// BIN: gpu.binary @moe_experts [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, {{.*}}bin = "\7FELF

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
