"""Triggers fire on sustained changes, not on one noisy sample."""

from __future__ import annotations

from orchestrator.triggers import (
    BatteryWatch,
    LatencyWatch,
    LinkCosts,
    LinkWatch,
    link_floors,
    suspects,
)


def test_one_noisy_sample_does_not_fire() -> None:
    w = LinkWatch(alpha=0.5, threshold=0.3)
    assert w.observe("cam", "edge", 50.0, 5.0, 0.0) is None
    assert w.observe("cam", "edge", 30.0, 5.0, 1.0) is None  # -40%, smoothed to -20%
    assert w.observe("cam", "edge", 50.0, 5.0, 2.0) is None


def test_sustained_drop_fires_with_reason() -> None:
    w = LinkWatch(alpha=0.5, threshold=0.3)
    w.observe("cam", "edge", 50.0, 5.0, 0.0)
    fired = [w.observe("edge", "cam", 2.0, 5.0, float(t)) for t in range(1, 4)]
    first = next(t for t in fired if t is not None)
    assert first.kind == "link" and first.target == "cam~edge"
    assert "50.0 ->" in first.reason
    assert fired[0] is not None  # 50 -> 26: the first sample already moved 48%


def test_commit_resets_the_baseline() -> None:
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("a", "b", 50.0, 5.0, 0.0)
    assert w.observe("a", "b", 10.0, 5.0, 1.0) is not None
    w.commit()
    assert w.observe("a", "b", 11.0, 5.0, 2.0) is None


def test_rtt_jitter_below_floor_is_ignored() -> None:
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("a", "b", 50.0, 0.4, 0.0)
    assert w.observe("a", "b", 50.0, 0.9, 1.0) is None  # 0.5 ms on a 2 ms floor
    assert w.observe("a", "b", 50.0, 40.0, 2.0) is not None


def test_link_floors_are_what_the_plan_sends_over_the_cap() -> None:
    scenario = {
        "max_utilization": 0.5,
        "links": [
            {"a": "cam", "b": "edge", "mbps": 40.0},
            {"a": "edge", "b": "cloud", "mbps": 100.0},
        ],
    }
    plan_links = [
        {"a": "edge", "b": "cam", "utilization": 0.45},  # 18 Mbit/s sent
        {"a": "edge", "b": "cloud", "utilization": 0.0},  # unused: no floor
        {"a": "x", "b": "y", "utilization": 0.3},  # not in the scenario
    ]
    assert link_floors(plan_links, scenario) == {"cam~edge": 0.45 * 40.0 / 0.5}


def test_a_drop_below_the_plans_floor_fires_once_inside_the_threshold() -> None:
    # The plan sends 40 Mbit/s over a 50 Mbit/s link with the default cap of 0.8: it
    # breaks below 50. A 10% drop is far inside the 30% threshold, and must fire.
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("cam", "edge", 52.0, 5.0, 0.0)
    in_force = {"cam~edge": 50.0}
    assert w.set_floors(in_force, 0.0) == []
    assert w.observe("cam", "edge", 51.0, 5.0, 1.0) is None
    t = w.observe("cam", "edge", 46.8, 5.0, 2.0)
    assert t is not None and t.kind == "link" and t.target == "cam~edge"
    assert "below the 50.0 Mbit/s" in t.reason
    w.commit()  # a re-plan was asked for and kept the plan: the same floors stay
    assert w.set_floors(in_force, 2.0) == []
    assert w.observe("cam", "edge", 45.0, 5.0, 3.0) is None  # still under: once
    assert w.observe("cam", "edge", 51.0, 5.0, 4.0) is None  # recovered: re-armed
    assert w.observe("cam", "edge", 47.0, 5.0, 5.0) is not None
    assert w.set_floors({"cam~edge": 40.0}, 5.5) == []  # a new plan that needs less
    assert w.observe("cam", "edge", 45.0, 5.0, 6.0) is None
    w.commit()
    assert w.observe("cam", "edge", 45.0, 5.0, 7.0) is None
    # A new plan that needs more than the figure measured since its re-plan: at once.
    (t,) = w.set_floors({"cam~edge": 48.0}, 7.5)
    assert t.observed_at == 7.5 and "bandwidth 45.0 Mbit/s, below the 48.0 Mbit/s" in t.reason
    assert w.observe("cam", "edge", 45.0, 5.0, 8.0) is None  # once


