#!/usr/bin/env python3
"""Mutation fuzzing of the checkpoint readers: a damaged checkpoint must get
a diagnostic, never a crash, a hang or a half-written output.

Writes small checkpoints of every supported family with moe-gen-checkpoint
(one sharded, with an index; f32, f16 and bf16 weights), then, for each
case, copies one of them and damages one of its files:

  - config.json or model.safetensors.index.json: values of the JSON
    dropped, duplicated, or replaced by near misses (a number off by one,
    negated, doubled, huge; another type, dtype, array or object), or,
    one time in five, tokens of the text dropped;
  - a .safetensors file: the same in its JSON header (its length fixed up),
    or a wrong header length, a truncated file, or random header bytes.

It runs moe-import and moe-checkpoint-info on the copy. A case fails when
either ends by a signal, does not exit within the timeout, exits non-zero
without an `error:` line or with a status other than 1, or when moe-import
fails but leaves its output file, or succeeds with an output that moe-opt
does not accept. The same seed draws the same cases.

  fuzz-import.py --bindir build/bin --seed 1 --count 100 [--keep DIR]
"""

import argparse
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile

# One checkpoint per family, all small: moe-gen-checkpoint's options.
# DeepSeek-V3 and MiniMax-M2 are block-scaled FP8, as they are released,
# Mixtral FP8 scaled per tensor, as AutoFP8 writes it, and Qwen3 and
# GLM-4.5 FP8 as llm-compressor writes it (compressed-tensors), GPT-OSS
# MXFP4.
CHECKPOINTS = {
    "mixtral": ["--experts", "4", "--inner", "24", "--fp8-per-tensor"],
    "minimax_m2": ["--experts", "8", "--inner", "24", "--dtype", "bf16",
                   "--fp8-block", "8,128"],
    "qwen3_moe": ["--experts", "4", "--inner", "24", "--dtype", "bf16",
                  "--fp8-compressed", "channel"],
    "qwen2_moe": ["--experts", "4", "--inner", "24", "--shared-inner", "32"],
    "qwen3_vl_moe": ["--experts", "8", "--inner", "24", "--layers", "2",
                     "--dtype", "bf16"],
    "qwen3_5_moe": ["--experts", "8", "--inner", "24", "--shared-inner", "16",
                    "--dtype", "bf16", "--fp8-block", "16,16"],
    "qwen3_next": ["--experts", "16", "--top-k", "4", "--inner", "8",
                   "--shared-inner", "16", "--dtype", "bf16"],
    "olmoe": ["--experts", "8", "--inner", "24", "--dtype", "bf16",
              "--int-compressed", "8", "--int-group", "8", "--int-format",
              "int-quantized"],
    "flex_olmo": ["--experts", "7", "--inner", "24", "--dtype", "bf16"],
    "jamba": ["--experts", "8", "--inner", "24", "--layers", "4",
              "--dtype", "bf16", "--fp8-per-tensor"],
    "minimax": ["--experts", "8", "--inner", "24", "--shards", "2",
                "--fused-experts", "1"],
    "granitemoe": ["--experts", "4", "--inner", "24", "--dtype", "f16"],
    "granitemoeshared": ["--experts", "4", "--inner", "24", "--shared-inner",
                         "16"],
    "granitemoehybrid": ["--experts", "8", "--inner", "24", "--shared-inner",
                         "32", "--dtype", "bf16", "--fp8-compressed",
                         "channel"],
    "deepseek_v2": ["--experts", "8", "--inner", "24", "--shards", "2"],
    "deepseek_v3": ["--experts", "8", "--inner", "24", "--dtype", "bf16",
                    "--fp8-block", "16,16"],
    # OLMoE in W8A8 (int8 weights, one an element), Kimi K2 in asymmetric
    # W4A16 (zero points), DeepSeek-V3.2 in its
    # release's FP8 blocks, GLM-5 and GLM-4.7-Flash with mlp_layer_types.
    "kimi_k2": ["--experts", "8", "--inner", "24", "--dtype", "bf16",
                "--int-compressed", "4", "--int-group", "16",
                "--int-asymmetric"],
    "deepseek_v32": ["--experts", "16", "--inner", "24", "--layers", "3",
                     "--groups", "8", "--topk-group", "4", "--dtype", "bf16",
                     "--fp8-block", "8,8"],
    "glm_moe_dsa": ["--experts", "8", "--inner", "24", "--layers", "4",
                    "--first-dense", "3", "--dtype", "bf16"],
    "glm4_moe_lite": ["--experts", "8", "--inner", "24", "--layers", "2"],
    "dots1": ["--experts", "8", "--inner", "24", "--groups", "1",
              "--topk-group", "1", "--first-dense", "0"],
    "glm4_moe": ["--experts", "8", "--inner", "24", "--dtype", "bf16",
                 "--fp8-compressed", "group:16"],
    "glm4v_moe": ["--experts", "8", "--inner", "24", "--layers", "2",
                  "--dtype", "bf16", "--fp8-block", "8,8"],
    "ernie4_5_moe": ["--experts", "8", "--inner", "24", "--layers", "3",
                     "--shared-experts", "2", "--dtype", "bf16",
                     "--fp8-compressed", "block:8,16"],
    "lfm2_moe": ["--experts", "8", "--inner", "24", "--layers", "3",
                 "--dtype", "bf16"],
    "llama4": ["--experts", "4", "--inner", "24", "--layers", "4",
               "--interleave-step", "2", "--dtype", "bf16"],
    "dbrx": ["--experts", "8", "--top-k", "4", "--inner", "24",
             "--dtype", "bf16"],
    "gpt_oss": ["--experts", "8", "--top-k", "4", "--hidden", "32",
                "--inner", "32", "--dtype", "bf16", "--mxfp4"],
}

JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|'
                        r'true|false|null|\S')
REPLACEMENTS = [0, -1, 1, 2, 3, 7, 8, 4096, 1.5, -0.0, 1e308,
                99999999999999999999, 18446744073709551615, None, True,
                False, "", "F32", "F16", "BF16", "I64", "F8_E4M3", "silu",
                [], [0], [0, 0], [1, 2, 3], {}]


def json_slots(value, slots):
    """Every (container, key) under `value`, depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        slots.append((value, key))
        if isinstance(item, (dict, list)):
            json_slots(item, slots)
    return slots


def mutate_value(value, rng):
    """A near miss of `value`: another number, type or size."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return rng.choice(REPLACEMENTS)
    return rng.choice([value + 1, value - 1, -value, value * 2, value // 2,
                       0, 2**31, 2**63, rng.choice(REPLACEMENTS)])


def mutate_json(text, rng):
    """Mostly valid JSON with one to three values changed, dropped or
    duplicated; one time in five, tokens of the text itself instead."""
    if rng.random() < 0.2:
        for _ in range(rng.randint(1, 3)):
            tokens = [(m.start(), m.end()) for m in JSON_TOKEN.finditer(text)]
            if not tokens:
                break
            start, end = rng.choice(tokens)
            text = text[:start] + text[end:]
        return text
    document = json.loads(text)
    for _ in range(rng.randint(1, 3)):
        slots = json_slots(document, [])
        if not slots:
            break
        container, key = rng.choice(slots)
        kind = rng.random()
        if kind < 0.2:
            del container[key]
        elif kind < 0.3 and isinstance(container, list):
            container.insert(key, container[key])
        elif kind < 0.4 and isinstance(container, dict):
            container[key + "_"] = container[key]
        else:
            container[key] = mutate_value(container[key], rng)
    return json.dumps(document, indent=rng.choice([None, 2]))


def mutate_safetensors(data, rng):
    (length,) = struct.unpack("<Q", data[:8])
    header, rest = data[8:8 + length], data[8 + length:]
    kind = rng.random()
    if kind < 0.55:
        mutated = mutate_json(header.decode("utf-8"), rng).encode("utf-8")
        return struct.pack("<Q", len(mutated)) + mutated + rest
    if kind < 0.7:
        wrong = rng.choice([0, 1, 7, length - 1, length + 1, len(data),
                            2**32, 2**63, 2**64 - 1])
        return struct.pack("<Q", wrong) + data[8:]
    if kind < 0.85:
        return data[:rng.randrange(len(data))]
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        damaged[rng.randrange(8 + length)] = rng.randrange(256)
    return bytes(damaged)


def run(cmd, timeout):
    """(exit status or None on a timeout, output)"""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True,
                              errors="replace", timeout=timeout)
        return done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        return None, ""


def check(cmd, timeout, output=None, moe_opt=None):
    """The reasons `cmd` failed the case (empty when it passed)."""
    status, text = run(cmd, timeout)
    if status is None:
        return [f"no exit in {timeout} s: {' '.join(cmd)}"]
    if status < 0:
        return [f"signal {-status}: {' '.join(cmd)}\n{text[-1500:]}"]
    if status != 0 and (status != 1 or "error:" not in text):
        return [f"exit {status} without an error line: {' '.join(cmd)}\n"
                f"{text[-1500:]}"]
    if output is None:
        return []
    if status != 0 and os.path.exists(output):
        return [f"failed and left {output}: {' '.join(cmd)}"]
    if status == 0:
        verify = [moe_opt, output, "-o", os.devnull]
        status, text = run(verify, timeout)
        if status != 0:
            return [f"output rejected: {' '.join(verify)}\n{text[-1500:]}"]
    return []


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindir", required=True,
                        help="the directory of moe-import, "
                             "moe-checkpoint-info, moe-gen-checkpoint and "
                             "moe-opt")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--timeout", type=int, default=60)
    parser.add_argument("--keep", metavar="DIR",
                        help="copy the checkpoints of failing cases here")
    args = parser.parse_args()
    tool = {name: os.path.join(args.bindir, name)
            for name in ("moe-import", "moe-checkpoint-info",
                         "moe-gen-checkpoint", "moe-opt")}

    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory() as work:
        for family, options in CHECKPOINTS.items():
            subprocess.run([tool["moe-gen-checkpoint"], "--family", family,
                            "--out", os.path.join(work, family), "--seed",
                            str(args.seed)] +
                           ([] if "--hidden" in options else ["--hidden", "16"])
                           + options,
                           check=True)
        for case in range(args.count):
            family = rng.choice(sorted(CHECKPOINTS))
            model = os.path.join(work, f"case-{case}")
            shutil.copytree(os.path.join(work, family), model)
            name = rng.choice(sorted(os.listdir(model)))
            path = os.path.join(model, name)
            with open(path, "rb") as f:
                data = f.read()
            if name.endswith(".json"):
                data = mutate_json(data.decode("utf-8"), rng).encode("utf-8")
            else:
                data = mutate_safetensors(data, rng)
            with open(path, "wb") as f:
                f.write(data)

            output = os.path.join(model, "out.mlir")
            reasons = check([tool["moe-import"], "--model", model, "-o",
                                   output], args.timeout, output,
                            tool["moe-opt"])
            reasons += check([tool["moe-checkpoint-info"], model],
                             args.timeout)
            if reasons:
                failures += 1
                print(f"case {case} ({family}, {name} damaged):",
                      file=sys.stderr)
                for reason in reasons:
                    print(f"  {reason}", file=sys.stderr)
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copytree(model, os.path.join(args.keep,
                                                        f"case-{case}"))
            shutil.rmtree(model)
    print(f"{args.count} damaged checkpoints, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
