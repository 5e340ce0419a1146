"""Checks a moe-run statistics snapshot and history against the identities
that hold for any top-k router, recomputing every derived metric.

usage: check_stats.py SNAPSHOT.json HISTORY.jsonl K TOKENS CALLS
"""
import json
import math
import sys


def metrics(layer):
    loads = layer["assignments"]
    experts = len(loads)
    total = sum(loads)
    mean = total / experts
    ratio = max(loads) / mean
    cv = math.sqrt(sum((x - mean) ** 2 for x in loads) / experts) / mean
    entropy = -sum(x / total * math.log(x / total) for x in loads if x > 0)
    return {
        "mean_experts_per_token": total / layer["tokens"],
        "mean_load": mean,
        "max_load": max(loads),
        "max_load_ratio": ratio,
        "load_cv": cv,
        "normalized_entropy": entropy / math.log(experts),
        "jain_fairness": total * total / (experts * sum(x * x for x in loads)),
        "drop_rate": sum(layer["dropped"]) / total,
    }


def main():
    snapshot_path, history_path, k, tokens, calls = sys.argv[1:6]
    k, tokens, calls = int(k), int(tokens), int(calls)
    snapshot = json.load(open(snapshot_path))
    assert snapshot["version"] == 1, snapshot["version"]
    (layer,) = snapshot["layers"]
    experts = layer["num_experts"]
    assert layer["calls"] == calls and layer["tokens"] == tokens, layer
    assert len(layer["assignments"]) == experts == len(layer["dropped"])
    assert sum(layer["assignments"]) == k * tokens
    assert all(0 <= d <= a for a, d in zip(layer["assignments"],
                                           layer["dropped"]))
    assert sum(layer["dropped"]) > 0, "the case should drop assignments"
    for name, value in metrics(layer).items():
        assert abs(layer[name] - value) <= 1e-6 * max(1.0, abs(value)), \
            (name, layer[name], value)

    # Every token that chose expert i chose k - 1 others with it.
    pair_sums = [0] * experts
    for i, j, count in layer["coactivation"]:
        assert 0 <= i < j < experts and count > 0
        pair_sums[i] += count
        pair_sums[j] += count
    assert pair_sums == [(k - 1) * a for a in layer["assignments"]], pair_sums
    assert sum(c for _, _, c in layer["coactivation"]) == \
        tokens * k * (k - 1) // 2

    # One cumulative snapshot per call; the last is the final snapshot.
    history = [json.loads(line) for line in open(history_path)]
    assert len(history) == calls, len(history)
    previous = None
    for entry in history:
        current = entry["layers"][0] if entry["layers"] else None
        if previous and current:
            assert all(b >= a for a, b in zip(previous["assignments"],
                                              current["assignments"]))
            assert current["calls"] == previous["calls"] + 1
        previous = current or previous
    assert history[-1] == snapshot, "last history entry != snapshot"
    print("OK: %d experts, %d pairs" % (experts, len(layer["coactivation"])))


main()
