"""`continuum solve`: read a scenario, place it, print the plan (or compare every solver)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

import solver
from cli.carbon_tables import (
    CarbonRow,
    carbon_json,
    comparison_carbon_table,
    deployments_table,
    devices_table,
    with_payback,
)
from cli.errors import fail
from cli.render import (
    SetAside,
    comparison_table,
    make_console,
    print_line,
    print_plan,
    unplaced_table,
)
from orchestrator.carbon.report import CarbonReport, breakdown
from solver.partial import MAX_UNPLACED, Partial, place_what_fits
from solver.scenario import Scenario, ScenarioError, load_scenario
from solver.summary import PlanSummary, summarize

DEFAULT_SOLVER = "ilp"
# Violations listed under the comparison table per solver; the rest are counted.
_SHOWN_VIOLATIONS = 3


def _options(time_limit: float, seed: int, threads: int | None, name: str) -> solver.SolveOptions:
    if time_limit <= 0:
        fail(f"--time-limit: must be a positive number of seconds (got {time_limit:g})")
    if threads is not None and threads < 1:
        fail(f"--threads: must be at least 1 (got {threads})")
    if threads is None:
        # ilp keeps one thread unless asked (its runs repeat exactly); the heuristic's
        # second core computes a large fleet's bound while it places (`solver.aside`).
        threads = 1 if name == "ilp" else min(2, os.cpu_count() or 1)
    return solver.SolveOptions(time_limit_s=time_limit, seed=seed, threads=threads)


def _load(path: Path) -> Scenario:
    try:
        return load_scenario(path)
    except ScenarioError as exc:
        fail(str(exc))


def _run_one(problem: solver.Problem, options: solver.SolveOptions, name: str) -> solver.Plan:
    try:
        return solver.solve(problem, options, solver=name)
    except NotImplementedError:
        # A solver still being written is listed but cannot run yet; say so, not a traceback.
        fail(f"--solver {name}: not implemented yet", code=1)


def carbon_of(scenario: Scenario, problem: solver.Problem, plan: solver.Plan) -> CarbonReport:
    """The plan's carbon split per device and deployment (its evaluation, made if absent)."""
    evaluation = plan.evaluation
    if evaluation is None or not evaluation.records:
        evaluation = solver.evaluate(problem.cost, plan.placements, require_all=False)
    return breakdown(scenario, evaluation)


def _compare(
    scenario: Scenario, options: solver.SolveOptions
) -> tuple[list[PlanSummary | tuple[str, str]], list[CarbonRow]]:
    names = list(solver.solvers())
    problem = solver.Problem(scenario)
    rows: list[PlanSummary | tuple[str, str]] = []
    carbon: list[tuple[str, CarbonReport]] = []
    progress = Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=make_console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task("solving", total=len(names))
        for name in names:
            progress.update(task, description=name)
            try:
                plan = solver.solve(problem, options, solver=name)
            except NotImplementedError:
                rows.append((name, "not implemented"))
            else:
                rows.append(summarize(scenario, plan.doc))
                if plan.placements:
                    carbon.append((name, carbon_of(scenario, problem, plan)))
            progress.advance(task)
    return rows, with_payback(carbon)


def _comparison_json(
    rows: list[PlanSummary | tuple[str, str]], carbon: list[CarbonRow]
) -> list[dict[str, object]]:
    by_solver = {c.solver: c for c in carbon}
    out: list[dict[str, object]] = []
    for row in rows:
        if isinstance(row, PlanSummary):
            item = asdict(row)
            item["violations"] = list(row.violations)
            if row.solver in by_solver:
                item["carbon"] = carbon_json(by_solver[row.solver])
            out.append(item)
        else:
            out.append({"solver": row[0], "status": row[1]})
    return out


