#!/usr/bin/env bash
# Builds everything the GPU checks and benchmark need into one directory
# that a GPU machine without LLVM or MLIR can run (bench/gpu/run.sh):
#
#   bench/gpu/bundle.sh [BUNDLE_DIR]      (default: gpu-bundle)
#
#   lib/   libmoe_cuda_runtime.so, libmoe_gpu_kernels.so (cubin for
#          MOE_GPU_KERNELS_CHIP, sm_90 by default)
#   bin/   moe-cuda-info, moe-gpu-check, moe-gpu-bench, moe-reference, and
#          moe-run.xz: moe-run linked against the static LLVM and MLIR
#          libraries (a configuration of its own in STATIC_BUILD_DIR,
#          default BUILD_DIR-static, with -DMOE_STATIC_LLVM=ON), stripped
#          and compressed, since the GPU machine has no LLVM and the
#          shared libMLIR and libLLVM are too large to carry there
#   aot/   moe-compile --target cuda libraries of imported checkpoints (bf16,
#          and an f32 one computed in bf16 on its f32 rows; libmodel.so.xz,
#          which run.sh unpacks),
#          a C driver for each (test/AOT/run_layer_npy.c) and moe-reference's
#          cases with their f64 results, and examples/cuda/layer_graph.c
#          built against the `wide` one (static cudart): its layer on device
#          buffers in a CUDA graph
#   graph/ the same example against a threshold-routed layer and a layer
#          with a capacity (test/AOT/Inputs/{threshold,capacity}_device.mlir),
#          whose tau and capacity factor it turns after the capture
#
# Needs a configured build (BUILD_DIR, default build) with a CUDA toolkit
# (MOE_CUDA_ROOT). CHIP (default sm_90) is the AOT libraries' GPU.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
static_build=${STATIC_BUILD_DIR:-$build-static}
out=${1:-gpu-bundle}
chip=${CHIP:-sm_90}
die() { printf 'bundle.sh: error: %s\n' "$*" >&2; exit 1; }

[ -f "$build/build.ninja" ] || die "no configured build in $build (scripts/build.sh)"
ninja -C "$build" moe_cuda_runtime moe-cuda-info moe-reference moe-compile \
  moe-import moe-gen-checkpoint > /dev/null || die "the build failed"
ninja -C "$build" moe_gpu_kernels moe-gpu-check moe-gpu-bench > /dev/null ||
  die "libmoe_gpu_kernels was not built: is there a CUDA toolkit at MOE_CUDA_ROOT?"

# moe-run for `--pipeline cuda` on the GPU machine, with the build's
# compiler and launcher.
if [ ! -f "$static_build/build.ninja" ]; then
  cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
  cmake -G Ninja -S . -B "$static_build" -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR="$(cache MLIR_DIR)" \
    -DCMAKE_CXX_COMPILER="$(cache CMAKE_CXX_COMPILER)" \
    -DCMAKE_C_COMPILER="$(cache CMAKE_C_COMPILER)" \
    -DCMAKE_CXX_COMPILER_LAUNCHER="$(cache CMAKE_CXX_COMPILER_LAUNCHER)" \
    -DCMAKE_C_COMPILER_LAUNCHER="$(cache CMAKE_C_COMPILER_LAUNCHER)" \
    -DMOE_LINK_MLIR_DYLIB=OFF -DMOE_STATIC_LLVM=ON > /dev/null ||
    die "configuring the static moe-run in $static_build failed"
fi
ninja -C "$static_build" moe-run > /dev/null ||
  die "the static moe-run did not build (in $static_build)"

rm -rf "$out"
mkdir -p "$out/lib" "$out/bin" "$out/aot"
cp "$build/lib/libmoe_cuda_runtime.so" "$build/lib/libmoe_gpu_kernels.so" "$out/lib/"
for tool in moe-cuda-info moe-gpu-check moe-gpu-bench moe-reference; do
  cp "$build/bin/$tool" "$out/bin/"
done
strip -o "$out/bin/moe-run" "$static_build/bin/moe-run"
xz -T0 -6 "$out/bin/moe-run"

