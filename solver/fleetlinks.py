"""What a device's own links say about every route through it, for the large-fleet bound
(`solver.fleetbound`): the least and most of its links' figures, the links themselves,
and the transfer figures they floor between a device and a virtual host."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from solver.fastcost import INF, CandidateRoutes, Fleet
from solver.routes import transfer_ms


def _ends(fleet: Fleet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each link's two ends (device indices) and its (rtt, joules per MB, Mbit/s)."""
    index = fleet.index
    a = np.array([index[lk.a] for lk in fleet.links], dtype=np.int64)
    b = np.array([index[lk.b] for lk in fleet.links], dtype=np.int64)
    figures = np.array([(lk.rtt_ms, lk.j_per_mb, lk.mbps) for lk in fleet.links]).reshape(-1, 3)
    return a, b, figures


@dataclass(frozen=True, slots=True)
class LinkBounds:
    """Per device, over its links: least rtt, least joules per MB, most Mbit/s (inf, inf,
    0 for a device with no link), and its only neighbour and link for a single link."""

    rtt: np.ndarray
    jpm: np.ndarray
    mbps: np.ndarray
    only: dict[int, tuple[int, int]]

    @staticmethod
    def of(fleet: Fleet) -> LinkBounds:
        a, b, figures = _ends(fleet)
        ends = np.concatenate([a, b])
        rtt = np.full(fleet.n, INF)
        jpm = np.full(fleet.n, INF)
        mbps = np.zeros(fleet.n)
        np.minimum.at(rtt, ends, np.tile(figures[:, 0], 2))
        np.minimum.at(jpm, ends, np.tile(figures[:, 1], 2))
        np.maximum.at(mbps, ends, np.tile(figures[:, 2], 2))
        degree = np.bincount(ends, minlength=fleet.n)
        only: dict[int, tuple[int, int]] = {}
        for k in np.flatnonzero((degree[a] == 1) | (degree[b] == 1)).tolist():
            x, y = int(a[k]), int(b[k])
            if degree[x] == 1:
                only[x] = (y, k)
            if degree[y] == 1:
                only[y] = (x, k)
        return LinkBounds(rtt, jpm, mbps, only)


