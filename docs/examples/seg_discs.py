#!/usr/bin/python3
"""Writes a small segmentation data set in the folder layout `X train` reads (docs/training.md):
OUT/train/images/NNN.png and OUT/train/masks/NNN.png (and OUT/test/...), 1x48x32 greyscale images
of a bright disc on noise, masks 0 (background) and 255 (disc).

    /usr/bin/python3 docs/examples/seg_discs.py OUT [--train 200] [--test 50] [--seed 0]
"""
import argparse
import os

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--test", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    h, w = 48, 32
    yy, xx = np.mgrid[0:h, 0:w]
    for split, count in (("train", a.train), ("test", a.test)):
        for sub in ("images", "masks"):
            os.makedirs(f"{a.out}/{split}/{sub}", exist_ok=True)
        for i in range(count):
            cy, cx, r = rng.uniform(12, h - 12), rng.uniform(8, w - 8), rng.uniform(5, 10)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            img = np.clip(rng.normal(70, 25, (h, w)) + 110 * disc, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(f"{a.out}/{split}/images/{i:03d}.png")
            Image.fromarray((disc * 255).astype(np.uint8)).save(f"{a.out}/{split}/masks/{i:03d}.png")
    print(f"{a.out}: {a.train} training and {a.test} test images with masks")


if __name__ == "__main__":
    main()
