"""Benchmark of the model registry on the nine architectures of the onnx wheel.

For each model (random weights, seed 0): the time to inspect it (load, check, analyse,
from the file), to split it at two cut points into a directory, and to verify the chain
against the whole model; then per-block latency on this host against the estimate that
time is proportional to FLOPs (Pearson r, fitted GFLOP/s, spread of measured/estimated).

    .venv/bin/python bench/registry.py [--runs 5] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import cpu_model

from models_registry import (
    analyse_model,
    compare,
    profile_blocks,
    randomize,
    read_partitions,
    split_model,
    verify_chain,
    write_partitions,
)
from models_registry.profiling import pearson

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = (
    "bvlc_alexnet", "vgg19", "resnet50", "squeezenet", "densenet121", "inception_v1",
    "inception_v2", "shufflenet", "zfnet512",
)  # fmt: skip


def bench_model(name: str, workdir: Path, runs: int, threads: int) -> dict[str, Any]:
    raw = LIGHT / f"light_{name}.onnx"
    start = time.perf_counter()
    raw_analysis = analyse_model(raw)
    raw_inspect_s = time.perf_counter() - start
    path = workdir / f"{name}.onnx"
    path.write_bytes(randomize(raw, seed=0).SerializeToString())

    start = time.perf_counter()
    analysis = analyse_model(path)
    inspect_s = time.perf_counter() - start

    after = random.Random(f"bench-{name}").sample(analysis.block_names[:-1], 2)
    start = time.perf_counter()
    parts = split_model(analysis, after)
    write_partitions(parts, workdir / f"{name}-parts")
    split_s = time.perf_counter() - start

    start = time.perf_counter()
    stored = read_partitions(workdir / f"{name}-parts")
    report = verify_chain(path.read_bytes(), [p.data for p in stored], threads=threads)
    verify_s = time.perf_counter() - start

    timings = profile_blocks(analysis, runs=runs, warmup=2, threads=threads)
    comparison = compare(timings)
    ratios = comparison.ratios
    return {
        "model": name,
        "nodes": len(raw_analysis.model.graph.node),
        "blocks": len(analysis.blocks),
        "gflops": analysis.total_gflops,
        "params_mb": analysis.params_mb,
        "inspect_raw_s": raw_inspect_s,
        "inspect_s": inspect_s,
        "split_s": split_s,
        "verify_s": verify_s,
        "verify_max_rel": report.max_rel,
        "verify_passed": report.passed,
        "pearson_r": comparison.pearson_r,
        "host_gflops_per_s": comparison.host_gflops_per_s,
        "ratio_min": min(ratios),
        "ratio_median": statistics.median(ratios),
        "ratio_max": max(ratios),
        "mape_pct": comparison.mean_abs_pct_error,
        "blocks_detail": [
            {"name": t.name, "gflops": t.gflops, "median_ms": t.median_ms} for t in timings
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per block")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    console = Console(width=150)
    console.print(
        f"host: {os.cpu_count()} CPUs, {cpu_model()}; onnx {onnx.__version__}; "
        f"threads {args.threads}; median of {args.runs} runs per block"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="continuum-bench-") as tmp:
        for name in args.models:
            with console.status(f"{name}"):
                results.append(bench_model(name, Path(tmp), args.runs, args.threads))

    table = Table(title="registry: inspect, split, verify (seconds)")
    for column in ("model", "nodes", "blocks", "GFLOP", "inspect raw", "inspect", "split",
                   "verify", "max rel diff"):  # fmt: skip
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        table.add_row(
            r["model"], str(r["nodes"]), str(r["blocks"]), f"{r['gflops']:.3g}",
            f"{r['inspect_raw_s']:.2f}", f"{r['inspect_s']:.2f}", f"{r['split_s']:.2f}",
            f"{r['verify_s']:.2f}", f"{r['verify_max_rel']:.1e}",
        )  # fmt: skip
    console.print(table)

    table = Table(title="per-block latency: measured against time proportional to FLOPs")
    for column in ("model", "Pearson r", "fitted GFLOP/s", "meas/est min", "median", "max",
                   "mean |err| %"):  # fmt: skip
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        table.add_row(
            r["model"], f"{r['pearson_r']:.3f}", f"{r['host_gflops_per_s']:.3g}",
            f"{r['ratio_min']:.2f}", f"{r['ratio_median']:.2f}", f"{r['ratio_max']:.2f}",
            f"{r['mape_pct']:.0f}",
        )  # fmt: skip
    console.print(table)
    pooled_gflops = [b["gflops"] for r in results for b in r["blocks_detail"]]
    pooled_ms = [b["median_ms"] for r in results for b in r["blocks_detail"]]
    console.print(
        f"all {len(pooled_ms)} blocks pooled: Pearson r(GFLOP, ms) = "
        f"{pearson(pooled_gflops, pooled_ms):.3f}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
