"""How a re-plan's candidate becomes its plan document: written once, when first read.

Most re-plans keep the plan in force, and the simulator reads no document of theirs (a
fleet's document is a tenth of a re-plan to dump); the control plane reads every one (it
keeps each candidate as a plan version), and a `Replacement` crossing its process pool
carries the document written (`Replacement.__getstate__`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import solver
from orchestrator.degrade import Degraded
from orchestrator.screen import Kept


class Draft(Protocol):
    """How a candidate's plan document is written: once, when it is first read."""

    def document(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Written:
    """A plan document, as stored (JSON)."""

    doc: dict[str, Any]

    def document(self) -> dict[str, Any]:
        return self.doc


@dataclass(frozen=True, slots=True)
class Solved:
    """A solver's candidate and the apps it serves degraded (their entries are written
    with the document)."""

    plan: solver.PlanDoc
    degraded: Degraded | None = None

    def document(self) -> dict[str, Any]:
        doc = self.plan.model_dump(mode="json")
        if self.degraded is not None:
            doc["apps"] += [r.model_dump(mode="json") for r in self.degraded.results]
        return doc


@dataclass(frozen=True, slots=True)
class InForceNow:
    """The plan in force, kept without a solve, as evaluated under the scenario of now."""

    kept: Kept
    solver_name: str

    def document(self) -> dict[str, Any]:
        p = self.kept.problem
        plan = solver.build_plan(
            p.cost, self.kept.held, solver.Status.FEASIBLE, self.solver_name,
            cache=p.app_costs, migration=p.migration, base=solver.base_evaluation(p),
        )  # fmt: skip
        return Solved(plan.doc, self.kept.degraded).document()


__all__ = ["Draft", "InForceNow", "Solved", "Written"]
