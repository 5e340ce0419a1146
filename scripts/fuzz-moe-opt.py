#!/usr/bin/env python3
"""Mutation fuzzing of moe-opt: bad input must give a diagnostic, not a crash.

Takes .mlir files, applies random token-level mutations (drop, duplicate,
swap, replace numbers and keywords), runs moe-opt on each mutant (parsing
and verification, then each --pass option in turn; --moe-decompose when
none is given), and fails if any run ends by a signal or a timeout, or
exits non-zero without printing an `error:` diagnostic.

  fuzz-moe-opt.py --moe-opt build/bin/moe-opt --seed 1 --count 200 \
      [--pass=--moe-cpu-pipeline ...] FILES...
"""

import argparse
import random
import re
import subprocess
import sys
import tempfile

TOKEN = re.compile(r"%[\w#]+|@\w+|#moe\.\w+|[A-Za-z_][\w.]*|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|\S")
NUMBERS = ["0", "-1", "1", "2", "3", "7", "8", "64", "999999999999", "0.0",
           "-2.5", "1.5", "?"]
KEYWORDS = ["softmax", "sigmoid", "top_k", "top_p", "threshold",
            "grouped_top_k", "expert_choice", "gated", "mlp", "lora",
            "lora_gated", "k", "groups", "topk_group", "tau", "count",
            "factor", "true", "false", "f32", "bf16", "i32", "i64",
            "tensor", "x", "moe.layer", "moe.route", "moe.dispatch",
            "bitsandbytes", "stored", "transposed", "stacked"]


def split_functions(text):
    parts = re.split(r"^// -----$", text, flags=re.M)
    return [p for p in parts if "func.func" in p]


def mutate(text, rng):
    tokens = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
    if not tokens:
        return text
    for _ in range(rng.randint(1, 3)):
        start, end = rng.choice(tokens)
        kind = rng.random()
        piece = text[start:end]
        if kind < 0.3:
            text = text[:start] + text[end:]
        elif kind < 0.5:
            text = text[:start] + piece + " " + piece + text[end:]
        elif kind < 0.75:
            text = text[:start] + rng.choice(NUMBERS) + text[end:]
        else:
            text = text[:start] + rng.choice(KEYWORDS) + text[end:]
        tokens = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
        if not tokens:
            break
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moe-opt", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--pass", dest="passes", action="append",
                        metavar="OPTION",
                        help="a moe-opt option to run each mutant through "
                             "(repeatable; default --moe-decompose)")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    passes = args.passes or ["--moe-decompose"]
    rng = random.Random(args.seed)
    corpus = []
    for path in args.files:
        with open(path) as f:
            corpus.extend(split_functions(f.read()))
    failures = 0
    with tempfile.NamedTemporaryFile("w", suffix=".mlir") as tmp:
        for i in range(args.count):
            mutant = mutate(rng.choice(corpus), rng)
            tmp.seek(0)
            tmp.truncate()
            tmp.write(mutant)
            tmp.flush()
            for extra in [[]] + [p.split() for p in passes]:
                try:
                    run = subprocess.run([args.moe_opt, tmp.name] + extra,
                                         capture_output=True, text=True,
                                         timeout=60)
                except subprocess.TimeoutExpired:
                    failures += 1
                    print(f"mutant {i} {extra}: no exit in 60 s\n"
                          f"--- input ---\n{mutant}", file=sys.stderr)
                    continue
                if run.returncode < 0 or (run.returncode != 0 and
                                          "error:" not in run.stderr):
                    failures += 1
                    print(f"mutant {i} {extra}: exit {run.returncode}\n"
                          f"{run.stderr[-2000:]}\n--- input ---\n{mutant}",
                          file=sys.stderr)
    print(f"{args.count} mutants, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
