"""Durable state: SQLAlchemy tables, sessions and migrations."""

from __future__ import annotations

from orchestrator.db.engine import make_engine, session_factory

__all__ = ["make_engine", "session_factory"]
