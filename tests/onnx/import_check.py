#!/usr/bin/env python3
"""ONNX import against PyTorch. For each net:

  1. the PyTorch reference model gets random weights (parity.py's randomize) and is exported
     - `torch`: by torch.onnx.export at opset 13 (dynamic batch, batch norm kept as BatchNormalization:
       training=PRESERVE of an eval model, constant folding off, so parameters keep state_dict names), or
     - `cnnc`: by `cnnc NET.cnn --emit=onnx --weights W` (the round trip);
  2. `cnnc import MODEL.onnx -o NET.cnn` writes the .cnn and its weights; every float tensor of the
     state_dict must be among the weights under the same name and with the same values;
  3. the imported .cnn compiles, and `X infer --weights` on random inputs at batch 1 and 3 (--batches) matches
     PyTorch's output within the forward bound 1e-4 x (1 + max |torch|) (parity.py's), or for the round
     trip equals the original .cnn's output exactly (its parity with PyTorch is parity.py's test);
  4. with --step NET: the imported net's training step (loss, every gradient, the SGD update, batch
     norm's running statistics) matches PyTorch's (tests/torch/step_parity.py on the imported build).

Usage: import_check.py --cnnc CNNC --nets DIR --cache-dir DIR --via torch|cnnc --net NAME[:C,H,W] [NAME...] [--batches 1,3]
       [--step NAME...]
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "torch"))
sys.path.insert(0, HERE)
import net_cases  # noqa: E402
import reference_models  # noqa: E402
import st  # noqa: E402
from parity import TOL, randomize  # noqa: E402


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr.strip()}")
    return r


def check_net(a, net, shape_arg, d):
    gen = torch.Generator().manual_seed(4321)
    model = reference_models.build(net, meta=False).eval()
    randomize(model, gen)
    shape = tuple(int(x) for x in shape_arg.split(",")) if shape_arg else reference_models.input_shape(net)
    onnx_path = os.path.join(d, net + ".onnx")
    if a.via == "torch":
        x = torch.randn((1,) + shape, generator=gen)
        torch.onnx.export(model, x, onnx_path, opset_version=13, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, training=torch.onnx.TrainingMode.PRESERVE,
                          do_constant_folding=False)
    else:
        wpath = os.path.join(d, net + ".orig.safetensors")
        st.save(wpath, model.state_dict())
        src = net_cases.cnn_source(a.nets, net)
        run([a.cnnc, src, "--emit=onnx", "-o", onnx_path, "--weights", wpath] + (["--input-shape", shape_arg] if shape_arg else []))
    cnn, weights, exe = (os.path.join(d, net + "_imported" + ext) for ext in (".cnn", ".safetensors", ""))
    r = run([a.cnnc, "import", onnx_path, "-o", cnn])
    fails = [f"import note: {line}" for line in r.stderr.splitlines() if "note:" in line]
    got = st.load(weights)
    for name, t in model.state_dict().items():
        if t.dtype != torch.float32:
            continue
        if name not in got:
            fails.append(f"state_dict tensor {name} is not among the imported weights")
        elif not np.array_equal(np.asarray(got[name]).reshape(-1), t.numpy().reshape(-1)):
            fails.append(f"imported {name} differs from the state_dict")
    # Only a net whose training step is checked below needs the training kernels.
    run([a.cnnc, cnn, "-o", exe, "--cache-dir", a.cache_dir] + ([] if net in (a.step or []) else ["--inference-only"]))
    orig_exe = None
    if a.via == "cnnc":  # the round trip: the original .cnn, built (its kernels are cached) to compare with
        orig_exe = os.path.join(d, net + "_original")
        run([a.cnnc, src, "-o", orig_exe, "--cache-dir", a.cache_dir, "--inference-only"] + (["--input-shape", shape_arg] if shape_arg else []))
    for b in a.batches:
        x = torch.randn((b,) + shape, generator=gen)
        ipath, opath = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
        st.save(ipath, {"input": x})
        run([exe, "infer", "--weights", weights, "--input", ipath, "--output", opath])
        out = st.load(opath)["output"]
        if orig_exe:
            # Equal to the original net's output: the same layers, so the same kernels and the same bits
            # (a random-weight MobileNetV3-Large at 64x64 is ill-conditioned enough that float32 PyTorch
            # misses float64 by more than the forward bound; the original and the import agree exactly).
            run([orig_exe, "infer", "--weights", wpath, "--input", ipath, "--output", opath])
            net_cases.compare(fails, f"{net} re-imported vs original, input {(b,) + shape}", out, st.load(opath)["output"], 0.0)
        else:
            with torch.no_grad():
                ref = model(x).numpy()
            net_cases.compare(fails, f"{net} via {a.via} input {(b,) + shape}", out, ref, TOL)
    if net in (a.step or []):
        # The imported net trains: one SGD step from the same weights and batch as PyTorch's.
        r = subprocess.run([sys.executable, os.path.join(HERE, "..", "torch", "step_parity.py"), "--exe", exe, "--net", net, "--batch", "2"]
                           + (["--shape", shape_arg] if shape_arg else []), capture_output=True, text=True)
        summary = [line for line in r.stdout.splitlines() if line.startswith(("ok ", "FAIL "))]
        print(f"{'ok' if r.returncode == 0 else 'FAIL'} {net} imported, training step against PyTorch: {summary[-1] if summary else r.stdout[-300:]}")
        if r.returncode != 0:
            fails.append(f"{net}: the imported net's training step differs from PyTorch's:\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnnc", required=True)
    ap.add_argument("--nets", required=True, help="folder of the .cnn files (then tests/torch)")
    ap.add_argument("--cache-dir", required=True, help="kernel cache for the compiles")
    ap.add_argument("--via", choices=["torch", "cnnc"], required=True)
    ap.add_argument("--net", required=True, nargs="+", help="NAME, or NAME:C,H,W for another input size")
    ap.add_argument("--batches", type=lambda v: [int(b) for b in v.split(",")], default=[1, 3],
                    help="batch sizes to run (default 1,3; each run loads the weights again)")
    ap.add_argument("--step", nargs="*", help="nets whose imported build also takes one training step against PyTorch's")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    net_cases.run_cases(a.net, lambda net, shape, d: check_net(a, net, shape, d))

if __name__ == "__main__":
    main()
