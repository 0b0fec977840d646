"""A re-plan that no candidate can win keeps the plan in force without a solve, and
decides what the solve would have decided."""

from __future__ import annotations

import copy
import pickle
import random
from typing import Any

import pytest

import solver
from orchestrator import replacement
from orchestrator.drafts import InForceNow, Written
from orchestrator.replacement import Replacement, in_force
from orchestrator.triggers import link_name
from solver.generate import generate


@pytest.fixture(autouse=True)
def _empty_worker_cache() -> None:
    replacement._SOLVED.clear()


def _solves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the solves `replan` asks for."""
    calls: list[int] = []
    place = solver.place_what_fits

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return place(*args, **kwargs)

    monkeypatch.setattr(replacement.solver, "place_what_fits", counting)
    return calls


def _replan(
    scenario: dict[str, Any],
    previous: dict[str, Any] | None,
    plan: Replacement | None,
    targets: set[str] | None = None,
    margin: float = 0.05,
) -> Replacement:
    current = in_force(scenario, previous, plan.plan) if plan is not None else None
    return replacement.replan(scenario, current, "heuristic", 30, margin, targets=targets)


def _uplink_of(scn: dict[str, Any], app: dict[str, Any]) -> dict[str, Any]:
    return next(lk for lk in scn["links"] if app["source"] in (lk["a"], lk["b"]))


def test_a_change_whose_apps_are_a_small_share_keeps_the_plan_without_a_solve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scn = generate(7, devices=60, apps=30, blocks=6)
    first = _replan(scn, None, None)
    assert first.apply
    now = copy.deepcopy(scn)
    link = _uplink_of(now, now["apps"][0])
    link["mbps"] *= 1.5
    calls = _solves(monkeypatch)
    kept = _replan(now, scn, first, targets={link_name(link["a"], link["b"])})
    assert calls == [] and not kept.apply
    assert "without a re-solve" in kept.decision and kept.broken == []
    # Its document is the plan in force, evaluated under the scenario of now.
    running = {a["id"]: a.get("segments") for a in first.document["apps"]}
    assert {a["id"]: a.get("segments") for a in kept.document["apps"]} == running
    assert kept.current_objective == pytest.approx(kept.document["objective"], rel=1e-9)
    # With no margin, the same re-plan is solved.
    replacement._SOLVED.clear()
    _replan(now, scn, first, targets={link_name(link["a"], link["b"])}, margin=0.0)
    assert calls == [1]


def test_a_plan_in_force_that_breaks_a_link_is_solved_and_goes_whatever_fired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scn = generate(7, devices=60, apps=30, blocks=6)
    first = _replan(scn, None, None)
    used = max(first.plan.links, key=lambda u: u.utilization)
    now = copy.deepcopy(scn)
    link = next(lk for lk in now["links"] if (lk["a"], lk["b"]) == (used.a, used.b))
    link["mbps"] *= used.utilization / (2.0 * scn["max_utilization"])  # twice the cap
    calls = _solves(monkeypatch)
    # Even with nothing named as fired (no app is moved for the link): it must go.
    out = _replan(now, scn, first, targets=set())
    assert calls == [1]
    assert out.apply and "breaks a constraint" in out.decision


def test_a_replacement_crosses_the_pool_with_its_document_written() -> None:
    scn = generate(7, devices=60, apps=30, blocks=6)
    first = _replan(scn, None, None)
    now = copy.deepcopy(scn)
    link = _uplink_of(now, now["apps"][0])
    link["mbps"] *= 1.5
    kept = _replan(now, scn, first, targets={link_name(link["a"], link["b"])})
    assert isinstance(kept.draft, InForceNow)
    back = pickle.loads(pickle.dumps(kept))
    assert isinstance(back.draft, Written)
    assert back.document == kept.document
    assert back.plan.model_dump() == kept.plan.model_dump()
    assert back.decision == kept.decision and back.degraded == kept.degraded


@pytest.mark.parametrize("seed", [3, 11])
def test_screened_re_plans_decide_as_solved_ones(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk of re-plans (links moved, one of those the plan uses cut every fifth step,
    packs drained, some fired; one app served degraded throughout), each decided with the
    screen and again with every re-plan solved: the same decision every time."""
    rng = random.Random(seed)
    # Past the polish's size (`solver.polish.small_fleet`), where an app that fits nowhere
    # is set aside before the solve, so that a re-plan can be kept without one.
    world = generate(seed, devices=90, apps=40, blocks=6)
    world["apps"][5]["slo_ms"] = 1e-6  # met nowhere: served degraded, held where it runs
    first = _replan(world, None, None)
    assert list(first.degraded) == [world["apps"][5]["id"]]
    planned, running = world, first
    screened = bounded = applied = 0
    for step in range(20):
        world = copy.deepcopy(world)
        fired: set[str] = set()
        for lk in rng.sample(world["links"], 2):
            lk["mbps"] = round(lk["mbps"] * rng.choice([0.5, 0.8, 1.25, 2.0]), 3)
            if rng.random() < 0.5:
                fired.add(link_name(lk["a"], lk["b"]))
        if step % 5 == 4:
            used = max(running.plan.links, key=lambda u: u.utilization)
            cut = next(lk for lk in world["links"] if (lk["a"], lk["b"]) == (used.a, used.b))
            cut["mbps"] = round(cut["mbps"] * 0.1, 3)
            fired.add(link_name(used.a, used.b))
        packs = [d for d in world["devices"] if d.get("battery")]
        for d in packs:
            bat = d["battery"]
            bat["level_pct"] = max(bat["min_pct"], bat["level_pct"] - rng.uniform(0.0, 1.0))
        fired.update(d["id"] for d in rng.sample(packs, 1))
        with monkeypatch.context() as m:
            m.setattr(replacement, "kept_as_is", lambda *a, **k: None)
            cache = list(replacement._SOLVED)
            solved = _replan(world, planned, running, targets=fired)
            replacement._SOLVED[:] = cache
        out = _replan(world, planned, running, targets=fired)
        assert (out.apply, out.broken) == (solved.apply, solved.broken), out.decision
        assert out.degraded.keys() == solved.degraded.keys()
        if isinstance(out.draft, InForceNow):
            screened += 1
            bounded += "at best would take" in out.decision
        else:
            assert out.decision == solved.decision
        if out.apply:
            applied += 1
            planned, running = out.scenario, out
    # The walk does exercise every way, the touched apps' bounds among them.
    assert screened >= 5 and bounded >= 1 and applied >= 2, (screened, bounded, applied)
