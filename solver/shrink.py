"""A fleet less some devices or links: the old problem's tables restated on it.

After a lost device or a removed link every route and cost that avoids what is gone still
holds (`solver.incremental`): these helpers carry them over with the links renumbered,
one pass over the fleet each, without testing every device or link against a set of the
kept ones (a 10,000-device fleet has 30,000 links, and a re-solve after a loss must stay
under 200 ms).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TypeVar

from solver.costs import Cost
from solver.evaluate import AppRecord, Evaluation, PlanParts
from solver.fastcost import Fleet
from solver.problem import Problem
from solver.scenario import Link

V = TypeVar("V")


def kept_links(old: Sequence[Link], new: Sequence[Link]) -> dict[int, int]:
    """Old link index -> new, when `new` is `old` less some links, the same objects in the
    same order: one walk down both, matched by identity (no dict of every link's id)."""
    kept: dict[int, int] = {}
    j, m = 0, len(new)
    for k, lk in enumerate(old):
        if j < m and new[j] is lk:
            kept[k] = j
            j += 1
    assert j == m, "the new links are not the old ones less some"
    return kept


def adjacency_without(adj: list[list[int]], fleet: Fleet, lost: Collection[str]) -> list[list[int]]:
    """Device-index adjacency lists less the `lost` devices, the others renumbered."""
    gone = sorted(fleet.index[d] for d in lost if d in fleet.index)
    if len(gone) == 1:  # the usual loss, one device: index arithmetic, no lookups
        j = gone[0]
        return [[x - (x > j) for x in nbs if x != j] for i, nbs in enumerate(adj) if i != j]
    kept_at = {i: k for k, i in enumerate(sorted(set(range(len(adj))).difference(gone)))}
    return [[kept_at[x] for x in adj[i] if x in kept_at] for i in kept_at]


def cost_with(
    c: Cost,
    compute_s: dict[str, float],
    joules: dict[str, float],
    memory_mb: dict[str, float],
    link_mb: dict[int, float],
) -> Cost:
    # dataclasses.replace, without its introspection (thousands of calls per re-solve).
    return Cost(
        c.energy_j, c.carbon_g, c.expected_ms, c.worst_ms, compute_s, joules, memory_mb,
        link_mb, c.unroutable,
    )  # fmt: skip


def restated_evaluation(
    old: Problem, new: Problem, lost: Collection[str], renumber: dict[int, int], same_objects: bool
) -> Evaluation | None:
    """The old problem's last evaluation restated on the new fleet, which lost devices or
    links: totals without them, links renumbered, each app's cost the very object carried
    into `new.app_costs` where there is one, so that `evaluate(base=...)` reuses it."""
    base = old.derived.get("evaluation")
    if not isinstance(base, Evaluation) or base.scenario is not old.scenario:
        return None
    gone = set(range(len(old.scenario.links))).difference(renumber)

    def moved(c: Cost) -> Cost:
        return cost_with(
            c,
            {d: v for d, v in c.compute_s.items() if d not in lost},
            {d: v for d, v in c.joules.items() if d not in lost},
            {d: v for d, v in c.memory_mb.items() if d not in lost},
            {renumber[k]: v for k, v in c.link_mb.items() if k not in gone},
        )

    records = {}
    for app_id, rec in base.records.items():
        was, now = old.app_costs.get(app_id), new.app_costs.get(app_id)
        carried = was is not None and was[1] is rec.cost and now is not None and now[0] is was[0]
        cost = now[1] if carried and now is not None else moved(rec.cost)
        records[app_id] = AppRecord(
            rec.app, rec.placement, cost, rec.migration_mb, rec.term, rec.violations
        )
    # Links keep their order: the kept old indices, ascending, are the new 0, 1, ...
    order = sorted(renumber, key=renumber.__getitem__)
    mbit = [base.link_mbit[k] for k in order]
    link_util = dict(enumerate(map(base.link_utilization.__getitem__, order)))
    parts = None
    if base.parts is not None:
        parts = PlanParts(
            dict(base.parts.apps),
            less(base.parts.devices, lost),
            [base.parts.links[k] for k in order],
        )
    if same_objects:
        # The new scenario's devices and links are the old ones less those gone, the
        # same objects in the same order: the frame is them.
        update = {"devices": new.scenario.devices, "links": new.scenario.links}
    else:
        update = {
            "devices": tuple(d for d in old.scenario.devices if d.id not in lost),
            "links": tuple(lk for k, lk in enumerate(old.scenario.links) if k in renumber),
        }
    frame = old.scenario.model_copy(update=update)
    return Evaluation(
        base.objective,
        {a: r.cost for a, r in records.items()},
        {a: r.migration_mb for a, r in records.items()},
        less(base.utilization, lost),
        less(base.memory_mb, lost),
        less(base.power_w, lost),
        link_util,
        [],
        scenario=frame,
        records=records,
        link_mbit=mbit,
        device_violations=less(base.device_violations, lost),
        link_violations={renumber[k]: v for k, v in base.link_violations.items() if k in renumber},
        parts=parts,
    )


def less(per_device: Mapping[str, V], lost: Collection[str]) -> dict[str, V]:
    """A per-device table less the `lost` devices, the others in their order (a copy,
    then a few deletions: no test per device of a fleet of thousands)."""
    out = dict(per_device)
    for d in lost:
        out.pop(d, None)
    return out


__all__ = ["adjacency_without", "cost_with", "kept_links", "less", "restated_evaluation"]
