#!/usr/bin/env bash
# The bf16 layers of the CUDA back end, compiled by moe-cuda-pipeline and run
# by `moe-run --pipeline PIPELINE` (cuda: on the GPU; cuda-emu: its kernels
# on the host's SIMT emulator), against moe-reference's f64 results: the
# outputs within bf16 tolerance, the per-expert assignments and dropped
# counts exactly, and the co-activated pairs (--stats-coactivation) exactly
# as the reference's selection has them. Prints one `compare:` line per
# case; exits non-zero at the first failure.
#
#   layers.sh PIPELINE DIR BINDIR   (BINDIR: moe-run and moe-reference)
set -euo pipefail
pipeline=$1
dir=$2
export PATH="$3:$PATH"
checker="$(dirname "$0")/../../../Tools/moe-run/Inputs/check_coactivation.py"
rm -rf "$dir" && mkdir -p "$dir"

# run NAME SEED TOKENS SPEC...: emit, run and compare one case.
run() {
  local name=$1 seed=$2 tokens=$3
  shift 3
  moe-reference emit --case "op=layer dtype=bf16 $*" --seed "$seed" \
    --tokens "$tokens" --dir "$dir/$name" >/dev/null
  moe-run "$dir/$name/case.mlir" --entry case --pipeline "$pipeline" --quiet \
    --stats-coactivation --stats-json "$dir/$name/stats.json" \
    $(cat "$dir/$name/moe-run.args")
  local outputs pairs
  outputs=$(moe-reference compare --dir "$dir/$name" | tail -n 1)
  pairs=$(python3 "$checker" "$dir/$name/stats.json" "$dir/$name")
  echo "$outputs; $pairs"
}

# Mixtral-style: k = 2 of 8 experts, renormalized; no tokens to 130 tokens.
run mixtral 1 0,1,7,33,130 renormalize=1
# Wider: d = 256, f = 128, k = 4 of 16.
run wide 2 1,64,100 renormalize=1 E=16 k=4 d=256 f=128

# Every routing of the router kernels, capacities in each drop order, shared
# experts, gated or not (and stored fused, as Granite 4.0's), every
# activation, weights applied to the expert input, a fused gate_up operand,
# plain MLP experts (Switch), LoRA experts, and GPT-OSS's expert biases
# (fused and separate) and clamped SwiGLU.
i=0
while read -r spec; do
  i=$((i + 1))
  run "variant$i" 3 1,17,64 "$spec"
done <<'SPECS'
score=sigmoid select=grouped_top_k groups=4 topk_group=2 group_score=sum_top2 selection_bias=1 renormalize=1 scale=2.5 E=16 k=4
select=grouped_top_k groups=4 topk_group=2 E=16 k=3
score=sigmoid select=grouped_top_k groups=128 topk_group=8 group_score=sum_top2 renormalize=1 E=256 k=8
score=sigmoid selection_bias=1 renormalize=1 scale=2.5 E=384 k=8
select=top_p top_p=0.4 renormalize=1 E=16 k=4
select=threshold tau=0.15 tau_operand=1 renormalize=1 k=4
score=logits weights=softmax_selected
score=sqrt_softplus router_bias=1 renormalize=1 E=16
E=64 k=8
select=expert_choice k=2
select=expert_choice k=2 capacity=factor:1.5 cap_min=2 router_bias=1 E=16
renormalize=1 capacity=factor:1.0
renormalize=1 capacity=count:3 drop_order=token_major
capacity=factor:0.75 cap_align=2 drop_order=score renorm_after_drop=1
E=16 k=4 renormalize=1 capacity=count:2 drop_order=score
renormalize=1 shared=plain fs=128
E=16 k=4 shared=gated capacity=factor:1.0 drop_order=token_major
act=gelu_tanh renormalize=1
act=gelu_erf E=16 k=4
act=relu renormalize=1 shared=plain
experts=gated_fused score=logits weights=softmax_selected shared=plain_fused fs=64
apply=input renormalize=1 E=16 k=4
experts=gated_fused score=logits weights=softmax_selected
experts=mlp act=relu k=1 capacity=factor:1.25 drop_order=token_major
experts=mlp act=gelu_tanh E=16 k=4 shared=gated
experts=lora r=8 alpha=16 renormalize=1
experts=lora r=16 d_out=40 E=16 k=4 apply=input capacity=factor:1.0
experts=lora_gated r=8 renormalize=1
experts=lora_gated r=8 act=gelu_tanh E=16 k=4 shared=gated
experts=gated_fused act=swiglu_oai expert_bias=1 score=logits weights=softmax_selected router_bias=1 E=16 k=4
experts=gated act=swiglu_oai shared=gated renormalize=1
experts=gated expert_bias=1 act=gelu_tanh apply=input capacity=factor:1.0 E=16 k=4
SPECS

