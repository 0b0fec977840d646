"""The heuristic's per-app candidates at 10,000 devices: CPU time of the chain arrays and
the Lagrangian SLO search (`solver.candidates.chain_arrays`, `slo_paths`), alone.

    .venv/bin/python bench/chain_dp.py                       # 10,000 devices, 5,000 apps
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/chain_dp.py   # another version
    .venv/bin/python bench/chain_dp.py --devices 200 --apps 100 --batch 1   # as a re-plan does

Builds a generated fleet (`solver.generate`, 20-block models, seed 1) and each app's
candidate hosts and routes as the heuristic does on a large fleet, then runs the arrays
and the SLO search of every model's apps `--repeats` times and prints the CPU time of
each, per repeat, and a digest of the results (the same digest: the same floats).
`--batch N` runs them N apps at a time, as a re-plan does for the one to a few apps it
touches (a solve of the whole fleet runs every app of a model at once).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time

import numpy as np

from solver.candidates import chain_arrays, fleet_of, slo_paths
from solver.fastcost import INF, CandidateRoutes, candidate_routes
from solver.generate import generate
from solver.heuristic import HOSTS
from solver.hosts import adjacency, pick_hosts
from solver.problem import Problem
from solver.scenario import App, parse_scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--apps", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=0, help="apps at a time (0: all)")
    args = parser.parse_args()
    problem = Problem(parse_scenario(generate(args.seed, args.devices, args.apps, 20)))
    fleet = fleet_of(problem)
    adj = adjacency(problem, fleet)
    groups: dict[tuple[str, int], tuple[list[App], list[CandidateRoutes]]] = {}
    for app in problem.scenario.apps:
        if app.cascade is not None:
            continue
        hosts = pick_hosts(problem, fleet, adj, app, HOSTS)
        complete = len(hosts) == len(fleet.hosts_of(app.allowed_tiers))
        routes = candidate_routes(fleet, app, hosts, upward_only=not complete)
        for m in problem.model_options(app):
            apps, rs = groups.setdefault((m, 0), ([], []))
            apps.append(app)
            rs.append(routes)
    if args.batch > 0:
        n = args.batch
        groups = {
            (m, k): (apps[k : k + n], rs[k : k + n])
            for (m, _), (apps, rs) in groups.items()
            for k in range(0, len(apps), n)
        }
    print(
        f"{args.devices} devices, {args.apps} apps, {len(groups)} batches "
        f"({args.batch or 'all'} apps of a model each); "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    for k in range(args.repeats):
        arrays_s = search_s = 0.0
        digest = hashlib.sha256()
        for (model, _), (apps, rs) in groups.items():
            start = time.process_time()
            ch = chain_arrays(problem, fleet, apps, model, rs)
            arrays_s += time.process_time() - start
            slo = np.array([a.slo_ms if a.slo_ms is not None else INF for a in apps])
            start = time.process_time()
            found = slo_paths(ch, slo)
            search_s += time.process_time() - start
            for part in found:
                digest.update(np.ascontiguousarray(part).tobytes())
        print(
            f"repeat {k + 1}: arrays {arrays_s:.3f} s CPU, SLO search {search_s:.3f} s CPU, "
            f"digest {digest.hexdigest()[:16]}, load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
