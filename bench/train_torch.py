#!/usr/bin/env python3
"""The PyTorch side of the README's accuracy table: the same recipe as `X train` on Fashion-MNIST.

Same data (Debian's files, pixels / 255, 28x28 zero-padded to the net's input), same batch, SGD
with momentum, per-epoch cosine schedule, same epochs; torch.set_num_threads(2). Prints per-epoch
test accuracy and epoch time, and a final JSON line.

Usage: train_torch.py NET EPOCHS BATCH LR MOMENTUM [--weight-decay WD] [--augment]

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


def load(split):
    src = "/usr/share/datasets/fashion-mnist/"
    im = np.frombuffer(gzip.open(src + f"{split}-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 1, 28, 28)
    lb = np.frombuffer(gzip.open(src + f"{split}-labels-idx1-ubyte.gz").read()[8:], np.uint8).astype(np.int64)
    return torch.from_numpy(im.astype(np.float32) / 255.0), torch.from_numpy(lb)


def main():
    net, epochs, batch, lr, mom = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    wd = float(sys.argv[sys.argv.index("--weight-decay") + 1]) if "--weight-decay" in sys.argv else 0.0
    augment = "--augment" in sys.argv
    torch.set_num_threads(2)
    torch.manual_seed(0)
    c, h, w = reference_models.input_shape(net)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    pad = ((w - 28) // 2, (w - 28 + 1) // 2, (h - 28) // 2, (h - 28 + 1) // 2)
    xtr, xte = [torch.nn.functional.pad(x, pad).expand(-1, c, -1, -1).contiguous() for x in (xtr, xte)]
    model = reference_models.build(net, meta=False)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mom, weight_decay=wd)
    crop = max(2, h // 8)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    acc = 0.0
    times = []
    for e in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        for i in range(0, len(xtr) - batch + 1, batch):
            idx = perm[i:i + batch]
            x = xtr[idx]
            if augment:
                padded = torch.nn.functional.pad(x, (crop, crop, crop, crop))
                off = torch.randint(0, 2 * crop + 1, (len(idx), 2))
                x = torch.stack([padded[k, :, oy:oy + h, ox:ox + w] for k, (oy, ox) in enumerate(off.tolist())])
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), ytr[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - t0)
        sched.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item() for i in range(0, len(xte), 500))
        acc = correct / len(xte)
        print(f"epoch {e + 1}: test accuracy {100 * acc:.2f}%  {times[-1]:.1f} s", flush=True)
    print(json.dumps({"net": net, "epochs": epochs, "weight_decay": wd, "augment": augment, "test_accuracy": acc, "median_epoch_s": sorted(times)[len(times) // 2]}))


if __name__ == "__main__":
    main()
