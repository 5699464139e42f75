#!/usr/bin/env python3
"""`X train` end to end on a 3,000-image slice of Fashion-MNIST:
- it learns (test accuracy above 70% after 3 epochs, far above the 10% of chance);
- it writes log.jsonl (one line per epoch), curves.svg and weights.safetensors, and `X eval` agrees;
- a run interrupted mid-epoch (as by Ctrl-C) and resumed ends with byte-identical weights;
- a new run into an existing run folder, or resuming another network's checkpoint, is refused;
- a full disk while checkpointing (a file-size limit: every write past 64 KiB fails) stops the run with an
  error and leaves the previous checkpoint as it was, and resuming from it later ends as an
  uninterrupted run does.

Usage: train_resume.py CNNC NETS_DIR KERNEL_CACHE
"""
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import write_fashion_slice  # noqa: E402

# 3 epochs of LeNet-5 on 3,000 images must pass this test accuracy: far above chance (10%), below what it reaches.
MIN_TEST_ACCURACY = 0.70
# `X eval` recomputes the logged accuracy from the same weights and data: equal up to float formatting.
EVAL_ACCURACY_TOL = 1e-9


def main():
    cnnc, nets, cache = sys.argv[1:4]
    ok = True
    with tempfile.TemporaryDirectory() as d:
        write_fashion_slice(d, {"train": 3000, "t10k": 1000})
        exe = f"{d}/lenet5"
        subprocess.run([cnnc, f"{nets}/lenet5.cnn", "-o", exe, "--cache-dir", cache], check=True, capture_output=True)
        args = ["train", "--data", d, "--epochs", "3", "--batch", "32", "--lr", "0.05", "--momentum", "0.9", "--seed", "7"]
        r = subprocess.run([exe] + args + ["--out", f"{d}/a"], capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL uninterrupted run:\n" + r.stderr[-2000:])
            return 1
        log = [json.loads(line) for line in open(f"{d}/a/log.jsonl")]
        acc = log[-1]["test_accuracy"]
        print(f"3 epochs: test accuracy {acc:.4f}, log lines {len(log)}")
        ok &= len(log) == 3 and acc > MIN_TEST_ACCURACY
        ok &= os.path.getsize(f"{d}/a/curves.svg") > 1000 and open(f"{d}/a/curves.svg").read().startswith("<svg")
        ev = subprocess.run([exe, "eval", "--weights", f"{d}/a/weights.safetensors", "--data", d, "--json"], capture_output=True, text=True)
        e = json.loads(ev.stdout)
        print(f"eval: accuracy {e['accuracy']:.4f} (log says {acc:.4f})")
        ok &= abs(e["accuracy"] - acc) < EVAL_ACCURACY_TOL
        # Interrupted at step 150 of 279 (epoch 2, batch 57), then resumed.
        env = dict(os.environ, CNNC_INTERRUPT_AT_STEP="150")
        r = subprocess.run([exe] + args + ["--out", f"{d}/b"], capture_output=True, text=True, env=env)
        print(f"interrupted run: exit {r.returncode}, {r.stderr.strip().splitlines()[-2] if r.stderr.strip() else ''}")
        ok &= r.returncode == 130 and os.path.exists(f"{d}/b/checkpoint.safetensors")
        r = subprocess.run([exe] + args + ["--out", f"{d}/b", "--resume"], capture_output=True, text=True)
        ok &= r.returncode == 0
        same = open(f"{d}/a/weights.safetensors", "rb").read() == open(f"{d}/b/weights.safetensors", "rb").read()
        print(f"resumed run: exit {r.returncode}, final weights {'identical' if same else 'DIFFERENT'} to the uninterrupted run")
        ok &= same
        la = open(f"{d}/a/log.jsonl").read()
        lb = open(f"{d}/b/log.jsonl").read()
        strip = lambda s: [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in s.splitlines()]
        ok &= strip(la) == strip(lb)
        # A second run into the same folder is refused: nothing is overwritten.
        r = subprocess.run([exe] + args + ["--out", f"{d}/a"], capture_output=True, text=True)
        ok &= r.returncode == 1 and "already holds a training run" in r.stderr
        # A checkpoint of another network is refused by name.
        mini = f"{d}/minivgg"
        subprocess.run([cnnc, f"{nets}/minivgg.cnn", "-o", mini, "--cache-dir", cache], check=True, capture_output=True)
        r = subprocess.run([mini, "train", "--data", d, "--epochs", "4", "--out", f"{d}/a", "--resume", "--resize"], capture_output=True, text=True)
        print("other net's checkpoint:", r.stderr.strip().splitlines()[0] if r.stderr.strip() else "(no message)")
        ok &= r.returncode == 1 and "checkpoint of network 'lenet5'" in r.stderr
        ok &= full_disk(exe, d)
    print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


def small_disk():
    """In the child: writes past 64 KiB fail with EFBIG (SIGXFSZ ignored) as on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def full_disk(exe, d):
    args = ["train", "--data", d, "--batch", "32", "--lr", "0.05", "--momentum", "0.9", "--seed", "3"]
    ref = subprocess.run([exe] + args + ["--epochs", "2", "--out", f"{d}/full_ref"], capture_output=True, text=True)
    one = subprocess.run([exe] + args + ["--epochs", "1", "--out", f"{d}/full"], capture_output=True, text=True)
    if ref.returncode != 0 or one.returncode != 0:
        print("FAIL full disk: setup runs failed:\n" + ref.stderr[-1000:] + one.stderr[-1000:])
        return False
    before = open(f"{d}/full/checkpoint.safetensors", "rb").read()
    r = subprocess.run([exe] + args + ["--epochs", "2", "--out", f"{d}/full", "--resume"], capture_output=True, text=True,
                       preexec_fn=small_disk)
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "(no message)"
    print(f"full disk at the epoch-2 checkpoint: exit {r.returncode}, {last}")
    ok = r.returncode == 1 and "checkpoint" in r.stderr
    ok &= open(f"{d}/full/checkpoint.safetensors", "rb").read() == before
    ok &= not [f for f in os.listdir(f"{d}/full") if ".tmp" in f]
    r = subprocess.run([exe] + args + ["--epochs", "2", "--out", f"{d}/full", "--resume"], capture_output=True, text=True)
    same = r.returncode == 0 and open(f"{d}/full/weights.safetensors", "rb").read() == open(f"{d}/full_ref/weights.safetensors", "rb").read()
    print(f"previous checkpoint intact: {ok}; resumed with space again: exit {r.returncode}, weights "
          f"{'identical' if same else 'DIFFERENT'} to an uninterrupted 2-epoch run")
    return ok and same


if __name__ == "__main__":
    sys.exit(main())
