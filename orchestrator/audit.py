"""The audit log: every operator action and every placement decision, with its reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
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


# A bulk delete in SQL; the session's objects are not matched in Python (entries loaded in
# this session are not expected, and SQLite's naive timestamps would not compare).
_BULK = {"synchronize_session": False}


def sweep(session: Session, at: datetime, max_age_days: float | None, max_rows: int | None) -> int:
    """Delete entries older than `max_age_days` before `at`, then all but the newest
    `max_rows`; the number deleted. A sweep that deleted anything says so in the log it
    swept, so a gap in the history is explained where it shows."""
    removed = 0
    if max_age_days is not None:
        cutoff = at - timedelta(days=max_age_days)
        old = delete(AuditEntry).where(AuditEntry.at < cutoff)
        removed += _count(session.execute(old, execution_options=_BULK))
    if max_rows is not None:
        # The newest id beyond the kept rows; ids grow with time, so it and older go.
        boundary = session.scalar(
            select(AuditEntry.id).order_by(AuditEntry.id.desc()).offset(max_rows).limit(1)
        )
        if boundary is not None:
            beyond = delete(AuditEntry).where(AuditEntry.id <= boundary)
            removed += _count(session.execute(beyond, execution_options=_BULK))
    if removed:
        detail = {"removed": removed, "max_age_days": max_age_days, "max_rows": max_rows}
        record(session, "loop", "audit.swept", "audit", f"retention removed {removed}", detail)
    return removed


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
