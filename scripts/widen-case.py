#!/usr/bin/env python3
"""Rewrites a bf16 case of `moe-reference emit` as an f32 or f16 case.

  widen-case.py SRC DST --dtype f32|f16
  widen-case.py SRC DST --same-outputs

DST gets SRC's case with every bf16 tensor type of case.mlir and every
bf16 input (set<i>/arg<k>.npy) converted to DTYPE, the references and the
other files as they are, and moe-run.args pointing at DST. To f32 the
conversion is exact: `moe-run --narrow-to-bf16` on DST rounds the inputs
back to the very bf16 values of SRC, so it computes SRC's bf16 layer, and
its outputs, compared with `moe-reference compare --dir DST --tol 1e-2`,
meet the bf16 reference with no token routed differently by the rounding
(an f32 case drawn at random and narrowed could route a token whose best
logits are close otherwise than its f32 reference). To f16 a bf16 value
is exact unless it is tiny (below 2^-17, where f16's subnormals have
fewer bits) and rounds to nearest even there; a value beyond f16's range
is an error.

With --same-outputs, checks that each out<k>.npy that moe-run wrote in DST
holds the same values as SRC's (widened: bitwise the same bf16 results),
which holds when both ran the same kernels.
"""

import argparse
import os
import shutil
import struct
import sys

MAGIC = b"\x93NUMPY"


def read_npy(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:6] != MAGIC:
        sys.exit(f"widen-case: {path}: not an .npy file")
    major = data[6]
    if major == 1:
        (length,) = struct.unpack("<H", data[8:10])
        start = 10
    else:
        (length,) = struct.unpack("<I", data[8:12])
        start = 12
    header = data[start:start + length].decode("latin1")
    return header, data[start + length:]


def write_npy(path, header, payload):
    # Version 1.0, the header padded with spaces and a newline to a multiple
    # of 64 bytes, as numpy writes it.
    header = header.rstrip()
    total = len(MAGIC) + 4 + len(header) + 1
    header += " " * ((-total) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(MAGIC + bytes([1, 0]) + struct.pack("<H", len(header)))
        f.write(header.encode("latin1"))
        f.write(payload)


def f32_to_f16_bits(x, path):
    try:
        return struct.pack("<e", x)
    except OverflowError:
        sys.exit(f"widen-case: {path}: {x!r} is out of f16's range")


def is_bf16(header):
    return "'<V2'" in header or "'|V2'" in header


def values(path, header, payload):
    """The elements of an .npy file as Python numbers (bf16 exactly)."""
    if is_bf16(header):
        return [struct.unpack("<f", b"\0\0" + payload[i:i + 2])[0]
                for i in range(0, len(payload), 2)]
    for descr, size, fmt in (("f2", 2, "<e"), ("f4", 4, "<f"),
                             ("f8", 8, "<d"), ("i8", 8, "<q"),
                             ("i4", 4, "<i")):
        if "'<" + descr + "'" in header:
            return [struct.unpack(fmt, payload[i:i + size])[0]
                    for i in range(0, len(payload), size)]
    sys.exit(f"widen-case: {path}: unsupported dtype in {header.strip()}")


def case_sets(case):
    """The set<i> directories of `case`, in order."""
    sets = [e for e in os.listdir(case)
            if e.startswith("set") and e[3:].isdigit()
            and os.path.isdir(os.path.join(case, e))]
    return sorted(sets, key=lambda e: int(e[3:]))


def case_files(case, prefix):
    """(set<i>, name) of the files <prefix><k>.npy of each set of `case`."""
    for entry in case_sets(case):
        for name in sorted(os.listdir(os.path.join(case, entry))):
            if name.startswith(prefix) and name.endswith(".npy"):
                yield entry, name


def widen_npy(src, dst, dtype):
    header, payload = read_npy(src)
    if not is_bf16(header):
        shutil.copyfile(src, dst)
        return
    elements = values(src, header, payload)
    if dtype == "f32":
        out = b"".join(struct.pack("<f", v) for v in elements)
        descr = "'<f4'"
    else:
        out = b"".join(f32_to_f16_bits(v, src) for v in elements)
        descr = "'<f2'"
    header = header.replace("'<V2'", descr).replace("'|V2'", descr)
    write_npy(dst, header, out)


def same_outputs(src, dst):
    """Whether every out<k>.npy of DST holds the values of SRC's."""
    checked = 0
    for entry, name in case_files(dst, "out"):
        a, b = (values(path, *read_npy(path))
                for path in (os.path.join(src, entry, name),
                             os.path.join(dst, entry, name)))
        differ = [i for i, (x, y) in enumerate(zip(a, b))
                  if x != y and not (x != x and y != y)]
        if len(a) != len(b) or differ:
            print(f"{entry}/{name}: differs from {src}"
                  + (f" first at element {differ[0]}: {b[differ[0]]!r}"
                     f" where it has {a[differ[0]]!r}" if differ else
                     f" in size ({len(b)} values, {len(a)} there)"))
            return False
        checked += 1
    if not checked:
        print(f"no out<k>.npy in {dst}")
        return False
    print(f"{checked} outputs the same")
    return True


def widen_case(src, dst, dtype):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    # (`emit-model` cases have no module: theirs is moe-import's.)
    if os.path.exists(os.path.join(src, "case.mlir")):
        with open(os.path.join(src, "case.mlir")) as f:
            module = f.read()
        with open(os.path.join(dst, "case.mlir"), "w") as f:
            f.write(module.replace("xbf16>", "x" + dtype + ">"))
    for entry, name in case_files(src, "arg"):
        widen_npy(os.path.join(src, entry, name),
                  os.path.join(dst, entry, name), dtype)
    # moe-reference's moe-run.args: the sets, as case directories.
    with open(os.path.join(dst, "moe-run.args"), "w") as f:
        f.write("".join(" --case-dir=" + os.path.join(dst, entry)
                        for entry in case_sets(dst)) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dtype", choices=["f32", "f16"])
    mode.add_argument("--same-outputs", action="store_true")
    args = parser.parse_args()
    if args.same_outputs:
        sys.exit(0 if same_outputs(args.src, args.dst) else 1)
    widen_case(args.src, args.dst, args.dtype)


if __name__ == "__main__":
    main()
