"""What the console's pages show, read from the database in one transaction each: the plan
in force beside the devices and deployments, the plan history and diffs, and the models.
The live halves (heartbeats, measured links) are joined in by the console service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only

from orchestrator import catalog, deployments, fleet
from orchestrator.db.tables import Device, PlanVersion
from orchestrator.errors import NotFound
from orchestrator.plan_versions import parse_apps


@dataclass
class InForce:
    """The plan in force, what the console needs of it."""

    version: int | None = None
    created_at: str | None = None
    reason: str = ""
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> DeviceUse
    links: dict[tuple[str, str], float] = field(default_factory=dict)  # (a, b) -> utilization
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> scenario app
    embodied_g: dict[str, float] = field(default_factory=dict)  # app -> per inference
    placements: dict[str, dict[str, Any]] = field(default_factory=dict)  # app -> API entry


def in_force_version(session: Session) -> int | None:
    """The version in force, alone: what a page asks first, to reuse its cached figures (a
    version's documents never change; reading and parsing them at 1,000 devices does not
    fit in a page's time)."""
    return session.scalar(select(PlanVersion.version).where(PlanVersion.in_force.is_(True)))


def in_force(session: Session) -> InForce:
    row = session.scalar(select(PlanVersion).where(PlanVersion.in_force.is_(True)))
    if row is None:
        return InForce()
    plan, scenario = row.plan or {}, row.scenario or {}
    links = {}
    for link in plan.get("links", []):
        a, b = sorted((str(link["a"]), str(link["b"])))
        links[(a, b)] = float(link.get("utilization") or 0.0)
    return InForce(
        version=row.version,
        created_at=row.created_at.isoformat(),
        reason=row.reason,
        devices={str(d["id"]): d for d in plan.get("devices", [])},
        links=links,
        apps={str(a["id"]): a for a in scenario.get("apps", [])},
        embodied_g=_embodied(scenario, plan),
        placements=deployments.placements(plan),
    )


def _embodied(scenario: dict[str, Any], plan: dict[str, Any]) -> dict[str, float]:
    """Each app's embodied carbon per inference (g): its compute seconds on each device at
    the device's declared speed, times the device's embodied carbon per second of life
    (the cost model's `embodied_g_per_s`), every block counted (exits not discounted)."""
    devices = {d["id"]: d for d in scenario.get("devices", [])}
    models = {m["id"]: m for m in scenario.get("models", [])}

    def per_s(device_id: str) -> float:
        d = devices.get(device_id) or {}
        life_h = float(d.get("lifetime_h") or 35040.0)
        return float(d.get("embodied_kgco2e") or 0.0) * 1000.0 / (life_h * 3600.0)

    def seconds(device_id: str, gflops: float) -> float:
        speed = float((devices.get(device_id) or {}).get("gflops") or 0.0)
        return gflops / speed if speed > 0 else 0.0

    out: dict[str, float] = {}
    for app in plan.get("apps", []):
        grams = 0.0
        model = models.get(app.get("model") or "") or {}
        names = [b["name"] for b in model.get("blocks", [])]
        flops = [float(b.get("gflops") or 0.0) for b in model.get("blocks", [])]
        for seg in app.get("segments") or []:
            if seg["first"] in names and seg["last"] in names:
                span = flops[names.index(seg["first"]) : names.index(seg["last"]) + 1]
                grams += seconds(seg["device"], sum(span)) * per_s(seg["device"])
        for stage in app.get("stages") or []:
            blocks = (models.get(stage["model"]) or {}).get("blocks", [])
            total = sum(float(b.get("gflops") or 0.0) for b in blocks)
            grams += seconds(stage["device"], total) * per_s(stage["device"])
        out[str(app["id"])] = grams
    return out


_DEVICE_COLUMNS = (
    Device.id, Device.tier, Device.zone, Device.state, Device.emulated, Device.memory_mb,
    Device.power_idle_w, Device.power_busy_w, Device.power_provenance,
    Device.battery_capacity_wh, Device.battery_min_pct,
)  # fmt: skip


def devices(session: Session) -> tuple[list[Any], float]:
    """Every device, the columns the pages show as plain rows (building 1,000 ORM objects
    was most of a fleet page's time), and the placement horizon (hours) batteries are
    judged against."""
    horizon = deployments.placement_settings(session).horizon_h
    rows: list[Any] = list(session.execute(select(*_DEVICE_COLUMNS).order_by(Device.id)).all())
    return rows, float(horizon)


def deployment_rows(session: Session, plan: InForce) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The deployments' views (placed as in `plan`, the plan in force) and the constraint
    code (solver.Code) of each deployment the latest plan set aside."""
    latest = session.scalar(
        select(PlanVersion)
        .options(load_only(PlanVersion.version, PlanVersion.stats))
        .order_by(PlanVersion.version.desc())
        .limit(1)
    )
    codes = dict((latest.stats or {}).get("unplaced_codes") or {}) if latest is not None else {}
    views = deployments.views(session, placed=plan.placements)
    blamed = [v["name"] for v in views if v["status"] == "infeasible" and v["name"] not in codes]
    if blamed and latest is not None:
        # The whole latest plan was infeasible: its reason (which these views show) has
        # its code in the document.
        doc = session.scalar(select(PlanVersion.plan).where(PlanVersion.version == latest.version))
        code = (doc or {}).get("reason_code")
        if code:
            codes.update(dict.fromkeys(blamed, str(code)))
    return views, codes


def declared_links(session: Session) -> dict[tuple[str, str], dict[str, float]]:
    return {(k.a, k.b): {"mbps": k.mbps, "rtt_ms": k.rtt_ms} for k in fleet.list_links(session)}


_HISTORY_COLUMNS = (
    PlanVersion.version,
    PlanVersion.created_at,
    PlanVersion.solver,
    PlanVersion.status,
    PlanVersion.objective,
    PlanVersion.bound,
    PlanVersion.solve_s,
    PlanVersion.reason,
    PlanVersion.stats,
    PlanVersion.in_force,
)


def history(session: Session, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` plan versions without their documents (their totals are in
    their stats since the console exists; older versions show none)."""
    rows = session.scalars(
        select(PlanVersion)
        .options(load_only(*_HISTORY_COLUMNS))
        .order_by(PlanVersion.version.desc())
        .limit(limit)
    )
    out = []
    for r in rows:
        stats = r.stats or {}
        gap = None
        if r.objective is not None and r.bound is not None and abs(r.objective) > 1e-12:
            gap = max(0.0, (r.objective - r.bound) / abs(r.objective))
        out.append(
            {
                "version": r.version,
                "created_at": r.created_at.isoformat(),
                "solver": r.solver,
                "status": r.status,
                "objective": r.objective,
                "gap": gap,
                "solve_s": r.solve_s,
                "trigger": r.reason,
                "applied": bool(stats.get("applied", r.in_force)),
                "in_force": r.in_force,
                "totals": stats.get("totals"),
            }
        )
    return out


def version(session: Session, number: int) -> PlanVersion:
    row = session.get(PlanVersion, number)
    if row is None:
        raise NotFound(f"no plan version {number}")
    return row


def scenario_of(session: Session, number: int) -> dict[str, Any]:
    """A version's scenario, as the solver was given it (for `continuum solve`)."""
    row = version(session, number)
    if not row.scenario:
        raise NotFound(
            f"plan version {number} is older than the kept history: its scenario was pruned"
        )
    return dict(row.scenario)


def _placements(row: PlanVersion) -> dict[str, dict[str, Any]]:
    out = {}
    for app in parse_apps(row.plan or {}):
        where = [f"{s.first}..{s.last}@{s.device}" for s in app.segments or []]
        where += [f"{s.model}@{s.device}" for s in app.stages or []]
        out[app.id] = {
            "where": where,
            "latency_ms": app.latency_ms.worst,
            "energy_j": app.energy_j,
            "carbon_g": app.carbon_g,
            "slo_met": app.slo_met,
        }
    return out


def diff(session: Session, a: int, b: int) -> dict[str, Any]:
    """Two versions side by side: every app's placement and figures in each."""
    left, right = version(session, a), version(session, b)
    for row in (left, right):
        if "status" not in (row.plan or {}):
            raise NotFound(f"plan version {row.version}'s document was pruned (too old)")
    pa, pb = _placements(left), _placements(right)
    apps = []
    for app_id in sorted(set(pa) | set(pb)):
        x, y = pa.get(app_id), pb.get(app_id)
        apps.append({"id": app_id, "a": x, "b": y, "changed": x != y})
    head = {}
    for key, row in (("a", left), ("b", right)):
        head[key] = {
            "version": row.version,
            "solver": row.solver,
            "status": row.status,
            "objective": row.objective,
            "trigger": row.reason,
            "totals": (row.stats or {}).get("totals"),
        }
    return {"a": head["a"], "b": head["b"], "apps": apps}


def models(session: Session) -> list[dict[str, Any]]:
    """Every model with its blocks, exit heads, cut points (partitions) and variants."""
    rows = catalog.list_models(session)
    variants: dict[str, list[str]] = {}
    for m in rows:
        if m.parent_id is not None:
            variants.setdefault(m.parent_id, []).append(m.id)
    out = []
    for m in rows:
        out.append(
            {
                "id": m.id,
                "variant": m.variant,
                "parent_id": m.parent_id,
                "accuracy": m.accuracy,
                "blocks": list(m.blocks or []),
                "exits": [h.after for h in catalog.exit_heads(session, m.id)],
                "cuts": sorted((m.detail or {}).get("partitions", {})),
                "variants": sorted(variants.get(m.id, [])),
            }
        )
    return out
