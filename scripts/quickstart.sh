#!/usr/bin/env bash
# The main job: set up, build cnnc, check a lesson network and print its summary and graph.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
net=${1:-nets/lenet5.cnn}
echo "== cnnc $net --summary"
build/cnnc "$net" --summary
build/cnnc "$net" --emit=dot -o build/$(basename "$net" .cnn).svg
echo "== graph drawn to build/$(basename "$net" .cnn).svg"
