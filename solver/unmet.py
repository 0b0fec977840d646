"""An app no placement of which meets its SLO, known again without its candidates.

`solver.partial.alone` asks, at every re-plan, whether each app held where it breaks a
per-app limit fits anywhere on its own. An app whose candidates come out empty for its
SLO alone (`slo_only`: hosts, memory and routes allow a placement, none is fast enough)
is set aside with the reason `why_empty` gives it. Late in a day of the 200-device fleet,
7,477 such verdicts were made again from nothing, candidates and all, after a probe had
moved a link of the app's routes (bench/RESULTS.md, thirteenth session).

What such a verdict read: the app, its candidate hosts (picked by rtt and price), the
routes between them (by rtt) and their figures, and the hosts' memory and speed. While
the fleet keeps its shape and its devices their prices (`solver.appcandidates.carry`
hands the store on only then), a slower link makes every placement slower: the fastest
one, which the DP asks first (`solver.candidates.slo_paths`), still misses the SLO, and so
does every single-host one. So the verdict holds while no link its routes cross is faster.
"""

from __future__ import annotations

from dataclasses import dataclass

from solver.fastcost import CandidateRoutes
from solver.problem import Problem
from solver.reasons import Code, Reason
from solver.scenario import App

UNMET = "slo_unmet"


@dataclass(frozen=True, slots=True)
class Unmet:
    app: App
    reason: Reason  # `why_empty`'s
    mbps: tuple[tuple[int, float], ...]  # each link the candidate routes cross, its Mbit/s


def note_unmet(problem: Problem, app: App, routes: CandidateRoutes, reason: Reason) -> None:
    """Keep `why_empty`'s verdict on `app`, whose candidates on `routes` came out empty,
    when it is its SLO's (for `still_unmet`)."""
    if reason.code != Code.SLO:
        return
    problem.derived.setdefault(UNMET, {})[app.id] = Unmet(app, reason, routes.mbps_in(problem))


def still_unmet(problem: Problem, app_id: str) -> Reason | None:
    """The reason of an earlier problem's verdict that no placement of `app_id` meets its
    SLO, when it still holds (the same app, no link of its routes faster); None when not
    known."""
    store = problem.derived.get(UNMET)
    u: Unmet | None = store.get(app_id) if isinstance(store, dict) else None
    if u is None or problem.cost.apps.get(app_id) is not u.app:
        return None
    links = problem.scenario.links
    if any(links[k].mbps > mbps for k, mbps in u.mbps):
        return None
    return u.reason


__all__ = ["UNMET", "Unmet", "note_unmet", "still_unmet"]
