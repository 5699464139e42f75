#!/usr/bin/env python3
"""Training-step parity: `X step` (forward, loss, backward, plain SGD) against PyTorch.

From the same weights (random, with non-trivial BN statistics) and the same batch, both compute
the cross-entropy loss, every parameter gradient, the SGD-updated parameters and the BN running
statistics (train mode). Tolerances, per tensor:
  loss, parameters, buffers:  max |cnnc - torch| <= 1e-4 * (1 + max |torch|)
  gradients:                  max |cnnc - torch| <= 1e-3 * max |torch| + 1e-6
Gradients are sums over batch x space of products, accumulated in another order than oneDNN's;
float32 reordering error grows with the number of terms, so gradients are held to 0.1% of their
own scale (an error in any kernel, e.g. a wrong tap or a missing term, is far larger than that).

Usage: step_parity.py --exe BUILT_NET --net NAME [--batch 4] [--shape C,H,W] [--lr 0.1]
"""
import argparse
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--net", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--shape", default="")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(99)
    model = reference_models.build(args.net, meta=False)
    parity.randomize(model, gen)
    for m in model.modules():  # dropout masks cannot be shared with PyTorch's RNG: compare without
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.train()
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else reference_models.input_shape(args.net)
    x = torch.randn((args.batch,) + shape, generator=gen)
    with torch.no_grad():
        k = model.eval()(x[:1]).shape[1]
    model.train()
    labels = torch.randint(0, k, (args.batch,), generator=gen)
    ok = True
    with tempfile.TemporaryDirectory() as d:
        st.save(f"{d}/w.safetensors", model.state_dict())
        st.save(f"{d}/in.safetensors", {"input": x})
        st.save(f"{d}/labels.safetensors", {"labels": labels})
        r = subprocess.run([args.exe, "step", "--weights", f"{d}/w.safetensors", "--input", f"{d}/in.safetensors", "--labels",
                            f"{d}/labels.safetensors", "--lr", str(args.lr), "--label-smoothing", str(args.label_smoothing),
                            "--output", f"{d}/out.safetensors"], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL {args.net}: step exited {r.returncode}\n{r.stderr}")
            print("0 passed, 1 failed")
            return 1
        got = st.load(f"{d}/out.safetensors")
    loss = torch.nn.functional.cross_entropy(model(x), labels, label_smoothing=args.label_smoothing)
    loss.backward()
    ref = {"loss": loss.detach().numpy()}
    for name, p in model.named_parameters():
        ref["grad." + name] = p.grad.numpy().copy()
    with torch.no_grad():
        for p in model.parameters():
            p -= args.lr * p.grad
    for name, t in model.state_dict().items():
        ref[name] = t.numpy().copy()
    worst = (0.0, "")
    for name, want in ref.items():
        if name not in got:
            print(f"FAIL {name}: missing from cnnc's output")
            ok = False
            continue
        have = got[name]
        if have.shape != want.shape:
            print(f"FAIL {name}: shape {have.shape}, torch {want.shape}")
            ok = False
            continue
        diff = float(np.max(np.abs(have.astype(np.float64) - want.astype(np.float64)))) if want.size else 0.0
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        bound = 1e-3 * scale + 1e-6 if name.startswith("grad.") else 1e-4 * (1 + scale)
        if diff > bound:
            print(f"FAIL {name}: max abs diff {diff:.3e} > {bound:.3e} (max |torch| {scale:.3e})")
            ok = False
        ratio = diff / bound if bound else 0
        if ratio >= worst[0]:
            worst = (ratio, f"{name}: {diff:.3e} of {bound:.3e}")
    print(f"{'ok' if ok else 'FAIL'} {args.net} step, batch {args.batch}: loss {float(got['loss']):.6f} (torch {float(ref['loss']):.6f}); "
          f"{len(ref)} tensors compared, closest to its bound: {worst[1]}")
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