def test_a_new_plan_in_force_re_arms_a_link_even_with_the_same_floor() -> None:
    # The trigger below fired while a rollout was under way, so the re-plan it asked for
    # never ran; the plan that rollout puts in force needs the same 50 Mbit/s there, and
    # the link, still under, must ask again once that plan is in force.
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("cam", "edge", 52.0, 5.0, 0.0)
    w.commit()  # the plan in force was solved at 52
    assert w.set_floors({"cam~edge": 50.0}, 0.0) == []
    assert w.observe("cam", "edge", 47.0, 5.0, 1.0) is not None
    assert w.observe("cam", "edge", 47.0, 5.0, 2.0) is None  # once for this plan
    # Another plan in force, the same floor: 47 was measured after the plan in force was
    # solved, so it is judged against the new plan at once, not at the next measurement
    # (which may be a probe interval away).
    (t,) = w.set_floors({"cam~edge": 50.0}, 2.5)
    assert t.target == "cam~edge" and "below the 50.0 Mbit/s" in t.reason
    assert w.observe("cam", "edge", 47.0, 5.0, 3.0) is None  # once


def test_a_new_plan_is_not_judged_on_the_figures_it_was_solved_with() -> None:
    # Under 47 Mbit/s no plan needs less than 50 there: the re-plan at 47 (commit) gives a
    # plan that breaks at 47 all the same. Judging it on that same figure would ask for the
    # very re-plan that made it; a new measurement under the floor still fires.
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("cam", "edge", 52.0, 5.0, 0.0)
    assert w.set_floors({"cam~edge": 50.0}, 0.0) == []
    assert w.observe("cam", "edge", 47.0, 5.0, 1.0) is not None
    w.commit()
    assert w.set_floors({"cam~edge": 50.0}, 1.5) == []
    assert w.observe("cam", "edge", 46.0, 5.0, 2.0) is not None


def test_the_floor_is_judged_on_the_sample_not_the_average() -> None:
    # The plan is judged on the figure of now: one sample below the floor breaks it,
    # whatever the average says, and one back above re-arms the watch.
    w = LinkWatch(alpha=0.5, threshold=0.3)
    w.observe("cam", "edge", 60.0, 5.0, 0.0)
    assert w.set_floors({"cam~edge": 50.0}, 0.0) == []
    assert w.observe("cam", "edge", 45.0, 5.0, 1.0) is not None  # 52.5 smoothed
    assert w.observe("cam", "edge", 49.0, 5.0, 2.0) is None  # still under: once
    assert w.observe("cam", "edge", 55.0, 5.0, 3.0) is None  # above: re-armed
    assert w.observe("cam", "edge", 49.0, 5.0, 4.0) is not None