# Ahead-of-time libraries, each checked against moe-reference's f64 model
# on the GPU machine: NAME FAMILY GENERATOR-OPTIONS LAYER TOKENS
# [COMPILE-OPTIONS]. The checkpoint has dtype $stored (bf16 by default) and
# is imported in bf16; with narrow=1 it is imported in its own dtype and
# compiled with --narrow-to-bf16 (its rows keep that dtype: the bf16 cases
# are widened exactly to it, and `tol` holds the bf16 tolerance that
# run.sh compares them with).
aot() {
  local name=$1 family=$2 options=$3 layer=$4 tokens=$5 dir="$out/aot/$1"
  local import=(--dtype bf16) compile=()
  if [ "${narrow:-0}" = 1 ]; then
    import=()
    compile=(--narrow-to-bf16)
  fi
  mkdir -p "$dir"
  "$build/bin/moe-gen-checkpoint" --family "$family" --dtype "${stored:-bf16}" \
    $options --out "$dir/ckpt" > /dev/null
  "$build/bin/moe-import" --model "$dir/ckpt" "${import[@]}" -o "$dir/model.mlir"
  "$build/bin/moe-compile" "$dir/model.mlir" --target cuda --cuda-chip "$chip" \
    --cuda-format bin "${compile[@]}" ${6:-} -o "$dir/libmodel.so" \
    --header "$dir/model.h"
  cc -O2 -Wall -Wextra -Werror test/AOT/run_layer_npy.c -I"$dir" -L"$dir" \
    -lmodel -lpthread -ldl -Wl,-rpath,'$ORIGIN' -o "$dir/run"
  local cases="$dir/cases"
  if [ "${narrow:-0}" = 1 ]; then
    cases="$dir/bf16-cases"
  fi
  "$build/bin/moe-reference" emit-model --model "$dir/ckpt" --layer "$layer" \
    --seed 5 --tokens "$tokens" --dir "$cases" --dtype bf16 > /dev/null
  if [ "${narrow:-0}" = 1 ]; then
    python3 scripts/widen-case.py "$cases" "$dir/cases" --dtype "$stored"
    rm -r "$cases"
    echo 1e-2 > "$dir/tol"
  fi
  echo "moe_layer_$layer" > "$dir/layer"
}
aot small mixtral "--hidden 32 --inner 48 --seed 3" 1 "0,1,9,40,130"
aot wide mixtral "--hidden 256 --inner 128 --experts 16 --top-k 4 --layers 1 --seed 4" 0 "1,64,100"
# Shared experts: Qwen2-MoE's gated one; DeepSeek-V3's with its routing,
# counting co-activated pairs (on the device in graph mode, checked pair by
# pair against the host entry point's).
aot qwen2 qwen2_moe "--hidden 64 --inner 32 --layers 1 --seed 6" 0 "1,17,64"
aot deepseek deepseek_v3 "--hidden 64 --inner 32 --layers 1 --first-dense 0 --experts 16 --top-k 4 --seed 7" 0 "1,17,64" --stats-coactivation
# A fused gate_up operand.
aot granite granitemoe "--hidden 64 --inner 32 --layers 1 --seed 8" 0 "1,17,64"
# Qwen3-Next's 512 experts and top-10; an f32 GLM-4.5 checkpoint computed
# in bf16 (--narrow-to-bf16), its weights rounded to bf16 when the library
# loads, its f32 rows rounded and widened on the device by the device
# entry point.
aot qwen3next qwen3_next "--hidden 32 --inner 16 --shared-inner 16 --experts 512 --top-k 10 --layers 1 --seed 10" 0 "1,17,64"
stored=f32 narrow=1 aot glm glm4_moe "--hidden 64 --inner 32 --layers 2 --experts 16 --top-k 4 --scaling-factor 2.5 --seed 9" 1 "1,17,64"
# GPT-OSS as released: experts in MXFP4 (dequantized when the library
# loads), gate and up interleaved, expert biases and swiglu_oai, its bf16
# router bias read in f32.
aot gptoss gpt_oss "--hidden 64 --inner 32 --experts 16 --top-k 4 --layers 1 --seed 11 --mxfp4" 0 "1,17,64"
# An f16 MiniMax-M2 checkpoint (sigmoid scores, the correction bias with a
# plain top-k, 32 experts and top-8) imported in bf16; Llama-4 as its FP8
# release stores it (top-1, the weight applied to the expert input, its
# fused experts stored [in, out] in FP8 with a scale an output channel,
# dequantized and transposed when the library loads, the shared expert).
stored=f16 aot minimax minimax_m2 "--hidden 64 --inner 32 --layers 1 --experts 32 --top-k 8 --seed 11" 0 "1,17,64"
aot llama4 llama4 "--hidden 64 --inner 32 --layers 2 --experts 16 --interleave-step 2 --seed 12 --fp8-fbgemm" 1 "1,17,64"
# examples/cuda/layer_graph.c against `wide`, against a threshold-routed
# layer whose tau the example turns after the capture, and against a layer
# with a capacity whose factor it turns after the capture.
cuda=${MOE_CUDA_ROOT:-/usr/local/cuda}
graph_example() {
  cc -O2 -Wall -Wextra -Werror examples/cuda/layer_graph.c -I"$1" \
    -I"$cuda/include" -L"$1" -lmodel -Wl,-rpath,'$ORIGIN' \
    -L"$cuda/lib64" -lcudart_static -ldl -lpthread -lrt -o "$1/layer_graph"
}
graph_example "$out/aot/wide"
mkdir -p "$out/graph/threshold"
"$build/bin/moe-gen-checkpoint" --family mixtral --dtype bf16 --hidden 32 \
  --inner 48 --experts 4 --top-k 2 --layers 1 --seed 11 \
  --out "$out/graph/threshold/ckpt" > /dev/null
for input in threshold capacity; do
  mkdir -p "$out/graph/$input"
  "$build/bin/moe-compile" "test/AOT/Inputs/${input}_device.mlir" \
    --target cuda --cuda-chip "$chip" --cuda-format bin \
    -o "$out/graph/$input/libmodel.so" --header "$out/graph/$input/model.h"
  graph_example "$out/graph/$input"
done
# The libraries' symbol tables are a sixth of them, and the bundle's size
# is bounded (below); the dynamic symbols stay. The compiled models'
# libraries (mostly the kernels' cubins) are carried compressed, a fifth of
# their size; run.sh unpacks them.
find "$out" -name '*.so' -exec strip --strip-unneeded {} +
find "$out/aot" "$out/graph" -name libmodel.so -exec xz -T0 -6 {} +

{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "aot chip: $chip"
} > "$out/BUILD"
du -sh "$out" | sed 's/\t.*//; s/^/bundle size: /'
# A device run carries at most 64 MiB, the source tree (some 3 MiB) included.
bytes=$(du -sb "$out" | cut -f1)
[ "$bytes" -le $((58 * 1024 * 1024)) ] ||
  die "the bundle has $bytes bytes, more than the 58 MiB a device run can carry beside the tree"
echo "bundle in $out"
