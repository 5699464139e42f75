#!/usr/bin/env python3
"""BN + ReLU in training: the backward pass must take the forward pass's own ReLU decision.

The training forward writes y = relu(BN(x)) and the backward kernels apply ReLU's mask without
reading y, by recomputing the pre-activation from x (so do those of ReLU6, hardtanh, leaky ReLU
and hardsigmoid; `relu6` as the third argument checks ReLU6's two edges, 0 and 6). If the two evaluate it with different
rounding, an element within a few ulps of zero can be passed by one and blocked by the other:
its gradient (and every gradient upstream) is then off by a whole dy. This test builds such
elements on purpose: a batch of 2 images of C channels of 1 pixel, whose batch statistics are
exact, and per channel a beta that puts image 0's pre-activation within -8..8 ulps of zero. From
cnnc's own dumps of one step (CNNC_DUMP_DIR: y of the forward, dy at the ReLU's output), the BN
bias gradient must be sum over images of dy * (y > 0); a disagreeing mask moves it by |dy|.

Usage: relu_decision.py CNNC KERNEL_CACHE [relu|relu6]
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

C = 4096
# Mask disagreements move the gradient by |dy| ~ 1e-2; sums of two float32 products round at ~1e-9.
TOL = 1e-6


def check(cnnc, cache, act, width, d):
    """One build at input (C, 1, width): width 1 runs the BN kernels' scalar code, 16 their vectors.
    Every pixel of a channel holds the same value, so the batch statistics stay exact."""
    # Image 0's pre-activation lands within ulps of an edge of the activation: 0, and for ReLU6 also
    # 6 (every other channel); the mask is y strictly inside (0, top).
    top = 6.0 if act == "relu6" else np.inf
    edge = np.where((np.arange(C) % 2 == 1) & (act == "relu6"), 6.0, 0.0)
    rng = np.random.default_rng(7)
    d = f"{d}/w{width}"
    os.mkdir(d)
    src = f"{d}/rd.cnn"
    open(src, "w").write(f"network rd {{\n  input({C}, 1, {width})\n  bn: batchnorm\n  {act}\n  flatten\n  fc: linear(2)\n}}\n")
    exe = f"{d}/rd"
    subprocess.run([cnnc, src, "-o", exe, "--cache-dir", cache], check=True, capture_output=True)
    plan = subprocess.run([cnnc, src, "--emit=train-plan"], check=True, capture_output=True, text=True).stdout
    calls = [ln.split(" = ")[0].strip() for ln in plan.splitlines() if " = k_" in ln]
    apply_call, dy_call = calls.index("bn+1"), calls.index("dfc (input)")
    subprocess.run([exe, "export-weights", f"{d}/w0", "--seed", "1"], check=True, capture_output=True)
    w = dict(st.load(f"{d}/w0"))
    a = (1.0 + 0.5 * rng.standard_normal(C)).astype(np.float32)
    b = (-1.0 + 0.5 * rng.standard_normal(C)).astype(np.float32)
    g = rng.uniform(0.5, 2.0, C).astype(np.float32)
    mean = (a.astype(np.float64) + b) / 2
    var = ((a.astype(np.float64) - b) / 2) ** 2
    t = (a - mean) / np.sqrt(var + 1e-5)
    beta = (edge - g.astype(np.float64) * t).astype(np.float32)
    ulps = np.arange(C) % 17 - 8
    beta = np.array([np.nextafter(v, np.float32(np.inf if k > 0 else -np.inf), dtype=np.float32) if k else v
                     for v, k in zip(beta, ulps)], np.float32)
    for _ in range(7):  # up to 8 ulps each way, one nextafter at a time
        step = np.abs(ulps) > 1
        ulps = np.where(step, ulps - np.sign(ulps), ulps)
        beta = np.where(step, np.nextafter(beta, np.where(ulps > 0, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)), beta).astype(np.float32)
    w["bn.weight"], w["bn.bias"] = g, beta
    st.save(f"{d}/w", w)
    x = np.repeat(np.stack([a, b]).reshape(2, C, 1, 1), width, axis=3)
    st.save(f"{d}/x", {"input": np.ascontiguousarray(x)})
    st.save(f"{d}/y", {"labels": np.array([0, 1], np.int64)})
    dump = f"{d}/dump"
    os.mkdir(dump)
    env = dict(os.environ, CNNC_DUMP_DIR=dump)
    subprocess.run([exe, "step", "--weights", f"{d}/w", "--input", f"{d}/x", "--labels", f"{d}/y", "--lr", "0", "--output", f"{d}/o"],
                   check=True, capture_output=True, env=env)
    y = np.fromfile(f"{dump}/{apply_call}.bin", np.float32).reshape(2, C, width)
    dy = np.fromfile(f"{dump}/{dy_call}.bin", np.float32).reshape(2, C, width)
    got = st.load(f"{d}/o")["grad.bn.bias"]
    want = (dy.astype(np.float64) * ((y > 0) & (y < top))).sum((0, 2))
    diff = np.abs(got - want)
    near = int(np.sum(np.abs(y[0, :, 0] - edge) < 1e-5 * (1 + edge)))
    bad = np.nonzero(diff > TOL)[0]
    print(f"{act}, width {width}: {C} channels, {near} with image 0's output within ulps of an edge; "
          f"max |grad.bn.bias - sum dy * mask(y)| = {diff.max():.3e} (bound {TOL:.0e})")
    for c in bad[:5]:
        print(f"FAIL channel {c}: y = {y[0, c, 0]:.3e}, {y[1, c, 0]:.3e}; dy = {dy[0, c, 0]:.3e}, {dy[1, c, 0]:.3e}; "
              f"grad {got[c]:.6e}, from the forward's mask {want[c]:.6e}")
    if near == 0:
        print("FAIL no element landed near an edge: the test did not test anything")
    return len(bad) == 0 and near > 0


def main():
    cnnc, cache = sys.argv[1], sys.argv[2]
    act = sys.argv[3] if len(sys.argv) > 3 else "relu"
    with tempfile.TemporaryDirectory() as d:
        results = [check(cnnc, cache, act, width, d) for width in (1, 16)]
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
