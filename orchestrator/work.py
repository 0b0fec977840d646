"""CPU-heavy work run in the control plane's process pool, never on the event loop.

Every function here is top-level and takes and returns plain data (dicts, lists, paths
as strings), so that it pickles into a spawned worker process.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any


def solve_scenario(
    scenario: dict[str, Any], solver_name: str, time_limit_s: float
) -> dict[str, Any]:
    """Rebuild the scenario in the worker and solve it; the plan document as a dict."""
    import solver

    plan = solver.solve(
        solver.parse_scenario(scenario),
        solver.SolveOptions(time_limit_s=time_limit_s),
        solver=solver_name,
    )
    return plan.doc.model_dump(mode="json")


def placements_of(scenario: Any, plan: dict[str, Any]) -> dict[str, Any]:
    """A plan document's apps as the solver's Placements (per-block devices), for the apps
    and models the scenario still has."""
    from solver.plan import Placement

    layers = {m.id: [layer.name for layer in m.layers] for m in scenario.models}
    apps = {a.id for a in scenario.apps}
    out: dict[str, Any] = {}
    for app in plan.get("apps", []):
        if app["id"] not in apps:
            continue
        if app.get("stages"):
            stages = tuple(s["device"] for s in app["stages"])
            out[app["id"]] = Placement(app["id"], stages=stages)
            continue
        names = layers.get(app.get("model") or "")
        if not names or not app.get("segments"):
            continue
        index = {n: k for k, n in enumerate(names)}
        blocks = [""] * len(names)
        for seg in app["segments"]:
            for k in range(index[seg["first"]], index[seg["last"]] + 1):
                blocks[k] = seg["device"]
        if all(blocks):
            out[app["id"]] = Placement(app["id"], model=app["model"], blocks=tuple(blocks))
    return out


def change_between(old: dict[str, Any], new: dict[str, Any]) -> Any:
    """What changed from the scenario the plan in force was solved with to the scenario of
    now, as the solver's incremental `Change` (it picks the apps to re-place)."""
    from solver.incremental import Change

    before = {d["id"]: d for d in old.get("devices", [])}
    after = {d["id"]: d for d in new.get("devices", [])}
    devices = {d: after[d] for d in after if d in before and before[d] != after[d]}
    lost = frozenset(before.keys() - after.keys())

    def links(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(lk["a"], lk["b"]): lk for lk in doc.get("links", [])}

    lb, la = links(old), links(new)
    changed = {k: la[k] for k in la if k in lb and lb[k] != la[k]}
    apps_before = {a["id"]: a for a in old.get("apps", [])}
    apps_after = {a["id"]: a for a in new.get("apps", [])}
    added_apps = tuple(a for i, a in apps_after.items() if apps_before.get(i) != a)
    return Change(
        devices=devices,
        lost_devices=lost,
        links=changed,
        removed_links=frozenset(lb.keys() - la.keys()),
        added_devices=tuple(after[d] for d in after.keys() - before.keys()),
        added_links=tuple(la[k] for k in la.keys() - lb.keys()),
        added_apps=added_apps,
        removed_apps=frozenset(apps_before.keys() - apps_after.keys()),
    )


