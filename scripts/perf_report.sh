#!/usr/bin/env bash
# Runs every benchmark in bench/ (each runs twistlet and its closest peer side by side) and
# writes docs/performance.md with a PNG chart, docs/performance.png.
# Usage: scripts/perf_report.sh [extra Google Benchmark flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTWISTLET_BUILD_TESTS=OFF \
      -DTWISTLET_BUILD_DOCS=OFF -DTWISTLET_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/release -j"$(nproc)"

logs=build/release/bench-logs
rm -rf "$logs" && mkdir -p "$logs"
ratios="$logs/ratios.tsv"
: > "$ratios"
for bench in build/release/bench/bench_*; do
  [ -x "$bench" ] || continue
  name=$(basename "$bench")
  echo "== $name"
  TWISTLET_BENCH_RATIOS="$PWD/$ratios" "$bench" "$@" 2>&1 | tee "$logs/$name.txt"
done
python3 scripts/perf_report.py "$ratios" docs/performance.md docs/performance.png
echo "wrote docs/performance.md and docs/performance.png"
