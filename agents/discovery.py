"""What this machine offers: cores, memory, and compute measured with onnxruntime.

The compute figure is the scenario's `gflops` (sustained DNN throughput). It is measured
at start with a micro-benchmark built in memory: a 3x3 convolution (64 -> 64 channels on
56x56, as in ResNet's first stage) followed by a 512x512 by 512x512 matrix product. Their
FLOPs are known exactly (2 per multiply-add: 231.2 MFLOP + 268.4 MFLOP), so GFLOP/s is
FLOPs divided by the median wall time of a run, after warm-up runs, with the same thread
count the agent serves with.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import onnx
import psutil
from onnx import TensorProto, helper, numpy_helper

from models_registry.runtime import make_session

CONV_C, CONV_HW, CONV_K = 64, 56, 3
MATMUL_N = 512
CONV_FLOPS = 2 * CONV_C * CONV_HW * CONV_HW * CONV_C * CONV_K * CONV_K
MATMUL_FLOPS = 2 * MATMUL_N**3
BENCH_FLOPS = CONV_FLOPS + MATMUL_FLOPS


@dataclass(frozen=True)
class Discovery:
    cores: int
    memory_mb: float
    free_memory_mb: float
    gflops: float  # measured
    bench_ms: float  # median time of one benchmark run
    bench_runs: int

    def describe(self) -> dict[str, object]:
        return {
            "cores": self.cores,
            "memory_mb": round(self.memory_mb, 1),
            "measured_gflops": round(self.gflops, 2),
            "benchmark": (
                f"onnxruntime Conv 3x3 {CONV_C}->{CONV_C}ch {CONV_HW}x{CONV_HW} + MatMul "
                f"{MATMUL_N}^3 ({BENCH_FLOPS / 1e6:.1f} MFLOP), median of {self.bench_runs} "
                f"runs: {self.bench_ms:.2f} ms"
            ),
        }


def benchmark_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((CONV_C, CONV_C, CONV_K, CONV_K)).astype(np.float32) * 0.05
    matrix = rng.standard_normal((MATMUL_N, MATMUL_N)).astype(np.float32) * 0.05
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("MatMul", ["a", "m"], ["b"]),
    ]
    graph = helper.make_graph(
        nodes,
        "continuum_gflops_bench",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CONV_C, CONV_HW, CONV_HW]),
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [MATMUL_N, MATMUL_N]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CONV_C, CONV_HW, CONV_HW]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [MATMUL_N, MATMUL_N]),
        ],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(matrix, "m")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def measure_gflops(
    threads: int = 0, seconds: float = 1.0, warmup: int = 3
) -> tuple[float, float, int]:
    """(GFLOP/s, median ms per run, runs): runs for about `seconds` after warm-up."""
    session = make_session(benchmark_model(), threads)
    rng = np.random.default_rng(1)
    feeds = {
        "x": rng.standard_normal((1, CONV_C, CONV_HW, CONV_HW)).astype(np.float32),
        "a": rng.standard_normal((MATMUL_N, MATMUL_N)).astype(np.float32),
    }
    for _ in range(warmup):
        session.run(None, feeds)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return BENCH_FLOPS / median / 1e9, median * 1000.0, len(times)


def discover(threads: int = 0, bench_seconds: float = 1.0) -> Discovery:
    memory = psutil.virtual_memory()
    gflops, median_ms, runs = measure_gflops(threads, bench_seconds)
    return Discovery(
        cores=os.cpu_count() or 1,
        memory_mb=memory.total / 1e6,
        free_memory_mb=memory.available / 1e6,
        gflops=gflops,
        bench_ms=median_ms,
        bench_runs=runs,
    )


def free_memory_mb() -> float:
    return float(psutil.virtual_memory().available) / 1e6