def test_a_link_the_plan_sends_nothing_over_fires_only_for_the_better() -> None:
    w = LinkWatch(alpha=1.0, threshold=0.3)
    for link in (("cam", "edge"), ("cam", "cloud")):
        w.observe(*link, 50.0, 20.0, 0.0)
    assert w.set_floors({"cam~edge": 30.0}, 0.0) == []  # the plan uses cam~edge alone
    # Slower, or farther: nothing of the plan breaks, and no plan gains.
    assert w.observe("cam", "cloud", 10.0, 20.0, 1.0) is None
    assert w.observe("cam", "cloud", 10.0, 60.0, 2.0) is None
    # The same drop on the link the plan uses fires, as before.
    t = w.observe("cam", "edge", 32.0, 20.0, 3.0)
    assert t is not None and t.target == "cam~edge" and "50.0 -> 32.0" in t.reason
    # Back up past the threshold (from the figure it was placed with), or nearer: fires.
    assert w.observe("cam", "cloud", 70.0, 60.0, 4.0) is not None
    assert w.observe("cam", "cloud", 50.0, 5.0, 5.0) is not None
    # A drop that was not answered fires once a plan that uses the link is in force.
    assert w.observe("cam", "cloud", 10.0, 20.0, 6.0) is None
    w.commit({"cam~edge"})
    assert w.set_floors({"cam~cloud": 5.0}, 7.0) == []  # 10 is above its floor
    t = w.observe("cam", "cloud", 10.0, 20.0, 8.0)
    assert t is not None and t.target == "cam~cloud" and "50.0 -> 10.0" in t.reason


def test_a_fall_above_the_floor_asks_once_it_costs_the_plan_a_step() -> None:
    # The plan sends over cam~edge (floor 20) and cloud~edge (floor 10), solved at 50 and
    # 100 Mbit/s; its objective is 100, and a fall costs `rise * (1/m - 1/m0)`.
    costs = LinkCosts({"cam~edge": (50.0, 500.0), "cloud~edge": (100.0, 1000.0)}, 100.0)
    assert costs.cost("cam~edge", 25.0) == 500.0 * (1 / 25 - 1 / 50) == 10.0
    assert costs.cost("cam~edge", 60.0) == 0.0  # above what it was solved with: nothing
    w = LinkWatch(alpha=1.0, threshold=0.3, cost_step=0.05)  # a step: 5 of 100
    for a, b, mbps in (("cam", "edge", 50.0), ("edge", "cloud", 100.0)):
        w.observe(a, b, mbps, 5.0, 0.0)
    assert w.set_floors({"cam~edge": 20.0, "cloud~edge": 10.0}, 0.0, costs=costs) == []
    # 50 -> 34: past the threshold, above the floor, costs 4.7: within the step.
    assert w.observe("cam", "edge", 34.0, 5.0, 1.0) is None
    # 100 -> 60 on the other link costs 6.7 more: 11.4 in all, past 5.
    t = w.observe("edge", "cloud", 60.0, 5.0, 2.0)
    assert t is not None and t.target == "cloud~edge"
    w.commit({"cloud~edge"})
    # Asked at 11.4: the next ask needs 16.4. cam~edge to 30 (6.7 in all there): 13.3.
    assert w.observe("cam", "edge", 30.0, 5.0, 3.0) is None
    assert w.observe("cam", "edge", 24.0, 5.0, 4.0) is not None  # 10.8 + 6.7 = 17.5
    # Under a floor asks whatever it costs; an RTT that grew asks as well.
    assert w.observe("edge", "cloud", 9.0, 5.0, 5.0) is not None
    assert w.observe("cam", "edge", 24.0, 40.0, 6.0) is not None
    # Without costs (a plan its scenario cannot judge), every fall past the threshold asks.
    v = LinkWatch(alpha=1.0, threshold=0.3)
    v.observe("cam", "edge", 50.0, 5.0, 0.0)
    v.set_floors({"cam~edge": 20.0}, 0.0)
    assert v.observe("cam", "edge", 34.0, 5.0, 1.0) is not None


def test_without_a_plan_in_force_every_move_fires() -> None:
    # Before any floors are given the watch does not know what the plan uses.
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("cam", "cloud", 50.0, 20.0, 0.0)
    assert w.observe("cam", "cloud", 10.0, 20.0, 1.0) is not None


