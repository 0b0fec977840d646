"""The control plane's re-plan in its worker: derived from the last problem, or parsed afresh.

    .venv/bin/python bench/replan.py                 # 1,000 and 10,000 devices
    .venv/bin/python bench/replan.py --sizes 1000:500 --changes 5

For each generated fleet (20-block models): one full `orchestrator.replacement.replan`, then a
chain of battery drops on different cameras, each re-planned twice from the same state:
with the worker's cache of solved problems (the problem derived with `apply_change`) and
with the cache emptied (the scenario parsed and routed afresh, as before the cache). The
scenario carries the plan in force as `previous`, as the scenario builder writes it.
Times are wall seconds of the whole `replan` call (change detection, solve, hysteresis
decision, plan document as JSON).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any

from machine import cpu_model
from rich.console import Console
from rich.table import Table


def _with_previous(scenario: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(scenario)
    keys = ("id", "model", "segments", "stages")
    out["previous"] = {"apps": [{k: a[k] for k in keys if a.get(k)} for a in plan["apps"]]}
    return out


def _run(devices: int, apps: int, changes: int) -> dict[str, Any]:
    import solver
    from orchestrator.replacement import _SOLVED, in_force, replan
    from solver.generate import generate

    scn = generate(1, devices, apps, 20)
    t = time.perf_counter()
    first = replan(scn, None, "heuristic", 60, 0.05)
    full_s = time.perf_counter() - t
    running, previous = first.document, scn
    cameras = [d for d in scn["devices"] if d.get("battery")]
    derived_s, fresh_s, agree = [], [], 0
    for k in range(changes):
        nxt = copy.deepcopy(previous)
        bat = next(d for d in nxt["devices"] if d["id"] == cameras[k]["id"])["battery"]
        bat["level_pct"] = bat["min_pct"] + (bat["level_pct"] - bat["min_pct"]) * 0.6
        nxt = _with_previous(nxt, running)
        # As the planner hands it over: the plan in force parsed once, as placements.
        current = in_force(nxt, previous, solver.PlanDoc.model_validate(running))
        t = time.perf_counter()
        derived = replan(nxt, current, "heuristic", 60, 0.05)
        derived_s.append(time.perf_counter() - t)
        assert derived.derived_problem, "the cache was not used"
        kept = dict(_SOLVED)
        _SOLVED.clear()
        t = time.perf_counter()
        fresh = replan(nxt, current, "heuristic", 60, 0.05)
        fresh_s.append(time.perf_counter() - t)
        _SOLVED.clear()
        _SOLVED.update(kept)
        agree += derived.document["apps"] == fresh.document["apps"]
        if derived.apply:
            running = derived.document
        previous = nxt
    return {
        "devices": devices,
        "apps": apps,
        "full_s": full_s,
        "derived_p50": statistics.median(derived_s),
        "derived_max": max(derived_s),
        "fresh_p50": statistics.median(fresh_s),
        "fresh_max": max(fresh_s),
        "agree": f"{agree}/{changes}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000:500,10000:5000", help="devices:apps,...")
    parser.add_argument("--changes", type=int, default=5, help="battery drops per fleet")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        devices, apps = (int(x) for x in size.split(":"))
        rows.append(_run(devices, apps, args.changes))
        print(rows[-1], flush=True)
    table = Table(title=f"re-plan in the worker ({cpu_model()})")
    for col in (
        "devices",
        "apps",
        "first solve s",
        "derived p50 s",
        "max s",
        "parsed afresh p50 s",
        "max s",
        "same plan",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r['devices']:,}",
            f"{r['apps']:,}",
            f"{r['full_s']:.2f}",
            f"{r['derived_p50']:.3f}",
            f"{r['derived_max']:.3f}",
            f"{r['fresh_p50']:.3f}",
            f"{r['fresh_max']:.3f}",
            r["agree"],
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
