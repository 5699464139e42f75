#!/usr/bin/env python3
"""Frozen-layer training-step parity: `X step --freeze PREFIX...` against PyTorch with
requires_grad=False on the frozen parameters.

For each --freeze scenario (a space-separated list of prefixes), from the same weights and batch as
step_parity.py, cnnc and PyTorch (model.train(), so batch norm uses batch statistics and updates
its running statistics even where it is frozen) take one plain-SGD step. Checked:
  - every trainable parameter's gradient, every updated parameter, the BN buffers and the loss
    agree with float64 PyTorch within step_parity.py's bounds;
  - cnnc writes no grad.<name> for a frozen parameter, and returns every frozen parameter bit for
    bit as it was given;
  - the printed "frozen: N tensors (M parameters); backward calls: K of T run" has PyTorch's N and
    M, and K < T: backward calls were skipped.

Usage: freeze_parity.py --exe BUILT_NET --net NAME --freeze "conv1 conv2" [--freeze ...] [--batch 2]
"""
import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import parity  # noqa: E402
import reference_models  # noqa: E402
import st  # noqa: E402
from step_parity import compare, replace_dropout  # noqa: E402


def is_frozen(name, prefixes):
    """cnnc's rule (runtime/train.cpp resolveFreeze): whole dotted components, or the exact name."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def scenario(args, model, x, labels, prefixes, d):
    tag = " ".join(prefixes)
    r = subprocess.run([args.exe, "step", "--weights", f"{d}/w.safetensors", "--input", f"{d}/in.safetensors", "--labels",
                        f"{d}/labels.safetensors", "--lr", str(args.lr), "--seed", str(args.seed), "--output", f"{d}/out.safetensors",
                        "--freeze"] + prefixes, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL [{tag}]: step exited {r.returncode}\n{r.stderr}")
        return False
    got = st.load(f"{d}/out.safetensors")
    given = st.load(f"{d}/w.safetensors")
    ok = True

    m = re.search(r"frozen: (\d+) tensors? \((\d+) parameters\); backward calls: (\d+) of (\d+) run", r.stderr)
    frozen_names = [n for n, _ in model.named_parameters() if is_frozen(n, prefixes)]
    want_n = len(frozen_names)
    want_m = sum(p.numel() for n, p in model.named_parameters() if n in frozen_names)
    if not m:
        print(f"FAIL [{tag}]: no 'frozen: ...' line in stderr: {r.stderr.strip()[:300]}")
        return False
    n, mm, k, t = (int(v) for v in m.groups())
    if (n, mm) != (want_n, want_m):
        print(f"FAIL [{tag}]: cnnc froze {n} tensors ({mm} parameters), PyTorch {want_n} ({want_m})")
        ok = False
    if not k < t:
        print(f"FAIL [{tag}]: backward calls: {k} of {t} run, none skipped")
        ok = False

    def reference(mod, xx):
        for name, p in mod.named_parameters():
            p.requires_grad_(not is_frozen(name, prefixes))
        out = torch.nn.functional.cross_entropy(mod(xx), labels)
        out.backward()
        res = {"loss": out.detach().double().numpy()}
        for name, p in mod.named_parameters():
            if p.requires_grad:
                res["grad." + name] = p.grad.double().numpy().copy()
        with torch.no_grad():
            for p in mod.parameters():
                if p.requires_grad:
                    p -= args.lr * p.grad
        for name, tt in mod.state_dict().items():
            res[name] = tt.numpy().astype(np.float64) if tt.dtype != torch.int64 else tt.numpy().copy()
        return res

    ref32 = reference(copy.deepcopy(model), x)
    ref = reference(copy.deepcopy(model).double(), x.double())
    for name in frozen_names:
        if "grad." + name in got:
            print(f"FAIL [{tag}]: cnnc wrote grad.{name} for a frozen parameter")
            ok = False
        if got[name].tobytes() != given[name].tobytes():
            print(f"FAIL [{tag}]: frozen {name} changed (max diff {np.max(np.abs(got[name] - given[name])):.3e})")
            ok = False
    cmp_ok, closest = compare(got, ref, ref32, tag, lr=args.lr)
    ok &= cmp_ok
    ngrad = sum(1 for k_ in ref if k_.startswith("grad."))
    print(f"{'ok  ' if ok else 'FAIL'} [{tag}]: frozen {n} tensor{'s' if n != 1 else ''} ({mm} parameters), backward calls {k} of {t} run ({t - k} skipped); "
          f"{ngrad} gradients and {len(ref) - ngrad} other tensors compared, closest to its bound: {closest}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", required=True)
    ap.add_argument("--net", required=True)
    ap.add_argument("--freeze", action="append", required=True, help="space-separated prefixes; repeat for more scenarios")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--shape", default="")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(99)
    model = reference_models.build(args.net, meta=False)
    parity.randomize(model, gen, bn_shift=0.5)
    shape = tuple(int(v) for v in args.shape.split(",")) if args.shape else reference_models.input_shape(args.net)
    replace_dropout(model, args.seed, shape)
    x = torch.randn((args.batch,) + shape, generator=gen)
    with torch.no_grad():
        k = model.eval()(x[:1]).shape[1]
    model.train()
    labels = torch.randint(0, k, (args.batch,), generator=gen)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as d:
        st.save(f"{d}/w.safetensors", model.state_dict())
        st.save(f"{d}/in.safetensors", {"input": x})
        st.save(f"{d}/labels.safetensors", {"labels": labels})
        for f in args.freeze:
            if scenario(args, model, x, labels, f.split(), d):
                passed += 1
            else:
                failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
