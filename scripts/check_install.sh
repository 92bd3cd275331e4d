#!/usr/bin/env bash
# Installs a build of twistlet into a scratch prefix and builds a small consumer project
# against it three ways: find_package(twistlet), pkg-config, and add_subdirectory(checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/normal}
prefix=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$prefix" "$work"' EXIT
jobs=$(nproc)

cmake --install "$build" --prefix "$prefix" >/dev/null

echo "-- consumer via find_package(twistlet)"
cmake -S tests/consumer -B "$work/find" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/find" -j"$jobs" >/dev/null
"$work/find/consumer"

echo "-- actor consumer via find_package(twistlet COMPONENTS actor)"
cmake -S tests/consumer -B "$work/actor" -DCONSUMER_WITH_ACTOR=ON -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/actor" -j"$jobs" >/dev/null
"$work/actor/actor_consumer"

echo "-- consumer via pkg-config"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
  sh -c 'g++ -O1 tests/consumer/main.cpp $(pkg-config --cflags --libs twistlet) -o "$0"' "$work/consumer_pc"
"$work/consumer_pc"
echo "-- actor consumer via pkg-config"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig" \
  sh -c 'g++ -O1 tests/consumer/actor_main.cpp $(pkg-config --cflags --libs twistlet-actor) -o "$0"' "$work/actor_pc"
"$work/actor_pc"

echo "-- consumer via add_subdirectory(checkout)"
cmake -S tests/consumer -B "$work/sub" -DTWISTLET_SOURCE_DIR="$PWD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$work/sub" -j"$jobs" --target consumer >/dev/null
"$work/sub/consumer"
