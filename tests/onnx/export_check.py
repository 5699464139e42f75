#!/usr/bin/env python3
"""ONNX export against PyTorch: `cnnc NET.cnn --emit=onnx --weights W` for each net, then

  1. onnx.checker.check_model(full_check=True) and strict shape inference, which must give the
     output shape [N, ...] with a symbolic batch N;
  2. every float tensor of the PyTorch model's state_dict is an initializer of the same name and
     the same values (shapes may differ where ONNX broadcasts: a PRelu slope as [C,1,1]);
  3. the model, run by tests/onnx/onnx_eval.py (each op by its ONNX definition) in float64 at batch
     3, equals the PyTorch reference model run in float64 with the same weights:
         max |onnx - torch| <= TOL * (1 + max |torch|),  TOL = 1e-6
     Both run in float64 from the same float32 weights; what differs is the constants that ONNX
     stores as float32 attributes (LeakyRelu's 0.01 is 0.0099999998, HardSigmoid's 1/6 is
     0.16666667, BN's eps), up to 6e-8 relative each, amplified through deep nets: MobileNetV3-Large
     at 224 differed by 2.9e-7 of its output scale, and by 1.4e-9 with HardSigmoid's 1/6 made exact
     in the interpreter. A real mistake (a wrong pad, a swapped attribute) is far above the bound.

Usage: export_check.py --cnnc CNNC --nets DIR --net NAME[:C,H,W] [NAME...] [--opset 13]
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper, shape_inference

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "torch"))
sys.path.insert(0, HERE)
import net_cases  # noqa: E402
import onnx_eval  # noqa: E402
import reference_models  # noqa: E402
import st  # noqa: E402
from parity import randomize  # noqa: E402

TOL = 1e-6


def check_net(a, net, shape_arg, d):
    gen = torch.Generator().manual_seed(1234)
    model = reference_models.build(net, meta=False).eval()
    randomize(model, gen)
    shape = tuple(int(x) for x in shape_arg.split(",")) if shape_arg else reference_models.input_shape(net)
    wpath, opath = os.path.join(d, net + ".safetensors"), os.path.join(d, net + ".onnx")
    st.save(wpath, model.state_dict())
    src = net_cases.cnn_source(a.nets, net)
    cmd = [a.cnnc, src, "--emit=onnx", "-o", opath, "--weights", wpath, "--opset", str(a.opset)]
    if shape_arg:
        cmd += ["--input-shape", shape_arg]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return [f"cnnc --emit=onnx failed ({r.returncode}): {r.stderr.strip()}"]
    m = onnx.load(opath)
    onnx.checker.check_model(m, full_check=True)
    inferred = shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    dims = [dd.dim_param or dd.dim_value for dd in inferred.graph.output[0].type.tensor_type.shape.dim]
    fails = []
    if m.opset_import[0].version != a.opset:
        fails.append(f"opset {m.opset_import[0].version}, asked for {a.opset}")
    if dims[0] != "N":
        fails.append(f"output batch dimension {dims[0]!r}, not symbolic")
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for name, t in model.state_dict().items():
        if t.dtype != torch.float32:
            continue
        if name not in inits:
            fails.append(f"state_dict tensor {name} is not an initializer")
        elif not np.array_equal(inits[name].reshape(-1), t.numpy().reshape(-1)):
            fails.append(f"initializer {name} differs from the state_dict")
    model = model.double()
    for b in (3,):  # a batch above 1 shows a batch dimension mishandled anywhere; batch 1 adds nothing
        x = torch.randn((b,) + shape, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            ref = model(x)
            got = onnx_eval.run(m, {"input": x})["output"]
        net_cases.compare(fails, f"{net} opset {a.opset} input {(b,) + shape}", got.numpy(), ref.numpy(), TOL, f", {len(m.graph.node)} nodes")
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnnc", required=True)
    ap.add_argument("--nets", required=True, help="folder of the .cnn files (then tests/torch)")
    ap.add_argument("--net", required=True, nargs="+", help="NAME, or NAME:C,H,W for another input size")
    ap.add_argument("--opset", type=int, default=13)
    a = ap.parse_args()
    torch.set_num_threads(2)
    net_cases.run_cases(a.net, lambda net, shape, d: check_net(a, net, shape, d))

if __name__ == "__main__":
    main()
