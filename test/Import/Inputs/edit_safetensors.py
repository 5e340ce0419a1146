#!/usr/bin/env python3
# Writes a modified copy of a safetensors file, to make broken checkpoints
# for the error tests of moe-import and of the runtime's loading:
#
#   edit_safetensors.py IN OUT --drop NAME
#   edit_safetensors.py IN OUT --retype NAME DTYPE   (F32, F16, BF16, I32)
#   edit_safetensors.py IN OUT --set NAME INDEX VALUE (element INDEX, flat;
#                                                      F32, F16, BF16, I32)
#   edit_safetensors.py IN OUT --set-byte NAME INDEX BYTE (an F8_E4M3 code,
#                                                          e.g. 0x7f)
#   edit_safetensors.py IN OUT --take PREFIX OTHER (the tensors whose names
#       start with PREFIX replaced by those of safetensors file OTHER)
#   edit_safetensors.py IN OUT --state NAME KEY JSON (U8 tensor NAME, the
#       bytes of a JSON object as bitsandbytes stores its states, with KEY
#       set to the JSON value given, or removed by "null"; or the whole text
#       replaced when KEY is "-")
#
# The copy is laid out like the original writer does (header padded to 8
# bytes, tensors back to back in the original order), so only the edit
# differs.

import json
import struct
import sys


def decode(dtype, raw):
    if dtype == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw))
    if dtype == "F16":
        return list(struct.unpack("<%de" % (len(raw) // 2), raw))
    if dtype == "BF16":
        halves = struct.unpack("<%dH" % (len(raw) // 2), raw)
        return [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in halves]
    if dtype == "I32":
        return list(struct.unpack("<%di" % (len(raw) // 4), raw))
    sys.exit("edit_safetensors: cannot convert " + dtype)


def encode(dtype, values):
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values)
    if dtype == "F16":
        return struct.pack("<%de" % len(values), *values)
    if dtype == "BF16":
        words = [struct.unpack("<I", struct.pack("<f", v))[0] >> 16 for v in values]
        return struct.pack("<%dH" % len(words), *words)
    if dtype == "I32":
        return struct.pack("<%di" % len(values), *(int(v) for v in values))
    sys.exit("edit_safetensors: cannot convert to " + dtype)


def main(argv):
    src, dst, op, name = argv[1], argv[2], argv[3], argv[4]
    with open(src, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    body = data[8 + n :]
    if op == "--take":
        return take(header, body, name, argv[5], dst)
    if name not in header:
        sys.exit("edit_safetensors: no tensor " + name + " in " + src)
    entries = sorted(
        ((v["data_offsets"][0], k) for k, v in header.items() if k != "__metadata__")
    )
    out_header = {}
    if "__metadata__" in header:
        out_header["__metadata__"] = header["__metadata__"]
    chunks, offset = [], 0
    for begin, key in entries:
        info = dict(header[key])
        raw = body[info["data_offsets"][0] : info["data_offsets"][1]]
        if key == name and op == "--drop":
            continue
        if key == name and op == "--retype":
            raw = encode(argv[5], decode(info["dtype"], raw))
            info["dtype"] = argv[5]
        if key == name and op == "--set":
            values = decode(info["dtype"], raw)
            values[int(argv[5])] = float(argv[6])
            raw = encode(info["dtype"], values)
        if key == name and op == "--state":
            if argv[5] == "-":
                raw = argv[6].encode("utf-8")
            else:
                state = json.loads(raw.decode("utf-8"))
                value = json.loads(argv[6])
                if value is None:
                    state.pop(argv[5], None)
                else:
                    state[argv[5]] = value
                raw = json.dumps(state).encode("utf-8")
            info["shape"] = [len(raw)]
        if key == name and op == "--set-byte":
            edited = bytearray(raw)
            edited[int(argv[5])] = int(argv[6], 0)
            raw = bytes(edited)
        info["data_offsets"] = [offset, offset + len(raw)]
        offset += len(raw)
        out_header[key] = info
        chunks.append(raw)
    write(dst, out_header, chunks)


def read(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n].decode("utf-8")), data[8 + n :]


def write(dst, header, chunks):
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def take(header, body, prefix, other, dst):
    other_header, other_body = read(other)
    out_header, chunks, offset = {}, [], 0
    sources = [(header, body, lambda k: not k.startswith(prefix)),
               (other_header, other_body, lambda k: k.startswith(prefix))]
    for h, b, keep in sources:
        for begin, key in sorted((v["data_offsets"][0], k)
                                 for k, v in h.items() if k != "__metadata__"):
            if not keep(key):
                continue
            info = dict(h[key])
            raw = b[info["data_offsets"][0] : info["data_offsets"][1]]
            info["data_offsets"] = [offset, offset + len(raw)]
            offset += len(raw)
            out_header[key] = info
            chunks.append(raw)
    if not any(k.startswith(prefix) for k in out_header):
        sys.exit("edit_safetensors: no tensor of " + other + " starts with " + prefix)
    write(dst, out_header, chunks)


if __name__ == "__main__":
    main(sys.argv)
