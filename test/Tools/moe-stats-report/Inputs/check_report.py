#!/usr/bin/env python3
# Checks a page written by moe-stats-report against the statistics it was
# made from, recomputing everything from the counters (the metric
# definitions of docs/monitoring.md), independently of the tool:
#
# - the page is well-formed XML;
# - one heatmap cell per expert of every layer, carrying the assignments of
#   the last snapshot;
# - one imbalance polyline per layer whose data-values are the max/mean load
#   ratios of the intervals between snapshots (or, for a single snapshot, no
#   polyline and a sentence asking for a history);
# - drop bars equal to the last snapshot's dropped counts, "no drops" for a
#   layer without any;
# - the summary table's metrics;
# - layer names come back unchanged from attributes and text (escaping).
#
#   check_report.py REPORT.html INPUT...  ->  "OK: L layers, S snapshots"

import json
import math
import sys
import xml.etree.ElementTree as ET

errors = []


def check(condition, message):
    if not condition:
        errors.append(message)


def load_snapshots(paths):
    snapshots = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            snapshots.append(json.loads(text))
        except json.JSONDecodeError:
            snapshots += [json.loads(l) for l in text.splitlines() if l.strip()]
    return snapshots


def local(tag):
    return tag.rsplit("}", 1)[-1]


def max_ratio(loads):
    total = sum(loads)
    return 0.0 if total == 0 else max(loads) / (total / len(loads))


def metrics(layer):
    loads = layer["assignments"]
    e = len(loads)
    a = sum(loads)
    if a == 0:
        return [0.0] * 6
    mean = a / e
    sd = math.sqrt(sum((x - mean) ** 2 for x in loads) / e)
    h = -sum(x / a * math.log(x / a) for x in loads if x)
    return [
        a / layer["tokens"],
        max(loads) / mean,
        sd / mean,
        1.0 if e == 1 else h / math.log(e),
        a * a / (e * sum(x * x for x in loads)),
        sum(layer["dropped"]) / a,
    ]


def close(text, value):
    return abs(float(text) - value) <= 5.1e-5


def interval_ratios(snapshots, name):
    previous = None
    ratios = []
    for snapshot in snapshots:
        layer = {l["function"]: l for l in snapshot["layers"]}.get(name)
        now = layer["assignments"] if layer else None
        if now is None:
            ratios.append(0.0)
            continue
        before = previous or [0] * len(now)
        ratios.append(max_ratio([x - y for x, y in zip(now, before)]))
        previous = now
    return ratios


def main():
    html, inputs = sys.argv[1], sys.argv[2:]
    snapshots = load_snapshots(inputs)
    last = snapshots[-1]["layers"]
    with open(html, encoding="utf-8") as f:
        raw = f.read()
    elements = list(ET.fromstring(raw).iter())

    def with_attr(tag, attr):
        return [e for e in elements if local(e.tag) == tag and attr in e.attrib]

    # Heatmap cells.
    cells = with_attr("rect", "data-assignments")
    check(len(cells) == sum(l["num_experts"] for l in last),
          f"{len(cells)} heatmap cells")
    by_name = {l["function"]: l for l in last}
    seen = set()
    for cell in cells:
        name, expert = cell.get("data-layer"), int(cell.get("data-expert"))
        seen.add((name, expert))
        layer = by_name.get(name)
        check(layer is not None, f"cell of unknown layer {name!r}")
        if layer is None:
            continue
        check(int(cell.get("data-assignments")) == layer["assignments"][expert],
              f"cell {name!r}/{expert}: {cell.get('data-assignments')}")
        titles = [c for c in cell if local(c.tag) == "title"]
        check(len(titles) == 1 and titles[0].text.startswith(
            f"{name}, expert {expert}: {layer['assignments'][expert]} "
            f"assignments, {layer['dropped'][expert]} dropped"),
              f"cell {name!r}/{expert}: title")
    check(len(seen) == len(cells), "duplicate heatmap cells")

    # Imbalance over time.
    lines = with_attr("polyline", "data-layer")
    if len(snapshots) < 2:
        check(not lines, "imbalance chart for a single snapshot")
        check("needs a history" in raw, "no sentence asking for a history")
    else:
        check(len(lines) == len(last), f"{len(lines)} polylines")
        for line in lines:
            name = line.get("data-layer")
            values = line.get("data-values").split()
            expected = interval_ratios(snapshots, name)
            check(len(values) == len(expected) and
                  all(close(v, r) for v, r in zip(values, expected)),
                  f"polyline {name!r}: {values} != {expected}")
            check(len(line.get("points").split()) == len(expected),
                  f"polyline {name!r}: points")

    # Drops.
    bars = with_attr("rect", "data-dropped")
    no_drops = [e for e in elements if e.get("class") == "no-drops"]
    layers_without = [l for l in last if not sum(l["dropped"])]
    check(len(no_drops) == len(layers_without), f"{len(no_drops)} 'no drops'")
    check(all(e.text == "no drops" for e in no_drops), "'no drops' text")
    check(len(bars) == sum(l["num_experts"] for l in last
                           if sum(l["dropped"])), f"{len(bars)} drop bars")
    for bar in bars:
        layer = by_name.get(bar.get("data-layer"))
        check(layer is not None, f"bar of unknown layer {bar.get('data-layer')!r}")
        if layer is None:
            continue
        expert = int(bar.get("data-expert"))
        check(int(bar.get("data-dropped")) == layer["dropped"][expert],
              f"bar {layer['function']!r}/{expert}")

    # Summary table: calls, tokens and the metrics of the last snapshot.
    rows = [e for e in elements if local(e.tag) == "tr" and "data-layer" in
            e.attrib]
    check([r.get("data-layer") for r in rows] == [l["function"] for l in last],
          "summary rows")
    for row in rows:
        layer = by_name.get(row.get("data-layer"))
        if layer is None:
            continue  # reported with the summary rows above
        cells = [c.text for c in row]
        check(cells[:4] == [layer["function"], str(layer["num_experts"]),
                            str(layer["calls"]), str(layer["tokens"])],
              f"summary {cells[:4]}")
        check(all(close(t, v) for t, v in zip(cells[4:], metrics(layer))) and
              len(cells) == 10, f"summary metrics {cells[4:]}")

    # Names with markup characters are escaped, not written raw.
    for layer in last:
        name = layer["function"]
        if any(c in name for c in "<&>\""):
            check(name not in raw, f"raw name {name!r} in the page")

    if errors:
        sys.exit("check_report: " + "\n".join(errors))
    print(f"OK: {len(last)} layers, {len(snapshots)} snapshots")


main()
