#!/usr/bin/env python3
"""Differential fuzzing of whole MoE layers against the f64 reference.

Draws random layer cases from the space `moe-reference emit` describes
(routing, score, capacity, expert kind, shared expert, sizes, token counts,
data with ties or non-finite hidden states), compiles and runs each with
`moe-run --pipeline PIPELINE`, and compares the outputs, the per-expert
counts and the co-activated pairs with the reference's. For the CUDA
pipelines each case also draws the kernel library's run-time choices
(MOE_GPU_WGMMA, its tile rows, columns and stages, the GEMV threshold, the
grid split, the permutation's blocks, dependent launches), so that the kernels the GPU can
take are checked in combinations the fixed tests do not name; for the CPU,
the kernels' threads. One bf16 case in four runs as the f32 layer of the
same values (scripts/widen-case.py), narrowed back by --narrow-to-bf16.
One case in two is written as the layer's decomposed ops, primitive or
fused, which moe-form-layers must form back into the layer.

With --source model, a case is instead a one-layer checkpoint of one of
the supported families (moe-gen-checkpoint, random sizes, dtype and routing
options), imported by moe-import (at times in another dtype than the
checkpoint's, always in bf16 for CUDA, the weights then converted when the
library loads; or an f32 or f16 checkpoint imported as it is and compiled
with --narrow-to-bf16), compiled by moe-compile --target PIPELINE
and run through the C API by test/AOT/run_layer_npy.c (several threads at
once; for CUDA also on device buffers from several streams or replayed from
a CUDA graph, each bitwise the same), against moe-reference's f64 model of
the same checkpoint.

A case fails when a tool rejects or crashes on it, times out, or differs
from the reference; each failure prints the commands that reproduce it.
The same seed draws the same cases.

  fuzz-layers.py --bindir build/bin --pipeline cuda-emu --seed 1 --count 50
      [--source layer|model] [--run-arg=--reference ...] [--cc CC]
      [--jobs N] [--keep DIR] [--list] [--cases N,M] [--only TEXT]
"""

import argparse
import concurrent.futures
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile

TEST_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "test")
CHECK_COACTIVATION = os.path.join(TEST_ROOT, "Tools", "moe-run", "Inputs",
                                  "check_coactivation.py")
RUN_LAYER_NPY = os.path.join(TEST_ROOT, "AOT", "run_layer_npy.c")
WIDEN_CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "widen-case.py")

CUDA = ("cuda", "cuda-emu")


def signed_weights(spec):
    """Whether the combine weights of `spec` may be negative: raw logits."""
    return (spec.get("score") == "logits" and
            spec.get("weights") != "softmax_selected")


