#!/usr/bin/env python3
"""Markdown tables from the files tools/gpu_checks.sh writes (cuda.json, torch.json,
tensortape.json): GEMM against cuBLAS, and the TS-1/TS-2 steps against PyTorch eager.
Medians over the benchmark's repetitions.

    python3 tools/gpu_table.py OUT_DIR
"""
import json
import sys


def medians(bench):
    # run_name is e.g. "TS1/iterations:20/real_time"; keep the part before the benchmark's options.
    return {b["run_name"].split("/iterations:")[0]: b for b in bench["benchmarks"] if b.get("aggregate_name") == "median"}


def main(out_dir):
    bench = json.load(open(f"{out_dir}/cuda.json"))
    torch_results = json.load(open(f"{out_dir}/torch.json"))
    ours = json.load(open(f"{out_dir}/tensortape.json"))["steps"]
    rows = medians(bench)
    context = bench["context"]
    print(f"Device: {context.get('device')} (PyTorch {torch_results['torch']} saw {torch_results['device']}); "
          f"{context.get('date')}\n")

    print("| GEMM (batch x m x n x k) | fp32 tensortape TFLOP/s | fp32 cuBLAS | ratio | "
          "TF32 tensortape | TF32 cuBLAS | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    shapes = [name.split("/", 1)[1] for name in rows if name.startswith("GEMM_fp32/")]
    for shape in shapes:
        cells = []
        for precision in ("fp32", "tf32"):
            r = rows.get(f"GEMM_{precision}/{shape}")
            if r is None:
                cells += ["-", "-", "-"]
                continue
            cells += [f"{r['tensortape_TFLOPs']:.1f}", f"{r['cublas_TFLOPs']:.1f}", f"{r['ratio_to_cublas']:.2f}"]
        print(f"| {shape} | " + " | ".join(cells) + " |")

    print("\n| step | tensortape ms | PyTorch eager ms | ratio | GFLOP | tensortape TFLOP/s | "
          "peak MiB tensortape (in use / reserved) | peak MiB PyTorch (allocated / reserved) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in ("TS1", "TS2_frozen", "TS2_all"):
        r = rows.get(mode)
        t = torch_results["steps"].get(mode)
        if r is None or t is None:
            print(f"| {mode} | missing | | | | | | |")
            continue
        ms = r["real_time"]  # the benchmark's unit is ms
        gflop = ours[mode]["GFLOP"]
        print(f"| {mode} | {ms:.2f} | {t['ms_median']:.2f} | {ms / t['ms_median']:.2f} | {gflop:.2f} | "
              f"{gflop / ms:.2f} | {ours[mode]['peak_bytes_in_use'] / 2**20:.0f} / "
              f"{ours[mode]['peak_bytes_reserved'] / 2**20:.0f} | {t['peak_bytes_allocated'] / 2**20:.0f} / "
              f"{t['peak_bytes_reserved'] / 2**20:.0f} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
