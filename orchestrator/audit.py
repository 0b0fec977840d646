"""The audit log: every operator action and every placement decision, with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.db.tables import AuditEntry


def now() -> datetime:
    return datetime.now(UTC)


def record(
    session: Session,
    actor: str,
    action: str,
    target: str,
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to the caller's transaction: it commits (or not) with the change."""
    entry = AuditEntry(
        at=now(), actor=actor, action=action, target=target, reason=reason, detail=detail or {}
    )
    session.add(entry)
    return entry


def recent(session: Session, limit: int = 100) -> list[AuditEntry]:
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
    return list(rows)
