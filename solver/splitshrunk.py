"""An app's candidates on a fleet that lost devices, taken from its candidates before.

`solver.splits.AppSplits` lays an app out from a search from its source and one towards
its sink, over every device of an allowed tier. When devices go (a camera whose pack
switched it off), taking paths away never makes another path better, so every route that
crosses none of them is still the route a fresh search finds (`RouteTable.shrunk` keeps
them on the same ground); the other arrays are per host. So when no route of a host that
stays, nor the source's to the sink, crosses a device that went, the layout on the new
fleet is the old one without the rows of the hosts that went, its traced links
renumbered: the same floats, array for array (tests/solver/test_splitshrunk.py), at a
fraction of the cost. The hosts' and the source's figures are read again from the fleet
of now; the routes' RTT, joules per MB and untraced Mbit/s are the caller's to vouch for
(`links_unchanged`).

On the simulator's 200-device fleet, neurosurgeon lays its hundred apps out again at
each of a day's 18 devices switched off, each layout two searches over the fleet and
the arrays of 200 hosts (bench/RESULTS.md).
"""

from __future__ import annotations

import copy
from collections.abc import Collection

import numpy as np

from solver.problem import Problem
from solver.scenario import App, Link
from solver.splitroutes import Indices
from solver.splits import AppSplits, models_of

Reads = dict[tuple[str, str], tuple[float, float, float | None]]


def link_reads(links: Collection[Link], traced: Collection[tuple[str, str]]) -> Reads:
    """What a route reads of each link (by its ends): RTT, joules per MB, and the Mbit/s
    of an untraced one (a traced one's is read from the figure vector)."""
    return {
        (lk.a, lk.b): (lk.rtt_ms, lk.j_per_mb, None if (lk.a, lk.b) in traced else lk.mbps)
        for lk in links
    }


def links_unchanged(before: Reads, now: Reads) -> bool:
    """Whether every link of now is one of before, read the same (`link_reads` of each)."""
    return all(before.get(key) == reads for key, reads in now.items())


def shrunk(
    was: AppSplits, problem: Problem, app: App, gone: Collection[str], renumber: Indices
) -> AppSplits | None:
    """`was` on `problem`, a fleet that is `was`'s less the devices `gone` (and their
    links), its links otherwise read the same (`links_unchanged`); `renumber[k]`: the
    slot now of traced slot k (-1: gone). None when a route kept would cross a device
    gone, or the app, its hosts or its models are not those of `was`."""
    s, t = app.source, app.sink_id
    if app != was.app or s in gone or t in gone or not was.st_crosses.isdisjoint(gone):
        return None
    hosts = problem.hosts(app)
    if tuple(hosts) != tuple(d for d in was.host_ids if d not in gone):
        return None
    rows = [j for j, d in enumerate(was.others) if d not in gone]
    if any(not was.crosses[j].isdisjoint(gone) for j in rows):
        return None
    shapes = problem.cost.shapes
    if app.cascade is None and (
        [m.id for m in was.models] != models_of(problem, app)
        or any(shapes[m.id] is not m.shape and shapes[m.id] != m.shape for m in was.models)
    ):
        return None
    new = copy.copy(was)  # the models and the cascade's combinations: shared
    keep = np.array(rows, dtype=np.int64)
    new.app = app
    new.others = [was.others[j] for j in rows]
    new.host_ids = tuple(hosts)
    new.crosses = [was.crosses[j] for j in rows]
    try:
        new.sd = was.sd.taken(keep, renumber)
        new.dt = was.dt.taken(keep, renumber)
        new.st = was.st.taken(np.zeros(1, dtype=np.int64), renumber)
    except ValueError:
        return None
    new._figures(problem)
    if app.cascade is not None:
        new.stages = new._cascade_consts(problem)
    new._routed()
    return new


__all__ = ["link_reads", "links_unchanged", "shrunk"]
