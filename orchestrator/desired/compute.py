"""The plan in force -> what each agent should run.

An agent's desired state lists the partitions it hosts (block ranges, each a partition
ONNX artifact), the exit heads on them, the cascade stages it hosts, where each output
goes next (the next agent's data-plane URL) and the deployments whose inputs it produces.
Its version is a desired-state *revision*: it only grows, so the agent's `after_version`
long poll never misses a change and never sees a version go back. A rollout publishes two
revisions per plan version (make-before-break, see `orchestrator.rollouts`):

- `loading`: the routes of the plan whose routes are live, plus the partitions and stages
  the new plan adds (each agent loads and warms them and reports them ready);
- `switching` / `live`: the new plan alone (routes switch; old partitions retire once
  `HeartbeatAck.live_version` covers this revision);
- `rolled_back`: the old plan again, at a fresh revision (the new partitions retire).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import solver
from orchestrator.db.tables import (
    Artifact,
    Cascade,
    Deployment,
    Device,
    ExitHead,
    Model,
    PlanVersion,
    Rollout,
)
from orchestrator.deployments import TOKEN_KEY
from orchestrator.plan_versions import parse_apps, parse_plan

Json = dict[str, Any]
# One agent's desired state, in the shape of `api.wire.DesiredState` (the API validates it
# into that model; the orchestrator does not import `api`).
Desired = dict[str, Any]


class Endpoint(NamedTuple):
    """Where a device serves its data plane."""

    id: str
    data_plane_url: str


def _empty(device_id: str, version: int) -> Desired:
    return {
        "device_id": device_id,
        "version": version,
        "partitions": [],
        "cascade_stages": [],
        "sources": [],
    }


def channel(device_id: str) -> str:
    """The live-state channel that wakes a device's long poll."""
    return f"desired:{device_id}"


def partition_key(deployment: str, model: str, first: int, last: int) -> str:
    return f"{deployment}/{model}/{first}-{last}"


def stage_key(deployment: str, index: int) -> str:
    return f"{deployment}/stage{index}"


def in_force(session: Session) -> PlanVersion | None:
    return session.scalar(select(PlanVersion).where(PlanVersion.in_force.is_(True)))


def current_rollout(session: Session) -> Rollout | None:
    """The newest rollout that published a revision: it decides what agents run."""
    return session.scalar(
        select(Rollout).where(Rollout.revision.is_not(None)).order_by(Rollout.id.desc()).limit(1)
    )


def current_version(session: Session) -> int:
    """The desired-state revision agents should run now."""
    rollout = current_rollout(session)
    if rollout is not None and rollout.revision is not None:
        return rollout.revision
    version = session.scalar(select(PlanVersion.version).where(PlanVersion.in_force.is_(True)))
    return int(version or 0)


def next_revision(session: Session) -> int:
    """Above every revision and plan version handed out so far (rows written before
    revisions existed served the plan version as the revision)."""
    top_revision = session.scalar(select(func.max(Rollout.revision))) or 0
    top_plan = session.scalar(select(func.max(PlanVersion.version))) or 0
    return int(max(top_revision, top_plan)) + 1


def live_version(session: Session) -> int:
    """The newest revision whose routes every agent has switched to (`settled`)."""
    for rollout in session.scalars(
        select(Rollout).where(Rollout.revision.is_not(None)).order_by(Rollout.id.desc())
    ):
        if rollout.state in ("live", "rolled_back") and (rollout.acks or {}).get("settled"):
            return int(rollout.revision or 0)
    return 0


def _plan(session: Session, version: int | None) -> solver.PlanDoc | None:
    if version is None:
        return None
    row = session.get(PlanVersion, version)
    return with_held(session, parse_plan(row.plan), row) if row is not None else None


# How many earlier plans are searched for a waiting deployment's last placement.
_HELD_LOOKBACK = 50


