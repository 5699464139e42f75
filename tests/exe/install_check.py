#!/usr/bin/env python3
"""cnnc installed, used from nothing but the installed tree:
1. `cmake --install BUILD --prefix P`: P/bin/cnnc says it links P's runtime and imports from P's
   network library; from an empty folder it compiles `lenet5.cnn` (found in that library), the
   executable carries the library's recipe and trains, and --emit=python gives a module that loads.
2. A CMake project (tests/cmake_example) finds the installed cnnc with find_package(cnnc), builds
   LeNet-5 with cnnc_add_network() and links a C program that matches PyTorch's output.
3. The Debian package from CPack declares its dependencies, installs into an empty root with
   `dpkg --root`, compiles and runs LeNet-5 there, and its removal leaves no file behind.

Usage: install_check.py BUILD_DIR SOURCE_DIR KERNEL_CACHE
"""
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "torch"))
from cli import check, expect, failures, run, write_fashion_slice  # noqa: E402
import parity  # noqa: E402
import reference_models  # noqa: E402
import st  # noqa: E402


def in_dir(cmd, cwd):
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)


def uses_only(prefix, cnnc, cwd, cache, data):
    """The cnnc under `prefix` links and imports from `prefix`, compiles lenet5.cnn by name, and the result trains."""
    r = in_dir([cnnc, "--version"], cwd)
    expect(f"{prefix}: --version", r, 0, f"runtime     {prefix}/lib/cnnc/libcnnc_runtime.a", f"import path {prefix}/share/cnnc/nets")
    r = in_dir([cnnc, "lenet5.cnn", "-o", "lenet5", "--cache-dir", cache], cwd)
    expect(f"{prefix}: compile lenet5.cnn from the installed library", r, 0, "lenet5 -> lenet5")
    r = in_dir(["./lenet5", "info"], cwd)
    expect(f"{prefix}: the recipe comes from the installed library", r, 0, f"(recipe of {prefix}/share/cnnc/nets/lenet5.cnn)")
    r = in_dir(["./lenet5", "train", "--data", data, "--limit", "256", "--epochs", "1", "--out", "run"], cwd)
    expect(f"{prefix}: train", r, 0, "lenet5: test accuracy")
    r = in_dir([cnnc, "lenet5.cnn", "--emit=python", "-o", "py", "--cache-dir", cache], cwd)
    expect(f"{prefix}: --emit=python", r, 0)
    r = in_dir([sys.executable, "-c", "import sys; sys.path.insert(0, 'py'); import cnnc_net; print(cnnc_net.load('lenet5'))"], cwd)
    expect(f"{prefix}: the Python module loads", r, 0, "<cnnc_net.Net lenet5: [1, 32, 32] -> [10]>")


def cmake_example(src, prefix, work):
    """Builds tests/cmake_example against `prefix` and compares its output with PyTorch's."""
    b = os.path.join(work, "ex")
    r = run(["cmake", "-S", os.path.join(src, "tests", "cmake_example"), "-B", b, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}"])
    expect("cmake_example: configure with find_package(cnnc)", r, 0)
    r = run(["cmake", "--build", b])
    expect("cmake_example: build (cnnc_add_network compiles lenet5.cnn)", r, 0, "cnnc: lenet5")
    if failures:
        return
    torch.set_num_threads(2)
    model = reference_models.build("lenet5", meta=False).eval()
    parity.randomize(model, torch.Generator().manual_seed(7))
    w = os.path.join(work, "w.safetensors")
    st.save(w, model.state_dict())
    batch = 2
    r = run([os.path.join(b, "example"), w, str(batch)])
    expect("cmake_example: run", r, 0)
    shape = reference_models.input_shape("lenet5")
    n = batch * int(np.prod(shape))
    x = torch.tensor([math.sin(0.01 * i) for i in range(n)], dtype=torch.float32).reshape((batch,) + shape)
    with torch.no_grad():
        ref = model(x).numpy().reshape(-1)
    got = np.array([float(v) for v in r.stdout.split()], dtype=np.float32)
    diff = float(np.max(np.abs(got - ref))) if got.shape == ref.shape else float("inf")
    bound = parity.TOL * (1 + float(np.max(np.abs(ref))))
    check(f"cmake_example: matches PyTorch (max abs diff {diff:.3e}, bound {bound:.3e})", diff <= bound)


def debian_package(build, work, cache, data):
    """cpack -G DEB, then install into, use and purge from an empty root."""
    pkg = os.path.join(work, "pkg")
    r = run(["cpack", "-G", "DEB", "-B", pkg, "--config", os.path.join(build, "CPackConfig.cmake")])
    expect("cpack -G DEB", r, 0)
    debs = [f for f in os.listdir(pkg) if f.endswith(".deb")] if os.path.isdir(pkg) else []
    check("one .deb", len(debs) == 1, str(debs))
    if failures:
        return
    deb = os.path.join(pkg, debs[0])
    depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    check("the package depends on Halide, a C++ compiler and zlib",
          all(d in depends for d in ("libhalide14-0", "g++", "zlib1g-dev")), depends.strip())
    root = os.path.join(work, "root")
    for sub in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        os.makedirs(os.path.join(root, sub))
    open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
    dpkg = ["dpkg", f"--root={root}", "--log=/dev/null", "--force-depends", "--force-script-chrootless"]
    r = run(dpkg + ["-i", deb])
    expect("dpkg -i into an empty root", r, 0)
    here = os.path.join(work, "user")
    os.makedirs(here)
    uses_only(os.path.join(root, "usr"), os.path.join(root, "usr", "bin", "cnnc"), here, cache, data)
    r = run(dpkg + ["--purge", "cnnc"])
    expect("dpkg --purge", r, 0)
    left = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(root, "usr")) for f in fs]
    check("nothing left behind under /usr", not left, str(left[:5]))


def main():
    build, src, cache = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "data")
        os.makedirs(data)
        write_fashion_slice(data, {"train": 256, "t10k": 64})
        prefix = os.path.join(work, "prefix")
        r = run(["cmake", "--install", build, "--prefix", prefix])
        expect("cmake --install", r, 0)
        here = os.path.join(work, "empty")
        os.makedirs(here)
        if not failures:
            uses_only(prefix, os.path.join(prefix, "bin", "cnnc"), here, cache, data)
        if not failures:
            cmake_example(src, prefix, work)
        if not failures:
            debian_package(build, work, cache, data)
    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
