#!/usr/bin/env bash
# Installs what is missing, then builds and runs the whole test suite in each CI build:
#   1. a normal build (thread-affinity checks on), its tests, the 10,000,000-tasklet soak, and
#      consumer projects built against the installed package;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build, its tests, and the soak and fault
#      tests at full length (LeakSanitizer checks at exit);
#   3. a ThreadSanitizer build of the test programs;
#   4. a minute of fuzzing (libFuzzer) from the checked-in corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh

jobs=$(nproc)
export CTEST_OUTPUT_ON_FAILURE=1
started=$SECONDS
step() { echo; echo "== $* ($(( (SECONDS - started) / 60 )) min in) =="; }

step "normal build"
cmake -S . -B build/normal -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWISTLET_CHECKS=ON
cmake --build build/normal -j"$jobs"
ctest --test-dir build/normal -j"$jobs" --timeout 600 -LE soak

step "soak: 10,000,000 tasklets in waves (normal build)"
TWISTLET_SOAK_TASKLETS=10000000 TWISTLET_SOAK_SECONDS=5 ctest --test-dir build/normal -L soak --timeout 900

step "installed package: consumer projects"
./scripts/check_install.sh build/normal

step "AddressSanitizer + UndefinedBehaviorSanitizer build"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWISTLET_CHECKS=ON \
      -DTWISTLET_SANITIZE=address,undefined -DTWISTLET_BUILD_BENCH=OFF
cmake --build build/asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan -j"$jobs" --timeout 900 -LE soak

step "soak and fault tests under ASan: 1,000 connections churning for a minute"
# The ten million tasklets ran in the normal build; a million here still checks LSan on waves.
TWISTLET_SOAK_TASKLETS=1000000 ./scripts/ci_soak.sh build/asan

step "ThreadSanitizer build"
./scripts/ci_tsan.sh build/tsan

step "fuzzing (libFuzzer, 60 s from fuzz/corpus)"
./scripts/ci_fuzz.sh build/fuzz 60

step "all test builds passed"
