"""Where the large-fleet bound's gap is, app by app (issue 12, part 3).

    .venv/bin/python bench/bound_gap.py                          # 1,000 devices, 500 apps
    .venv/bin/python bench/bound_gap.py --devices 10000
    .venv/bin/python bench/bound_gap.py --wider-every 10         # and a sample's optimum

Builds a generated fleet (`solver.generate`, 20-block models, seed 1), each app's
candidates as the heuristic does on a large fleet, and three figures per app:
- plan: its cheapest candidate (the DP's estimate; nothing shared binds on these fleets,
  so the heuristic's plan takes it, and their sum is the plan's objective to within the
  evaluator's rounding);
- own: its lower bound over its candidates alone (the DP's Lagrangian SLO bound), which
  bounds nothing on its own (a host outside may be cheaper);
- fleet: its share of the plan's lower bound (`solver.fleetbound`, every host counted).
It prints their sums by kind of app (model, variants, cascade; with an SLO or not; kept
off the clouds or not) and what each kind adds to the gap, in points of the plan's
objective. With `--wider-every K`, every K-th partitioned app is also solved over its
candidates plus every edge and cloud of its tiers, with the contract's routes (the SLO
search of the heuristic's DP): how far the plan is from the per-app optimum over a wider
set of hosts, that is how much of the gap is the plan's rather than the bound's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table

from solver.candidates import chain_arrays, slo_paths
from solver.fastcost import INF, candidate_routes
from solver.fleetbound import FleetBound
from solver.generate import generate
from solver.heuristic import _State
from solver.problem import Problem, SolveOptions
from solver.scenario import App, parse_scenario


@dataclass
class _Row:
    app: App
    plan: float
    own: float
    fleet: float


def _rows(problem: Problem) -> tuple[list[_Row], _State]:
    st = _State(problem, SolveOptions(time_limit_s=60, threads=1))
    fleet = FleetBound(problem, st.fleet).each([(e.app, e.routes) for e in st.apps.values()])
    st.generate()
    rows = [
        _Row(e.app, min(c.estimate for c in e.candidates), e.lower, fleet[e.app.id])
        for e in st.apps.values()
    ]
    return rows, st


def _kind(app: App) -> str:
    shape = "cascade" if app.cascade else ("variants" if app.variants else "model")
    slo = "SLO" if app.slo_ms is not None else "no SLO"
    return f"{shape}, {slo}"


def _wider(problem: Problem, st: _State, app: App) -> float:
    """The app's optimum over its candidates plus every edge and cloud of its tiers, as
    the heuristic's DP finds it (the Lagrangian SLO search: exact where the SLO is slack)."""
    f = st.fleet
    extra = [h for h in f.hosts_of(app.allowed_tiers) if f.tiers[h] != "device"]
    hosts = sorted(set(st.apps[app.id].routes.hosts) | set(extra))
    routes = candidate_routes(f, app, hosts, upward_only=False)
    best = INF
    for m in problem.model_options(app):
        ch = chain_arrays(problem, f, [app], m, [routes])
        cost, _, _, _ = slo_paths(ch, np.array([app.slo_ms if app.slo_ms is not None else INF]))
        best = min(best, float(cost[0]))
    return best


def _table(title: str, rows: list[_Row], key: Callable[[_Row], str], total: float) -> Table:
    table = Table(title=title)
    for name in ("apps", "kind", "plan", "own bound", "fleet bound", "gap points"):
        table.add_column(name, justify="left" if name == "kind" else "right")
    kinds: dict[str, list[_Row]] = {}
    for r in rows:
        kinds.setdefault(key(r), []).append(r)
    for kind in sorted(kinds):
        rs = kinds[kind]
        plan = sum(r.plan for r in rs)
        fleet = sum(r.fleet for r in rs)
        table.add_row(
            f"{len(rs):,}",
            kind,
            f"{plan:.2f}",
            f"{sum(r.own for r in rs):.2f}",
            f"{fleet:.2f}",
            f"{100 * (plan - fleet) / total:.2f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--apps", type=int, default=0, help="default: half the devices")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wider-every", type=int, default=0, metavar="K")
    args = parser.parse_args()
    apps = args.apps or args.devices // 2
    console = Console()
    t = time.perf_counter()
    problem = Problem(parse_scenario(generate(args.seed, args.devices, apps, 20)))
    rows, st = _rows(problem)
    plan = sum(r.plan for r in rows)
    own = sum(r.own for r in rows)
    fleet = sum(r.fleet for r in rows)
    took = time.perf_counter() - t
    console.print(
        f"{args.devices:,} devices, {apps:,} apps (seed {args.seed}), {took:.1f} s:"
        f" plan {plan:.2f}, own bounds {own:.2f} ({100 * (plan - own) / plan:.2f}% under),"
        f" fleet bound {fleet:.2f} (gap {100 * (plan - fleet) / plan:.2f}%)"
    )
    console.print(_table("The gap by kind of app", rows, lambda r: _kind(r.app), plan))
    console.print(
        _table(
            "Kept off the clouds or not",
            rows,
            lambda r: "device and edge only" if "cloud" not in r.app.allowed_tiers else "any tier",
            plan,
        )
    )
    if args.wider_every > 0:
        sample = [r for r in rows if r.app.cascade is None][:: args.wider_every]
        wider = [_wider(problem, st, r.app) for r in sample]
        table = Table(title=f"Every {args.wider_every}th partitioned app over a wider host set")
        for name in ("apps", "kind", "plan", "wider optimum", "plan above it", "fleet bound"):
            table.add_column(name, justify="left" if name == "kind" else "right")
        kinds: dict[str, list[int]] = {}
        for i, r in enumerate(sample):
            tiers = "device, edge" if "cloud" not in r.app.allowed_tiers else "any tier"
            kinds.setdefault(f"{_kind(r.app)}; {tiers}", []).append(i)
        for kind in [*sorted(kinds), "all"]:
            index = range(len(sample)) if kind == "all" else kinds[kind]
            p = sum(sample[i].plan for i in index)
            w = sum(wider[i] for i in index)
            table.add_row(
                f"{len(index)}",
                kind,
                f"{p:.3f}",
                f"{w:.3f}",
                f"{100 * (p - w) / p:.2f}%",
                f"{sum(sample[i].fleet for i in index):.3f}",
            )
        console.print(table)


if __name__ == "__main__":
    main()
