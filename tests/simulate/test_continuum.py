"""`continuum` in the simulator decides as the live control plane does, given the same
inputs: every re-plan it made is replayed through the planner's own call
(`orchestrator.replacement.replan` with `in_force`, the arguments
`orchestrator.planner.Planner._replan_in_pool` gives it) in a fresh worker state, and
comes to the same plan and the same decision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import solver
from orchestrator import hysteresis, replacement
from orchestrator.hysteresis import DEFAULT_MARGIN
from orchestrator.replacement import Replacement, in_force, replan
from simulate.continuum import ContinuumPolicy, Decided
from simulate.engine import PolicyRun, Simulation
from simulate.inputs import PROBE_S, load_scenario_dict, prepare
from simulate.probes import ProbeClock
from simulate.registry import known, make
from simulate.run import context

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"
FCC = "bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log"


def _apps(doc: dict[str, object]) -> object:
    return doc["apps"]


def _live(d: Decided) -> Replacement:
    """The planner's own call on what the simulator decided `d` from, in a fresh worker
    (nothing derived from the simulator's problems)."""
    replacement._SOLVED.clear()
    current = None
    if d.previous_plan is not None:
        plan = solver.PlanDoc.model_validate(d.previous_plan)
        current = in_force(d.scenario, d.previous_scenario, plan)
    return replan(d.scenario, current, "heuristic", 10.0, DEFAULT_MARGIN, False, targets=d.targets)


def test_every_decision_replays_through_the_live_path() -> None:
    scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    inputs = prepare(
        scn,
        "factory-line",
        ["continuum"],
        known(),
        hours=0.1,
        traces=[
            f"edge-a~cloud-gpu={TRACES / 'hsdpa-norway' / 'norway_bus_1'}",
            f"cam-6~edge-b={TRACES / 'fcc' / FCC}",
        ],
        failures=["edge-b@0.05:0.02"],
    )
    policy = ContinuumPolicy(context(inputs, "continuum"), keep_decisions=True)
    run = Simulation(inputs, "continuum", policy).run()
    assert len(policy.decided) >= 3  # the first plan, the trace's triggers, the failure
    assert any(d.result.apply for d in policy.decided[1:])
    assert run.totals.replacements >= 1
    for d in policy.decided:
        live = _live(d)
        assert live.apply == d.result.apply, (d.at_s, d.reasons)
        assert live.decision == d.result.decision
        assert _apps(live.document) == _apps(d.result.document)


def test_the_policy_without_hysteresis_is_continuum_with_no_margin() -> None:
    """`continuum-no-hysteresis` (what bench/simulate.py compares re-placements with) is
    the same live path, with a margin of 0 handed to `replan`."""
    scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    inputs = prepare(scn, "factory-line", ["continuum-no-hysteresis"], known(), hours=0.01)
    policy = make(context(inputs, "continuum-no-hysteresis"))
    assert isinstance(policy, ContinuumPolicy) and policy.margin == 0.0
    assert isinstance(make(context(inputs, "continuum")), ContinuumPolicy)
    assert make(context(inputs, "continuum")).margin == DEFAULT_MARGIN  # type: ignore[attr-defined]


def _on_the_plant_uplink(
    tmp_path: Path, mbps: Callable[[int], float], seconds: int, probe_s: float = 1.0
) -> tuple[ContinuumPolicy, PolicyRun]:
    """continuum on the example fleet, its plant uplink at `mbps(t)`, measured every
    `probe_s` (by default every second: an agent probing at `probe_interval_s` = 1),
    every decision kept."""
    scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    trace = tmp_path / "uplink.txt"
    trace.write_text("".join(f"{t}\t{mbps(t)}\n" for t in range(200)))
    inputs = prepare(
        scn, "factory-line", ["continuum"], known(), hours=seconds / 3600,
        traces=[f"edge-a~cloud-gpu={trace}"], probe_s=probe_s,
    )  # fmt: skip
    policy = ContinuumPolicy(context(inputs, "continuum"), keep_decisions=True)
    return policy, Simulation(inputs, "continuum", policy).run()


def test_a_drop_inside_the_threshold_that_breaks_the_plan_is_replaced(tmp_path: Path) -> None:
    """The plant's uplink carries 71% of its 25 Mbit/s under the first plan: at 21.5
    Mbit/s (-14%, well inside the watch's 30%) the plan breaks the 0.8 cap. The link
    watch's floor fires, and the plan that breaks goes (the hysteresis rule's first case);
    with the relative threshold alone the broken plan stayed in force to the end."""
    policy, run = _on_the_plant_uplink(tmp_path, lambda t: 25 if t < 30 else 21.5, 120)
    first = policy.decided[0].result.plan
    (use,) = [lk for lk in first.links if {lk.a, lk.b} == {"edge-a", "cloud-gpu"}]
    assert use.utilization * 25 > 21.5 * 0.8, "the first plan would not break at 21.5"
    fired = [d for d in policy.decided if any("plan in force needs" in r for r in d.reasons)]
    assert fired and fired[0].result.apply, [d.reasons for d in policy.decided]
    assert 30 <= fired[0].at_s <= 35
    by_t = {round(s.t_s): s for s in run.samples}
    assert by_t[31].violations > 0  # the drop broke the plan in force
    assert by_t[120].totals.violation_s == by_t[40].totals.violation_s  # and it went


def test_a_plan_that_breaks_as_its_rollout_lands_is_replaced_at_that_step(
    tmp_path: Path,
) -> None:
    """The uplink drops to 21.5 Mbit/s at 30 s: the plan in force breaks, and the re-plan's
    plan, which needs 20.0 Mbit/s there, lands 2 s later (the rollout), when the link is
    at 19.5. The watch judges that step's sample against the plan now in force, as the
    live loop's detect step does, so the re-plan is asked at 32 s; judged against the
    plan before, the link was already under its floor and stayed quiet a step."""
    policy, run = _on_the_plant_uplink(
        tmp_path, lambda t: 25 if t < 30 else 21.5 if t < 32 else 19.5, 60
    )
    floor = [d for d in policy.decided if any("plan in force needs" in r for r in d.reasons)]
    assert [d.at_s for d in floor[:2]] == [30.0, 32.0], [(d.at_s, d.reasons) for d in floor]
    landed = floor[0].result.plan
    (use,) = [lk for lk in landed.links if {lk.a, lk.b} == {"edge-a", "cloud-gpu"}]
    assert use.utilization * 21.5 > 19.5 * 0.8, "the landed plan would not break at 19.5"
    assert "below the 20.0 Mbit/s" in floor[1].reasons[0], floor[1].reasons
    # A sample at t_s closes the step that began a second before: the step of 32 s.
    by_t = {round(s.t_s): s for s in run.samples}
    assert by_t[33].violations > 0  # it broke as it landed


def _probe_times(seconds: int) -> list[float]:
    """When the agents probe the plant uplink, the only traced link, at the default 30 s."""
    clock = ProbeClock([("edge-a", "cloud-gpu")], PROBE_S, seed=0)
    figures = {("edge-a", "cloud-gpu"): 1.0}
    return [float(t) for t in range(seconds) if clock.probe(float(t), figures, frozenset())]


def test_the_control_plane_learns_of_a_drop_at_the_next_probe(tmp_path: Path) -> None:
    """At the agents' cadence (a probe every 30 s), the drop at 30 s that breaks the plan
    is seen at the uplink's first probe after it, and the re-plan solves the figure that
    probe measured; until then the broken plan stays in force and is scored broken."""
    policy, run = _on_the_plant_uplink(tmp_path, lambda t: 25 if t < 30 else 21.5, 120, PROBE_S)
    seen = next(t for t in _probe_times(120) if t >= 30)
    fired = [d for d in policy.decided if any("plan in force needs" in r for r in d.reasons)]
    assert fired and fired[0].at_s == seen, ([d.at_s for d in fired], _probe_times(120))
    (uplink,) = [lk for lk in fired[0].scenario["links"] if lk["b"] == "cloud-gpu"]
    assert uplink["mbps"] == 21.5
    assert fired[0].result.apply
    by_t = {round(s.t_s): s for s in run.samples}
    assert all(by_t[t].violations > 0 for t in range(31, int(seen) + 1))


def test_a_dip_between_two_probes_is_scored_but_never_seen(tmp_path: Path) -> None:
    """The uplink dips to 21.5 Mbit/s between two probes and is back before the next: the
    plan in force breaks for those seconds (scored as such), and the control plane, which
    only knows what the agents measured, never re-plans for it."""
    probes = _probe_times(120)
    after = [t for t in probes if t > 0]
    start, end = after[0] + 1, after[1] - 1  # strictly between the first two probes
    policy, run = _on_the_plant_uplink(
        tmp_path, lambda t: 21.5 if start <= t < end else 25, 120, PROBE_S
    )
    assert [d.at_s for d in policy.decided] == [0.0], [(d.at_s, d.reasons) for d in policy.decided]
    by_t = {round(s.t_s): s for s in run.samples}
    assert by_t[int(start) + 1].violations > 0
    assert by_t[120].totals.violation_s > 0
    assert all(
        lk["mbps"] == 25 for lk in policy.decided[0].scenario["links"] if lk["b"] == "cloud-gpu"
    )


def _calm_shift(
    monkeypatch: pytest.MonkeyPatch, mend_min_s: float
) -> tuple[ContinuumPolicy, PolicyRun, PolicyRun]:
    monkeypatch.setattr(hysteresis, "MEND_MIN_S", mend_min_s)
    scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    inputs = prepare(scn, "factory-line", ["continuum", "static"], known(), hours=8.0)
    policy = ContinuumPolicy(context(inputs, "continuum"), keep_decisions=True)
    run = Simulation(inputs, "continuum", policy).run()
    static = Simulation(inputs, "static", make(context(inputs, "static"))).run()
    return policy, run, static


def test_with_short_mends_judged_a_costly_candidate_that_keeps_a_draining_pack_minutes_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example fleet over its shift: cam-2's pack, draining, stops paying for weld-2's
    frames 4.4 h in. As the contract ranks constraints first, the candidate that runs
    weld-2 on edge-a, which draws less from cam-2, goes in force at 87% more objective,
    though it keeps the pack minutes. Once no placement keeps the pack, weld-2 is set
    aside, searched for, and served degraded in the cloud again (it stayed on edge-a
    before `degrade.newly_aside`, 14.5% over static): continuum spends a few percent
    more than static and breaks cam-2's pack for less time. With the research knob
    `MEND_MIN_S` at 600 s the first candidate is judged on its objective and not put in
    force, and continuum spends what static does. The decisions replay through the live
    path."""
    assert hysteresis.MEND_MIN_S == 0.0  # off unless set
    mended, mended_run, static = _calm_shift(monkeypatch, 0.0)
    applied = [d for d in mended.decided[1:] if d.result.apply]
    assert len(applied) == 2
    assert applied[0].result.decision.startswith(
        "the plan in force breaks a constraint: device cam-2: battery"
    )
    assert applied[1].result.decision.startswith("set aside now, weld-2 runs degraded")
    assert mended_run.totals.replacements == 2
    assert static.totals.energy_j < mended_run.totals.energy_j < 1.05 * static.totals.energy_j
    assert mended_run.totals.violation_s < static.totals.violation_s

    policy, run, _ = _calm_shift(monkeypatch, 600.0)
    short = [d for d in policy.decided if "pack for" in d.result.decision]
    assert [d.at_s for d in short][:1] == [applied[0].at_s]
    assert not any(d.result.apply for d in short)
    assert "the candidate keeps cam-2's pack for 112 s only (< 600 s)" in short[0].result.decision
    assert run.totals.replacements == 0
    assert run.totals.energy_j == pytest.approx(static.totals.energy_j, rel=1e-9)

    for mend_min_s, d in ((600.0, short[0]), (0.0, applied[0]), (0.0, applied[1])):
        monkeypatch.setattr(hysteresis, "MEND_MIN_S", mend_min_s)
        assert d.previous_plan is not None
        live = _live(d)
        assert (live.apply, live.decision) == (d.result.apply, d.result.decision)
