"""`heuristic` against `ilp`'s proven optimum on generated fleets where constraints bind.

Five generators, each on its own seeds (none of them the seeds the heuristic was tuned
on, 0-6):
- `medium`: the issue's medium fleet, 31 devices in three tiers, 20 apps, 8-block models
  with exits, variants and cascades (`solver.generate.generate`);
- `medium-overhead`: the same fleets with a per-segment `overhead_ms` on every device;
- `contended`: the same with `contended=True`: many cameras per edge box, thin uplinks,
  low batteries, higher rates;
- `shared-camera`: 16 devices with one edge box and 18 apps, so that several apps share
  a camera (its battery and uplink) and all share the edge box;
- `tight`: the medium fleet with every device paying a per-segment overhead
  (`overheads=True`), rates raised 1.3-2.5x and SLOs cut to 0.85x: battery, bandwidth
  and SLO bind at once, and some instances have no plan.

Seeds are split into a development range (what the heuristic may be measured on while it
is changed) and a held-out range (evaluated only at the end); `--split` picks one. The
held-out range having been spent, `--split fresh` runs a second one (seeds 7000 on) on
these five and on `perturbed`, a sixth generator added with it and never used while the
heuristic changed: every number of a generated fleet drawn again around its value
(speeds, bandwidths, battery levels, rates, SLOs, the objective's weights), sizes and
model depths varied.

For each instance: `ilp`'s objective when it proves it optimal within `--ilp-s`
(instances where it proves nothing, including those where it ran out of time before any
plan, are listed apart), the heuristic's objective and wall
time with its default options, and their ratio; for an instance `ilp` proves infeasible,
the time the heuristic takes to say so and its reason. `ilp`'s results are cached in
`--cache` keyed by the scenario and the source of the cost model, so reruns after a
change of the heuristic only re-run the heuristic.

    python bench/heuristic_quality.py [--split dev|held-out|both|fresh] [--per 10]
        [--fresh 6] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402 (a sibling module: bench/ runs as scripts)

from solver import Problem, SolveOptions, Status, evaluate, parse_scenario, solve  # noqa: E402
from solver.generate import generate  # noqa: E402

Raw = dict[str, Any]
DEV_SEEDS = 1000  # first development seed of each generator
HELD_OUT_SEEDS = 5000  # first held-out seed
FRESH_SEEDS = 7000  # a second held-out set, drawn after the first was spent


def medium(seed: int) -> Raw:
    return generate(seed, devices=31, apps=20, blocks=8)


def contended(seed: int) -> Raw:
    return generate(seed, devices=31, apps=20, blocks=8, contended=True)


def medium_overhead(seed: int) -> Raw:
    return generate(seed, devices=31, apps=20, blocks=8, overheads=True)


def shared_camera(seed: int) -> Raw:
    return generate(seed, devices=16, apps=18, blocks=8, contended=True)


def tight(seed: int) -> Raw:
    import numpy as np

    raw = generate(seed, devices=31, apps=20, blocks=8, overheads=True)
    rng = np.random.default_rng(seed + 7919)
    for app in raw["apps"]:
        app["rate_rps"] = round(app["rate_rps"] * float(rng.uniform(1.3, 2.5)), 2)
        if "slo_ms" in app:
            app["slo_ms"] = round(app["slo_ms"] * 0.85, 1)
    return raw


def perturbed(seed: int) -> Raw:
    """Added after the heuristic's tuning, for the fresh seeds only: every number of a
    generated fleet drawn again around its value, so that no tuned range carries over."""
    import numpy as np

    rng = np.random.default_rng(seed + 104729)
    size = int(rng.integers(24, 40))
    raw = generate(
        seed,
        devices=size,
        apps=int(rng.integers(size // 2, size - 6)),
        blocks=int(rng.choice([6, 8, 10])),
        contended=bool(rng.random() < 0.5),
        overheads=bool(rng.random() < 0.7),
    )
    for device in raw["devices"]:
        device["gflops"] = round(device["gflops"] * float(rng.uniform(0.5, 1.8)), 2)
        battery = device.get("battery")
        if battery is not None:
            battery["level_pct"] = round(float(rng.uniform(battery["min_pct"] + 25, 100)), 1)
    for link in raw["links"]:
        link["mbps"] = round(link["mbps"] * float(rng.uniform(0.4, 1.6)), 2)
    for app in raw["apps"]:
        app["rate_rps"] = round(app["rate_rps"] * float(rng.uniform(0.6, 1.5)), 2)
        if "slo_ms" in app:
            app["slo_ms"] = round(app["slo_ms"] * float(rng.uniform(0.85, 1.3)), 1)
    raw["objective"] = {
        "energy": 1.0,
        "carbon": round(float(rng.uniform(0.005, 0.08)), 4),
        "latency": round(float(rng.uniform(0.0002, 0.005)), 5),
        "migration": 0.0,
    }
    return raw


GENERATORS: dict[str, Callable[[int], Raw]] = {
    "medium": medium,
    "medium-overhead": medium_overhead,
    "contended": contended,
    "shared-camera": shared_camera,
    "tight": tight,
}
# Run on the fresh seeds only (see `run`): never measured while the heuristic changed.
FRESH_ONLY: dict[str, Callable[[int], Raw]] = {"perturbed": perturbed}


def _cost_signature() -> str:
    """A digest of the sources that define the cost model: cached optima expire with it."""
    h = hashlib.sha256()
    for name in ("costs.py", "evaluate.py", "scenario.py", "routes.py", "fastcost.py"):
        path = ROOT / "solver" / name
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _exact(raw: Raw, limit_s: float, cache: dict[str, Any], signature: str) -> dict[str, Any]:
    key = hashlib.sha256(
        (json.dumps(raw, sort_keys=True) + signature + f"{limit_s:g}").encode()
    ).hexdigest()
    if key not in cache:
        t = time.perf_counter()
        plan = solve(Problem(parse_scenario(raw)), SolveOptions(time_limit_s=limit_s), "ilp")
        status = plan.status.value
        if "not proven infeasible" in (plan.doc.reason or ""):
            status = "unproven"  # out of time before any plan: neither found nor refuted
        cache[key] = {
            "status": status,
            "objective": plan.doc.objective,
            "reason": plan.doc.reason,
            "s": time.perf_counter() - t,
        }
    return dict(cache[key])


def _heuristic(raw: Raw) -> dict[str, Any]:
    problem = Problem(parse_scenario(raw))
    t, c = time.perf_counter(), time.process_time()
    plan = solve(problem, SolveOptions(), "heuristic")
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    broken = []
    if plan.status != Status.INFEASIBLE:
        broken = evaluate(Problem(parse_scenario(raw)).cost, plan.placements).violations
    return {
        "status": plan.status.value,
        "objective": plan.doc.objective,
        "reason": plan.doc.reason,
        "s": seconds,
        "cpu_s": cpu,
        "violations": len(broken),
    }


def run(
    split: str, per: int, held_out: int, fresh: int, ilp_s: float, cache_path: Path
) -> list[dict[str, Any]]:
    cache: dict[str, Any] = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    signature = _cost_signature()
    seeds: list[tuple[str, int]] = []
    if split in ("dev", "both"):
        seeds += [("dev", DEV_SEEDS + k) for k in range(per)]
    if split in ("held-out", "both"):
        seeds += [("held-out", HELD_OUT_SEEDS + k) for k in range(held_out)]
    if split == "fresh":
        seeds += [("fresh", FRESH_SEEDS + k) for k in range(fresh)]
    rows = []
    makers = {**GENERATORS, **(FRESH_ONLY if split == "fresh" else {})}
    for family, make in makers.items():
        for part, seed in seeds:
            raw = make(seed)
            exact = _exact(raw, ilp_s, cache, signature)
            cache_path.write_text(json.dumps(cache))
            fast = _heuristic(raw)
            ratio = None
            if exact["status"] == "optimal" and fast["objective"] is not None:
                ratio = fast["objective"] / exact["objective"]
            rows.append(
                {
                    "family": family,
                    "split": part,
                    "seed": seed,
                    "ilp": exact,
                    "heuristic": fast,
                    "ratio": ratio,
                }
            )
            _print_row(rows[-1])
    return rows


def _print_row(r: dict[str, Any]) -> None:
    e, h = r["ilp"], r["heuristic"]
    ilp_txt = f"{e['objective']:.4f}" if e["objective"] is not None else e["status"]
    if e["status"] == "feasible":
        ilp_txt += " (not proven)"
    h_txt = f"{h['objective']:.4f}" if h["objective"] is not None else h["status"]
    ratio = f"{r['ratio']:.4f}" if r["ratio"] is not None else "-"
    note = ""
    if h["violations"]:
        note = f"  BROKEN: {h['violations']} violations"
    elif h["status"] == "infeasible":
        note = f"  {h['reason']}"[:110]
    print(
        f"{r['family']:<14}{r['split']:<9}{r['seed']:>6}  {ilp_txt:>22} {e['s']:6.2f}s"
        f"  {h_txt:>12} {h['s']:6.2f}s {h['cpu_s']:5.2f}s  {ratio:>7}{note}",
        flush=True,
    )


def summary(rows: list[dict[str, Any]], part: str) -> dict[str, Any]:
    mine = [r for r in rows if r["split"] == part]
    proven = [r for r in mine if r["ilp"]["status"] == "optimal"]
    ratios = [r["ratio"] if r["ratio"] is not None else float("inf") for r in proven]
    times = [r["heuristic"]["s"] for r in proven]
    infeasible = [r for r in mine if r["ilp"]["status"] == "infeasible"]
    unproven = [r for r in mine if r["ilp"]["status"] not in ("optimal", "infeasible")]
    return {
        "instances": len(mine),
        "proven_optimal": len(proven),
        "worst_ratio": max(ratios, default=None),
        "mean_ratio": sum(ratios) / len(ratios) if ratios else None,
        "within_1pct": sum(1 for x in ratios if x <= 1.01 + 1e-12),
        "missed_plan": sum(1 for r in proven if r["heuristic"]["status"] == "infeasible"),
        "worst_s": max(times, default=None),
        "worst_cpu_s": max((r["heuristic"]["cpu_s"] for r in proven), default=None),
        "mean_s": sum(times) / len(times) if times else None,
        "over_3s": sum(1 for t in times if t > 3.0),
        "infeasible": len(infeasible),
        "infeasible_said": sum(1 for r in infeasible if r["heuristic"]["status"] == "infeasible"),
        "infeasible_worst_s": max((r["heuristic"]["s"] for r in infeasible), default=None),
        "infeasible_worst_cpu_s": max((r["heuristic"]["cpu_s"] for r in infeasible), default=None),
        "infeasible_over_1s": sum(1 for r in infeasible if r["heuristic"]["s"] > 1.0),
        "unproven": [
            {
                "family": r["family"],
                "seed": r["seed"],
                "ilp": r["ilp"]["status"],
                "heuristic": r["heuristic"]["objective"],
                "ilp_objective": r["ilp"]["objective"],
            }
            for r in unproven
        ],
        "broken_plans": sum(1 for r in mine if r["heuristic"]["violations"]),
    }


def _print_summary(name: str, s: dict[str, Any]) -> None:
    if not s["instances"]:
        return

    def f(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    print(
        f"{name}: {s['instances']} instances; ilp proved {s['proven_optimal']} optimal, "
        f"{s['infeasible']} infeasible, {len(s['unproven'])} unproven"
    )
    print(
        f"  ratio worst {f(s['worst_ratio'], '.4f')} mean {f(s['mean_ratio'], '.4f')}; "
        f"within 1%: {s['within_1pct']}/{s['proven_optimal']}; "
        f"plan missed: {s['missed_plan']}; heuristic s worst {f(s['worst_s'], '.2f')} "
        f"mean {f(s['mean_s'], '.2f')} (cpu worst {f(s['worst_cpu_s'], '.2f')}), "
        f"over 3 s: {s['over_3s']}"
    )
    print(
        f"  infeasible said {s['infeasible_said']}/{s['infeasible']}, worst "
        f"{f(s['infeasible_worst_s'], '.2f')} s (cpu {f(s['infeasible_worst_cpu_s'], '.2f')}), "
        f"over 1 s: {s['infeasible_over_1s']}; broken plans: {s['broken_plans']}"
    )
    for u in s["unproven"]:
        print(
            f"  unproven: {u['family']} {u['seed']} ilp {u['ilp']} {u['ilp_objective']}, "
            f"heuristic {u['heuristic']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "held-out", "both", "fresh"), default="dev")
    parser.add_argument("--per", type=int, default=10, help="dev seeds per generator")
    parser.add_argument("--held-out", type=int, default=4, help="held-out seeds per generator")
    parser.add_argument("--fresh", type=int, default=4, help="fresh seeds per generator")
    parser.add_argument("--ilp-s", type=float, default=60.0, help="ilp time limit")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/heuristic_quality_ilp.json"))
    parser.add_argument("--json", type=Path, help="write every row and the summary here")
    parser.add_argument("--only", help="run one generator")
    args = parser.parse_args()
    if args.only:
        if args.only not in {**GENERATORS, **FRESH_ONLY}:
            print(f"--only: unknown generator {args.only!r}", file=sys.stderr)
            raise SystemExit(2)
        for table in (GENERATORS, FRESH_ONLY):
            for name in list(table):
                if name != args.only:
                    del table[name]
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(
        f"{'family':<14}{'split':<9}{'seed':>6}  {'ilp':>22} {'ilp s':>7}  {'heuristic':>12}"
        f" {'s':>7} {'cpu s':>6}  {'ratio':>7}"
    )
    rows = run(args.split, args.per, args.held_out, args.fresh, args.ilp_s, args.cache)
    out = {
        "machine": {"cores": os.cpu_count(), "cpu": cpu_model(), "load": load},
        "ilp_s": args.ilp_s,
        "rows": rows,
    }
    for part in ("dev", "held-out", "fresh"):
        s = summary(rows, part)
        out[part] = s
        _print_summary(part, s)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
