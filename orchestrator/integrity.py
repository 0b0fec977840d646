"""Rows that no read can serve: Infinity or NaN (JSON has neither), strings with NUL or a
lone surrogate (neither PostgreSQL nor UTF-8 holds them), a data-plane URL that is not
http(s) to a host. The API refuses all of them at its edge now; this finds what an older
version stored, for the start-up log and `continuum db check`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from orchestrator.db.tables import Base

# What operators and agents wrote. Plans, rollouts and artifacts are the control plane's
# own output, computed from these.
TABLES = (
    "devices",
    "links",
    "api_keys",
    "models",
    "exit_heads",
    "cascades",
    "deployments",
    "placement_settings",
    "audit_log",
)
_BATCH = 1000


@dataclass(frozen=True)
class BadRow:
    table: str
    key: str  # the row's primary key
    field: str  # the column, and the path inside a JSON column
    problem: str

    def __str__(self) -> str:
        return f"{self.table}[{self.key}].{self.field}: {self.problem}"


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (not UTF-8)"
    return None


def _problems(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path, f"is {value}, not a finite number"
    elif isinstance(value, str):
        problem = _text_problem(value)
        if problem is not None:
            yield path, problem
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(str(key))
            if problem is not None:
                yield f"{path}.{key!a}", f"its key {problem}"
            yield from _problems(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _problems(item, f"{path}[{i}]")


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL with a host"
    return None


def scan(session: Session, limit: int = 1000) -> list[BadRow]:
    """Up to `limit` bad values, table by table."""
    found: list[BadRow] = []
    for name in TABLES:
        table: Table = Base.metadata.tables[name]
        keys = [c.name for c in table.primary_key.columns]
        rows = session.execute(select(table).execution_options(yield_per=_BATCH))
        for row in rows.mappings():
            key = ",".join(_printable(str(row[k])) for k in keys)
            for column, value in row.items():
                for field, problem in _problems(value, column):
                    found.append(BadRow(name, key, _printable(field), problem))
            url = row.get("data_plane_url") if name == "devices" else None
            if isinstance(url, str) and _text_problem(url) is None:
                url_problem = _url_problem(url)
                if url_problem is not None:
                    found.append(BadRow(name, key, "data_plane_url", url_problem))
            if len(found) >= limit:
                return found[:limit]
    return found


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
