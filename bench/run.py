#!/usr/bin/env python3
"""cnnc against PyTorch on this machine: one command, side by side, medians and ratios.

Every case runs the cnnc-built executable (`X bench [--train] --json`) and the same network in
PyTorch (Debian's 1.13 with oneDNN, torch.set_num_threads equal to cnnc's threads) on the same
input size and batch, interleaved over several rounds so that both see the same machine state.
The ratio is PyTorch's median / cnnc's median: above 1 means cnnc is faster. Also measured: cold
and warm compile time of each net (`cnnc NET.cnn -o X` with an empty and a filled kernel cache) and
the peak RSS of both for TinyResNet training and ResNet-18 inference. Nets compile with the default
schedules (`--tuning-db none`) unless --tuning-db names a database (then the run prints only: the
written table is the defaults'); bench/tuned.py measures what a tuning database changes.

Usage (from the repository root, after scripts/build.sh):
    /usr/bin/python3 bench/run.py                 # every case; writes BENCHMARKS.md
    /usr/bin/python3 bench/run.py --quick         # fewer rounds and cases, prints only
    /usr/bin/python3 bench/run.py --cases tinyresnet,lenet5 --no-write
"""
import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "torch"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from sections import keep_sections  # noqa: E402

# (net, mode, batch): the cases issue 5 names.
CASES = [
    ("resnet18", "infer", 1), ("resnet18", "infer", 8), ("tinyresnet", "infer", 128), ("minivgg", "infer", 128),
    ("googlenet", "infer", 1), ("vgg16", "infer", 1), ("resnet50", "infer", 1),
    ("lenet5", "train", 128), ("minivgg", "train", 128), ("tinyresnet", "train", 128), ("resnet18", "train", 8),
    # Issue 17: the modern nets (depthwise convs, squeeze-and-excitation, hardswish).
    ("mobilenet_v2", "infer", 1), ("mobilenet_v3_small", "infer", 1), ("mobilenet_v3_large", "infer", 1),
    ("shufflenet_v2_x1_0", "infer", 1), ("squeezenet1_1", "infer", 1), ("densenet121", "infer", 1),
    ("regnet_y_400mf", "infer", 1), ("efficientnet_b0", "infer", 1), ("convnext_tiny", "infer", 1),
    # Issue 17's training bar: MobileNetV2 at batch 32 on 3x96x96 (a 4th field: the input shape).
    ("mobilenet_v2", "train", 32, (3, 96, 96)),
    # U-Net (per-pixel scores): inference at its own 1x256x256, a training step at 1x96x96.
    ("unet", "infer", 1), ("unet", "train", 8, (1, 96, 96)),
]
QUICK = [("resnet18", "infer", 1), ("tinyresnet", "infer", 128), ("lenet5", "train", 128), ("minivgg", "train", 128),
         ("tinyresnet", "train", 128)]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_child(cmd):
    """Runs cmd; returns its stdout, or raises with its stderr."""
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p.stdout


# Measures from a small fresh interpreter: a child's ru_maxrss starts at its parent's RSS at fork, and
# this process holds torch (about 1.7 GiB), which then showed as every child's peak.
_RSS_LAUNCHER = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, ru = os.wait4(p.pid, 0)
if status != 0:
    sys.exit(p.stderr.read().decode()[-2000:] or "failed")
print(ru.ru_maxrss)
"""


def peak_rss_mib(cmd):
    """Peak RSS of one child process, from wait4's rusage (KiB on Linux)."""
    out = run_child(["/usr/bin/python3", "-c", _RSS_LAUNCHER] + cmd)
    return int(out.strip()) / 1024.0


class Torch:
    """The PyTorch side, in this process: models built once, timed per iteration."""

    def __init__(self, threads):
        import torch
        import reference_models
        self.torch, self.ref = torch, reference_models
        torch.set_num_threads(threads)
        self.models = {}

    def setup(self, net, mode, batch, shape=None):
        torch = self.torch
        key = (net, mode, batch, shape)
        if key not in self.models:
            torch.manual_seed(0)
            m = self.ref.build(net, meta=False)
            c, h, w = shape or self.ref.input_shape(net)
            x = torch.randn(batch, c, h, w)
            o = m(x[:1]).shape if mode == "train" else (1, 1)
            # a label per image, or per pixel for a segmentation net's [N,K,H,W] scores
            y = (torch.arange(batch * int(torch.tensor(o[2:]).prod())) % max(o[1], 1)).reshape((batch,) + tuple(o[2:]))
            opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9) if mode == "train" else None
            m.train(mode == "train")
            self.models[key] = (m, x, y, opt)
        return self.models[key]

    def time(self, net, mode, batch, warmup, iters, shape=None):
        torch = self.torch
        m, x, y, opt = self.setup(net, mode, batch, shape)
        ms = []
        for i in range(warmup + iters):
            t0 = time.perf_counter()
            if mode == "train":
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(m(x), y)
                loss.backward()
                opt.step()
            else:
                with torch.no_grad():
                    m(x)
            dt = (time.perf_counter() - t0) * 1000
            if i >= warmup:
                ms.append(dt)
        return ms


