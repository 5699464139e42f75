#!/usr/bin/env python3
"""The Python module of `cnnc NET.cnn --emit=python -o DIR` against the executable of the same net:
- net(x) equals `X infer` on the same weights and input;
- net.train_step(x, y, lr) gives `X step`'s loss, and state_dict() then holds `X step`'s updated
  parameters and batch-norm running statistics; net(x) after the step equals `X infer` on the
  weights net.save() wrote;
- two networks load into one process; the module imports without PyTorch;
- bad arguments raise ValueError, errors of the library CnncError, each with its message.
`torch` is made unimportable first, so a hidden use of PyTorch fails the test.

Usage: python_check.py CNNC NETS_DIR BUILD_NETS_DIR KERNEL_CACHE
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "torch"))
from cli import check, failures, run  # noqa: E402
import st  # noqa: E402

# The module runs the executable's kernels on the same data: only the order of float sums inside a
# kernel could differ, and it does not. 1e-6 (relative to the largest value) names that margin.
TOL = 1e-6


def maxdiff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) / (1 + float(np.max(np.abs(b)))) if a.size else 0.0


def compare(net_name, exe, mod_dir, d, classes):
    sys.path.insert(0, mod_dir)
    import cnnc_net
    rng = np.random.default_rng(5)
    w = f"{d}/{net_name}_w.safetensors"
    run([exe, "export-weights", w, "--seed", "3"])
    net = cnnc_net.load(net_name, weights=w, threads=2)
    x = rng.standard_normal((3,) + net.input_shape).astype(np.float32)
    y = rng.integers(0, classes, size=3)
    st.save(f"{d}/in.safetensors", {"input": x})
    st.save(f"{d}/lab.safetensors", {"labels": y.astype(np.int64)})

    r = run([exe, "infer", "--weights", w, "--input", f"{d}/in.safetensors", "--output", f"{d}/out.safetensors"])
    ref = st.load(f"{d}/out.safetensors")["output"] if r.returncode == 0 else None
    got = net(x)
    e = maxdiff(got, ref) if ref is not None else float("inf")
    check(f"{net_name}: net(x) vs X infer (max rel diff {e:.2e}, tol {TOL})", e <= TOL)

    r = run([exe, "step", "--weights", w, "--input", f"{d}/in.safetensors", "--labels", f"{d}/lab.safetensors", "--lr", "0.05",
             "--output", f"{d}/step.safetensors"])
    ref = st.load(f"{d}/step.safetensors") if r.returncode == 0 else {}
    loss = net.train_step(x, y, 0.05)
    e = abs(loss - float(ref.get("loss", np.nan))) / (1 + abs(loss))
    check(f"{net_name}: train_step loss {loss:.6f} vs X step (rel diff {e:.2e})", e <= TOL)
    sd = net.state_dict()
    worst = max((maxdiff(sd[k], ref[k]) for k in sd), default=float("inf"))
    check(f"{net_name}: state_dict after the step vs X step's {len(sd)} tensors (max rel diff {worst:.2e})",
          set(sd) == {k for k in ref if k != "loss" and not k.startswith("grad.")} and worst <= TOL)

    net.save(f"{d}/after.safetensors")
    r = run([exe, "infer", "--weights", f"{d}/after.safetensors", "--input", f"{d}/in.safetensors", "--output", f"{d}/out2.safetensors"])
    e = maxdiff(net(x), st.load(f"{d}/out2.safetensors")["output"]) if r.returncode == 0 else float("inf")
    check(f"{net_name}: net(x) after the step vs X infer on net.save()'s weights (max rel diff {e:.2e})", e <= TOL)
    return cnnc_net, net, x


def bad_input(cnnc_net, net, x, d):
    def raises(name, exc, needle, fn):
        try:
            fn()
        except exc as e:
            check(name, needle in str(e), str(e))
            return
        except Exception as e:  # noqa: BLE001 - any other exception is the failure being tested for
            check(name, False, f"raised {type(e).__name__}: {e}")
            return
        check(name, False, "no exception")

    raises("an image of the wrong shape", ValueError, "takes input of shape [N, 1, 32, 32]", lambda: net(x[:, :, :16]))
    raises("no images", ValueError, "N >= 1", lambda: net(x[:0]))
    raises("float labels", ValueError, "labels must be integers of shape [3]", lambda: net.train_step(x, np.zeros(3), 0.1))
    raises("a label out of range", cnnc_net.CnncError, "out of range", lambda: net.train_step(x, np.array([0, 1, 10]), 0.1))
    raises("a negative lr", cnnc_net.CnncError, "lr must be", lambda: net.train_step(x, np.array([0, 1, 2]), -1.0))
    raises("a missing weights file", cnnc_net.CnncError, "no_such.safetensors", lambda: net.load_weights(f"{d}/no_such.safetensors"))
    open(f"{d}/corrupt.safetensors", "wb").write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    raises("a corrupt weights file", cnnc_net.CnncError, "corrupt.safetensors", lambda: net.load_weights(f"{d}/corrupt.safetensors"))
    raises("a network that was not built", FileNotFoundError, "--emit=python", lambda: cnnc_net.load("resnet18"))


def checks(cnnc, nets, build_nets, cache):
    sys.modules["torch"] = None  # `import torch` anywhere below raises ImportError
    with tempfile.TemporaryDirectory() as d:
        mod = f"{d}/mod"
        for net in ("lenet5", "minivgg"):
            r = run([cnnc, f"{nets}/{net}.cnn", "--emit=python", "-o", mod, "--cache-dir", cache])
            check(f"cnnc {net}.cnn --emit=python", r.returncode == 0 and os.path.exists(f"{mod}/lib{net}.so"), r.stderr[-500:])
        if failures:
            return
        cnnc_net, lenet, x = compare("lenet5", f"{build_nets}/lenet5", mod, d, 10)
        compare("minivgg", f"{build_nets}/minivgg", mod, d, 10)
        check("two networks in one process: lenet5 still runs after minivgg loaded", lenet(x).shape == (3, 10))
        bad_input(cnnc_net, lenet, x, d)
        # Built with --inference-only: it infers as the full build does, and train_step says why not.
        src = open(f"{nets}/lenet5.cnn").read().replace("network lenet5(", "network lenet5_infer(", 1)
        open(f"{d}/lenet5_infer.cnn", "w").write(src)
        r = run([cnnc, f"{d}/lenet5_infer.cnn", "--emit=python", "--inference-only", "-o", mod, "--cache-dir", cache])
        check("cnnc lenet5_infer.cnn --emit=python --inference-only", r.returncode == 0, r.stderr[-500:])
        if r.returncode == 0:
            inf = cnnc_net.load("lenet5_infer", weights=f"{d}/lenet5_w.safetensors", threads=2)
            lenet.load_weights(f"{d}/lenet5_w.safetensors")
            e = maxdiff(inf(x), lenet(x))
            check(f"lenet5 --inference-only: net(x) as the full build's (max rel diff {e:.2e}, tol {TOL})", e <= TOL)
            try:
                inf.train_step(x, np.array([0, 1, 2]), 0.1)
                check("lenet5 --inference-only: train_step raises", False, "no exception")
            except cnnc_net.CnncError as ex:
                check("lenet5 --inference-only: train_step raises CnncError naming --inference-only",
                      "no training step" in str(ex) and "--inference-only" in str(ex), str(ex))
        r = run([cnnc, f"{nets}/lenet5.cnn", "--emit=python"])
        check("--emit=python without -o", r.returncode == 2 and "needs -o FOLDER" in r.stderr, r.stderr)


def main():
    checks(*sys.argv[1:5])
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
