#!/usr/bin/env python3
"""Markdown table of bench/gemm_bench results: median GFLOP/s per backend and the ratio to
OpenBLAS's cblas_sgemm from the same run.

    gemm_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \\
               --benchmark_out=gemm.json --benchmark_out_format=json
    python3 tools/gemm_table.py gemm.json [--min-ratio 0.9 --min-n 256]

Benchmark names are "<workload>[_naive]/<param>:<value>" (square/n:256), with one counter
"<impl>_GFLOPS" per contender. With
--min-ratio, exits 1 when a backend other than Reference is below that ratio on a square
problem of n >= --min-n.
"""
import argparse
import json
import sys

IMPL_ORDER = ["Reference", "Eigen", "Xtensor", "OpenBLAS"]
BASELINE = "OpenBLAS"


def median_gflops(report):
    """{(workload, param, value): {impl: GFLOP/s}} from medians (or single runs if no repetitions)."""
    runs = report["benchmarks"]
    have_aggregates = any(r.get("run_type") == "aggregate" for r in runs)
    table = {}
    for run in runs:
        if have_aggregates and not (run.get("run_type") == "aggregate" and run.get("aggregate_name") == "median"):
            continue
        workload, arg = run["run_name"].split("/")[:2]  # drops the "/real_time" suffix
        param, value = arg.split(":")
        row = table.setdefault((workload.removesuffix("_naive"), param, int(value)), {})
        for key, gflops in run.items():
            if key.endswith("_GFLOPS"):
                row[key.removesuffix("_GFLOPS")] = gflops
    return table


def describe(workload, param, value):
    if workload == "square":
        return f"square n={value}"
    return f"batched 256 x ({value}x64)@(64x16)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json_file")
    parser.add_argument("--min-ratio", type=float, default=None)
    parser.add_argument("--min-n", type=int, default=256)
    args = parser.parse_args()

    with open(args.json_file) as f:
        report = json.load(f)
    table = median_gflops(report)
    impls = [i for i in IMPL_ORDER if any(i in row for row in table.values())]

    print("| GEMM (fp32) | " + " | ".join(impls) + " |")
    print("|---|" + "---:|" * len(impls))
    failures = []
    for key in sorted(table, key=lambda k: (k[0] != "square", k[2])):
        row = table[key]
        baseline = row.get(BASELINE)
        cells = []
        for impl in impls:
            if impl not in row:
                cells.append("-")
                continue
            ratio = row[impl] / baseline if baseline else float("nan")
            cells.append(f"{row[impl]:.1f} ({ratio:.2f}x)")
            if (args.min_ratio is not None and impl not in ("Reference", BASELINE) and key[0] == "square"
                    and key[2] >= args.min_n and ratio < args.min_ratio):
                failures.append(f"{impl} at {describe(*key)}: {ratio:.2f}x")
        print(f"| {describe(*key)} | " + " | ".join(cells) + " |")

    context = report.get("context", {})
    print(f"\nMedian GFLOP/s (ratio to {BASELINE}, same run); {context.get('num_cpus', '?')} CPUs, "
          f"threads={context.get('threads', '?')}, {context.get('date', '')}.")
    if failures:
        print(f"\nBelow {args.min_ratio}x: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
