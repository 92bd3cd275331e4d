#!/usr/bin/env bash
# Installs what is missing, builds the demo and runs it. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build/normal -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/normal -j"$(nproc)" --target pipeline
exec build/normal/examples/pipeline "$@"
