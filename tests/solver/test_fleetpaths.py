"""The large-fleet bound's path DP (`solver.fleetpaths.relaxed_dp`) against every path
enumerated."""

from __future__ import annotations

import itertools

import numpy as np

from solver.fleetpaths import Moves, relaxed_dp, within_slo


def _brute(u: np.ndarray, moves: list[tuple[np.ndarray, np.ndarray]], a: int, cap: int) -> float:
    """The least cost over every assignment of blocks to hosts with at most `cap`
    segments (a segment: a run of consecutive blocks on one host)."""
    n, width = u.shape[1], u.shape[2]
    best = np.inf
    for hosts in itertools.product(range(width), repeat=n):
        if 1 + sum(x != y for x, y in itertools.pairwise(hosts)) > cap:
            continue
        cost = sum(u[a, i, h] for i, h in enumerate(hosts))
        for i, (x, y) in enumerate(itertools.pairwise(hosts)):
            if x != y:
                cost += sum(c[a, i] * m[a, x, y] for c, m in moves)
        best = min(best, cost)
    return float(best)


def test_the_dp_with_a_segment_limit_is_the_least_path_within_it() -> None:
    rng = np.random.default_rng(7)
    na, n, width = 4, 5, 3
    u = rng.uniform(5.0, 10.0, (na, n, width))
    for i in range(n):  # each block cheapest on another host: many segments pay
        u[:, i, i % width] = rng.uniform(0.0, 1.0, na)
    u[1, 2, 0] = np.inf  # a block that does not fit a host
    moves = [
        (rng.uniform(0.0, 1.0, (na, n - 1)), rng.uniform(0.0, 1.0, (na, width, width))),
        (rng.uniform(0.0, 1.0, (na, n - 1)), rng.uniform(0.0, 0.5, (na, width, width))),
    ]
    stages = np.array([1, 2, 3, 5])
    limited = relaxed_dp(u, moves, stages)
    relaxed = relaxed_dp(u, moves, np.full(na, n))  # a limit of every block: none
    for a in range(na):
        exact = _brute(u, moves, a, int(stages[a]))
        # single precision, lowered by its rounding allowance: at most exact, and near it
        assert exact * (1 - 3e-4) <= limited[a] <= exact
        assert _brute(u, moves, a, n) * (1 - 3e-4) <= relaxed[a] <= _brute(u, moves, a, n)
    # The limit binds on some of these apps.
    assert any(limited[a] > relaxed[a] * 1.001 for a in range(3))
    assert np.isclose(limited[3], relaxed[3], rtol=1e-6)


def _paths(n: int, width: int, cap: int) -> list[tuple[int, ...]]:
    return [
        hosts
        for hosts in itertools.product(range(width), repeat=n)
        if 1 + sum(x != y for x, y in itertools.pairwise(hosts)) <= cap
    ]


def _figure(u: np.ndarray, moves: Moves, a: int, hosts: tuple[int, ...]) -> float:
    total = sum(u[a, i, h] for i, h in enumerate(hosts))
    for i, (x, y) in enumerate(itertools.pairwise(hosts)):
        if x != y:
            total += sum(c[a, i] * m[a, x, y] for c, m in moves)
    return float(total)


def test_what_the_slo_rules_out_no_path_within_it_takes() -> None:
    """Every block, host and move `within_slo` rules out lies on no path that meets the
    SLO, so the DP over the rest is at most the least cost within the SLO; and here it
    rules out enough that the bound with the SLO priced in rises."""
    rng = np.random.default_rng(11)
    na, n, width = 6, 5, 3
    # Host 0 cheap and slow, host 2 dear and fast: the cheapest path breaks the SLO.
    u = rng.uniform(0.5, 1.5, (na, n, width)) * np.array([1.0, 3.0, 6.0])
    uw = rng.uniform(0.5, 1.5, (na, n, width)) * np.array([40.0, 15.0, 4.0])
    u[2, 3, 1], uw[2, 3, 1] = np.inf, np.inf  # a block that does not fit a host
    moves = [
        (rng.uniform(0.5, 1.0, (na, n - 1)), rng.uniform(0.0, 1.0, (na, width, width))),
        (np.ones((na, n - 1)), rng.uniform(0.0, 0.5, (na, width, width))),
    ]
    times = [
        (rng.uniform(0.5, 1.0, (na, n - 1)), rng.uniform(1.0, 20.0, (na, width, width))),
        (np.ones((na, n - 1)), rng.uniform(1.0, 10.0, (na, width, width))),
    ]
    stages = np.array([1, 2, 3, 3, 5, 5])
    slo = np.array([90.0, 80.0, 100.0, 60.0, 70.0, 120.0])
    gate = within_slo(uw, times, slo)
    gated = relaxed_dp(u, moves, stages, gate)
    risen = 0
    for a in range(na):
        paths = _paths(n, width, int(stages[a]))
        within = [p for p in paths if _figure(uw, times, a, p) <= slo[a]]
        exact = min((_figure(u, moves, a, p) for p in within), default=np.inf)
        assert gated[a] <= exact
        # Every block and move it rules out is on no path within the SLO.
        for p in within:
            assert not any(gate.blocks[a, i, h] for i, h in enumerate(p))
            assert not any(
                gate.moves[i][a, x, y] for i, (x, y) in enumerate(itertools.pairwise(p)) if x != y
            )
        cheapest = min(_figure(u, moves, a, p) for p in paths)
        risen += gated[a] > cheapest * 1.001
    assert risen >= 3
