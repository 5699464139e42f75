"""Minimal safetensors reader and writer for the tests (Debian 12 has no safetensors package).

Format: 8-byte little-endian header length N, N bytes of JSON, then the data (row-major, little-endian).
"""
import json
import mmap
import os
import struct

import numpy as np

_DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
_NAME = {np.dtype(v): k for k, v in _DT.items()}


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (or torch tensor); written in insertion order."""
    # Arrays are written straight from their own memory: VGG's step writes 0.5 GB of weights, and
    # copying them twice (tobytes, join) took a quarter of its test's time.
    header, arrays, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
        if not a.flags.c_contiguous:
            a = a.copy(order="C")  # np.ascontiguousarray would turn a 0-d array into shape [1]
        header[name] = {"dtype": _NAME[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        arrays.append(a)
        off += a.nbytes
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    # Written beside and renamed over: a file load() mapped stays intact for the arrays still
    # reading it (truncating it in place would end them with SIGBUS).
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for a in arrays:
            f.write(memoryview(a.reshape(-1)).cast("B") if a.size else b"")
    os.replace(tmp, path)


def load(path):
    """Arrays that read the file in place (read-only), through a map of it: reading VGG-16's 1.1 GB
    step output into fresh memory took 8.1 s here with its checks, mapped 1.3 s (page faults on
    fresh memory are slow on this VM; the file's pages are in the page cache already)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ValueError(f"{path}: empty file")
        data = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(bytes(data[8:8 + n]))
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype=_DT[e["dtype"]]).reshape(e["shape"])
    return out
