#!/usr/bin/env bash
# Builds what the CUDA kernel library needs, runs its GPU tests and times the
# expert kernels, on a machine with an NVIDIA GPU (written for an H200).
#
#   bench/gpu/run.sh [RESULTS_DIR]
#
# Environment: CUDA_ROOT (default /usr/local/cuda; ptxas and libdevice),
# LLVM_BIN (default /usr/lib/llvm-22/bin), CHIP (default sm_90), BUILD_DIR
# (default build). Results go to RESULTS_DIR (default $BUILD_DIR/gpu-bench):
# lit.log, bench.txt and summary.txt. Takes a few minutes.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CUDA_ROOT=${CUDA_ROOT:-/usr/local/cuda}
llvm_bin=${LLVM_BIN:-/usr/lib/llvm-22/bin}
chip=${CHIP:-sm_90}
build=${BUILD_DIR:-build}
out=${1:-$build/gpu-bench}

step() { printf '\n== %s\n' "$*"; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }

for tool in mlir-opt mlir-translate mlir-runner llc lit FileCheck; do
  [ -x "$llvm_bin/$tool" ] || die "$llvm_bin/$tool not found (set LLVM_BIN)"
done
[ -x "$CUDA_ROOT/bin/ptxas" ] ||
  die "$CUDA_ROOT/bin/ptxas not found (set CUDA_ROOT to a CUDA toolkit)"
mkdir -p "$out"
out=$(cd "$out" && pwd)

step "build: moe_cuda_runtime, moe-cuda-info ($build)"
if [ ! -f "$build/build.ninja" ]; then
  launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
              -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  cmake -G Ninja -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT="$llvm_bin/lit" "${launcher[@]}" > "$out/cmake.log" ||
    die "cmake failed; see $out/cmake.log"
fi
ninja -C "$build" moe_cuda_runtime moe-cuda-info > "$out/ninja.log" ||
  die "the build failed; see $out/ninja.log"
lib_dir=$(cd "$build/lib" && pwd)

step "device"
"$build/bin/moe-cuda-info" | tee "$out/device.txt" ||
  die "no usable CUDA GPU (moe-cuda-info exited with $?)"

step "lit: test/GPU test/Runtime/CUDA"
lit_status=0
timeout 300 "$llvm_bin/lit" -v "$build/test/GPU" "$build/test/Runtime/CUDA" \
  > "$out/lit.log" 2>&1 || lit_status=$?
grep -E '^(PASS|FAIL|XFAIL|XPASS|UNSUPPORTED|UNRESOLVED|TIMEOUT):' \
  "$out/lit.log" || true
tail -n 6 "$out/lit.log"
if grep -q '^UNSUPPORTED: .*-gpu.mlir' "$out/lit.log"; then
  echo "warning: GPU execution tests were not run (no cuda-gpu feature)"
fi

step "bench: gated expert FFN ($chip cubin)"
work="$out/work"
mkdir -p "$work"
pipeline="builtin.module(gpu.module(inline, symbol-dce), \
func.func(gpu-async-region), gpu-lower-to-nvvm-pipeline{cubin-chip=$chip \
cubin-features=+ptx80 cubin-format=bin opt-level=3})"
"$llvm_bin/mlir-opt" lib/GPU/Kernels/experts.mlir \
  "--pass-pipeline=$pipeline" -o "$work/experts.mlir"
"$llvm_bin/mlir-translate" --mlir-to-llvmir "$work/experts.mlir" \
  -o "$work/experts.ll"
"$llvm_bin/llc" -O2 -filetype=obj -relocation-model=pic "$work/experts.ll" \
  -o "$work/experts.o"
cc -shared "$work/experts.o" -L"$lib_dir" -lmoe_cuda_runtime \
  -Wl,-rpath,"$lib_dir" -o "$work/libmoe_gpu_experts.so"
"$llvm_bin/mlir-opt" bench/gpu/expert_ffn_bench.mlir \
  "--pass-pipeline=$pipeline" -o "$work/bench.mlir"
bench_status=0
timeout 300 "$llvm_bin/mlir-runner" "$work/bench.mlir" -e main \
  -entry-point-result=void \
  -shared-libs="$llvm_bin/../lib/libmlir_c_runner_utils.so,$work/libmoe_gpu_experts.so" \
  2>&1 | tee "$out/bench.txt" || bench_status=$?

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "chip: $chip"
  cat "$out/device.txt"
  echo "lit exit status: $lit_status"
  grep -E '^ *(Passed|Failed|Unsupported)' "$out/lit.log" || true
  echo "bench exit status: $bench_status"
  cat "$out/bench.txt"
} > "$out/summary.txt"

step "results in $out (summary.txt, lit.log, bench.txt)"
[ "$lit_status" -eq 0 ] || die "lit failed (exit $lit_status); see $out/lit.log"
[ "$bench_status" -eq 0 ] || die "the benchmark failed (exit $bench_status)"
