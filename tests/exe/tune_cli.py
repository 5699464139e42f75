#!/usr/bin/env python3
"""`cnnc tune` end to end on a small net (timings are not checked, only what they produce):
- a tune writes a database whose every line is a record of this net's kernels, the default
  schedule of each kernel among them;
- a compile with that database reports its tuned kernels, and the executable runs;
- a tune killed with SIGKILL keeps every record it had written, and `--resume` continues within
  what is left of the budget without losing or rewriting any of them;
- bad flags, an untimeable target and a corrupt database are errors that say what to do;
- candidates are timed with the executables' kernel allocator (common/kernel_alloc.h);
- the in-net step profiles the net with the defaults and with the search's fastest schedules,
  times each kernel's choice again on fresh runs, and records each differing kernel's time in the
  net (situ "net");
- a second net with similar shapes starts from the first one's best schedules (seeds);
- --adams2019 adds the autoscheduler's schedule as a candidate (and only then);
- remote measurement (--remote 'CMD {exe}'): the measurement program runs natively through the
  command, and for arm-64-linux under qemu-aarch64 when QEMU is given (plumbing only: qemu timings
  mean nothing); a failing command is an error naming it.

Usage: tune_cli.py CNNC KERNEL_CACHE [QEMU_AARCH64|none]
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from cli import check, expect, failures, run  # noqa: E402
import st  # noqa: E402

NET = """network tune_small {
  input(16, 12, 12)
  a: conv(32, 3, padding=1)
  relu
  b: conv(32, 3, padding=1)
  relu
  flatten
  fc: linear(10)
}
"""


def records(path):
    """The parsed lines of a database; a line that does not parse is returned as None."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append(None)
    return out


