"""Neurosurgeon's choice among an app's splits (`solver.splits`): the candidates taken in
the order of their bounds and scored by the baseline's own scorer until the next bound is
above the best key found (`choose`); or, given the choice of a moment before
(`choose_near`), that one scored first, and only the candidates whose bound at every
figure's best might reach it bounded at the figures of now: most of the time none does,
and the choice stands without bounding the rest (a simulator re-decides each app at
every bandwidth that moves).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from solver.plan import Placement
from solver.splitroutes import Array, Indices
from solver.splits import AppSplits, Key


def choose(
    splits: AppSplits, figures: Array, key: Callable[[Placement], Key]
) -> tuple[Placement, Key]:
    """The baseline's choice among `splits`' candidates, `key` being its scorer's key at
    `figures`: candidates in the order of their bounds, each scored until the next bound
    is above the best key; equal keys keep the first in the baseline's order."""
    broken, value = splits.bounds(figures)
    best: Placement | None = None
    best_key: Key | None = None
    best_i = -1
    if np.isnan(value).any():
        order = np.lexsort((value, broken))
    else:
        # The candidates the loop below can reach: the first in the order of bounds
        # (least violations, then least value, then first in the baseline's order), and
        # those whose bound is at most its key (the best key only falls from there, and
        # the loop stops at the first bound above it), in the order lexsort gives them
        # among all (it is stable), without sorting every candidate.
        least = broken.min()
        at = np.flatnonzero(broken == least)
        best_i = int(at[np.argmin(value[at])])
        best = splits.candidate(best_i)
        best_key = k0 = key(best)
        reach = (broken < k0[0]) | ((broken == k0[0]) & (value <= k0[1]))
        reach[best_i] = False
        if not reach.any():
            # No other bound is at or below its key (most choices: the least bound's
            # candidate is the choice).
            return best, best_key
        reach[best_i] = True
        sub = np.flatnonzero(reach)
        order = sub[np.lexsort((value[sub], broken[sub]))][1:]  # the first is scored
    return _scan(splits, order, broken[order], value[order], key, (best, best_key, best_i))


def _scan(
    splits: AppSplits,
    order: Indices,
    broken: Indices,
    value: Array,
    key: Callable[[Placement], Key],
    best: tuple[Placement | None, Key | None, int],
) -> tuple[Placement, Key]:
    """The candidates `order` (with their bounds), in that order of their bounds, scored
    until the next bound is above the best key, from `best` (placement, key, index);
    equal keys keep the first in the baseline's order."""
    p_best, k_best, i_best = best
    # Most choices stop after a candidate or two: the order is read a few at a time.
    for start in range(0, len(order), 8):
        done = False
        at = slice(start, start + 8)
        head = (order[at].tolist(), broken[at].tolist(), value[at].tolist())
        for i, b, v in zip(*head, strict=True):
            if k_best is not None and (b, v) > k_best:
                done = True
                break
            p = splits.candidate(i)
            k = key(p)
            if k_best is None or k < k_best or (k == k_best and i < i_best):
                p_best, k_best, i_best = p, k, i
        if done:
            break
    assert p_best is not None and k_best is not None
    return p_best, k_best


class AtBest:
    """Bounds on every candidate's key that hold at any figures (`AppSplits.bounds` at
    every traced link's best), sorted: the candidates whose bound is at most a key are
    a prefix (`upto`)."""

    def __init__(self, broken: Indices, value: Array) -> None:
        self.broken, self.value = broken, value
        self.nan = bool(np.isnan(value).any())  # a bound that says nothing: none is cut
        self.order = np.lexsort((value, broken))
        self._b, self._v = broken[self.order], value[self.order]

    def upto(self, key: Key) -> Indices:
        """The candidates whose bound is at most `key` (as (violations, value) compare)."""
        b, v = key
        lo, hi = np.searchsorted(self._b, b, "left"), np.searchsorted(self._b, b, "right")
        return self.order[: lo + int(np.searchsorted(self._v[lo:hi], v, "right"))]


def choose_near(
    splits: AppSplits,
    figures: Array,
    key: Callable[[Placement], Key],
    near: Placement | None,
    lower: AtBest,
) -> tuple[Placement, Key]:
    """`choose(splits, figures, key)`, knowing `near`, a likely choice (the last one),
    and `lower`, bounds of every candidate that hold at any figures. A candidate can beat
    `near`, or tie it from before it in the baseline's order, only where its bound is at
    most the key of `near`: when none other than `near` is, at the figures of now, `near`
    is the choice."""
    i = splits.index(near) if near is not None and not lower.nan else None
    if near is None or i is None:
        return choose(splits, figures, key)
    k = key(near)
    idx = lower.upto(k)
    idx = idx[idx != i]
    if idx.size:
        b, v = splits.bounds_at(figures, idx)
        if np.isnan(v).any():
            return choose(splits, figures, key)
        reach = (b < k[0]) | ((b == k[0]) & (v <= k[1]))
        if reach.any():
            # The choice, and any candidate that ties it from before it, has a key at
            # most that of `near`, so a bound at most it: one of these.
            sub, b, v = idx[reach], b[reach], v[reach]
            o = np.lexsort((sub, v, b))
            return _scan(splits, sub[o], b[o], v[o], key, (near, k, i))
    return near, k


__all__ = ["AtBest", "choose", "choose_near"]
