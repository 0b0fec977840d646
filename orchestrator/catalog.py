"""Models, exit heads and cascades (durable side): what the registry analysed, as rows.

Model bytes live in the artifact store; a model row holds its blocks as scenario-v1
layers, so the scenario builder never has to reopen an ONNX file.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator import audit
from orchestrator.db.tables import Artifact, Cascade, Deployment, ExitHead, Model
from orchestrator.errors import Conflict, Invalid, NotFound

ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_id(value: str, field: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise Invalid(f"{field}: must be 1-64 characters of A-Z a-z 0-9 . _ -", field=field)
    return value


def ensure_artifact(session: Session, sha256: str, size: int, kind: str) -> Artifact:
    row = session.get(Artifact, sha256)
    if row is None:
        row = Artifact(sha256=sha256, size=size, kind=kind, created_at=audit.now())
        session.add(row)
        session.flush()
    return row


def get_artifact(session: Session, sha256: str) -> Artifact:
    row = session.get(Artifact, sha256)
    if row is None:
        raise NotFound(f"no artifact {sha256}")
    return row


def model_exists(session: Session, model_id: str) -> bool:
    return session.get(Model, model_id) is not None


def register_model(
    session: Session,
    actor: str,
    model_id: str,
    sha256: str,
    size: int,
    analysis: dict[str, Any],
    *,
    accuracy: float | None = None,
    input_shapes: dict[str, list[int]] | None = None,
    parent_id: str | None = None,
    variant: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Model:
    if model_exists(session, model_id):
        raise Conflict(f"a model {model_id!r} already exists; choose another id")
    ensure_artifact(session, sha256, size, "variant" if variant else "model")
    info = dict(detail or {})
    info["uncounted_ops"] = analysis.get("uncounted_ops", {})
    if input_shapes:
        info["input_shapes"] = input_shapes
    model = Model(
        id=model_id,
        artifact_sha256=sha256,
        parent_id=parent_id,
        variant=variant,
        accuracy=accuracy,
        input_mb=analysis["input_mb"],
        inputs=analysis["inputs"],
        outputs=analysis["outputs"],
        blocks=analysis["blocks"],
        total_gflops=analysis["total_gflops"],
        params_mb=analysis["params_mb"],
        detail=info,
        created_at=audit.now(),
    )
    session.add(model)
    audit.record(
        session,
        actor,
        "model.variant_added" if variant else "model.uploaded",
        f"model:{model_id}",
        detail={"sha256": sha256, "blocks": len(analysis["blocks"]), "parent": parent_id},
    )
    return model


def list_models(session: Session) -> list[Model]:
    return list(session.scalars(select(Model).order_by(Model.id)))


def get_model(session: Session, model_id: str) -> Model:
    model = session.get(Model, model_id)
    if model is None:
        raise NotFound(f"no model {model_id!r}")
    return model


def exit_heads(session: Session, model_id: str) -> list[ExitHead]:
    rows = session.scalars(select(ExitHead).where(ExitHead.model_id == model_id))
    order = {b["name"]: k for k, b in enumerate(get_model(session, model_id).blocks)}
    return sorted(rows, key=lambda e: order.get(e.after, len(order)))


def models_in_use(session: Session) -> dict[str, list[str]]:
    """Model id -> deployments that name it (directly, as a variant or a cascade stage)."""
    cascades = {c.id: [s["model"] for s in c.stages] for c in session.scalars(select(Cascade))}
    users: dict[str, list[str]] = {}
    for dep in session.scalars(select(Deployment)):
        for model_id in deployment_models(dep.spec, cascades):
            users.setdefault(model_id, []).append(dep.id)
    return users


def deployment_models(spec: dict[str, Any], cascades: dict[str, list[Any]]) -> list[str]:
    if spec.get("model"):
        return [spec["model"]]
    if spec.get("variants"):
        return list(spec["variants"])
    cascade = spec.get("cascade")
    if isinstance(cascade, str):
        return [s if isinstance(s, str) else s["model"] for s in cascades.get(cascade, [])]
    if isinstance(cascade, list):
        return [stage["model"] for stage in cascade]
    return []


def delete_model(session: Session, actor: str, model_id: str) -> Model:
    model = get_model(session, model_id)
    users = models_in_use(session).get(model_id)
    if users:
        raise Conflict(f"model {model_id!r} is used by deployments {', '.join(sorted(users))}")
    variants = session.scalars(select(Model.id).where(Model.parent_id == model_id)).all()
    if variants:
        raise Conflict(f"model {model_id!r} has variants {', '.join(variants)}; delete them first")
    in_cascades = [
        c.id
        for c in session.scalars(select(Cascade))
        if any(s["model"] == model_id for s in c.stages)
    ]
    if in_cascades:
        raise Conflict(f"model {model_id!r} is a stage of cascades {', '.join(in_cascades)}")
    for head in session.scalars(select(ExitHead).where(ExitHead.model_id == model_id)):
        session.delete(head)
    session.delete(model)
    audit.record(session, actor, "model.deleted", f"model:{model_id}")
    return model


def check_exit_block(model: Model, after: str) -> None:
    names = [b["name"] for b in model.blocks]
    if after not in names[:-1]:
        raise Invalid(
            f"after: {after!r} is not a block before the last one of {model.id!r} "
            f"(blocks: {', '.join(names[:-1]) or 'none'})",
            field="after",
        )


def add_exit_head(
    session: Session,
    actor: str,
    model_id: str,
    after: str,
    sha256: str,
    size: int,
    gflops: float,
    params_mb: float,
    prob: float | None,
    threshold: float,
) -> ExitHead:
    model = get_model(session, model_id)
    check_exit_block(model, after)
    existing = session.scalar(
        select(ExitHead).where(ExitHead.model_id == model_id, ExitHead.after == after)
    )
    if existing is not None:
        raise Conflict(f"model {model_id!r} already has an exit head after {after!r}")
    ensure_artifact(session, sha256, size, "exit")
    head = ExitHead(
        model_id=model_id,
        after=after,
        artifact_sha256=sha256,
        gflops=gflops,
        params_mb=params_mb,
        prob=prob,
        threshold=threshold,
        created_at=audit.now(),
    )
    session.add(head)
    audit.record(session, actor, "model.exit_added", f"model:{model_id}", detail={"after": after})
    return head


def set_exit_probs(
    session: Session, actor: str, model_id: str, probs: dict[str, float], detail: dict[str, Any]
) -> list[ExitHead]:
    heads = exit_heads(session, model_id)
    for head in heads:
        if head.after in probs:
            head.prob = probs[head.after]
    audit.record(session, actor, "model.calibrated", f"model:{model_id}", detail=detail)
    return heads


def set_profile(session: Session, actor: str, model_id: str, profile: dict[str, Any]) -> None:
    """Store a model's measured block times in its `detail` (a new dict: the JSON column
    is saved only when it is replaced)."""
    model = get_model(session, model_id)
    model.detail = {**model.detail, "profile": profile}
    audit.record(session, actor, "model.profiled", f"model:{model_id}",
                 detail={"measured_on": profile.get("measured_on")})  # fmt: skip


# -- cascades ----------------------------------------------------------------------------------
def create_cascade(
    session: Session, actor: str, cascade_id: str, stages: list[dict[str, Any]]
) -> Cascade:
    check_id(cascade_id, "id")
    if session.get(Cascade, cascade_id) is not None:
        raise Conflict(f"a cascade {cascade_id!r} already exists")
    check_stages(session, stages, "stages")
    row = Cascade(id=cascade_id, stages=stages, created_at=audit.now())
    session.add(row)
    audit.record(session, actor, "cascade.created", f"cascade:{cascade_id}")
    return row


def check_stages(session: Session, stages: list[dict[str, Any]], field: str) -> None:
    if not stages:
        raise Invalid(f"{field}: a cascade needs at least one stage", field=field)
    for k, stage in enumerate(stages):
        if not model_exists(session, stage["model"]):
            raise Invalid(f"{field}[{k}].model: unknown model {stage['model']!r}", field=field)
        if k < len(stages) - 1 and stage.get("exit_prob") is None:
            raise Invalid(
                f"{field}[{k}].exit_prob: required for every stage but the last", field=field
            )


def list_cascades(session: Session) -> list[Cascade]:
    return list(session.scalars(select(Cascade).order_by(Cascade.id)))


def get_cascade(session: Session, cascade_id: str) -> Cascade:
    row = session.get(Cascade, cascade_id)
    if row is None:
        raise NotFound(f"no cascade {cascade_id!r}")
    return row


def delete_cascade(session: Session, actor: str, cascade_id: str) -> None:
    row = get_cascade(session, cascade_id)
    users = [
        d.id for d in session.scalars(select(Deployment)) if d.spec.get("cascade") == cascade_id
    ]
    if users:
        raise Conflict(f"cascade {cascade_id!r} is used by deployments {', '.join(sorted(users))}")
    session.delete(row)
    audit.record(session, actor, "cascade.deleted", f"cascade:{cascade_id}")
