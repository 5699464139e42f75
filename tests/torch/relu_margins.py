#!/usr/bin/env python3
"""Which ReLU inputs lie within float32 rounding of zero in a training step's forward pass.

Builds the net, its weights and its input exactly as step_parity.py does (same seeds), runs the forward
pass in float32 and in float64, and lists per ReLU: how many elements float32 puts on the other side of
zero than float64 ("flips"), the smallest |input| in float64 and the largest float32 error. A flip makes
PyTorch's float32 step (and possibly cnnc's) pass or block a gradient that float64 does not: gradients
upstream of it then differ by far more than rounding, legitimately. step_parity.py's batches are chosen
where there is no flip (tests/CMakeLists.txt, STEP_NETS).
Usage: relu_margins.py NET BATCH [--top N]
"""
import argparse
import copy
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import parity  # noqa: E402
import reference_models  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("net")
    ap.add_argument("batch", type=int)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(99)  # as step_parity.py
    model = reference_models.build(args.net, meta=False)
    parity.randomize(model, gen, bn_shift=0.5)
    model.train()
    x = torch.randn((args.batch,) + reference_models.input_shape(args.net), generator=gen)
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
    rows = []
    for name, v64 in seen64.items():
        v32 = seen32[name]
        rows.append((int(((v32 > 0) != (v64 > 0)).sum()), name, float(v64.abs().min()), float((v32 - v64).abs().max())))
    rows.sort(key=lambda r: (-r[0], r[2]))
    for flips, name, low, err in rows[:args.top]:
        print(f"{flips} flips  {name}: min |x| in float64 {low:.3e}, max float32 error {err:.3e}")
    print(f"{sum(r[0] for r in rows)} flips in {len(rows)} ReLUs")


if __name__ == "__main__":
    main()
