#!/usr/bin/env bash
# Installs what is missing, then builds and runs the whole test suite in each CI build:
# a normal build (with the thread-affinity checks on) and an AddressSanitizer +
# UndefinedBehaviorSanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh

jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1

echo "== normal build =="
cmake -S . -B build/normal -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWISTLET_CHECKS=ON
cmake --build build/normal -j"$jobs"
ctest --test-dir build/normal -j"$jobs" --timeout 600

echo "== installed package: consumer projects =="
./scripts/check_install.sh build/normal

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build =="
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWISTLET_CHECKS=ON \
      -DTWISTLET_SANITIZE=address,undefined -DTWISTLET_BUILD_BENCH=OFF
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan -j"$jobs" --timeout 900

echo "== all test builds passed =="
