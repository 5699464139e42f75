#!/usr/bin/env python3
"""Which ReLU inputs lie within float32 rounding of zero in a training step's forward pass.

Builds the net, its weights and its input exactly as step_parity.py does (same seeds), runs the forward
pass in float32 and in float64, and lists per ReLU: how many elements float32 puts on the other side of
zero than float64 ("flips"), the smallest |input| in float64 and the largest float32 error. A flip makes
PyTorch's float32 step (and possibly cnnc's) pass or block a gradient that float64 does not: gradients
upstream of it then differ by far more than rounding, legitimately. step_parity.py's batches are chosen
where there is no flip (tests/CMakeLists.txt, STEP_NETS).

With --exe (a cnnc build of NET; --cnnc for its plan), cnnc's own forward pass of that step is
compared too: each BN + ReLU kernel's output is dumped (CNNC_DUMP_DIR) and its zeros are set
against float64's signs ("cnnc flips"). tests/torch/relu_decision.py checks that the backward
then follows those same decisions.
Usage: relu_margins.py NET BATCH [--top N] [--shape C,H,W] [--exe BUILT_NET --cnnc CNNC]
"""
import argparse
import copy
import os
import subprocess
import sys
import tempfile

import numpy as np

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity  # noqa: E402
import reference_models  # noqa: E402
import st  # noqa: E402


def cnnc_relu_outputs(args, model, x):
    """The output of each BN + ReLU kernel of cnnc's training forward, by ReLU name, float64."""
    net = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "nets", args.net + ".cnn")
    plan = subprocess.run([args.cnnc, net, "--emit=train-plan"], check=True, capture_output=True, text=True).stdout
    calls = [ln.split(" = ") for ln in plan.splitlines() if " = k_" in ln]
    with tempfile.TemporaryDirectory() as d:
        st.save(f"{d}/w", model.state_dict())
        st.save(f"{d}/x", {"input": x})
        st.save(f"{d}/y", {"labels": np.zeros(x.shape[0], np.int64)})
        os.mkdir(f"{d}/dump")
        subprocess.run([args.exe, "step", "--weights", f"{d}/w", "--input", f"{d}/x", "--labels", f"{d}/y", "--lr", "0", "--output", f"{d}/o"],
                       check=True, capture_output=True, env=dict(os.environ, CNNC_DUMP_DIR=f"{d}/dump"))
        out = {}
        for i, (label, fn) in enumerate(calls):
            if "k_bnapply" in fn and "+" in label:
                out[label.strip().split("+")[-1]] = torch.from_numpy(np.fromfile(f"{d}/dump/{i}.bin", np.float32).astype(np.float64))
        return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("net")
    ap.add_argument("batch", type=int)
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--exe", default="", help="a cnnc build of NET: count its own forward's flips too")
    ap.add_argument("--cnnc", default="cnnc")
    ap.add_argument("--shape", default="", help="input C,H,W if not the net's own (as step_parity.py --shape)")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(99)  # as step_parity.py
    model = reference_models.build(args.net, meta=False)
    parity.randomize(model, gen, bn_shift=0.5)
    model.train()
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else reference_models.input_shape(args.net)
    x = torch.randn((args.batch,) + shape, generator=gen)
    m64 = copy.deepcopy(model).double()
    seen32, seen64 = {}, {}
    for m, store in ((model, seen32), (m64, seen64)):
        for name, mod in m.named_modules():
            if isinstance(mod, (torch.nn.ReLU, torch.nn.ReLU6)):
                mod.inplace = False
                mod.register_forward_pre_hook(lambda mod, inp, n=name, s=store: s.__setitem__(n, inp[0].detach().double().clone()))
    with torch.no_grad():
        model(x)
        m64(x.double())
    ours = cnnc_relu_outputs(args, model, x) if args.exe else {}
    rows, cnnc_flips = [], 0
    for name, v64 in seen64.items():
        v32 = seen32[name]
        mine = ""
        if name in ours and ours[name].numel() == v64.numel():
            y = ours[name].reshape(v64.shape)
            n64, n32 = int(((y > 0) != (v64 > 0)).sum()), int(((y > 0) != (v32 > 0)).sum())
            cnnc_flips += n64
            mine = f"; cnnc flips {n64} against float64, {n32} against PyTorch float32"
        rows.append((int(((v32 > 0) != (v64 > 0)).sum()), name, float(v64.abs().min()), float((v32 - v64).abs().max()), mine))
    rows.sort(key=lambda r: (-r[0] - (1 if "cnnc flips 0" not in r[4] and r[4] else 0), r[2]))
    for flips, name, low, err, mine in rows[:args.top]:
        print(f"{flips} flips  {name}: min |x| in float64 {low:.3e}, max float32 error {err:.3e}{mine}")
    print(f"{sum(r[0] for r in rows)} flips in {len(rows)} ReLUs" + (f"; cnnc's forward: {cnnc_flips} flips against float64" if args.exe else ""))


if __name__ == "__main__":
    main()
