"""Checks the co-activation counts of a statistics snapshot against the f64
reference: the sum over a case's sets of the coactivation.json files that
`moe-reference emit` wrote (the pairs of each token's selection before any
drop), exactly.

usage: check_coactivation.py SNAPSHOT.json CASE_DIR
"""
import glob
import json
import os
import sys


def main():
    snapshot_path, case_dir = sys.argv[1:3]
    (layer,) = json.load(open(snapshot_path))["layers"]
    experts = layer["num_experts"]
    want = {}
    sets = sorted(glob.glob(os.path.join(case_dir, "set*", "coactivation.json")))
    assert sets, "no coactivation.json in " + case_dir
    for path in sets:
        ref = json.load(open(path))
        assert ref["num_experts"] == experts, (path, ref["num_experts"])
        for i, j, count in ref["coactivation"]:
            want[(i, j)] = want.get((i, j), 0) + count
    got = {}
    for i, j, count in layer.get("coactivation", []):
        assert 0 <= i < j < experts and count > 0, (i, j, count)
        assert (i, j) not in got, ("repeated pair", i, j)
        got[(i, j)] = count
    if "coactivation" not in layer:
        sys.exit("the snapshot has no coactivation list")
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))[:8]
        sys.exit("coactivation differs from the reference: %d pairs against "
                 "%d, first differences (pair, count): %s"
                 % (len(got), len(want), diff))
    print("coactivation: %d sets, %d pairs, %d co-activations, as the "
          "reference" % (len(sets), len(got), sum(got.values())))


main()
