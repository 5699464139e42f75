#!/usr/bin/env python3
"""Forward parity: a cnnc-built executable against the PyTorch reference model.

For each batch size, the same weights (random, BN running stats included, written by PyTorch in
safetensors) and the same random input go through both; the outputs must agree within
    max |cnnc - torch| <= TOL * (1 + max |torch|),  TOL = 1e-4.
FP32 sums over up to 25,088 terms (VGG's classifier) in a different order than oneDNN's differ by
a few ULPs per term; 1e-4 relative to the output scale leaves room for that and nothing more.

Usage: parity.py --exe BUILT_NET --net NAME [--batches 1,3] [--shape C,H,W]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import reference_models  # noqa: E402
import st  # noqa: E402

# max |cnnc - torch| <= TOL * (1 + max |torch|): room for FP32 sums in another order (a few ULPs per term), no more.
TOL = 1e-4


def randomize(model, gen, bn_shift=0.0):
    """Random weights with BN statistics far from the identity, so folding is really exercised.

    bn_shift moves every BN beta up: training-step tests use it so that few ReLU outputs are
    exactly zero, since a max-pool window whose top two values are within rounding of each other
    (typically a zero and a tiny positive) routes its whole gradient by a coin flip."""
    with torch.no_grad():
        sd = model.state_dict()
        for name, t in sd.items():
            if t.dtype != torch.float32:
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif name.endswith("weight") and t.dim() == 1:  # BN gamma
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("bias") and t.dim() == 1:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1 + (bn_shift if name.replace("bias", "running_var") in sd else 0.0))
            else:
                fan_in = t[0].numel() if t.dim() > 1 else t.numel()
                t.copy_(torch.randn(t.shape, generator=gen) * (2.0 / fan_in) ** 0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--net", required=True)
    ap.add_argument("--batches", default="1,3")
    ap.add_argument("--runner", default="", help="command that runs the executable, e.g. qemu-aarch64 for an aarch64 build")
    ap.add_argument("--shape", default="", help="input C,H,W if not the net's default")
    ap.add_argument("--via-pth", action="store_true", help="hand the weights over as torch.save + scripts/pth2safetensors.py")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(1234)
    model = reference_models.build(args.net, meta=False).eval()
    randomize(model, gen)
    shape = tuple(int(x) for x in args.shape.split(",")) if args.shape else reference_models.input_shape(args.net)
    ok = True
    with tempfile.TemporaryDirectory() as d:
        wpath = os.path.join(d, "w.safetensors")
        if args.via_pth:
            torch.save(model.state_dict(), os.path.join(d, "w.pth"))
            conv = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "pth2safetensors.py")
            subprocess.run([sys.executable, conv, os.path.join(d, "w.pth"), wpath], check=True, capture_output=True)
        else:
            st.save(wpath, model.state_dict())
        for b in [int(x) for x in args.batches.split(",")]:
            x = torch.randn((b,) + shape, generator=gen)
            with torch.no_grad():
                ref = model(x).numpy()
            ipath, opath = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
            st.save(ipath, {"input": x})
            r = subprocess.run(([args.runner] if args.runner else []) + [args.exe, "infer", "--weights", wpath, "--input", ipath, "--output", opath], capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {args.net} batch {b}: exit {r.returncode}\n{r.stderr}")
                ok = False
                continue
            got = st.load(opath)["output"]
            if got.shape != ref.shape:
                print(f"FAIL {args.net} batch {b}: output shape {got.shape}, torch {ref.shape}")
                ok = False
                continue
            diff = float(np.max(np.abs(got - ref)))
            bound = TOL * (1.0 + float(np.max(np.abs(ref))))
            verdict = "ok" if diff <= bound else "FAIL"
            ok &= diff <= bound
            print(f"{verdict} {args.net} input {(b,) + shape}: max abs diff {diff:.3e} (bound {bound:.3e}, max |torch| {np.max(np.abs(ref)):.3e})")
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
