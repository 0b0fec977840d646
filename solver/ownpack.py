"""An app its own source's battery cannot pay for, wherever it is placed.

The source pays for sending the input wherever the first block runs, and for what it
hosts, so a pack that has drained far enough refuses its app whatever the other apps hold.
The heuristic's per-app candidates do not see batteries (a shared capacity, booked as
apps are assigned): a solve finds out only when it assigns that app, and an incremental
re-solve then re-places every app in case the held ones stood in the way
(`solver.incremental`), to fail on the same pack. A lower bound on what the source's
pack pays for the app over its SLO-meeting placements (the DP of `slo_paths` on the
battery terms alone, `battery_arrays`, over the app's candidate hosts, the scope of the
heuristic's other per-app verdicts; for a cascade, each stage's least, whose terms are
independent) above what the pack pays besides its idle draw makes it the app's own fault
(`Reason.alone`), with no other app booked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from solver.candidates import battery_arrays, cascade_source_joules, chain_arrays, slo_paths
from solver.fastcost import INF, CandidateRoutes, Fleet
from solver.problem import Problem
from solver.reasons import Code, Reason
from solver.scenario import App


def own_pack(
    problem: Problem, fleet: Fleet, app: App, routes: CandidateRoutes, cap: np.ndarray
) -> Reason | None:
    """The reason `app` fits on no placement for its source's battery alone (`cap`: the
    solve's capacities, `fastcost` numbering), or None when that is not proven."""
    if not routes.hosts:
        return None
    src = fleet.index[app.source]
    pays = float(cap[2 * fleet.n + src])
    if not np.isfinite(pays):
        return None  # no battery
    known = routes.least
    if app.cascade is not None:
        if (least := known.get("cascade")) is None:
            least = known["cascade"] = _cascade_least(problem, fleet, app, routes)
        return _verdict(app, pays, None, least)
    # Every placement starts with block 0 on a host its input reaches (`in_ok`, as the
    # chain has it), and no term is negative: the least of the first block's terms there
    # bounds what any placement makes the source pay. A pack drained to its idle floor
    # pays nothing, and most apps set aside late in a day are such: proven here without
    # the SLO's DP (asked again at every re-plan).
    terms = None  # each model's battery terms, made once for both bounds
    if (first := known.get("first")) is None:
        terms = _terms(problem, fleet, app, routes)
        first = known["first"] = _first_least(routes, terms)
    if (why := _verdict(app, pays, first, None)) is not None:
        return why
    # The least over every model: when it is within what the pack pays, some model's is.
    if (least := known.get("least")) is None:
        terms = terms if terms is not None else _terms(problem, fleet, app, routes)
        least = known["least"] = _slo_least(problem, fleet, app, routes, terms)
    return _verdict(app, pays, first, least)


def _verdict(app: App, pays: float, first: float | None, least: float | None) -> Reason | None:
    """`own_pack`'s verdict from its bounds, on what the pack `pays`: the first block's
    (`first`, None for a cascade) when it proves it, else the least over SLO-meeting
    placements (None: not made yet), which proves nothing when infinite (no such placement:
    the candidates say why), but for a cascade, whose stages' least it is."""
    if first is not None and np.isfinite(first) and not _within(first, pays):
        return _reason(app, first, pays)
    if least is None or _within(least, pays):
        return None
    if app.cascade is None and not np.isfinite(least):
        return None
    return _reason(app, least, pays)


def _within(bound: float, pays: float) -> bool:
    """Whether the pack pays for `bound` (W), with room for the bound's other order of sums."""
    return bound <= pays * (1.0 + 1e-9)


def _terms(
    problem: Problem, fleet: Fleet, app: App, routes: CandidateRoutes
) -> list[tuple[np.ndarray, np.ndarray]]:
    src = fleet.index[app.source]
    models = problem.model_options(app)
    return [battery_arrays(problem, fleet, app, model, routes, {src: 1.0}) for model in models]


