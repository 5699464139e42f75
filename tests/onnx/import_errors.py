#!/usr/bin/env python3
"""`cnnc import` on bad input: each case must exit 1 with its error text, write nothing, and not crash.

Cases (models built with onnx.helper): garbage bytes, a truncated model, an empty file, a graph with a
cycle, a node reading a value nothing computes, external data whose file is missing, an initializer with
fewer values than its shape, an op import does
not know (the error names the node, its op type and opset and lists the ops import reads), a dynamic
image size, a missing file, a transpose of height and width, and a pool on a channels-last tensor. Then one good model, to show that the same command works.

Usage: import_errors.py --cnnc CNNC
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_model(dims=(1, 3, 8, 8), extra_nodes=(), nodes=None, inits=None):
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "c.weight")
    nodes = list(nodes) if nodes is not None else [helper.make_node("Conv", ["input", "c.weight"], ["y"], name="c", pads=[1, 1, 1, 1]),
                                                    *extra_nodes]
    out = nodes[-1].output[0]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *dims[1:]])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", "c", "h", "w"])], [w] + list(inits or []))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnnc", required=True)
    a = ap.parse_args()
    fails = 0
    with tempfile.TemporaryDirectory() as d:
        def case(name, data_or_model, expect, rc=1):
            nonlocal fails
            path = os.path.join(d, name + ".onnx")
            if isinstance(data_or_model, bytes):
                open(path, "wb").write(data_or_model)
            elif data_or_model is not None:
                open(path, "wb").write(data_or_model.SerializeToString())
            out = os.path.join(d, name + ".cnn")
            r = subprocess.run([a.cnnc, "import", path, "-o", out], capture_output=True, text=True, timeout=60)
            written = [f for f in os.listdir(d) if f.startswith(name + ".") and not f.endswith(".onnx") and not f.endswith(".bin")]
            ok = r.returncode == rc and all(e in r.stderr for e in expect) and (rc == 0 or not written)
            print(f"{'ok' if ok else 'FAIL'} {name}: exit {r.returncode}: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
            if not ok:
                fails += 1
                print(f"  expected exit {rc} and {expect}; wrote {written}; stderr:\n{r.stderr}")

        good = conv_model(extra_nodes=[helper.make_node("Relu", ["y"], ["z"], name="r")])
        case("garbage", b"\x00\x01 this is not protobuf \xff\xfe" * 10, ["not an ONNX model"])
        case("empty", b"", ["not an ONNX model"])
        case("truncated", good.SerializeToString()[:60], ["not an ONNX model"])
        cyc = conv_model(nodes=[helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Relu", ["a"], ["b"], name="r2")])
        case("cycle", cyc, ["not valid ONNX", "topologically sorted"])
        dangling = conv_model(nodes=[helper.make_node("Add", ["input", "ghost"], ["y"], name="add")])
        case("dangling", dangling, ["not valid ONNX", "ghost"])
        ext = conv_model(extra_nodes=[helper.make_node("Relu", ["y"], ["z"], name="r")])
        t = ext.graph.initializer[0]
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        t.external_data.add(key="location", value="weights_missing.bin")
        case("external_missing", ext, ["c.weight", "weights_missing.bin", "cannot be read"])
        unknown = conv_model(extra_nodes=[helper.make_node("Einsum", ["y"], ["z"], name="weird", equation="ij->ji")])
        case("unsupported_op", unknown, ["node 'weird' (Einsum, opset 13)", "not supported by import", "Conv", "BatchNormalization"])
        case("dynamic_size", conv_model(dims=(1, 3, "H", "W"), extra_nodes=[helper.make_node("Relu", ["y"], ["z"], name="r")]),
             ["input 'input' has a dynamic dimension 2", "fixed input size"])
        short = conv_model(extra_nodes=[helper.make_node("Relu", ["y"], ["z"], name="r")])
        short.graph.initializer[0].raw_data = short.graph.initializer[0].raw_data[:20]
        case("short_initializer", short, ["c.weight"])
        case("missing_file", None, ["cannot open"])
        # A transpose that is not to channels last and back, and a channels-last tensor read by an op
        # that is not per pixel.
        swap = conv_model(extra_nodes=[helper.make_node("Transpose", ["y"], ["z"], name="swap", perm=[0, 1, 3, 2])])
        case("transpose_hw", swap, ["node 'swap' (Transpose, opset 13)", "channels last (0, 2, 3, 1) and back"])
        pool_cl = conv_model(extra_nodes=[helper.make_node("Transpose", ["y"], ["t"], name="to_nhwc", perm=[0, 2, 3, 1]),
                                          helper.make_node("MaxPool", ["t"], ["z"], name="pool_nhwc", kernel_shape=[2, 2])])
        case("pool_on_channels_last", pool_cl, ["node 'pool_nhwc' (MaxPool, opset 13)", "channels-last tensor"])
        case("good", good, ["-> "], rc=0)
    print("all cases passed" if not fails else f"{fails} case(s) failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
