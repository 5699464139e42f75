"""What export_check.py and import_check.py share: where a net's .cnn is, the output comparison against
PyTorch, and the loop over NAME[:C,H,W] cases with its summary and exit status."""
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def cnn_source(nets_dir, net):
    """nets/NET.cnn, else the single-op test net tests/torch/NET.cnn."""
    src = os.path.join(nets_dir, net + ".cnn")
    return src if os.path.exists(src) else os.path.join(HERE, "..", "torch", net + ".cnn")


def compare(fails, label, got, ref, tol, extra=""):
    """max |got - ref| <= tol * (1 + max |ref|), printed as one line; a miss is appended to `fails`."""
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        fails.append(f"{label}: output shape {got.shape}, torch {ref.shape}")
        return
    diff = float(np.max(np.abs(got - ref)))
    bound = tol * (1.0 + float(np.max(np.abs(ref))))
    print(f"{'ok' if diff <= bound else 'FAIL'} {label}: max abs diff {diff:.3e} (bound {bound:.3e}){extra}")
    if diff > bound:
        fails.append(f"{label}: max abs diff {diff:.3e} > {bound:.3e}")


def run_cases(specs, check):
    """check(net, shape, tmpdir) -> failures, for each NAME[:C,H,W]; a RuntimeError is a failure. Exits."""
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        for spec in specs:
            net, _, shape = spec.partition(":")
            try:
                fails = check(net, shape, d)
            except RuntimeError as e:
                fails = [str(e)]
            for f in fails:
                print(f"FAIL {net}: {f}")
            bad += bool(fails)
    print(f"{len(specs) - bad} passed, {bad} failed")
    sys.exit(1 if bad else 0)
