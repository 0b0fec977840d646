"""The fast neurosurgeon (solver.splits) chooses exactly what scoring every candidate
chooses: same placement for every app, on fleets and bandwidths where the choices vary."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from solver import Problem, SolveOptions, parse_scenario
from solver.baselines import Scorer, solve_neurosurgeon, solve_neurosurgeon_reference
from solver.generate import generate
from solver.plan import Placement
from solver.splitchoice import AtBest, choose, choose_near
from solver.splitroutes import figure_vector
from solver.splits import AppSplits, Key

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "factory-line.yaml"


def _same(raw: dict[str, Any], previous_from: dict[str, Any] | None = None) -> None:
    previous = None
    if previous_from is not None:
        p0 = Problem(parse_scenario(previous_from))
        previous = solve_neurosurgeon_reference(p0, SolveOptions()).placements
    fast = solve_neurosurgeon(Problem(parse_scenario(raw), previous=previous), SolveOptions())
    ref = solve_neurosurgeon_reference(
        Problem(parse_scenario(raw), previous=previous), SolveOptions()
    )
    assert fast.placements == ref.placements
    assert fast.doc.objective == ref.doc.objective


def _scaled(raw: dict[str, Any], seed: int, low: float, high: float) -> dict[str, Any]:
    """Every link's bandwidth times a factor drawn in [low, high]."""
    rng = np.random.default_rng(seed)
    links = [{**lk, "mbps": lk["mbps"] * float(rng.uniform(low, high))} for lk in raw["links"]]
    return {**raw, "links": links}


def test_the_example_fleet_at_many_bandwidths() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    _same(raw)
    for seed in range(6):
        _same(_scaled(raw, seed, 0.01, 3.0))


@pytest.mark.parametrize(
    ("seed", "options"),
    [
        (1, {}),
        (2, {"overheads": True}),
        (3, {"contended": True, "overheads": True}),
        (4, {"blocks": 5, "exits": False}),
    ],
)
def test_generated_fleets(seed: int, options: dict[str, Any]) -> None:
    raw = generate(seed, devices=36, apps=18, **options)
    _same(raw)
    # Starved and generous links move the best split, and push some apps over their SLO
    # (the key is then the worst case, not the objective).
    _same(_scaled(raw, seed, 0.002, 0.05))
    _same(_scaled(raw, seed + 10, 0.3, 20.0))


def test_objective_weights_and_migration() -> None:
    raw = generate(5, devices=30, apps=15, overheads=True)
    for weights in (
        {"energy": 0.0, "carbon": 0.0, "latency": 1.0, "migration": 0.0},
        {"energy": 1.0, "carbon": 5.0, "latency": 0.0, "migration": 0.0},
        {"energy": 1.0, "carbon": 0.1, "latency": 0.01, "migration": 2.0},
    ):
        moved = {**raw, "objective": weights}
        # Against the plan of other bandwidths, so that staying put has a price.
        _same(moved, previous_from=_scaled(moved, 9, 0.05, 0.5))


def test_the_bounds_are_below_every_key() -> None:
    """Every candidate's bound is at most its key as the baseline's scorer has it."""
    problem = Problem(parse_scenario(_scaled(generate(6, devices=24, apps=12), 6, 0.01, 2.0)))
    scorer = Scorer(problem)
    for app in problem.scenario.apps:
        splits = AppSplits(problem, app, {})
        broken, value = splits.bounds(figure_vector(()))
        for i in range(len(broken)):
            key = scorer.key(app, splits.candidate(i))
            assert (int(broken[i]), float(value[i])) <= key


def test_hosts_names_the_other_device_of_every_candidate() -> None:
    """`hosts()[i]`: the index in `others` of the device candidate i runs on beside the
    source, -1 when it runs on the source alone; on apps with variants and cascades."""
    kinds = set()
    for raw in (generate(6, devices=24, apps=12), generate(4, devices=20, apps=10, blocks=5)):
        problem = Problem(parse_scenario(raw))
        for app in problem.scenario.apps:
            splits = AppSplits(problem, app, {})
            hosts = splits.hosts().tolist()
            assert len(hosts) == len(splits.bounds(figure_vector(()))[0])
            for i, j in enumerate(hosts):
                beside = splits.candidate(i).hosts() - {app.source}
                assert beside == (set() if j < 0 else {splits.others[j]})
            kinds.add(app.cascade is not None)
    assert kinds == {True, False}


