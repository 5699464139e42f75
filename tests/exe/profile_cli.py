#!/usr/bin/env python3
"""`X bench [--train] --profile`: the roofline report's work counts and its shape (no timings judged).

- FLOPs: every conv, transposed conv and linear call of a training step carries 2 x its
  multiply-adds, computed here from PyTorch's shape rules (output size, channels per group, kernel
  taps) for the forward, the input gradient (not for the first layer, whose input needs none) and
  the weight gradient, at an odd size with stride, groups, dilation and output_padding. Kernels
  of other kinds carry none. Bytes: at least the input and output of each call.
- The roofs are measured (FMA peak and memory bandwidth above zero), the medians are over the
  requested runs, every call is in its phase, and the text report has its sections.
- A GPU-free check that cannot pass by accident: the expected FLOPs are exact integers per layer.

Usage: profile_cli.py CNNC KERNEL_CACHE
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli import check, failures  # noqa: E402

BATCH = 3
# (layer, kind, in C, out C, kernel, stride, padding, dilation, groups, output_padding)
NET = """network prof {
  input(4, 17, 13)
  c1: conv(8, 3, stride=2, padding=1)
  relu
  c2: conv(8, 3, padding=2, dilation=2, groups=4)
  relu
  t: convtranspose(6, 3, stride=2, padding=1, output_padding=1, groups=2)
  relu
  flatten
  fc: linear(10)
}
"""


def conv_out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def tconv_out(n, k, s, p, d, op):
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def expected_macs():
    """{layer: multiply-adds per image} from PyTorch's shape formulas."""
    h, w = 17, 13
    h1, w1 = conv_out(h, 3, 2, 1, 1), conv_out(w, 3, 2, 1, 1)        # c1: 8 x h1 x w1
    macs = {"c1": 8 * h1 * w1 * 4 * 3 * 3}
    h2, w2 = conv_out(h1, 3, 1, 2, 2), conv_out(w1, 3, 1, 2, 2)      # c2: groups 4, 2 in per group
    macs["c2"] = 8 * h2 * w2 * (8 // 4) * 3 * 3
    # A transposed conv multiplies each input element by (out channels per group) x taps.
    h3, w3 = tconv_out(h2, 3, 2, 1, 1, 1), tconv_out(w2, 3, 2, 1, 1, 1)
    macs["t"] = 8 * h2 * w2 * (6 // 2) * 3 * 3
    macs["fc"] = 6 * h3 * w3 * 10
    return macs


def main():
    cnnc, cache = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "prof.cnn"), os.path.join(d, "prof")
        with open(src, "w") as f:
            f.write(NET)
        subprocess.run([cnnc, src, "-o", exe, "--cache-dir", cache], check=True, capture_output=True)
        r = subprocess.run([exe, "bench", "--train", "--profile", "--json", "--batch", str(BATCH), "--iters", "3", "--warmup", "1"],
                           capture_output=True, text=True)
        check("bench --train --profile --json runs", r.returncode == 0, r.stderr[-500:] if r.returncode else "")
        prof = json.loads(r.stdout.strip().splitlines()[-1])["profile"]
        macs = expected_macs()
        by_label = {c["label"]: c for c in prof["calls"]}

        def flops_of(label):
            hits = [c for lab, c in by_label.items() if lab == label or lab.startswith(label + "+")]
            return hits[0]["flops"] if len(hits) == 1 else None

        for layer, m in macs.items():
            want = 2 * m * BATCH
            got = flops_of(layer)
            check(f"{layer} forward: {got} FLOPs, expected {want}", got == want)
            got = flops_of(f"d{layer} (weight)")
            check(f"{layer} weight gradient: {got} FLOPs, expected {want}", got == want)
            if layer != "c1":
                got = flops_of(f"d{layer} (input)")
                check(f"{layer} input gradient: {got} FLOPs, expected {want}", got == want)
        conv_like = ("k_conv_", "k_convbackdata_", "k_convbackweight_", "k_convtranspose_", "k_linear_", "k_linearbackdata_", "k_linearbackweight_")
        others = [c for c in prof["calls"] if not c["kernel"].startswith(conv_like)]
        check(f"{len(others)} calls of other kinds carry no FLOPs", others and all(c["flops"] == 0 for c in others))
        check("every call moves bytes and has a time", all(c["bytes"] > 0 and c["ms"] > 0 for c in prof["calls"]))
        check("first-layer input gradient is not computed", flops_of("dc1 (input)") is None)
        phases = [c["phase"] for c in prof["calls"]]
        check("forward calls come first, then backward", phases == sorted(phases, key=lambda p: p != "forward") and "backward" in phases)
        check(f"roofs measured: {prof['peak_gflops']:.1f} GFLOP/s ({prof['isa']}), {prof['mem_gbs']:.1f} GB/s",
              prof["peak_gflops"] > 0 and prof["mem_gbs"] > 0 and prof["isa"] in ("avx512", "avx2", "sse", "neon"))
        check("medians over the 3 requested runs", prof["runs"] == 3)

        r = subprocess.run([exe, "bench", "--profile", "--batch", "1", "--iters", "2", "--warmup", "0"], capture_output=True, text=True)
        out = r.stdout
        check("text report has its roofs, phase and kind tables",
              r.returncode == 0 and "roofs, measured now:" in out and "forward:" in out and "by kernel kind" in out
              and "GFLOP/s" in out and "backward:" not in out, "" if r.returncode == 0 else r.stderr[-500:])
        check("text report names fused calls by their first layer", "c1 +1" in out)
        if failures:
            print(out)
    print(f"{len(failures)} failed" + (": " + ", ".join(failures) if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
