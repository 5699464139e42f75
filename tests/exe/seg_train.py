#!/usr/bin/env python3
"""`X train` and `X eval` of a segmentation net (U-Net) on image + mask folders.

A synthetic set the test draws: 1x48x32 greyscale images of a bright disc on noise, masks 0/255
(the disc), in train/{images,masks} and test/{images,masks}. Checks:
  - training runs, logs per-pixel loss and pixel accuracy per epoch, and learns: the test pixel
    accuracy after 6 epochs beats the majority-class baseline by a margin, and the loss falls;
  - `eval` on the trained weights reports the same test pixel accuracy as the log's last epoch;
  - bad data: an image without a mask, a mask of another size, a test mask value the training masks
    do not hold, a mask with more values than the net has classes, images of another size than the
    net's input without --resize: each an error naming the file and what to do, exit status 1;
  - a classifier given segmentation folders says it needs a [K,H,W] net.

Usage: seg_train.py UNET_EXE CLASSIFIER_EXE  (nets/unet.cnn at --input-shape 1,48,32; nets/lenet5.cnn)
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import check, expect, failures, run  # noqa: E402


def write_set(root, n, rng, h=48, w=32):
    for split, count in (("train", n), ("test", max(4, n // 2))):
        os.makedirs(f"{root}/{split}/images", exist_ok=True)
        os.makedirs(f"{root}/{split}/masks", exist_ok=True)
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(count):
            cy, cx, r = rng.uniform(12, h - 12), rng.uniform(8, w - 8), rng.uniform(5, 10)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img = np.clip(rng.normal(70, 25, (h, w)) + 110 * disc, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(f"{root}/{split}/images/{i:03d}.png")
            Image.fromarray((disc * 255).astype(np.uint8)).save(f"{root}/{split}/masks/{i:03d}.png")


def main():
    unet, lenet = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as d:
        data = f"{d}/discs"
        write_set(data, 24, rng)
        r = run([unet, "train", "--data", data, "--epochs", "6", "--batch", "4", "--optimizer", "adam", "--lr", "0.001", "--out", f"{d}/run"])
        expect("train on segmentation folders", r, 0, "test pixel accuracy")
        log = [json.loads(line) for line in open(f"{d}/run/log.jsonl")] if r.returncode == 0 else []
        check("one log line per epoch", len(log) == 6, str(len(log)))
        if log:
            masks = [np.array(Image.open(f"{data}/test/masks/{f}")) for f in sorted(os.listdir(f"{data}/test/masks"))]
            baseline = max(np.mean(np.concatenate([m.ravel() for m in masks]) == v) for v in (0, 255))
            acc = log[-1]["test_accuracy"]
            print(f"test pixel accuracy {acc:.4f} after 6 epochs; majority-class baseline {baseline:.4f}; "
                  f"train loss {log[0]['train_loss']:.4f} -> {log[-1]['train_loss']:.4f}")
            check("learns beyond the majority class", acc > baseline + 0.03, f"{acc:.4f} vs {baseline:.4f}")
            check("the training loss falls", log[-1]["train_loss"] < log[0]["train_loss"])
            r = run([unet, "eval", "--weights", f"{d}/run/weights.safetensors", "--data", data, "--json"])
            expect("eval on segmentation folders", r, 0)
            if r.returncode == 0:
                e = json.loads(r.stdout.strip().splitlines()[-1])
                check("eval's pixel accuracy equals the log's", abs(e["accuracy"] - acc) < 1e-9, f"{e['accuracy']} vs {acc}")

        def broken(name, change, *needles, extra=()):
            bad = f"{d}/{name}"
            shutil.copytree(data, bad)
            change(bad)
            expect(name, run([unet, "train", "--data", bad, "--epochs", "1", "--out", f"{bad}/run"] + list(extra)), 1, *needles)
            check(f"{name}: nothing written", not os.path.exists(f"{bad}/run/log.jsonl"))

        broken("image without a mask", lambda b: os.remove(f"{b}/train/masks/005.png"), "train/images/005.png' has no mask", "masks/005.png")
        broken("mask of another size", lambda b: Image.new("L", (31, 48)).save(f"{b}/train/masks/002.png"),
               "train/masks/002.png' is 48x31 but its image is 48x32")
        broken("test mask value unknown", lambda b: Image.fromarray(np.full((48, 32), 7, np.uint8)).save(f"{b}/test/masks/001.png"),
               "test/masks/001.png' holds the value 7 at (0, 0), which no training mask holds (they hold 0, 255)")
        broken("more mask values than classes", lambda b: Image.fromarray(np.full((48, 32), 9, np.uint8)).save(f"{b}/train/masks/000.png"),
               "the masks hold 3 values (0, 9, 255)", "scores 2 classes per pixel")

        def bigger(b):
            for split in ("train", "test"):
                for sub in ("images", "masks"):
                    for f in os.listdir(f"{b}/{split}/{sub}"):
                        p = f"{b}/{split}/{sub}/{f}"
                        Image.open(p).resize((40, 60), Image.NEAREST).save(p)
        broken("images of another size", bigger, "segmentation images are 60x40 but the network takes 48x32", "--resize")
        r = run([unet, "train", "--data", f"{d}/images of another size", "--epochs", "1", "--batch", "4", "--resize", "--out", f"{d}/resized"])
        expect("--resize trains on 60x40 images", r, 0)
        expect("a classifier on segmentation folders", run([lenet, "train", "--data", data, "--epochs", "1", "--out", f"{d}/lenet"]), 1,
               "this is a segmentation data set (images/ and masks/)", "[K,H,W]")
    print("all passed" if not failures else f"{len(failures)} failed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
