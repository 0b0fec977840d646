"""An app's candidates taken from the fleet before a device went (solver.splitshrunk) are
those a fresh layout makes on the fleet without it, array for array; where a route kept
would cross a device gone, nothing is taken."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from solver import Problem, parse_scenario
from solver.generate import generate
from solver.splitroutes import figure_vector
from solver.splits import AppSplits
from solver.splitshrunk import link_reads, links_unchanged, shrunk

_HOST = ("gf", "dp", "grid", "cx", "ov", "dt_missing")
_SOURCE = ("s_gf", "s_ov", "s_dp", "s_grid", "s_cx", "s_bad", "st_missing", "w", "slo")
_ROUTE = ("ok", "move", "rtt", "jpm", "half", "base")


def _shape(raw: dict[str, Any], gone: set[str], traced: list[tuple[str, str]]) -> Any:
    devices = [d for d in raw["devices"] if d["id"] not in gone]
    links = [lk for lk in raw["links"] if not gone & {lk["a"], lk["b"]}]
    apps = [a for a in raw["apps"] if not gone & {a["source"], a.get("sink", a["source"])}]
    problem = Problem(parse_scenario({**raw, "devices": devices, "links": links, "apps": apps}))
    names = [(lk.a, lk.b) for lk in problem.scenario.links]
    slots = [key for key in traced if key in names]
    return problem, slots, {names.index(key): j for j, key in enumerate(slots)}


def _same(taken: AppSplits, fresh: AppSplits, slots: list[tuple[str, str]]) -> None:
    assert taken.others == fresh.others and taken.host_ids == fresh.host_ids
    assert taken.crosses == fresh.crosses and taken.st_crosses == fresh.st_crosses
    for name in _HOST:
        assert np.array_equal(getattr(taken, name), getattr(fresh, name)), name
    for name in _SOURCE:
        assert getattr(taken, name) == getattr(fresh, name), name
    assert taken.group_slots == fresh.group_slots and taken.source_slots == fresh.source_slots
    rng = np.random.default_rng(5)
    figures = [figure_vector(rng.uniform(0.5, 80.0, len(slots))) for _ in range(3)]
    for part in ("sd", "dt", "st"):
        a, b = getattr(taken, part), getattr(fresh, part)
        for name in _ROUTE:
            assert np.array_equal(getattr(a, name), getattr(b, name)), (part, name)
        assert a.slots == b.slots
        for f in figures:
            assert np.array_equal(a.mbps(f), b.mbps(f))
    assert np.array_equal(taken.hosts(), fresh.hosts())
    for f in figures:
        (b1, v1), (b2, v2) = taken.bounds(f), fresh.bounds(f)
        assert np.array_equal(b1, b2) and np.array_equal(v1, v2)
        if taken.app.cascade is None:  # (`bounds_at` is a partitioned model's)
            idx = np.arange(len(v1))[:: max(1, len(v1) // 50)]
            (c1, w1), (c2, w2) = taken.bounds_at(f, idx), fresh.bounds_at(f, idx)
            assert np.array_equal(c1, c2) and np.array_equal(w1, w2)
    assert [taken.candidate(i) for i in range(len(v1))] == [
        fresh.candidate(i) for i in range(len(v1))
    ]


@pytest.mark.parametrize("every", [3, 0], ids=["traced", "nothing-traced"])
def test_a_fleet_less_a_device_has_the_candidates_of_a_fresh_layout(every: int) -> None:
    """Also with no traced link (nothing to renumber): `continuum simulate` with a device
    failing and no `--trace` once crashed neurosurgeon there."""
    raw = generate(7, devices=60, apps=24, blocks=5)
    traced = [(lk["a"], lk["b"]) for lk in raw["links"][::every]] if every else []
    before, slots0, at0 = _shape(raw, set(), traced)
    was = {a.id: AppSplits(before, a, at0) for a in before.scenario.apps}
    # A device some route crosses on its way: the apps of those routes are not taken. One
    # that no route crosses but to reach it as a host: every app is.
    ends = {d for a in before.scenario.apps for d in (a.source, a.sink_id)}
    crossed = set()
    for s in was.values():
        ids = {s.app.source, s.app.sink_id}
        crossed |= s.st_crosses - ids
        for d, c in zip(s.others, s.crosses, strict=True):
            crossed |= c - ids - {d}
    relay = sorted(crossed - ends)[0]
    quiet = next(d["id"] for d in raw["devices"] if d["id"] not in crossed | ends)
    outcomes = []
    for gone in ({relay}, {quiet}, {relay, quiet}):
        now, slots, at = _shape(raw, gone, traced)
        assert links_unchanged(link_reads(before.scenario.links, traced), link_reads(
            now.scenario.links, traced))  # fmt: skip
        renumber = np.array([slots.index(k) if k in slots else -1 for k in slots0], np.int64)
        for app in now.scenario.apps:
            taken = shrunk(was[app.id], now, app, gone, renumber)
            s = was[app.id]
            kept = [c for d, c in zip(s.others, s.crosses, strict=True) if d not in gone]
            crosses = any(not c.isdisjoint(gone) for c in [*kept, s.st_crosses])
            assert (taken is None) == crosses, (app.id, gone)
            if taken is not None:
                _same(taken, AppSplits(now, app, at), slots)
            outcomes.append((len(gone), taken is None))
    assert (1, True) in outcomes and (1, False) in outcomes and (2, True) in outcomes


def test_a_link_read_otherwise_is_seen() -> None:
    raw = generate(7, devices=30, apps=8)
    traced = [(lk["a"], lk["b"]) for lk in raw["links"][:4]]
    problem = Problem(parse_scenario(raw))
    before = link_reads(problem.scenario.links, traced)
    assert links_unchanged(before, before)
    untraced = raw["links"][5]
    for field, value in (("mbps", untraced["mbps"] * 2), ("rtt_ms", untraced["rtt_ms"] + 1)):
        links = [dict(lk) for lk in raw["links"]]
        links[5][field] = value
        moved = Problem(parse_scenario({**raw, "links": links}))
        assert not links_unchanged(before, link_reads(moved.scenario.links, traced)), field
    # A traced link's Mbit/s is the figure vector's, not the link's.
    links = [dict(lk) for lk in raw["links"]]
    links[0]["mbps"] = raw["links"][0]["mbps"] * 3
    moved = Problem(parse_scenario({**raw, "links": links}))
    assert links_unchanged(before, link_reads(moved.scenario.links, traced))
