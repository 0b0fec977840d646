"""Battery benchmark (issue 17): the plan's `battery_h` against the time an emulated
battery takes to reach `min_pct`, accelerated.

The camera's battery is emulated as the kernel shows a battery, a power-supply tree in a
temporary directory (`energy_now` in µWh, moving in gauge steps of --gauge-uwh, `status`
Discharging). It drains by the camera's true power: --idle watts always, plus
(--busy - --idle) watts while it computes. Its compute is real: SqueezeNet (random
weights) is run by onnxruntime on this machine --runs times, and each simulated request
takes one of those measured times, drawn at random. The clock is simulated (accelerated):
one heartbeat per simulated second, nothing sleeps.

1. Fitting: the agent's own `PowerMeter` with its `BatteryDrainReader` reads the tree
   once per heartbeat while the request rate sweeps from idle to half the camera's
   capacity and back every 100 s, and fits idle and busy watts; the camera's speed is
   the measured times' GFLOP/s.
2. Plan: a scenario-v1 camera with the fitted power and that speed, at the level the
   battery is left at, serving SqueezeNet at --rate; the exact solver's `battery_h`.
3. Drain: the same emulated battery at --rate until it reaches `min_pct`.

    python bench/battery.py [--rate 4] [--runs 200] [--seeds 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import solver  # noqa: E402
from agents.power import BatteryDrainReader, PowerMeter  # noqa: E402
from models_registry import analyse_model, randomize  # noqa: E402
from models_registry.profiling import median_latency_ms  # noqa: E402
from models_registry.runtime import make_session, random_inputs  # noqa: E402
from tests.harness.emulated import LIGHT  # noqa: E402

TARGET = 0.10
CAPACITY_WH, LEVEL_PCT, MIN_PCT = 10.0, 90.0, 20.0


class Battery:
    """The emulated battery, written as a power-supply tree the agent's reader reads."""

    def __init__(self, root: Path, idle_w: float, busy_w: float, gauge_uwh: int) -> None:
        self.dir = root / "BAT0"
        self.dir.mkdir(parents=True)
        (self.dir / "type").write_text("Battery\n")
        (self.dir / "status").write_text("Discharging\n")
        (self.dir / "energy_full").write_text(f"{int(CAPACITY_WH * 1e6)}\n")
        self.idle_w, self.busy_w, self.gauge = idle_w, busy_w, gauge_uwh
        self.joules = CAPACITY_WH * 3600.0 * LEVEL_PCT / 100.0
        self.write()

    def drain(self, seconds: float, compute_s: float) -> None:
        self.joules -= self.idle_w * seconds + (self.busy_w - self.idle_w) * compute_s

    def write(self) -> None:
        uwh = int(self.joules / 3600.0 * 1e6) // self.gauge * self.gauge  # a coarse gauge
        (self.dir / "energy_now").write_text(f"{uwh}\n")

    @property
    def level_pct(self) -> float:
        return self.joules / (CAPACITY_WH * 3600.0) * 100.0


def measured_compute(runs: int) -> tuple[list[float], float, dict[str, Any]]:
    """SqueezeNet's compute times on this machine (s), its GFLOP, its scenario entry."""
    model = randomize(LIGHT / "light_squeezenet.onnx", seed=0)
    analysis = analyse_model(model)
    session = make_session(model.SerializeToString(), 1)
    feeds = random_inputs(analysis.inputs, 0)
    times = [median_latency_ms(session, feeds, runs=1, warmup=0 if k else 3) / 1000.0
             for k in range(runs)]  # fmt: skip
    return times, analysis.total_gflops, analysis.to_scenario_model("squeezenet")


