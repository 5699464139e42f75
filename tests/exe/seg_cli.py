#!/usr/bin/env python3
"""A segmentation net's executable (U-Net, per-pixel scores [K,H,W]) on the command line: `step`
takes a label per pixel and says so when given one per image or a class out of range (naming the
image and pixel); `train` and `eval` given a classification data set say that the net needs a
segmentation one; `infer` writes the [N,K,H,W] map. (Training on segmentation folders:
seg_train.py.)

Usage: seg_cli.py EXE (built from nets/unet.cnn with --input-shape 1,48,32)
"""
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import st  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import check, expect, failures, run  # noqa: E402


def main():
    exe = sys.argv[1]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        w = f"{d}/w.safetensors"
        expect("export-weights", run([exe, "export-weights", w, "--seed", "1"]), 0)
        st.save(f"{d}/x", {"input": rng.standard_normal((2, 1, 48, 32)).astype(np.float32)})
        step = [exe, "step", "--weights", w, "--input", f"{d}/x", "--lr", "0.1", "--output", f"{d}/o"]
        st.save(f"{d}/per_image", {"labels": np.array([0, 1], np.int64)})
        expect("labels per image", run(step + ["--labels", f"{d}/per_image"]), 1, "has shape [2], expected [2,48,32] (one per pixel)")
        bad = rng.integers(0, 2, (2, 48, 32))
        bad[1, 3, 5] = 2
        st.save(f"{d}/bad", {"labels": bad})
        expect("class out of range", run(step + ["--labels", f"{d}/bad"]), 1, "label 2 of image 1 (pixel 101) is out of range: the network has 2 classes")
        check("no output after a bad step", not os.path.exists(f"{d}/o"))
        st.save(f"{d}/good", {"labels": rng.integers(0, 2, (2, 48, 32))})
        r = run(step + ["--labels", f"{d}/good"])
        expect("step with a label per pixel", r, 0)
        out = st.load(f"{d}/o") if r.returncode == 0 else {}
        check("step writes the loss and every gradient", "loss" in out and "grad.outc.conv.weight" in out)
        expect("train on class folders", run([exe, "train", "--data", "fashion-mnist", "--epochs", "1", "--out", f"{d}/run"]), 1,
               "scores each pixel ([2,48,32]) and needs a segmentation data set", "images/ and masks/")
        expect("eval on class folders", run([exe, "eval", "--weights", w, "--data", "fashion-mnist"]), 1, "needs a segmentation data set")
        r = run([exe, "infer", "--weights", w, "--input", f"{d}/x", "--output", f"{d}/y"])
        expect("infer", r, 0)
        y = st.load(f"{d}/y")["output"] if r.returncode == 0 else np.zeros(0)
        check("infer writes [N,K,H,W]", y.shape == (2, 2, 48, 32), str(y.shape))
    print("all passed" if not failures else f"{len(failures)} failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