def figures(fleet: Fleet, send: Any, rtt: Any, jpm: Any, mbps: Any) -> tuple[Any, Any, Any, Any]:
    """(c1, c0, w1, w0) of `fastcost.CandidateRoutes` for a route with these figures (floats
    or arrays; a device without links has inf rtt and no Mbit/s: not finite)."""
    wl = fleet.w.latency
    rtt, mbps = np.asarray(rtt, dtype=float), np.asarray(mbps, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        fixed_ms = transfer_ms(rtt, mbps, 0.0)
        ms_per_mb = transfer_ms(rtt, mbps, 1.0) - fixed_ms
        return jpm * send + wl * ms_per_mb, wl * fixed_ms, ms_per_mb, fixed_ms


@dataclass(frozen=True, slots=True)
class Links:
    """Every device's links, grouped by device (CSR): the other end and the link's rtt,
    joules per MB and Mbit/s; device d's are start[d]:start[d + 1]."""

    start: np.ndarray
    nb: np.ndarray
    rtt: np.ndarray
    jpm: np.ndarray
    mbps: np.ndarray

    @staticmethod
    def of(fleet: Fleet) -> Links:
        a, b, figures = _ends(fleet)
        ends, other = np.concatenate([a, b]), np.concatenate([b, a])
        order = np.argsort(ends, kind="stable")
        both = np.tile(figures, (2, 1))[order]
        start = np.zeros(fleet.n + 1, dtype=np.int64)
        np.cumsum(np.bincount(ends, minlength=fleet.n), out=start[1:])
        return Links(start, other[order], both[:, 0], both[:, 1], both[:, 2])


def completed(
    fleet: Fleet, lb: LinkBounds, links: Links, routes: CandidateRoutes
) -> CandidateRoutes:
    """`routes` with every transfer between two of its hosts that has no route figures
    given floors from the links at its ends. The route leaves by one of the sender's
    links and arrives by one of the receiver's: no less than either's least rtt and
    joules per MB, and than both's together when no link joins the two (then those are
    two links of the path); no faster than either's fastest link."""
    h = np.array(routes.hosts, dtype=np.int64)
    linked = np.isfinite(lb.rtt[h])
    fill = ~routes.ok & linked[:, None] & linked[None, :]
    if not fill.any():
        return routes
    apart = ~_adjacent(links, h)
    rtt, jpm = (
        np.where(apart, x[h][:, None] + x[h][None, :], np.maximum.outer(x[h], x[h]))
        for x in (lb.rtt, lb.jpm)
    )
    mbps = np.minimum.outer(lb.mbps[h], lb.mbps[h])
    c1, c0, w1, w0 = figures(fleet, fleet.send[h][:, None], rtt, jpm, mbps)
    return replace(
        routes,
        c1=np.where(fill, c1, routes.c1),
        c0=np.where(fill, c0, routes.c0),
        w1=np.where(fill, w1, routes.w1),
        w0=np.where(fill, w0, routes.w0),
        ok=routes.ok | fill,
    )


def _adjacent(links: Links, h: np.ndarray) -> np.ndarray:
    """(K, K): whether a link joins the two devices."""
    out = np.zeros((len(h), len(h)), dtype=bool)
    where = {int(x): k for k, x in enumerate(h.tolist())}
    for k, x in enumerate(h.tolist()):
        for y in links.nb[links.start[x] : links.start[x + 1]].tolist():
            j = where.get(y)
            if j is not None:
                out[k, j] = True
    return out


def coupled(
    links: Links,
    fleet: Fleet,
    smax: float,
    at: np.ndarray,
    far: tuple[np.ndarray, np.ndarray, np.ndarray],
    floor: np.ndarray,
    sent: np.ndarray,
    back: np.ndarray,
) -> None:
    """Raise the transfer figures between each device of `at` and each virtual host
    (`sent`: the device sending, `back`: the virtual host sending; (4, nv, len(at)) as
    `figures` gives them, in place). `far`: per virtual host, the least rtt and joules per
    MB from it to every device (nv, n) and its sending cost (nv,); `floor` (2, nv,
    len(at)): floors under a route's rtt and joules per MB.

    A route between x and a host the virtual host stands for passes one of x's links L:
    its rtt is at least L's plus the least from the virtual host to L's other end, and its
    Mbit/s at most L's. A camera whose least-rtt way out is its slow link pays that
    link's time, where the least rtt with the fastest link's Mbit/s would not. The least
    over x's links of an affine function of the size is concave in it: its chord over [0,
    `smax`] MB is under it for every size a transfer of the fleet has."""
    rtt_from, jpm_from, slice_send = far
    lo, hi = links.start[at], links.start[at + 1]
    count = hi - lo
    cols = np.flatnonzero(count)
    if cols.size == 0:
        return
    per_col = count[cols]
    ends = np.cumsum(per_col)
    starts = ends - per_col
    # Each column's links, in order: lo[c], lo[c] + 1, ... hi[c] - 1.
    pairs = np.arange(ends[-1]) + np.repeat(lo[cols] - starts, per_col)
    col = np.repeat(cols, per_col)
    nb = links.nb[pairs]

    def chord(per_mb: np.ndarray, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per MB and fixed terms of the chord of the least over each column's links."""
        at_zero = np.minimum.reduceat(fixed, starts, axis=1)
        at_smax = np.minimum.reduceat(smax * per_mb + fixed, starts, axis=1)
        return (at_smax - at_zero) / smax, at_zero

    with np.errstate(invalid="ignore", over="ignore"):
        rtt = np.maximum(links.rtt[pairs][None, :] + rtt_from[:, nb], floor[0][:, col])
        jpm = np.maximum(links.jpm[pairs][None, :] + jpm_from[:, nb], floor[1][:, col])
        mbps = links.mbps[pairs][None, :]
        c1, c0, w1, w0 = figures(fleet, fleet.send[at][col][None, :], rtt, jpm, mbps)
        times = chord(w1, w0)  # whoever sends
        # The slice sending: the same times, its own sending cost.
        c1_back = jpm * slice_send[:, None] + fleet.w.latency * w1
        for out, cost in ((sent, chord(c1, c0)), (back, chord(c1_back, c0))):
            new = (*cost, *times)
            # Where no link of x leads to the virtual host, the figures stay as they were.
            ok = np.logical_and.reduce([np.isfinite(x) for x in new])
            for row, value in enumerate(new):
                out[row][:, cols] = np.where(ok, value, out[row][:, cols])


__all__ = ["LinkBounds", "Links", "completed", "coupled", "figures"]
