#!/usr/bin/env python3
"""Differential fuzzing of whole MoE layers against the f64 reference.

Draws random layer cases from the space `moe-reference emit` describes
(routing, score, capacity, expert kind, shared expert, sizes, token counts,
data with ties or non-finite hidden states), compiles and runs each with
`moe-run --pipeline PIPELINE`, and compares the outputs, the per-expert
counts and the co-activated pairs with the reference's. For the CUDA
pipelines each case also draws the kernel library's run-time choices
(MOE_GPU_WGMMA, its tile rows, columns and stages, the GEMV threshold, the
grid split, the permutation's blocks), so that the kernels the GPU can
take are checked in combinations the fixed tests do not name; for the CPU,
the kernels' threads.

A case fails when moe-run rejects or crashes on it, times out, or differs
from the reference; each failure prints the commands that reproduce it.
The same seed draws the same cases.

  fuzz-layers.py --bindir build/bin --pipeline cuda-emu --seed 1 --count 50
      [--run-arg=--reference ...] [--jobs N] [--keep DIR]
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

CHECK_COACTIVATION = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "test", "Tools",
    "moe-run", "Inputs", "check_coactivation.py")

CUDA = ("cuda", "cuda-emu")


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
        spec["renormalize"] = rng.randint(0, 1)
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
    if "scale" not in spec and rng.random() < 0.3:
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
    E = rng.choice([1, 2, 3, 4, 8, 8, 16] if deep else
                   [1, 2, 3, 4, 8, 8, 16, 16, 24, 32, 64, 128, 256, 384, 512])
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
    spec["data"] = rng.choices(["random", "ties", "one_expert", "nonfinite"],
                               weights=[6, 1, 1, 1])[0]
    choices = [0, 1, 1, 2, 3, 5, 8, 16, 17, 31, 64, 100, 130]
    if deep:
        choices = [1, 2, 5, 17, 64]
    elif not big:
        choices += [257, 300]
    tokens = sorted(rng.sample(choices, rng.randint(1, 3)))
    return spec, tokens


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


def run_case(index, seed, spec, tokens, env, args, workdir):
    """Returns None when the case passes, else a report."""
    case_dir = os.path.join(workdir, f"case{index}")
    tokens_arg = ",".join(map(str, tokens))
    emit = [os.path.join(args.bindir, "moe-reference"), "emit", "--case",
            spec_string(spec), "--seed", str(seed), "--tokens", tokens_arg,
            "--dir", case_dir]
    done = subprocess.run(emit, capture_output=True, text=True)
    if done.returncode != 0:
        # The reference declines cases it does not define (every draw of
        # hidden states too close to a tie, say): not the compiler's fault.
        return ("declined", done.stderr.strip().splitlines()[-1:])
    with open(os.path.join(case_dir, "moe-run.args")) as f:
        case_args = f.read().split()
    stats = os.path.join(case_dir, "stats.json")
    run = [os.path.join(args.bindir, "moe-run"),
           os.path.join(case_dir, "case.mlir"), "--entry", "case",
           "--pipeline", args.pipeline, "--quiet", "--stats-coactivation",
           "--stats-json", stats] + [a for a in args.run_args if a] + case_args
    compare = [os.path.join(args.bindir, "moe-reference"), "compare",
               "--dir", case_dir]
    check = [sys.executable, CHECK_COACTIVATION, stats, case_dir]
    full_env = dict(os.environ, **env)
    repro = " && ".join(
        [" ".join(shlex.quote(a) for a in emit),
         " ".join([f"{k}={v}" for k, v in env.items()] +
                  [shlex.quote(a) for a in run[:-len(case_args)]] +
                  ["$(cat " + shlex.quote(case_dir + "/moe-run.args") + ")"]),
         " ".join(shlex.quote(a) for a in compare)])
    steps = [("moe-run", run, full_env), ("compare", compare, None),
             ("co-activation", check, None)]
    for name, command, step_env in steps:
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  env=step_env, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return ("failed", [f"{name}: no answer in {args.timeout} s",
                               repro])
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()
            if len(lines) > 12:
                lines = lines[:8] + ["..."] + lines[-3:]
            if done.returncode < 0:
                lines.append(f"killed by signal {-done.returncode}")
            return ("failed", [f"{name}: exit status {done.returncode}"] +
                    lines + [repro])
    shutil.rmtree(case_dir, ignore_errors=True)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindir", required=True,
                        help="the directory of moe-run and moe-reference")
    parser.add_argument("--pipeline", default="cuda-emu",
                        help="moe-run's --pipeline (cpu, cuda-emu, cuda, ...)")
    parser.add_argument("--run-arg", dest="run_args", action="append",
                        default=[], metavar="OPTION",
                        help="one more moe-run option (repeatable; an "
                             "empty one is ignored), such as --reference")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds a step may take before it fails")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the cases under DIR (kept on failure)")
    parser.add_argument("--list", action="store_true",
                        help="print the drawn cases without running them")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    cases = []
    for i in range(args.count):
        spec, tokens = draw_case(rng, args.pipeline)
        env = draw_env(rng, args.pipeline)
        cases.append((i, rng.randrange(1 << 30), spec, tokens, env))
    if args.list:
        for i, seed, spec, tokens, env in cases:
            print(f"case {i}: {spec_string(spec)} seed={seed} "
                  f"tokens={','.join(map(str, tokens))} "
                  + " ".join(f"{k}={v}" for k, v in env.items()))
        return 0

    workdir = args.keep or tempfile.mkdtemp(prefix="fuzz-layers.")
    os.makedirs(workdir, exist_ok=True)
    failed = declined = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_case, *case, args, workdir)
                   for case in cases]
        for (i, seed, spec, tokens, env), future in zip(cases, futures):
            result = future.result()
            if result is None:
                continue
            kind, lines = result
            if kind == "declined":
                declined += 1
                print(f"declined case {i}: {' '.join(lines)}")
                continue
            failed += 1
            print(f"FAIL case {i}: {spec_string(spec)} "
                  f"tokens={','.join(map(str, tokens))}")
            for line in lines:
                print("  " + line)
    passed = args.count - failed - declined
    print(f"fuzz-layers: {args.count} cases on {args.pipeline}, {passed} "
          f"passed, {declined} declined by the reference, {failed} failed")
    if not failed and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
