"""`continuum simulate` and `continuum simulate-sweep`: what-if runs over simulated time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.errors import fail
from cli.render import make_console
from simulate.engine import PolicyRun
from simulate.errors import InputError
from simulate.inputs import PROBE_S, Inputs, load_scenario_dict, prepare
from simulate.outputs import SUMMARY_KEYS, totals_dict
from simulate.registry import known
from simulate.report import clock
from simulate.run import build_policies, run_policy, write_outputs
from simulate.sweep import ENGINES, load_spec, run_sweep


def summary_table(runs: dict[str, PolicyRun], title: str = "simulation") -> Table:
    table = Table(title=title)
    table.add_column("policy")
    for key in SUMMARY_KEYS:
        table.add_column(key, justify="right")
    for name, run in runs.items():
        t = totals_dict(run.totals, measured=True)
        table.add_row(
            name, *(f"{t[k]:g}" if isinstance(t[k], float) else str(t[k]) for k in SUMMARY_KEYS)
        )
    return table


def broken_table(runs: dict[str, PolicyRun], top: int = 3) -> Table | None:
    """Each policy's longest broken constraints (None when no policy broke any): which
    constraint the `violation_s` of the summary is, on what, from when."""
    if not any(run.broken for run in runs.values()):
        return None
    table = Table(title="what broke longest (all of it: broken.csv, report.html)")
    for column in ("policy", "constraint", "on", "seconds", "share", "from", "until"):
        table.add_column(
            column, justify="left" if column in ("policy", "constraint", "on") else "right"
        )
    for name, run in runs.items():
        total = sum(b.seconds for b in run.broken.values())
        for (code, subject), b in list(run.broken.items())[:top]:
            table.add_row(
                name, code, subject, f"{b.seconds:,.0f}", f"{b.seconds / total:.0%}",
                clock(b.first_s), clock(b.last_s),
            )  # fmt: skip
    return table


def _prepare(
    scenario: Path,
    policy: str,
    hours: float,
    trace: list[str],
    battery: list[str],
    fail_at: list[str],
    step: float,
    seed: int,
    probe: float,
) -> Inputs:
    try:
        raw = load_scenario_dict(scenario)
        inputs = prepare(
            raw,
            scenario.stem,
            [p.strip() for p in policy.split(",") if p.strip()],
            known(),
            hours,
            traces=trace,
            batteries=battery,
            failures=fail_at,
            step_s=step,
            seed=seed,
            probe_s=probe,
        )
        build_policies(inputs)  # a plug-in that cannot load is bad input too
    except InputError as exc:
        fail(str(exc))
    return inputs


def simulate_command(
    scenario: Annotated[Path, typer.Argument(help="Scenario file (YAML or JSON), version 1.")],
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="NAME[,NAME...]: continuum, static, any solver (ilp, heuristic, all-device, "
            "all-cloud, neurosurgeon) or a plug-in of the continuum.policies group.",
        ),
    ],
    hours: Annotated[float, typer.Option("--hours", help="Simulated hours.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the outputs.")],
    trace: Annotated[
        list[str] | None,
        typer.Option("--trace", help="A~B=FILE: replay a throughput trace on link A-B."),
    ] = None,
    battery: Annotated[
        list[str] | None,
        typer.Option(
            "--battery", help="DEVICE=PROFILE: solar:START-END:POWER or mains:HOUR[:POWER]."
        ),
    ] = None,
    fail_at: Annotated[
        list[str] | None,
        typer.Option("--fail", help="DEVICE@HOUR[:HOURS]: the device fails, then comes back."),
    ] = None,
    step: Annotated[float, typer.Option("--step", help="Seconds per step.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every solver.")] = 0,
    probe: Annotated[
        float,
        typer.Option(
            "--probe",
            help="Seconds between the agents' bandwidth probes of a traced link: what "
            "continuum's control plane learns of it (the agent's default).",
        ),
    ] = PROBE_S,
) -> None:
    """Replay a scenario over time under each policy and score every step with the
    evaluator of `continuum solve`. Writes summary.json, timeseries.csv, broken.csv,
    decisions.csv and report.html to --out. Bad input exits 2 with one line, before any work."""
    inputs = _prepare(
        scenario, policy, hours, trace or [], battery or [], fail_at or [], step, seed, probe
    )
    console = make_console(stderr=True)
    runs: dict[str, PolicyRun] = {}
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        for name in inputs.policies:
            task = progress.add_task(name, total=inputs.steps)

            def show(k: int, task: TaskID = task) -> None:
                progress.update(task, completed=k)

            runs[name] = run_policy(inputs, name, show)
    write_outputs(out, inputs, runs)
    terminal = make_console()
    terminal.print(summary_table(runs, f"{inputs.scenario_name}, {hours:g} h"))
    if (broken := broken_table(runs)) is not None:
        terminal.print(broken)
    typer.echo(
        f"wrote {out / 'summary.json'}, timings.json, timeseries.csv, broken.csv, "
        "decisions.csv and report.html"
    )


def sweep_command(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML): see docs/simulate.md.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the combined outputs.")],
    engine: Annotated[
        str, typer.Option("--engine", help="local (a process pool) or ray.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (with --engine ray).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Local processes (default: the CPU count).")
    ] = 0,
) -> None:
    """Run many scenarios x seeds x traces x policies and write one combined report."""
    if engine not in ENGINES:
        fail(f"--engine: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if address is not None and engine != "ray":
        fail("--address: only with --engine ray")
    if workers < 0:
        fail(f"--workers: must be 0 (the CPU count) or more (got {workers})")
    try:
        sweep = load_spec(spec)
    except InputError as exc:
        fail(str(exc))
    console = make_console(stderr=True)
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("runs", total=len(sweep.cases))

        def advance() -> None:
            progress.advance(task)

        try:
            result = run_sweep(
                sweep,
                out,
                engine=engine,
                address=address,
                workers=workers or None,
                done=advance,
            )
        except InputError as exc:
            fail(str(exc))
    table = Table(title=f"sweep: {len(sweep.cases)} runs")
    table.add_column("case")
    for key in SUMMARY_KEYS:
        table.add_column(key, justify="right")
    for case, policies in result["cases"].items():
        for name, figures in policies.items():
            # solve_s is null in the summary: the measured times are in timings.json.
            cells = ("-" if figures[k] is None else f"{figures[k]:g}" for k in SUMMARY_KEYS)
            table.add_row(f"{case} {name}", *cells)
    make_console().print(table)
    typer.echo(
        f"wrote {out / 'summary.json'}, timings.json, broken.csv, decisions.csv and report.html"
    )


__all__ = ["broken_table", "simulate_command", "summary_table", "sweep_command"]
