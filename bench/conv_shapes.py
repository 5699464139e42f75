#!/usr/bin/env python3
"""GFLOP/s and % of the measured FMA peak for each conv shape of a net (ResNet-18 by default).

Runs `X bench --profile` several times, takes each call's median time, and divides the call's
FLOPs (2 x multiply-adds, from the shapes in `cnnc --emit=plan`) by it. Calls of one shape are
pooled. The peak is measured in the same run by bench/fma_peak.c (24 register-resident AVX-512 FMA
chains per thread, compiled here with gcc); REFERENCE.md's 114 GFLOP/s per core is the fallback
where it cannot run. Winograd layers are credited with the direct form's FLOPs, so they can exceed
100%.

Usage: /usr/bin/python3 bench/conv_shapes.py [--net resnet18] [--batch 1] [--runs 7] [--write]
  --write replaces the "Conv shapes" section of BENCHMARKS.md.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from sections import emit  # noqa: E402
PEAK_PER_CORE = 114.0  # GFLOP/s, REFERENCE.md (fallback)


def measured_peak(threads):
    """(GFLOP/s of bench/fma_peak.c on `threads` threads, how it was obtained)."""
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "fma_peak")
        try:
            subprocess.run(["gcc", "-O3", "-mavx512f", "-pthread", os.path.join(ROOT, "bench", "fma_peak.c"), "-o", exe],
                           check=True, capture_output=True)
            runs = [float(subprocess.run([exe, str(threads)], check=True, capture_output=True, text=True).stdout) for _ in range(3)]
            return max(runs), "measured by bench/fma_peak.c in this run"
        except (OSError, subprocess.CalledProcessError, ValueError):
            return PEAK_PER_CORE * threads, "REFERENCE.md's FMA loop (fma_peak.c could not run here)"


def conv_calls(cnnc, net):
    """{call label: (shape text, multiply-adds per image)} for every conv call of the inference plan."""
    text = subprocess.run([cnnc, os.path.join(ROOT, "nets", net + ".cnn"), "--emit=plan"], capture_output=True, text=True, check=True).stdout
    calls, label = {}, None
    for line in text.splitlines():
        m = re.match(r"  (\S.*) = k_\w+ -> ", line)
        if m:
            label = m.group(1)
            continue
        m = re.match(r"    conv in=\[(\d+),(\d+),(\d+)\]\S* out=\[(\d+),(\d+),(\d+)\].* k=(\d+)x(\d+) s=(\d+)x(\d+).* g=(\d+)", line)
        if m and label:
            c, h, w, o, ho, wo, kh, kw, sy, sx, g = map(int, m.groups())
            shape = f"{c}->{o} {kh}x{kw}/{sy} at {ho}x{wo}"
            calls[label] = (shape, o * ho * wo * (c // g) * kh * kw)
    return calls


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnnc", default=os.path.join(ROOT, "build", "cnnc"))
    ap.add_argument("--net", default="resnet18")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--tuning-db", default="none", help="compile with this tuning database (default: none, the default schedules)")
    a = ap.parse_args()
    calls = conv_calls(a.cnnc, a.net)
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, a.net)
        subprocess.run([a.cnnc, os.path.join(ROOT, "nets", a.net + ".cnn"), "-o", exe, "--tuning-db", a.tuning_db], check=True, capture_output=True)
        times = {}
        for _ in range(a.runs):
            out = subprocess.run([exe, "--threads", str(a.threads), "bench", "--profile", "--batch", str(a.batch), "--iters", "1", "--warmup", "1"],
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                m = re.match(r"\s+([\d.]+) ms\s+[\d.]+%\s+(.*)$", line)
                if m and m.group(2) in calls:
                    times.setdefault(m.group(2), []).append(float(m.group(1)))
    peak, how = measured_peak(a.threads)
    shapes = {}
    for label, (shape, macs) in calls.items():
        ms = statistics.median(times[label])
        s = shapes.setdefault(shape, [0.0, 0.0, 0])
        s[0] += 2.0 * macs * a.batch
        s[1] += ms
        s[2] += 1
    lines = [f"## Conv shapes: {a.net}, inference batch {a.batch}, {a.threads} threads", "",
             f"Median of {a.runs} profiled runs per call (`bench/conv_shapes.py`), calls of one shape pooled. "
             f"Peak: {peak:.0f} GFLOP/s FP32 FMA, {how}. Winograd layers are credited with direct-conv FLOPs.", "",
             "| shape (in->out kernel/stride at output size) | calls | ms | GFLOP/s | % of peak |", "|---|---:|---:|---:|---:|"]
    for shape, (flops, ms, n) in shapes.items():
        g = flops / (ms * 1e6)
        lines.append(f"| {shape} | {n} | {ms:.3f} | {g:.1f} | {100 * g / peak:.0f}% |")
    emit("\n".join(lines) + "\n", a.write, ROOT)


if __name__ == "__main__":
    main()
