"""The problems this worker process solved last, by the scenario each is the problem of.

A re-plan derives its problem from one of them (`orchestrator.replacement`) instead of
parsing and routing the whole fleet again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import solver


@dataclass(slots=True)
class Remembered:
    """A problem this worker solved, the scenario it is the problem of, and, when apps
    were set aside from it, the scenario and problem they were set aside from."""

    scenario: dict[str, Any]
    problem: solver.Problem
    whole: tuple[dict[str, Any], solver.Problem] | None = None
    key: str | None = None  # the scenario's digest, made when first compared

    def digest(self) -> str:
        if self.key is None:
            self.key = digest_of(self.scenario)
        return self.key


# The problems this worker process solved last (its `previous` aside), most recent last:
# the next re-plan derives its problem from the last re-plan's, or from the one of the
# scenario in force (`solver.apply_change`: routes, costs, fleet tables and the evaluation
# carry over) instead of parsing and routing the whole fleet again. The one in force is
# used at every re-plan while it is in force: it is kept as the most recent (least
# recently used out).
# A scenario is found by identity first (a caller that hands back the very document a
# re-plan returned, as the simulator does: the documents are records and are not changed
# afterwards), else by a digest of its JSON, made only when it is needed (a worker of the
# control plane's pool gets every document pickled: there, one digest per re-plan and one
# per kept problem; at 200 devices a digest is a tenth of a re-plan).
SOLVED: list[Remembered] = []
KEEP = 3
FRAME = ("version", "horizon_h", "max_utilization", "objective", "models")


@dataclass(frozen=True, slots=True)
class Index:
    """A scenario document's devices, links and apps by id (links by their ends)."""

    doc: Mapping[str, Any]
    devices: dict[str, dict[str, Any]]
    links: dict[tuple[str, str], dict[str, Any]]
    apps: dict[str, dict[str, Any]]


# The indexes of the documents compared last, by identity (the documents are records, not
# changed afterwards, as above): a re-plan compares the scenario of now with the plan in
# force's and with the last re-plan's, and the plan in force's stays for many re-plans; a
# pass of relaxed searches compares its scenario with the last pass's
# (`orchestrator.degrade`). Five, least recently used out: a pool worker gets every
# document pickled, so there none is found again, and each kept index holds its document
# alive.
INDEXES: list[Index] = []
# The plan in force's, the last re-plan's and this one's; the last relaxed pass's and this one's.
KEEP_INDEXES = 5


def index_of(doc: Mapping[str, Any]) -> Index:
    found = next((ix for ix in INDEXES if ix.doc is doc), None)
    if found is None:
        found = Index(
            doc,
            {d["id"]: d for d in doc.get("devices", [])},
            {(lk["a"], lk["b"]): lk for lk in doc.get("links", [])},
            {a["id"]: a for a in doc.get("apps", [])},
        )
    else:
        INDEXES.remove(found)
    INDEXES.append(found)
    del INDEXES[:-KEEP_INDEXES]
    return found


def digest_of(scenario: dict[str, Any]) -> str:
    body = {k: v for k, v in scenario.items() if k != "previous"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def remember(
    scenario: dict[str, Any],
    problem: solver.Problem,
    whole: tuple[dict[str, Any], solver.Problem] | None = None,
) -> None:
    SOLVED[:] = [s for s in SOLVED if s.scenario is not scenario]
    SOLVED.append(Remembered(scenario, problem, whole))
    del SOLVED[:-KEEP]


def recall(scenario: dict[str, Any]) -> Remembered | None:
    """The problem kept for `scenario` (the same document, or one of the same content),
    made the most recent."""
    found = next((s for s in reversed(SOLVED) if s.scenario is scenario), None)
    if found is None:
        key = digest_of(scenario)
        found = next((s for s in reversed(SOLVED) if s.digest() == key), None)
    if found is not None:
        SOLVED.remove(found)
        SOLVED.append(found)
    return found


__all__ = ["FRAME", "SOLVED", "Index", "Remembered", "index_of", "recall", "remember"]
