#!/usr/bin/python3
"""Roofline tables: per kernel, its time, GFLOP/s and distance to this machine's limits.

    /usr/bin/python3 bench/roofline.py [--cases resnet18:infer:1 tinyresnet:train:128 ...] [--iters 10] [--write]

For each case (net[@C,H,W]:infer|train:batch) this compiles the net and runs
`X bench [--train] --profile --json`: after the timed runs, as many profiled ones, each call's
median time, its FLOPs (2 x multiply-adds of the direct algorithm, from the plan) and bytes (each
argument once), and the FMA peak and memory bandwidth measured by the executable in the same
process (runtime/machine_peak.cpp). Calls of one kernel in one phase are pooled, as in the
executable's own report. Rows: every conv and linear kernel, and other kernels of at least 2% of
the time; the rest in one row. --write puts each case's section into docs/roofline.md.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from sections import replace_section  # noqa: E402
from run import machine  # noqa: E402

DEFAULT_CASES = ["resnet18:infer:1", "resnet50:infer:1", "resnet18:train:8", "tinyresnet:train:128"]
CONV_LIKE = ("conv", "convbackdata", "convbackweight", "convtranspose", "linear", "linearbackdata", "linearbackweight")
# Other kernels get their own row from this share of the kernels' time on.
OWN_ROW_SHARE = 0.02


def kind_of(fn):
    base = fn[:fn.rfind("_")]
    return base[2:] if base.startswith("k_") else base


def short(label):
    first = label.split("+")[0]
    n = label.count("+")
    return first + (f" +{n}" if n and " (" not in label else "")


def run_case(cnnc, case, iters, threads, work):
    net, mode, batch = case.split(":")
    net, _, shape = net.partition("@")
    exe = os.path.join(work, f"{net}_{mode}")
    cmd = [cnnc, os.path.join(ROOT, "nets", net + ".cnn"), "-o", exe, "--cache-dir", os.path.join(work, "cache")]
    subprocess.run(cmd + (["--input-shape", shape] if shape else []), check=True, capture_output=True)
    bench = [exe, "--threads", str(threads), "bench", "--batch", batch, "--iters", str(iters), "--warmup", "3", "--profile", "--json"]
    out = subprocess.run(bench + (["--train"] if mode == "train" else []), check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(res, case):
    prof = res["profile"]
    peak, bw, total = prof["peak_gflops"], prof["mem_gbs"], prof["total_ms"]
    rows = {}
    for c in prof["calls"]:
        r = rows.setdefault((c["phase"], c["kernel"]), dict(label=c["label"], kind=kind_of(c["kernel"]), calls=0, ms=0.0, flops=0.0, bytes=0.0))
        r["calls"] += 1
        for k in ("ms", "flops", "bytes"):
            r[k] += c[k]
    net = case.split(":")[0]
    what = "training step" if res["mode"] == "train" else "inference"
    # replace_section matches headings up to their first colon: net, mode and batch.
    lines = [f"## {net} {what}, batch {res['batch']}: {res['threads']} threads", "",
             f"{machine()}. Roofs measured by the executable in this run: {peak:.1f} GFLOP/s FP32 FMA ({prof['isa']}), "
             f"{bw:.1f} GB/s memory (triad). The {res['mode']} step: median {res['median_ms']:.2f} ms over {res['iters']} runs; "
             f"its kernels {total:.2f} ms (each call's median over {prof['runs']} profiled runs).", ""]
    for phase in ("forward", "backward"):
        rs = sorted((r for (p, _), r in rows.items() if p == phase), key=lambda r: -r["ms"])
        if not rs:
            continue
        ms = sum(r["ms"] for r in rs)
        lines += [f"{phase}: {ms:.2f} ms, {100 * ms / total:.0f}% of the kernels' time", "",
                  "| first call | kind | calls | ms | share | GFLOP/s | % of FMA peak | GB/s | bound: share of it |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        rest = dict(n=0, ms=0.0)
        for r in rs:
            if r["kind"] not in CONV_LIKE and r["ms"] < OWN_ROW_SHARE * total:
                rest["n"] += 1
                rest["ms"] += r["ms"]
                continue
            s = r["ms"] * 1e-3
            gf = r["flops"] / s / 1e9 if r["flops"] else None
            tf, tb = r["flops"] / (peak * 1e9), r["bytes"] / (bw * 1e9)
            bound = "FMA" if tf >= tb else "mem"
            lines.append(f"| {short(r['label'])} | {r['kind']} | {r['calls']} | {r['ms']:.3f} | {100 * r['ms'] / total:.1f}% | "
                         f"{f'{gf:.1f}' if gf else '-'} | {f'{100 * gf / peak:.0f}%' if gf else '-'} | {r['bytes'] / s / 1e9:.1f} | "
                         f"{bound}: {100 * max(tf, tb) / s:.0f}% |")
        if rest["n"]:
            lines.append(f"| {rest['n']} other kernels | | | {rest['ms']:.3f} | {100 * rest['ms'] / total:.1f}% | | | | |")
        lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnnc", default=os.path.join(ROOT, "build", "cnnc"))
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--write", action="store_true", help="replace each case's section of docs/roofline.md")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        for case in a.cases:
            text = table(run_case(a.cnnc, case, a.iters, a.threads, work), case)
            print(text)
            if a.write:
                replace_section(os.path.join(ROOT, "docs", "roofline.md"), text)


if __name__ == "__main__":
    main()
