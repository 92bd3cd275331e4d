#!/usr/bin/env bash
# ThreadSanitizer build of the test suite: every cross-thread path (call_from_thread,
# defer_to_thread, reactors on several threads, actor hubs) runs under TSan, with the tasklet
# switches annotated as fibers (framework/core/scheduler.cpp). Any report fails the run.
# scripts/tsan.supp lists what TSan cannot see into (CAF and libstdc++ are not instrumented),
# with the reason for each entry.
#
# Usage: scripts/ci_tsan.sh [build-dir]   (default build/tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/tsan}
jobs=$(nproc)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTWISTLET_CHECKS=ON \
      -DTWISTLET_SANITIZE=thread -DTWISTLET_BUILD_BENCH=OFF -DTWISTLET_BUILD_EXAMPLES=OFF \
      -DTWISTLET_BUILD_DOCS=OFF
# Only the test programs (test_<layer>), except test_soak: the soak tests are sized for the
# ASan build (scripts/ci_soak.sh); under TSan's 5-15x slowdown they would take most of CI's
# budget and exercise no cross-thread path the layer tests do not.
targets=$(cmake --build "$build" --target help |
          sed -n -e 's/^\.\.\. \(test_[a-z_]*\).*/\1/p' -e 's/^\(test_[a-z_]*\): .*/\1/p' |
          grep -v '^test_soak$' || true)
if [ -z "$targets" ]; then
  echo "ci_tsan: no test targets found in $build" >&2
  exit 1
fi
# shellcheck disable=SC2086
cmake --build "$build" -j"$jobs" --target $targets

export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/scripts/tsan.supp ${TSAN_OPTIONS:-}"
export CTEST_OUTPUT_ON_FAILURE=1
# TSan's shadow memory needs the usual address-space layout; with large mmap randomisation
# (newer kernels) it can abort at start. Where the machine allows it, run without ASLR.
runner=()
if setarch "$(uname -m)" -R true 2>/dev/null; then
  runner=(setarch "$(uname -m)" -R)
fi
# test_soak is not built here, so its discovery placeholder (which carries no label) goes too.
"${runner[@]}" ctest --test-dir "$build" -j"$jobs" --timeout 900 -LE soak -E '^test_soak_NOT_BUILT'
