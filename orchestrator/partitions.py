"""Partitions a plan needs: which block ranges are not extracted yet, and recording the
ones the process pool extracted (`orchestrator.model_jobs.extract_ranges`) in the catalog."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from orchestrator import audit
from orchestrator.artifacts import Artifacts
from orchestrator.db.tables import Artifact, Model

Job = tuple[str, dict[str, list[int]] | None, list[tuple[int, int]]]


def missing_ranges(
    session: Session, needed: dict[str, set[tuple[str, str]]], artifacts: Artifacts
) -> dict[str, Job]:
    jobs: dict[str, Job] = {}
    for model_id, segments in needed.items():
        model = session.get(Model, model_id)
        if model is None:
            continue
        index = {b["name"]: k for k, b in enumerate(model.blocks)}
        have = model.detail.get("partitions", {})
        missing = sorted(
            {(index[a], index[b]) for a, b in segments}
            - {tuple(map(int, k.split("-"))) for k in have}
        )
        if missing:
            # Restored from the database first on a replica that lacks the model's file.
            path = artifacts.local(model.artifact_sha256)
            if path is None:
                continue  # recorded but stored nowhere: nothing to cut it from
            jobs[model_id] = (str(path), model.detail.get("input_shapes"), missing)
    return jobs


def store_partitions(session: Session, model_id: str, made: list[dict[str, Any]]) -> None:
    model = session.get(Model, model_id)
    if model is None:
        return
    detail = dict(model.detail)
    parts = dict(detail.get("partitions", {}))
    for item in made:
        if session.get(Artifact, item["sha256"]) is None:
            session.add(
                Artifact(
                    sha256=item["sha256"],
                    size=item["size"],
                    kind="partition",
                    created_at=audit.now(),
                )
            )
            session.flush()
        parts[f"{item['first']}-{item['last']}"] = {
            "sha256": item["sha256"],
            "inputs": item["inputs"],
            "outputs": item["outputs"],
        }
    detail["partitions"] = parts
    # A new dict: SQLAlchemy does not see in-place changes to a JSON column.
    model.detail = detail