def replan(
    scenario: dict[str, Any],
    previous_scenario: dict[str, Any] | None,
    previous_plan: dict[str, Any] | None,
    solver_name: str,
    time_limit_s: float,
    margin: float,
    force: bool = False,
) -> dict[str, Any]:
    """Re-solve (incrementally when a plan is in force: only the apps the change touches
    move) and decide with the hysteresis rule whether the candidate replaces the plan in
    force. Returns {"plan", "apply", "decision", "incremental", "current_objective",
    "broken", "decide_s", "derived_problem", "scenario", "unplaced"}: `scenario` is the one
    the plan places, without the `unplaced` apps (id -> why they cannot be placed)."""
    import time

    import solver
    from orchestrator.hysteresis import decide
    from solver.evaluate import evaluate
    from solver.partial import place_what_fits

    options = solver.SolveOptions(time_limit_s=time_limit_s)
    change = None
    problem = None
    if previous_plan and previous_scenario is not None:
        change = change_between(previous_scenario, scenario)
        problem = _derived_problem(scenario, previous_scenario, previous_plan, change)
    derived = problem is not None
    if problem is None:
        problem = solver.Problem(solver.parse_scenario(scenario))
    current = placements_of(problem.scenario, previous_plan) if previous_plan else {}
    incremental = bool(current) and change is not None
    # The incremental re-solve holds the untouched apps where they are; when they leave
    # no room it re-places every app. An app that fits nowhere is set aside with its
    # reason, and the others are placed all the same.
    partial = place_what_fits(
        problem,
        options,
        solver_name,
        previous=current if incremental else None,
        change=change if incremental else None,
    )
    plan, solved = partial.plan, partial.problem
    started = time.perf_counter()
    current_objective: float | None = None
    broken: list[str] = []
    held: dict[str, Any] = {}
    structural = previous_plan is not None and {a["id"] for a in previous_plan["apps"]} != {
        a.id for a in solved.scenario.apps
    }
    placed_scenario = scenario
    if partial.unplaced:
        placed_scenario = dict(scenario)
        placed_scenario["apps"] = [
            a for a in scenario.get("apps", []) if a["id"] not in partial.unplaced
        ]
    _remember(scenario, problem)
    if solved is not problem:
        _remember(placed_scenario, solved)
    if previous_plan is not None:
        # The plan in force is judged on what the candidate places: an app set aside
        # stays out of both (leaving it out is a change of the set of deployments).
        held = {a: p for a, p in current.items() if a in solved.cost.apps}
        try:
            ev = evaluate(
                solved.cost,
                held,
                cache=solved.app_costs,
                migration=solved.migration,
                base=solved.derived.get("evaluation"),
            )
            current_objective, broken = ev.objective, list(ev.violations)
        except (KeyError, ValueError, IndexError) as exc:
            # The plan in force names something the scenario no longer has (a lost device).
            current_objective, broken = float("inf"), [f"the plan in force is stale: {exc}"]
        if structural and not broken:
            broken = ["the set of deployments changed"]
    feasible = plan.status != solver.Status.INFEASIBLE
    decision = decide(current_objective, broken, plan.doc.objective, feasible, margin)
    if force and feasible:
        decision = type(decision)(True, "an operator's solve: applied without the margin")
    elif decision.apply and current and plan.placements == held and not structural:
        decision = type(decision)(False, "the candidate is the plan in force")
    doc = plan.doc.model_dump(mode="json")
    return {
        "plan": doc,
        "apply": decision.apply,
        "decision": decision.reason,
        "incremental": incremental,
        "current_objective": None if current_objective == float("inf") else current_objective,
        "broken": broken[:5],
        "decide_s": time.perf_counter() - started,
        "derived_problem": derived,
        # The scenario the plan places (without the unplaced apps), and why each of
        # those cannot be placed.
        "scenario": placed_scenario,
        "unplaced": partial.unplaced,
    }


# The problems this worker process solved last, by scenario (its `previous` aside): the
# next re-plan derives its problem from the one of the scenario in force
# (`solver.incremental.apply_change`: routes, costs, fleet tables and the evaluation carry
# over) instead of parsing and routing the whole fleet again.
_SOLVED: OrderedDict[str, Any] = OrderedDict()
_KEEP = 3
_FRAME = ("version", "horizon_h", "max_utilization", "objective", "models")


