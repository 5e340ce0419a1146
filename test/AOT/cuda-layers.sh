#!/usr/bin/env bash
# moe-compile --target TARGET (cuda: on the GPU; cuda-emu: the kernels on the
# host's SIMT emulator): libraries built from imported bf16 checkpoints
# (Mixtral-style, Qwen2-MoE, Qwen3-Next and DeepSeek-V3 with their shared
# experts, GraniteMoE with its fused gate_up, Llama-4 with its transposed
# fused experts), an f32 GLM-4.5 one and an f16 MiniMax-M2 one imported in
# bf16 run their layers through the C API
# (run_layer_npy.c) and match moe-reference's f64 results of the same
# checkpoint within bf16 tolerance.
# Prints one `compare:` line per checkpoint; stops at the first failure.
#
#   cuda-layers.sh TARGET DIR BINDIR CC
set -euo pipefail
target=$1
dir=$2
export PATH="$3:$PATH"
cc=$4
src=$(cd "$(dirname "$0")" && pwd)
rm -rf "$dir" && mkdir -p "$dir"
# The GPU's device code is PTX for sm_80, which every supported GPU runs.
flags=()
if [ "$target" = cuda ]; then
  flags=(--cuda-chip sm_80 --cuda-format isa)
fi

# layer NAME FAMILY LAYER SEED TOKENS COMPILE-ARGS GEN-ARGS...: a
# checkpoint (of dtype $stored, bf16 by default), imported in bf16, its
# library (moe-compile COMPILE-ARGS), and the cases of one layer.
layer() {
  local name=$1 family=$2 layer=$3 seed=$4 tokens=$5 compile=$6
  shift 6
  moe-gen-checkpoint --family "$family" --dtype "${stored:-bf16}" "$@" --out "$dir/$name/ckpt" >/dev/null
  moe-import --model "$dir/$name/ckpt" --dtype bf16 -o "$dir/$name/model.mlir"
  mkdir -p "$dir/$name/lib"
  moe-compile "$dir/$name/model.mlir" --target "$target" "${flags[@]}" $compile \
    -o "$dir/$name/lib/libmodel.so" --header "$dir/$name/lib/model.h"
  $cc -O2 -Wall -Wextra -Werror "$src/run_layer_npy.c" -I"$dir/$name/lib" \
    -L"$dir/$name/lib" -lmodel -lpthread -ldl -Wl,-rpath,"$dir/$name/lib" \
    -o "$dir/$name/run"
  moe-reference emit-model --model "$dir/$name/ckpt" --layer "$layer" \
    --seed "$seed" --tokens "$tokens" --dir "$dir/$name/cases" --dtype bf16 >/dev/null
  # Each case's layer also runs from 4 threads at once, bitwise equal, on
  # device buffers (moe_model_run_layer_async), bitwise equal with the
  # same statistics (co-activations too where counted), and captured in a
  # CUDA graph and replayed, the same.
  for set in "$dir/$name/cases"/set*; do
    "$dir/$name/run" "moe_layer_$layer" "$dir/$name/ckpt" "$set/arg0.npy" \
      "$set/out0.npy" 4 graph >/dev/null
  done
  moe-reference compare --dir "$dir/$name/cases" | tail -n 1
}

layer small mixtral 1 5 0,1,9,40,130 "" --hidden 32 --inner 48 --seed 3
# Wider: d = 256, f = 128, 16 experts, k = 4, layer 0.
layer wide mixtral 0 6 1,64,100 "" --hidden 256 --inner 128 --experts 16 --top-k 4 --layers 1 --seed 4
# Shared experts: Qwen2-MoE's gated one; DeepSeek-V3's with its routing,
# counting co-activated pairs.
layer qwen2 qwen2_moe 0 7 1,17,64 "" --hidden 64 --inner 32 --layers 1 --seed 6
layer deepseek deepseek_v3 0 8 1,17,64 --stats-coactivation --hidden 64 --inner 32 --layers 1 --first-dense 0 --experts 16 --top-k 4 --seed 7
# A fused gate_up operand.
layer granite granitemoe 0 9 1,17,64 "" --hidden 64 --inner 32 --layers 1 --seed 8
# Qwen3-Next's 512 experts and top-10 (its gated shared expert).
layer qwen3-next qwen3_next 0 11 1,17 "" --hidden 64 --inner 32 --shared-inner 32 --experts 512 --top-k 10 --layers 1 --seed 10
# An f32 GLM-4.5 checkpoint (DeepSeek-V3's block, the first layer dense):
# the runtime rounds its weights to bf16 when it loads the library, and
# the GPU gets the rounded copies.
stored=f32 layer glm glm4_moe 1 10 1,17 "" --hidden 64 --inner 32 --layers 2 --experts 16 --top-k 4 --scaling-factor 2.5 --seed 9
# An f16 MiniMax-M2 checkpoint: sigmoid scores, the correction bias with a
# plain top-k, 32 experts and top-8.
stored=f16 layer minimax minimax_m2 0 12 1,17 "" --hidden 64 --inner 32 --layers 1 --experts 32 --top-k 8 --seed 11
# Llama-4 (the multimodal checkpoint): top-1, the weight applied to the
# expert input, the fused experts transposed when the library loads, the
# shared expert; every second layer sparse.
layer llama4 llama4 1 13 1,17,64 "" --hidden 64 --inner 32 --layers 2 --experts 16 --interleave-step 2 --seed 12
