#!/usr/bin/env bash
# The main job on the bundled example: a Mixtral-style layer, verified,
# round-tripped and decomposed into primitive moe ops with moe-opt.
set -euo pipefail
cd "$(dirname "$0")/.."
example=examples/mixtral_layer.mlir
opt=build/bin/moe-opt

echo "== $example: parse, verify and print =="
"$opt" "$example"
echo
echo "== moe-decompose =="
"$opt" "$example" --moe-decompose
