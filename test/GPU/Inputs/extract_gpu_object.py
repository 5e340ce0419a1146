#!/usr/bin/env python3
"""Writes the device code of the one #gpu.object in an MLIR file.

usage: extract_gpu_object.py IN.mlir OUT [BINARY]

IN is the output of gpu-module-to-binary: a gpu.binary holding exactly one
object (or, with BINARY, the gpu.binary of that name among several), whose payload is `assembly = "..."` (PTX) or `bin = "..."` (cubin).
MLIR prints the payload as a string literal in which a backslash appears
as two backslashes, and `"` and every byte outside printable ASCII as a
backslash and two hex digits; this undoes that escaping and writes the raw
bytes to OUT.
"""

import re
import sys

OBJECT = re.compile(rb'#gpu\.object<.*?(?:assembly|bin) = "((?:[^"\\]|\\.)*)"',
                    re.S)


def unescape(payload):
    out = bytearray()
    i = 0
    while i < len(payload):
        if payload[i:i + 1] != b"\\":
            out.append(payload[i])
            i += 1
        elif payload[i + 1:i + 2] == b"\\":
            out.append(ord("\\"))
            i += 2
        else:
            out.append(int(payload[i + 1:i + 3], 16))
            i += 3
    return bytes(out)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: extract_gpu_object.py IN.mlir OUT [BINARY]")
    with open(sys.argv[1], "rb") as f:
        text = f.read()
    if len(sys.argv) == 4:
        binaries = re.split(rb"gpu\.binary @", text)[1:]
        named = [b for b in binaries
                 if b.startswith(sys.argv[3].encode() + b" ")]
        if len(named) != 1:
            sys.exit("%s: expected one gpu.binary @%s, found %d"
                     % (sys.argv[1], sys.argv[3], len(named)))
        text = named[0]
    objects = OBJECT.findall(text)
    if len(objects) != 1:
        sys.exit("%s: expected one #gpu.object with an assembly or bin "
                 "payload, found %d" % (sys.argv[1], len(objects)))
    with open(sys.argv[2], "wb") as f:
        f.write(unescape(objects[0]))


if __name__ == "__main__":
    main()
