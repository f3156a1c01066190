#!/usr/bin/env bash
# The checks that need a GPU, in one go: the CUDA test suites, then bench/cuda_bench (GEMM
# against cuBLAS, TS-1/TS-2 steps) and the same steps in PyTorch eager (tools/t5_step_torch.py).
# Run from the repository root on a machine with a GPU and a CUDA build (CMake's default finds
# nvcc; the cuda_* targets and bench/cuda_bench):
#
#   tools/gpu_checks.sh [BUILD_DIR [OUT_DIR]]     # defaults: build, gpu-results
#
# Writes OUT_DIR/tests.log (every suite's output, with nvidia-smi's card line), cuda.json
# (Google Benchmark), bench.log, tensortape.json and torch.json; then
# `python3 tools/gpu_table.py OUT_DIR` makes the tables for docs/benchmarks.md.
set -uo pipefail

build="${1:-build}"
out="${2:-gpu-results}"
mkdir -p "$out"
workload="$(mktemp -d)"

suites=(core_under_nvcc_test cuda_test)
# The suites run side by side (they share the GPU; each is small), each into its own log.
for suite in "${suites[@]}"; do
  ( timeout 600 "$build/test/$suite" --gtest_brief=1 >"$workload/$suite.log" 2>&1; echo "exit $?" >>"$workload/$suite.log" ) &
done
wait
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  for suite in "${suites[@]}"; do echo "=== $suite"; cat "$workload/$suite.log"; done
} >"$out/tests.log" 2>&1
grep -E "^===|^exit|PASSED|FAILED|SKIPPED \\[" "$out/tests.log"

"$build/bench/cuda_bench" --t5_export="$workload" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/cuda.json" --benchmark_out_format=json >"$out/bench.log" 2>&1
echo "cuda_bench: exit $?"
cp "$workload/tensortape.json" "$out/" 2>/dev/null
PYTHONUNBUFFERED=1 python3 tools/t5_step_torch.py "$workload" --json "$out/torch.json"
echo "t5_step_torch: exit $?"
rm -rf "$workload"
