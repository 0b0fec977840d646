"""`solver.appcandidates`: each app's candidates, handed on to a changed problem only where
the change cannot have moved them, and then the very ones a fresh problem makes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from solver import Problem, SolveOptions, appcandidates, heuristic, solve
from solver.appcandidates import Entry, app_of, memo_of
from solver.generate import generate
from solver.incremental import Change, apply_change
from solver.plan import Placement
from solver.scenario import parse_scenario

RAW = generate(7, devices=200, apps=100)


def _solved() -> tuple[Problem, dict[str, Placement]]:
    problem = Problem(parse_scenario(RAW))
    plan = solve(problem, SolveOptions(), solver="heuristic")
    return problem, dict(plan.placements)


def _fresh(problem: Problem, previous: dict[str, Placement]) -> dict[str, Any]:
    """Each app's candidates as a problem parsed afresh (no entries) makes them."""
    fresh = Problem(parse_scenario(problem.scenario.model_dump(mode="json")), previous=previous)
    st = heuristic._State(fresh, SolveOptions())
    st.generate()
    return {a: (e.candidates, e.lower, e.slo_only, e.routes) for a, e in st.apps.items()}


def _same(entry: Entry, fresh: tuple[Any, ...]) -> bool:
    candidates, lower, slo_only, routes = fresh
    return (
        [(c.placement, c.estimate) for c in entry.candidates]
        == [(c.placement, c.estimate) for c in candidates]
        and entry.lower == lower
        and entry.slo_only == slo_only
        and entry.routes.hosts == routes.hosts
        and all(
            np.array_equal(getattr(entry.routes, f), getattr(routes, f))
            for f in ("in_c1", "in_w0", "out_c1", "c1", "c0", "w1", "w0", "ok")
        )
    )


def test_a_solve_keeps_every_apps_candidates_and_a_link_change_drops_those_crossing_it() -> None:
    problem, placed = _solved()
    entries = memo_of(problem).entries
    assert set(entries) == set(problem.cost.apps)
    # An uplink that some apps' candidate routes cross, and others' do not.
    link = next(iter(entries[next(iter(entries))].routes.links))
    lk = problem.scenario.links[link]
    change = Change(links={(lk.a, lk.b): {"mbps": lk.mbps / 3}})
    now = apply_change(problem, change, placed)
    kept = memo_of(now).entries
    crossing = {a for a, e in entries.items() if link in e.routes.links}
    assert crossing and set(kept) == set(entries) - crossing
    fresh = _fresh(now, placed)
    assert all(_same(e, fresh[a]) for a, e in kept.items())
    # And the solve on them is the solve without them, to the byte (but its time).
    mine = solve(now, SolveOptions(), solver="heuristic")
    bare = apply_change(problem, change, placed)
    bare.derived.pop("app_candidates")
    theirs = solve(bare, SolveOptions(), solver="heuristic")
    assert _doc(mine) == _doc(theirs)
    again = Problem(parse_scenario(now.scenario.model_dump(mode="json")), previous=placed)
    assert mine.placements == solve(again, SolveOptions(), solver="heuristic").placements


def _doc(plan: Any) -> dict[str, Any]:
    doc: dict[str, Any] = plan.doc.model_dump(mode="json")
    doc.pop("solve_s")
    return doc


def test_a_battery_level_keeps_them_and_any_other_device_change_drops_them() -> None:
    problem, placed = _solved()
    cam = next(d for d in problem.scenario.devices if d.battery is not None)
    assert cam.battery is not None
    level = {"battery": {**cam.battery.model_dump(), "level_pct": cam.battery.level_pct - 7}}
    drained = apply_change(problem, Change(devices={cam.id: level}), placed)
    assert set(memo_of(drained).entries) == set(problem.cost.apps)
    fresh = _fresh(drained, placed)
    assert all(_same(e, fresh[a]) for a, e in memo_of(drained).entries.items())
    slower = apply_change(problem, Change(devices={cam.id: {"gflops": cam.gflops / 2}}), placed)
    assert memo_of(slower).entries == {}


def test_an_entry_is_taken_only_with_the_same_migration_terms() -> None:
    problem, placed = _solved()
    # Solved with no plan in force, then priced against one: every entry made again.
    base = apply_change(problem, Change(), placed)
    # An app split over devices, so that the other plan below differs from this one.
    app = next(a for a in base.cost.apps.values() if len(set(placed[a.id].blocks or ())) > 1)
    assert memo_of(base).get(base, app) is None
    heuristic._State(base, SolveOptions()).generate()
    assert memo_of(base).get(base, app) is not None
    # Another plan in force prices this app's moves otherwise, and no other's.
    other = dict(placed)
    p = placed[app.id]
    assert p.blocks is not None
    other[app.id] = Placement(app.id, model=p.model, blocks=tuple(reversed(p.blocks)))
    moved = apply_change(base, Change(), other)
    assert memo_of(moved).get(moved, app) is None
    rest = [a for a in moved.cost.apps.values() if a is not app]
    assert all(memo_of(moved).get(moved, a) is not None for a in rest)


def test_an_app_taken_out_and_back_as_the_same_record_takes_its_entry_again() -> None:
    """An app a change removes keeps its entry; added back from the very record (the
    same `App`, `app_of`), it takes it: the candidates a fresh problem makes. A record
    changed since, or another record, is another `App`, and its candidates are made
    again."""
    problem, placed = _solved()
    raw = next(a for a in RAW["apps"] if a["id"] in placed)
    gone = Change(removed_apps=frozenset({raw["id"]}))
    back = apply_change(apply_change(problem, gone, placed), Change(added_apps=(raw,)), placed)
    heuristic._State(back, SolveOptions()).generate()  # its entry, for this App
    app = back.cost.apps[raw["id"]]
    out = apply_change(back, gone, placed)
    assert raw["id"] not in out.cost.apps and memo_of(out).entries[raw["id"]].app is app
    again = apply_change(out, Change(added_apps=(raw,)), placed)
    assert again.cost.apps[raw["id"]] is app is app_of(raw)
    hit = memo_of(again).get(again, app)
    assert hit is not None and _same(hit, _fresh(again, placed)[raw["id"]])
    copied = apply_change(out, Change(added_apps=(dict(raw),)), placed)
    assert memo_of(copied).get(copied, copied.cost.apps[raw["id"]]) is None
    raw["rate_rps"] = raw["rate_rps"] * 2  # a record changed after it was read
    try:
        assert app_of(raw) is not app and app_of(raw).rate_rps == raw["rate_rps"]
    finally:
        raw["rate_rps"] = raw["rate_rps"] / 2


def test_app_of_keeps_a_bounded_number_of_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound, the record read longest ago goes first; the newest stay."""
    monkeypatch.setattr(appcandidates, "_KEEP_VALIDATED", 3)
    monkeypatch.setattr(appcandidates, "_VALIDATED", {})
    records = [{**RAW["apps"][0], "id": f"a{k}"} for k in range(5)]
    apps = [app_of(r) for r in records]
    assert [v[0]["id"] for v in appcandidates._VALIDATED.values()] == ["a2", "a3", "a4"]
    assert app_of(records[4]) is apps[4] and app_of(records[0]) is not apps[0]
