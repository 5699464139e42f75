#!/usr/bin/env python3
"""PyTorch on a CUDA GPU, the peer of `X bench` for tests/gpu/run.sh: one JSON line with the
median time of an inference batch or of a training step (forward, cross-entropy, backward, SGD with momentum).

FP32 throughout: TF32 is switched off for cuDNN and matmuls, since cnnc's kernels compute in full
FP32. Each timed call ends with torch.cuda.synchronize(), as `X bench` ends with its copy to host.

Usage: gpu_torch.py NET BATCH {infer,train} [--iters N] [--shape C,H,W] [--cpu]
(--cpu: on the CPU instead, for the dry run of tests/gpu/run.sh on machines without a GPU.)
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))
import reference_models  # noqa: E402


def main():
    net, batch, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    iters = int(sys.argv[sys.argv.index("--iters") + 1]) if "--iters" in sys.argv else 20
    shape = sys.argv[sys.argv.index("--shape") + 1] if "--shape" in sys.argv else ""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    cpu = "--cpu" in sys.argv
    dev = torch.device("cpu" if cpu else "cuda")
    c, h, w = [int(v) for v in shape.split(",")] if shape else reference_models.input_shape(net)
    model = reference_models.build(net, meta=False).to(dev)
    x = torch.randn(batch, c, h, w, device=dev)
    y = torch.randint(0, 10, (batch,), device=dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # as `X bench --train`

    def once():
        if mode == "infer":
            with torch.no_grad():
                model(x)
        else:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        if not cpu:
            torch.cuda.synchronize()

    model.train(mode == "train")
    for _ in range(5):
        once()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        once()
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    print(json.dumps({"net": net, "mode": mode, "batch": batch, "median_ms": ms[len(ms) // 2], "device": "cpu" if cpu else torch.cuda.get_device_name(0)}))


if __name__ == "__main__":
    main()
