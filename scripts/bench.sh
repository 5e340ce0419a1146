#!/usr/bin/env bash
# The CPU benchmark of docs/perf-cpu.md in one command: installs the peer
# libraries it compares against (oneDNN, OpenBLAS; benchmark dependencies
# only), builds moe-bench and prints its table. Arguments go to moe-bench
# (--quick for a short run, --skip-reference, --num-threads N, --only S,
# --stats-overhead-only).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in libdnnl-dev libopenblas-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

[ -f build/build.ninja ] || scripts/build.sh
cmake -S . -B build -DMOE_BUILD_BENCH=ON >/dev/null
cmake --build build --target moe-bench

# Debian's OpenBLAS 0.3.21 picks its Haswell kernels on CPUs it does not
# know (Zen 5 among them); give it its AVX-512 kernels where the CPU has
# AVX-512.
if grep -qw avx512f /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
fi
exec build/bin/moe-bench "$@"
