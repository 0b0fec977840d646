"""A Lagrangian lower bound that prices compute, memory and battery, for variable fixing.

For prices p >= 0 on the capacity rows (net of apps held fixed), every feasible plan x
satisfies objective(x) >= L(p) = sum over apps of the app's best priced objective minus
p . capacity. A choice whose best priced completion exceeds its app's best by more than
UB - L(p) cannot be in a plan better than UB, so the exact model leaves it out. Prices
come from a few rounds of projected subgradient (Polyak steps towards UB). Each app's SLO
(worst-case latency) is priced the same way. Bandwidth rows are not priced: leaving rows
out keeps the bound valid, only weaker.
"""

from __future__ import annotations

import time

import numpy as np

from solver.bounds import INF, AppBounds, Array
from solver.evaluate import app_cost
from solver.problem import Problem, SolveOptions

ROUNDS = 40


def _capacities(problem: Problem, options: SolveOptions) -> tuple[Array, Array, Array]:
    """Residual compute, memory and battery power per device (inf: not limited)."""
    cm, scn = problem.cost, problem.scenario
    n = len(scn.devices)
    cpu = np.full(n, scn.max_utilization)
    mem = np.array([d.memory_mb for d in scn.devices])
    watts = np.array(
        [INF if cm.battery_limit_w(d.id) is None else cm.battery_limit_w(d.id) for d in scn.devices]
    )
    for app_id, placement in options.fixed.items():
        app = cm.apps[app_id]
        c = app_cost(cm, app, placement)
        for d, s in c.compute_s.items():
            cpu[problem.device_index[d]] -= app.rate_rps * s
        for d, mb in c.memory_mb.items():
            mem[problem.device_index[d]] -= mb
        for d, j in c.joules.items():
            watts[problem.device_index[d]] -= app.rate_rps * j
    return cpu, mem, watts


def bounds(
    problem: Problem, options: SolveOptions, upper: float, fixed_objective: float, budget_s: float
) -> dict[str, AppBounds]:
    """Per-app bounds ready for fixing, at the best prices found within budget_s."""
    free = [a for a in problem.scenario.apps if a.id not in options.fixed]
    apps = [AppBounds(problem, a, problem.hosts(a)) for a in free]
    n = len(problem.scenario.devices)
    caps = _capacities(problem, options)
    # Rows that can carry a price: finite and positive capacity.
    priced = [np.isfinite(c) & (c > 0) for c in caps]
    scale = [np.where(p, c, 1.0) for p, c in zip(priced, caps, strict=True)]
    mult = [np.zeros(n) for _ in range(3)]  # normalised: price = mult / capacity
    slo = np.array([a.app.slo_ms or INF for a in apps])
    has_slo = np.isfinite(slo)
    slo_scale = np.where(has_slo, slo, 1.0)
    slo_mult = np.zeros(len(apps))
    target = upper - fixed_objective
    best_lower, best_mult = -INF, [m.copy() for m in mult]
    best_slo = slo_mult.copy()
    theta, stall = 1.0, 0
    deadline = time.perf_counter() + budget_s
    for _ in range(ROUNDS):
        prices = [m / s for m, s in zip(mult, scale, strict=True)]
        slo_price = slo_mult / slo_scale
        use = (np.zeros(n), np.zeros(n), np.zeros(n))
        worst = np.zeros(len(apps))
        total = 0.0
        for k, a in enumerate(apps):
            cost, worst[k] = a.cheapest(prices[0], prices[1], prices[2], slo_price[k], use)
            total += cost
        lower = total - sum(float(m.sum()) for m in mult) - float(slo_mult.sum())
        if not np.isfinite(lower):
            break
        if lower > best_lower + 1e-12 * max(1.0, abs(lower)):
            best_lower, best_mult, stall = lower, [m.copy() for m in mult], 0
            best_slo = slo_mult.copy()
        else:
            stall += 1
            if stall >= 4:
                theta, stall = theta / 2.0, 0
        grads = [np.where(p, u / s - 1.0, 0.0) for p, u, s in zip(priced, use, scale, strict=True)]
        # Projection: a row at price 0 with slack does not move.
        grads = [np.where((m <= 0) & (g < 0), 0.0, g) for m, g in zip(mult, grads, strict=True)]
        slo_grad = np.where(has_slo, worst / slo_scale - 1.0, 0.0)
        slo_grad = np.where((slo_mult <= 0) & (slo_grad < 0), 0.0, slo_grad)
        norm = float(sum((g * g).sum() for g in grads)) + float((slo_grad * slo_grad).sum())
        if norm == 0.0 or time.perf_counter() > deadline or target - lower <= 0:
            break
        step = theta * (target - lower) / norm
        mult = [np.maximum(0.0, m + step * g) for m, g in zip(mult, grads, strict=True)]
        slo_mult = np.maximum(0.0, slo_mult + step * slo_grad)
    prices = [m / s for m, s in zip(best_mult, scale, strict=True)]
    slo_price = best_slo / slo_scale
    for k, a in enumerate(apps):
        a.prepare(prices[0], prices[1], prices[2], float(slo_price[k]))
    lower = sum(a.best for a in apps) - sum(float(m.sum()) for m in best_mult)
    lower -= float(best_slo.sum())
    gap = target - lower
    out: dict[str, AppBounds] = {}
    if not np.isfinite(gap):
        return out
    tol = 1e-7 * max(1.0, abs(upper))  # float rounding between tables and terms
    for a in apps:
        a.set_limit(a.best + max(gap, 0.0) + tol)
        out[a.app.id] = a
    return out
