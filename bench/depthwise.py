#!/usr/bin/python3
"""Depthwise convs against the machine's memory bandwidth.

    /usr/bin/python3 bench/depthwise.py [--net mobilenet_v2] [--batches 1,32] [--runs 7]

A depthwise conv does 9 multiply-adds per output element and moves at least its input and output
once, so it is bandwidth-bound: its measure is GB/s, not GFLOP/s. This script
  1. compiles and runs bench/mem_bandwidth.c (STREAM copy and triad over 768 MiB) on all cores;
  2. compiles NET and reads its inference plan (`cnnc --emit=plan`): the depthwise calls (groups =
     input channels = output channels) and their shapes;
  3. runs `NET bench --profile --json` with `runs` profiled runs per batch: each call's median time;
  4. prints per call: the bytes it must move (input + output + weights and bias, float32, the lower
     bound: each read or written once), its time, GB/s, and the share of the triad bandwidth.
At batch 1 every tensor of MobileNetV2 fits in the caches, so a depthwise conv can beat the memory
bandwidth; at batch 32 its tensors (up to 154 MB) do not.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

CALL_RE = re.compile(r"^  (\S+) = (k_\S+) -> \[([\d,]+)\]")
SIG_RE = re.compile(r"^    conv in=\[(\d+),(\d+),(\d+)\] out=\[(\d+),(\d+),(\d+)\] .*k=(\d+)x(\d+) .*g=(\d+)")


def depthwise_calls(cnnc, net_file, shape):
    cmd = [cnnc, net_file, "--emit=plan"] + (["--input-shape", shape] if shape else [])
    lines = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()
    calls = {}
    for i, line in enumerate(lines[:-1]):
        m, s = CALL_RE.match(line), SIG_RE.match(lines[i + 1])
        if m and s:
            c, h, w, oc, oh, ow, kh, kw, g = (int(v) for v in s.groups())
            if g == c == oc and g > 1:
                calls[m.group(1)] = dict(inp=(c, h, w), out=(oc, oh, ow), k=(kh, kw))
    return calls


def profile(exe, batch, runs, threads):
    """{call label: median ms} from `bench --profile --json` (each call's median over `runs` runs)."""
    out = subprocess.run([exe, "--threads", str(threads), "bench", "--batch", str(batch), "--warmup", "2", "--iters", str(runs), "--profile", "--json"],
                         check=True, capture_output=True, text=True).stdout
    return {c["label"]: c["ms"] for c in json.loads(out.strip().splitlines()[-1])["profile"]["calls"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnnc", default=os.path.join(ROOT, "build", "cnnc"))
    ap.add_argument("--net", default="mobilenet_v2")
    ap.add_argument("--shape", default="", help="input C,H,W if not the net's own")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--tuning-db", default="none", help="compile with this tuning database (cnnc tune); none: the default schedules")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="cnnc-dw-")
    bw_exe = os.path.join(work, "mem_bandwidth")
    subprocess.run(["gcc", "-O3", "-march=native", "-pthread", os.path.join(ROOT, "bench", "mem_bandwidth.c"), "-o", bw_exe], check=True)
    bw = subprocess.run([bw_exe, str(a.threads)], check=True, capture_output=True, text=True).stdout.strip()
    triad = float(re.search(r"triad ([\d.]+)", bw).group(1))
    net_file = os.path.join(ROOT, "nets", a.net + ".cnn")
    exe = os.path.join(work, a.net)
    subprocess.run([a.cnnc, net_file, "-o", exe, "--cache-dir", os.path.join(work, "cache"), "--tuning-db", a.tuning_db, "--inference-only"]
                   + (["--input-shape", a.shape] if a.shape else []),
                   check=True, capture_output=True)
    calls = depthwise_calls(a.cnnc, net_file, a.shape)
    from run import machine  # bench/run.py's description of the processor
    print(f"{machine()}; memory bandwidth ({a.threads} threads): {bw}; tuning database: {a.tuning_db}")
    for batch in (int(b) for b in a.batches.split(",")):
        ms = profile(exe, batch, a.runs, a.threads)
        print(f"\n{a.net}, batch {batch}, {a.threads} threads, median of {a.runs} profiled runs:\n")
        print("| call | in -> out | MB moved | ms | GB/s | % of triad |")
        print("|---|---|---:|---:|---:|---:|")
        tot_b = tot_ms = 0.0
        for label, c in calls.items():
            if label not in ms:
                continue
            elems = batch * (c["inp"][0] * c["inp"][1] * c["inp"][2] + c["out"][0] * c["out"][1] * c["out"][2])
            nbytes = 4.0 * (elems + c["out"][0] * (c["k"][0] * c["k"][1] + 1))
            gbs = nbytes / (ms[label] * 1e-3) / 1e9
            tot_b += nbytes
            tot_ms += ms[label]
            shape = lambda s: "x".join(str(v) for v in s)
            print(f"| {label.split('+')[0]} | {shape(c['inp'])} -> {shape(c['out'])} | {nbytes / 1e6:.1f} | {ms[label]:.3f} | {gbs:.1f} | {100 * gbs / triad:.0f}% |")
        if tot_ms:
            gbs = tot_b / (tot_ms * 1e-3) / 1e9
            print(f"| all {len(calls)} depthwise convs | | {tot_b / 1e6:.1f} | {tot_ms:.3f} | {gbs:.1f} | {100 * gbs / triad:.0f}% |")


if __name__ == "__main__":
    main()
