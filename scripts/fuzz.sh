#!/usr/bin/env bash
# Builds the libFuzzer target with clang-14 (ASan + UBSan) and fuzzes the front end.
# Usage: scripts/fuzz.sh [SECONDS]   (default 600). New crashers land in tests/fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cmake -S . -B build-fuzz -G Ninja -DCNNC_FUZZ=ON -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build build-fuzz --target fuzz_frontend
mkdir -p build-fuzz/corpus tests/fuzz/crashes
cp -n tests/fuzz/corpus/* nets/*.cnn nets/lib/*.cnn build-fuzz/corpus/ 2>/dev/null || true
find tests/lit -name '*.cnn' -exec cp -n {} build-fuzz/corpus/ \; 2>/dev/null || true
build-fuzz/fuzz_frontend build-fuzz/corpus -max_total_time="$secs" -timeout=2 -rss_limit_mb=2048 \
  -max_len=4096 -dict=tests/fuzz/cnn.dict -artifact_prefix=tests/fuzz/crashes/ -print_final_stats=1
