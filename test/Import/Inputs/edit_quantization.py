#!/usr/bin/env python3
"""Copies a checkpoint's config.json with its quantization_config edited.

usage: edit_quantization.py SRC_DIR DST_DIR STATEMENT

STATEMENT is Python run with `q` bound to the quantization_config and `w`
to the weights of its config group "group_0" (compressed-tensors), or None.
The checkpoint's model.safetensors is copied along.
"""
import json
import os
import shutil
import sys

src, dst, statement = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
with open(os.path.join(src, "config.json")) as f:
    config = json.load(f)
q = config["quantization_config"]
w = q.get("config_groups", {}).get("group_0", {}).get("weights")
exec(statement, {"q": q, "w": w, "config": config})
with open(os.path.join(dst, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
shutil.copy(os.path.join(src, "model.safetensors"), dst)
