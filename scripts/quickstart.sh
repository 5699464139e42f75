#!/usr/bin/env bash
# The main job: set up, build cnnc, compile LeNet-5 to a native executable and train it on
# Fashion-MNIST (Debian's dataset-fashion-mnist), printing the test accuracy.
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
echo "== build/$name train (the recipe in $net: Fashion-MNIST, 10 epochs, SGD momentum 0.9, cosine schedule)"
rm -rf "build/run-$name"  # this script's own previous run
"build/$name" train ${EPOCHS:+--epochs "$EPOCHS"} --out "build/run-$name"
echo "graph: build/$name.svg; curves: build/run-$name/curves.svg; try: build/$name --help"
