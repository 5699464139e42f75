#!/usr/bin/env bash
# Exercise 3 of the lesson, the degradation problem (He et al., 2015, Figure 1): trains plain34 and its
# residual twin resnet34_cifar with the same recipe and seed on the same Fashion-MNIST subset, then draws
# both training-loss curves in one picture. The deeper plain net ends with the HIGHER training loss.
#
# Both nets run at a quarter of their width (-D base=16: widths 16, 32, 64, 128; 1/16 of the MACs) on
# the first $LIMIT training images for $EPOCHS epochs, so the two runs take about 10 minutes on 2 cores.
# The test split is the whole Fashion-MNIST test set.
#
# Environment: CNNC=path/to/cnnc uses that compiler as it is (default: build scripts/build.sh's
# build/cnnc); CNNC_CACHE_DIR=DIR is passed to cnnc as --cache-dir.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${CNNC:-}" ]]; then
  scripts/build.sh
  CNNC=build/cnnc
fi
cache=()
[[ -n "${CNNC_CACHE_DIR:-}" ]] && cache=(--cache-dir "$CNNC_CACHE_DIR")

LIMIT=3000 EPOCHS=5
recipe=(--limit "$LIMIT" --epochs "$EPOCHS" --batch 64 --lr 0.05 --momentum 0.9 --schedule constant --seed 1)
out=build/exercise3
rm -rf "$out/plain34" "$out/resnet34"  # this script's own previous runs
mkdir -p "$out"
for net in plain34 resnet34_cifar; do
  echo "== $CNNC nets/$net.cnn -D base=16 -o build/${net}_base16"
  "$CNNC" "nets/$net.cnn" -D base=16 -o "build/${net}_base16" "${cache[@]}"
done
for pair in plain34:plain34 resnet34:resnet34_cifar; do
  run=${pair%%:*} net=${pair#*:}
  echo "== build/${net}_base16 train ${recipe[*]} --out $out/$run"
  start=$SECONDS
  "build/${net}_base16" train "${recipe[@]}" --out "$out/$run"
  echo "$run: $((SECONDS - start)) s"
done
echo "== $CNNC plot $out/plain34/log.jsonl $out/resnet34/log.jsonl --metric train_loss -o $out/degradation.svg"
"$CNNC" plot "$out/plain34/log.jsonl" "$out/resnet34/log.jsonl" --metric train_loss \
  --title "plain34 vs resnet34 (base=16, $LIMIT images)" -o "$out/degradation.svg"
echo "picture: $out/degradation.svg (test accuracy: cnnc plot ... --metric test_accuracy)"
