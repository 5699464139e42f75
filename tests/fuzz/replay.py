#!/usr/bin/env python3
"""Feeds every file of the fuzz corpus (and every .cnn under the given folders) to cnnc.

Each run must end with exit status 0 or 1 in under 2 seconds: anything else (a signal, a hang,
exit status 3 or more) is a crash or hang the front end must not have.
Usage: replay.py CNNC DIR...
"""
import os
import subprocess
import sys
import time


def main():
    cnnc, dirs = sys.argv[1], sys.argv[2:]
    files = []
    for d in dirs:
        for root, _, names in os.walk(d):
            files += [os.path.join(root, n) for n in sorted(names) if not n.startswith(".")]
    bad = []
    slowest = 0.0
    for f in files:
        t = time.monotonic()
        try:
            r = subprocess.run([cnnc, f, "--summary", "-w"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=2)
            rc = r.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        dt = time.monotonic() - t
        slowest = max(slowest, dt)
        if rc not in (0, 1):
            bad.append((f, rc))
    for f, rc in bad:
        print(f"FAIL {f}: exit {rc}")
    print(f"{len(files) - len(bad)} passed, {len(bad)} failed (slowest {slowest:.2f} s)")
    sys.exit(1 if bad or not files else 0)


if __name__ == "__main__":
    main()