def solve_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON), version 1.")],
    solver_name: Annotated[
        str | None,
        typer.Option("--solver", help="ilp, heuristic, all-device, all-cloud or neurosurgeon."),
    ] = None,
    time_limit: Annotated[
        float, typer.Option("--time-limit", help="Seconds the solver may run.")
    ] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same plan.")] = 0,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="Cores the solver may use (ilp: its threads; heuristic: a large fleet's "
            "bound in a second process). Default: 1 for ilp, else up to 2.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the plan JSON (only) on standard output.")
    ] = False,
    compare: Annotated[
        bool, typer.Option("--compare", help="Run every solver and compare their plans.")
    ] = False,
    what_fits: Annotated[
        bool,
        typer.Option(
            "--place-what-fits",
            help="Set aside each app that cannot be placed (listed with its reason) and "
            "print the plan for the rest, instead of no plan at all.",
        ),
    ] = False,
) -> None:
    """Place a scenario's apps and print the plan.

    An infeasible scenario still exits 0, and its plan names what cannot be satisfied.
    With --place-what-fits, the apps that cannot be placed are set aside one at a time,
    each listed with its reason, and the plan places the others.

    Bad input exits 2 with one line on standard error.
    """
    known = list(solver.solvers())
    if solver_name is not None and compare:
        fail("--solver and --compare: --compare runs every solver; give one of them")
    if what_fits and compare:
        fail("--place-what-fits and --compare: --compare runs every solver on every app")
    name = solver_name or DEFAULT_SOLVER
    options = _options(time_limit, seed, threads, "ilp" if compare else name)
    if name not in known:
        fail(f"--solver: unknown solver {name!r}; choose one of {', '.join(known)}")
    scn = _load(scenario)
    if compare:
        rows, carbon = _compare(scn, options)
        if as_json:
            typer.echo(json.dumps(_comparison_json(rows, carbon), indent=2))
            return
        console = make_console()
        console.print(comparison_table(rows))
        if carbon:
            console.print(comparison_carbon_table(carbon))
        for row in rows:
            if isinstance(row, PlanSummary) and (row.violations or row.reason):
                _print_problems(console, row)
        return
    if what_fits:
        _place_what_fits(scn, options, name, as_json)
        return
    problem = solver.Problem(scn)
    plan = _run_one(problem, options, name)
    if as_json:
        # pydantic's serializer: json.dumps with indent runs the pure-Python encoder,
        # half a second for a plan of 5,000 apps.
        typer.echo(plan.doc.model_dump_json(indent=2))
        return
    console = make_console()
    print_plan(console, scn, plan.doc)
    if plan.placements:
        report = carbon_of(scn, problem, plan)
        console.print(deployments_table(report))
        console.print(devices_table(report))


def set_aside(partial: Partial) -> list[SetAside]:
    """Each app set aside, in the order it was."""
    return [SetAside(app_id, r.code.value, r.message) for app_id, r in partial.set_aside.items()]


def _place_what_fits(scn: Scenario, options: solver.SolveOptions, name: str, as_json: bool) -> None:
    try:
        partial = place_what_fits(solver.Problem(scn), options, name)
    except NotImplementedError:
        fail(f"--solver {name}: not implemented yet", code=1)
    rows = set_aside(partial)
    blamed = partial.plan.reason.app if partial.plan.reason is not None else None
    if partial.plan.status == solver.Status.INFEASIBLE and blamed is not None:
        # place_what_fits gave up although the plan names an app: without this line an
        # empty list of apps set aside would read as "no app is to blame".
        typer.echo(
            f"note: --place-what-fits stopped before setting {blamed} aside (--time-limit "
            f"{options.time_limit_s:g} s reached, or {MAX_UNPLACED} apps set aside already); "
            "the plan is all or nothing",
            err=True,
        )
    if as_json:
        # The contract's plan for the apps that fit, plus the apps set aside: a plan
        # document with one more field, which `continuum check` reads like any other.
        doc = {**partial.plan.doc.model_dump(mode="json"), "unplaced": [asdict(r) for r in rows]}
        typer.echo(json.dumps(doc, indent=2))
        return
    console = make_console()
    print_plan(console, partial.problem.scenario, partial.plan.doc)
    if rows:
        console.print(unplaced_table(rows))


def _print_problems(console: Console, row: PlanSummary) -> None:
    """The reason and the first violations of one solver, under the comparison table."""
    lines: list[Text] = []
    if row.reason:
        lines.append(Text(row.reason))
    lines.extend(Text(v, style="red") for v in row.violations[:_SHOWN_VIOLATIONS])
    more = len(row.violations) - _SHOWN_VIOLATIONS
    if more > 0:
        lines.append(Text(f"... and {more} more"))
    for line in lines:
        print_line(console, Text(f"{row.solver}: ", style="bold") + line)
