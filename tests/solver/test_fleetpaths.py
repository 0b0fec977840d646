"""The large-fleet bound's path DP (`solver.fleetpaths.relaxed_dp`) against every path
enumerated."""

from __future__ import annotations

import itertools

import numpy as np

from solver.fleetpaths import Gate, Moves, relaxed_dp, within_slo


def _paths(n: int, width: int, cap: int) -> list[tuple[int, ...]]:
    """Every assignment of n blocks to hosts with at most `cap` segments (a segment: a
    run of consecutive blocks on one host)."""
    return [
        hosts
        for hosts in itertools.product(range(width), repeat=n)
        if 1 + sum(x != y for x, y in itertools.pairwise(hosts)) <= cap
    ]


def _figure(u: np.ndarray, moves: Moves, a: int, hosts: tuple[int, ...]) -> float:
    """App `a`'s sum of block figures `u` and move figures `moves` along `hosts`."""
    total = sum(u[a, i, h] for i, h in enumerate(hosts))
    for i, (x, y) in enumerate(itertools.pairwise(hosts)):
        if x != y:
            total += sum(c[a, i] * m[a, x, y] for c, m in moves)
    return float(total)


def _brute(u: np.ndarray, moves: Moves, a: int, cap: int) -> float:
    """The least cost over every path with at most `cap` segments."""
    return min(_figure(u, moves, a, p) for p in _paths(u.shape[1], u.shape[2], cap))


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


def _none_ruled_out(gate: Gate, a: int, paths: list[tuple[int, ...]]) -> None:
    """No block on a host or move of these paths (within the SLO) is ruled out."""
    for p in paths:
        assert not any(gate.blocks[a, i, h] for i, h in enumerate(p))
        assert not any(
            gate.moves[i][a, x, y] for i, (x, y) in enumerate(itertools.pairwise(p)) if x != y
        )


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
        _none_ruled_out(gate, a, within)
        cheapest = min(_figure(u, moves, a, p) for p in paths)
        risen += gated[a] > cheapest * 1.001
    assert risen >= 3


def test_the_ends_rule_out_what_the_metric_forbids_and_nothing_within_the_slo() -> None:
    """Hosts on a plane, the rtt their distance (a metric, as the least rtt is). The DP is
    given a floor under the moves between hosts 2 and 3 (as between two virtual hosts:
    their slices' least distance); with the fixed ms from the source and to the sink
    (`ends`) it rules out nothing on a real path within the SLO and stays under the least
    real cost within it. On the first app, whose source is its sink, cheap host 3 is too
    far to reach within the SLO, but two moves through host 2 at the floor reach it: the
    ends rule that out and the bound rises."""
    rng = np.random.default_rng(5)
    na, n, width = 8, 4, 4
    u = rng.uniform(0.5, 1.5, (na, n, width)) * np.array([1.0, 4.0, 2.0, 0.3])
    uw = rng.uniform(0.5, 1.5, (na, n, width)) * np.array([30.0, 2.0, 2.0, 2.0])
    ends = np.zeros((2, na, width))
    real = np.zeros((na, width, width))
    for a in range(na):
        if a == 0:
            src = sink = np.zeros(2)
            at = np.array([[0.0, 0.0], [10.0, 0.0], [3.0, 0.0], [60.0, 0.0]])
        else:
            src, sink = rng.uniform(0, 60, 2), rng.uniform(0, 60, 2)
            at = np.vstack([src, rng.uniform(0, 100, (width - 1, 2))])  # host 0: the source
        real[a] = np.linalg.norm(at[:, None] - at[None, :], axis=2) / 2
        ends[0, a] = np.linalg.norm(at - src, axis=1) / 2
        ends[1, a] = np.linalg.norm(at - sink, axis=1) / 2
    uw[:, 0] += ends[0]
    uw[:, -1] += ends[1]
    floor = real.copy()
    floor[:, 2, 3] = floor[:, 3, 2] = 0.05
    per_mb = (np.full((na, n - 1), 0.5), np.full((na, width, width), 4.0))
    times = [per_mb, (np.ones((na, n - 1)), floor)]
    true_times = [per_mb, (np.ones((na, n - 1)), real)]
    moves = [(np.ones((na, n - 1)), np.full((na, width, width), 0.2))]
    stages = np.full(na, n)
    slo = np.array([50.0] + [_figure(uw, true_times, a, (0,) * n) * 0.6 for a in range(1, na)])
    plain = relaxed_dp(u, moves, stages, within_slo(uw, times, slo))
    gate = within_slo(uw, times, slo, (ends[0], ends[1]))
    gated = relaxed_dp(u, moves, stages, gate)
    for a in range(na):
        paths = _paths(n, width, n)
        within = [p for p in paths if _figure(uw, true_times, a, p) <= slo[a]]
        exact = min((_figure(u, moves, a, p) for p in within), default=np.inf)
        assert gated[a] <= exact
        _none_ruled_out(gate, a, within)
    assert gated[0] > plain[0] * 1.5