# Tokens with NaN or infinite hidden states (docs/semantics.md): keys in
# descending order with NaN below every number, in top-k, grouped top-k,
# expert choice and the score drop order; the counts exact.
i=0
while read -r spec; do
  i=$((i + 1))
  run "nonfinite$i" 4 3,20 "data=nonfinite $spec"
done <<'SPECS'
renormalize=1
score=sigmoid select=grouped_top_k groups=4 topk_group=2 group_score=sum_top2 selection_bias=1 renormalize=1 E=16 k=4
select=expert_choice k=2
E=16 k=4 capacity=count:2 drop_order=score
SPECS

# Tokens that tie exactly (data=ties: tokens 1 and 3, 2 and 5 are equal) in
# expert choice and in the drop orders that rank (ties to the lower token,
# or slot t * k + j); 300 tokens give each thread of the selection several
# keys.
i=0
while read -r spec; do
  i=$((i + 1))
  run "ties$i" 5 6,300 "data=ties $spec"
done <<'SPECS'
select=expert_choice k=2
renormalize=1 capacity=factor:0.5 drop_order=score
capacity=factor:0.5 drop_order=choice_major E=16 k=4
SPECS

# More experts than 512, up to the library's 2048: the router's and the
# permutation's shared tables sized by E, a lane's 64 experts in its taken
# mask (256 of 2048 experts a token reach the last ones), several experts a
# thread in the block scans, and the segmented permutation (600 tokens x 8
# slots), with grouped top-k, a capacity and expert choice.
run many1 11 1,7,600 renormalize=1 E=1024 k=8 d=16 f=16
run many2 12 1,33 score=sigmoid select=grouped_top_k groups=64 topk_group=4 group_score=sum_top2 renormalize=1 E=2048 k=8 d=16 f=16
run many3 13 1,7 E=2048 k=256 d=8 f=8
run many4 14 7,33 renormalize=1 capacity=factor:0.75 drop_order=score E=1024 k=4 d=16 f=16
run many5 15 3,40 select=expert_choice k=2 E=1536 d=16 f=16

# Run-time knobs (test/Integration/knobs.mlir): the reference is made for
# tau = 0.3 and a capacity factor of 0.75, the module defaults to other
# values, and the knobs set the reference's.
knobs=$dir/knobs
moe-reference emit --case "op=layer dtype=bf16 select=threshold tau=0.3 k=3 renormalize=1 capacity=factor:0.75 drop_order=token_major" \
  --seed 31 --tokens 1,7,33 --dir "$knobs" >/dev/null
sed -i -E 's/tau = 0.3([,>])/tau = 0.05\1/; s/factor = 0.75([,>])/factor = 4.0\1/' "$knobs/case.mlir"
moe-run "$knobs/case.mlir" --entry case --pipeline "$pipeline" --quiet \
  --knob case:tau=0.3 --knob case:capacity_factor=0.75 \
  --stats-coactivation --stats-json "$knobs/stats.json" $(cat "$knobs/moe-run.args")
outputs=$(moe-reference compare --dir "$knobs" | tail -n 1)
pairs=$(python3 "$checker" "$knobs/stats.json" "$knobs")
echo "$outputs; $pairs"
moe-run "$knobs/case.mlir" --entry case --pipeline "$pipeline" --quiet \
  $(cat "$knobs/moe-run.args")
if moe-reference compare --dir "$knobs" >/dev/null; then
  echo "knobs: the module's own tau and capacity factor matched the reference"
  exit 1
fi
