"""The event bus over both live-state backends: a burst reaches every listener and
subscriber of every replica, in order, however slow the listeners are."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from orchestrator.events import EventBus
from orchestrator.live import LiveState
from orchestrator.live.redis import RedisLiveState

pytestmark = pytest.mark.anyio

DEADLINE = 20.0
BURST = 60


class SlowListener:
    """Records every event's sequence number and yields to the loop a few times per event,
    long enough for the rest of the burst to be published meanwhile."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, event: dict[str, Any]) -> None:
        await asyncio.sleep(0.005)
        self.seen.append(int(event["data"]["seq"]))


async def _until(condition: Any) -> None:
    with anyio.fail_after(DEADLINE):
        while not condition():
            await anyio.sleep(0.01)


async def _burst(bus: EventBus, count: int) -> None:
    await _burst_from(bus, 0, count)


async def _burst_from(bus: EventBus, first: int, end: int) -> None:
    for seq in range(first, end):
        await bus.publish("placement", {"seq": seq})


async def test_a_burst_reaches_a_slow_listener_and_a_subscriber_in_order(
    live: LiveState,
) -> None:
    bus = EventBus(live)
    listener = SlowListener()
    bus.listen(listener)
    await bus.start()
    try:
        async with bus.subscribe() as queue:
            await _burst(bus, BURST)
            await _until(lambda: len(listener.seen) >= BURST)
            received = [queue.get_nowait() for _ in range(queue.qsize())]
    finally:
        await bus.stop()
    assert listener.seen == list(range(BURST))
    assert [e["data"]["seq"] for e in received] == list(range(BURST))
    assert [e["id"] for e in received] == list(range(1, BURST + 1))
    assert {e["type"] for e in received} == {"placement"}
    assert bus.dropped == 0


async def test_a_burst_from_one_replica_reaches_another_in_order(
    redis_url: str, live_prefix: str
) -> None:
    here = RedisLiveState(redis_url, prefix=live_prefix)
    there = RedisLiveState(redis_url, prefix=live_prefix)
    publisher, receiver = EventBus(here), EventBus(there)
    listener = SlowListener()
    receiver.listen(listener)
    await receiver.start()
    try:
        await _burst(publisher, BURST)
        await _until(lambda: len(listener.seen) >= BURST)
    finally:
        await receiver.stop()
        await here.close()
        await there.close()
    assert listener.seen == list(range(BURST))


async def test_a_subscriber_that_falls_behind_loses_only_its_oldest_events(
    live: LiveState,
) -> None:
    bus = EventBus(live, queue_max=10)
    listener = SlowListener()
    bus.listen(listener)
    await bus.start()
    try:
        async with bus.subscribe() as laggard, bus.subscribe() as keeper:
            kept: list[int] = []

            async def keep() -> None:
                while len(kept) < 25:
                    kept.append(int((await keeper.get())["data"]["seq"]))

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep)
                await _burst(bus, 25)
            await _until(lambda: len(listener.seen) >= 25)
            left = [int(laggard.get_nowait()["data"]["seq"]) for _ in range(laggard.qsize())]
    finally:
        await bus.stop()
    assert kept == list(range(25))
    assert left == list(range(15, 25))
    assert bus.dropped == 15


async def test_a_pump_stuck_on_a_listener_loses_only_what_overflows_its_backlog(
    live: LiveState,
) -> None:
    bus = EventBus(live, backlog=5)
    entered, release = asyncio.Event(), asyncio.Event()
    seen: list[int] = []

    async def stuck(event: dict[str, Any]) -> None:
        entered.set()
        await release.wait()
        seen.append(int(event["data"]["seq"]))

    bus.listen(stuck)
    await bus.start()
    try:
        async with live.subscribe("witness") as witness:
            await bus.publish("placement", {"seq": 0})
            with anyio.fail_after(DEADLINE):
                await entered.wait()
            await _burst_from(bus, 1, 10)
            # The backend hears channels in publish order: once the witness has its
            # message, the pump's subscription holds the whole burst.
            await live.publish("witness", {})
            with anyio.fail_after(DEADLINE):
                await witness.get()
            release.set()
            await _until(lambda: len(seen) >= 6)
    finally:
        await bus.stop()
    assert seen == [0, 5, 6, 7, 8, 9]
    assert bus.dropped == 4


async def test_stop_tells_subscribers_and_a_restart_delivers_again(live: LiveState) -> None:
    bus = EventBus(live)
    listener = SlowListener()
    bus.listen(listener)
    await bus.start()
    async with bus.subscribe() as queue:
        await bus.stop()
        assert queue.get_nowait() == {"type": "shutdown"}
    await bus.start()
    try:
        await _burst(bus, 3)
        await _until(lambda: len(listener.seen) >= 3)
    finally:
        await bus.stop()
    assert listener.seen == [0, 1, 2]


async def test_a_failing_listener_does_not_stop_the_others(live: LiveState) -> None:
    bus = EventBus(live)
    listener = SlowListener()

    async def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("a listener bug")

    bus.listen(broken)
    bus.listen(listener)
    await bus.start()
    try:
        await _burst(bus, 5)
        await _until(lambda: len(listener.seen) >= 5)
    finally:
        await bus.stop()
    assert listener.seen == list(range(5))


async def test_start_goes_on_without_an_unreachable_redis(live_prefix: str) -> None:
    live = RedisLiveState("redis://127.0.0.1:1/0", prefix=live_prefix)
    bus = EventBus(live, start_timeout_s=0.2)
    try:
        with anyio.fail_after(DEADLINE):
            await bus.start()
            await bus.stop()
    finally:
        await live.close()
