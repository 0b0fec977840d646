"""The plan document: an evaluation described in the contract's plan format, and the
`Plan` every solver returns (its placements, that document, and the evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from solver.costs import Cost, CostModel, battery_hours
from solver.evaluate import AppRecord, Evaluation, PlanParts, app_record, evaluate, within
from solver.migration import Migration
from solver.plan import (
    AppResult,
    DeviceUse,
    Latency,
    LinkUse,
    Placement,
    PlanDoc,
    Segment,
    Stage,
    Status,
)
from solver.reasons import Reason


class Plan:
    """What every solver returns: the placements and the document that describes them.

    `write`, instead of `doc`: the document is written when first read, with the fields
    `note` set meanwhile. An infeasible plan's empty document evaluates every device and
    link at zero (1.6 ms at 200 devices), and a re-plan that sets aside the app it blames
    reads only its status and reason (bench/RESULTS.md, eleventh session)."""

    __slots__ = (
        "_doc",
        "_notes",
        "_stats",
        "_write",
        "evaluation",
        "placements",
        "reason",
        "status",
    )

    def __init__(
        self,
        status: Status,
        placements: dict[str, Placement],
        doc: PlanDoc | None = None,
        evaluation: Evaluation | None = None,
        reason: Reason | None = None,
        write: Callable[[], PlanDoc] | None = None,
    ) -> None:
        if (doc is None) == (write is None):
            raise ValueError("a plan has a document or a writer of one, not both")
        self.status = status
        self.placements = placements
        # The evaluator's record of this plan, for evaluating the next one incrementally.
        self.evaluation = evaluation
        # Why there is no plan (an infeasible plan's `reason`), with its code and the app
        # blamed.
        self.reason = reason
        self._doc = doc
        self._write = write
        self._notes: dict[str, Any] = {}
        self._stats: dict[str, float | int | str] = {}

    @property
    def doc(self) -> PlanDoc:
        if self._doc is None:
            assert self._write is not None
            doc = self._write()
            for name, value in self._notes.items():
                setattr(doc, name, value)
            if self._stats:
                doc.stats = {**(doc.stats or {}), **self._stats}
            self._doc, self._write, self._notes, self._stats = doc, None, {}, {}
        return self._doc

    def note(self, name: str, value: Any) -> None:
        """Set a field of the document, written or not."""
        if self._doc is None:
            self._notes[name] = value
        else:
            setattr(self._doc, name, value)

    def stat(self, key: str, value: float | int | str) -> None:
        """Set one of the document's `stats`, written or not."""
        if self._doc is None:
            self._stats[key] = value
        else:
            if self._doc.stats is None:
                self._doc.stats = {}
            self._doc.stats[key] = value

    @property
    def objective(self) -> float | None:
        return self.doc.objective

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return (self.status, self.placements, self.doc, self.reason) == (
            other.status,
            other.placements,
            other.doc,
            other.reason,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Plan(status={self.status!r}, placements={self.placements!r}, doc={self.doc!r}, "
            f"reason={self.reason!r})"
        )

    def __getstate__(self) -> dict[str, Any]:
        doc = self.doc  # a writer does not pickle
        return {
            "status": self.status,
            "placements": self.placements,
            "doc": doc,
            "evaluation": self.evaluation,
            "reason": self.reason,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Plan.__init__(self, **state)


def segments_of(cm: CostModel, p: Placement) -> list[Segment]:
    assert p.model is not None and p.blocks is not None
    names = [layer.name for layer in cm.models[p.model].layers]
    out: list[Segment] = []
    start = 0
    for i in range(1, len(p.blocks) + 1):
        if i == len(p.blocks) or p.blocks[i] != p.blocks[start]:
            out.append(
                Segment.model_construct(
                    first=names[start], last=names[i - 1], device=p.blocks[start]
                )
            )
            start = i
    return out


def build_plan(
    cm: CostModel,
    placements: Mapping[str, Placement],
    status: Status,
    solver: str,
    bound: float | None = None,
    solve_s: float = 0.0,
    stats: dict[str, float | int | str] | None = None,
    cache: dict[str, tuple[Placement, Cost]] | None = None,
    migration: Migration | None = None,
    base: Evaluation | None = None,
) -> Plan:
    """Evaluate placements and describe them in the contract's plan format.

    The document's parts are built without re-validation (`model_construct`): every value
    comes from the evaluator, and a fleet of thousands of devices would otherwise spend
    most of an incremental re-solve validating its own numbers. With `base` (see
    `evaluate`), the parts of apps, devices and links that did not change are the base
    plan's own objects.

    A plan that breaks a constraint is reported `infeasible` with its violations, whatever
    status the solver hoped for: the evaluator has the last word.
    """
    ev = evaluate(cm, placements, cache=cache, migration=migration, base=base)
    if ev.found:
        status = Status.INFEASIBLE
    # The base's parts are taken now, and the base let go (not a chain of every plan since
    # the first); the document is written when first read: a relaxed search serving an
    # app degraded reads its plan's status and placements alone, and writing every part
    # of it was about a tenth of each search (bench/RESULTS.md).
    reuse = ev.base.parts if ev.base is not None else None
    old_records = ev.base.records if ev.base is not None else {}
    ev.base = None

    def write() -> PlanDoc:
        apps: dict[str, AppResult] = {}
        for app in cm.scenario.apps:
            rec = ev.records.get(app.id)
            if rec is None:
                continue
            if reuse is not None and old_records.get(app.id) is rec and app.id in reuse.apps:
                apps[app.id] = reuse.apps[app.id]
            else:
                apps[app.id] = _app_result(cm, rec)
        if reuse is not None and ev.changed_devices is not None:
            devices = dict(reuse.devices)
            for d in ev.changed_devices:
                devices[d] = _device_use(cm, ev, d)
        else:
            devices = {d: _device_use(cm, ev, d) for d in cm.devices}
        if reuse is not None and ev.changed_links is not None:
            links = list(reuse.links)
            for k in ev.changed_links:
                links[k] = _link_use(cm, ev, k)
        else:
            links = [_link_use(cm, ev, k) for k in range(len(cm.scenario.links))]
        ev.parts = PlanParts(apps, devices, links)
        return PlanDoc(
            status=status,
            solver=solver,
            objective=ev.objective,
            bound=bound,
            solve_s=solve_s,
            apps=list(apps.values()),
            devices=list(devices.values()),
            links=links,
            violations=ev.violations or None,
            violation_codes=[r.code for r in ev.found] or None,
            stats=stats,
        )

    return Plan(status=status, placements=dict(placements), evaluation=ev, write=write)


def app_results(
    cm: CostModel,
    placements: Mapping[str, Placement],
    migration: Migration,
    cache: dict[str, tuple[Placement, Cost]] | None = None,
) -> list[AppResult]:
    """The plan document's entries of `placements`, in their order, as `build_plan`
    writes them, without the rest of a document (every device's and link's use).
    `cache`: the apps' costs where known (`evaluate`'s)."""
    out = []
    for app_id, p in placements.items():
        rec = app_record(cm, cm.apps[app_id], p, migration, cache)
        if isinstance(rec, list):
            raise ValueError(f"app {app_id}: {rec[0].message}")
        out.append(_app_result(cm, rec))
    return out


def _app_result(cm: CostModel, rec: AppRecord) -> AppResult:
    app, p, c = rec.app, rec.placement, rec.cost
    stages = None
    if p.stages is not None:
        assert app.cascade is not None
        stages = [
            Stage(model=st.model, device=d) for st, d in zip(app.cascade, p.stages, strict=True)
        ]
    return AppResult.model_construct(
        id=app.id,
        model=p.model,
        segments=segments_of(cm, p) if p.blocks is not None else None,
        stages=stages,
        latency_ms=Latency.model_construct(worst=c.worst_ms, expected=c.expected_ms),
        energy_j=c.energy_j,
        carbon_g=c.carbon_g,
        slo_met=app.slo_ms is None or within(c.worst_ms, app.slo_ms),
        migration_mb=rec.migration_mb,
    )


def _device_use(cm: CostModel, ev: Evaluation, d: str) -> DeviceUse:
    return DeviceUse.model_construct(
        id=d,
        utilization=ev.utilization[d],
        memory_mb=ev.memory_mb[d],
        power_w=ev.power_w[d],
        battery_h=battery_hours(cm.devices[d], ev.power_w[d]),
    )


def _link_use(cm: CostModel, ev: Evaluation, k: int) -> LinkUse:
    link = cm.scenario.links[k]
    return LinkUse.model_construct(a=link.a, b=link.b, utilization=ev.link_utilization[k])


def infeasible_plan(
    cm: CostModel, solver: str, reason: Reason, solve_s: float = 0.0, bound: float | None = None
) -> Plan:
    """No plan: an empty `apps` and a reason naming what cannot be satisfied, with its code."""

    def write() -> PlanDoc:
        empty = build_plan(cm, {}, Status.INFEASIBLE, solver, bound, solve_s)
        return empty.doc.model_copy(
            update={
                "objective": None,
                "apps": [],
                "violations": None,
                "violation_codes": None,
                "reason": reason.message,
                "reason_code": reason.code,
            }
        )

    return Plan(status=Status.INFEASIBLE, placements={}, reason=reason, write=write)
