#!/usr/bin/env python3
"""Trains a cnnc-built segmentation net (docs/tutorial-unet.md) for a few SGD steps with `X step`, on
synthetic data: noisy 1x64x64 images with a bright rectangle, whose mask (class 1) is the rectangle.
Prints the loss and the pixel accuracy of each step's batch.

Usage: unet_steps.py EXE [--steps 30] [--batch 8] [--lr 0.1]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "torch"))
import st  # noqa: E402


def batch(rng, n):
    x = rng.normal(0, 0.3, (n, 1, 64, 64)).astype(np.float32)
    y = np.zeros((n, 64, 64), np.int64)
    for i in range(n):
        t, l = rng.integers(0, 40, 2)
        h, w = rng.integers(8, 24, 2)
        x[i, 0, t:t + h, l:l + w] += 1.0
        y[i, t:t + h, l:l + w] = 1
    return x, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exe")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.1)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([a.exe, "export-weights", f"{d}/w", "--seed", "1"], check=True)
        for s in range(a.steps):
            x, y = batch(rng, a.batch)
            st.save(f"{d}/x", {"input": x})
            st.save(f"{d}/y", {"labels": y})
            subprocess.run([a.exe, "step", "--weights", f"{d}/w", "--input", f"{d}/x", "--labels", f"{d}/y", "--lr", str(a.lr),
                            "--output", f"{d}/o"], check=True, capture_output=True)
            out = st.load(f"{d}/o")
            st.save(f"{d}/w", {k: v for k, v in out.items() if k != "loss" and not k.startswith("grad.")})
            subprocess.run([a.exe, "infer", "--weights", f"{d}/w", "--input", f"{d}/x", "--output", f"{d}/p"], check=True)
            acc = float((st.load(f"{d}/p")["output"].argmax(1) == y).mean())
            if s % 5 == 0 or s == a.steps - 1:
                print(f"step {s + 1:3d}: loss {float(out['loss']):.4f}, pixel accuracy (inference mode) {acc:.3f}")


if __name__ == "__main__":
    main()
