#!/usr/bin/env python3
"""Markdown tables of bench/t5_step_bench results (TS-1, TS-2): median milliseconds per
training step per contender, ratios, GEMM GFLOP/s and peak resident memory.

    t5_step_bench_torch --benchmark_repetitions=5 --benchmark_display_aggregates_only=true \\
                        --benchmark_out=t5.json --benchmark_out_format=json
    python3 tools/t5_step_table.py t5.json [more.json ...] [--goals]

Benchmarks "TS1" and "TS2" carry one set of counters per contender ("tensortape",
"libtorch", "tensortape_frozen", "libtorch_frozen", "tensortape_all", "libtorch_all"):
<name>_ms, <name>_fwd_ms, <name>_bwd_ms, <name>_adam_ms, <name>_GFLOP, <name>_faults (page
faults per step, in newer JSON) and, for tensortape, <name>_gemm_calls; "gemm_floor[_frozen|_all]" runs only the step's GEMMs through
cblas_sgemm. Times are medians over repetitions. A ratio is the median of the
per-repetition ratios when the JSON holds the individual repetitions (contenders of one
repetition ran interleaved, so they share the VM's speed at the time), else the ratio of
the medians. Peak memory comes from the context entries rss_<name> = "peak_kb baseline_kb",
and tensortape's tensors' own peak from tensor_peak_<name> (KiB; newer JSON).
With several files, each is tabled in turn. --goals exits 1 unless TS-1 <= 0.5x libtorch,
TS-2 <= 0.5x libtorch and TS-2 <= 0.7x tensortape's all-trainable step.
"""
import argparse
import json
import statistics
import sys

ROWS = [  # (label, benchmark, ours, theirs, GEMM-only floor)
    ("TS-1 train step", "TS1", "tensortape", "libtorch", "gemm_floor"),
    ("TS-2 frozen + prefix", "TS2", "tensortape_frozen", "libtorch_frozen", "gemm_floor_frozen"),
    ("TS-2 all trainable + prefix", "TS2", "tensortape_all", "libtorch_all", "gemm_floor_all"),
]


def load(path):
    """{benchmark: {"median": {counter: value}, "reps": [{counter: value}, ...]}}, context."""
    with open(path) as f:
        report = json.load(f)
    out = {}
    for run in report["benchmarks"]:
        name = run["run_name"].split("/")[0]
        entry = out.setdefault(name, {"median": None, "reps": []})
        counters = {k: v for k, v in run.items() if isinstance(v, (int, float)) and k.endswith(("_ms", "_GFLOP", "_calls", "_faults"))}
        if run.get("run_type") == "aggregate":
            if run.get("aggregate_name") == "median":
                entry["median"] = counters
        else:
            entry["reps"].append(counters)
    for entry in out.values():
        if entry["median"] is None and entry["reps"]:  # no aggregates: take the median ourselves
            keys = entry["reps"][0].keys()
            entry["median"] = {k: statistics.median(r[k] for r in entry["reps"] if k in r) for k in keys}
    return out, report.get("context", {})


def ratio(entry, a, b):
    """a_ms / b_ms: median of per-repetition ratios where available, else ratio of medians."""
    reps = [r for r in entry["reps"] if f"{a}_ms" in r and f"{b}_ms" in r and r[f"{b}_ms"] > 0]
    if reps:
        return statistics.median(r[f"{a}_ms"] / r[f"{b}_ms"] for r in reps)
    m = entry["median"]
    if m and f"{a}_ms" in m and f"{b}_ms" in m and m[f"{b}_ms"] > 0:
        return m[f"{a}_ms"] / m[f"{b}_ms"]
    return None


def rss_mib(context, name):
    value = context.get(f"rss_{name}")
    if not value:
        return None, None
    peak, baseline = (int(x) for x in value.split())
    return peak / 1024, (peak - baseline) / 1024


def fmt(x, spec, suffix=""):
    return "-" if x is None else f"{x:{spec}}{suffix}"


