#!/usr/bin/env python3
"""The PyTorch side of the README's accuracy table: the same recipe as `X train` on Fashion-MNIST.

Same data (Debian's files, pixels / 255, 28x28 zero-padded to the net's input), same batch, SGD
with momentum, per-epoch cosine schedule, same epochs; torch.set_num_threads(2). Prints per-epoch
test accuracy and epoch time, and a final JSON line.

Usage: train_torch.py NET EPOCHS BATCH LR MOMENTUM [--weight-decay WD] [--augment] [--device cuda] [--data DIR]
                      [--max-steps N]

--device cuda trains on a GPU (an accuracy reference only: its epoch times are not comparable).
--data DIR reads the four Fashion-MNIST .gz files from DIR (default: Debian's package).
--max-steps N stops each epoch after N steps and reports the time per step (speed only).

--augment is cnnc's: a random shift of up to H/8 pixels (at least 2) with zero fill, i.e. a random
crop of the zero-padded image (torchvision's RandomCrop(H, padding=H/8)); no flip for grey images.
"""
import gzip
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "torch"))
import reference_models  # noqa: E402


def load(split, src):
    im = np.frombuffer(gzip.open(src + f"{split}-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 1, 28, 28)
    lb = np.frombuffer(gzip.open(src + f"{split}-labels-idx1-ubyte.gz").read()[8:], np.uint8).astype(np.int64)
    return torch.from_numpy(im.astype(np.float32) / 255.0), torch.from_numpy(lb)


def main():
    net, epochs, batch, lr, mom = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    wd = float(sys.argv[sys.argv.index("--weight-decay") + 1]) if "--weight-decay" in sys.argv else 0.0
    augment = "--augment" in sys.argv
    opt_arg = lambda name, default: sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default  # noqa: E731
    device = torch.device(opt_arg("--device", "cpu"))
    src = opt_arg("--data", "/usr/share/datasets/fashion-mnist") + "/"
    max_steps = int(opt_arg("--max-steps", "0"))
    torch.set_num_threads(2)
    torch.manual_seed(0)
    c, h, w = reference_models.input_shape(net)
    xtr, ytr = load("train", src)
    xte, yte = load("t10k", src)
    pad = ((w - 28) // 2, (w - 28 + 1) // 2, (h - 28) // 2, (h - 28 + 1) // 2)
    xtr, xte = [torch.nn.functional.pad(x, pad).expand(-1, c, -1, -1).contiguous().to(device) for x in (xtr, xte)]
    ytr, yte = ytr.to(device), yte.to(device)
    model = reference_models.build(net, meta=False).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mom, weight_decay=wd)
    crop = max(2, h // 8)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    acc = 0.0
    times = []
    for e in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        steps = 0
        for i in range(0, len(xtr) - batch + 1, batch):
            if max_steps and steps == max_steps:
                break
            steps += 1
            idx = perm[i:i + batch].to(device)
            x = xtr[idx]
            if augment:
                padded = torch.nn.functional.pad(x, (crop, crop, crop, crop))
                off = torch.randint(0, 2 * crop + 1, (len(idx), 2))
                x = torch.stack([padded[k, :, oy:oy + h, ox:ox + w] for k, (oy, ox) in enumerate(off.tolist())])
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), ytr[idx]).backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if max_steps:
            print(json.dumps({"net": net, "steps": steps, "seconds": times[-1], "step_ms": 1000 * times[-1] / steps}))
            return
        sched.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item() for i in range(0, len(xte), 500))
        acc = correct / len(xte)
        print(f"epoch {e + 1}: test accuracy {100 * acc:.2f}%  {times[-1]:.1f} s", flush=True)
    print(json.dumps({"net": net, "epochs": epochs, "weight_decay": wd, "augment": augment, "test_accuracy": acc, "median_epoch_s": sorted(times)[len(times) // 2]}))


if __name__ == "__main__":
    main()
