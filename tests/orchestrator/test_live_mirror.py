"""The changes feed of both live-state backends (in-process and a real Redis), and the
mirror the reconcile leader keeps from it: after every kind of change its view is the live
state's, read incrementally.

Expiry tests use TTLs of a fraction of a second and sleep well past them: they check TTL
semantics, not speed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.live import LiveState
from orchestrator.live.base import HeartbeatChanges
from orchestrator.live.mirror import HeartbeatMirror
from orchestrator.live.redis import RedisLiveState

pytestmark = pytest.mark.anyio

SHORT_TTL = 0.2
PAST_SHORT_TTL = 0.5
LONG_TTL = 30.0


async def test_changes_hold_what_was_written_or_forgotten_since_the_cursor(
    live: LiveState,
) -> None:
    await live.put_heartbeat("cam-1", {"seq": 1}, LONG_TTL)
    await live.put_heartbeat("gw-1", {"seq": 1}, LONG_TTL)
    full = await live.heartbeat_changes(None)
    assert full.complete
    assert {d: beat for d, (beat, _) in full.beats.items()} == {
        "cam-1": {"seq": 1},
        "gw-1": {"seq": 1},
    }

    nothing = await live.heartbeat_changes(full.cursor)
    assert not nothing.complete and nothing.beats == {}

    await live.put_heartbeat("gw-1", {"seq": 2}, LONG_TTL)
    await live.forget("cam-1")
    changed = await live.heartbeat_changes(nothing.cursor)
    assert not changed.complete
    assert {d: beat for d, (beat, _) in changed.beats.items()} == {
        "gw-1": {"seq": 2},
        "cam-1": None,  # forgotten: the reader drops it
    }
    (_, expires) = changed.beats["gw-1"]  # epoch seconds, on this process's clock
    assert time.time() + LONG_TTL - 5 < expires <= time.time() + LONG_TTL
    assert (await live.heartbeat_changes(changed.cursor)).beats == {}


async def test_a_cursor_too_old_to_follow_gets_a_full_read(live: LiveState) -> None:
    await live.put_heartbeat("cam-1", {"seq": 1}, LONG_TTL)
    # Not a cursor this backend handed out lately: a stream entry of 1970, or a cursor of
    # another in-process state (a restarted control plane).
    stale = await live.heartbeat_changes("1-0")
    assert stale.complete and set(stale.beats) == {"cam-1"}


async def test_a_lost_changes_stream_gets_a_full_read(redis_url: str, live_prefix: str) -> None:
    live = RedisLiveState(redis_url, prefix=live_prefix)
    try:
        await live.put_heartbeat("cam-1", {"seq": 1}, LONG_TTL)
        cursor = (await live.heartbeat_changes(None)).cursor
        # Redis restarted empty, or was flushed: the entries after the cursor are gone.
        await live._redis.delete(f"{live_prefix}hb:changes")
        await live.put_heartbeat("gw-1", {"seq": 1}, LONG_TTL)
        await live._redis.delete(f"{live_prefix}hb:changes")
        again = await live.heartbeat_changes(cursor)
        assert again.complete and set(again.beats) == {"cam-1", "gw-1"}
    finally:
        await live.close()


async def test_the_mirror_is_the_live_state_read_incrementally(live: LiveState) -> None:
    mirror = HeartbeatMirror(live, full_every_s=3600.0)
    await live.put_heartbeat("cam-1", {"battery_pct": 80.0}, LONG_TTL)
    await live.put_heartbeat("gw-1", {"battery_pct": None}, LONG_TTL)
    await live.put_heartbeat("cam-2", {"battery_pct": 50.0}, SHORT_TTL)
    assert await mirror.read() == await live.heartbeats()
    assert mirror.full_reads == 1 and mirror.changed == 3
    assert mirror.last_changed is None  # a full read: anything may have changed

    await live.put_heartbeat("cam-1", {"battery_pct": 70.0}, LONG_TTL)  # changed
    await live.forget("gw-1")  # deleted
    seen = await mirror.read()
    assert seen == await live.heartbeats()
    assert seen["cam-1"] == {"battery_pct": 70.0} and "gw-1" not in seen
    assert mirror.changed == 2  # only cam-1 and gw-1 were read
    assert mirror.last_changed == {"cam-1", "gw-1"}

    # cam-2 goes silent: no change names it, its heartbeat expires and it is gone.
    await asyncio.sleep(PAST_SHORT_TTL)
    seen = await mirror.read()
    assert seen == await live.heartbeats() == {"cam-1": {"battery_pct": 70.0}}
    assert mirror.changed == 0
    assert mirror.last_changed == {"cam-2"}  # expired: named for the leader's detect step
    assert mirror.full_reads == 1
    await mirror.read()
    assert mirror.last_changed == set()  # named once


async def test_the_mirror_reads_everything_again_after_a_failed_read_and_when_due(
    live: LiveState,
) -> None:
    mirror = HeartbeatMirror(live, full_every_s=3600.0)
    await live.put_heartbeat("cam-1", {"seq": 1}, LONG_TTL)
    await mirror.read()
    await mirror.read()
    assert mirror.full_reads == 1

    mirror.full_every_s = 0.0  # the safety net's period, shortened
    assert await mirror.read() == {"cam-1": {"seq": 1}}
    assert mirror.full_reads == 2

    mirror.full_every_s = 3600.0
    broken = HeartbeatMirror(_Failing(live), full_every_s=3600.0)
    await broken.read()
    with pytest.raises(ConnectionError):
        await broken.read()
    await live.put_heartbeat("cam-1", {"seq": 2}, LONG_TTL)
    assert await broken.read() == {"cam-1": {"seq": 2}}
    assert broken.full_reads == 2  # the read after the failure was a full one


class _Failing:
    """A live state whose second changes read fails (Redis unreachable for one tick)."""

    def __init__(self, live: LiveState) -> None:
        self._live = live
        self._calls = 0

    async def heartbeat_changes(self, cursor: str | None) -> HeartbeatChanges:
        self._calls += 1
        if self._calls == 2:
            raise ConnectionError("the live state is unreachable")
        return await self._live.heartbeat_changes(cursor)


async def test_the_mirror_keeps_one_expiry_per_device_not_per_heartbeat(
    live: LiveState,
) -> None:
    """A leader runs for days at thousands of heartbeats a second: what it keeps to expire
    heartbeats by time follows the fleet, not the heartbeats that ever came."""
    mirror = HeartbeatMirror(live, full_every_s=3600.0)
    await live.put_heartbeat("cam-1", {"seq": 0}, LONG_TTL)
    await mirror.read()
    for seq in range(1, 20):
        # Apart by more than the expiry's jitter (Redis's TTLs are whole milliseconds, read
        # at another moment than written), as heartbeats are by their interval.
        await asyncio.sleep(0.02)
        await live.put_heartbeat("cam-1", {"seq": seq}, LONG_TTL)
        await live.put_heartbeat("gw-1", {"seq": seq}, LONG_TTL)
        assert (await mirror.read())["cam-1"] == {"seq": seq}
    assert len(mirror._expiry) == 2
    # Written again and again, cam-1 still expires by its last TTL, and alone.
    await live.put_heartbeat("cam-1", {"seq": 20}, SHORT_TTL)
    await mirror.read()
    await asyncio.sleep(PAST_SHORT_TTL)
    assert set(await mirror.read()) == {"gw-1"}
    assert mirror.last_changed == {"cam-1"}
