#!/usr/bin/env python3
"""The --emit=lib bundle: build tests/lib_example/main.c against it, run it, compare with PyTorch.

Usage: lib_parity.py --lib-dir DIR --net NAME [--cc aarch64-linux-gnu-gcc --static --runner qemu-aarch64]
Tolerance as in parity.py: max |c - torch| <= 1e-4 * (1 + max |torch|).
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import parity  # noqa: E402
import reference_models  # noqa: E402
import st  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", required=True)
    ap.add_argument("--net", required=True)
    ap.add_argument("--cc", default="cc", help="C compiler of the board project (a cross compiler for another target)")
    ap.add_argument("--static", action="store_true", help="link the example statically")
    ap.add_argument("--runner", default="", help="command that runs the example, e.g. qemu-aarch64")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = reference_models.build(args.net, meta=False).eval()
    parity.randomize(model, torch.Generator().manual_seed(7))
    shape = reference_models.input_shape(args.net)
    batch = 2
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "example")
        cmd = [args.cc, "-O1"] + (["-static"] if args.static else []) + [ "-I", args.lib_dir, os.path.join(HERE, "..", "lib_example", "main.c"), "-L", args.lib_dir,
               "-l" + args.net, "-lstdc++", "-lz", "-lpthread", "-ldl", "-lm", f'-DNET_HEADER="{args.net}.h"', "-o", exe]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL: the example does not build:\n" + " ".join(cmd) + "\n" + r.stderr)
            return 1
        w = os.path.join(d, "w.safetensors")
        st.save(w, model.state_dict())
        r = subprocess.run(([args.runner] if args.runner else []) + [exe, w, str(batch)], capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL: the example failed:\n" + r.stderr)
            return 1
        got = np.array([float(v) for v in r.stdout.split()], dtype=np.float32)
        n = batch * int(np.prod(shape))
        x = torch.tensor([math.sin(0.01 * i) for i in range(n)], dtype=torch.float32).reshape((batch,) + shape)
        with torch.no_grad():
            ref = model(x).numpy().reshape(-1)
        if got.shape != ref.shape:
            print(f"FAIL: {got.shape[0]} outputs, torch has {ref.shape[0]}")
            return 1
        diff = float(np.max(np.abs(got - ref)))
        bound = parity.TOL * (1 + float(np.max(np.abs(ref))))
        ok = diff <= bound
        print(f"{'ok' if ok else 'FAIL'} {args.net} C API: max abs diff {diff:.3e} (bound {bound:.3e})")
        print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
