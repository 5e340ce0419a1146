#!/usr/bin/env python3
# Checks the safetensors files of a model directory against the stricter
# rules of the reference reader (the Rust `safetensors` crate), independently
# of our own reader: tensors back to back in the data section with no hole
# or overlap, ending at the end of the file; sizes that match dtype and
# shape; data aligned to 8 bytes and every tensor to its element size. With
# an index, the weight map must list exactly the tensors of the shards, and
# metadata.total_size must be the sum of their sizes.
#
#   check_layout.py MODEL_DIR  ->  "ok: N tensors in M files, B bytes"

import json
import os
import struct
import sys

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4}


def fail(message):
    sys.exit("check_layout: " + message)


def check_file(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    if (8 + n) % 8:
        fail(f"{path}: data section starts at {8 + n}, not 8-aligned")
    entries = sorted(
        (v["data_offsets"][0], v["data_offsets"][1], k, v)
        for k, v in header.items()
        if k != "__metadata__"
    )
    end = 0
    for begin, stop, name, info in entries:
        size = SIZES[info["dtype"]]
        count = 1
        for d in info["shape"]:
            count *= d
        if begin != end:
            fail(f"{path}: {name} starts at {begin}, expected {end}")
        if begin % size:
            fail(f"{path}: {name} at {begin} is not {size}-aligned")
        if stop - begin != count * size:
            fail(f"{path}: {name} spans {stop - begin} bytes, expected {count * size}")
        end = stop
    if 8 + n + end != len(data):
        fail(f"{path}: data ends at {8 + n + end}, file size {len(data)}")
    return {k: v for k, v in header.items() if k != "__metadata__"}, end


def main(model_dir):
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if not os.path.exists(index_path):
        tensors, size = check_file(os.path.join(model_dir, "model.safetensors"))
        print(f"ok: {len(tensors)} tensors in 1 files, {size} bytes")
        return
    with open(index_path) as f:
        index = json.load(f)
    weight_map = index["weight_map"]
    found, total = {}, 0
    for shard in sorted(set(weight_map.values())):
        tensors, size = check_file(os.path.join(model_dir, shard))
        total += size
        for name in tensors:
            found[name] = shard
    if found != weight_map:
        fail("the weight map does not list exactly the tensors of the shards")
    if index["metadata"]["total_size"] != total:
        fail(f"total_size {index['metadata']['total_size']}, expected {total}")
    files = len(set(weight_map.values()))
    print(f"ok: {len(found)} tensors in {files} files, {total} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
