#!/usr/bin/env python3
"""Converts a PyTorch state_dict saved with torch.save (.pth/.pt) to safetensors, which cnnc's
executables load. Debian's PyTorch has no safetensors package, so the format is written here.

Usage: scripts/pth2safetensors.py model.pth model.safetensors
"""
import json
import struct
import sys

import torch

_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
          torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, dst = sys.argv[1], sys.argv[2]
    obj = torch.load(src, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # common checkpoint layout
    if hasattr(obj, "state_dict"):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        print(f"error: {src} does not hold a state_dict (a dict of tensors)", file=sys.stderr)
        return 1
    header, blobs, off = {}, [], 0
    for name, t in obj.items():
        if t.dtype not in _NAMES:
            print(f"error: tensor '{name}' has unsupported dtype {t.dtype}", file=sys.stderr)
            return 1
        b = t.detach().contiguous().cpu().numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt", "converted_from": src}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    import os
    os.replace(tmp, dst)
    print(f"wrote {dst}: {len(obj)} tensors, {off:,} bytes of data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
