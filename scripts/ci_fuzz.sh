#!/usr/bin/env bash
# Builds the libFuzzer harness (fuzz/, clang++ with ASan and UBSan) and runs it from the
# checked-in corpus for about a minute. Any crash, sanitizer report or disagreement between
# the framework and the harness's reference model fails the run; the input that caused it is
# left in the build directory (crash-*).
#
# Usage: scripts/ci_fuzz.sh [build-dir] [seconds]   (defaults: build/fuzz, 60)
# To grow the corpus: run the fuzzer with a scratch directory first, then
#   build/fuzz/fuzz_model -merge=1 fuzz/corpus <scratch-dir>
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/fuzz}
seconds=${2:-60}
src=$PWD
case "$build" in /*) ;; *) build="$src/$build" ;; esac

cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)" --target fuzz_model

# New inputs go to a scratch directory, so the checked-in corpus only changes on purpose.
scratch="$build/corpus-new"
mkdir -p "$scratch"
cd "$build"
./fuzz_model -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
             "$scratch" "$src/fuzz/corpus"
