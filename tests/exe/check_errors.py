#!/usr/bin/env python3
"""Bad input to cnnc's code generator and to a produced executable: every case must fail with
exit status 1 (2 for a bad command line), a message that names the problem, and no crash; and
no half-written output may be left behind.

Usage: check_errors.py CNNC NETS_DIR KERNEL_CACHE
"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
import numpy as np  # noqa: E402
import st  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import check, expect, failures, run  # noqa: E402,F401


def png(path, w, h, grey):
    """A minimal 8-bit greyscale PNG (no PIL needed)."""
    raw = b"".join(b"\0" + bytes(grey[y * w:(y + 1) * w]) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def main():
    cnnc, nets, cache = sys.argv[1], sys.argv[2], sys.argv[3]
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "lenet5")
        r = run([cnnc, f"{nets}/lenet5.cnn", "-o", exe, "--cache-dir", cache])
        expect("compile lenet5", r, 0, "lenet5")
        if r.returncode:
            return 1
        # --- compiler ---
        expect("unknown target", run([cnnc, f"{nets}/lenet5.cnn", "-o", f"{d}/x", "--target", "z80-cpm"]), 1, "unknown target 'z80-cpm'")
        expect("missing output folder", run([cnnc, f"{nets}/lenet5.cnn", "-o", f"{d}/no/such/x"]), 1, "does not exist")
        expect("missing linker", run([cnnc, f"{nets}/lenet5.cnn", "-o", f"{d}/nolink", "--cache-dir", cache], {"CXX": "/nonexistent/c++"}), 1, "no C++ linker")
        leftovers = [f for f in os.listdir(d) if f.startswith("nolink")]
        ok = not leftovers
        print(f"{'ok  ' if ok else 'FAIL'} no half-written executable: {leftovers}")
        if not ok:
            failures.append("leftovers")
        # --- weights ---
        w = os.path.join(d, "w.safetensors")
        expect("export-weights", run([exe, "export-weights", w, "--seed", "3"]), 0)
        good = st.load(w)
        t = dict(good)
        del t["fc2.bias"]
        t["fc9.weight"] = np.zeros((2, 2), np.float32)
        t["conv1.weight"] = np.zeros((6, 1, 3, 3), np.float32)
        st.save(f"{d}/bad.safetensors", t)
        x = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
        st.save(f"{d}/in.safetensors", {"input": x})
        r = run([exe, "infer", "--weights", f"{d}/bad.safetensors", "--input", f"{d}/in.safetensors", "--output", f"{d}/out.safetensors"])
        expect("mismatched weights name every tensor and line", r, 1, "missing tensor 'fc2.bias' [84]", "nets/lenet5.cnn:", "unexpected tensor 'fc9.weight'",
               "tensor 'conv1.weight' has shape [6,1,3,3] in the file, but the network needs [6,1,5,5]")
        ok = not os.path.exists(f"{d}/out.safetensors")
        print(f"{'ok  ' if ok else 'FAIL'} nothing ran with partial weights")
        if not ok:
            failures.append("partial")
        blob = open(w, "rb").read()
        open(f"{d}/trunc.safetensors", "wb").write(blob[: len(blob) - 100])
        expect("truncated weights", run([exe, "infer", "--weights", f"{d}/trunc.safetensors", "--input", f"{d}/in.safetensors", "--output", f"{d}/o"]), 1, "trunc.safetensors")
        open(f"{d}/junk.safetensors", "wb").write(b"\xff" * 64)
        expect("garbage weights", run([exe, "infer", "--weights", f"{d}/junk.safetensors", "--input", f"{d}/in.safetensors", "--output", f"{d}/o"]), 1, "junk.safetensors")
        # --- input ---
        st.save(f"{d}/in3.safetensors", {"input": np.zeros((2, 3, 32, 32), np.float32)})
        expect("wrong input shape", run([exe, "infer", "--weights", w, "--input", f"{d}/in3.safetensors", "--output", f"{d}/o"]), 1,
               "has shape [2,3,32,32], but lenet5 takes [N,1,32,32]")
        st.save(f"{d}/noinput.safetensors", {"x": np.zeros((1, 1, 32, 32), np.float32)})
        expect("no 'input' tensor", run([exe, "infer", "--weights", w, "--input", f"{d}/noinput.safetensors", "--output", f"{d}/o"]), 1, "no tensor named 'input'")
        expect("batch too large for memory", run([exe, "bench", "--batch", "2000000000"]), 1, "use a smaller batch")
        expect("unwritable output", run([exe, "infer", "--weights", w, "--input", f"{d}/in.safetensors", "--output", f"{d}/no/dir/o.safetensors"]), 1, "cannot write")
        # --- predict ---
        open(f"{d}/broken.png", "wb").write(b"\x89PNG\r\n\x1a\nnot really")
        expect("unreadable image", run([exe, "predict", "--weights", w, f"{d}/broken.png"]), 1, "cannot read image")
        expect("missing image", run([exe, "predict", "--weights", w, f"{d}/nope.png"]), 1, "cannot read image")
        # A JPEG whose Huffman table declares 510 codes: stb 2.27 would write past its arrays.
        dht = bytes([0xFF, 0xD8, 0xFF, 0xC4]) + (2 + 17 + 510).to_bytes(2, "big") + bytes([0x00, 255, 255] + [0] * 14) + bytes(510)
        open(f"{d}/dht.jpg", "wb").write(dht + bytes([0xFF, 0xD9]))
        expect("corrupt JPEG Huffman table", run([exe, "predict", "--weights", w, f"{d}/dht.jpg"]), 1, "corrupt JPEG (a Huffman table declares more than 256 codes)")
        png(f"{d}/img.png", 28, 28, [(x * 9) % 256 for x in range(28 * 28)])
        open(f"{d}/labels.txt", "w").write("\n".join(f"label{i}" for i in range(10)) + "\n")
        r = run([exe, "predict", "--weights", w, "--labels", f"{d}/labels.txt", "--top", "3", f"{d}/img.png"])
        expect("predict a PNG", r, 0, "1. label", "3. label")
        # --- folder data: train/ and test/ with one subfolder of PNG images per class ---
        def folder_set(root, train_classes, test_classes, per=3):
            for split, classes in (("train", train_classes), ("test", test_classes)):
                for k, c in enumerate(classes):
                    os.makedirs(f"{root}/{split}/{c}", exist_ok=True)
                    for i in range(per):
                        png(f"{root}/{split}/{c}/{i}.png", 28, 28, [(x * (k + 2) + i * 17) % 256 for x in range(28 * 28)])
        folder_set(f"{d}/fold", ["a", "b"], ["a", "b"])
        r = run([exe, "train", "--data", f"{d}/fold", "--format", "folder", "--epochs", "1", "--batch", "2", "--out", f"{d}/frun"])
        expect("train on a folder data set", r, 0, "test accuracy")
        # --limit N trains on the first N training images only (the test split stays whole), and a resumed
        # run must give the same --limit.
        r = run([exe, "train", "--data", f"{d}/fold", "--limit", "4", "--epochs", "1", "--batch", "2", "--out", f"{d}/lrun"])
        expect("train --limit 4", r, 0, "--limit 4: training on 4 of the 6 training images; the test split keeps all 6", "4/4")
        expect("resume without the checkpoint's --limit", run([exe, "train", "--data", f"{d}/fold", "--epochs", "1", "--batch", "2", "--out", f"{d}/lrun", "--resume"]), 1,
               "the checkpoint was trained with --limit 4; resume with the same --limit")
        expect("train --limit 0", run([exe, "train", "--data", f"{d}/fold", "--limit", "0", "--out", f"{d}/l0run"]), 2,
               "--limit", "got 0, but it must be at least 1 (the number of training images to use)")
        r = run([exe, "eval", "--weights", f"{d}/frun/weights.safetensors", "--data", f"{d}/fold"])
        expect("eval on a folder data set (format detected)", r, 0, "6 test images")
        expect("missing --data folder", run([exe, "eval", "--weights", w, "--data", f"{d}/nowhere"]), 1,
               f"data folder '{d}/nowhere' does not exist")
        os.makedirs(f"{d}/emptydata")
        expect("unknown data layout", run([exe, "eval", "--weights", w, "--data", f"{d}/emptydata"]), 1,
               "cannot tell the format", "IDX files", "CIFAR-10 binary batches", "train/ and test/")
        folder_set(f"{d}/mism", ["a", "b"], ["a", "c"], per=1)
        expect("train and test classes differ", run([exe, "eval", "--weights", w, "--data", f"{d}/mism"]), 1,
               f"the classes of {d}/mism/test (a, c) differ from those of {d}/mism/train (a, b)")
        folder_set(f"{d}/twelve", [f"c{k:02d}" for k in range(12)], [f"c{k:02d}" for k in range(12)], per=1)
        expect("more classes than outputs", run([exe, "train", "--data", f"{d}/twelve", "--epochs", "1", "--out", f"{d}/trun"]), 1,
               "the data set has 12 classes but network lenet5 has 10 outputs")
        folder_set(f"{d}/corrupt", ["a", "b"], ["a", "b"], per=1)
        open(f"{d}/corrupt/train/b/0.png", "wb").write(b"\x89PNG\r\n\x1a\ngarbage")
        expect("corrupt image in a folder data set", run([exe, "train", "--data", f"{d}/corrupt", "--epochs", "1", "--out", f"{d}/crun"]), 1,
               f"cannot read image '{d}/corrupt/train/b/0.png'")
        # --- --inference-only: the same inference, no training step, and a message that says why ---
        ie = os.path.join(d, "lenet5_infer")
        r = run([cnnc, f"{nets}/lenet5.cnn", "--inference-only", "-o", ie, "--cache-dir", cache])
        expect("compile --inference-only", r, 0, "lenet5_infer")
        full_k = int(run([cnnc, f"{nets}/lenet5.cnn", "-o", f"{d}/again", "--cache-dir", cache]).stderr.split(" kernels")[0].split()[-1])
        infer_k = int(r.stderr.split(" kernels")[0].split()[-1])
        check("--inference-only compiles fewer kernels", infer_k < full_k, f"{infer_k} of {full_k}")
        for name, e in (("full", exe), ("inference-only", ie)):
            expect(f"infer, {name} build", run([e, "infer", "--weights", w, "--input", f"{d}/in.safetensors", "--output", f"{d}/{name}.safetensors"]), 0)
        check("--inference-only infers exactly as the full build",
              np.array_equal(st.load(f"{d}/full.safetensors")["output"], st.load(f"{d}/inference-only.safetensors")["output"]))
        why = "network lenet5 has no training step: it was built with --inference-only (compile it without that flag to train)"
        expect("train an inference-only build", run([ie, "train", "--data", f"{d}/fold", "--epochs", "1", "--out", f"{d}/irun"]), 1, why)
        expect("step an inference-only build", run([ie, "step", "--weights", w, "--input", f"{d}/in.safetensors", "--labels", "x", "--lr", "0.1", "--output", f"{d}/o"]), 1, why)
        expect("bench --train an inference-only build", run([ie, "bench", "--train"]), 1, why)
        expect("info of an inference-only build", run([ie, "info"]), 0, "training  none: it was built with --inference-only")
        # --- command line ---
        expect("unknown subcommand", run([exe, "frobnicate"]), 2)
        expect("infer without --weights", run([exe, "infer", "--input", "a", "--output", "b"]), 2, "--weights")
        expect("--help", run([exe, "infer", "--help"]), 0, "--weights")
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
