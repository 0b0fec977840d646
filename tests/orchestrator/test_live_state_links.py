"""Links in the live state, on both backends: each end's remembered estimate, the
bottleneck of a link's two ends, freshness, and what replicas share. The memory rule on
given times is test_live_links.py's."""

from __future__ import annotations

import anyio
import pytest

from orchestrator.live import LiveState
from orchestrator.live.links import MIN_WEIGHT, weight
from orchestrator.live.redis import RedisLiveState

pytestmark = pytest.mark.anyio

SHORT_TTL = 0.2
PAST_SHORT_TTL = 0.5
LONG_TTL = 30.0


async def test_link_is_keyed_once_per_undirected_pair(live: LiveState) -> None:
    await live.put_link("gw-1", "cam-1", 100.0, 2.0, LONG_TTL)
    await live.put_link("cam-1", "gw-1", 80.0, 3.0, LONG_TTL)

    links = await live.links()
    assert list(links) == [("cam-1", "gw-1")]
    measured = links[("cam-1", "gw-1")]
    assert (measured["mbps"], measured["rtt_ms"]) == (80.0, 3.0)
    assert isinstance(measured["at"], float)


def _figure(links: dict[tuple[str, str], dict[str, float]], a: str, b: str) -> tuple[float, ...]:
    return (links[(a, b)]["mbps"], links[(a, b)]["rtt_ms"])


async def test_a_link_both_ends_report_keeps_its_bottleneck_whoever_reports_last(
    live: LiveState,
) -> None:
    # Each end times its own upload: the camera's uplink is narrow, the gateway's is not,
    # and the camera's ping happens to be faster. Reports alternate as heartbeats come.
    await live.put_link("cam-1", "gw-1", 20.0, 9.0, LONG_TTL)
    await live.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
    figures = [_figure(await live.links(), "cam-1", "gw-1")]
    for _ in range(3):
        await live.put_link("cam-1", "gw-1", 20.0, 9.0, LONG_TTL)
        figures.append(_figure(await live.links(), "cam-1", "gw-1"))
        await live.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
        figures.append(_figure(await live.links(), "cam-1", "gw-1"))
    assert figures == [(20.0, 12.0)] * 7


async def test_an_end_s_new_report_moves_only_its_own_estimate(live: LiveState) -> None:
    await live.put_link("cam-1", "gw-1", 20.0, 9.0, LONG_TTL)
    await live.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
    await live.put_link("cam-1", "gw-1", 500.0, 4.0, LONG_TTL)  # the camera's uplink freed
    # Back to back, the camera's estimate moves at least halfway (links.MIN_WEIGHT) and at
    # most all the way to 500: the bottleneck is its estimate or the gateway's 300.
    mbps, rtt = _figure(await live.links(), "cam-1", "gw-1")
    assert 20.0 + MIN_WEIGHT * 480.0 <= mbps <= 300.0
    assert rtt == 12.0
    await live.put_link("gw-1", "cam-1", 600.0, 3.0, LONG_TTL)
    mbps, rtt = _figure(await live.links(), "cam-1", "gw-1")
    assert 260.0 <= mbps <= 500.0
    # The camera's RTT estimate is now in 4..6.5 ms, the gateway's in 3..7.5: the higher.
    assert 4.0 <= rtt <= 7.5


async def test_a_link_s_figure_is_as_of_its_newest_report(live: LiveState) -> None:
    await live.put_link("cam-1", "gw-1", 20.0, 9.0, LONG_TTL)
    first = (await live.links())[("cam-1", "gw-1")]["at"]
    await anyio.sleep(0.01)
    await live.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
    second = (await live.links())[("cam-1", "gw-1")]["at"]
    assert second > first


async def test_an_end_that_stopped_reporting_is_remembered_not_fresh(live: LiveState) -> None:
    # A degraded link the plan moved away from: its sender stops probing it. Its figure
    # stays (never back to a declared one) and says how old it is.
    await live.put_link("cam-1", "gw-1", 2.0, 30.0, SHORT_TTL)
    assert (await live.links())[("cam-1", "gw-1")]["fresh"] is True
    await anyio.sleep(PAST_SHORT_TTL)
    seen = (await live.links())[("cam-1", "gw-1")]
    assert (seen["mbps"], seen["rtt_ms"], seen["fresh"]) == (2.0, 30.0, False)
    assert seen["age_s"] >= PAST_SHORT_TTL
    assert (seen["last_mbps"], seen["last_rtt_ms"]) == (2.0, 30.0)
    # The other end's fresh report joins it; the degraded end's estimate still counts.
    await live.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
    seen = (await live.links())[("cam-1", "gw-1")]
    assert (seen["mbps"], seen["rtt_ms"], seen["fresh"]) == (2.0, 30.0, True)
    assert seen["age_s"] < PAST_SHORT_TTL


async def test_a_new_measurement_after_a_silence_moves_the_estimate_by_its_age(
    live: LiveState,
) -> None:
    await live.put_link("cam-1", "gw-1", 2.0, 30.0, SHORT_TTL)
    await anyio.sleep(PAST_SHORT_TTL)
    await live.put_link("cam-1", "gw-1", 50.0, 4.0, SHORT_TTL)
    seen = (await live.links())[("cam-1", "gw-1")]
    # The weight of the estimate's age: at least PAST_SHORT_TTL, at most a few seconds.
    low, high = weight(PAST_SHORT_TTL), weight(PAST_SHORT_TTL + 5.0)
    assert 2.0 + low * 48.0 - 1e-6 <= seen["mbps"] <= 2.0 + high * 48.0 + 1e-6
    assert (seen["last_mbps"], seen["last_rtt_ms"], seen["fresh"]) == (50.0, 4.0, True)


async def test_forget_drops_both_ends_reports(live: LiveState) -> None:
    await live.put_link("cam-1", "gw-1", 20.0, 9.0, LONG_TTL)
    await live.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
    await live.put_link("gw-1", "cloud", 50.0, 20.0, LONG_TTL)
    await live.forget("cam-1")
    assert set(await live.links()) == {("cloud", "gw-1")}
    await live.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
    assert _figure(await live.links(), "cam-1", "gw-1") == (300.0, 12.0)


async def test_link_reports_are_shared_by_replicas(redis_url: str, live_prefix: str) -> None:
    a = RedisLiveState(redis_url, prefix=live_prefix)
    b = RedisLiveState(redis_url, prefix=live_prefix)
    try:
        await a.put_link("cam-1", "gw-1", 20.0, 9.0, LONG_TTL)
        await b.put_link("gw-1", "cam-1", 300.0, 12.0, LONG_TTL)
        assert _figure(await a.links(), "cam-1", "gw-1") == (20.0, 12.0)
        assert _figure(await b.links(), "cam-1", "gw-1") == (20.0, 12.0)
    finally:
        await a.close()
        await b.close()


async def test_link_outlives_its_ttl_as_a_stale_figure(live: LiveState) -> None:
    await live.put_link("a", "b", 10.0, 1.0, SHORT_TTL)
    await live.put_link("b", "c", 10.0, 1.0, LONG_TTL)
    await anyio.sleep(PAST_SHORT_TTL)
    links = await live.links()
    assert set(links) == {("a", "b"), ("b", "c")}
    assert (links[("a", "b")]["fresh"], links[("b", "c")]["fresh"]) == (False, True)


async def test_link_to_itself_is_refused(live: LiveState) -> None:
    with pytest.raises(ValueError, match="two different devices"):
        await live.put_link("a", "a", 10.0, 1.0, LONG_TTL)


# -- pub/sub ---------------------------------------------------------------------------------