def table(path, check_goals):
    data, context = load(path)
    print("| workload | tensortape ms | libtorch ms | tensortape / libtorch | GEMMs alone ms | tensortape / GEMMs alone "
          "| GFLOP per step | GFLOP/s tensortape, libtorch, GEMMs alone |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    memory_rows = []
    ratios = {}
    for label, bench, ours, theirs, floor in ROWS:
        entry = data.get(bench)
        if not entry or not entry["median"] or f"{ours}_ms" not in entry["median"]:
            continue
        m = entry["median"]
        ours_ms, theirs_ms, floor_ms = m.get(f"{ours}_ms"), m.get(f"{theirs}_ms"), m.get(f"{floor}_ms")
        gflop = m.get(f"{ours}_GFLOP")
        r = ratio(entry, ours, theirs)
        r_floor = ratio(entry, ours, floor)
        # Each contender's own GEMM work: libtorch's model computes the prefix positions that
        # tensortape's last decoder block skips.
        work = (gflop, m.get(f"{theirs}_GFLOP", gflop), m.get(f"{floor}_GFLOP", gflop))
        rates = ", ".join(fmt(w / t * 1e3 if w and t else None, ".0f") for w, t in zip(work, (ours_ms, theirs_ms, floor_ms)))
        ratios[ours] = r
        rss = []
        for name in (ours, theirs):
            peak, over = rss_mib(context, name)
            tensors = context.get(f"tensor_peak_{name}")
            held = f"; tensors at most {int(tensors) / 1024:.1f}" if tensors else ""
            rss.append("-" if peak is None else f"{peak:.0f} (+{over:.0f}{held})")
        memory_rows.append(f"| {label} | {rss[0]} | {rss[1]} |")
        print(f"| {label} | {fmt(ours_ms, '.1f')} | {fmt(theirs_ms, '.1f')} | {fmt(r, '.2f', 'x')} | {fmt(floor_ms, '.1f')} "
              f"| {fmt(r_floor, '.2f', 'x')} | {fmt(gflop, '.2f')} | {rates} |")
    print("\n| peak resident memory, MiB (+ growth over the process at start; tensors' own peak) | tensortape | libtorch |")
    print("|---|---:|---:|")
    print("\n".join(memory_rows))

    ts2 = data.get("TS2")
    own = ratio(ts2, "tensortape_frozen", "tensortape_all") if ts2 else None
    theirs_own = ratio(ts2, "libtorch_frozen", "libtorch_all") if ts2 else None
    flop_ratio = None
    if ts2 and ts2["median"] and "tensortape_all_GFLOP" in ts2["median"]:
        flop_ratio = ts2["median"]["tensortape_frozen_GFLOP"] / ts2["median"]["tensortape_all_GFLOP"]
    print(f"\nTS-2 frozen / all-trainable step: tensortape {fmt(own, '.2f', 'x')}, libtorch {fmt(theirs_own, '.2f', 'x')} "
          f"(GEMM FLOPs: {fmt(flop_ratio, '.2f', 'x')}).")

    print("\n| step split, median ms | forward | backward | Adam | GEMM calls | page faults |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, bench, ours, theirs, _ in ROWS:
        entry = data.get(bench)
        if not entry or not entry["median"]:
            continue
        for name in (ours, theirs):
            m = entry["median"]
            if f"{name}_ms" not in m:
                continue
            calls = m.get(f"{name}_gemm_calls")
            print(f"| {label}: {name} | {m[f'{name}_fwd_ms']:.1f} | {m[f'{name}_bwd_ms']:.1f} | {m[f'{name}_adam_ms']:.1f} "
                  f"| {fmt(calls, '.0f')} | {fmt(m.get(f'{name}_faults'), '.0f')} |")

    print(f"\n{context.get('num_cpus', '?')} CPUs, threads={context.get('threads', '?')}, libtorch "
          f"{context.get('libtorch', '-')}, OMP_WAIT_POLICY={context.get('OMP_WAIT_POLICY', '-')}, "
          f"host cache {context.get('host_cache', '-')}, subnormals flushed {context.get('flush_denormal', '-')}, "
          f"{context.get('date', '')}.")
    for key in ("check_ts1", "check_frozen", "check_all"):
        if key in context:
            print(f"- {key}: {context[key]}")

    if not check_goals:
        return 0
    failures = []
    for name, limit, what in (("tensortape", 0.5, "TS-1 vs libtorch"), ("tensortape_frozen", 0.5, "TS-2 vs libtorch")):
        if ratios.get(name) is None or ratios[name] > limit:
            failures.append(f"{what}: {fmt(ratios.get(name), '.2f', 'x')} (goal <= {limit}x)")
    if own is None or own > 0.7:
        failures.append(f"TS-2 vs own all-trainable: {fmt(own, '.2f', 'x')} (goal <= 0.7x)")
    if failures:
        print("\nGoals not met: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json_files", nargs="+")
    parser.add_argument("--goals", action="store_true", help="exit 1 unless the TS-1/TS-2 goals are met")
    args = parser.parse_args()
    status = 0
    for i, path in enumerate(args.json_files):
        if len(args.json_files) > 1:
            print(f"{'' if i == 0 else chr(10)}### {path}\n")
        status |= table(path, args.goals)
    return status


if __name__ == "__main__":
    sys.exit(main())