def test_traced_links_read_from_the_figures() -> None:
    """Bounds at a figure vector equal those of the scenario that has those figures."""
    raw = generate(8, devices=24, apps=12)
    problem = Problem(parse_scenario(raw))
    traced = [0, 3, 5]
    slots = {k: j for j, k in enumerate(traced)}
    values = [raw["links"][k]["mbps"] * f for k, f in zip(traced, (0.1, 3.0, 0.5), strict=True)]
    links = list(raw["links"])
    for k, v in zip(traced, values, strict=True):
        links[k] = {**links[k], "mbps": v}
    moved = Problem(parse_scenario({**raw, "links": links}))
    for app, app2 in zip(problem.scenario.apps, moved.scenario.apps, strict=True):
        at = AppSplits(problem, app, slots).bounds(figure_vector(values))
        direct = AppSplits(moved, app2, {}).bounds(figure_vector(()))
        assert np.array_equal(at[0], direct[0])
        assert np.allclose(at[1], direct[1], rtol=1e-12, atol=0.0)


def test_same_reads_is_reads_compared_host_by_host() -> None:
    """`same_reads` (every host at once) answers as `reads` compared host by host, across
    two fleet shapes (a device gone, which re-routes some hosts), with both answers seen."""
    raw = generate(8, devices=24, apps=12)
    busy = {a["source"] for a in raw["apps"]} | {a.get("sink") for a in raw["apps"]}
    gone = next(d["id"] for d in raw["devices"] if d["id"] not in busy)
    links = [lk for lk in raw["links"] if gone not in (lk["a"], lk["b"])]
    shapes = []
    for scn in (raw, {**raw, "devices": [d for d in raw["devices"] if d["id"] != gone],
                      "links": links}):  # fmt: skip
        problem = Problem(parse_scenario(scn))
        names = [(lk.a, lk.b) for lk in problem.scenario.links]
        traced = [k for k, n in enumerate(names) if n in {(x["a"], x["b"]) for x in links[:6]}]
        shapes.append((problem, [names[k] for k in traced], {k: j for j, k in enumerate(traced)}))
    (p1, links1, slots1), (p2, links2, slots2) = shapes
    answers = set()
    for app1, app2 in zip(p1.scenario.apps, p2.scenario.apps, strict=True):
        was, now = AppSplits(p1, app1, slots1), AppSplits(p2, app2, slots2)
        at_now = {d: j for j, d in enumerate(now.others)}
        common = [d for d in was.others if d in at_now]
        mine = [at_now[d] for d in common]
        theirs = [was.others.index(d) for d in common]
        plain = all(
            now.reads(i, links2) == was.reads(j, links1) for i, j in zip(mine, theirs, strict=True)
        )
        assert now.same_reads(was, mine, theirs, links2, links1) == plain
        answers.add(plain)
        if plain:
            # Each thing a host's candidates read, changed at one host, is seen.
            for part, name in [(None, n) for n in ("gf", "dp", "grid", "cx", "ov")] + [
                (r, n) for r in ("sd", "dt") for n in ("ok", "move", "rtt", "jpm", "base")
            ]:
                other = copy.deepcopy(now)
                held = other if part is None else getattr(other, part)
                values = getattr(held, name)
                values[mine[-1]] = (not values[mine[-1]]) if values.dtype == bool else 7.5
                assert other.same_reads(was, mine, theirs, links2, links1) is False, name
                assert other.reads(mine[-1], links2) != was.reads(theirs[-1], links1)
    assert answers == {True, False}


def _with_twins(raw: dict[str, Any]) -> dict[str, Any]:
    """Every edge and cloud device twinned: same figures, same links, another id (after
    the original in the baseline's order), so that candidates tie to the last bit."""
    devices, links = list(raw["devices"]), list(raw["links"])
    for d in raw["devices"]:
        if d["tier"] == "device":
            continue
        twin = f"{d['id']}-twin"
        devices.append({**d, "id": twin})
        for lk in raw["links"]:
            if d["id"] in (lk["a"], lk["b"]):
                a = twin if lk["a"] == d["id"] else lk["a"]
                b = twin if lk["b"] == d["id"] else lk["b"]
                links.append({**lk, "a": a, "b": b})
    return {**raw, "devices": devices, "links": links}