def run_once(args: argparse.Namespace, times: list[float], gflop: float,
             model: dict[str, Any], seed: int) -> dict[str, float]:  # fmt: skip
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="continuum-bench-battery-") as tmp:
        battery = Battery(Path(tmp), args.idle, args.busy, args.gauge_uwh)
        meter = PowerMeter([BatteryDrainReader(Path(tmp))], 2.0, 6.0, 200.0)  # declared
        now = 0.0
        # 1. Fitting: the rate sweeps from idle to half the camera's capacity and back
        # every 100 s, a heartbeat a second, for 10 minutes (the meter fits over its last
        # 120 samples: they must spread over idle and busy).
        top = 0.5 / statistics.fmean(times)
        ramp = np.linspace(0, top, 50)
        sweep = np.concatenate([ramp, ramp[::-1]] * 6)
        for rate in sweep:
            n = rng.poisson(rate)
            compute = float(sum(rng.choice(times, n))) if n else 0.0
            battery.drain(1.0, compute)
            battery.write()
            now += 1.0
            meter.sample(now, compute)
        provenance, idle, busy = meter.figures()
        speed = gflop / statistics.fmean(times)
        # 2. The plan, from the fitted figures and the level the battery is left at.
        scenario = {
            "version": 1, "horizon_h": 1.0,
            "devices": [{"id": "cam", "tier": "device", "gflops": speed, "memory_mb": 1024,
                         "power_w": {"idle": idle, "busy": busy},
                         "battery": {"capacity_wh": CAPACITY_WH, "level_pct": battery.level_pct,
                                     "min_pct": MIN_PCT}}],
            "links": [], "models": [model],
            "apps": [{"id": "a", "model": "squeezenet", "source": "cam", "rate_rps": args.rate,
                      "allowed_tiers": ["device"]}],
        }  # fmt: skip
        problem = solver.Problem(solver.parse_scenario(scenario))
        plan = solver.solve(problem, solver.SolveOptions(time_limit_s=30), solver="ilp").doc
        predicted_h = plan.devices[0].battery_h
        # 3. Drain at the rate until min_pct, a simulated second at a time.
        start = now
        while battery.level_pct > MIN_PCT:
            n = rng.poisson(args.rate)
            battery.drain(1.0, float(sum(rng.choice(times, n))) if n else 0.0)
            now += 1.0
        lasted_h = (now - start) / 3600.0
    assert predicted_h is not None, plan
    return {"idle": idle, "busy": busy, "provenance": provenance, "speed": speed,
            "predicted_h": predicted_h, "lasted_h": lasted_h,
            "error": abs(predicted_h - lasted_h) / lasted_h}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second")
    parser.add_argument("--runs", type=int, default=200, help="real inferences timed")
    parser.add_argument("--seeds", type=int, default=5, help="emulated runs")
    parser.add_argument("--idle", type=float, default=1.5, help="true idle W")
    parser.add_argument("--busy", type=float, default=5.0, help="true busy W")
    parser.add_argument("--gauge-uwh", type=int, default=1000, help="the gauge's step")
    args = parser.parse_args()
    console = Console()
    console.print(
        f"machine: {cpu_model()}, {platform.python_version()}; real compute, "
        f"simulated clock; true power {args.idle:g} W idle, {args.busy:g} W busy"
    )
    times, gflop, model = measured_compute(args.runs)
    median_ms, mean_ms = statistics.median(times) * 1000, statistics.fmean(times) * 1000
    console.print(
        f"SqueezeNet: {gflop:.3f} GFLOP, {len(times)} runs, median "
        f"{median_ms:.1f} ms, mean {mean_ms:.1f} ms"
    )
    table = Table(title=f"battery_h against the emulated battery ({args.rate:g} req/s)")
    for column in ("seed", "fitted idle W", "fitted busy W", "predicted h", "lasted h", "error"):
        table.add_column(column, justify="right")
    errors = []
    for seed in range(args.seeds):
        r = run_once(args, times, gflop, model, seed)
        errors.append(r["error"])
        table.add_row(
            str(seed),
            f"{r['idle']:.3f} ({r['provenance']})",
            f"{r['busy']:.3f}",
            f"{r['predicted_h']:.3f}",
            f"{r['lasted_h']:.3f}",
            f"{r['error']:.1%}",
        )
    console.print(table)
    console.print(f"worst error {max(errors):.1%}, median {statistics.median(errors):.1%} "
                  f"(target {TARGET:.0%})")  # fmt: skip


if __name__ == "__main__":
    main()