def _first_least(routes: CandidateRoutes, terms: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The least of the first block's battery terms over the hosts its input reaches."""
    reach = np.flatnonzero(routes.in_ok[: len(routes.hosts)])
    return min((float(ub[0, 0, reach].min()) for ub, _ in terms if reach.size), default=INF)


def _slo_least(
    problem: Problem,
    fleet: Fleet,
    app: App,
    routes: CandidateRoutes,
    terms: list[tuple[np.ndarray, np.ndarray]],
) -> float:
    """The least the source pays over the SLO-meeting placements of every model."""
    slo = np.array([app.slo_ms if app.slo_ms is not None else INF])
    least = INF
    models = problem.model_options(app)
    for model, (ub, tb) in zip(models, terms, strict=True):
        ch = chain_arrays(problem, fleet, [app], model, [routes])
        # The battery terms where the chain has a term at all (a host or move it allows).
        alone = replace(
            ch,
            u=np.where(np.isfinite(ch.u), ub[:, :, : ch.u.shape[2]], INF),
            t=np.where(np.isfinite(ch.t), tb[:, :, : ch.t.shape[2], : ch.t.shape[3]], INF),
        )
        least = min(least, float(slo_paths(alone, slo)[3][0]))
    return least


def drained_source(problem: Problem, app_id: str) -> Reason | None:
    """The reason an app fits nowhere when its source's pack pays nothing beside its idle
    draw (`battery_limit_w` 0) and every placement makes the source pay something: the
    input goes from the source to the first block's host always, over links that each
    cost joules, and the source may host that block only at a cost above idle. Proven
    without the app's candidates, whose DP at every re-plan was most of a re-plan's cost
    late in a day, when most apps set aside are on packs drained to that floor; None when
    this does not prove it (`own_pack` may, over the candidates)."""
    cm = problem.cost
    app = cm.apps[app_id]
    src = cm.devices.get(app.source)
    models = problem.model_options(app)
    if src is None or cm.battery_limit_w(src.id) != 0.0 or app.rate_rps <= 0 or not models:
        return None
    if app.cascade is not None:
        return None  # its stages' inputs: `own_pack` over the candidates
    sends = _least_j_per_mb(problem).get(src.id)
    if sends is None or sends <= 0:
        return None  # no link (no candidate at all: the candidates say why), or a free one
    may_host = src.tier in app.allowed_tiers
    above_idle = src.power_w.busy > src.power_w.idle
    for m in models:
        model = cm.models[m]
        computes = above_idle and (model.layers[0].gflops > 0 or src.overhead_ms > 0)
        if model.input_mb <= 0 or (may_host and not computes):
            return None
    return Reason(
        Code.BATTERY,
        f"app {app.id}: the battery of {app.source}, its source, cannot pay for it on any "
        f"placement (it pays nothing beside its idle draw, and every placement has it send "
        f"the input or run the first block)",
        app.id,
        alone=True,
    )


def _least_j_per_mb(problem: Problem) -> dict[str, float]:
    """Each device's cheapest link in joules per MB (a route from it costs at least that)."""
    least = problem.derived.get("least_j_per_mb")
    if not isinstance(least, dict):
        least = {}
        for lk in problem.scenario.links:
            for d in (lk.a, lk.b):
                least[d] = min(least.get(d, INF), lk.j_per_mb)
        problem.derived["least_j_per_mb"] = least
    return least


def _cascade_least(problem: Problem, fleet: Fleet, app: App, routes: CandidateRoutes) -> float:
    """The least a cascade's source pays for it, over its candidate hosts: each stage's
    term reads its own host alone (the source sends it the input, by its reach), so the
    least of their sum is the sum of each stage's least (the SLO left out: still a bound)."""
    stages = cascade_source_joules(problem, fleet, app, routes.hosts)
    return app.rate_rps * sum(float(use.min()) for use in stages)


# The apps `own_pack` proved, by app id, carried from a problem to the next
# (`solver.appcandidates.carry`): late in a day twenty apps are set aside at every
# re-plan, and each was judged over its candidates again (made again whenever a probe
# moved a link its routes cross): 12.9% of continuum's py-spy samples over a day
# (bench/RESULTS.md, eleventh session).
PROVEN = "own_pack_proven"


@dataclass(frozen=True, slots=True)
class Proven:
    """What a proof read that a re-plan may change. Both bounds read the routes' joules
    per MB and the hosts' figures, the same while the fleet keeps its shape and its devices
    their prices. The first block's bound reads no bandwidth, nor does a cascade's least
    (each stage's joules on each candidate host: routes go by rtt, hosts are picked by rtt
    and price), and the app had candidates, which stay within its SLO while no link its
    routes cross is slower: such a proof holds on links no slower. The SLO's DP (`least`
    of a chain) reads the links' bandwidths, and holds on the same ones."""

    app: App
    first: float | None  # the first block's bound (W); None for a cascade
    least: float | None  # the bound over SLO-meeting placements (W); None: `first` proved
    pays: float  # what the pack paid for beside its idle draw (W)
    mbps: tuple[tuple[int, float], ...]  # each link the candidate routes cross, its Mbit/s


def still_proven(problem: Problem, app_id: str, pays: float) -> Reason | None:
    """`own_pack`'s reason for `app_id` without its candidates, when the proof of an
    earlier problem still holds (the same app, a pack that pays no more, each link of its
    routes as fast, or for a bound that reads no bandwidth no slower: `Proven`; the rest
    is what `solver.appcandidates.carry` hands on with the store); None when not known."""
    store = problem.derived.get(PROVEN)
    p: Proven | None = store.get(app_id) if isinstance(store, dict) else None
    if p is None or problem.cost.apps.get(app_id) is not p.app or not pays <= p.pays:
        return None
    links = problem.scenario.links
    if p.least is None or p.app.cascade is not None:
        if any(links[k].mbps < mbps for k, mbps in p.mbps):
            return None
    elif any(links[k].mbps != mbps for k, mbps in p.mbps):
        return None
    return _verdict(p.app, pays, p.first, p.least)


def note_proven(problem: Problem, app: App, routes: CandidateRoutes, pays: float) -> None:
    """Keep the proof `own_pack` just made of `app` on `routes`, the app's candidates not
    empty and `pays` what the pack paid, for `still_proven`."""
    known = routes.least
    first = known.get("first") if app.cascade is None else None
    least = None  # the first block's bound proved it: the proof reads no bandwidth
    if _verdict(app, pays, first, None) is None:
        least = known.get("least" if app.cascade is None else "cascade")
        if _verdict(app, pays, first, least) is None:
            return
    problem.derived.setdefault(PROVEN, {})[app.id] = Proven(
        app, first, least, pays, routes.mbps_in(problem)
    )


def _reason(app: App, least: float, pays: float) -> Reason:
    return Reason(
        Code.BATTERY,
        f"app {app.id}: the battery of {app.source}, its source, cannot pay for it on any "
        f"placement (at least {least:.3g} W; it pays {pays:.3g} W beside its idle draw)",
        app.id,
        alone=True,
    )


__all__ = ["PROVEN", "Proven", "drained_source", "note_proven", "own_pack", "still_proven"]
