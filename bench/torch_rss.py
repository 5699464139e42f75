#!/usr/bin/env python3
"""PyTorch's side of bench/run.py's peak-RSS rows, in a process of its own: NET MODE BATCH THREADS.

Runs three training steps (SGD momentum) or inferences on random data; the caller reads this
process's peak RSS from wait4."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))
import reference_models  # noqa: E402

net, mode, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
m = reference_models.build(net, meta=False)
c, h, w = reference_models.input_shape(net)
x = torch.randn(batch, c, h, w)
if mode == "train":
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    y = torch.arange(batch) % 10
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
else:
    m.eval()
    with torch.no_grad():
        for _ in range(3):
            m(x)
