"""Neurosurgeon (Kang et al., ASPLOS 2017) on its own models: where AlexNet and VGG-19 are
cut between a phone and the cloud as the link's bandwidth goes from 0.1 to 1,000 Mbit/s.

    .venv/bin/python bench/neurosurgeon.py                 # 5 bandwidths per decade
    .venv/bin/python bench/neurosurgeon.py --per-decade 10

The models are the `onnx` wheel's AlexNet and VGG-19 (opset 9, 1x3x224x224), analysed by
the registry one block per layer (`granularity="fine"`), the paper's granularity. One
phone (mobile GPU) and one cloud server (GPU) of stated speeds and powers, one link of
10 ms rtt; one app on the phone, latency objective, at most 2 segments (one split). At
each bandwidth `neurosurgeon` and `ilp` place it; the table shows the split (the last
layer on the phone), the worst-case latency and the phone's energy per inference, and
whether the two solvers agree on the latency.

Each model is priced two ways. `flops`: the registry's FLOPs, the contract's compute
model. `roofline`: a layer costs at least its weight bytes times the machine balance of
both devices (about 20 FLOP per byte: Jetson TK1's GPU 327 GFLOP/s over 14.9 GB/s, a
Titan X 6.1 TFLOP/s over 336 GB/s), since a fully connected layer reads every weight once
per inference and is memory-bound. The paper measured per-layer latency on the device,
which includes that cost.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import onnx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models_registry import analyse_model  # noqa: E402
from solver import Problem, SolveOptions, parse_scenario, solve  # noqa: E402
from tests.harness.caffe import caffe_names  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
PHONE = {"gflops": 50.0, "idle": 2.0, "busy": 7.0}  # a mobile GPU, sustained
CLOUD = {"gflops": 4000.0, "idle": 100.0, "busy": 350.0}  # a server GPU, sustained
RTT_MS = 10.0
J_PER_MB = 0.5  # the phone's radio, per MB sent
RATE_RPS = 0.01  # one inference per 100 s: no shared capacity comes near its limit
MACHINE_BALANCE = 20.0  # FLOP per byte of memory traffic (see the module docstring)
WIFI_MBPS = (10.0, 50.0)  # the band compared with the paper's Wi-Fi result
MODELS = (("bvlc_alexnet", "AlexNet", False), ("vgg19", "VGG-19", True))


def scenario_model(onnx_name: str, staged: bool, reading: str) -> dict[str, Any]:
    analysis = analyse_model(LIGHT / f"light_{onnx_name}.onnx", granularity="fine")
    entry = analysis.to_scenario_model(onnx_name)
    for layer, name in zip(entry["layers"], caffe_names(analysis, staged), strict=True):
        layer["name"] = name
        if reading == "roofline":
            layer["gflops"] = max(layer["gflops"], layer["params_mb"] * MACHINE_BALANCE / 1e3)
    return entry


def scenario(model: dict[str, Any], mbps: float) -> dict[str, Any]:
    return {
        "version": 1,
        "objective": {"energy": 0, "latency": 1},
        "devices": [
            {"id": "phone", "tier": "device", "gflops": PHONE["gflops"], "memory_mb": 4096,
             "power_w": {"idle": PHONE["idle"], "busy": PHONE["busy"]}},
            {"id": "cloud", "tier": "cloud", "gflops": CLOUD["gflops"], "memory_mb": 65536,
             "power_w": {"idle": CLOUD["idle"], "busy": CLOUD["busy"]}},
        ],
        "links": [{"a": "phone", "b": "cloud", "mbps": mbps, "rtt_ms": RTT_MS,
                   "j_per_mb": J_PER_MB}],
        "models": [model],
        "apps": [{"id": "ipa", "model": model["id"], "source": "phone", "rate_rps": RATE_RPS,
                  "max_stages": 2}],
    }  # fmt: skip


def place(model: dict[str, Any], mbps: float) -> dict[str, Any]:
    """Both solvers at one bandwidth: the split and its figures."""
    problem = Problem(parse_scenario(scenario(model, mbps)))
    neuro = solve(problem, SolveOptions(), "neurosurgeon")
    exact = solve(Problem(parse_scenario(scenario(model, mbps))), SolveOptions(), "ilp")
    blocks = neuro.placements["ipa"].blocks or ()
    k = sum(1 for b in blocks if b == "phone")
    names = [layer["name"] for layer in model["layers"]]
    phone = next(d for d in neuro.doc.devices if d.id == "phone")
    latency = neuro.doc.apps[0].latency_ms.worst
    exact_latency = exact.doc.apps[0].latency_ms.worst if exact.doc.apps else None
    return {
        "mbps": mbps,
        "k": k,
        "n": len(names),
        "after": "(all in the cloud)"
        if k == 0
        else names[k - 1] + (" (all on the phone)" if k == len(names) else ""),
        "latency_ms": latency,
        "phone_j": phone.power_w / RATE_RPS,
        "agree": exact_latency is not None and abs(exact_latency - latency) <= 1e-6 * latency,
        "status": f"{neuro.status.value}/{exact.status.value}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-decade", type=int, default=5, help="bandwidths per decade")
    args = parser.parse_args()
    steps = 4 * args.per_decade
    bandwidths = [10 ** (-1 + 4 * j / steps) for j in range(steps + 1)]
    console = Console(width=130)
    started = time.perf_counter()
    for onnx_name, title, staged in MODELS:
        for reading in ("flops", "roofline"):
            model = scenario_model(onnx_name, staged, reading)
            rows = [place(model, mbps) for mbps in bandwidths]
            table = Table(title=f"{title}, {reading}", title_justify="left")
            for col in ("Mbit/s", "split after", "layers on phone", "latency ms", "phone J"):
                table.add_column(col, justify="left" if col == "split after" else "right")
            table.add_column("ilp agrees")
            for r in rows:
                table.add_row(
                    f"{r['mbps']:,.3g}",
                    r["after"],
                    f"{r['k']}/{r['n']}",
                    f"{r['latency_ms']:,.1f}",
                    f"{r['phone_j']:.4f}",
                    "yes" if r["agree"] else f"NO ({r['status']})",
                )
            console.print(table)
            wifi = sorted({r["after"] for r in rows if WIFI_MBPS[0] <= r["mbps"] <= WIFI_MBPS[1]})
            shares = [r["k"] for r in rows]
            monotone = all(a >= b for a, b in itertools.pairwise(shares))
            console.print(
                f"{title}, {reading}: split at {WIFI_MBPS[0]:g}-{WIFI_MBPS[1]:g} Mbit/s "
                f"(Wi-Fi): after {', '.join(wifi)}; layers on the phone non-increasing in "
                f"bandwidth: {'yes' if monotone else 'NO'}"
            )
    console.print(
        "paper (Kang et al., ASPLOS 2017): AlexNet on a mobile GPU over Wi-Fi is cut after "
        "pool5 for the least latency"
    )
    console.print(f"wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