def with_held(
    session: Session, plan: solver.PlanDoc | None, row: PlanVersion | None
) -> solver.PlanDoc | None:
    """`plan` (stored as `row`) plus, for every deployment it left waiting because its
    source or sink was not alive, the placement the latest earlier plan gave it.

    A plan says nothing true about devices it could not see: a site cut off by a network
    partition, agents still reconnecting to a restarted control plane. Dropping their
    deployments from the desired state handed the agents an empty one the moment they
    came back (404s at the edge until the re-plan that their return triggers rolled out).
    Held, they keep serving what they served; the re-plan takes over once they report.
    The solver does not count a held deployment's load (it may not run at all)."""
    if plan is None or row is None:
        return plan
    missing = set((row.stats or {}).get("waiting") or {}) - {a.id for a in plan.apps}
    if not missing:
        return plan
    held: list[solver.AppResult] = []
    earlier = session.scalars(
        select(PlanVersion.plan)
        .where(PlanVersion.version < row.version)
        .order_by(PlanVersion.version.desc())
        .limit(_HELD_LOOKBACK)
    )
    for document in earlier:
        for app in parse_apps(document) if "apps" in document else []:
            if app.id in missing and (app.segments or app.stages):
                held.append(app)
                missing.discard(app.id)
        if not missing:
            break
    return plan.model_copy(update={"apps": [*plan.apps, *held]}) if held else plan