def test_battery_projection_fires_once_within_horizon() -> None:
    w = BatteryWatch(horizon_h=8.0, window_s=60.0)
    assert w.observe("cam", 80.0, 20.0, False, 0.0) is None
    # 1% a minute: 60%/h, 60 points above min -> 1 h, within 8 h.
    t = w.observe("cam", 79.0, 20.0, False, 60.0)
    assert t is not None and t.kind == "battery" and "horizon" in t.reason
    assert w.observe("cam", 78.0, 20.0, False, 120.0) is None  # already low: once
    proj = w.projected_h("cam", 20.0)
    assert proj is not None and 0.9 < proj < 1.1


def test_slow_drain_does_not_fire() -> None:
    w = BatteryWatch(horizon_h=8.0, window_s=3600.0)
    w.observe("cam", 80.0, 20.0, False, 0.0)
    # 1% an hour: 60 h to min.
    assert w.observe("cam", 79.0, 20.0, False, 3600.0) is None


def test_charging_transitions_fire() -> None:
    w = BatteryWatch()
    assert w.observe("cam", 50.0, 20.0, False, 0.0) is None
    t = w.observe("cam", 50.0, 20.0, True, 1.0)
    assert t is not None and t.kind == "charging" and "started" in t.reason
    t = w.observe("cam", 51.0, 20.0, False, 2.0)
    assert t is not None and "stopped" in t.reason


def test_loopback_rtt_jitter_under_the_absolute_floor_is_ignored() -> None:
    # 3 -> 7 ms is +130% but only 4 ms: loopback under load, not a changed link.
    watch = LinkWatch(alpha=1.0, threshold=0.3, rtt_floor_ms=5.0)
    assert watch.observe("cam", "edge", 50.0, 3.0, 0.0) is None
    assert watch.observe("cam", "edge", 50.0, 7.0, 1.0) is None
    fired = watch.observe("cam", "edge", 50.0, 40.0, 2.0)
    assert fired is not None and "rtt 3.0 -> 40.0 ms" in fired.reason


def test_battery_level_step_fires_once_and_commit_rebases() -> None:
    watch = BatteryWatch(horizon_h=8.0, level_step_pct=5.0)
    assert watch.observe("cam", 90.0, 20.0, False, 0.0) is None  # baseline
    assert watch.observe("cam", 88.0, 20.0, False, 0.0) is None  # same instant: no slope
    watch = BatteryWatch(horizon_h=8.0, level_step_pct=5.0)
    assert watch.observe("cam", 90.0, 20.0, None, 0.0) is None
    fired = watch.observe("cam", 40.5, 20.0, None, 3600.0)  # a step, not a drain: 0.4 h
    assert fired is not None and fired.kind == "battery"
    assert "40.5%" in fired.reason
    # Already reported: the next sample at the same level does not fire again.
    assert watch.observe("cam", 40.5, 20.0, None, 2.0) is None


def test_a_continuous_drain_reports_the_projection_not_every_step() -> None:
    watch = BatteryWatch(horizon_h=8.0, level_step_pct=5.0)
    assert watch.observe("cam", 90.0, 20.0, None, 0.0) is None
    fired = watch.observe("cam", 80.0, 20.0, None, 1.0)
    assert fired is not None and "horizon" in fired.reason
    assert watch.observe("cam", 70.0, 20.0, None, 2.0) is None  # latched: once


def test_latency_drift_fires_once_per_prediction() -> None:
    watch = LatencyWatch(threshold=0.5, min_requests=20)
    assert watch.observe("edge", "p", 0, 0.0, 1.0, 0.0) is None
    assert watch.observe("edge", "p", 20, 100.0, 1.0, 1.0) is not None  # 5 ms vs 1 ms
    # Re-solves that keep the plan (same prediction) do not reset it: reported once.
    assert watch.observe("edge", "p", 40, 200.0, 1.0, 2.0) is None
    assert watch.observe("edge", "p", 60, 300.0, 1.0, 3.0) is None
    # A new plan predicts afresh (another prediction): the drift is reported again, once.
    assert watch.observe("edge", "p", 80, 400.0, 2.0, 4.0) is not None
    assert watch.observe("edge", "p", 100, 500.0, 2.0, 5.0) is None


