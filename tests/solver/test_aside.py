"""A number computed aside in a forked child is the very float computed in place; a
child that fails or is not wanted leaves no process behind."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest

from solver import Problem, SolveOptions, solve
from solver.aside import Aside
from solver.generate import generate
from solver.scenario import parse_scenario


def _reaped(pid: int | None) -> None:
    assert pid is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _const(value: float) -> Callable[[], float]:
    return lambda: value


def test_the_child_hands_back_the_same_float() -> None:
    values = [math.pi / 7.0, -0.0, float("inf"), 1e-310, 2952.5357658328767]
    for value in values:
        aside = Aside(_const(value), fork=True)
        pid = aside.pid
        got = aside.result()
        assert math.copysign(1.0, got) == math.copysign(1.0, value) and got == value
        _reaped(pid)


def test_the_work_runs_in_another_process_only_when_forked() -> None:
    child = Aside(lambda: float(os.getpid()), fork=True).result()
    assert child != os.getpid()
    _reaped(int(child))
    here = Aside(lambda: float(os.getpid()), fork=False)
    assert here.pid is None and here.result() == os.getpid()


def test_a_failing_child_is_computed_again_here_where_it_raises() -> None:
    def work() -> float:
        raise ValueError("from the work")

    aside = Aside(work, fork=True)
    pid = aside.pid
    with pytest.raises(ValueError, match="from the work"):
        aside.result()
    _reaped(pid)


def test_a_cancelled_child_is_ended_and_reaped() -> None:
    def forever() -> float:
        while True:
            pass

    aside = Aside(forever, fork=True)
    pid = aside.pid
    aside.cancel()
    aside.cancel()  # twice is harmless
    _reaped(pid)


def test_the_heuristic_gives_the_same_plan_with_its_bound_aside() -> None:
    """Above 40 hosts per app the bound is the large-fleet one, computed in a child with a
    second thread allowed: same placements, objective and bound as in one process."""
    scn = parse_scenario(generate(5, devices=300, apps=60, blocks=6))
    one = solve(Problem(scn), SolveOptions(time_limit_s=60, threads=1), solver="heuristic")
    two = solve(Problem(scn), SolveOptions(time_limit_s=60, threads=2), solver="heuristic")
    assert one.doc.bound is not None
    assert one.placements == two.placements
    assert one.doc.model_dump(exclude={"solve_s"}) == two.doc.model_dump(exclude={"solve_s"})


def test_a_solve_that_finds_no_plan_makes_no_fleet_bound_in_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In one process the large-fleet bound is made once the plan is built: a solve that
    finds none (a re-plan's failing solves) makes none of it; with a second thread it is
    made first, for the child to share."""
    from solver import heuristic

    made: list[int] = []
    real = heuristic.FleetBound

    class Counted(real):  # type: ignore[misc, valid-type]
        def ready(self) -> real:  # type: ignore[valid-type]
            made.append(os.getpid())
            return super().ready()

        def lower(self, apps: object) -> float:
            made.append(os.getpid())
            return float(super().lower(apps))  # type: ignore[arg-type]

    monkeypatch.setattr(heuristic, "FleetBound", Counted)
    raw = generate(5, devices=300, apps=60, blocks=6)
    raw["apps"][0]["slo_ms"] = 1e-3  # no placement meets it
    for threads, bounds in ((1, 0), (2, 1)):
        made.clear()
        plan = solve(Problem(parse_scenario(raw)), SolveOptions(threads=threads), "heuristic")
        assert plan.status.value == "infeasible" and plan.reason is not None
        assert made.count(os.getpid()) == bounds
    raw["apps"][0]["slo_ms"] = None
    made.clear()
    plan = solve(Problem(parse_scenario(raw)), SolveOptions(threads=1), "heuristic")
    assert plan.doc.bound is not None and made  # a plan found: its bound, made here
