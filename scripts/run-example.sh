#!/usr/bin/env bash
# The main job on the bundled example: a small Mixtral-style checkpoint
# (d 256, f 704, E 8, k 2, 2 layers, generated from a fixed seed) is
# imported, compiled ahead of time into a shared library, and run from the
# C example, which prints each layer's output summary, time and expert load.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin
work=build/example
mkdir -p "$work"

echo "== 1. a Mixtral-style checkpoint (config.json + safetensors) =="
"$bin/moe-gen-checkpoint" --family mixtral --out "$work/checkpoint" --seed 1 \
  --hidden 256 --inner 704 --experts 8 --top-k 2 --layers 2
ls -l "$work/checkpoint"

echo "== 2. import: one moe_layer_L function per sparse layer =="
"$bin/moe-import" --model "$work/checkpoint" -o "$work/model.mlir"
grep -E "func.func|moe.layer" "$work/model.mlir" | sed 's/^ */   /' | cut -c1-110
echo "   what each layer costs, sparse against dense (moe-report):"
"$bin/moe-opt" "$work/model.mlir" --moe-report=tokens=1,64 -o /dev/null 2>&1 |
  sed 's/^/   /'

echo "== 3. compile ahead of time: libmodel.so and model.h =="
"$bin/moe-compile" "$work/model.mlir" -o "$work/libmodel.so" --header "$work/model.h"
ls -l "$work/libmodel.so" "$work/model.h"

echo "== 4. run it from C (examples/c/run_model.c), 64 tokens =="
${CC:-cc} -O2 examples/c/run_model.c -I"$work" -L"$work" -lmodel \
  -Wl,-rpath,"$PWD/$work" -lm -o "$work/run_model"
"$work/run_model" "$work/checkpoint" 64 10
