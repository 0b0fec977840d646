"""One suite for both live-state backends: in-process, and a real Redis.

Expiry tests use TTLs of a fraction of a second and sleep well past them: they check TTL
semantics, not speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from orchestrator.live import LiveState, MemoryLiveState, open_live_state
from orchestrator.live.redis import RedisLiveState
from orchestrator.settings import Settings

pytestmark = pytest.mark.anyio

SHORT_TTL = 0.2
PAST_SHORT_TTL = 0.5
LONG_TTL = 30.0
WAKE_DEADLINE = 10.0


async def _woken_by(
    publish: Callable[[], Awaitable[None]], wait: Callable[[], Awaitable[Any]]
) -> Any:
    """Run a waiter and publish until it returns.

    Pub/sub delivers only to waiters already subscribed (at most once, like Redis), and a
    test cannot see when a waiter on another connection has subscribed: so it publishes
    again until the waiter has answered, which is what a message must do.
    """
    result: list[Any] = []

    async def waiter() -> None:
        result.append(await wait())

    with anyio.fail_after(WAKE_DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            while not result:
                await publish()
                await anyio.sleep(0.02)
    return result[0]


# -- heartbeats ------------------------------------------------------------------------------


async def test_heartbeat_is_stored_and_listed(live: LiveState) -> None:
    await live.put_heartbeat("cam-1", {"battery_pct": 80.0, "at": 1.5}, LONG_TTL)
    await live.put_heartbeat("gw-1", {"battery_pct": None, "parts": ["a", "b"]}, LONG_TTL)

    assert await live.heartbeat("cam-1") == {"battery_pct": 80.0, "at": 1.5}
    assert await live.heartbeat("never-seen") is None
    assert await live.heartbeats() == {
        "cam-1": {"battery_pct": 80.0, "at": 1.5},
        "gw-1": {"battery_pct": None, "parts": ["a", "b"]},
    }


async def test_latest_heartbeat_replaces_the_previous(live: LiveState) -> None:
    await live.put_heartbeat("cam-1", {"seq": 1}, LONG_TTL)
    await live.put_heartbeat("cam-1", {"seq": 2}, LONG_TTL)
    assert await live.heartbeats() == {"cam-1": {"seq": 2}}


async def test_heartbeats_written_together_are_each_stored(live: LiveState) -> None:
    # Concurrent writers share one Redis write (`orchestrator.live.batching`): each
    # returns only once its own heartbeat is stored, and the same device's later one wins.
    ids = [f"dev-{k}" for k in range(50)]
    await asyncio.gather(
        *(live.put_heartbeat(i, {"n": k}, LONG_TTL) for k, i in enumerate(ids)),
        live.put_heartbeat("dev-0", {"n": -1}, LONG_TTL),
    )

    stored = await live.heartbeats()
    assert stored == {i: {"n": -1 if i == "dev-0" else k} for k, i in enumerate(ids)}
    await asyncio.gather(*(live.put_heartbeat(i, {"n": 0}, SHORT_TTL) for i in ids[:10]))
    await asyncio.sleep(PAST_SHORT_TTL)
    assert sorted(await live.heartbeats()) == sorted(ids[10:])


async def test_a_batch_larger_than_the_scripts_index_chunk_is_indexed_whole(
    live: LiveState,
) -> None:
    # On Redis one script writes the batch and indexes it in chunks of 500 (Lua's stack):
    # every heartbeat of a batch of 1,200 is listed, and read back as changed.
    cursor = (await live.heartbeat_changes(None)).cursor
    ids = [f"dev-{k:04d}" for k in range(1200)]
    await asyncio.gather(*(live.put_heartbeat(i, {"n": k}, LONG_TTL) for k, i in enumerate(ids)))
    assert await live.heartbeats() == {i: {"n": k} for k, i in enumerate(ids)}
    changed = await live.heartbeat_changes(cursor)
    assert {d: beat for d, (beat, _) in changed.beats.items()} == {
        i: {"n": k} for k, i in enumerate(ids)
    }


async def test_stored_heartbeat_is_a_copy(live: LiveState) -> None:
    beat: dict[str, Any] = {"parts": ["a"]}
    await live.put_heartbeat("cam-1", beat, LONG_TTL)
    beat["parts"].append("b")
    read = await live.heartbeat("cam-1")
    assert read == {"parts": ["a"]}
    assert read is not None
    read["parts"].append("c")
    assert await live.heartbeat("cam-1") == {"parts": ["a"]}


async def test_heartbeat_expires_after_its_ttl(live: LiveState) -> None:
    await live.put_heartbeat("cam-1", {"seq": 1}, SHORT_TTL)
    await live.put_heartbeat("gw-1", {"seq": 1}, LONG_TTL)
    await anyio.sleep(PAST_SHORT_TTL)
    assert await live.heartbeat("cam-1") is None
    assert await live.heartbeats() == {"gw-1": {"seq": 1}}


async def test_a_new_heartbeat_extends_liveness(live: LiveState) -> None:
    await live.put_heartbeat("cam-1", {"seq": 1}, SHORT_TTL)
    await live.put_heartbeat("cam-1", {"seq": 2}, LONG_TTL)
    await anyio.sleep(PAST_SHORT_TTL)
    assert await live.heartbeats() == {"cam-1": {"seq": 2}}


async def test_forget_drops_heartbeat_and_links(live: LiveState) -> None:
    await live.put_heartbeat("cam-1", {"seq": 1}, LONG_TTL)
    await live.put_heartbeat("gw-1", {"seq": 1}, LONG_TTL)
    await live.put_link("cam-1", "gw-1", 100.0, 2.0, LONG_TTL)
    await live.put_link("gw-1", "cloud", 50.0, 20.0, LONG_TTL)

    await live.forget("cam-1")

    assert await live.heartbeat("cam-1") is None
    assert set(await live.heartbeats()) == {"gw-1"}
    assert set(await live.links()) == {("cloud", "gw-1")}
    await live.forget("never-seen")  # forgetting the unknown is not an error


# -- links -----------------------------------------------------------------------------------


async def test_publish_wakes_a_waiter(live: LiveState) -> None:
    message = await _woken_by(
        lambda: live.publish("desired:cam-1", {"version": 7}),
        lambda: live.wait("desired:cam-1", WAKE_DEADLINE),
    )
    assert message == {"version": 7}


async def test_publish_wakes_every_waiter_of_the_channel_only(live: LiveState) -> None:
    others: list[Any] = []

    async def other_channel() -> None:
        others.append(await live.wait("desired:gw-1", PAST_SHORT_TTL))

    async def two_waiters() -> list[Any]:
        async with anyio.create_task_group() as tg:
            got: list[Any] = []

            async def one() -> None:
                got.append(await live.wait("desired:cam-1", WAKE_DEADLINE))

            tg.start_soon(one)
            tg.start_soon(one)
            while len(got) < 2:
                await live.publish("desired:cam-1", {"version": 1})
                await anyio.sleep(0.02)
        return got

    with anyio.fail_after(WAKE_DEADLINE):
        async with anyio.create_task_group() as tg:
            tg.start_soon(other_channel)
            assert await two_waiters() == [{"version": 1}, {"version": 1}]
    assert others == [None]


async def test_wait_times_out_with_none(live: LiveState) -> None:
    with anyio.fail_after(WAKE_DEADLINE):
        assert await live.wait("desired:quiet", SHORT_TTL) is None


async def test_a_message_before_the_wait_is_not_delivered(live: LiveState) -> None:
    await live.publish("desired:cam-1", {"version": 1})
    assert await live.wait("desired:cam-1", SHORT_TTL) is None


@pytest.mark.parametrize("after_s", [0.0, 0.05])
async def test_close_wakes_waiters(live: LiveState, after_s: float) -> None:
    """after_s 0: closed before the waiter's subscription was confirmed (on Redis it
    waited for the whole deadline)."""
    got: list[Any] = []

    async def waiter() -> None:
        got.append(await live.wait("desired:cam-1", WAKE_DEADLINE))

    with anyio.fail_after(WAKE_DEADLINE / 2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(after_s)
            await live.close()
    assert got == [None]


async def test_publish_on_one_replica_wakes_a_waiter_on_another(
    redis_url: str, live_prefix: str
) -> None:
    publisher = RedisLiveState(redis_url, prefix=live_prefix)
    subscriber = RedisLiveState(redis_url, prefix=live_prefix)
    try:
        message = await _woken_by(
            lambda: publisher.publish("desired:cam-1", {"version": 3}),
            lambda: subscriber.wait("desired:cam-1", WAKE_DEADLINE),
        )
        assert message == {"version": 3}
    finally:
        await publisher.close()
        await subscriber.close()


async def test_replicas_with_other_prefixes_do_not_hear_each_other(
    redis_url: str, live_prefix: str
) -> None:
    publisher = RedisLiveState(redis_url, prefix=live_prefix)
    stranger = RedisLiveState(redis_url, prefix=live_prefix + "other:")
    try:
        got: list[Any] = []

        async def waiter() -> None:
            got.append(await stranger.wait("desired:cam-1", PAST_SHORT_TTL))

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            while not got:
                await publisher.publish("desired:cam-1", {"version": 1})
                await anyio.sleep(0.05)
        assert got == [None]
    finally:
        await publisher.close()
        await stranger.close()


# -- subscriptions ---------------------------------------------------------------------------


async def _collect(subscription: Any, count: int) -> list[Any]:
    with anyio.fail_after(WAKE_DEADLINE):
        return [await subscription.get() for _ in range(count)]


async def test_a_subscription_keeps_a_burst_in_order(live: LiveState) -> None:
    await live.publish("events", {"seq": -1})  # before subscribing: not for it
    async with live.subscribe("events") as subscription:
        # Nothing is read while the burst goes out: the subscription holds it.
        for seq in range(100):
            await live.publish("events", {"seq": seq})
            await live.publish("other", {"seq": seq})
        got = await _collect(subscription, 100)
        assert await subscription.get(SHORT_TTL) is None
    assert got == [{"seq": seq} for seq in range(100)]
    assert subscription.dropped == 0
    assert subscription.closed


async def test_publish_many_delivers_every_message_in_order(live: LiveState) -> None:
    """More than one Redis pipeline's worth (500), among single publishes."""
    async with live.subscribe("events", maxsize=2000) as subscription:
        await live.publish("events", {"seq": -1})
        await live.publish_many("events", [{"seq": seq} for seq in range(1200)])
        await live.publish_many("events", [])
        await live.publish("events", {"seq": 1200})
        got = await _collect(subscription, 1202)
        assert await subscription.get(SHORT_TTL) is None
    assert got == [{"seq": seq} for seq in range(-1, 1201)]
    assert subscription.dropped == 0


