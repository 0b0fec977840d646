"""The heuristic's per-app SLO search (`solver.candidates.slo_paths`) against every path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solver import candidates
from solver.candidates import _Chain, slo_paths


def _chain(seed: int, na: int, n: int, k: int) -> _Chain:
    rng = np.random.default_rng(seed)
    # Cheap hosts slow, dear ones fast; moves cost and take time.
    speed = rng.uniform(0.5, 1.5, (na, 1, k)) * np.linspace(30.0, 3.0, k)
    price = rng.uniform(0.5, 1.5, (na, 1, k)) * np.linspace(1.0, 6.0, k)
    u = price * rng.uniform(0.5, 1.5, (na, n, k))
    uw = speed * rng.uniform(0.5, 1.5, (na, n, k))
    t = rng.uniform(0.0, 2.0, (na, n - 1, k, k))
    tw = rng.uniform(1.0, 20.0, (na, n - 1, k, k))
    return _Chain(u, uw, t, tw, np.full(na, n))


def _every_path(ch: _Chain, a: int) -> list[tuple[float, float]]:
    """(cost, worst ms) of every path of app `a`."""
    n, k = ch.u.shape[1:]
    out = []
    for p in itertools.product(range(k), repeat=n):
        cost = sum(ch.u[a, i, h] for i, h in enumerate(p))
        worst = sum(ch.uw[a, i, h] for i, h in enumerate(p))
        for i, (x, y) in enumerate(itertools.pairwise(p)):
            if x != y:
                cost += ch.t[a, i, x, y]
                worst += ch.tw[a, i, x, y]
        out.append((float(cost), float(worst)))
    return out


def test_leaving_out_what_breaks_the_slo_finds_cheaper_plans_within_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SLOs halfway between each app's fastest path and its cheapest one. Every path
    found keeps the SLO and costs at least the exact optimum; with the blocks and moves
    no path within the SLO takes left out (`_within_slo`), the price search finds the
    exact optimum for more apps than without, and is never dearer on these."""
    na, n, k = 60, 5, 3
    ch = _chain(3, na, n, k)
    slo, exact = np.zeros(na), np.zeros(na)
    for a in range(na):
        paths = _every_path(ch, a)
        fastest = min(w for _, w in paths)
        slo[a] = fastest + 0.5 * (min(paths)[1] - fastest)
        exact[a] = min(c for c, w in paths if w <= slo[a])
    cost, worst, _, _ = slo_paths(ch, slo)
    monkeypatch.setattr(candidates, "_within_slo", lambda ch, rows, slo: ch)
    plain, _, _, _ = slo_paths(ch, slo)
    assert np.all(worst <= slo * (1 + 1e-9))
    assert np.all(exact * (1 - 1e-9) <= cost)
    assert np.all(cost <= plain * (1 + 1e-9))
    found, found_plain = np.isclose(cost, exact), np.isclose(plain, exact)
    assert found.sum() > found_plain.sum()
