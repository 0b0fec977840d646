"""A fleet less some devices: the fast restatements equal the plain ones they replaced."""

from __future__ import annotations

from solver import Problem
from solver.generate import generate
from solver.scenario import parse_scenario
from solver.shrink import kept_links, less


def test_kept_links_equals_matching_every_link_by_identity() -> None:
    scn = parse_scenario(generate(3, devices=60, apps=20, blocks=6))
    lost = {scn.devices[7].id, scn.devices[31].id}
    new = [lk for lk in scn.links if lk.a not in lost and lk.b not in lost]
    assert len(new) < len(scn.links)
    # The matching it replaced: a dict of every new link's id.
    new_at = {id(lk): k for k, lk in enumerate(new)}
    want = {k: new_at[id(lk)] for k, lk in enumerate(scn.links) if id(lk) in new_at}
    assert kept_links(scn.links, new) == want
    assert list(kept_links(scn.links, new)) == list(want)  # same order too


def test_less_equals_filtering_every_device() -> None:
    problem = Problem(parse_scenario(generate(3, devices=60, apps=20, blocks=6)))
    table = {d.id: float(k) for k, d in enumerate(problem.scenario.devices)}
    lost = {problem.scenario.devices[0].id, problem.scenario.devices[-1].id, "not-a-device"}
    want = {d: v for d, v in table.items() if d not in lost}
    got = less(table, lost)
    assert got == want and list(got) == list(want)
    assert len(table) == 60  # the table itself is left as it was
