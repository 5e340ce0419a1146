#!/usr/bin/env bash
# moe-run --narrow-to-bf16 on f32 and f16 layers: bf16 cases of
# moe-reference converted to f32 and f16 (scripts/widen-case.py) and run
# narrowed meet the bf16 reference within its tolerance. In f32 they also
# give bitwise the outputs of the bf16 case itself run by the same
# pipeline: narrowing rounds the inputs back to its very values, and
# nothing else differs. (f16 holds every value of a case but the tiniest
# weights, which it rounds.) Prints one line per case and type; exits
# non-zero at the first failure.
#
#   narrow-cases.sh PIPELINE DIR BINDIR SRCROOT [MOE-RUN-ARGS...]
set -euo pipefail
pipeline=$1
dir=$2
export PATH="$3:$PATH"
widen="$4/scripts/widen-case.py"
shift 4
extra=("$@")
rm -rf "$dir" && mkdir -p "$dir"

run() {
  local case=$1
  moe-run "$case/case.mlir" --entry case --pipeline "$pipeline" --quiet \
    "${extra[@]}" "${@:2}" $(cat "$case/moe-run.args") >/dev/null
}

# check NAME SEED TOKENS SPEC...
check() {
  local name=$1 seed=$2 tokens=$3
  shift 3
  moe-reference emit --case "op=layer dtype=bf16 $*" --seed "$seed" \
    --tokens "$tokens" --dir "$dir/$name" >/dev/null
  run "$dir/$name"
  for type in f32 f16; do
    python3 "$widen" "$dir/$name" "$dir/$name-$type" --dtype "$type"
    run "$dir/$name-$type" --narrow-to-bf16
    local same=""
    if [ "$type" = f32 ]; then
      same="; $(python3 "$widen" "$dir/$name" "$dir/$name-$type" --same-outputs)"
    fi
    echo "$name $type: $(moe-reference compare --dir "$dir/$name-$type" --tol 1e-2 | tail -n 1)$same"
  done
}

# Mixtral's routing; GPT-OSS's (biases on the router and every projection,
# the fused gate_up, swiglu_oai); a gated shared expert with a capacity
# that drops; expert choice with plain MLP experts.
check gated 1 1,9,40 E=8 k=2 renormalize=1
check gpt_oss 2 1,9,40 E=8 k=4 score=logits weights=softmax_selected router_bias=1 experts=gated_fused act=swiglu_oai expert_bias=1
check shared 3 1,9,40 E=16 k=4 shared=gated capacity=factor:0.75 drop_order=score
check expert_choice 4 9,40 select=expert_choice capacity=factor:2 experts=mlp act=relu
