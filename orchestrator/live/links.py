"""How both backends key a measured link: once per undirected pair, smaller id first."""

from __future__ import annotations

LinkKey = tuple[str, str]


def link_key(a: str, b: str) -> LinkKey:
    if a == b:
        raise ValueError(f"a link joins two different devices (got {a!r} twice)")
    return (a, b) if a < b else (b, a)