def test_a_peer_reported_unreachable_is_a_suspect_until_it_heartbeats_after() -> None:
    report = {"peer": "edge", "at": 100.0, "error": "refused"}
    beats = {"cam": {"at": 100.5, "unreachable": [report]}, "edge": {"at": 99.0}}
    assert suspects(beats) == {"edge": "device edge unreachable from cam: refused"}
    beats["edge"]["at"] = 100.2  # beat after the failure: back, or only one path broke
    assert suspects(beats) == {}
    beats["cam"]["unreachable"] = [{"peer": "cam", "at": 101.0}, {"peer": "gone", "at": 1.0}]
    assert suspects(beats) == {}  # itself, or a device not alive anyway: nothing to cut


def test_a_link_back_at_the_floor_of_the_plan_a_fall_put_out_asks_once() -> None:
    # The plan needs 8 Mbit/s on a camera's uplink for its app's SLO. The link falls to 6:
    # the re-plan sets the app aside, and the plan it puts in force sends nothing there.
    # Back at 10 (under the 30% rise the smoothed figure would need), the plan before fits
    # again: the watch asks once, and not again while the link stays up.
    w = LinkWatch(alpha=0.5, threshold=0.3)
    w.observe("cam", "edge", 12.0, 5.0, 0.0)
    assert w.set_floors({"cam~edge": 8.0}, 0.0) == []
    fell = w.observe("cam", "edge", 6.0, 5.0, 30.0)
    assert fell is not None and "below the 8.0 Mbit/s" in fell.reason
    w.commit({"cam~edge"})  # the re-plan took the figures of now: smoothed 9 Mbit/s
    assert w.set_floors({}, 35.0) == []  # its plan sends nothing over cam~edge
    assert w.observe("cam", "edge", 7.0, 5.0, 60.0) is None  # still under 8
    back = w.observe("cam", "edge", 10.0, 5.0, 90.0)
    assert back is not None and back.target == "cam~edge" and back.kind == "link"
    assert "back above the 8.0 Mbit/s" in back.reason
    assert w.observe("cam", "edge", 10.5, 5.0, 120.0) is None  # once
    # Without the fall under a floor, a plan that needs less there asks nothing back.
    w2 = LinkWatch(alpha=0.5, threshold=0.3)
    w2.observe("cam", "edge", 12.0, 5.0, 0.0)
    assert w2.set_floors({"cam~edge": 8.0}, 0.0) == []
    assert w2.set_floors({}, 1.0) == []
    assert w2.observe("cam", "edge", 10.0, 5.0, 30.0) is None


def test_a_plan_that_needs_the_floor_again_drops_the_recovery() -> None:
    w = LinkWatch(alpha=0.5, threshold=0.3)
    w.observe("cam", "edge", 12.0, 5.0, 0.0)
    assert w.set_floors({"cam~edge": 8.0}, 0.0) == []
    assert w.observe("cam", "edge", 6.0, 5.0, 30.0) is not None
    w.commit({"cam~edge"})
    assert w.set_floors({}, 35.0) == []
    # Another plan in force needs the 8 Mbit/s again there: its own floor watches it.
    assert w.set_floors({"cam~edge": 8.0}, 40.0) == []
    assert w.observe("cam", "edge", 10.0, 5.0, 60.0) is None
    # A device lost and back: its links start afresh, without what was owed them.
    w.observe("cam", "edge", 6.0, 5.0, 70.0)
    assert w.set_floors({}, 75.0) == [] and w.observe("cam", "edge", 7.0, 5.0, 80.0) is None
    w.forget("cam")
    w.observe("cam", "edge", 7.5, 5.0, 90.0)
    assert w.observe("cam", "edge", 8.2, 5.0, 100.0) is None