async def test_a_full_subscription_drops_its_oldest_and_counts_them(live: LiveState) -> None:
    async with (
        live.subscribe("events", maxsize=5) as small,
        live.subscribe("events") as large,
    ):
        for seq in range(8):
            await live.publish("events", {"seq": seq})
        # Both hear each message at once: once the large one has the last, so has the small.
        assert await _collect(large, 8) == [{"seq": seq} for seq in range(8)]
        assert await _collect(small, 5) == [{"seq": seq} for seq in range(3, 8)]
        assert small.dropped == 3
        assert large.dropped == 0


async def test_subscribers_get_their_own_copies(live: LiveState) -> None:
    async with live.subscribe("events") as one, live.subscribe("events") as two:
        await live.publish("events", {"parts": ["a"]})
        first = await _collect(one, 1)
        first[0]["parts"].append("b")
        assert await _collect(two, 1) == [{"parts": ["a"]}]


async def test_an_exited_subscription_hears_nothing_more(live: LiveState) -> None:
    async with live.subscribe("events") as staying:
        async with live.subscribe("events") as leaving:
            await live.publish("events", {"seq": 0})
            assert await _collect(leaving, 1) == [{"seq": 0}]
        await live.publish("events", {"seq": 1})
        assert await _collect(staying, 2) == [{"seq": 0}, {"seq": 1}]
    assert leaving.closed
    assert await leaving.get(SHORT_TTL) is None


