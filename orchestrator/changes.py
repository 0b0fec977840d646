"""What changed between two scenario documents, as the solver's incremental `Change`.

A re-plan derives the problem of now from one solved before (`orchestrator.replacement`),
and a pass of relaxed searches derives its first problem from the last one's
(`orchestrator.degrade`): both hand the solver what changed, not the whole fleet.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any

import solver
from orchestrator.worker_cache import index_of


def change_between(old: dict[str, Any], new: dict[str, Any]) -> solver.Change:
    """What changed from the scenario the plan in force was solved with to the scenario of
    now, as the solver's incremental `Change` (it picks the apps to re-place)."""
    # A record that is the very object it was is the same (the simulator and the scenario
    # builder hand on what did not change): two re-plans a second compared every device,
    # link and app of a fleet field by field.
    was_ix, now_ix = index_of(old), index_of(new)
    before, after = was_ix.devices, now_ix.devices
    devices = {
        d: rec for d, rec in after.items()
        if (was := before.get(d)) is not None and was is not rec and was != rec
    }  # fmt: skip
    lost = frozenset(before.keys() - after.keys())
    lb, la = was_ix.links, now_ix.links
    changed = {
        k: _fields_changed(was, rec) for k, rec in la.items()
        if (was := lb.get(k)) is not None and was is not rec and was != rec
    }  # fmt: skip
    apps_before, apps_after = was_ix.apps, now_ix.apps
    added_apps = tuple(
        a for i, a in apps_after.items() if (was := apps_before.get(i)) is not a and was != a
    )
    return solver.Change(
        devices=devices,
        lost_devices=lost,
        links=changed,
        removed_links=frozenset(lb.keys() - la.keys()),
        added_devices=tuple(after[d] for d in after.keys() - before.keys()),
        added_links=tuple(la[k] for k in la.keys() - lb.keys()),
        added_apps=added_apps,
        removed_apps=frozenset(apps_before.keys() - apps_after.keys()),
    )


def in_order_of(problem: solver.Problem, doc: Mapping[str, Any]) -> bool:
    """Whether `problem` has `doc`'s devices, links and apps, in the document's order:
    the very problem a fresh parse of it gives (one derived with `solver.apply_change`
    has the base's order, new records last)."""
    scn, ix = problem.scenario, index_of(doc)
    # The index's keys are the document's ids in its order, and `attrgetter` reads the
    # problem's in C: two lists of a fleet's ids built in Python at every re-plan were a
    # fifth of deriving its problem. An id twice in the document is one key of its index:
    # the lengths tell it, and the fresh parse says what is wrong.
    return (
        len(ix.devices) == len(doc["devices"])
        and len(ix.links) == len(doc.get("links", []))
        and len(ix.apps) == len(doc.get("apps", []))
        and list(map(_ID, scn.devices)) == list(ix.devices)
        and list(map(_ENDS, scn.links)) == list(ix.links)
        and list(map(_ID, scn.apps)) == list(ix.apps)
    )


_ID, _ENDS = attrgetter("id"), attrgetter("a", "b")


def _fields_changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields of a link that changed, not its whole record: the solver takes a change
    naming `rtt_ms` for one that may re-route (`solver.Change.reroutes`), and a link whose
    bandwidth alone moved must not void every route and every app's cost. A field dropped
    from the record hands on the whole record (the change replaces fields, it removes none)."""
    if before.keys() - after.keys():
        return after
    return {k: v for k, v in after.items() if before.get(k) != v or k not in before}


__all__ = ["change_between", "in_order_of"]
