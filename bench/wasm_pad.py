#!/usr/bin/env python3
"""Appends a custom section to a WebAssembly component, which every tool
ignores: the same policy, other bytes (another content hash, so another
compilation), at a chosen size.

    wasm_pad.py IN OUT [--size BYTES] [--tag TEXT]
"""
import argparse


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--size", type=int, default=0, help="total size to reach (0: just the tag)")
    ap.add_argument("--tag", default="pad")
    a = ap.parse_args()
    data = open(a.input, "rb").read()
    name = b"switchyard-pad"
    payload = a.tag.encode()
    # Grow the payload until the whole file reaches --size.
    overhead = len(data) + 1 + 5 + len(leb128(len(name))) + len(name)
    if a.size > overhead + len(payload):
        payload += b"\0" * (a.size - overhead - len(payload))
    body = leb128(len(name)) + name + payload
    open(a.output, "wb").write(data + b"\0" + leb128(len(body)) + body)


if __name__ == "__main__":
    main()
