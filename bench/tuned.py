#!/usr/bin/env python3
"""Tuned against untuned cnnc, side by side: what a tuning database (`cnnc tune`) buys per net.

For each case the net is compiled twice, with `--tuning-db none` (the default schedules) and with
the database, and both executables' `X bench [--train] --json` run in alternation over several
rounds, the order flipping each round; times are medians of the per-round medians, the speedup is
the median of the per-round ratios untuned / tuned.

Usage (from the repository root, after scripts/build.sh and a tune):
    /usr/bin/python3 bench/tuned.py --db ~/.cache/cnnc/tuning.jsonl --cases resnet18:infer:1,tinyresnet:train:128 [--write]
  A case may name a target as its fourth field (resnet18:infer:1:x86-64-linux-avx2-fma): both builds
  are then for it, and the database's records for that target apply; a net may name an input size
  (resnet18@3x192x192:infer:1).
  --write replaces the "Tuning" section of BENCHMARKS.md.
"""
import argparse
import datetime
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from run import cnnc_time, compile_net, machine  # noqa: E402
from sections import emit  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnnc", default=os.path.join(ROOT, "build", "cnnc"))
    ap.add_argument("--db", required=True, help="the tuning database")
    ap.add_argument("--cases", default="resnet18:infer:1,tinyresnet:train:128", help="net:mode:batch[:target],...")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--note", default="", help="a paragraph to add under the table (how the database was made)")
    a = ap.parse_args()
    if not os.path.exists(a.db):
        sys.exit(f"error: no tuning database at {a.db}: run `cnnc tune NET.cnn --db {a.db}` first")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        cache = os.path.join(work, "cache")
        for case in a.cases.split(","):
            name, mode, batch, target = (case.split(":") + [""])[:4]
            net, _, size = name.partition("@")
            shape = [int(v) for v in size.split("x")] if size else None
            batch = int(batch)
            plain, tuned = os.path.join(work, net + "-default"), os.path.join(work, net + "-tuned")
            compile_net(a.cnnc, net, plain, cache, "none", shape=shape, target=target or None)
            compile_net(a.cnnc, net, tuned, cache, a.db, shape=shape, target=target or None)
            # The order flips every round, and the speedup is the median of the rounds' ratios: this
            # shared machine's speed drifts by a fifth within minutes (ResNet-18 b1: 21-28 ms).
            p_ms, t_ms, ratios = [], [], []
            for r in range(a.rounds):
                first, second = (plain, tuned) if r % 2 == 0 else (tuned, plain)
                x = cnnc_time(first, mode, batch, 1, a.iters, a.threads)["median_ms"]
                y = cnnc_time(second, mode, batch, 1, a.iters, a.threads)["median_ms"]
                p, t = (x, y) if first == plain else (y, x)
                p_ms.append(p)
                t_ms.append(t)
                ratios.append(p / t)
            p, t, sp = statistics.median(p_ms), statistics.median(t_ms), statistics.median(ratios)
            rows.append((name + (f" ({target})" if target else ""), mode, batch, p, t, sp))
            print(f"{net:>10} {mode:5} batch {batch:3}: default {p:9.2f} ms  tuned {t:9.2f} ms  speedup {sp:5.2f}", file=sys.stderr)
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = ["## Tuning: tuned against default schedules", "",
             f"Measured {now} on {machine()}, {a.threads} threads, by `bench/tuned.py` with the database that `cnnc tune` wrote "
             f"({a.rounds} rounds of {a.iters} iterations, the order flipping each round; medians). "
             "Speedup = the median over rounds of default / tuned.", "",
             "| net | mode | batch | default ms | tuned ms | speedup |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {m} | {b} | {p:.2f} | {t:.2f} | {sp:.2f} |" for n, m, b, p, t, sp in rows]
    if a.note:
        lines += ["", a.note]
    emit("\n".join(lines) + "\n", a.write, ROOT)


if __name__ == "__main__":
    main()