def _digest(scenario: dict[str, Any]) -> str:
    body = {k: v for k, v in scenario.items() if k != "previous"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _remember(scenario: dict[str, Any], problem: Any) -> None:
    key = _digest(scenario)
    _SOLVED[key] = problem
    _SOLVED.move_to_end(key)
    while len(_SOLVED) > _KEEP:
        _SOLVED.popitem(last=False)


def _derived_problem(
    scenario: dict[str, Any],
    previous_scenario: dict[str, Any],
    previous_plan: dict[str, Any],
    change: Any,
) -> Any:
    """The problem of `scenario` derived from the one this worker solved for
    `previous_scenario`, or None when there is none or it would not be the very problem a
    fresh parse gives (other weights or models, devices or links in another order)."""
    from solver import ScenarioError
    from solver.incremental import apply_change

    base = _SOLVED.get(_digest(previous_scenario))
    if base is None or change.added_devices or change.added_links:
        return None
    if any(scenario.get(k) != previous_scenario.get(k) for k in _FRAME):
        return None
    try:
        problem = apply_change(base, change, placements_of(base.scenario, previous_plan))
    except ScenarioError:
        return None  # the fresh parse says what is wrong
    scn = problem.scenario
    same_order = (
        [d.id for d in scn.devices] == [d["id"] for d in scenario["devices"]]
        and [(lk.a, lk.b) for lk in scn.links]
        == [(lk["a"], lk["b"]) for lk in scenario.get("links", [])]
        and [a.id for a in scn.apps] == [a["id"] for a in scenario.get("apps", [])]
    )
    return problem if same_order else None


def analyse_file(path: str, input_shapes: dict[str, list[int]] | None) -> dict[str, Any]:
    """The registry's analysis of an ONNX file (raises ModelError for anything else)."""
    from models_registry.blocks import analyse_model

    analysis = analyse_model(Path(path), input_shapes or None)
    return analysis.to_json()


def extract_ranges(
    model_path: str,
    input_shapes: dict[str, list[int]] | None,
    ranges: list[tuple[int, int]],
    store_root: str,
) -> list[dict[str, Any]]:
    """Partitions for block ranges (inclusive indices), written into the artifact store.

    Returns, per range, its sha256, size and the partition's input and output names.
    """
    from models_registry.blocks import analyse_model
    from models_registry.partition import extract_partition
    from orchestrator.artifacts import Artifacts

    store = Artifacts(Path(store_root))
    analysis = analyse_model(Path(model_path), input_shapes or None)
    out: list[dict[str, Any]] = []
    for first, last in ranges:
        part = extract_partition(analysis, first, last)
        sha, size = store.put_bytes(part.to_bytes())
        out.append(
            {
                "first": first,
                "last": last,
                "sha256": sha,
                "size": size,
                "inputs": [info.name for info in part.inputs],
                "outputs": [info.name for info in part.outputs],
            }
        )
    return out


def quantize_to_store(
    model_path: str, input_shapes: dict[str, list[int]] | None, store_root: str
) -> dict[str, Any]:
    """An int8 variant through the registry, stored, analysed and measured."""
    from models_registry.blocks import analyse_model
    from models_registry.quantize import quantize_int8
    from orchestrator.artifacts import Artifacts

    variant = quantize_int8(Path(model_path), input_shapes or None)
    sha, size = Artifacts(Path(store_root)).put_bytes(variant.data)
    analysis = analyse_model(variant.data, input_shapes or None)
    return {
        "sha256": sha,
        "size": size,
        "analysis": analysis.to_json(),
        "detail": variant.to_json(),
    }


def check_exit_head(
    model_path: str, input_shapes: dict[str, list[int]] | None, after: str, head_path: str
) -> dict[str, float]:
    """The registry's check that a head takes block `after`'s output (ModelError naming
    both shapes when it does not), and the head's cost."""
    from models_registry.blocks import analyse_model
    from models_registry.exits import attach_exit

    analysis = analyse_model(Path(model_path), input_shapes or None)
    head = attach_exit(analysis, after, Path(head_path))
    return {"gflops": head.gflops, "params_mb": head.params_mb}
