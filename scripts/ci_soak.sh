#!/usr/bin/env bash
# Soak and fault tests (tests/soak, CTest label "soak") at full size, in the AddressSanitizer
# build, where LeakSanitizer checks at exit that nothing leaked: 10,000,000 tasklets in waves
# with flat memory, 1,000 connections churning for a minute with no growth, and peers that
# reset, stall or send garbage.
#
# Usage: scripts/ci_soak.sh [build-dir]   (default build/asan, shared with scripts/test.sh)
# TWISTLET_SOAK_TASKLETS and TWISTLET_SOAK_SECONDS override the sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/asan}
jobs=$(nproc)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWISTLET_CHECKS=ON \
      -DTWISTLET_SANITIZE=address,undefined -DTWISTLET_BUILD_BENCH=OFF
cmake --build "$build" -j"$jobs" --target test_soak

export TWISTLET_SOAK_TASKLETS=${TWISTLET_SOAK_TASKLETS:-10000000}
export TWISTLET_SOAK_SECONDS=${TWISTLET_SOAK_SECONDS:-60}
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export CTEST_OUTPUT_ON_FAILURE=1
# One at a time: the churn test needs the cores to itself, and each test measures its own RSS.
ctest --test-dir "$build" -L soak --timeout 1200