def draw_routing(rng, E, k):
    """Selection, score and combine-weight keys for E experts and k."""
    spec = {}
    select = rng.choices(
        ["top_k", "grouped_top_k", "top_p", "threshold", "expert_choice"],
        weights=[5, 2, 1, 2, 1])[0]
    if select == "grouped_top_k":
        divisors = [g for g in range(1, E + 1) if E % g == 0]
        groups = rng.choice(divisors)
        per_group = E // groups
        need = -(-k // per_group)  # groups needed to hold k experts
        spec["groups"] = groups
        spec["topk_group"] = rng.randint(need, groups)
        if per_group >= 2 and rng.random() < 0.5:
            spec["group_score"] = "sum_top2"
    elif select == "top_p":
        spec["top_p"] = rng.choice([0.05, 0.3, 0.5, 0.8, 1.0])
    elif select == "threshold":
        spec["tau"] = rng.choice([0.01, 0.1, 0.15, 0.3, 0.6])
        spec["tau_operand"] = rng.randint(0, 1)
    spec["select"] = select
    ranks_softmax = select in ("top_p", "expert_choice")
    if not ranks_softmax:
        spec["score"] = rng.choice(["softmax", "sigmoid", "sqrt_softplus",
                                    "logits"])
    if select != "expert_choice":
        if rng.random() < 0.3:
            spec["weights"] = "softmax_selected"
        # Renormalizing signed weights (raw logits) divides by a sum that
        # can be near zero, which the reference declines to judge: not
        # drawn.
        spec["renormalize"] = 0 if signed_weights(spec) else rng.randint(0, 1)
        if rng.random() < 0.2:
            spec["scale"] = rng.choice([0.5, 2.5])
        if rng.random() < 0.2:
            spec["selection_bias"] = 1
    if rng.random() < 0.2:
        spec["router_bias"] = 1
    return spec


def draw_capacity(rng, spec):
    if rng.random() < 0.6:
        return
    if spec["select"] == "expert_choice":
        spec["capacity"] = "factor:" + rng.choice(["0.5", "1.0", "1.5"])
        if rng.random() < 0.3:
            spec["cap_min"] = rng.randint(0, 3)
        return
    spec["capacity"] = rng.choice(
        ["count:1", "count:2", "count:5", "factor:0.5", "factor:0.75",
         "factor:1.0", "factor:1.25"])
    spec["drop_order"] = rng.choice(["choice_major", "token_major", "score"])
    if rng.random() < 0.3:
        spec["cap_min"] = rng.randint(0, 3)
    if rng.random() < 0.3:
        spec["cap_align"] = rng.choice([1, 2, 4])
    if ("scale" not in spec and not signed_weights(spec) and
            rng.random() < 0.3):
        spec["renorm_after_drop"] = 1


def draw_case(rng, pipeline):
    """A case spec (key -> value) and the token counts of its sets."""
    cuda = pipeline in CUDA
    unit = 8 if cuda else 1

    def size(lo, hi):
        return unit * rng.randint(max(1, lo // unit), hi // unit)

    # One case in ten is deep (K of 512 to 1024 in the first GEMM, 256 to
    # 768 in the second) on few experts and tokens: more k steps than the
    # GEMMs' buffers, so that their rings wrap around.
    deep = rng.random() < 0.1
    # More than 512 experts only on the GPU kernels, whose tables of experts
    # they size (the CPU's loops over experts take minutes at 2048 groups).
    E = rng.choice([1, 2, 3, 4, 8, 8, 16] if deep else
                   [1, 2, 3, 4, 8, 8, 16, 16, 24, 32, 64, 128, 256, 384, 512] +
                   ([1000, 2048] if cuda else []))
    big = E >= 128
    k = rng.randint(1, min(E, 8))
    spec = {"op": "layer", "E": E, "k": k}
    spec["dtype"] = "bf16" if cuda else rng.choice(["f32", "f16", "bf16"])
    if deep:
        spec["d"] = size(512, 1024)
        spec["f"] = size(256, 768)
    else:
        spec["d"] = size(8, 64 if big else 256)
        spec["f"] = size(8, 48 if big else 160)
    spec.update(draw_routing(rng, E, k))
    draw_capacity(rng, spec)
    experts = rng.choices(["gated", "gated_fused", "mlp", "lora",
                           "lora_gated"], weights=[4, 1, 1, 1, 1])[0]
    spec["experts"] = experts
    if experts != "mlp" or rng.random() < 0.5:
        spec["act"] = rng.choice(["silu", "gelu_tanh", "gelu_erf", "relu"])
    # GPT-OSS's clamped SwiGLU and expert biases: gated experts.
    if experts in ("gated", "gated_fused"):
        if rng.random() < 0.2:
            spec["act"] = "swiglu_oai"
        if rng.random() < 0.25:
            spec["expert_bias"] = 1
    if experts in ("lora", "lora_gated"):
        spec["r"] = size(8, 24)
        spec["alpha"] = rng.choice([8.0, 16.0])
    if experts == "lora" and rng.random() < 0.3:
        spec["d_out"] = size(8, 64)
    elif rng.random() < 0.25:
        spec["shared"] = rng.choice(["plain", "gated"])
        spec["fs"] = size(8, 96)
    if rng.random() < 0.2:
        spec["apply"] = "input"
    # Expert choice on one_expert data ranks the tokens of expert 0 by
    # scores that all round to 1 within 1e-10 on many experts: ambiguous in
    # every draw, so the reference refuses the case.
    one_expert = 0 if spec.get("select") == "expert_choice" else 1
    spec["data"] = rng.choices(["random", "ties", "one_expert", "nonfinite"],
                               weights=[6, 1, one_expert, 1])[0]
    choices = [0, 1, 1, 2, 3, 5, 8, 16, 17, 31, 64, 100, 130]
    if deep:
        choices = [1, 2, 5, 17, 64]
    elif not big:
        choices += [257, 300]
    tokens = sorted(rng.sample(choices, rng.randint(1, 3)))
    # One bf16 case in four runs as the f32 layer of the same values,
    # narrowed back to bf16 (moe-run --narrow-to-bf16): exact, so the bf16
    # reference and its tolerance still hold.
    widen = spec["dtype"] == "bf16" and rng.random() < 0.25
    return spec, tokens, widen


def draw_env(rng, pipeline):
    """The kernel library's run-time choices for a CUDA pipeline; the CPU
    kernels' threads otherwise."""
    env = {}
    if pipeline not in CUDA:
        if rng.random() < 0.5:
            env["MOE_NUM_THREADS"] = rng.choice(["1", "2", "3"])
        return env
    options = {
        "MOE_GPU_WGMMA": ["0", "1"],
        "MOE_GPU_WGMMA_ROWS": ["64", "128"],
        "MOE_GPU_WGMMA_COLS": ["128", "256"],
        "MOE_GPU_WGMMA_STAGES": ["3", "4", "5", "6", "8"],
        "MOE_GPU_GEMM_GROUP": ["1", "2", "16"],
        "MOE_GPU_GEMV_ROWS": ["0", "1", "4", "40", "1000"],
        "MOE_GPU_GEMV_PAIRS": ["0", "1"],
        "MOE_GPU_MAX_GRID_Y": ["1", "3", "7"],
        "MOE_GPU_PERMUTATION_SLOTS": ["32", "96", "512"],
        "MOE_GPU_DEPENDENT_LAUNCH": ["0", "1"],
    }
    for name, values in options.items():
        if rng.random() < 0.4:
            env[name] = rng.choice(values)
    # Stages whose buffers do not fit the tile's 227 KiB are a bad setting
    # (an error, tested on its own): drawn again until they fit.
    rows = int(env.get("MOE_GPU_WGMMA_ROWS", "64"))
    cols = int(env.get("MOE_GPU_WGMMA_COLS", "128"))
    while ("MOE_GPU_WGMMA_STAGES" in env and
           (rows + cols) * 128 * int(env["MOE_GPU_WGMMA_STAGES"]) + 1024 >
           227 * 1024):
        env["MOE_GPU_WGMMA_STAGES"] = rng.choice(["3", "4", "5"])
    return env


def spec_string(spec):
    return " ".join(f"{key}={value}" for key, value in spec.items())


def quote(*words):
    return " ".join(shlex.quote(str(w)) for w in words)


class Step:
    """One shell command of a case; `declines` when its failure means the
    reference does not define the case (not the compiler's fault)."""

    def __init__(self, name, command, env=None, declines=False):
        self.name, self.command = name, command
        self.env, self.declines = env or {}, declines

    def shell(self):
        prefix = "".join(f"{k}={v} " for k, v in self.env.items())
        return prefix + self.command


def layer_steps(case_dir, seed, spec, tokens, widen, spelling, env, args):
    """moe-reference emit, moe-run, compare and the co-activation check;
    with `widen`, the case converted to f32 first (scripts/widen-case.py)
    and run with --narrow-to-bf16. With `spelling` "ops" or "fused", the
    layer is written as its decomposed ops (moe-decompose, then for "fused"
    moe-fuse-gating and moe-fuse-expert-io), which moe-form-layers must
    turn back into the layer, op for op, and the pipelines into the same
    results."""
    tool = lambda name: os.path.join(args.bindir, name)
    emitted = os.path.join(case_dir, "bf16") if widen else case_dir
    run_dir = os.path.join(case_dir, "f32") if widen else case_dir
    stats = os.path.join(run_dir, "stats.json")
    steps = [
        Step("emit", quote(tool("moe-reference"), "emit", "--case",
                           spec_string(spec), "--seed", seed, "--tokens",
                           ",".join(map(str, tokens)), "--dir", emitted),
             declines=True)]
    if widen:
        steps.append(Step("widen", quote(sys.executable, WIDEN_CASE, emitted,
                                         run_dir, "--dtype", "f32")))
    if spelling != "layer":
        case = os.path.join(run_dir, "case.mlir")
        layer = os.path.join(run_dir, "layer.mlir")
        fuse = ["--moe-fuse-gating", "--moe-fuse-expert-io"] \
            if spelling == "fused" else []
        # LoRA experts without a shared expert use no activation, which
        # their ops therefore do not carry: the formed layer's is silu.
        moot = spec.get("experts") == "lora" and "shared" not in spec
        normal = (" | sed -E 's/kind = lora, act = [a-z_]+,/kind = lora,/'"
                  if moot else "")
        steps += [
            Step("decompose",
                 quote(tool("moe-opt"), case, "--canonicalize", "--cse",
                       "-o", layer) + " && " +
                 quote(tool("moe-opt"), layer, "--moe-decompose", *fuse,
                       "-o", case)),
            Step("form-layers",
                 "cmp <(" + quote(tool("moe-opt"), case, "--moe-form-layers",
                                  "--canonicalize", "--cse") + normal +
                 ") <(" + quote("cat", layer) + normal + ")"),
        ]
    return steps + [
        Step("moe-run",
             quote(tool("moe-run"), os.path.join(run_dir, "case.mlir"),
                   "--entry", "case", "--pipeline", args.pipeline, "--quiet",
                   "--stats-coactivation", "--stats-json", stats,
                   *(["--narrow-to-bf16"] if widen else []), *args.run_args)
             + " $(cat " + quote(os.path.join(run_dir, "moe-run.args")) + ")",
             env),
        Step("compare", quote(tool("moe-reference"), "compare", "--dir",
                              run_dir, *(["--tol", "1e-2"] if widen else []))),
        Step("co-activation", quote(sys.executable, CHECK_COACTIVATION, stats,
                                    run_dir)),
    ]


FAMILIES = ["mixtral", "minimax", "minimax_m2", "qwen2_moe", "qwen3_moe",
            "qwen3_next", "qwen3_vl_moe", "qwen3_5_moe", "olmoe", "flex_olmo", "jamba",
            "deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2",
            "glm4_moe", "glm4v_moe", "glm4_moe_lite", "glm_moe_dsa",
            "dots1", "ernie4_5_moe", "granitemoe", "granitemoeshared",
            "granitemoehybrid", "lfm2_moe", "llama4",
            "llama4_text", "dbrx", "gpt_oss"]
# Fused experts stored [in, out], which their FP8 checkpoints may also hold
# per expert, [out, in].
IN_OUT_EXPERTS = ("llama4", "llama4_text", "qwen3_vl_moe")
# Families written in FP8 by no release (GPT-OSS's is MXFP4).
NO_FP8 = ("dbrx", "gpt_oss")
# Experts named gate_proj, up_proj, down_proj under mlp, which a
# checkpoint may also hold fused as transformers 5 writes them.
MLP_EXPERTS = ("qwen2_moe", "qwen3_moe", "qwen3_next", "qwen3_5_moe", "olmoe",
               "flex_olmo", "deepseek_v2", "deepseek_v3", "deepseek_v32",
               "kimi_k2", "glm4_moe", "glm4v_moe", "glm4_moe_lite",
               "glm_moe_dsa", "dots1", "ernie4_5_moe")
# Mixtral's block, which transformers 5 stores fused under mlp.
MIXTRAL_BLOCK = ("mixtral", "minimax", "minimax_m2")


def draw_model(rng, pipeline):
    """moe-gen-checkpoint options of a one-layer checkpoint, moe-compile
    options, and the token counts of its sets."""
    cuda = pipeline in CUDA
    unit = 8 if cuda else 1

    def size(lo, hi):
        return unit * rng.randint(max(1, lo // unit), hi // unit)

    family = rng.choice(FAMILIES)
    E = rng.choice([2, 4, 8, 8, 16, 32, 64])
    k = rng.randint(1, min(E, 8))
    # The checkpoint's dtype, and the layer's: the GPU computes in bf16, and
    # another dtype is converted when the library loads (moe-import --dtype).
    stored = rng.choice(["f32", "f16", "bf16"])
    dtype = "bf16" if cuda else stored
    if not cuda and rng.random() < 0.3:
        dtype = rng.choice(["f32", "f16", "bf16"])
    gen = ["--family", family, "--dtype", stored,
           "--hidden", size(8, 256), "--inner", size(8, 160),
           "--experts", E, "--top-k", k, "--layers", 1]
    if family.startswith(("deepseek", "glm")) or family in ("kimi_k2",
                                                            "dots1"):
        # Groups of at least two experts, enough of them kept for k.
        divisors = [g for g in range(1, E // 2 + 1) if E % g == 0]
        groups = rng.choice(divisors)
        need = -(-k // (E // groups))
        gen += ["--first-dense", 0, "--groups", groups,
                "--topk-group", rng.randint(need, groups),
                "--shared-experts", rng.randint(0, 2)]
        if rng.random() < 0.3:
            gen += ["--scaling-factor", rng.choice([1.0, 2.5, 16.0])]
    if family == "jamba":
        # Its one layer sparse: an expert_layer_period of 1.
        gen += ["--moe-layer-freq", 1, "--moe-layer-offset", 0]
    if family == "ernie4_5_moe":
        # Its one layer sparse: from layer 0, at an interval of 1.
        gen += ["--first-dense", 0, "--shared-experts", rng.randint(0, 2)]
    if family == "lfm2_moe":
        gen += ["--first-dense", 0, "--expert-bias", rng.randint(0, 1)]
        if rng.random() < 0.3:
            gen += ["--scaling-factor", rng.choice([1.0, 2.5])]
    if family in ("qwen2_moe", "qwen3_next", "qwen3_5_moe",
                  "granitemoehybrid"):
        gen += ["--shared-inner", size(8, 96)]
    fused = family.startswith("granitemoe")
    if family in MLP_EXPERTS + MIXTRAL_BLOCK and rng.random() < 0.5:
        fused = rng.random() < 0.5
        gen += ["--fused-experts", int(fused)]
    elif family == "qwen3_5_moe":  # fused as released
        fused = True
    elif family in IN_OUT_EXPERTS:
        fused = rng.random() < 0.7
        gen += ["--fused-experts", int(fused)]
    if family == "granitemoeshared":  # 0: no shared MLP
        gen += ["--shared-inner", rng.choice([0, size(8, 96)])]
    if (family not in ("mixtral", "minimax", "minimax_m2", "granitemoe",
                       "granitemoeshared", "granitemoehybrid",
                       "llama4", "llama4_text", "qwen3_vl_moe", "qwen3_5_moe",
                       "ernie4_5_moe", "jamba", "gpt_oss")
            and rng.random() < 0.5):
        gen += ["--norm-topk-prob", rng.randint(0, 1)]
    # FP8 projections (dequantized when the library loads), scaled per
    # tensor or by blocks that leave partial ones or cover a whole matrix,
    # in the fp8, the compressed-tensors or Llama-4's fbgemm format (fused
    # experts share no scale: not per tensor).
    if family not in NO_FP8 and rng.random() < 0.25:
        draw = rng.random()
        if not fused and draw < 0.2:
            gen += ["--fp8-per-tensor"]
        elif draw < 0.3:
            gen += ["--fp8-fbgemm"]
        elif draw < 0.5:
            gen += ["--fp8-compressed", rng.choice([
                "channel", "group:%d" % rng.choice([8, 16, 128]),
                "block:%d,%d" % (rng.choice([8, 128]), rng.choice([24, 128])),
            ] + (["tensor"] if not fused else []))]
        else:
            gen += ["--fp8-block", "%d,%d" % (rng.choice([8, 16, 128]),
                                              rng.choice([8, 24, 128]))]
    # NVFP4 projections, as Model Optimizer or llm-compressor exports them,
    # or llm-compressor's MXFP4 (per expert, even sizes; the CUDA sizes are
    # multiples of 8).
    elif (family not in NO_FP8 and not fused and rng.random() < 0.1
          and all(gen[gen.index(o) + 1] % 2 == 0
                  for o in ("--hidden", "--inner"))
          and ("--shared-inner" not in gen
               or gen[gen.index("--shared-inner") + 1] % 2 == 0)):
        gen += rng.choice([["--nvfp4"], ["--nvfp4", "--nvfp4-compressed"],
                           ["--mxfp4-compressed"]])
    # llm-compressor's W4A16 or W8A16 (per expert; groups that leave partial
    # ones, or one scale a row; groups in activation order; symmetric or
    # with zero points), or W8A8's int8 weights.
    elif family not in NO_FP8 and not fused and rng.random() < 0.1:
        group = rng.choice([0, 8, 16, 32, 128])
        bits = rng.choice([4, 8])
        gen += ["--int-compressed", bits, "--int-group", group]
        if group and rng.random() < 0.5:
            gen += ["--int-actorder"]
        if rng.random() < 0.5:
            gen += ["--int-asymmetric"]
        elif bits == 8 and rng.random() < 0.5:
            # W8A8's int8 weights, one an element (int-quantized).
            gen += ["--int-format", "int-quantized"]
    # GPTQ or AWQ (per expert, in whole words: sizes made multiples of 8);
    # GPTQ's groups in order or not, symmetric or not, in either format.
    elif family not in NO_FP8 and not fused and rng.random() < 0.15:
        for option in ("--hidden", "--inner", "--shared-inner"):
            if option in gen:
                at = gen.index(option) + 1
                gen[at] = -(-gen[at] // 8) * 8
        group = rng.choice([0, 8, 16, 32, 128])
        if rng.random() < 0.35:
            gen += ["--awq", "--awq-group", group]
        else:
            gen += ["--gptq", rng.choice([4, 8]), "--gptq-group", group]
            gen += [o for o in ("--gptq-desc-act", "--gptq-asym", "--gptq-v2")
                    if rng.random() < 0.5]
    # bitsandbytes' 4-bit weights, NF4 or FP4 (per expert; blocks of
    # consecutive values that run across rows, the last one partial), their
    # scales quantized again or not, the routers quantized too or left in the
    # checkpoint's dtype.
    elif family not in NO_FP8 and not fused and rng.random() < 0.15:
        gen += ["--bnb4", rng.choice(["nf4", "fp4"]),
                "--bnb4-block", rng.choice([32, 64, 128, 256])]
        if rng.random() < 0.5:
            gen += ["--bnb4-double-quant",
                    "--bnb4-nested-block", rng.choice([32, 64, 256])]
        if rng.random() < 0.5:
            gen += ["--bnb4-router"]
    # GPT-OSS's experts in MXFP4, as it is released (dequantized when the
    # library loads): sizes of whole blocks of 32 inputs.
    if family == "gpt_oss" and rng.random() < 0.5:
        at = gen.index("--hidden")
        gen[at + 1] = 32 * rng.randint(1, 8)
        gen[at + 3] = 32 * rng.randint(1, 5)
        gen += ["--mxfp4"]
    compile_args = []
    if rng.random() < 0.3:
        compile_args.append("--stats-coactivation")
    tokens = sorted(rng.sample([0, 1, 1, 2, 5, 16, 17, 31, 64, 100, 130],
                               rng.randint(1, 3)))
    # run_layer_npy's checks: several threads (or streams) at once give
    # bitwise the first result; a CUDA layer also on device buffers, or
    # captured in a CUDA graph and replayed.
    threads = rng.randint(1, 3)
    mode = rng.choice(["", "device", "graph"]) if cuda else ""
    convert = ["--dtype", dtype] if dtype != stored else []
    # An f32 or f16 layer computed in bf16 (moe-compile --narrow-to-bf16,
    # the weights rounded when the library loads), on bf16 hidden states
    # widened to its dtype: the bf16 reference holds. Its device entry
    # point takes the rows of that dtype as well.
    if stored != "bf16" and dtype == "bf16" and rng.random() < 0.4:
        convert = []
        compile_args.append("--narrow-to-bf16")
    return gen, convert, compile_args, tokens, threads, mode


def model_steps(case_dir, seed, model, env, args):
    """moe-gen-checkpoint, moe-import, moe-compile, a C program on the
    library's C API (run_layer_npy.c) for each set, and compare."""
    gen, convert, compile_args, tokens, threads, mode = model
    tool = lambda name: os.path.join(args.bindir, name)
    ckpt = os.path.join(case_dir, "ckpt")
    lib = os.path.join(case_dir, "lib")
    mlir = os.path.join(case_dir, "model.mlir")
    run = os.path.join(case_dir, "run")
    cases = os.path.join(case_dir, "cases")
    target = args.pipeline
    flags = ["--cuda-chip", "sm_80", "--cuda-format", "isa"] \
        if target == "cuda" else []
    # A narrowed layer's cases: bf16 ones of the checkpoint, widened to its
    # dtype.
    narrow = "--narrow-to-bf16" in compile_args
    stored = gen[gen.index("--dtype") + 1]
    emitted = cases + "-bf16" if narrow else cases
    steps = [
        Step("moe-gen-checkpoint", quote(tool("moe-gen-checkpoint"), *gen,
                                         "--seed", seed, "--out", ckpt)),
        Step("moe-import", quote(tool("moe-import"), "--model", ckpt,
                                 *convert, "-o", mlir)),
        Step("moe-compile", "mkdir -p " + quote(lib) + " && " +
             quote(tool("moe-compile"), mlir, "--target", target, *flags,
                   *compile_args, *args.run_args, "-o",
                   os.path.join(lib, "libmodel.so"), "--header",
                   os.path.join(lib, "model.h"))),
        Step("cc", quote(args.cc, "-O2", RUN_LAYER_NPY, "-I" + lib,
                         "-L" + lib, "-lmodel", "-lpthread", "-ldl",
                         "-Wl,-rpath," + lib, "-o", run)),
        Step("emit-model", quote(tool("moe-reference"), "emit-model",
                                 "--model", ckpt, "--layer", 0, "--seed",
                                 seed, "--tokens",
                                 ",".join(map(str, tokens)), "--dir", emitted,
                                 *(["--dtype", "bf16"] if narrow else
                                   convert)),
             declines=True),
    ]
    if narrow:
        steps.append(Step("widen", quote(sys.executable, WIDEN_CASE, emitted,
                                         cases, "--dtype", stored)))
    for i in range(len(tokens)):
        data = os.path.join(cases, f"set{i}")
        steps.append(Step(f"run set{i}", quote(
            run, "moe_layer_0", ckpt, os.path.join(data, "arg0.npy"),
            os.path.join(data, "out0.npy"), threads, *([mode] if mode else
                                                        [])), env))
    steps.append(Step("compare", quote(tool("moe-reference"), "compare",
                                       "--dir", cases,
                                       *(["--tol", "1e-2"] if narrow else []))))
    return steps


def run_steps(case_dir, steps, timeout):
    """None when every step succeeds, else ("declined" or "failed", lines)."""
    repro = " && ".join(step.shell() for step in steps)
    for step in steps:
        try:
            done = subprocess.run(["bash", "-c", step.command],
                                  capture_output=True, text=True,
                                  env=dict(os.environ, **step.env),
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return ("failed", [f"{step.name}: no answer in {timeout} s",
                               repro])
        if done.returncode == 0:
            continue
        lines = (done.stdout + done.stderr).strip().splitlines()
        if step.declines:
            # The reference declines cases it does not define (every draw
            # of hidden states too close to a tie, say).
            return ("declined", lines[-1:])
        if len(lines) > 12:
            lines = lines[:8] + ["..."] + lines[-3:]
        # bash reports a signal as 128 + its number.
        if done.returncode > 128:
            lines.append(f"killed by signal {done.returncode - 128}")
        return ("failed", [f"{step.name}: exit status {done.returncode}"] +
                lines + [repro])
    shutil.rmtree(case_dir, ignore_errors=True)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindir", required=True,
                        help="the directory of moe-run, moe-reference and, "
                             "for --source model, the other tools")
    parser.add_argument("--pipeline", default="cuda-emu",
                        help="moe-run's --pipeline (cpu, cuda-emu, cuda), "
                             "or moe-compile's --target for --source model")
    parser.add_argument("--source", choices=["layer", "model"],
                        default="layer",
                        help="layer: moe-reference's cases run by moe-run; "
                             "model: one-layer checkpoints of the supported "
                             "families, imported, compiled ahead of time and "
                             "run through the C API")
    parser.add_argument("--run-arg", dest="run_args", action="append",
                        default=[], metavar="OPTION",
                        help="one more moe-run (or moe-compile) option "
                             "(repeatable; an empty one is ignored), such "
                             "as --reference")
    parser.add_argument("--cc", default="cc",
                        help="the C compiler of --source model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds a step may take before it fails")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the cases under DIR (kept on failure)")
    parser.add_argument("--list", action="store_true",
                        help="print the drawn cases without running them")
    parser.add_argument("--cases", metavar="N,M,...",
                        help="run only these cases of the --count drawn "
                             "(to reproduce a failure: the same --seed, "
                             "--source and --pipeline draw the same cases)")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only the drawn cases whose description "
                             "contains TEXT (say --only nvfp4)")
    args = parser.parse_args()
    args.run_args = [a for a in args.run_args if a]

    rng = random.Random(args.seed)
    cases = []
    for i in range(args.count):
        if args.source == "layer":
            spec, tokens, widen = draw_case(rng, args.pipeline)
            what = (f"{spec_string(spec)} tokens={','.join(map(str, tokens))}"
                    + (" narrowed-from=f32" if widen else ""))
        else:
            model = draw_model(rng, args.pipeline)
            gen, convert, compile_args, tokens, threads, mode = model
            what = (" ".join(map(str, gen + compile_args)) +
                    (f" import={convert[1]}" if convert else "") +
                    f" tokens={','.join(map(str, tokens))} threads={threads}"
                    + (f" {mode}" if mode else ""))
        env = draw_env(rng, args.pipeline)
        seed = rng.randrange(1 << 30)
        if args.source == "layer":
            # From the seed, so that adding it left the other draws alone.
            spelling = ("layer", "layer", "ops", "fused")[seed % 4]
            if spelling != "layer":
                what += f" spelling={spelling}"
            make = (lambda d, seed=seed, spec=spec, tokens=tokens,
                    widen=widen, spelling=spelling, env=env:
                    layer_steps(d, seed, spec, tokens, widen, spelling, env,
                                args))
        else:
            make = (lambda d, seed=seed, model=model, env=env:
                    model_steps(d, seed, model, env, args))
        what += "".join(f" {k}={v}" for k, v in env.items())
        cases.append((i, what, make))
    # Every case is drawn before any is left out, so that a case is the same
    # whatever the selection.
    if args.cases:
        try:
            wanted = {int(n) for n in args.cases.split(",")}
        except ValueError:
            parser.error("--cases takes case numbers, N,M,...")
        cases = [c for c in cases if c[0] in wanted]
    if args.only:
        cases = [c for c in cases if args.only in c[1]]
    if args.list:
        for i, what, _ in cases:
            print(f"case {i}: {what}")
        return 0

    workdir = args.keep or tempfile.mkdtemp(prefix="fuzz-layers.")
    os.makedirs(workdir, exist_ok=True)
    failed = declined = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = []
        for i, _, make in cases:
            case_dir = os.path.join(workdir, f"case{i}")
            futures.append(pool.submit(run_steps, case_dir, make(case_dir),
                                       args.timeout))
        for (i, what, _), future in zip(cases, futures):
            result = future.result()
            if result is None:
                continue
            kind, lines = result
            if kind == "declined":
                declined += 1
                print(f"declined case {i}: {' '.join(lines)}")
                continue
            failed += 1
            print(f"FAIL case {i}: {what}")
            for line in lines:
                print("  " + line)
    passed = len(cases) - failed - declined
    print(f"fuzz-layers: {len(cases)} {args.source} cases on {args.pipeline}, "
          f"{passed} passed, {declined} declined by the reference, "
          f"{failed} failed")
    if not failed and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
