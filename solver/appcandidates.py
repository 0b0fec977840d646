"""Each app's candidate routes and placements, carried from a problem to the next.

The heuristic's per-app work (`pick_hosts`, `candidate_routes`, the DP of `generate`)
reads the app, its models, the fleet's shape, the routes among its candidate hosts with
their links' figures, and its migration terms; never another app's placement, and never
a battery's level (candidates see no battery: the capacities, which do, are booked
afresh by every solve). A control plane re-plans a fleet every few seconds, and between
two re-plans a probe or two moved a link and a pack drained a little: most apps'
candidates are what they were. A re-plan that finds the plan in force broken solves two
or three times (held apps first, then every app, then without the app it blamed), and
each solve made every app's candidates again (bench/RESULTS.md, ninth session).

So a problem keeps them (`Problem.derived`), and `solver.apply_change` hands on those
still valid to the changed problem: none when the fleet's shape or a route changes, or a
device changes in more than its battery; and not an app's whose candidate routes
cross a link whose figures changed (kept for an app the changed problem lacks: it may come
back). An entry is taken only for the very `App` object and the same migration terms
(`Migration.key`). The candidates are the same floats either
way: `generate`'s DP works app by app on its rows.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from solver.candidates import Candidate
from solver.costs import repriced
from solver.fastcost import CandidateRoutes
from solver.ownpack import PROVEN
from solver.problem import Problem
from solver.scenario import App
from solver.unmet import UNMET

_KEY = "app_candidates"


@dataclass(frozen=True, slots=True)
class Entry:
    app: App
    migration: object  # `Migration.key` of the app when it was made
    routes: CandidateRoutes
    complete: bool  # every allowed host is a candidate host
    candidates: tuple[Candidate, ...]  # as `generate` leaves them: unique, cheapest first
    lower: float
    slo_only: bool


class Memo:
    """The entries of one problem, by app id."""

    __slots__ = ("entries",)

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries: dict[str, Entry] = entries if entries is not None else {}

    def get(self, problem: Problem, app: App) -> Entry | None:
        e = self.entries.get(app.id)
        if e is None or e.app is not app:
            return None
        key = problem.migration.key(app.id)
        return e if e.migration is key or e.migration == key else None

    def put(self, entry: Entry) -> None:
        self.entries[entry.app.id] = entry


def memo_of(problem: Problem) -> Memo:
    """The problem's entries (made empty on first use)."""
    memo = problem.derived.get(_KEY)
    if not isinstance(memo, Memo):
        memo = problem.derived[_KEY] = Memo()
    return memo


# Apps validated from a raw record, by the record's identity, with a copy to tell it is
# unchanged: a caller that hands the same record on (the simulator's scenario of now, a
# relaxed search's app) gets the same `App`, and with it the candidates kept for it.
_VALIDATED: dict[int, tuple[Mapping[str, Any], dict[str, Any], App]] = {}
_KEEP_VALIDATED = 4096


def app_of(raw: Mapping[str, Any]) -> App:
    """`App.model_validate(raw)`, the same object for the same unchanged record."""
    hit = _VALIDATED.get(id(raw))
    if hit is not None and hit[0] is raw and hit[1] == raw:
        return hit[2]
    app = App.model_validate(raw)
    _VALIDATED[id(raw)] = (raw, copy.deepcopy(dict(raw)), app)
    if len(_VALIDATED) > _KEEP_VALIDATED:
        # The oldest out; a thread of the API's pool may have changed it meanwhile.
        with contextlib.suppress(RuntimeError, StopIteration):
            _VALIDATED.pop(next(iter(_VALIDATED)), None)
    return app


def carry(
    old: Problem,
    new: Problem,
    reshaped: bool,
    devices: Collection[str],
    refigured: Collection[int],
    joules: bool,
) -> None:
    """Hand `old`'s entries still valid on to `new`: none when the change `reshaped` the
    fleet (a device or link added, lost or removed, an rtt changed) or changed one of
    `devices` in more than its battery (`solver.costs.repriced`, the rule that keeps the
    apps' costs); else those of the apps `new` has whose
    candidate routes cross none of the links `refigured` (their figures changed). The
    verdicts kept on the problem go with them, one store for both problems (each verdict
    says what figures it read): the verdicts that no placement meets an app's SLO
    (`solver.unmet`), and the own-pack proofs (`solver.ownpack`) unless a link's `joules`
    per MB changed (both of their bounds read them)."""
    if reshaped or repriced(old.cost.devices, new.cost.devices, devices):
        return  # a device changed in what a candidate reads (anything but its battery)
    for store in (UNMET, *(() if joules else (PROVEN,))):
        if old.derived.get(store):
            new.derived[store] = old.derived[store]
    memo = old.derived.get(_KEY)
    if not isinstance(memo, Memo) or not memo.entries:
        return
    moved = frozenset(refigured)
    if not moved:
        # The same figures (apps removed, say, or packs drained): one memo for both, so
        # that what a solve of the new problem makes is there for the next change of the
        # old one (a re-plan derives the next re-plan's problem from its problem before
        # the apps it set aside were taken out).
        new.derived[_KEY] = memo
        return
    # An app the new problem lacks, or has as another `App`, keeps its entry too (taken
    # only for the very `App` it was made for): an app set aside, or searched for alone
    # (`orchestrator.degrade`), comes back as that `App` (`app_of`).
    new.derived[_KEY] = Memo({a: e for a, e in memo.entries.items() if not moved & e.routes.links})


__all__ = ["Entry", "Memo", "app_of", "carry", "memo_of"]
