#!/usr/bin/env bash
# Installs every Debian package cnnc needs to build and test. Idempotent: packages already present
# are skipped, and apt-get runs only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  antlr4 libantlr4-runtime-dev          # grammar tool + C++ runtime
  libcli11-dev                          # command-line parsing
  nlohmann-json3-dev zlib1g-dev libstb-dev   # plan/weights JSON, gzip data sets, image decoding
  libhalide14-0-dev                     # kernels
  libgtest-dev                          # unit tests
  llvm-14-tools                         # lit + FileCheck for golden tests
  clang-14 libclang-rt-14-dev           # libFuzzer and sanitizers
  python3 python3-torch python3-torchvision  # numerical reference in tests only
  graphviz                              # --emit=dot -o net.svg
  libonnx-dev libprotobuf-dev python3-onnx   # --emit=onnx; the checker in tests
  libonnx-testdata                      # ONNX's node tests: the import conformance test
  dataset-fashion-mnist                 # the default training data set
  g++-aarch64-linux-gnu zlib1g-dev:arm64 qemu-user   # --target arm-64-linux, tested under qemu
  pocl-opencl-icd ocl-icd-libopencl1   # --target host-opencl: runs the GPU path on this CPU in tests
  libopenmpi-dev openmpi-bin           # data-parallel training under mpirun (optional at build time)
)

# zlib1g-dev:arm64 (the static zlib of aarch64 executables) is a multiarch package.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  [ "$(id -u)" -ne 0 ] && SUDO=sudo || SUDO=""
  $SUDO dpkg --add-architecture arm64
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
