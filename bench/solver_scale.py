"""How the placement solvers scale: generated fleets from 100 to 10,000 devices.

    .venv/bin/python bench/solver_scale.py            # 30 .. 10,000 devices
    .venv/bin/python bench/solver_scale.py --quick    # 30, 100 and 1,000 devices
    .venv/bin/python bench/solver_scale.py --sizes 1000 2000 5000 10000

For each size (20-block models, exits, variants and cascades): wall and CPU time and
peak memory (RSS of a fresh process per size) of `heuristic`, its plan's lower bound and
the gap `(objective - bound) / objective`, and placements per second (apps placed per
second of the heuristic's wall time; a placement is one app's split over its route);
`ilp` where it finishes within its time limit; each baseline's objective, time and peak
RSS (each in a fresh process of its own); and the incremental re-solve time
(apply_change + resolve, median of 3) after one change: a battery's level drops, the
busiest link's bandwidth halves, an app is added, an app is removed, the cloud machine
hosting the most apps is lost. On a shared host read the CPU figures: the wall ones are
stretched by the other jobs.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing as mp
import resource
import statistics
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from solver import Placement, Problem, solvers

SIZES = [(30, 20), (100, 50), (1_000, 500), (2_000, 1_000), (5_000, 2_500), (10_000, 5_000)]
QUICK = [(30, 20), (100, 50), (1_000, 500)]
REPEATS = 3  # each re-solve, from the same solved problem; the median is reported


def busiest_cloud(problem: Problem, placements: Mapping[str, Placement]) -> tuple[str, int]:
    """The cloud machine that hosts the most apps, and how many: the device loss these
    benches time. (Losing an edge box cuts off the cameras whose only uplink it is, and
    their apps have no plan left to find.)"""
    hosted: dict[str, int] = {}
    for p in placements.values():
        for d in p.hosts():
            if problem.cost.devices[d].tier == "cloud":
                hosted[d] = hosted.get(d, 0) + 1
    cloud = max(hosted, key=lambda d: (hosted[d], d))
    return cloud, hosted[cloud]


def _run(
    devices: int,
    apps: int,
    seed: int,
    ilp_limit: float,
    ilp_max: int,
    base_max: int,
    neuro_max: int,
) -> dict[str, Any]:
    from solver import Problem, SolveOptions, Status, solve
    from solver.generate import generate
    from solver.incremental import Change, apply_change, resolve
    from solver.scenario import parse_scenario

    out: dict[str, Any] = {"devices": devices, "apps": apps}
    t = time.perf_counter()
    scn = parse_scenario(generate(seed, devices, apps, 20))
    out["generate_s"] = time.perf_counter() - t
    problem = Problem(scn)
    wall, cpu = time.perf_counter(), time.process_time()
    plan = solve(problem, SolveOptions(time_limit_s=60), solver="heuristic")
    out["heuristic_s"] = time.perf_counter() - wall
    out["heuristic_cpu_s"] = time.process_time() - cpu
    out["heuristic"] = plan.objective
    out["status"] = plan.status.value
    out["bound"] = plan.doc.bound
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    prev = plan.placements
    if plan.status == Status.FEASIBLE:
        src = next(a.source for a in scn.apps if problem.cost.devices[a.source].battery)
        bat = problem.cost.devices[src].battery
        assert bat is not None
        level = bat.min_pct + (bat.level_pct - bat.min_pct) * 0.7
        battery = Change(devices={src: {"battery": {**bat.model_dump(), "level_pct": level}}})
        # The busiest link the plan sends over.
        traffic: dict[int, float] = {}
        for _, c in problem.app_costs.values():
            for k, mb in c.link_mb.items():
                traffic[k] = traffic.get(k, 0.0) + mb
        k = max(traffic, key=lambda k: (traffic[k], -k))
        link = scn.links[k]
        bandwidth = Change(links={(link.a, link.b): {"mbps": link.mbps / 2}})
        extra = generate(seed, devices, apps + 1, 20)["apps"][-1]
        extra["id"] = "app-added"
        added = Change(added_apps=(extra,))
        removed = Change(removed_apps=frozenset({scn.apps[len(scn.apps) // 2].id}))
        lost = Change(lost_devices=frozenset({busiest_cloud(problem, prev)[0]}))
        # The first solve ran with the collector paused and left millions of young objects;
        # collect them now, as a control plane's idle time would, not inside the timing.
        gc.collect()
        changes = {
            "battery": battery,
            "bandwidth": bandwidth,
            "added": added,
            "removed": removed,
            "lost": lost,
        }
        for name, change in changes.items():
            times, cpus = [], []
            for _ in range(REPEATS):
                t, c = time.perf_counter(), time.process_time()
                new = apply_change(problem, change, prev)
                again = resolve(new, prev, change)
                times.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c)
            out[f"{name}_s"] = statistics.median(times)
            out[f"{name}_cpu_s"] = statistics.median(cpus)
            out[f"{name}_max_s"] = max(times)
            out[f"{name}_apps"] = (again.doc.stats or {}).get("resolved_apps")
            out[f"{name}_status"] = again.status.value
    if devices <= ilp_max:
        t = time.perf_counter()
        exact = solve(Problem(scn), SolveOptions(time_limit_s=ilp_limit), solver="ilp")
        out["ilp_s"] = time.perf_counter() - t
        out["ilp"] = exact.objective
        out["ilp_status"] = exact.status.value
    return out


def _baseline(devices: int, apps: int, seed: int, name: str) -> dict[str, Any]:
    """One baseline in a fresh process: its objective, status, time and peak RSS."""
    from solver import Problem, SolveOptions, solve
    from solver.generate import generate
    from solver.scenario import parse_scenario

    scn = parse_scenario(generate(seed, devices, apps, 20))
    t = time.perf_counter()
    base = solve(Problem(scn), SolveOptions(), solver=name)
    return {
        name: base.objective,
        f"{name}_s": time.perf_counter() - t,
        f"{name}_status": base.status.value,
        f"{name}_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


RESOLVES = {
    "battery": "battery drop",
    "bandwidth": "bandwidth halved",
    "added": "app added",
    "removed": "app removed",
    "lost": "cloud lost",
}


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30, 100 and 1,000 devices only")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ilp-limit", type=float, default=120.0, help="ilp time limit, s")
    parser.add_argument("--ilp-max-devices", type=int, default=30, help="skip ilp above")
    parser.add_argument(
        "--baselines-max-devices", type=int, default=10_000, help="skip all-device/all-cloud above"
    )
    parser.add_argument("--sizes", type=int, nargs="*", help="only these fleet sizes (devices)")
    parser.add_argument(
        "--neurosurgeon-max-devices", type=int, default=100, help="skip neurosurgeon above"
    )
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    sizes = QUICK if args.quick else SIZES
    if args.sizes:
        sizes = [(d, a) for d, a in SIZES if d in args.sizes]
    for devices, apps in sizes:
        with ctx.Pool(1) as pool:
            rows.append(
                pool.apply(
                    _run,
                    (
                        devices,
                        apps,
                        args.seed,
                        args.ilp_limit,
                        args.ilp_max_devices,
                        args.baselines_max_devices,
                        args.neurosurgeon_max_devices,
                    ),
                )
            )
        for name in ("all-device", "all-cloud", "neurosurgeon"):
            neuro = name == "neurosurgeon"
            limit = args.neurosurgeon_max_devices if neuro else args.baselines_max_devices
            if name in solvers() and devices <= limit:
                with ctx.Pool(1) as pool:
                    rows[-1].update(pool.apply(_baseline, (devices, apps, args.seed, name)))
        print(rows[-1], flush=True)
    console = Console(width=200)
    t = Table(title="heuristic at scale (20-block models)")
    for col in (
        "devices", "apps", "wall s", "cpu s", "peak MB", "objective", "bound", "gap",
        "placements/s",
    ):  # fmt: skip
        t.add_column(col, justify="right")
    t.add_column("ilp (s)", justify="right")
    for name in ("all-device", "all-cloud", "neurosurgeon"):
        t.add_column(name, justify="right")
    for name in RESOLVES.values():
        t.add_column(f"re-solve {name} s (apps)", justify="right")
    for r in rows:
        ilp = "-" if "ilp_s" not in r else f"{_fmt(r.get('ilp'))} ({r['ilp_s']:.1f})"
        bases = []
        for name in ("all-device", "all-cloud", "neurosurgeon"):
            if name in r:
                flag = "" if r[f"{name}_status"] != "infeasible" else " (breaks)"
                bases.append(
                    f"{_fmt(r[name])}{flag} {r[f'{name}_s']:.1f} s {r[f'{name}_peak_mb']:.0f} MB"
                )
            else:
                bases.append("n/a")
        t.add_row(
            str(r["devices"]),
            str(r["apps"]),
            _fmt(r["heuristic_s"]),
            _fmt(r["heuristic_cpu_s"]),
            _fmt(r["peak_mb"], 0),
            _fmt(r["heuristic"]) if r["status"] == "feasible" else r["status"],
            _fmt(r["bound"]),
            "-" if not r["bound"] else f"{(r['heuristic'] - r['bound']) / r['heuristic']:.2%}",
            f"{r['apps'] / r['heuristic_s']:.0f}" if r["status"] == "feasible" else "-",
            ilp,
            *bases,
            *(f"{_fmt(r.get(f'{key}_s'), 3)} ({_fmt(r.get(f'{key}_apps'))})" for key in RESOLVES),
        )
    console.print(t)


if __name__ == "__main__":
    main()
