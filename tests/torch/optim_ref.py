#!/usr/bin/env python3
"""Writes tests/unit/optim_ref.json (torch.optim trajectories) and tests/unit/lr_ref.json (LR
schedules over 30 epochs, base lr 0.1) that tests/unit/optimizer_test.cpp must reproduce. Each case: one parameter of 7 values, 5 steps of fixed gradients, the parameter
after every step. Regenerate with: /usr/bin/python3 tests/torch/optim_ref.py
"""
import json
import os
import warnings

import torch

CASES = {
    "sgd": ("sgd", dict(lr=0.1)),
    "sgd_momentum_wd": ("sgd", dict(lr=0.1, momentum=0.9, weight_decay=5e-4)),
    "sgd_nesterov": ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "sgd_dampening": ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.1)),
    "adam": ("adam", dict(lr=1e-2)),
    "adam_wd": ("adam", dict(lr=1e-2, weight_decay=1e-2)),
    "adamw": ("adamw", dict(lr=1e-2, weight_decay=1e-2)),
    "adam_amsgrad": ("adam", dict(lr=1e-2, amsgrad=True)),
}


def main():
    warnings.filterwarnings("ignore")  # SequentialLR's deprecation notice
    g = torch.Generator().manual_seed(0)
    w0 = torch.randn(7, generator=g)
    grads = [torch.randn(7, generator=g) for _ in range(5)]
    out = {"w0": w0.tolist(), "grads": [x.tolist() for x in grads], "cases": {}}
    for name, (kind, kw) in CASES.items():
        p = torch.nn.Parameter(w0.clone())
        opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[kind]([p], **kw)
        traj = []
        for gr in grads:
            p.grad = gr.clone()
            opt.step()
            traj.append(p.detach().clone().tolist())
        out["cases"][name] = {"kind": kind, "config": kw, "trajectory": traj}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "optim_ref.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print("wrote", path)
    write_lr_reference(os.path.join(os.path.dirname(path), "lr_ref.json"))


def write_lr_reference(path, epochs=30):
    L = torch.optim.lr_scheduler

    def seq(make):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        sched = make(opt)
        lrs = []
        for _ in range(epochs):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return lrs

    ref = {
        "step": seq(lambda o: L.StepLR(o, 10, 0.1)),
        "multistep": seq(lambda o: L.MultiStepLR(o, [5, 15], 0.5)),
        "cosine": seq(lambda o: L.CosineAnnealingLR(o, T_max=30, eta_min=1e-4)),
        "warmup_cosine": seq(lambda o: L.SequentialLR(o, [L.LinearLR(o, start_factor=0.1, total_iters=3),
                                                          L.CosineAnnealingLR(o, T_max=27, eta_min=1e-4)], milestones=[3])),
    }
    with open(path, "w") as f:
        json.dump(ref, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
