#!/usr/bin/env bash
# Installs what is missing, builds the flagship demo (examples/kvdemo) and runs it. Extra
# arguments go to the demo, e.g. --two-process, --clients 16, --requests 2000.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build/normal -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/normal -j"$(nproc)" --target kvdemo
exec build/normal/examples/kvdemo "$@"
