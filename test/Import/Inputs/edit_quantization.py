#!/usr/bin/env python3
"""Copies a checkpoint's config.json with its quantization_config edited.

usage: edit_quantization.py SRC_DIR DST_DIR STATEMENT

STATEMENT is Python run with `q` bound to the quantization_config and `w`
to the weights of its config group "group_0" (compressed-tensors), or None,
and `hf` to the checkpoint's hf_quant_config.json, or None; setting `hf`
to None leaves that file out of DST_DIR. The checkpoint's
model.safetensors is copied along.
"""
import json
import os
import shutil
import sys

src, dst, statement = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
with open(os.path.join(src, "config.json")) as f:
    config = json.load(f)
q = config.get("quantization_config", {})
w = q.get("config_groups", {}).get("group_0", {}).get("weights")
hf = None
if os.path.exists(os.path.join(src, "hf_quant_config.json")):
    with open(os.path.join(src, "hf_quant_config.json")) as f:
        hf = json.load(f)
scope = {"q": q, "w": w, "config": config, "hf": hf}
exec(statement, scope)
with open(os.path.join(dst, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
if scope["hf"] is not None:
    with open(os.path.join(dst, "hf_quant_config.json"), "w") as f:
        json.dump(scope["hf"], f, indent=2)
shutil.copy(os.path.join(src, "model.safetensors"), dst)