def main():
    cnnc, cache = sys.argv[1:3]
    qemu = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "none" else None
    with tempfile.TemporaryDirectory() as d:
        src, db = f"{d}/tune_small.cnn", f"{d}/tuning.jsonl"
        with open(src, "w") as f:
            f.write(NET)
        # The in-net step (compile the net twice, profile both) is checked once, below; elsewhere off.
        base = [cnnc, "tune", src, "--db", db, "--cache-dir", cache, "--in-net-rounds", "0"]

        r = run(base + ["--budget", "8s"])
        expect("tune writes a database", r, 0, "tune_small/infer", "candidates measured")
        recs = records(db) if os.path.exists(db) else []
        check("every line is a record", recs and all(x is not None for x in recs), f"{len(recs)} lines")
        kernels = {x["kernel"] for x in recs if x}
        check("records cover both convs and the linear", len(kernels) == 3, f"{sorted(kernels)}")
        check("records name the tune and the batch", all(x["net"] == "tune_small/infer" and x["batch"] == 1 for x in recs if x))

        # In the net: both compiles profiled, each differing kernel's time in the net recorded with
        # either schedule (situ "net"), which the compile below then prefers.
        r = run([cnnc, "tune", src, "--db", db, "--cache-dir", cache, "--budget", "1s", "--in-net-rounds", "1", "-v"])
        expect("tune measures in the net", r, 0, "tune_small/infer")
        check("candidates are timed with the executables' kernel allocator",
              "allocate as the executables' kernels do" in r.stderr, r.stderr[:400])
        net = [x for x in records(db) if x and x.get("situ") == "net"]
        if "nothing to compare" in r.stderr:  # the defaults were the fastest alone, for both convs
            check("nothing measured in the net when the defaults won alone", not net, f"{len(net)} records")
        else:
            check("in-net summary", "profiled runs of each of" in r.stderr and "keep a tuned schedule" in r.stderr, r.stderr[-400:])
            # Every kernel that chose another schedule is timed again against its default (fresh runs).
            m = re.search(r"(\d+) kernels chose another schedule than their default, (\d+) of them confirmed", r.stderr)
            again = r.stderr.count("in the net, again:")
            check("each choice in the net is confirmed or dropped on fresh runs",
                  m and again == int(m.group(1)) and int(m.group(2)) <= again, f"{m and m.groups()}, {again} lines")
            # Per differing kernel the default's time in the net, and the tuned schedule's when it won there.
            kernels_net = {x["kernel"] for x in net}
            check("in-net records: the default's for each differing kernel, the tuned one's where it won",
                  net and len(kernels_net) <= len(net) <= 2 * len(kernels_net) and all(x["median_ms"] > 0 for x in net), f"{len(net)} records")

        exe = f"{d}/tuned"
        r = run([cnnc, src, "-o", exe, "--cache-dir", cache, "--tuning-db", db])
        # Both convs and the linear, in the inference plan and in the training step's forward pass (same kernels).
        expect("compile with the database", r, 0, "6 tuned")
        r = run([exe, "bench", "--iters", "1", "--warmup", "0"])
        expect("tuned executable runs", r, 0, "median")
        r = run([cnnc, src, "-o", f"{d}/plain", "--cache-dir", cache, "--tuning-db", "none"])
        check("--tuning-db none compiles untuned", r.returncode == 0 and "tuned" not in r.stderr, r.stderr.strip()[-200:])

        # A second net with similar (not equal) shapes: the first tune's best schedules seed its
        # search (`N seeds` in the verbose kernel lines).
        src2 = f"{d}/tune_other.cnn"
        with open(src2, "w") as f:
            f.write(NET.replace("tune_small", "tune_other").replace("input(16, 12, 12)", "input(16, 10, 14)"))
        r = run([cnnc, "tune", src2, "--in-net-rounds", "0", "--db", db, "--cache-dir", cache, "--budget", "6s", "-v"])
        expect("tune a second net", r, 0, "tune_other/infer", "candidates measured")
        check("similar kernels on record seed its search", re.search(r"\b[1-9] seeds", r.stderr), r.stderr.strip()[-600:])
        # Tuned again with a patience of 1, which both kernels have reached: the first pass measures
        # nothing, and the budget goes to a second pass with twice the patience.
        before = len(records(db))
        r = run([cnnc, "tune", src2, "--in-net-rounds", "0", "--db", db, "--cache-dir", cache, "--budget", "4s", "--patience", "1"])
        expect("a budget left after a pass", r, 0, "searched to their patience by an earlier tune", "pass 2 over the 2 kernels that --patience stopped, now with patience 2")
        check("the later pass measures new candidates", len(records(db)) > before, f"{before} -> {len(records(db))} records")

        # Training kernels: weight gradients are tuned too (their register tiles), and the strided
        # conv's input gradient (one schedule for its four phases), each checked against the default's
        # output like every candidate; a compile with the database takes them and its training step
        # gives the untuned step's loss, gradients and updates.
        tsrc = f"{d}/tune_stride.cnn"
        with open(tsrc, "w") as f:
            # A batch norm and a max pool: memory-bound kernels (scheduleSpatial) are tuned too.
            f.write(NET.replace("tune_small", "tune_stride").replace("b: conv(32, 3, padding=1)", "b: conv(32, 3, stride=2, padding=1)")
                    .replace("a: conv(32, 3, padding=1)\n  relu", "a: conv(32, 3, padding=1)\n  batchnorm\n  relu\n  maxpool(3, stride=1, padding=1)"))
        tdb = f"{d}/train.jsonl"
        r = run([cnnc, "tune", tsrc, "--train", "--in-net-rounds", "0", "--batch", "4", "--db", tdb, "--cache-dir", cache, "--budget", "12s"])
        expect("tune --train", r, 0, "tune_stride/train", "candidates measured")
        trecs = [x for x in records(tdb) if x]
        wg = [x for x in trecs if x["kernel"].startswith("convbackweight")]
        check("weight-gradient candidates are measured", len({x["schedule"]["cvec"] for x in wg}) > 1, f"{len(wg)} records")
        bn = [x for x in trecs if x["kernel"].split(" ")[0] in ("bnapply", "bnbackdata", "maxpool")]
        check("batch-norm and pool candidates are measured (vector width, flat planes, channels per task)",
              len({(x["schedule"]["vec"], x["schedule"].get("flat", 0), x["schedule"].get("task", 0)) for x in bn}) > 2, f"{len(bn)} records")
        # The linear layer, the smallest kernel, comes last in that budget's order and may get no time
        # on a slower machine (an AMD EPYC measured 2 of its records in 12 s): a net of a linear layer
        # alone, whose small space runs out within its budget, measures its candidates every time.
        lsrc, ldb = f"{d}/tune_lin.cnn", f"{d}/lin.jsonl"
        with open(lsrc, "w") as f:
            f.write("network tune_lin {\n  input(32, 6, 6)\n  flatten\n  linear(10)\n}\n")
        r = run([cnnc, "tune", lsrc, "--train", "--in-net-rounds", "0", "--batch", "4", "--db", ldb, "--cache-dir", cache, "--budget", "10s"])
        expect("tune a linear layer", r, 0, "tune_lin/train", "candidates measured")
        lin = [x for x in records(ldb) if x and x["kernel"].startswith("linear ")]
        check("linear candidates are measured (images per tile, outputs per task)",
              len({(x["schedule"].get("tileY", 1), x["schedule"].get("task", 0)) for x in lin}) > 1, f"{len(lin)} records")
        ph = [x for x in trecs if x["kernel"].startswith("convbackdata") and " s=2x2 " in x["kernel"]]
        check("the strided input gradient's phase schedules are measured", any(x["schedule"].get("phase") for x in ph), f"{len(ph)} records")
        xin = np.random.default_rng(2).standard_normal((3, 16, 12, 12)).astype(np.float32)
        st.save(f"{d}/t_in.safetensors", {"input": xin})
        st.save(f"{d}/t_lab.safetensors", {"labels": np.array([1, 7, 3], np.int64)})
        steps = []
        for tag, tdb_arg in (("tuned_train", tdb), ("plain_train", "none")):
            r = run([cnnc, tsrc, "-o", f"{d}/{tag}", "--cache-dir", cache, "--tuning-db", tdb_arg])
            expect(f"compile the strided net, {tag}", r, 0, *(["tuned"] if tdb_arg != "none" else []))
            run([f"{d}/{tag}", "export-weights", f"{d}/t_w.safetensors", "--seed", "4"])
            r = run([f"{d}/{tag}", "step", "--weights", f"{d}/t_w.safetensors", "--input", f"{d}/t_in.safetensors", "--labels", f"{d}/t_lab.safetensors",
                     "--lr", "0.1", "--output", f"{d}/{tag}_step.safetensors"])
            steps.append(st.load(f"{d}/{tag}_step.safetensors") if r.returncode == 0 else {})
        worst = max((float(np.max(np.abs(np.asarray(steps[0][n], np.float64) - steps[1][n]))) / (1 + float(np.max(np.abs(steps[1][n]))))
                     for n in steps[1]), default=float("inf")) if steps[0] and steps[0].keys() == steps[1].keys() else float("inf")
        # Schedules reorder float sums only: 1e-5 relative to each tensor's scale names that.
        check(f"the tuned training step equals the untuned one (max rel diff {worst:.2e}, tol 1e-5)", worst <= 1e-5)

        # Depthwise convs: the flat walk at 7x9 (stores by row or fused, channels per task) and rows of
        # x vectors for the strided one; the tuned net infers as the untuned one does.
        dsrc, ddb = f"{d}/tune_dw.cnn", f"{d}/dw.jsonl"
        with open(dsrc, "w") as f:
            f.write("network tune_dw {\n  input(32, 7, 9)\n  conv(32, 3, padding=1, groups=32)\n  relu\n"
                    "  conv(32, 3, stride=2, padding=1, groups=32)\n  flatten\n  linear(10)\n}\n")
        r = run([cnnc, "tune", dsrc, "--in-net-rounds", "0", "--db", ddb, "--cache-dir", cache, "--budget", "8s", "--patience", "100"])
        expect("tune a depthwise net", r, 0, "tune_dw/infer", "candidates measured")
        drecs = [x for x in records(ddb) if x] if os.path.exists(ddb) else []
        dw_kernels = {x["kernel"] for x in drecs if " g=32 " in x["kernel"]}
        flat_forms = {(x["schedule"].get("flat", 0), x["schedule"].get("task", 0)) for x in drecs}
        check("both depthwise convs are tuned", len(dw_kernels) == 2, f"{sorted(dw_kernels)}")
        check("flat walks of several forms are measured", len({f for f, _ in flat_forms if f}) >= 2 and len({t for _, t in flat_forms}) >= 2,
              f"{sorted(flat_forms)}")
        x = np.random.default_rng(1).standard_normal((2, 32, 7, 9)).astype(np.float32)
        st.save(f"{d}/dw_in.safetensors", {"input": x})
        outs = []
        for tag, tdb_arg in (("tuned", ddb), ("plain", "none")):
            r = run([cnnc, dsrc, "-o", f"{d}/dw_{tag}", "--cache-dir", cache, "--tuning-db", tdb_arg, "--inference-only"])
            expect(f"compile the depthwise net, {tag}", r, 0)
            run([f"{d}/dw_{tag}", "export-weights", f"{d}/dw_w.safetensors", "--seed", "2"])
            r = run([f"{d}/dw_{tag}", "infer", "--weights", f"{d}/dw_w.safetensors", "--input", f"{d}/dw_in.safetensors", "--output", f"{d}/dw_{tag}.safetensors"])
            outs.append(st.load(f"{d}/dw_{tag}.safetensors")["output"] if r.returncode == 0 else None)
        diff = float(np.max(np.abs(outs[0] - outs[1]))) if all(o is not None for o in outs) else float("inf")
        # Forms differ only in the order of a few float sums: 1e-5 of the output's scale names that.
        check(f"the tuned depthwise net infers as the untuned one (max abs diff {diff:.2e}, tol 1e-5)", diff <= 1e-5 * (1 + float(np.max(np.abs(outs[1])))))

        # Kill a tune once it has written records, then resume it.
        kdb = f"{d}/killed.jsonl"
        p = subprocess.Popen(base[:3] + ["--in-net-rounds", "0", "--db", kdb, "--cache-dir", cache, "--budget", "10s", "--batch", "2"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, TMPDIR=d))  # the killed tune's work folder stays in d
        deadline = time.time() + 60
        while time.time() < deadline and (not os.path.exists(kdb) or len(open(kdb).read().splitlines()) < 4):
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
        before = open(kdb).read() if os.path.exists(kdb) else ""
        whole = before[:before.rfind("\n") + 1]  # a record cut mid-write is not a record
        check("killed tune kept its records", whole.count("\n") >= 4, f"{whole.count(chr(10))} records")
        r = run(base[:3] + ["--in-net-rounds", "0", "--db", kdb, "--cache-dir", cache, "--budget", "10s", "--batch", "2", "--resume"])
        expect("resume runs", r, 0, "resuming tune_small/infer", "s left")
        after = open(kdb).read()
        check("resume lost no record", after.startswith(whole), f"{len(whole)} bytes before, {len(after)} after")
        recs = records(kdb)
        check("resumed database parses", all(x is not None for x in recs), f"{len(recs)} lines")
        sched = [json.dumps([x["kernel"], x["schedule"]], sort_keys=True) for x in recs if x]
        check("no candidate measured twice", len(sched) == len(set(sched)), f"{len(sched)} records, {len(set(sched))} distinct")

        # The Adams2019 autoscheduler as one more candidate, when asked for.
        adb2 = f"{d}/adams.jsonl"
        # Right after the default, in the first batch, which always starts: a short budget measures it.
        r = run(base[:3] + ["--in-net-rounds", "0", "--db", adb2, "--cache-dir", cache, "--budget", "5s", "--adams2019"])
        expect("tune with --adams2019", r, 0, "candidates measured")
        recs = records(adb2) if os.path.exists(adb2) else []
        check("an Adams2019 record", any(x and x["schedule"].get("auto") == 1 for x in recs), f"{len(recs)} lines")
        check("no Adams2019 record without the flag", not any(x and "auto" in x["schedule"] for x in records(db)))

        # Remote measurement: the same candidates through a command.
        rdb = f"{d}/remote.jsonl"
        r = run([cnnc, "tune", src, "--db", rdb, "--cache-dir", cache, "--budget", "4s", "--remote", "{exe}"])
        expect("remote measurement, run natively", r, 0, "candidates measured")
        recs = records(rdb) if os.path.exists(rdb) else []
        check("remote records", len(recs) >= 2 and all(x and x["median_ms"] > 0 for x in recs), f"{len(recs)} lines")
        if qemu:
            adb = f"{d}/arm.jsonl"
            r = run([cnnc, "tune", src, "--db", adb, "--cache-dir", cache, "--budget", "20s", "--target", "arm-64-linux", "--remote",
                     f"{qemu} {{exe}}"])
            expect("remote measurement of arm-64-linux under qemu", r, 0, "candidates measured")
            recs = records(adb) if os.path.exists(adb) else []
            check("arm records are keyed by their target", len(recs) >= 2 and all(x and x["target"].startswith("arm-64-linux") for x in recs),
                  f"{len(recs)} lines")
        else:
            print("skip arm-64-linux remote measurement: no aarch64 toolchain or qemu-aarch64")
        expect("failing remote command", run(base + ["--budget", "4s", "--remote", "false {exe}"]), 1,
               "cannot time the default schedule", "the remote command failed")
        expect("remote without {exe}", run(base + ["--remote", "ssh board"]), 2, "the command must contain {exe}")

        # Errors.
        expect("bad budget", run(base + ["--budget", "soon"]), 2, "--budget soon: expected a duration such as 10m")
        expect("untimeable target", run(base + ["--target", "arm-64-linux"]), 1, "cannot time target 'arm-64-linux", "--remote")
        bad = f"{d}/bad.jsonl"
        with open(bad, "w") as f:
            f.write(open(db).readline())
            f.write('{"v": 1, "kernel": "conv", oops\n')
        r = run([cnnc, src, "-o", f"{d}/x", "--cache-dir", cache, "--tuning-db", bad])
        expect("corrupt database", r, 1, f"{bad}:2: bad tuning record: not a JSON object", "--tuning-db none")
        edited = f"{d}/edited.jsonl"
        line = open(db).readline().replace('"tileC":', '"tileC":1', 1)
        with open(edited, "w") as f:
            f.write(line)
        r = run([cnnc, src, "-o", f"{d}/x", "--cache-dir", cache, "--tuning-db", edited])
        expect("hand-edited record", r, 1, f"{edited}:1: bad tuning record:")
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
