"""`continuum check`: re-evaluate a plan file against a scenario with the one evaluator.

Lets a person (or another tool) audit a plan: a plan written by hand, by an older version,
or by the control plane, gets the objective and the violations the contract gives it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.text import Text

from cli.errors import fail
from cli.render import make_console, print_line
from solver.costs import CostModel
from solver.evaluate import evaluate
from solver.plan import Placement
from solver.scenario import (
    PreviousApp,
    PreviousPlan,
    Scenario,
    ScenarioError,
    load_scenario,
)

VIOLATIONS_FOUND = 1


def _read_plan(path: Path) -> PreviousPlan:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read ({exc})")
    except json.JSONDecodeError as exc:
        fail(f"{path}: not valid JSON at line {exc.lineno}")
    if not isinstance(raw, dict) or not isinstance(raw.get("apps"), list):
        fail(f"{path}: a plan must be a JSON object with an apps list")
    try:
        # The plan document's app entries have the shape of a scenario's `previous` plan:
        # id, model, segments or stages, and metric fields that are ignored here.
        return PreviousPlan.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(s) for s in err["loc"])
        fail(f"{path}: {where}: {err['msg']}")


def _blocks(scn: Scenario, where: str, entry: PreviousApp) -> tuple[str, tuple[str, ...]]:
    """Expand `first..last@device` segments into one device per block, in order."""
    if entry.model is None or entry.segments is None:
        fail(f"{where}: a partitioned app needs model and segments")
    try:
        model = scn.model(entry.model)
    except KeyError:
        fail(f"{where}.model: unknown model {entry.model!r}")
    names = [layer.name for layer in model.layers]
    devices: list[str] = []
    for j, seg in enumerate(entry.segments):
        for end in ("first", "last"):
            if getattr(seg, end) not in names:
                fail(f"{where}.segments[{j}].{end}: {model.id} has no block {getattr(seg, end)!r}")
        first, last = names.index(seg.first), names.index(seg.last)
        if first != len(devices) or last < first:
            fail(f"{where}.segments[{j}]: segments must cover the blocks of {model.id} in order")
        devices.extend([seg.device] * (last - first + 1))
    if len(devices) != len(names):
        fail(f"{where}.segments: they end before the last block {names[-1]!r}")
    return model.id, tuple(devices)


def _placements(scn: Scenario, plan: PreviousPlan) -> dict[str, Placement]:
    apps = {a.id: a for a in scn.apps}
    out: dict[str, Placement] = {}
    for k, entry in enumerate(plan.apps):
        where = f"apps[{k}] ({entry.id})"
        app = apps.get(entry.id)
        if app is None:
            fail(f"{where}.id: no app {entry.id!r} in the scenario")
        if entry.id in out:
            fail(f"{where}.id: app {entry.id!r} appears twice")
        if app.cascade is not None:
            expected = [st.model for st in app.cascade]
            got = [st.model for st in entry.stages or ()]
            if got != expected:
                fail(f"{where}.stages: the cascade runs {expected}, the plan has {got}")
            devices = tuple(st.device for st in entry.stages or ())
            out[app.id] = Placement(app=app.id, stages=devices)
        else:
            model, blocks = _blocks(scn, where, entry)
            out[app.id] = Placement(app=app.id, model=model, blocks=blocks)
    return out


def check_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON), version 1.")],
    plan: Annotated[Path, typer.Argument(help="Plan JSON, as `continuum solve --json` writes.")],
) -> None:
    """Re-evaluate a plan against a scenario: print its objective and every violation.

    Exits 1 when the plan breaks a constraint, 2 on bad input.
    """
    try:
        scn = load_scenario(scenario)
    except ScenarioError as exc:
        fail(str(exc))
    placements = _placements(scn, _read_plan(plan))
    ev = evaluate(CostModel(scn), placements)
    console = make_console()
    print_line(console, f"objective {ev.objective:.9g} over {len(placements)} placed apps")
    if not ev.violations:
        print_line(console, Text("feasible: every constraint holds", style="green"))
        return
    for v in ev.violations:
        print_line(console, Text(f"violation: {v}", style="red"))
    raise typer.Exit(VIOLATIONS_FOUND)