def cnnc_time(exe, mode, batch, warmup, iters, threads, profile=False):
    cmd = [exe, "--threads", str(threads), "bench", "--json", "--batch", str(batch), "--warmup", str(warmup), "--iters", str(iters)]
    if mode == "train":
        cmd.append("--train")
    if profile:
        cmd.append("--profile")
    out = run_child(cmd)
    return json.loads(out.strip().splitlines()[-1])


def step_work(exe, mode, batch, threads):
    """(GFLOP of one step or inference, FP32 FMA peak in GFLOP/s) from one `X bench --profile` run:
    the FLOPs of its conv and linear kernels as the plan counts them, and the peak that run measured
    over the same threads. GFLOP / peak is the time the step would take if every multiply-add ran at
    the FMA peak and nothing else took time: no implementation that does these multiply-adds can be
    faster, so PyTorch's time over it is the largest ratio the case can reach on this machine. (Only
    an algorithm that does fewer, such as Winograd's for 3x3 convs, can pass it; the FLOPs counted
    are the direct form's, also for cnnc's Winograd kernels.)"""
    prof = cnnc_time(exe, mode, batch, 1, 3, threads, profile=True)["profile"]
    return sum(c["flops"] for c in prof["calls"]) / 1e9, prof["peak_gflops"]


def compile_net(cnnc, net, out, cache, tuning_db="none", shape=None, target=None):
    t0 = time.perf_counter()
    extra = ["--input-shape", ",".join(str(v) for v in shape)] if shape else []
    extra += ["--target", target] if target else []
    subprocess.run([cnnc, os.path.join(ROOT, "nets", net + ".cnn"), "-o", out, "--cache-dir", cache, "--tuning-db", tuning_db] + extra, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def machine():
    """The processor as /proc/cpuinfo names it, with its family and model: a VM may report only
    "AMD EPYC", and family 25 (Zen 3/4) and 26 (Zen 5) differ in their AVX-512 FMA rate."""
    cpu, fam, model = "unknown CPU", None, None
    try:
        for line in open("/proc/cpuinfo"):
            key, _, val = line.partition(":")
            key, val = key.strip(), val.strip()
            if key == "model name" and cpu == "unknown CPU":
                cpu = val
            elif key == "cpu family" and fam is None:
                fam = val
            elif key == "model" and model is None:
                model = val
    except OSError:
        pass
    if fam is not None:
        cpu += f" (family {fam}, model {model})"
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnnc", default=os.path.join(ROOT, "build", "cnnc"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per case")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per round and side, at least")
    ap.add_argument("--round-ms", type=float, default=200.0,
                    help="short steps get more iterations per round, up to this much of cnnc's time (max 50)")
    ap.add_argument("--quick", action="store_true", help="fewer cases and rounds; does not write BENCHMARKS.md")
    ap.add_argument("--cases", help="comma-separated net names to keep")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--tuning-db", default="none", help="compile with this tuning database (prints only)")
    ap.add_argument("--no-compile", action="store_true", help="skip the cold/warm compile timing")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    a = ap.parse_args()
    if not os.path.exists(a.cnnc):
        sys.exit(f"error: {a.cnnc} not found: run scripts/build.sh first")
    cases = QUICK if a.quick else CASES
    if a.quick:
        a.rounds, a.no_write = min(a.rounds, 3), True
    if a.tuning_db != "none":
        a.no_write = True
    if a.cases:
        keep = set(a.cases.split(","))
        cases = [c for c in cases if c[0] in keep]
    work = tempfile.mkdtemp(prefix="cnnc-bench-")
    cache = os.path.join(work, "cache")
    torch_side = Torch(a.threads)
    cases = [c if len(c) == 4 else c + (None,) for c in cases]
    builds = sorted({(c[0], c[3]) for c in cases}, key=lambda b: (b[0], b[1] or ()))
    exes, compile_rows = {}, []
    for net, shape in builds:
        tag = net + ("_" + "x".join(str(v) for v in shape) if shape else "")
        exe = os.path.join(work, tag)
        cold = compile_net(a.cnnc, net, exe, os.path.join(work, "cold-" + tag), a.tuning_db, shape=shape)
        warm = compile_net(a.cnnc, net, exe, os.path.join(work, "cold-" + tag), a.tuning_db, shape=shape) if not a.no_compile else float("nan")
        exes[(net, shape)] = exe
        compile_rows.append((tag, cold, warm))
        log(f"compiled {tag}: cold {cold:.1f} s, warm {warm:.2f} s")
    rows = []
    for net, mode, batch, shape in cases:
        c_ms, t_ms = [], []
        exe = exes[(net, shape)]
        torch_side.setup(net, mode, batch, shape)
        # A round of 3 LeNet-5 steps lasts 13 ms, so one brief disturbance on this shared machine
        # decided a round (the full run once read 6.4 ms against 4.2-4.5 ms alone). Both sides run
        # the same count: enough for about round_ms of cnnc's steps.
        probe = cnnc_time(exe, mode, batch, 1, a.iters, a.threads)["median_ms"]
        iters = max(a.iters, min(50, math.ceil(a.round_ms / max(probe, 1e-3))))
        for r in range(a.rounds):
            res = cnnc_time(exe, mode, batch, 1, iters, a.threads)
            c_ms.append(res["median_ms"])
            t_ms.append(statistics.median(torch_side.time(net, mode, batch, 1, iters, shape)))
        c, t = statistics.median(c_ms), statistics.median(t_ms)
        gflop, peak = step_work(exe, mode, batch, a.threads)
        floor = gflop / peak * 1000 if peak > 0 else float("nan")  # ms at the FMA peak
        shown = net + (" " + "x".join(str(v) for v in shape) if shape else "")
        rows.append((shown, mode, batch, iters, c, t, t / c, gflop, peak, floor))
        log(f"{shown:>10} {mode:5} batch {batch:3}: cnnc {c:9.2f} ms  PyTorch {t:9.2f} ms  ratio {t / c:5.2f}"
            f"  ({gflop:.1f} GFLOP; at the {peak:.0f} GFLOP/s peak {floor:.2f} ms: cnnc {floor / c:.0%}, PyTorch {floor / t:.0%},"
            f" ceiling {t / floor:.2f})")
    rss = []
    if not a.quick and any(c[0] == "tinyresnet" for c in cases):
        helper = os.path.join(ROOT, "bench", "torch_rss.py")
        for net, mode, batch in (("tinyresnet", "train", 128), ("resnet18", "infer", 1)):
            if (net, None) not in exes:
                continue
            cm = peak_rss_mib([exes[(net, None)], "--threads", str(a.threads), "bench", "--batch", str(batch), "--iters", "2", "--warmup", "1"] +
                              (["--train"] if mode == "train" else []))
            tm = peak_rss_mib(["/usr/bin/python3", helper, net, mode, str(batch), str(a.threads)])
            rss.append((net, mode, batch, cm, tm))
            log(f"peak RSS {net} {mode} batch {batch}: cnnc {cm:.0f} MiB, PyTorch {tm:.0f} MiB ({cm / tm:.2f}x)")
    shutil.rmtree(work, ignore_errors=True)
    text = report(a, rows, compile_rows, rss)
    print(text)
    if not a.no_write:
        keep_sections(a.out, text)  # the sections other scripts wrote stay
        log(f"wrote {a.out}")


