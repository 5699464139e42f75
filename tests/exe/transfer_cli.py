#!/usr/bin/env python3
"""Transfer learning on the command line of a produced executable (LeNet-5, a 256-image slice of
Fashion-MNIST):
- `train --init` with a head of another shape fails, naming each tensor, its shapes, the layer,
  the .cnn line and --reinit-mismatched; `eval` keeps the strict loader;
- with --reinit-mismatched it runs: the notice names the layer, the backbone comes from the file
  and the head from --seed (checked value for value), the file's extra tensor is ignored;
- with --freeze the frozen tensors come out bit for bit as loaded, the others change, and the
  "frozen: ..." line counts tensors, parameters and skipped backward calls;
- `--freeze nosuchlayer`, an --init file with no matching tensor, --reinit-mismatched without
  --init, and a resume with another --freeze are errors that say what is wrong.

Usage: transfer_cli.py CNNC NETS_DIR KERNEL_CACHE
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import numpy as np  # noqa: E402
import st  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import check, expect, failures, run, write_fashion_slice  # noqa: E402,F401

# Backbone loaded from the file, head drawn by the same --seed, lr 1e-30: equal to those tensors (no rounding slack needed).
SAME_TOL = 1e-12
# A re-drawn head differs from the file's (--seed 3 against --seed 4) by far more than this.
DIFFERENT_MIN = 1e-3
# A head trained at lr 0.05 moves by far more than this; an untrained one does not move.
MOVED_MIN = 1e-4


def expect(name, r, code, *needles):
    msg = r.stderr + r.stdout
    missing = [n for n in needles if n not in msg]
    check(name, r.returncode == code and not missing, f"exit {r.returncode}")
    if r.returncode != code or missing:
        print(f"     expected exit {code} and {missing!r}\n     got: {msg.strip()[:1500]}")


def main():
    cnnc, nets, cache = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as d:
        data = f"{d}/data"
        os.mkdir(data)
        write_fashion_slice(data, {"train": 256, "t10k": 64})
        exe = f"{d}/lenet5"
        r = run([cnnc, f"{nets}/lenet5.cnn", "-o", exe, "--cache-dir", cache])
        expect("compile lenet5", r, 0, "lenet5")
        if r.returncode:
            return 1
        train = [exe, "train", "--data", data, "--epochs", "1", "--batch", "64"]

        # A "pretrained" LeNet-5 with a 5-class head and one tensor the network does not have.
        expect("export-weights", run([exe, "export-weights", f"{d}/w3.safetensors", "--seed", "3"]), 0)
        expect("export-weights --seed 4", run([exe, "export-weights", f"{d}/w4.safetensors", "--seed", "4"]), 0)
        w3, w4 = st.load(f"{d}/w3.safetensors"), st.load(f"{d}/w4.safetensors")
        pre = dict(w3)
        pre["fc3.weight"] = np.ones((5, 84), np.float32)
        pre["fc3.bias"] = np.ones((5,), np.float32)
        pre["aux.weight"] = np.zeros((3, 3), np.float32)
        st.save(f"{d}/pre.safetensors", pre)

        r = run(train + ["--init", f"{d}/pre.safetensors", "--out", f"{d}/a"])
        expect("--init with another head: error naming the tensors, shapes, layer, line and flag", r, 1,
               "2 tensors of network lenet5", "in layer fc3:", "'fc3.weight': the network needs [10,84], the file has [5,84] (declared at ",
               "'fc3.bias': the network needs [10], the file has [5]", "nets/lenet5.cnn:", "pass --reinit-mismatched")
        check("nothing trained after the error", not os.path.exists(f"{d}/a/weights.safetensors"))
        expect("eval keeps the strict loader", run([exe, "eval", "--weights", f"{d}/pre.safetensors", "--data", data]), 1,
               "unexpected tensor 'aux.weight'", "tensor 'fc3.weight' has shape [5,84] in the file")

        # --reinit-mismatched, with an lr so small that no weight moves: what training started from.
        r = run(train + ["--init", f"{d}/pre.safetensors", "--reinit-mismatched", "--seed", "4", "--lr", "1e-30", "--out", f"{d}/b"])
        expect("--reinit-mismatched runs and names the layer", r, 0, "note: loaded 8 of 10 tensors of network lenet5",
               "note: re-initialised layer 'fc3' at random (--reinit-mismatched, --seed 4): fc3.weight [10,84] (file: [5,84]), fc3.bias [10] (file: [5])",
               "note: ignored 1 tensor of", "that network lenet5 does not have: aux.weight")
        if r.returncode == 0:
            b = st.load(f"{d}/b/weights.safetensors")
            back = max(float(np.max(np.abs(b[k] - w3[k]))) for k in w3 if not k.startswith("fc3."))
            head = max(float(np.max(np.abs(b[k] - w4[k]))) for k in ("fc3.weight", "fc3.bias"))
            head0 = float(np.max(np.abs(b["fc3.weight"] - w3["fc3.weight"])))
            check("backbone from the file, head from --seed 4", back < SAME_TOL and head < SAME_TOL and head0 > DIFFERENT_MIN,
                  f"backbone off by {back:.2e}, head off --seed 4's init by {head:.2e} (and off --seed 3's by {head0:.2e})")

        # --freeze: the backbone stays bit for bit as loaded; the head trains.
        r = run(train + ["--init", f"{d}/pre.safetensors", "--reinit-mismatched", "--freeze", "conv1", "conv2", "fc1", "fc2",
                         "--lr", "0.05", "--out", f"{d}/c"])
        expect("--freeze with --init", r, 0, "frozen: 8 tensors (60856 parameters); backward calls: 3 of 21 run")
        if r.returncode == 0:
            c = st.load(f"{d}/c/weights.safetensors")
            same = all(c[k].tobytes() == w3[k].tobytes() for k in w3 if not k.startswith("fc3."))
            moved = float(np.max(np.abs(c["fc3.weight"] - w4["fc3.weight"])))
            check("frozen tensors bit for bit, the head trained", same and moved > MOVED_MIN, f"head moved by {moved:.2e}")

        expect("--freeze nosuchlayer", run(train + ["--freeze", "nosuchlayer", "--out", f"{d}/e"]), 1,
               "--freeze 'nosuchlayer' matches no parameter of network lenet5; its layers are: conv1, conv2, fc1, fc2, fc3")
        expect("--freeze of a part that does not exist lists that level", run(train + ["--freeze", "fc1.kernel", "--out", f"{d}/e"]), 1,
               "--freeze 'fc1.kernel' matches no parameter", "'fc1' has: fc1.weight, fc1.bias")
        expect("--freeze is whole components ('fc' is not 'fc1')", run(train + ["--freeze", "fc", "--out", f"{d}/e"]), 1, "--freeze 'fc' matches no parameter")
        expect("--freeze everything", run(train + ["--freeze", "conv1", "conv2", "fc1", "fc2", "fc3", "--out", f"{d}/e"]), 1, "leaves nothing to train")
        st.save(f"{d}/in.safetensors", {"input": np.zeros((2, 1, 32, 32), np.float32)})
        st.save(f"{d}/lab.safetensors", {"labels": np.array([1, 2], np.int64)})
        expect("step --freeze nosuchlayer", run([exe, "step", "--weights", f"{d}/w3.safetensors", "--input", f"{d}/in.safetensors", "--labels",
                                                 f"{d}/lab.safetensors", "--lr", "0.1", "--output", f"{d}/o.safetensors", "--freeze", "nosuchlayer"]),
               1, "--freeze 'nosuchlayer' matches no parameter")

        st.save(f"{d}/other.safetensors", {"features.0.weight": np.zeros((64, 3, 3, 3), np.float32), "conv1.weight": np.zeros((6, 1, 3, 3), np.float32)})
        expect("--init of a file with no matching tensor", run(train + ["--init", f"{d}/other.safetensors", "--reinit-mismatched", "--out", f"{d}/f"]), 1,
               "none of its 2 tensors matches a parameter of network lenet5", "is it the right file?", "features.0.weight")
        expect("--reinit-mismatched needs --init", run(train + ["--reinit-mismatched", "--out", f"{d}/g"]), 2, "--init")

        # A resumed run must freeze what the checkpoint froze (its optimizer state has only those tensors).
        r = run(train + ["--freeze", "fc1", "--momentum", "0.9", "--out", f"{d}/h"], {"CNNC_INTERRUPT_AT_STEP": "2"})
        expect("interrupted frozen run", r, 130, "frozen: 2 tensors")
        expect("resume without --freeze", run(train + ["--momentum", "0.9", "--out", f"{d}/h", "--resume"]), 1,
               "the checkpoint was trained with --freeze fc1; resume with the same --freeze")
        expect("resume with the same --freeze", run(train + ["--freeze", "fc1", "--momentum", "0.9", "--out", f"{d}/h", "--resume"]), 0, "test accuracy")
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
