"""Durable and live state -> the scenario-v1 document the solver is given.

Which devices appear, and as what:
- a device hosts only when it is alive (a heartbeat within its TTL) and `active`;
- a cordoned or draining device that is alive still appears when a deployment's source or
  sink is on it, because inputs start and results end there; its capacity is given as
  `NO_HOST_GFLOPS` and `NO_HOST_MEMORY_MB`, so that no block or exit can be placed on it
  and the document stays a plain scenario any solver replays;
- a device that is not alive does not appear; a deployment whose source or sink is not
  alive is left out and reported as waiting.
Battery levels come from the latest heartbeat (100% until one reports it). A link's
remembered measurement overrides its declared figures, fresh or not (a degraded link the
plan left stays degraded until measured again: orchestrator/live/links.py), the bandwidth
capped at the declared figure (the declared capacity is an upper bound); a declared link's
energy per MB is kept; a measured link nobody declared is used only while its measurement
is fresh, and costs 0 J/MB. A device's idle and busy watts are
the measured or fitted ones of its latest heartbeat when it reports them, checked on
arrival (orchestrator/power.py), else the declared ones. Exit and cascade-stage rates
are the declared ones blended with the agents' counts (orchestrator/learned.py), and a
hosting device's `gflops` and `overhead_ms` are calibrated from the times its agent
measures (orchestrator/calibration.py), unless its compute is emulated. A model's blocks
are costed by their profiled times when a profile is stored, an int8 variant by its
measured speed against its source (orchestrator/profiled.py), that speed as its devices
confirm it once it runs (`calibration.variant_factors`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import solver
from orchestrator.calibration import (
    Timing,
    VariantRatio,
    calibrated_gflops,
    calibrated_overhead,
    model_factors,
    scaled,
    timings,
    variant_factors,
)
from orchestrator.catalog import deployment_models
from orchestrator.db.tables import Cascade, Deployment, Device, ExitHead, Link, Model, PlanVersion
from orchestrator.deployments import placement_dict, placement_settings
from orchestrator.learned import ExitEvidence, blend, gather, learned_model
from orchestrator.live.links import planned
from orchestrator.plan_versions import parse_plan
from orchestrator.power import planned_power
from orchestrator.profiled import profiled_layers, variant_layers, variant_ratio
from orchestrator.triggers import suspects

NO_HOST_GFLOPS = 1e-9
NO_HOST_MEMORY_MB = 1e-9


@dataclass
class Snapshot:
    """What the builder reads from SQL, as plain data (safe to use after the session)."""

    devices: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    cascades: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    placement: dict[str, float] = field(default_factory=dict)
    plan: solver.PlanDoc | None = None
    plan_version: int = 0
    plan_scenario: dict[str, Any] | None = None  # what the plan in force was solved from
    # int8 variant -> (its source, its time against the source's when it was made)
    variants: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass
class Built:
    scenario: dict[str, Any]
    waiting: dict[str, str]  # deployment -> why it is not in the scenario
    # The plan in force and the scenario it was solved from (incremental re-solves and the
    # hysteresis rule compare against them), and the hysteresis margin.
    previous_plan: solver.PlanDoc | None = None
    previous_scenario: dict[str, Any] | None = None
    margin: float = 0.05
    plan_version: int | None = None  # the version of `previous_plan`
    # Deployments that ask to be stopped rather than served degraded (`orchestrator.degrade`).
    stop: frozenset[str] = frozenset()
    # Agents' exit counts that contradicted themselves (learned.py) and compute times that
    # gave an impossible speed (calibration.py): not used.
    evidence_dropped: int = 0
    # Each int8 variant's speed ratio, measured when made and confirmed on the devices.
    variant_ratios: dict[str, VariantRatio] = field(default_factory=dict)

    @property
    def solvable(self) -> bool:
        return bool(self.scenario["devices"])


# Plan versions are immutable once written (only `in_force` and `stats` change): the
# plan in force and its scenario, a fleet's worth of JSON, are decoded (and the plan
# parsed) once per version.
PlanCache = dict[int, tuple[solver.PlanDoc | None, dict[str, Any]]]


def read_snapshot(session: Session, plans: PlanCache | None = None) -> Snapshot:
    """Everything the scenario is built from. Devices and links are read as plain rows:
    a fleet of 1,000 as ORM objects cost a tenth of a second before every solve."""
    snap = Snapshot()
    d = Device
    for row in session.execute(
        select(
            d.id, d.tier, d.gflops, d.memory_mb, d.power_idle_w, d.power_busy_w,
            d.battery_capacity_wh, d.battery_min_pct, d.grid_gco2_per_kwh, d.embodied_kgco2e,
            d.lifetime_h, d.state, d.emulated, d.zone, d.grid_declared_gco2_per_kwh,
        ).order_by(d.id)
    ):  # fmt: skip
        snap.devices.append(
            {
                "id": row.id,
                "tier": row.tier,
                "gflops": row.gflops,
                "memory_mb": row.memory_mb,
                "power_w": {"idle": row.power_idle_w, "busy": row.power_busy_w},
                "battery_capacity_wh": row.battery_capacity_wh,
                "battery_min_pct": row.battery_min_pct,
                "grid_gco2_per_kwh": row.grid_gco2_per_kwh,
                "embodied_kgco2e": row.embodied_kgco2e,
                "lifetime_h": row.lifetime_h,
                "state": row.state,
                "emulated": row.emulated,
                # A zone's intensity now replaces the grid figure unless one is declared
                # (orchestrator/carbon/live.py).
                "zone": row.zone,
                "grid_declared": row.grid_declared_gco2_per_kwh,
            }
        )
    lk = Link
    for a, b, mbps, rtt_ms, j_per_mb in session.execute(
        select(lk.a, lk.b, lk.mbps, lk.rtt_ms, lk.j_per_mb).order_by(lk.a, lk.b)
    ):
        snap.links.append({"a": a, "b": b, "mbps": mbps, "rtt_ms": rtt_ms, "j_per_mb": j_per_mb})
    heads: dict[str, list[ExitHead]] = {}
    for head in session.scalars(select(ExitHead)):
        heads.setdefault(head.model_id, []).append(head)
    variants = snap.variants
    for m in session.scalars(select(Model).order_by(Model.id)):
        order = {b["name"]: k for k, b in enumerate(m.blocks)}
        exits = sorted(
            (h for h in heads.get(m.id, []) if h.prob is not None),
            key=lambda h: order.get(h.after, len(order)),
        )
        entry: dict[str, Any] = {
            "id": m.id,
            "input_mb": m.input_mb,
            "layers": profiled_layers(m.blocks, m.detail or {}),
        }
        ratio = variant_ratio(m.detail or {})
        if m.parent_id is not None and ratio is not None:
            variants[m.id] = (m.parent_id, ratio)
        if m.accuracy is not None:
            entry["accuracy"] = m.accuracy
        if exits:
            entry["exits"] = [
                {"after": h.after, "prob": h.prob, "gflops": h.gflops, "params_mb": h.params_mb}
                for h in exits
            ]
        snap.models[m.id] = entry
    for variant_id, (parent_id, ratio) in variants.items():
        if parent_id in snap.models:  # its source's layers, as profiled
            entry = snap.models[variant_id]
            entry["layers"] = variant_layers(
                entry["layers"], snap.models[parent_id]["layers"], ratio
            )
    for c in session.scalars(select(Cascade)):
        snap.cascades[c.id] = list(c.stages)
    for dep in session.scalars(select(Deployment).order_by(Deployment.id)):
        snap.deployments.append({"id": dep.id, **dep.spec})
    snap.placement = placement_dict(placement_settings(session))
    version = session.scalar(select(PlanVersion.version).where(PlanVersion.in_force.is_(True)))
    if version is not None:
        cached = plans.get(version) if plans is not None else None
        if cached is None:
            row = session.execute(
                select(PlanVersion.plan, PlanVersion.scenario).where(PlanVersion.version == version)
            ).one()
            cached = (parse_plan(row.plan), row.scenario)
            if plans is not None:
                plans.clear()  # only the plan in force is ever asked for
                plans[version] = cached
        snap.plan, snap.plan_scenario = cached
        snap.plan_version = version
    return snap


def build(
    snap: Snapshot,
    beats: dict[str, dict[str, Any]],
    measured: dict[tuple[str, str], dict[str, Any]],
) -> Built:
    known = {d["id"]: d for d in snap.devices}
    cut = suspects(beats)  # a next hop's report: as good as lost
    alive = {d for d in known if d in beats and d not in cut}
    waiting: dict[str, str] = {}
    deployments: list[dict[str, Any]] = []
    for dep in snap.deployments:
        ends = [dep["source"], dep.get("sink") or dep["source"]]
        missing = [e for e in ends if e not in alive]
        if missing:
            waiting[dep["id"]] = cut.get(
                missing[0], f"device {missing[0]!r} is not alive (no recent heartbeat)"
            )
            continue
        deployments.append(dep)
    endpoints = {
        e for dep in deployments for e in (dep["source"], dep.get("sink") or dep["source"])
    }

    evidence = gather(beats, snap.models)
    models = {m: learned_model(entry, evidence) for m, entry in snap.models.items()}
    stage_models = _stage_models(snap)
    ran: list[tuple[Timing, float]] = []  # what real devices measured, at their speed
    devices: list[dict[str, Any]] = []
    for d in snap.devices:
        hosts = d["id"] in alive and d["state"] == "active"
        if not hosts and not (d["id"] in alive and d["id"] in endpoints):
            continue
        entry: dict[str, Any] = {
            "id": d["id"],
            "tier": d["tier"],
            "gflops": NO_HOST_GFLOPS,
            "memory_mb": d["memory_mb"] if hosts else NO_HOST_MEMORY_MB,
            "power_w": planned_power(d["power_w"], beats.get(d["id"]))[0],
            "grid_gco2_per_kwh": d["grid_gco2_per_kwh"],
            "embodied_kgco2e": d["embodied_kgco2e"],
            "lifetime_h": d["lifetime_h"],
        }
        if hosts:
            entry["gflops"] = d["gflops"]
            if not d.get("emulated"):
                timed = timings(beats[d["id"]].get("metrics") or {}, models, stage_models)
                entry["gflops"], bad = calibrated_gflops(d["gflops"], timed)
                evidence.dropped += bad
                ran.extend((t, entry["gflops"]) for t in timed)
                overhead = calibrated_overhead(beats[d["id"]].get("metrics") or {})
                if overhead > 0:
                    entry["overhead_ms"] = overhead
        # A device on its charger is planned as mains powered: its battery limits nothing
        # until it is unplugged (a `charging` trigger re-plans both ways).
        if d["battery_capacity_wh"] is not None and beats[d["id"]].get("charging") is not True:
            level = beats[d["id"]].get("battery_pct")
            entry["battery"] = {
                "capacity_wh": d["battery_capacity_wh"],
                "level_pct": float(level) if level is not None else 100.0,
                "min_pct": d["battery_min_pct"],
            }
        devices.append(entry)
    present = {d["id"] for d in devices}
    factors, ratios = variant_factors(
        {v: r for v, r in snap.variants.items() if v in models}, ran, model_factors(ran)
    )

    links: list[dict[str, Any]] = []
    declared = set()
    for link in snap.links:
        if link["a"] not in present or link["b"] not in present:
            continue
        key = (link["a"], link["b"])
        declared.add(key)
        figures = planned(link, measured.get(key))
        assert figures is not None  # a declared link always has figures
        links.append(link | {"mbps": figures["mbps"], "rtt_ms": figures["rtt_ms"]})
    for (a, b), seen in sorted(measured.items()):
        if (a, b) in declared or a not in present or b not in present:
            continue
        figures = planned(None, seen)
        if figures is not None:
            links.append({"a": a, "b": b, "mbps": figures["mbps"], "rtt_ms": figures["rtt_ms"],
                          "j_per_mb": 0.0})  # fmt: skip

    apps: list[dict[str, Any]] = []
    used_models: list[str] = []
    for dep in deployments:
        app = _app(dep, snap.cascades, evidence)
        apps.append(app)
        for model_id in deployment_models(dep, snap.cascades):
            if model_id not in used_models:
                used_models.append(model_id)

    placement = snap.placement
    scenario: dict[str, Any] = {
        "version": 1,
        "horizon_h": placement["horizon_h"],
        "max_utilization": placement["max_utilization"],
        "objective": {k: placement[k] for k in ("energy", "carbon", "latency", "migration")},
        "devices": devices,
        "links": links,
        "models": [
            scaled(models[m], factors.get(m, 1.0)) for m in sorted(used_models) if m in models
        ],
        "apps": apps,
    }
    if snap.plan is not None:
        names = {a["id"] for a in apps}
        scenario["previous"] = {
            "apps": [
                {
                    "id": app.id,
                    "model": app.model,
                    "segments": _dumped(app.segments),
                    "stages": _dumped(app.stages),
                }
                for app in snap.plan.apps
                if app.id in names
            ]
        }
    return Built(
        scenario=scenario,
        waiting=waiting,
        previous_plan=snap.plan,
        previous_scenario=snap.plan_scenario,
        plan_version=snap.plan_version if snap.plan is not None else None,
        margin=float(placement.get("hysteresis", 0.05)),
        stop=frozenset(d["id"] for d in deployments if d.get("when_infeasible") == "stop"),
        evidence_dropped=evidence.dropped,
        variant_ratios=ratios,
    )


def _stage_models(snap: Snapshot) -> Callable[[str, int], str | None]:
    """(deployment, stage index) -> the stage's model id, for the cascades deployed."""
    table: dict[tuple[str, int], str] = {}
    for dep in snap.deployments:
        cascade = dep.get("cascade")
        stages = snap.cascades.get(cascade, []) if isinstance(cascade, str) else cascade or []
        for k, stage in enumerate(stages):
            table[(dep["id"], k)] = stage["model"]
    return lambda deployment, index: table.get((deployment, index))


