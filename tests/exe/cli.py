"""Shared by the command-line tests in tests/exe: run a command, record named failures."""
import gzip
import os
import struct
import subprocess

failures = []


def run(cmd, env=None):
    """Runs cmd with extra environment variables; output captured as text, 300 s at most."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=300)


def check(name, ok, detail=""):
    """Records `name` as failed unless ok; prints one line either way."""
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
    if not ok:
        failures.append(name)


def expect(name, r, code, *needles):
    """The run `r` must exit with `code` and mention every needle on stdout or stderr."""
    msg = r.stderr + r.stdout
    ok = r.returncode == code and all(n in msg for n in needles)
    print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {r.returncode}")
    if not ok:
        print(f"     expected exit {code} and {needles!r}\n     got: {msg.strip()[:600]}")
        failures.append(name)


def write_fashion_slice(folder, counts):
    """The first counts[split] images of Fashion-MNIST's train and t10k splits as plain IDX files in folder."""
    src = "/usr/share/datasets/fashion-mnist/"
    for split, n in counts.items():
        im = gzip.open(src + f"{split}-images-idx3-ubyte.gz").read()
        lb = gzip.open(src + f"{split}-labels-idx1-ubyte.gz").read()
        open(f"{folder}/{split}-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0x803, n, 28, 28) + im[16:16 + n * 784])
        open(f"{folder}/{split}-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, n) + lb[8:8 + n])