@pytest.mark.parametrize(("low", "high"), [(0.002, 0.05), (0.05, 1.0), (1.0, 30.0)])
def test_choose_is_the_least_key_first_in_order_even_on_exact_ties(low: float, high: float) -> None:
    """`choose` against every candidate scored, at bandwidths from starved to generous,
    on a fleet whose twinned hosts make exact ties: the least key, the first of equals."""
    raw = _with_twins(_scaled(generate(11, devices=16, apps=10), 3, low, high))
    problem = Problem(parse_scenario(raw))
    scorer = Scorer(problem)
    ties = 0
    for app in problem.scenario.apps:
        splits = AppSplits(problem, app, {})
        keys = [
            scorer.key(app, splits.candidate(i))
            for i in range(len(splits.bounds(figure_vector(()))[0]))
        ]
        least = min(keys)
        ties += keys.count(least) > 1
        got, key = choose(splits, figure_vector(()), functools.partial(scorer.key, app))
        assert key == least
        assert got == splits.candidate(keys.index(least))
    assert ties > 0  # the twins tie for some app's best


def test_bounds_at_and_index_are_bounds_and_candidate_turned_around() -> None:
    """`bounds_at` of some candidates are the very floats `bounds` has for them, at
    traced figures from starved to generous; `index` finds each candidate's place."""
    raw = generate(8, devices=24, apps=12, blocks=5)
    problem = Problem(parse_scenario(raw))
    slots = {k: j for j, k in enumerate((0, 3, 5, 7))}
    rng = np.random.default_rng(4)
    seen = 0
    for app in problem.scenario.apps:
        splits = AppSplits(problem, app, slots)
        n = len(splits.hosts())
        if app.cascade is not None:
            assert splits.index(splits.candidate(1)) is None
            continue
        assert [splits.index(splits.candidate(i)) for i in range(n)] == list(range(n))
        for scale in (0.01, 1.0, 50.0):
            figures = figure_vector(rng.uniform(0.5, 2.0, len(slots)) * scale)
            idx = np.sort(rng.choice(n, size=max(1, n // 3), replace=False))
            broken, value = splits.bounds(figures)
            b, v = splits.bounds_at(figures, idx)
            assert np.array_equal(b, broken[idx]) and np.array_equal(v, value[idx])
            seen += 1
    assert seen


@pytest.mark.parametrize(("low", "high"), [(0.002, 0.05), (0.05, 1.0), (1.0, 30.0)])
def test_choose_near_chooses_what_choose_does_whatever_it_is_told(low: float, high: float) -> None:
    """`choose_near`, told the choice itself, another candidate or none, chooses what
    `choose` does, with the bounds at every traced link's best as its cut, on the fleet
    of exact ties."""
    raw = _with_twins(_scaled(generate(11, devices=16, apps=10), 3, low, high))
    problem = Problem(parse_scenario(raw))
    traced = {k: j for j, k in enumerate(range(0, len(raw["links"]), 3))}
    best = figure_vector([raw["links"][k]["mbps"] * 2.0 for k in traced])
    rng = np.random.default_rng(7)
    shortcut = 0
    for app in problem.scenario.apps:
        splits = AppSplits(problem, app, traced)
        lower = AtBest(*splits.bounds(best))
        for _ in range(4):
            figures = figure_vector(
                [raw["links"][k]["mbps"] * float(rng.uniform(0.2, 2.0)) for k in traced]
            )
            moved = {**raw, "links": [
                {**lk, "mbps": float(figures[traced[k]])} if k in traced else lk
                for k, lk in enumerate(raw["links"])
            ]}  # fmt: skip
            scorer = Scorer(Problem(parse_scenario(moved)))
            key = functools.partial(scorer.key, app)
            want = choose(splits, figures, key)
            other = splits.candidate(int(rng.integers(len(splits.hosts()))))
            for near in (want[0], other, None):
                calls: list[Placement] = []

                def counted(p: Placement, calls: list[Placement] = calls, key: Any = key) -> Key:
                    calls.append(p)
                    return key(p)

                assert choose_near(splits, figures, counted, near, lower) == want
                shortcut += near is want[0] and len(calls) == 1
    assert shortcut  # the choice told stood without `choose`
