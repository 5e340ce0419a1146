#!/usr/bin/env bash
# Installs what moe-mlir needs to build and test on Debian 12 (bookworm):
# LLVM/MLIR 22 from bookworm-security, CMake, Ninja, Boost.Graph, GoogleTest.
# Idempotent: packages already present are left as they are.
set -euo pipefail

packages=(
  build-essential cmake ninja-build python3 zlib1g-dev
  llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools
  libboost-graph-dev libgtest-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
