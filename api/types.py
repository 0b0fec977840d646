"""Constrained types for every field the API accepts: finite numbers within a stated
range, bounded strings of valid UTF-8 without NUL, bounded maps and lists.

A value the database or the JSON encoder cannot hold back (a NUL on PostgreSQL, a lone
surrogate, Infinity) must be refused at the edge with a 422 naming the field: stored, it
would break every later read. Pydantic only, since `api.wire` (which agents import)
builds on these.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

# Bounds of the numbers the API stores or plans with; wide enough for any real fleet,
# narrow enough that sums and products of them stay finite.
MAX_INT = 2**31 - 1  # a PostgreSQL integer
MAX_COUNT = 2**53  # a counter that JSON numbers still hold exactly
MAX_GFLOPS = 1e9
MAX_MB = 1e12
MAX_WATTS = 1e6
MAX_MS = 1e7
MAX_MBPS = 1e7
MAX_WEIGHT = 1e6
# Strings and collections
MAX_TEXT = 256
MAX_LABELS = 64
MAX_LABEL_KEY = 63
MAX_KEYS = 256  # partitions and metrics in one heartbeat
MAX_LINKS = 256
MAX_BUCKETS = 64
MAX_URL = 512


def clean_text(value: str) -> str:
    """Refuse NUL (PostgreSQL cannot store it) and lone surrogates (not UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 (it holds a lone surrogate)") from None
    return value


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    try:
        _ = parts.port  # a port out of range raises
    except ValueError as exc:
        raise ValueError(f"has an invalid port ({exc})") from None
    if any(c.isspace() for c in value):
        raise ValueError("must not contain whitespace")
    return value


def number(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float,
    default: Any = ...,
) -> Any:
    """A finite float within [ge or gt, le]."""
    return Field(default, ge=ge, gt=gt, le=le, allow_inf_nan=False)


Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(clean_text)]
LabelKey = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_KEY), AfterValidator(clean_text)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(clean_text)]
Token = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(clean_text)]
Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(clean_text)]
Labels = Annotated[dict[LabelKey, Text], Field(max_length=MAX_LABELS)]
HttpUrl = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL),
    AfterValidator(clean_text),
    AfterValidator(_http_url),
]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Version = Annotated[int, Field(ge=0, le=MAX_INT)]
RowId = Annotated[int, Field(ge=1, le=MAX_INT)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
# A timestamp in a response: ISO 8601 with its offset, naive ones taken as UTC.
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
