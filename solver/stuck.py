"""Where the heuristic's greedy assignment got stuck: the app it could not place, the
apps around what that app overflowed, and, when the host sets are complete, a proof that
their least use exceeds it (`solver.verdict`), for the exact steps that follow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar

import numpy as np

from solver.candidates import Candidate
from solver.fastcost import CandidateRoutes, Fleet, Score
from solver.problem import Problem
from solver.reasons import Code, Reason
from solver.scenario import App
from solver.verdict import RESOURCE_KINDS, Stuck, resource_name, use_proof


class Entry(Protocol):
    """One app of the heuristic's state (`solver.heuristic._App`)."""

    @property
    def app(self) -> App: ...
    @property
    def routes(self) -> CandidateRoutes: ...
    @property
    def candidates(self) -> list[Candidate]: ...
    @property
    def chosen(self) -> int: ...
    @property
    def tipped(self) -> bool: ...


E = TypeVar("E", bound=Entry)


class State(Protocol[E]):
    """What this needs of the heuristic's state (`solver.heuristic._State`)."""

    @property
    def problem(self) -> Problem: ...
    @property
    def fleet(self) -> Fleet: ...
    @property
    def complete(self) -> bool: ...
    @property
    def fixed_load(self) -> np.ndarray: ...
    @property
    def load(self) -> np.ndarray: ...
    @property
    def cap(self) -> np.ndarray: ...
    @property
    def apps(self) -> Mapping[str, E]: ...
    def score(self, e: E, j: int) -> Score: ...
    def overflow(self, sc: Score) -> list[int]: ...


def resources_of(f: Fleet, resources: list[int]) -> tuple[Code, str]:
    """The code of the first of these resources (`fastcost` numbering) and their names."""
    code = RESOURCE_KINDS[min(resources[0] // f.n, 3)] if resources else Code.COMPUTE
    return code, ", ".join(resource_name(f, r) for r in resources) or "shared capacity"


def stuck_at(st: State[E], e: E, code: Code, names: str) -> Stuck:
    """The app the greedy could not place; the apps on what its candidates overflowed or
    sourced at that battery or link; and a proof when their least use exceeds it."""
    f = st.fleet
    over = {r for j in range(len(e.candidates)) for r in st.overflow(st.score(e, j))}
    ends: set[str] = set()
    for r in over:
        if 2 * f.n <= r < 3 * f.n:
            ends.add(f.ids[r - 2 * f.n])
        elif r >= 3 * f.n:
            ends.update((f.links[r - 3 * f.n].a, f.links[r - 3 * f.n].b))
    neighbours = []
    for other in st.apps.values():
        sc = st.score(other, other.chosen) if other.chosen >= 0 else None
        on = sc is not None and bool(over & set(sc.resources[sc.amounts > 0].tolist()))
        if on or other.app.source in ends or other.app.sink_id in ends:
            neighbours.append(other.app.id)
    proof = None
    first = [r for r in st.overflow(st.score(e, 0)) if not f.n <= r < 2 * f.n]  # no memory
    if st.complete and first:
        # What it overflowed first, then its camera's battery and links (the usual pair
        # that binds together: running on the camera drains one, sending the other).
        src = f.index[e.app.source]
        own = [2 * f.n + src, src] + [
            3 * f.n + k for k, lk in enumerate(f.links) if f.ids[src] in (lk.a, lk.b)
        ]
        rows = list(dict.fromkeys(first + own))[:4]
        room = {r: float(f.capacity[r] - st.fixed_load[r]) for r in rows}
        group = {e.app.id, *neighbours}
        routed = [(x.app, x.routes) for x in st.apps.values() if x.app.id in group]
        named = {r: (RESOURCE_KINDS[min(r // f.n, 3)], resource_name(f, r)) for r in rows}
        proof = use_proof(st.problem, f, routed, room, named, e.app.id)
    return Stuck(e.app.id, tuple(neighbours), names, code, proof)


def no_room(st: State[E], e: E, clear: bool = False) -> tuple[Reason, str]:
    """The reason a solve blames the stuck app with when no option of its fits (the
    family and names of what its cheapest candidate overflows), with `held_clear` set to
    `clear`; and those names."""
    code, names = resources_of(st.fleet, st.overflow(st.score(e, 0)))
    what = f"app {e.app.id}: no placement found within shared capacity ({names})"
    return Reason(code, what, e.app.id, held_clear=clear), names


def overflows_unheld(st: State[E], sc: Score) -> bool:
    """Whether a placement's use overflows something even without the held apps' load."""
    rows = sc.resources
    return bool(np.any(st.load[rows] - st.fixed_load[rows] + sc.amounts > st.cap[rows]))


def held_clear(st: State[E], e: E) -> bool:
    """Whether each of the stuck app's candidates, and each path its repair tried
    (`tipped` says one did not), overflows something even without the held apps' load.
    Then re-placing the held apps as well (what an incremental re-solve falls back on,
    `solver.incremental.resolve`) makes none of them fit: what stands in its way is its
    own use and the free apps'. A judgment over what the heuristic tried, not a proof over
    every placement like `Reason.alone`: over a day of the 200-device fleet, each of the
    497 re-solves of every app it spared failed on the same app with the same reason, and
    each of the 11 it spares since `solver.partial.alone` asks the same of such an app
    before the solve (bench/RESULTS.md)."""
    options = range(len(e.candidates))
    return (
        bool(options)
        and not e.tipped
        and all(overflows_unheld(st, st.score(e, j)) for j in options)
    )


__all__ = [
    "Entry",
    "State",
    "held_clear",
    "no_room",
    "overflows_unheld",
    "resources_of",
    "stuck_at",
]