async def test_close_ends_subscriptions_after_what_they_hold(live: LiveState) -> None:
    async with live.subscribe("events") as subscription, live.subscribe("events") as witness:
        await live.publish("events", {"seq": 0})
        await _collect(witness, 1)  # heard together: the subscription holds it too
        await live.close()
        with anyio.fail_after(WAKE_DEADLINE):
            got = [message async for message in subscription]
    assert got == [{"seq": 0}]


async def test_a_burst_on_one_replica_reaches_a_subscription_on_another(
    redis_url: str, live_prefix: str
) -> None:
    publisher = RedisLiveState(redis_url, prefix=live_prefix)
    subscriber = RedisLiveState(redis_url, prefix=live_prefix)
    try:
        async with subscriber.subscribe("events") as subscription:
            for seq in range(100):
                await publisher.publish("events", {"seq": seq})
            assert await _collect(subscription, 100) == [{"seq": seq} for seq in range(100)]
    finally:
        await publisher.close()
        await subscriber.close()


async def test_a_burst_from_another_event_loop_arrives_in_order() -> None:
    live = MemoryLiveState()

    async def burst() -> None:
        for seq in range(100):
            await live.publish("events", {"seq": seq})

    try:
        async with live.subscribe("events") as subscription:
            await anyio.to_thread.run_sync(asyncio.run, burst())
            assert await _collect(subscription, 100) == [{"seq": seq} for seq in range(100)]
    finally:
        await live.close()


