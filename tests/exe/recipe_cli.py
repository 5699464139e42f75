#!/usr/bin/env python3
"""A network's training recipe (`recipe { ... }` in its .cnn) as the defaults of `X train`:
- `X info` prints each field with where its value comes from: the .cnn line, a flag, or the default;
- `X train --help` shows every default that applies, the recipe's with its line;
- a flag wins over the recipe, and a bad flag value is refused with exit 2 and the rule it breaks;
- `X train` with no recipe flags trains exactly as with the recipe's values spelt out as flags
  (identical per-epoch losses), and a flag that changes a field changes the run;
- a network without a recipe gets SGD with momentum 0.9 and a cosine schedule.

Usage: recipe_cli.py CNNC NETS_DIR LENET5_EXE KERNEL_CACHE
"""
import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import check, expect, failures, run, write_fashion_slice  # noqa: E402

NO_RECIPE = """network plain {
  input(1, 28, 28)
  flatten
  linear(10)
}
"""


def where(nets, key):
    """The line:col of `key =` in nets/lenet5.cnn's recipe, as the executable reports it."""
    for i, line in enumerate(open(f"{nets}/lenet5.cnn"), 1):
        m = re.match(rf"(\s*){key} = ", line)
        if m:
            return f"lenet5.cnn:{i}:{len(m.group(1)) + 1}"
    raise SystemExit(f"nets/lenet5.cnn has no recipe field {key}")


def losses(folder):
    return [json.loads(line)["train_loss"] for line in open(f"{folder}/log.jsonl")]


def main():
    cnnc, nets, exe, cache = sys.argv[1:5]
    lr_at = where(nets, "lr")
    r = run([exe, "info"])
    expect("info prints the recipe", r, 0, "recipe    sgd lr 0.05 momentum 0.9, cosine, 10 epochs of batch 64 (recipe of", lr_at)
    check("info: a field the recipe leaves out is the default",
          re.search(r"^  weight_decay +0 +default$", r.stdout, re.M) is not None)
    check("info: fields of another schedule are left out", "step_size" not in r.stdout and "milestones" not in r.stdout)
    r = run([exe, "info", "--lr", "0.2", "--schedule", "step"])
    expect("info shows which fields came from flags", r, 0, "flags: --lr --schedule")
    check("info: --lr is the flag's", re.search(r"^  lr +0.2 +flag --lr$", r.stdout, re.M) is not None)
    check("info: step_size appears with schedule step", re.search(r"^  step_size +30 +default$", r.stdout, re.M) is not None)
    r = run([exe, "train", "--help"])
    expect("train --help shows the recipe's defaults", r, 0, "--lr FLOAT=0.05", "--batch INT=64", lr_at, "--weight-decay FLOAT=0",
           "--augment,--no-augment{false}", "--out TEXT=run", "--seed UINT=0")
    expect("a negative --lr", run([exe, "train", "--lr", "-1"]), 2, "--lr: got -1, but it must be > 0")
    expect("an unknown --optimizer", run([exe, "train", "--optimizer", "lion"]), 2, "must be one of sgd, adam, adamw, rmsprop")
    expect("--momentum 1", run([exe, "train", "--momentum", "1"]), 2, "--momentum: got 1, but it must be >= 0 and < 1")

    with tempfile.TemporaryDirectory() as d:
        write_fashion_slice(d, {"train": 640, "t10k": 128})
        base = [exe, "train", "--data", d, "--epochs", "2"]
        a = run(base + ["--out", f"{d}/a"])
        expect("train with the recipe", a, 0, "lenet5: sgd lr 0.05 momentum 0.9, cosine, 2 epochs of batch 64 (recipe of", "flags: --epochs --data")
        b = run(base + ["--batch", "64", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9", "--schedule", "cosine", "--out", f"{d}/b"])
        expect("train with the recipe spelt out", b, 0)
        c = run(base + ["--momentum", "0", "--out", f"{d}/c"])
        expect("train with --momentum 0", c, 0, "lenet5: sgd lr 0.05, cosine")
        if not failures:
            la, lb, lc = losses(f"{d}/a"), losses(f"{d}/b"), losses(f"{d}/c")
            check("the recipe trains as its flags do (identical losses)", la == lb, f"{la} vs {lb}")
            check("a flag changes the run", la != lc, f"{la} vs {lc}")

        open(f"{d}/plain.cnn", "w").write(NO_RECIPE)
        r = run([cnnc, f"{d}/plain.cnn", "-o", f"{d}/plain", "--cache-dir", cache])
        expect("compile a net without a recipe", r, 0)
        r = run([f"{d}/plain", "info"])
        expect("no recipe: SGD momentum 0.9, cosine", r, 0, "recipe    sgd lr 0.01 momentum 0.9, cosine, 10 epochs of batch 128 (defaults: the network has no recipe)")

    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
