"""The routes of an app's candidates as arrays (`solver.splits`): which exist, which move
anything, their RTT, joules per MB and Mbit/s, the traced links among theirs read from a
figure vector (`figure_vector`), so that the same routes are figured at any moment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from solver.routes import Route

Array = NDArray[np.float64]
Indices = NDArray[np.int64]
# What a transfer over a route reads, by array (`Routes.reads`, `Routes.same_reads`).
_ROUTE_READS = ("ok", "move", "rtt", "jpm", "base")


def figure_vector(values: Sequence[float]) -> Array:
    """The traced links' figures, by slot, and the +inf slot (-1) that pads routes."""
    return np.array([*values, np.inf], dtype=float)


class Routes:
    """A list of routes (None: none; `same`: sender is receiver, nothing moves) as arrays."""

    def __init__(
        self,
        routes: Sequence[Route | None],
        same: Sequence[bool],
        slots: Mapping[int, int],
        link_mbps: Sequence[float],
    ) -> None:
        n = len(routes)
        pairs = list(zip(routes, same, strict=True))
        self.ok = np.array([r is not None or s for r, s in pairs], dtype=bool)
        self.move = np.array([r is not None and not s for r, s in pairs], dtype=bool)
        self.rtt = np.array([r.rtt_ms if r is not None else 0.0 for r in routes], dtype=float)
        self.jpm = np.array([r.j_per_mb if r is not None else 0.0 for r in routes], dtype=float)
        self.half = self.rtt / 2.0
        if not slots:  # nothing traced: a route's Mbit/s is its own (the least of its links')
            self.slots = [frozenset[int]()] * n
            self.base = np.array([r.mbps if r is not None else np.inf for r in routes])
            self.idx = np.full((n, 1), -1, dtype=np.int64)
            return
        self.slots = [
            frozenset(slots[k] for k in r.links if k in slots) if r else frozenset() for r in routes
        ]
        width = max((len(x) for x in self.slots), default=0)
        self.base = np.full(n, np.inf)
        self.idx = np.full((n, max(width, 1)), -1, dtype=np.int64)
        for j, r in enumerate(routes):
            if r is None:
                continue
            traced = sorted(self.slots[j])
            rest = [link_mbps[k] for k in r.links if k not in slots]
            self.base[j] = min(rest) if rest else np.inf
            self.idx[j, : len(traced)] = traced

    def taken(self, rows: Indices, renumber: Indices) -> Routes:
        """Routes `rows` of these, their traced slots renumbered (`renumber[k]`: slot k's
        number now; none of theirs may be gone): the same floats as a fresh layout of
        those routes (each array is per route)."""
        new = Routes.__new__(Routes)
        for name in (*_ROUTE_READS, "half"):
            setattr(new, name, getattr(self, name)[rows])
        idx = self.idx[rows]
        # Both branches of np.where are read: slot -1 (none) must index something, and a
        # fleet with no traced link has nothing to renumber.
        new.idx = np.where(idx >= 0, renumber[np.maximum(idx, 0)], -1) if len(renumber) else idx
        if (new.idx[idx >= 0] < 0).any():
            raise ValueError("a route kept crosses a traced link that is gone")
        new.slots = [frozenset(int(renumber[k]) for k in self.slots[j]) for j in rows.tolist()]
        return new

    def reads(self, j: int, links: Sequence[tuple[str, str]]) -> tuple[object, ...]:
        """What a transfer over route j reads: whether it exists and moves anything, its
        RTT, joules per MB and untraced Mbit/s, and its traced links (by link, `links`
        being the slots')."""
        traced = frozenset(links[k] for k in self.slots[j])
        return (*(getattr(self, name)[j].item() for name in _ROUTE_READS), traced)

    def same_reads(
        self,
        other: Routes,
        mine: Indices,
        theirs: Indices,
        links: Sequence[tuple[str, str]],
        their_links: Sequence[tuple[str, str]],
    ) -> bool:
        """Whether `reads` of each route `mine[i]` equals `other.reads` of `theirs[i]`
        (`links`, `their_links`: each side's slots), every route at once."""
        for name in _ROUTE_READS:
            if not np.array_equal(getattr(self, name)[mine], getattr(other, name)[theirs]):
                return False
        mine_slots, their_slots = self.slots, other.slots
        return all(
            frozenset(links[k] for k in mine_slots[i])
            == frozenset(their_links[k] for k in their_slots[j])
            for i, j in zip(mine.tolist(), theirs.tolist(), strict=True)
        )

    def mbps(self, figures: Array, at: Indices | None = None) -> Array:
        """Each route's Mbit/s at `figures` (`at`: of those routes alone, in that order)."""
        if at is None:
            return np.minimum(self.base, figures[self.idx].min(axis=1))
        return np.minimum(self.base[at], figures[self.idx[at]].min(axis=1))

    def ms(self, figures: Array, mb: Array) -> Array:
        """Transfer ms of each size in `mb` over each route: shape (routes, sizes); 0 where
        nothing moves."""
        mbps = self.mbps(figures)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = self.rtt[:, None] / 2.0 + 8000.0 * mb[None, :] / mbps[:, None]
        return np.where(self.move[:, None], t, 0.0)


__all__ = ["Array", "Indices", "Routes", "figure_vector"]
