#!/usr/bin/env python3
"""step_parity.EdgeDecisions: the float64 reference takes cnnc's ReLU / ReLU6 decision only for
inputs within EDGE_BAND of an edge, only from a dump that matches the call's output, and then
passes or blocks the gradient as cnnc did; a max pool takes cnnc's choice of maximum only in windows
whose two largest inputs are within EDGE_BAND of each other. Elements far from an edge or a tie keep
float64's decision, so a kernel that blocks or routes the wrong element still fails step parity.
Usage: edge_decisions_test.py
"""
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import step_parity  # noqa: E402

failures = []


def check(what, ok):
    print(f"{'ok' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def run(x, dumps, fn):
    """fn(x) under EdgeDecisions with `dumps` (float32 arrays) as cnnc's outputs: (y, dy/dx, taken)."""
    with tempfile.TemporaryDirectory() as d:
        for i, a in enumerate(dumps):
            np.asarray(a, np.float32).tofile(f"{d}/{i}.bin")
        edges = step_parity.EdgeDecisions(d)
    x = x.clone().requires_grad_(True)
    with edges:
        y = fn(x)
    y.sum().backward()
    return y.detach(), x.grad, edges.taken


def main():
    # ReLU: element 1 is 1e-9 above 0 (float64 passes it), cnnc blocked it; element 3 is 0.5 above 0
    # and cnnc "blocked" it too (a kernel bug, not rounding).
    x = torch.tensor([1.0, 1e-9, -2.0, 0.5], dtype=torch.float64)
    near_only = [1.0, 0.0, 0.0, 0.5]
    y, g, taken = run(x, [near_only], lambda t: F.relu(t))
    check("relu: the element within the band takes cnnc's block", taken == 1 and g.tolist() == [1.0, 0.0, 0.0, 1.0] and float(y[1]) == 0.0)
    y, g, taken = run(x, [[1.0, 0.0, 0.0, 0.0]], lambda t: F.relu(t))
    check("relu: a dump that blocks an element far from 0 matches no call (nothing taken)", taken == 0 and g.tolist() == [1.0, 1.0, 0.0, 1.0])
    y, g, taken = run(x, [[7.0, 0.0, 0.0, 0.5]], lambda t: F.relu(t))
    check("relu: a dump of other values is not taken", taken == 0 and g.tolist() == [1.0, 1.0, 0.0, 1.0])
    y, g, taken = run(x, [[3.0, 1.0, 2.0, 4.0, 5.0], near_only], lambda t: F.relu(t))
    check("relu: the dump of the call's size and values is found among others", taken == 1 and g.tolist() == [1.0, 0.0, 0.0, 1.0])
    # cnnc passes an element float64 blocks: x = -1e-9, cnnc's output 1e-9 (its own rounding).
    x2 = torch.tensor([1.0, -1e-9], dtype=torch.float64)
    y, g, taken = run(x2, [[1.0, 1e-9]], lambda t: F.relu(t))
    check("relu: cnnc's pass of a -1e-9 input is taken (gradient 1)", taken == 1 and g.tolist() == [1.0, 1.0])
    # ReLU6 via nn.ReLU6 (F.hardtanh): cnnc clamped 6 - 1e-9 to 6; 3.0 stays passed.
    x6 = torch.tensor([6.0 - 1e-9, 3.0, -1.0], dtype=torch.float64)
    y, g, taken = run(x6, [[6.0, 3.0, 0.0]], torch.nn.ReLU6())
    check("relu6: cnnc's clamp at the top edge is taken (gradient 0, value 6)", taken == 1 and g.tolist() == [0.0, 1.0, 0.0] and float(y[0]) == 6.0)
    # Max pool 2x2 on one window: float64 makes element 1 the largest by 1e-9; cnnc's float32 values
    # tie, and its first maximum (element 0) takes the gradient.
    pool = torch.nn.MaxPool2d(2)
    xp = torch.tensor([1.0, 1.0 + 1e-9, 0.2, 0.5], dtype=torch.float64).view(1, 1, 2, 2)
    y, g, taken = run(xp, [[1.0, 1.0, 0.2, 0.5]], pool)
    check("max pool: a near-tie window routes the gradient to cnnc's maximum", taken == 1 and g.flatten().tolist() == [1.0, 0.0, 0.0, 0.0])
    # A gap of 5e-4 is past the band: float64's maximum stays, whatever cnnc's dump says.
    xf = torch.tensor([1.0, 1.0005, 0.2, 0.5], dtype=torch.float64).view(1, 1, 2, 2)
    y, g, taken = run(xf, [[1.0005, 1.0, 0.2, 0.5]], pool)
    check("max pool: a window far from a tie keeps float64's maximum", taken == 0 and g.flatten().tolist() == [0.0, 1.0, 0.0, 0.0])
    # Outside the context float32 and float64 calls are untouched.
    check("F.relu and F.max_pool2d restored after the context", F.relu(torch.tensor([-1.0])).item() == 0.0 and F.max_pool2d is step_parity.MAX_POOL2D)
    print(f"{9 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
