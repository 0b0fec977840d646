"""The chain DP of a model's layered graph (`solver.candidates`): the cheapest path of
`cost + lam * worst` for a batch of apps, and the figures of a path."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.fastcost import INF

# Up to this many apps, `chain_dp` reads its least moves by a reduction and walks its
# paths back in Python, not in numpy (faster below it, slower above: bench/RESULTS.md).
_FEW = 8


@dataclass(slots=True)
class _Chain:
    """Cost arrays of one model for a batch of apps: block terms and transfer terms."""

    u: np.ndarray  # (A, n, K) cost of block i on host k, inf where not allowed
    uw: np.ndarray  # (A, n, K) worst-case ms of the same
    t: np.ndarray  # (A, n-1, K, K) cost of moving after block i from k to k', inf: no
    tw: np.ndarray  # (A, n-1, K, K)
    stages: np.ndarray  # (A,) max_stages


def chain_dp(ch: _Chain, lam: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cheapest path of `cost + lam * worst` for the apps in `rows`: (value, host per block).

    State per block: (segments used - 1, host). Staying on a host is free; moving costs the
    transfer and uses one more segment. Ties keep the lower host index, then staying.
    """
    # All apps (the first pass) read the arrays, not a copy; `cost + lam * worst` is
    # built in place, the same floats (IEEE addition commutes).
    whole = np.array_equal(rows, np.arange(ch.u.shape[0]))
    cu, cuw, ct, ctw, stages = (ch.u, ch.uw, ch.t, ch.tw, ch.stages)
    if not whole:
        cu, cuw, ct, ctw, stages = (x[rows] for x in (cu, cuw, ct, ctw, stages))
    u = np.where(np.isinf(cu), 0.0, cuw)
    u *= lam[:, None, None]
    u += cu
    t = np.where(np.isinf(ct), 0.0, ctw)
    t *= lam[:, None, None, None]
    t += ct
    na, n, k = u.shape
    if k == 0:  # no app of this group has a host it may use: nothing to choose
        return np.full(na, INF), np.zeros((na, n), dtype=np.int64)
    s_max = int(stages.max()) if na else 1
    v = np.full((na, s_max, k), INF)
    v[:, 0, :] = u[:, 0, :]
    args: list[np.ndarray] = []
    moves: list[np.ndarray] = []
    with np.errstate(invalid="ignore"):
        for i in range(n - 1):
            if s_max > 1:
                mv_all = v[:, :-1, :, None] + t[:, i, None, :, :]
                arg = mv_all.argmin(axis=2)
                # The value at the argmin (the same float either way: no NaN arises from
                # sums of non-negative terms): for a few apps a reduction reads it faster
                # than a gather by the index, for many the gather (the reduction strides).
                if na <= _FEW:
                    mv = mv_all.min(axis=2)
                else:
                    mv = np.take_along_axis(mv_all, arg[:, :, None, :], axis=2)[:, :, 0, :]
                moved = mv < v[:, 1:, :]
                np.copyto(v[:, 1:, :], mv, where=moved)
                args.append(arg)
                moves.append(moved)
            v += u[:, i + 1, None, :]
    allowed = np.arange(s_max)[None, :] < stages[:, None]
    v = np.where(allowed[:, :, None], v, INF)
    flat = v.reshape(na, -1)
    best = flat.argmin(axis=1)
    value = flat[np.arange(na), best]
    s_cur, k_cur = np.divmod(best, k)
    path = np.empty((na, n), dtype=np.int64)
    if s_max == 1:  # one segment: every block on the host it ends on
        path[:] = k_cur[:, None]
    elif na <= _FEW:
        # Walked back app by app: on arrays of an app or two (a re-plan's touched apps, a
        # Lagrangian step's rows), numpy's cost per call was most of the walk.
        for a, (seg, host) in enumerate(zip(s_cur.tolist(), k_cur.tolist(), strict=True)):
            row = [host] * n
            for i in range(n - 2, -1, -1):
                if seg > 0 and moves[i][a, seg - 1, host]:
                    host = int(args[i][a, seg - 1, host])
                    seg -= 1
                row[i] = host
            path[a] = row
    else:
        path[:, n - 1] = k_cur
        idx = np.arange(na)
        for i in range(n - 2, -1, -1):
            sm1 = np.maximum(s_cur - 1, 0)
            moved = (s_cur > 0) & moves[i][idx, sm1, k_cur]
            prev = np.where(moved, args[i][idx, sm1, k_cur], k_cur)
            s_cur = np.where(moved, s_cur - 1, s_cur)
            k_cur = prev
            path[:, i] = k_cur
    return value, path


def path_figures(ch: _Chain, rows: np.ndarray, path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cost, worst ms) of each app's path, without the Lagrangian weight."""
    na, n = path.shape
    if n == 0:
        return np.zeros(na), np.zeros(na)
    # Each term gathered for every block at once, then summed block by block in the order
    # of the path (a block, then the move after it): `cumsum` adds left to right, so these
    # are the floats of adding them one by one, which a reduction need not give.
    r, blocks = rows[:, None], np.arange(n)
    cost = np.empty((na, 2 * n - 1))
    worst = np.empty((na, 2 * n - 1))
    cost[:, 0::2] = ch.u[r, blocks, path]
    worst[:, 0::2] = ch.uw[r, blocks, path]
    if n > 1:
        here, there = path[:, :-1], path[:, 1:]
        stay = here == there
        cost[:, 1::2] = np.where(stay, 0.0, ch.t[r, blocks[:-1], here, there])
        worst[:, 1::2] = np.where(stay, 0.0, ch.tw[r, blocks[:-1], here, there])
    return np.cumsum(cost, axis=1)[:, -1], np.cumsum(worst, axis=1)[:, -1]


__all__ = ["chain_dp", "path_figures"]