class _Refs:
    def __init__(self, session: Session, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.sizes = dict(session.execute(select(Artifact.sha256, Artifact.size)).all())

    def artifact(self, sha256: str) -> Json:
        return dict(
            sha256=sha256, url=f"{self.base}/v1/artifacts/{sha256}", size=self.sizes.get(sha256, 0)
        )


def compute(session: Session, base_url: str = "") -> tuple[int, dict[str, Desired], list[str]]:
    """Every device's desired state at the current revision (devices with nothing to do
    get an empty one at the same version): (revision, states, the devices the current
    rollout counts on). Every phase of a rollout answers its targets, see
    `orchestrator.desired.cache`."""
    rollout = current_rollout(session)
    if rollout is None or rollout.revision is None:
        plan_row = in_force(session)
        version = plan_row.version if plan_row is not None else 0
        plan = with_held(session, parse_plan(plan_row.plan), plan_row) if plan_row else None
        return version, for_plan(session, plan, version, base_url), []
    version = rollout.revision
    targets = list((rollout.acks or {}).get("targets") or [])
    if rollout.state == "loading":
        refs = References(session, base_url)
        old = for_plan(session, _plan(session, rollout.from_version), version, base_url, refs)
        new = for_plan(session, _plan(session, rollout.plan_version), version, base_url, refs)
        return version, merge(old, new), targets
    shown = rollout.from_version if rollout.state == "rolled_back" else rollout.plan_version
    return version, for_plan(session, _plan(session, shown), version, base_url), targets


def merge(old: dict[str, Desired], new: dict[str, Desired]) -> dict[str, Desired]:
    """The loading phase: what runs now (routes, sources, tokens) plus every partition and
    stage the new plan adds. A key in both keeps its old spec: its route is live."""
    out: dict[str, Desired] = {}
    for device_id in old.keys() | new.keys():
        was = old.get(device_id) or _empty(device_id, 0)
        will = new.get(device_id) or _empty(device_id, 0)
        state = {**was, "version": will["version"] or was["version"]}
        have = set(hosted_keys(was))
        state["partitions"] = [*was["partitions"]] + [
            p for p in will["partitions"] if p["key"] not in have
        ]
        state["cascade_stages"] = [*was["cascade_stages"]] + [
            s for s in will["cascade_stages"] if s["key"] not in have
        ]
        state["sources"] = list(was["sources"])
        out[device_id] = state
    return out


def added_keys(old: dict[str, Desired], new: dict[str, Desired]) -> dict[str, list[str]]:
    """device -> partition and stage keys the new states host that the old ones do not:
    what must be reported ready before routes switch."""
    added: dict[str, list[str]] = {}
    for device_id, state in new.items():
        have = set(hosted_keys(old[device_id])) if device_id in old else set()
        keys = [k for k in hosted_keys(state) if k not in have]
        if keys:
            added[device_id] = keys
    return added


class References:
    """What every state refers to, read once for all the plans of one computation (a
    rollout's loading phase builds the states of two plans). Plain rows where a fleet's
    worth is read: this runs on every rollout phase."""

    def __init__(self, session: Session, base_url: str) -> None:
        self.devices: dict[str, Endpoint] = {}
        self.memory_mb: dict[str, float] = {}  # for a whole-model fallback's room
        for row in session.execute(select(Device.id, Device.data_plane_url, Device.memory_mb)):
            self.devices[row.id] = Endpoint(row.id, row.data_plane_url)
            self.memory_mb[row.id] = float(row.memory_mb)
        self.refs = _Refs(session, base_url)
        self.deployments = {d.id: d for d in session.scalars(select(Deployment))}
        self.models = {m.id: m for m in session.scalars(select(Model))}
        self.cascades = {c.id: c.stages for c in session.scalars(select(Cascade))}
        self.heads: dict[str, list[ExitHead]] = {}
        for head in session.scalars(select(ExitHead).where(ExitHead.prob.is_not(None))):
            self.heads.setdefault(head.model_id, []).append(head)


def for_plan(
    session: Session,
    plan: solver.PlanDoc | None,
    version: int,
    base_url: str = "",
    references: References | None = None,
) -> dict[str, Desired]:
    """Every device's desired state under `plan`, stamped `version`."""
    known = references if references is not None else References(session, base_url)
    devices, refs, deployments = known.devices, known.refs, known.deployments
    models, cascades, heads = known.models, known.cascades, known.heads
    states = {d: _empty(d, version) for d in devices}
    if plan is None:
        return states

    def endpoint(device_id: str) -> Json | None:
        device = devices.get(device_id)
        return dict(device_id=device_id, data_plane_url=device.data_plane_url) if device else None

    for app in plan.apps:
        dep = deployments.get(app.id)
        if dep is None:
            continue  # deleted since this plan was made
        spec = dep.spec
        token = spec[TOKEN_KEY]
        source = spec["source"]
        sink = endpoint(spec.get("sink") or source)
        if sink is None or source not in states:
            continue
        mode = spec.get("fallback", "none")
        if app.segments:
            _partitions(app, dep.id, token, sink, models, heads, refs, devices, states)
            _mark_fallback(states, app.segments, dep.id, mode)
        elif app.stages:
            stage_defs = spec["cascade"]
            if isinstance(stage_defs, str):
                stage_defs = cascades.get(stage_defs, [])
            _stages(app, dep.id, token, sink, stage_defs, models, refs, devices, states)
            _mark_fallback(states, app.stages, dep.id, mode)
        else:
            continue
        hop = _first_hop(app, dep.id, models, devices)
        if hop is not None:
            kept = None
            if mode == "local-model":
                kept = _whole_model(app, dep.id, source, token, sink, known, states)
            states[source]["sources"].append(
                dict(
                    deployment=dep.id,
                    rate_rps=float(spec["rate_rps"]),
                    first_hop=hop,
                    data_plane_token=token,
                    fallback_key=kept,
                )
            )
    return states


def _mark_fallback(states: dict[str, Desired], placed: Any, dep_id: str, mode: str) -> None:
    """Flag what the plan put on each device for this deployment: it answers from what it
    holds when its next hop is unreachable."""
    if mode == "none":
        return
    for device in {p.device for p in placed or []}:
        state = states.get(device)
        for hosted in (*state["partitions"], *state["cascade_stages"]) if state else ():
            if hosted["deployment"] == dep_id:
                hosted["fallback"] = True


def fallback_key(deployment: str, model: str) -> str:
    return f"{deployment}/{model}/fallback"


def _whole_model(
    app: solver.AppResult,
    dep_id: str,
    source: str,
    token: str,
    sink: Json,
    known: References,
    states: dict[str, Desired],
) -> str | None:
    """`fallback: local-model`: add the whole model to the source's partitions when part
    of the route leaves it and its memory holds the model beside what the plan put there
    (weights, as the solver counts memory); the fallback's key, or None."""
    model = known.models.get(app.model or "")
    segments = app.segments or []
    if model is None or not segments or all(s.device == source for s in segments):
        return None  # a cascade (its stages fall back instead), or nothing leaves the source
    index = _block_index(model)
    held = sum(
        float(model.blocks[k].get("params_mb", 0.0))
        for s in segments
        if s.device == source
        for k in range(index[s.first], index[s.last] + 1)
    )
    if held + float(model.params_mb) > known.memory_mb.get(source, 0.0):
        return None
    key = fallback_key(dep_id, model.id)
    last = len(model.blocks) - 1
    states[source]["partitions"].append(dict(
        key=key, deployment=dep_id, model=model.id,
        first=model.blocks[0]["name"], last=model.blocks[last]["name"],
        first_index=0, last_index=last,
        artifact=known.refs.artifact(model.artifact_sha256), exits=[], next_hop=None,
        sink=sink, data_plane_token=token, fallback=False,
    ))  # fmt: skip
    return key


def _block_index(model: Model) -> dict[str, int]:
    return {b["name"]: k for k, b in enumerate(model.blocks)}


def _first_hop(
    app: solver.AppResult, dep_id: str, models: dict[str, Model], devices: dict[str, Endpoint]
) -> Json | None:
    if app.segments:
        model = models.get(app.model or "")
        seg = app.segments[0]
        if model is None or seg.device not in devices:
            return None
        index = _block_index(model)
        key = partition_key(dep_id, model.id, index[seg.first], index[seg.last])
        device = devices[seg.device]
    else:
        stage = (app.stages or [])[0]
        if stage.device not in devices:
            return None
        key = stage_key(dep_id, 0)
        device = devices[stage.device]
    return dict(device_id=device.id, data_plane_url=device.data_plane_url, key=key)


def _partitions(
    app: solver.AppResult,
    dep_id: str,
    token: str,
    sink: Json,
    models: dict[str, Model],
    heads: dict[str, list[ExitHead]],
    refs: _Refs,
    devices: dict[str, Endpoint],
    states: dict[str, Desired],
) -> None:
    model = models.get(app.model or "")
    if model is None:
        return
    index = _block_index(model)
    parts = model.detail.get("partitions", {})
    segments = app.segments or []
    ranges = [(index[s.first], index[s.last]) for s in segments]
    for k, seg in enumerate(segments):
        device = devices.get(seg.device)
        first, last = ranges[k]
        stored = parts.get(f"{first}-{last}")
        if device is None or stored is None:
            continue
        next_hop = None
        if k + 1 < len(segments):
            nxt = devices.get(segments[k + 1].device)
            if nxt is not None:
                next_hop = dict(
                    device_id=nxt.id,
                    data_plane_url=nxt.data_plane_url,
                    key=partition_key(dep_id, model.id, *ranges[k + 1]),
                )
        exits = [
            dict(
                after=h.after,
                artifact=refs.artifact(h.artifact_sha256),
                threshold=h.threshold,
                prob=h.prob,
            )
            for h in sorted(heads.get(model.id, []), key=lambda h: index.get(h.after, -1))
            if first <= index.get(h.after, -1) <= last
        ]
        states[device.id]["partitions"].append(
            dict(
                key=partition_key(dep_id, model.id, first, last),
                deployment=dep_id,
                model=model.id,
                first=seg.first,
                last=seg.last,
                first_index=first,
                last_index=last,
                artifact=refs.artifact(stored["sha256"]),
                exits=exits,
                next_hop=next_hop,
                sink=sink,
                data_plane_token=token,
            )
        )


def _stages(
    app: solver.AppResult,
    dep_id: str,
    token: str,
    sink: Json,
    stage_defs: list[dict[str, Any]],
    models: dict[str, Model],
    refs: _Refs,
    devices: dict[str, Endpoint],
    states: dict[str, Desired],
) -> None:
    stages = app.stages or []
    for k, stage in enumerate(stages):
        device = devices.get(stage.device)
        model = models.get(stage.model)
        if device is None or model is None:
            continue
        definition = stage_defs[k] if k < len(stage_defs) else {}
        next_stage = None
        if k + 1 < len(stages):
            nxt = devices.get(stages[k + 1].device)
            if nxt is not None:
                next_stage = dict(
                    device_id=nxt.id,
                    data_plane_url=nxt.data_plane_url,
                    key=stage_key(dep_id, k + 1),
                )
        states[device.id]["cascade_stages"].append(
            dict(
                key=stage_key(dep_id, k),
                deployment=dep_id,
                index=k,
                model=model.id,
                artifact=refs.artifact(model.artifact_sha256),
                exit_prob=definition.get("exit_prob"),
                threshold=definition.get("threshold"),
                next_stage=next_stage,
                sink=sink,
                data_plane_token=token,
            )
        )


def hosted_keys(state: Desired) -> list[str]:
    return [p["key"] for p in state["partitions"]] + [s["key"] for s in state["cascade_stages"]]