# -- the lock --------------------------------------------------------------------------------


async def test_lock_is_exclusive_and_renewable(live: LiveState) -> None:
    assert await live.acquire("reconcile", "replica-a", LONG_TTL)
    assert not await live.acquire("reconcile", "replica-b", LONG_TTL)
    assert await live.acquire("reconcile", "replica-a", LONG_TTL)  # renew
    assert await live.acquire("other-lock", "replica-b", LONG_TTL)


async def test_renewal_extends_the_lock(live: LiveState) -> None:
    assert await live.acquire("reconcile", "replica-a", 0.6)
    await anyio.sleep(0.4)
    assert await live.acquire("reconcile", "replica-a", 0.6)
    await anyio.sleep(0.4)  # past the first TTL, within the renewed one
    assert not await live.acquire("reconcile", "replica-b", LONG_TTL)


async def test_lock_expires_after_its_ttl(live: LiveState) -> None:
    assert await live.acquire("reconcile", "replica-a", SHORT_TTL)
    await anyio.sleep(PAST_SHORT_TTL)
    assert await live.acquire("reconcile", "replica-b", LONG_TTL)
    # The former holder can neither renew nor release what is now b's.
    assert not await live.acquire("reconcile", "replica-a", LONG_TTL)
    await live.release("reconcile", "replica-a")
    assert not await live.acquire("reconcile", "replica-c", LONG_TTL)


async def test_release_by_holder_frees_the_lock(live: LiveState) -> None:
    assert await live.acquire("reconcile", "replica-a", LONG_TTL)
    await live.release("reconcile", "replica-b")  # not the holder: ignored
    assert not await live.acquire("reconcile", "replica-b", LONG_TTL)
    await live.release("reconcile", "replica-a")
    assert await live.acquire("reconcile", "replica-b", LONG_TTL)
    await live.release("never-taken", "replica-a")  # releasing a free lock is not an error


async def test_lock_is_shared_by_replicas(redis_url: str, live_prefix: str) -> None:
    a = RedisLiveState(redis_url, prefix=live_prefix)
    b = RedisLiveState(redis_url, prefix=live_prefix)
    try:
        assert await a.acquire("reconcile", "replica-a", LONG_TTL)
        assert not await b.acquire("reconcile", "replica-b", LONG_TTL)
        await a.release("reconcile", "replica-a")
        assert await b.acquire("reconcile", "replica-b", LONG_TTL)
    finally:
        await a.close()
        await b.close()


# -- health and choice of backend ------------------------------------------------------------


async def test_ping(live: LiveState) -> None:
    assert await live.ping()


async def test_unreachable_redis_answers_ping_false_and_waits_time_out(
    live_prefix: str,
) -> None:
    state = RedisLiveState("redis://127.0.0.1:1/0", prefix=live_prefix)
    try:
        assert not await state.ping()
        with anyio.fail_after(WAKE_DEADLINE):
            assert await state.wait("desired:cam-1", SHORT_TTL) is None
    finally:
        await state.close()


async def test_open_live_state_chooses_by_redis_url(
    tmp_path: Any, redis_url: str, live_prefix: str
) -> None:
    embedded = open_live_state(Settings(data_dir=tmp_path, redis_url=None))
    shared = open_live_state(Settings(data_dir=tmp_path, redis_url=redis_url))
    try:
        assert isinstance(embedded, MemoryLiveState)
        assert isinstance(shared, RedisLiveState)
        assert await shared.ping()
    finally:
        await embedded.close()
        await shared.close()