def _dumped(items: list[solver.Segment] | list[solver.Stage] | None) -> Any:
    return None if items is None else [item.model_dump() for item in items]


def _app(
    dep: dict[str, Any], cascades: dict[str, list[dict[str, Any]]], evidence: ExitEvidence
) -> dict[str, Any]:
    app: dict[str, Any] = {"id": dep["id"]}
    if dep.get("model") is not None:
        app["model"] = dep["model"]
    elif dep.get("variants") is not None:
        app["variants"] = list(dep["variants"])
        if dep.get("min_accuracy") is not None:
            app["min_accuracy"] = dep["min_accuracy"]
    else:
        cascade = dep["cascade"]
        stages = cascades.get(cascade, []) if isinstance(cascade, str) else cascade
        app["cascade"] = []
        for k, stage in enumerate(stages):
            entry = {"model": stage["model"]}
            if stage.get("exit_prob") is not None:
                entry["exit_prob"] = blend(stage["exit_prob"], evidence.stages.get((dep["id"], k)))
            app["cascade"].append(entry)
    app["source"] = dep["source"]
    if dep.get("sink") is not None:
        app["sink"] = dep["sink"]
    app["rate_rps"] = dep["rate_rps"]
    for key in ("slo_ms", "allowed_tiers", "max_stages"):
        if dep.get(key) is not None:
            app[key] = dep[key]
    return app