def report(a, rows, compile_rows, rss):
    import torch
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = ["# Benchmarks", "",
             f"Measured {now} on {machine()}, {a.threads} threads for both sides; PyTorch {torch.__version__} "
             f"(oneDNN). Written by `bench/run.py`: {a.rounds} interleaved rounds per side, each of one warm-up and "
             f"`iters` timed iterations (at least {a.iters}, and enough for about {a.round_ms:.0f} ms of cnnc's steps); "
             "each number is the median of the per-round medians. "
             "Ratio = PyTorch / cnnc (above 1: cnnc is faster). Training steps are forward, backward and an "
             "SGD-momentum update, cross-entropy loss.", "",
             "GFLOP: the multiply-adds (x2) of one step's conv and linear kernels, as the plan counts them. "
             "Peak: the FP32 FMA rate over the same threads, measured by `X bench --profile` in this run, after "
             "the case's rounds. At peak: GFLOP / peak, the time if every multiply-add ran at the peak and "
             "nothing else took time; cnnc % and PyTorch % are that time over each side's median. Ceiling = "
             "PyTorch ms / at-peak ms: the largest ratio an implementation of these multiply-adds could reach on "
             "this machine (only fewer multiplies, as in Winograd's 3x3 convs, pass it).", "",
             "| net | mode | batch | iters | cnnc ms | PyTorch ms | ratio | GFLOP | peak GFLOP/s | at peak ms | cnnc % | PyTorch % | ceiling |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for net, mode, batch, iters, c, t, r, gflop, peak, floor in rows:
        lines.append(f"| {net} | {mode} | {batch} | {iters} | {c:.2f} | {t:.2f} | {r:.2f} | {gflop:.2f} | {peak:.0f} | {floor:.2f} | "
                     f"{floor / c:.0%} | {floor / t:.0%} | {t / floor:.2f} |")
    if compile_rows:
        lines += ["", "Compile time (`cnnc NET.cnn -o X`): cold = empty kernel cache, warm = cache filled.", "",
                  "| net | cold s | warm s |", "|---|---:|---:|"]
        lines += [f"| {n} | {c:.1f} | {w:.2f} |" for n, c, w in compile_rows]
    if rss:
        lines += ["", "Peak RSS (whole process; PyTorch's includes importing torch):", "",
                  "| net | mode | batch | cnnc MiB | PyTorch MiB | cnnc / PyTorch |", "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {n} | {m} | {b} | {c:.0f} | {t:.0f} | {c / t:.2f} |" for n, m, b, c, t in rss]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
