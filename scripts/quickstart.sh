#!/usr/bin/env bash
# The main job: set up, build cnnc, compile a lesson network to a native executable and run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
net=${1:-nets/lenet5.cnn}
name=$(basename "$net" .cnn)
echo "== cnnc $net --summary"
build/cnnc "$net" --summary
echo "== cnnc $net -o build/$name"
build/cnnc "$net" -o "build/$name"
build/cnnc "$net" --emit=dot -o "build/$name.svg"
echo "== build/$name info"
"build/$name" info
echo "== build/$name bench --batch 64"
"build/$name" bench --batch 64
echo "graph drawn to build/$name.svg; try: build/$name --help"
