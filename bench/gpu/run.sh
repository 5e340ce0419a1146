#!/usr/bin/env bash
# Runs the GPU checks and the benchmark of the CUDA back end from a bundle
# that bench/gpu/bundle.sh built (no LLVM, MLIR or build tree needed here):
#
#   bench/gpu/run.sh [BUNDLE_DIR] [RESULTS_DIR]
#
# BUNDLE_DIR defaults to gpu-bundle, RESULTS_DIR to BUNDLE_DIR/results.
# Steps, each with a time limit, the whole in well under 10 minutes on an
# H200:
#   device.txt  moe-cuda-info
#   check.txt   moe-gpu-check: libmoe_gpu_kernels against an f64 reference,
#               bitwise determinism, a layer captured in a CUDA graph
#   check-mma.txt  on compute capability 9.0, where check.txt ran the wgmma
#               kernels: moe-gpu-check --quick on the mma.sync ones
#   check-wide.txt  on compute capability 9.0: moe-gpu-check --quick on the
#               wgmma kernels with 128-row tiles (MOE_GPU_WGMMA_ROWS=128)
#               and every permutation past 64 slots segmented, then with
#               6 k steps in shared memory (MOE_GPU_WGMMA_STAGES=6), then
#               on 64-row tiles with 8, then on 128 x 256 tiles
#               (MOE_GPU_WGMMA_COLS=256), then with each kernel's launch
#               overlapping the kernel before it
#               (MOE_GPU_DEPENDENT_LAUNCH=1): every variant the bench times
#   e2e.txt     end to end, against moe-reference's f64 results:
#               moe-compile --target cuda libraries run through their C API,
#               moe-run --pipeline cuda (the bundle's static moe-run,
#               JIT) on the layers of test/Pipelines/CUDA/Inputs/layers.sh,
#               and 40 random layers with random kernel choices
#               (scripts/fuzz-layers.py, seed 1)
#   bench.txt   moe-gpu-bench: layers, experts, cuBLAS per-expert loop and
#               grouped GEMM, memory bandwidth
#   profile.txt moe-gpu-bench --profile: the GPU time of each kernel of the
#               layers and the experts (MOE_CUDA_PROFILE)
#   ncu.txt     where the machine has Nsight Compute (ncu) and lets it read
#               the GPU's counters: the prefill expert GEMMs of a
#               Mixtral-like layer at T = 4096 and T = 256 and the
#               decoding GEMVs of a Qwen3-like layer at T = 1, analysed
#               (speed of light, occupancy, warp stalls, memory); not a
#               check
#   summary.txt all of the above with the date and the bundle's commit
#   perf-gpu.md the benchmark's tables and targets, as docs/perf-gpu.md
#               begins them, and the largest kernel times of profile.txt
# Exits with 77 when there is no usable GPU, 1 when a check failed.
# On a machine with a build tree: bench/gpu/bundle.sh && bench/gpu/run.sh
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bundle=${1:-gpu-bundle}
out=${2:-$bundle/results}
[ -x "$bundle/bin/moe-gpu-check" ] ||
  { echo "run.sh: error: no bundle in $bundle (bench/gpu/bundle.sh)" >&2; exit 1; }
