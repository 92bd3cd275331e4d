#!/usr/bin/env bash
# Installs the Debian packages twistlet builds with, if any is missing. Needs root (or sudo).
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libboost-context-dev libboost-fiber-dev libboost-stacktrace-dev
  libasio-dev libcaf-dev catch2 libbenchmark-dev
  clang libclang-rt-dev gnuplot-nox doxygen netcat-openbsd
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "twistlet: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
