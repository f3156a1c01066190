#!/usr/bin/env python3
"""Plots editlab results like the SEPROG paper's Figures 2 and 3.

Reads a results file written by the evaluation harness (JSON lines with method, benchmark,
batch_size, draws, es, es_se, dd, dd_se, acc_drop, and optionally hard_dd, hard_dd_se, edit_ms;
see examples/editing/eval/report.hpp) and writes PNGs:

  es_vs_batch_size.png       ES against edit batch size (log x), one line per method,
                             one panel per benchmark, error bars = standard error
  dd_vs_batch_size.png       the same for DD
  hard_dd_vs_batch_size.png  hard out-scope DD, when any row has it

Usage:
  python3 tools/plot_results.py results.jsonl --out docs/results/
  python3 tools/plot_results.py results.jsonl --out docs/results/ablations \
      --methods seprog,sp-finetune,sp-noclassifier,sp-noselect          # Figure 3

As with the Markdown tables, when a (method, benchmark, split, batch_size, seed) appears more than
once the last line wins, and the rows of several editor training seeds are averaged (their
standard error: the seeds' mean standard error, since they read the same edit draws, with the
seeds' scatter added). A metric written as null (nothing measured) is left
out of its line.

Needs matplotlib (Debian: apt-get install python3-matplotlib; it lands in /usr/bin/python3, so
run that interpreter if another python3 comes first on PATH). Optional: neither the build nor
the tests use this script.
"""

import argparse
import json
import math
import os
import sys


def average_seeds(rows):
    """One row per (method, benchmark, split, batch_size): the seeds' mean and its standard error."""
    groups = {}
    for row in rows:
        groups.setdefault((row["method"], row["benchmark"], row.get("split", "test"), row["batch_size"]), []).append(row)
    out = []
    for group in groups.values():
        merged = dict(group[0])
        for metric in ("es", "dd", "hard_dd"):
            values = [(r.get(metric), r.get(metric + "_se") or 0.0) for r in group if measured(r.get(metric))]
            if values:
                n = len(values)
                mean = sum(v for v, _ in values) / n
                # Every seed reads the same edit draws: their error is shared (the mean se), and
                # the seeds' own scatter adds (as editlab table does).
                mean_se = sum(se for _, se in values) / n
                scatter = sum((v - mean) ** 2 for v, _ in values) / (n - 1) if n > 1 else 0.0
                merged[metric] = mean
                merged[metric + "_se"] = math.sqrt(mean_se * mean_se + scatter / n)
        out.append(merged)
    return out


def read_rows(path):
    """The rows of a results file, last line per (method, benchmark, split, batch_size, seed)
    winning, seeds averaged."""
    required = ("method", "benchmark", "batch_size", "es", "dd")
    latest = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not valid JSON ({e})")
            if not isinstance(row, dict):
                sys.exit(f"{path}:{number}: expected a JSON object")
            for field in required:
                if field not in row:
                    sys.exit(f"{path}:{number}: field '{field}' is missing")
            key = (row["method"], row["benchmark"], row.get("split", "test"), row["batch_size"], row.get("seed"))
            latest[key] = row
    if not latest:
        sys.exit(f"{path}: no result rows")
    return average_seeds(latest.values())


def ordered(values):
    """Distinct values in order of first appearance."""
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def measured(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def plot_metric(plt, rows, metric, label, path, methods, benchmarks):
    """One panel per benchmark; one line per method; x = batch size on a log scale."""
    panels = [b for b in benchmarks if any(measured(r.get(metric)) for r in rows if r["benchmark"] == b)]
    if not panels:
        return False
    columns = min(len(panels), 3)
    rows_of_panels = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(4.2 * columns, 3.4 * rows_of_panels),
                             squeeze=False)
    all_sizes = sorted({r["batch_size"] for r in rows})
    for index, benchmark in enumerate(panels):
        ax = axes[index // columns][index % columns]
        for method in methods:
            points = sorted((r["batch_size"], r[metric], r.get(metric + "_se") or 0.0) for r in rows
                            if r["method"] == method and r["benchmark"] == benchmark and measured(r.get(metric)))
            if not points:
                continue
            xs, ys, errors = zip(*points)
            # One colour per method across every panel, even where a panel lacks some methods.
            colour = f"C{methods.index(method) % 10}"
            ax.errorbar(xs, ys, yerr=errors, marker="o", markersize=4, capsize=3, label=method, color=colour)
        ax.set_xscale("log")
        ax.set_xticks(all_sizes)
        ax.set_xticklabels([str(k) for k in all_sizes])
        ax.minorticks_off()
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(benchmark)
        ax.set_xlabel("edit batch size")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    for index in range(len(panels), rows_of_panels * columns):
        axes[index // columns][index % columns].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax_row in axes:
        for ax in ax_row:
            for h, l in zip(*ax.get_legend_handles_labels()):
                if l not in labels:
                    handles.append(h)
                    labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), frameon=False)
    fig.tight_layout(rect=(0, 0.08 if rows_of_panels == 1 else 0.05, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main():
    parser = argparse.ArgumentParser(description="Plot editlab results (ES / DD against edit batch size).")
    parser.add_argument("results", help="results file (JSON lines) written by the evaluation harness")
    parser.add_argument("--out", default=".", help="folder for the PNGs (created if missing)")
    parser.add_argument("--methods", help="comma-separated methods to plot, in legend order (default: all)")
    parser.add_argument("--benchmarks", help="comma-separated benchmarks to plot, in panel order (default: all)")
    args = parser.parse_args()

    try:
        import matplotlib
        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_results.py needs matplotlib: apt-get install python3-matplotlib "
                 "(then run /usr/bin/python3 if another python3 comes first on PATH)")

    rows = read_rows(args.results)
    methods = args.methods.split(",") if args.methods else ordered(r["method"] for r in rows)
    benchmarks = args.benchmarks.split(",") if args.benchmarks else ordered(r["benchmark"] for r in rows)
    for name, wanted in (("method", methods), ("benchmark", benchmarks)):
        present = {r[name] for r in rows}
        missing = [w for w in wanted if w not in present]
        if missing:
            sys.exit(f"{args.results}: no rows for {name} {', '.join(missing)} (present: {', '.join(sorted(present))})")
    rows = [r for r in rows if r["method"] in methods and r["benchmark"] in benchmarks]

    os.makedirs(args.out, exist_ok=True)
    written = []
    for metric, label in (("es", "ES (higher is better)"), ("dd", "DD (lower is better)"),
                          ("hard_dd", "hard out-scope DD (lower is better)")):
        path = os.path.join(args.out, f"{metric}_vs_batch_size.png")
        if plot_metric(plt, rows, metric, label, path, methods, benchmarks):
            written.append(path)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