bundle=$(cd "$bundle" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The bundle's libraries, and cuBLAS from the CUDA toolkit or from
# Python's nvidia-cublas package, wherever this machine has it.
libs="$bundle/lib"
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$dir" ] && libs="$libs:$dir"
done
pydir=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$pydir" ] && [ -d "$pydir" ] && libs="$libs:$pydir"
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

step() { printf '\n== %s\n' "$*"; }
status=0

# FILE from FILE.xz, once: the bundle carries moe-run and the compiled
# libraries compressed (with python3's lzma where there is no xz).
unpack() {
  if [ -e "$1" ] || [ ! -f "$1.xz" ]; then
    return 0
  fi
  if command -v xz > /dev/null; then
    xz -dc "$1.xz" > "$1"
  else
    python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as f, open(sys.argv[2], "wb") as g:
    shutil.copyfileobj(f, g)' "$1.xz" "$1"
  fi
  chmod +x "$1"
}
for packed in "$bundle"/aot/*/libmodel.so.xz "$bundle"/graph/*/libmodel.so.xz; do
  [ -f "$packed" ] && unpack "${packed%.xz}"
done

step "device"
"$bundle/bin/moe-cuda-info" 2>&1 | tee "$out/device.txt"
info=${PIPESTATUS[0]}
if [ "$info" -ne 0 ]; then
  echo "run.sh: no usable CUDA GPU (moe-cuda-info exited with $info)" >&2
  exit 77
fi

step "check: libmoe_gpu_kernels against the f64 reference"
timeout 240 "$bundle/bin/moe-gpu-check" 2>&1 | tee "$out/check.txt"
check=${PIPESTATUS[0]}
[ "$check" -eq 0 ] || status=1

# On compute capability 9.0 the check above ran the wgmma (sm_90a)
# kernels; the mma.sync ones that every other GPU runs are checked too.
if grep -q '^tensor-core GEMMs: wgmma' "$out/check.txt"; then
  step "check: the mma.sync kernels (MOE_GPU_WGMMA=0)"
  MOE_GPU_WGMMA=0 timeout 120 "$bundle/bin/moe-gpu-check" --quick 2>&1 |
    tee "$out/check-mma.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "check: 128-row wgmma tiles, segmented permutations"
  MOE_GPU_WGMMA_ROWS=128 MOE_GPU_PERMUTATION_SLOTS=64 timeout 120 \
    "$bundle/bin/moe-gpu-check" --quick 2>&1 | tee "$out/check-wide.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "check: 128-row wgmma tiles, 6 k steps in shared memory"
  MOE_GPU_WGMMA_ROWS=128 MOE_GPU_WGMMA_STAGES=6 timeout 120 \
    "$bundle/bin/moe-gpu-check" --quick 2>&1 | tee -a "$out/check-wide.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "check: 64-row wgmma tiles, 8 k steps in shared memory"
  MOE_GPU_WGMMA_STAGES=8 timeout 120 \
    "$bundle/bin/moe-gpu-check" --quick 2>&1 | tee -a "$out/check-wide.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "check: 128 x 256 wgmma tiles"
  MOE_GPU_WGMMA_ROWS=128 MOE_GPU_WGMMA_COLS=256 timeout 120 \
    "$bundle/bin/moe-gpu-check" --quick 2>&1 | tee -a "$out/check-wide.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  step "check: dependent launches (MOE_GPU_DEPENDENT_LAUNCH=1)"
  MOE_GPU_DEPENDENT_LAUNCH=1 timeout 120 \
    "$bundle/bin/moe-gpu-check" --quick 2>&1 | tee -a "$out/check-wide.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  : > "$out/check-mma.txt"
  : > "$out/check-wide.txt"
fi

step "AOT libraries (moe-compile --target cuda) against moe-reference"
: > "$out/e2e.txt"
# Each case also from 4 threads at once, on device buffers
# (moe_model_run_layer_async) and captured in a CUDA graph and replayed:
# bitwise the same output and statistics.
for dir in "$bundle"/aot/*/; do
  name=$(basename "$dir")
  layer=$(cat "$dir/layer")
  ok=1
  for set in "$dir"/cases/set*/; do
    timeout 60 "$dir/run" "$layer" "$dir/ckpt" "$set/arg0.npy" "$set/out0.npy" \
      4 graph >> "$out/e2e.txt" 2>&1 || ok=0
  done
  # A library of f32 or f16 rows computed in bf16 compares with the bf16
  # tolerance in `tol` (bundle.sh).
  tol=()
  if [ -f "$dir/tol" ]; then
    tol=(--tol "$(cat "$dir/tol")")
  fi
  if [ "$ok" -eq 1 ] &&
     "$bundle/bin/moe-reference" compare --dir "$dir/cases" "${tol[@]}" \
       >> "$out/e2e.txt" 2>&1; then
    echo "PASS: aot $name" | tee -a "$out/e2e.txt"
  else
    echo "FAIL: aot $name" | tee -a "$out/e2e.txt"
    status=1
  fi
done

# A compiled layer on device buffers, captured in a CUDA graph and replayed
# (examples/cuda/layer_graph.c): bitwise the host entry point's output,
# every replay counted, a tau and a capacity factor turned after the
# capture followed.
if timeout 60 "$bundle/aot/wide/layer_graph" "$bundle/aot/wide/ckpt" 100 10 \
     >> "$out/e2e.txt" 2>&1 &&
   timeout 60 "$bundle/graph/threshold/layer_graph" \
     "$bundle/graph/threshold/ckpt" 64 5 tau=0.2 >> "$out/e2e.txt" 2>&1 &&
   timeout 60 "$bundle/graph/capacity/layer_graph" \
     "$bundle/graph/threshold/ckpt" 64 5 capacity_factor=0.25 \
     >> "$out/e2e.txt" 2>&1; then
  echo "PASS: aot layers in CUDA graphs" | tee -a "$out/e2e.txt"
else
  echo "FAIL: aot layers in CUDA graphs" | tee -a "$out/e2e.txt"
  status=1
fi

step "moe-run --pipeline cuda against moe-reference"
# The bundle carries moe-run compressed; it needs a C library as recent as
# the build machine's.
moe_run="$bundle/bin/moe-run"
unpack "$moe_run"
if ! "$moe_run" --version > /dev/null 2>&1; then
  echo "FAIL: moe-run --pipeline cuda: the bundle's moe-run does not start here" |
    tee -a "$out/e2e.txt"
  "$moe_run" --version 2>&1 | head -n 3 | tee -a "$out/e2e.txt"
  status=1
elif timeout 300 bash test/Pipelines/CUDA/Inputs/layers.sh cuda \
       "$bundle/layers" "$bundle/bin" > "$bundle/layers.txt" 2>&1; then
  cat "$bundle/layers.txt" >> "$out/e2e.txt"
  echo "PASS: moe-run --pipeline cuda ($(grep -c '^compare: .*all ok' "$bundle/layers.txt") layers)" |
    tee -a "$out/e2e.txt"
else
  cat "$bundle/layers.txt" >> "$out/e2e.txt"
  tail -n 5 "$bundle/layers.txt"
  echo "FAIL: moe-run --pipeline cuda" | tee -a "$out/e2e.txt"
  status=1
fi

step "random layers and kernel choices (fuzz-layers.py) against moe-reference"
# The layers of every routing, capacity and expert kind with random kernel
# choices (wgmma or mma.sync, tiles, stages, GEMV threshold, grid split),
# among them every variant the bench times: what the emulator checked,
# now on the GPU.
if ! command -v python3 > /dev/null; then
  echo "SKIP: random layers on the GPU (fuzz-layers.py): no python3 here" |
    tee -a "$out/e2e.txt"
elif "$moe_run" --version > /dev/null 2>&1 &&
   timeout 300 python3 scripts/fuzz-layers.py --bindir "$bundle/bin" \
     --pipeline cuda --seed 1 --count 40 --jobs 8 --keep "$bundle/fuzz" \
     > "$bundle/fuzz.txt" 2>&1; then
  tail -n 1 "$bundle/fuzz.txt" | tee -a "$out/e2e.txt"
else
  cat "$bundle/fuzz.txt" >> "$out/e2e.txt" 2>/dev/null
  tail -n 5 "$bundle/fuzz.txt" 2>/dev/null
  echo "FAIL: random layers on the GPU (fuzz-layers.py)" | tee -a "$out/e2e.txt"
  status=1
fi

# Where the wgmma kernels failed their check, the benchmark times the
# mma.sync ones alone, so that the run still measures something.
bench_env=()
if [ "$check" -ne 0 ] && grep -q '^tensor-core GEMMs: wgmma' "$out/check.txt"; then
  bench_env=(MOE_GPU_WGMMA=0)
fi
step "bench ${bench_env[*]}"
env "${bench_env[@]}" timeout 360 "$bundle/bin/moe-gpu-bench" 2>&1 | tee "$out/bench.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# Where the time goes: each layer's and experts' kernels timed one by one
# (MOE_CUDA_PROFILE), by kernel and grid.
step "profile ${bench_env[*]}"
env "${bench_env[@]}" MOE_CUDA_PROFILE=1 timeout 120 \
  "$bundle/bin/moe-gpu-bench" --profile --reps 5 > "$out/profile.txt" 2>&1
[ $? -eq 0 ] || status=1
tail -n 30 "$out/profile.txt"

# Why the kernels furthest from their targets are where they are: the
# hardware's counters, where ncu is here and may read them (it needs the
# toolkit and, on most machines, root or the driver's profiling
# permission); its absence or refusal is written down, not a failure.
ncu=$(command -v ncu || true)
for dir in /usr/local/cuda/bin /opt/nvidia/nsight-compute/*; do
  if [ -z "$ncu" ] && [ -x "$dir/ncu" ]; then ncu="$dir/ncu"; fi
done
if [ -n "$ncu" ]; then
  step "ncu ${bench_env[*]}"
  sections=(--section SpeedOfLight --section Occupancy
            --section WarpStateStats --section MemoryWorkloadAnalysis
            --section SchedulerStats)
  {
    echo "== prefill: mixtral T=4096, the first two expert GEMMs"
    env "${bench_env[@]}" timeout 180 "$ncu" -k 'regex:grouped_gemm|gate_up_swiglu' \
      -c 2 "${sections[@]}" "$bundle/bin/moe-gpu-bench" --shapes mixtral \
      --tokens 4096 --reps 1
    echo "ncu exit: $?"
    echo "== prefill: mixtral T=256, the first two expert GEMMs (the widest gap to cuBLAS grouped)"
    env "${bench_env[@]}" timeout 120 "$ncu" -k 'regex:grouped_gemm|gate_up_swiglu' \
      -c 2 "${sections[@]}" "$bundle/bin/moe-gpu-bench" --shapes mixtral \
      --tokens 256 --reps 1
    echo "ncu exit: $?"
    echo "== decode: qwen3 T=1, the first two GEMVs"
    env "${bench_env[@]}" timeout 120 "$ncu" -k regex:gemv -c 2 "${sections[@]}" \
      "$bundle/bin/moe-gpu-bench" --shapes qwen3 --tokens 1 --reps 1
    echo "ncu exit: $?"
  } > "$out/ncu.txt" 2>&1
  grep -E '^== |ncu exit|Duration|Memory Throughput|DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|==ERROR==' \
    "$out/ncu.txt" | head -n 60
else
  echo "ncu: not on this machine (PATH, /usr/local/cuda/bin, /opt/nvidia/nsight-compute)" |
    tee "$out/ncu.txt"
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  cat "$bundle/BUILD"
  echo
  cat "$out/device.txt"
  echo
  grep -hE '^(tensor-core GEMMs|PASS|FAIL|ALL PASSED|FAILED)' \
    "$out/check.txt" "$out/check-mma.txt" "$out/check-wide.txt" \
    "$out/e2e.txt"
  echo
  cat "$out/bench.txt"
  echo
  cat "$out/profile.txt"
} > "$out/summary.txt"
# The measurements as docs/perf-gpu.md begins them.
{
  echo "# Performance of the CUDA back end"
  echo
  echo "Measured on $(date -u +%Y-%m-%d) on" \
    "$(grep -m1 '^device 0:' "$out/device.txt" | sed 's/^device 0: //')" \
    "by \`bench/gpu/run.sh\` ($(grep '^commit:' "$bundle/BUILD"))."
  echo
  grep '^copy:' "$out/bench.txt" || true
  echo
  sed -n '/^| shape | T | rows/,$p' "$out/bench.txt"
  # The kernels that took the most GPU time in each profiled call: the
  # first six rows of each report of profile.txt.
  echo
  echo "Kernel times (MOE_CUDA_PROFILE, the six largest of each call):"
  echo
  echo "| shape | T | call | kernel | grid | launches | total ms | median us |"
  echo "|---|---|---|---|---|---|---|---|"
  awk '/^== / { shape = $2; t = $3; sub(/^T=/, "", t);
                sub(/:$/, "", t); call = $4 " " $5; sub(/,$/, "", call);
                n = 0; next }
       /^moe cuda profile:/ || /^kernel grid/ { next }
       shape != "" && NF == 6 && n < 6 {
         printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
                shape, t, call, $1, $2, $3, $4, $5; n++ }' "$out/profile.txt"
} > "$out/perf-gpu.md"
step "results in $out (summary.txt, perf-gpu.md)"
exit $status
