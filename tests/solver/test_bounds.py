"""The numpy tables behind variable fixing agree with the cost terms they summarise."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from solver import Problem, parse_scenario
from solver.bounds import chain_bounds, partition_tables, stage_table
from tests.solver.strategies import scenarios


@settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(raw=scenarios())
def test_tables_match_the_terms(raw: dict[str, Any]) -> None:
    problem = Problem(parse_scenario(raw))
    cm = problem.cost
    for app in problem.scenario.apps:
        hosts = problem.hosts(app)
        if not hosts:
            continue
        if app.cascade is not None:
            table = stage_table(problem, app, hosts)
            for k in range(len(app.cascade)):
                for j, d in enumerate(hosts):
                    term = cm.stage_term(app, k, d)
                    if math.isfinite(table[k, j]):
                        mig = problem.migration.stage_mb(app.id, app.cascade[k].model, d)
                        want = cm.weighted(app, term) + cm.weights.migration * mig
                        assert table[k, j] == pytest.approx(want, rel=1e-9, abs=1e-12)
            continue
        for m in problem.model_options(app):
            t = partition_tables(problem, app, m, hosts)
            for i in range(cm.shapes[m].n):
                for j, d in enumerate(hosts):
                    term = cm.block_term(app, m, i, d)
                    fits = term.memory_mb[d] <= cm.devices[d].memory_mb
                    assert math.isfinite(t.unary[i, j]) == (not term.unroutable and fits)
                    if math.isfinite(t.unary[i, j]):
                        mig = problem.migration.block_mb(app.id, m, i, d)
                        want = cm.weighted(app, term) + cm.weights.migration * mig
                        assert t.unary[i, j] == pytest.approx(want, rel=1e-9, abs=1e-12)
                    if i + 1 < cm.shapes[m].n:
                        for jj, e in enumerate(hosts):
                            if d == e:
                                continue
                            move = cm.transition_term(m, i, d, e)
                            assert math.isfinite(t.moves[i, j, jj]) == (not move.unroutable)
                            if not move.unroutable:
                                want = cm.weighted(app, move)
                                assert t.moves[i, j, jj] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_chain_bounds_equal_enumeration() -> None:
    """On a random table, every forced bound equals the best enumerated chain using it."""
    rng = np.random.default_rng(3)
    from itertools import product

    from solver.bounds import Tables

    n, h, stages = 4, 3, 2
    unary = rng.uniform(0, 10, (n, h))
    moves = rng.uniform(0, 10, (n - 1, h, h))
    for i in range(n - 1):
        np.fill_diagonal(moves[i], np.inf)
    cb = chain_bounds(Tables([f"d{k}" for k in range(h)], unary, moves), stages)
    best = math.inf
    block = np.full((n, h), math.inf)
    for chain in product(range(h), repeat=n):
        if 1 + sum(a != b for a, b in itertools.pairwise(chain)) > stages:
            continue
        cost = sum(unary[i, d] for i, d in enumerate(chain))
        cost += sum(moves[i, a, b] for i, (a, b) in enumerate(itertools.pairwise(chain)) if a != b)
        best = min(best, cost)
        for i, d in enumerate(chain):
            block[i, d] = min(block[i, d], cost)
    assert cb.best == pytest.approx(best)
    assert np.allclose(cb.block, block)
