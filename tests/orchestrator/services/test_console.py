"""The console's data: the sampler's points and their bounded, downsampled retention, read
back as chart series; the fleet page's battery projection against the horizon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from orchestrator import audit, samples
from orchestrator.db.tables import ConsoleSample
from orchestrator.sampler import Sampler
from orchestrator.services.console import ConsoleService
from tests.orchestrator.services.harness import Harness

RETENTION = samples.Retention(raw_keep_s=600.0, coarse_s=60.0, history_s=3600.0)


@pytest.mark.anyio
async def test_a_tick_records_batteries_and_the_chart_reads_it(ctx: Harness) -> None:
    await ctx.enroll("cam-1", tier="device", battery={"capacity_wh": 10, "min_pct": 20})
    await ctx.enroll("edge-1")
    await ctx.live.put_heartbeat("cam-1", {"battery_pct": 64.5, "at": 0}, 60)
    await ctx.live.put_heartbeat("edge-1", {"utilization": 0.3, "at": 0}, 60)
    sampler = Sampler(ctx.run_sync, ctx.live, lambda: True, 1.0, RETENTION)
    await sampler.tick()
    await sampler.tick()
    charts = await ConsoleService(ctx).charts(1.0)
    assert charts["points"] == 2
    assert [v for _, v in charts["battery_pct"]["cam-1"]] == [64.5, 64.5]
    assert "edge-1" not in charts["battery_pct"]  # mains powered: no battery series
    # No plan in force yet: the plan's figures are zero, not invented.
    assert [v for _, v in charts["fleet"]["energy_w"]] == [0.0, 0.0]
    fleet = await ConsoleService(ctx).fleet()
    (cam,) = fleet["tiers"]["device"]
    assert cam["battery"]["level_pct"] == 64.5 and cam["battery"]["hours"] is None


@pytest.mark.anyio
async def test_old_points_are_averaged_into_buckets_then_dropped(
    ctx: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = audit.now()
    # The recorder's clock stays at `now`: a minute boundary crossed between the two
    # records below made the second roll up the first's own minute (a flake in CI).
    monkeypatch.setattr(samples.audit, "now", lambda: now)
    bucket = (now.timestamp() // 60 - 1) * 60  # the last complete minute
    start = datetime.fromtimestamp(bucket, UTC)

    def seed(session: object) -> None:
        add = session.add  # type: ignore[attr-defined]
        for i, energy in enumerate((1.0, 3.0)):
            values = {"energy_w": energy, "carbon_gph": 2.0, "slo_misses": i,
                      "battery_count": 1, "battery_mean_pct": 50.0 + i,
                      "battery_min_hours": None,
                      "batteries": {"cam-1": {"pct": 50.0 + i, "hours": None}}}  # fmt: skip
            add(ConsoleSample(at=start + timedelta(seconds=10 * i), resolution="raw",
                              values=values))  # fmt: skip
        # Past every retention: both go on the next record.
        old = {"energy_w": 9.0, "carbon_gph": 9.0, "slo_misses": 0, "batteries": {}}
        add(ConsoleSample(at=now - timedelta(hours=2), resolution="raw", values=old))
        add(ConsoleSample(at=now - timedelta(hours=2), resolution="coarse", values=old))

    await ctx.run_sync(seed)
    values = {"energy_w": 5.0, "carbon_gph": 1.0, "slo_misses": 0, "batteries": {}}
    await ctx.run_sync(samples.record, values, RETENTION)

    def rows(session: object) -> list[tuple[str, dict[str, object]]]:
        q = select(ConsoleSample.resolution, ConsoleSample.values).order_by(ConsoleSample.at)
        return [(r, v) for r, v in session.execute(q)]  # type: ignore[attr-defined]

    kept = await ctx.run_sync(rows)
    coarse = [v for r, v in kept if r == "coarse"]
    assert coarse == [{"energy_w": 2.0, "carbon_gph": 2.0, "slo_misses": 1,
                       "battery_count": 1, "battery_mean_pct": 50.5,
                       "battery_min_hours": None,
                       "batteries": {"cam-1": {"pct": 50.5, "hours": None}}}]  # fmt: skip
    assert sorted(v["energy_w"] for r, v in kept if r == "raw") == [1.0, 3.0, 5.0]
    # Recording again does not roll the same bucket up twice.
    await ctx.run_sync(samples.record, values, RETENTION)
    assert len([r for r, _ in await ctx.run_sync(rows) if r == "coarse"]) == 1
    # The window shows coarse points only where raw ones are gone.
    window = await ctx.run_sync(samples.window, 1.0, RETENTION.coarse_s)
    assert [v["energy_w"] for _, v in window] == [1.0, 3.0, 5.0, 5.0]


@pytest.mark.anyio
async def test_a_bucket_is_not_shown_beside_the_raw_points_it_averages(ctx: Harness) -> None:
    """A point recorded just after a minute turned rolls the last minute up while that
    minute's raw points are still kept: the window shows them, not their average too (it
    did, and a chart of two ticks across a minute's turn had three points)."""
    now = audit.now()
    start = datetime.fromtimestamp((now.timestamp() // 60 - 1) * 60, UTC)
    earlier = {"energy_w": 1.0, "carbon_gph": 0.0, "slo_misses": 0, "batteries": {}}

    def seed(session: object) -> None:
        raw = ConsoleSample(at=start + timedelta(seconds=5), resolution="raw", values=earlier)
        session.add(raw)  # type: ignore[attr-defined]

    await ctx.run_sync(seed)
    values = {"energy_w": 5.0, "carbon_gph": 0.0, "slo_misses": 0, "batteries": {}}
    await ctx.run_sync(samples.record, values, RETENTION)
    resolutions = await ctx.run_sync(
        lambda s: sorted(r for r in s.scalars(select(ConsoleSample.resolution)))
    )
    assert resolutions == ["coarse", "raw", "raw"]  # the minute rolled up, its point kept
    window = await ctx.run_sync(samples.window, 1.0, RETENTION.coarse_s)
    assert [v["energy_w"] for _, v in window] == [1.0, 5.0]


def test_a_sample_counts_slo_misses_planned_and_measured() -> None:
    figures = samples.PlanFigures(
        version=3, energy_w=1.5, carbon_gph=0.2, battery_h={"cam-1": 4.0},
        slo_ms={"a": 100.0, "b": 100.0}, slo_unmet=frozenset({"c"}),
    )  # fmt: skip
    hist = {"count": 4, "sum_ms": 600.0}  # 150 ms a request: over a's 100 ms
    beats = {
        "cam-1": {"battery_pct": 40.0, "metrics": {"a/m/0-3": {"compute_ms": hist}}},
        "edge-1": {"metrics": {"b/m/0-3": {"compute_ms": {"count": 2, "sum_ms": 20.0}}}},
    }
    values = samples.sample_values(figures, beats)
    assert values["slo_misses"] == 2  # a measured over its SLO, c predicted over its own
    assert values["batteries"] == {"cam-1": {"pct": 40.0, "hours": 4.0}}
    assert values["energy_w"] == 1.5


def test_a_sample_keeps_the_batteries_at_most_risk() -> None:
    figures = samples.PlanFigures(version=1, battery_h={"b": 2.0, "c": 9.0})
    beats = {d: {"battery_pct": pct} for d, pct in (("a", 10.0), ("b", 90.0), ("c", 50.0),
                                                   ("d", 70.0))}  # fmt: skip
    values = samples.sample_values(figures, beats, keep=3)
    # Fewest projected hours first, then the lowest level among those with none.
    assert list(values["batteries"]) == ["b", "c", "a"]
    assert values["battery_count"] == 4 and values["battery_mean_pct"] == 55.0
    assert values["battery_min_hours"] == 2.0
