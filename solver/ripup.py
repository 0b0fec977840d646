"""Rip-up and re-place, for an app the heuristic's greedy assignment could not place.

Apps are placed one at a time, each on its cheapest candidate that fits what the earlier
ones left; an app that comes late can find its camera's uplink or battery taken by apps
that had other choices. Forbidding what overflowed (`_State.reroute`) only moves the late
app; here the apps on what it overflowed make room instead: they are lifted off, the
stuck app takes one of its candidates, and they are placed again (their candidates, then
a fresh search around what is left). The first arrangement in which every one of them
fits is kept; when none does, everything is put back as it was. Greedy-level work (no
exact model), so it costs milliseconds where it fails, and the infeasible verdict that
follows is no slower.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

import numpy as np

from solver.candidates import Candidate
from solver.fastcost import Score

TRIES = 8  # candidates of the stuck app tried, cheapest first
MAX_LIFTED = 12  # apps lifted off at once, the heaviest users of what it overflowed


class Entry(Protocol):
    """One app of the heuristic's state (`solver.heuristic._App`)."""

    chosen: int
    candidates: list[Candidate]


E = TypeVar("E", bound=Entry)
E_in = TypeVar("E_in", bound=Entry, contravariant=True)


class State(Protocol[E_in]):
    """What rip-up needs of the heuristic's state (`solver.heuristic._State`)."""

    def score(self, e: E_in, j: int) -> Score: ...
    def fits(self, sc: Score) -> bool: ...
    def take(self, e: E_in, j: int) -> None: ...
    def release(self, e: E_in) -> None: ...
    def overflow(self, sc: Score) -> list[int]: ...
    def reroute(self, e: E_in, limit: float) -> int | None: ...


def _place(st: State[E], e: E) -> bool:
    for j in range(len(e.candidates)):
        if st.fits(st.score(e, j)):
            st.take(e, j)
            return True
    j_new = st.reroute(e, float("inf"))
    if j_new is None:
        return False
    st.take(e, j_new)
    return True


def ripup(st: State[E], stuck: E, placed: Iterable[E]) -> bool:
    """Place `stuck` by lifting the placed apps that use what its candidates overflow and
    placing them again after it; True when every one found room (the state then holds
    the new arrangement), else False with the state as it was."""
    over: set[int] = set()
    for j in range(min(len(stuck.candidates), TRIES)):
        over.update(st.overflow(st.score(stuck, j)))
    if not over:
        return False
    rows = np.array(sorted(over))
    use: dict[int, float] = {}
    others = [e for e in placed if e is not stuck and e.chosen >= 0]
    for k, e in enumerate(others):
        sc = st.score(e, e.chosen)
        amount = float(sc.amounts[np.isin(sc.resources, rows)].sum())
        if amount > 0:
            use[k] = amount
    lifted = [others[k] for k in sorted(use, key=lambda k: (-use[k], k))[:MAX_LIFTED]]
    if not lifted:
        return False
    before = [e.chosen for e in lifted]
    for e in lifted:
        st.release(e)
    tries = [j for j in range(min(len(stuck.candidates), TRIES)) if st.fits(st.score(stuck, j))]
    if not tries:
        j_new = st.reroute(stuck, float("inf"))  # a fresh search around what is left
        tries = [] if j_new is None else [j_new]
    for j in tries:
        st.take(stuck, j)
        done: list[E] = []
        for e in lifted:
            if not _place(st, e):
                break
            done.append(e)
        else:
            return True
        for e in done:
            st.release(e)
        st.release(stuck)
    for e, j in zip(lifted, before, strict=True):
        st.take(e, j)
    return False


__all__ = ["MAX_LIFTED", "TRIES", "ripup"]
