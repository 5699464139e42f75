#!/usr/bin/env python3
"""BN + ReLU in training: the backward pass must take the forward pass's own ReLU decision.

The training forward writes y = relu(BN(x)) and the backward kernels apply ReLU's mask without
reading y, by recomputing the pre-activation from x. If the two evaluate it with different
rounding, an element within a few ulps of zero can be passed by one and blocked by the other:
its gradient (and every gradient upstream) is then off by a whole dy. This test builds such
elements on purpose: a batch of 2 images of C channels of 1 pixel, whose batch statistics are
exact, and per channel a beta that puts image 0's pre-activation within -8..8 ulps of zero. From
cnnc's own dumps of one step (CNNC_DUMP_DIR: y of the forward, dy at the ReLU's output), the BN
bias gradient must be sum over images of dy * (y > 0); a disagreeing mask moves it by |dy|.

Usage: relu_decision.py CNNC KERNEL_CACHE
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


def main():
    cnnc, cache = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as d:
        src = f"{d}/rd.cnn"
        open(src, "w").write(f"network rd {{\n  input({C}, 1, 1)\n  bn: batchnorm\n  relu\n  flatten\n  fc: linear(2)\n}}\n")
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
        beta = (-g.astype(np.float64) * t).astype(np.float32)
        ulps = np.arange(C) % 17 - 8
        beta = np.array([np.nextafter(v, np.float32(np.inf if k > 0 else -np.inf), dtype=np.float32) if k else v
                         for v, k in zip(beta, ulps)], np.float32)
        for _ in range(7):  # up to 8 ulps each way, one nextafter at a time
            step = np.abs(ulps) > 1
            ulps = np.where(step, ulps - np.sign(ulps), ulps)
            beta = np.where(step, np.nextafter(beta, np.where(ulps > 0, np.float32(np.inf), np.float32(-np.inf)).astype(np.float32)), beta).astype(np.float32)
        w["bn.weight"], w["bn.bias"] = g, beta
        st.save(f"{d}/w", w)
        st.save(f"{d}/x", {"input": np.stack([a, b]).reshape(2, C, 1, 1)})
        st.save(f"{d}/y", {"labels": np.array([0, 1], np.int64)})
        dump = f"{d}/dump"
        os.mkdir(dump)
        env = dict(os.environ, CNNC_DUMP_DIR=dump)
        subprocess.run([exe, "step", "--weights", f"{d}/w", "--input", f"{d}/x", "--labels", f"{d}/y", "--lr", "0", "--output", f"{d}/o"],
                       check=True, capture_output=True, env=env)
        y = np.fromfile(f"{dump}/{apply_call}.bin", np.float32).reshape(2, C)
        dy = np.fromfile(f"{dump}/{dy_call}.bin", np.float32).reshape(2, C)
        got = st.load(f"{d}/o")["grad.bn.bias"]
        want = (dy.astype(np.float64) * (y > 0)).sum(0)
        diff = np.abs(got - want)
        near = int(np.sum(np.abs(y[0]) < 1e-6))
        bad = np.nonzero(diff > TOL)[0]
        print(f"{C} channels, {near} with image 0's output within 1e-6 of zero; max |grad.bn.bias - sum dy * (y > 0)| = {diff.max():.3e} (bound {TOL:.0e})")
        for c in bad[:5]:
            print(f"FAIL channel {c}: y = {y[0, c]:.3e}, {y[1, c]:.3e}; dy = {dy[0, c]:.3e}, {dy[1, c]:.3e}; grad {got[c]:.6e}, from the forward's mask {want[c]:.6e}")
        ok = len(bad) == 0 and near > 0
        if near == 0:
            print("FAIL no element landed near zero: the test did not test anything")
        print("1 passed, 0 failed" if ok else f"0 passed, 1 failed ({len(bad)} channels disagree)")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
