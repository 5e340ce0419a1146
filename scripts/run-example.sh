#!/usr/bin/env bash
# The main job on the bundled example: a Mixtral-style layer (d 256, f 704,
# E 8, k 2) compiled for this CPU and run on 64 generated tokens. Prints the
# layer output's summary, the expert load, and the time per call.
set -euo pipefail
cd "$(dirname "$0")/.."
example=examples/mixtral_layer.mlir

echo "== $example: compile with moe-cpu-pipeline and run on 64 tokens =="
echo "   out0 = layer output [T, d], out1 = assignments per expert, out2 = dropped"
build/bin/moe-run "$example" --entry mixtral_layer \
  --random-inputs --seed 1 --dynamic-size 64 --repeat 10
