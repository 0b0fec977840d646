"""Live state in Redis, shared by every control-plane replica.

Layout under the key prefix (default "continuum:"):
  hb:<device>        the latest heartbeat (JSON), expiring after its TTL (PX)
  hb:index           sorted set of device ids scored by expiry (ms), so listing is a range
                     read and never a KEYS/SCAN over the keyspace
  hb:changes         stream of the device ids whose heartbeat was written or forgotten, one
                     entry per write (a JSON list), kept for _CHANGES_KEEP_MS: the
                     reconcile leader reads only these each tick (`heartbeat_changes`)
  linkend:<[a,b,r]>  end r's remembered estimate of link a-b (JSON, links.remember),
                     kept links.MEMORY_S after its last report; a < b, r is a or b (each
                     end's estimate apart: see links.py)
  linkend:index      the same kind of index for those reports
  lock:<name>        the holder of a lock, expiring after its TTL
  ch:<channel>       pub/sub channels

The keys' own TTLs are the truth; the indexes are a superset pruned lazily, with a grace
period so that clock skew between replicas never hides a live device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pydantic_core
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from orchestrator.live.base import DEFAULT_BUFFER, HeartbeatChanges, Subscription, unregister
from orchestrator.live.batching import GroupWrite
from orchestrator.live.links import MEMORY_S, MIN_WEIGHT, TAU_S, bottleneck, link_key
from orchestrator.live.lua import ACQUIRE, READ_WITH_TTL, RELEASE, REMEMBER, WRITE_BEATS

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "continuum:"
# Index entries are dropped this long after their key expired (see the module docstring).
_INDEX_GRACE_MS = 60_000
_SOCKET_TIMEOUT_S = 5.0
# How long the changes stream keeps an entry, and the age of a cursor past which a reader
# gets a full read instead (half of it: clock skew between replicas stays well inside).
_CHANGES_KEEP_MS = 60_000
_CHANGES_FOLLOW_MS = _CHANGES_KEEP_MS // 2
# A client made with `from_url` retries nothing: a connection pooled before Redis
# restarted failed its next command once ("Connection closed by server"), and the API
# answered that request 503 with Redis back up. Such a command is sent again on a fresh
# connection, and a connection idle for longer than _HEALTH_CHECK_S is checked with a PING
# first. A few retries within about a second, and none on a timeout: a Redis that is
# down or hung still gives its 503 quickly.
_RETRIES = 3
# Messages per pipeline of `publish_many`: one round trip each, bounded in size.
_PUBLISH_BATCH = 500
_HEALTH_CHECK_S = 10.0


def _retry() -> Retry:
    return Retry(
        ExponentialWithJitterBackoff(base=0.05, cap=0.5),
        _RETRIES,
        supported_errors=(RedisConnectionError, BusyLoadingError),
    )


# While Redis is down the subscriber retries, backing off to a few seconds between tries.
_RESUBSCRIBE_FIRST_DELAY_S = 0.2
_RESUBSCRIBE_MAX_DELAY_S = 5.0

_Waiter = asyncio.Future[dict[str, Any] | None]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _deliver(future: _Waiter, message: dict[str, Any] | None) -> None:
    if not future.done():
        future.set_result(message)


class RedisLiveState:
    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=_SOCKET_TIMEOUT_S,
            socket_connect_timeout=_SOCKET_TIMEOUT_S,
            retry=_retry(),
            health_check_interval=_HEALTH_CHECK_S,
        )
        self._prefix = prefix
        self._hb_index = f"{prefix}hb:index"
        self._hb_changes = f"{prefix}hb:changes"
        # Not "link:", the layout of one figure per link, last writer winning: a replica
        # of that version beside this one in a rolling upgrade would misread these.
        self._link_index = f"{prefix}linkend:index"
        # Heartbeats arriving together share one script call (`batching`).
        self._beats: GroupWrite[tuple[bytes, int]] = GroupWrite(self._write_beats)
        self._acquire = self._redis.register_script(ACQUIRE)
        self._release = self._redis.register_script(RELEASE)
        self._remember = self._redis.register_script(REMEMBER)
        self._read_with_ttl = self._redis.register_script(READ_WITH_TTL)
        self._write = self._redis.register_script(WRITE_BEATS)
        # One subscriber per process: a pattern subscription on every channel under the
        # prefix, fanned out to local waiters and subscriptions. Channels carry few messages
        # (desired-state changes, events), so receiving all of them is cheaper than
        # subscribing per waiter.
        self._waiters: dict[str, set[_Waiter]] = {}
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._subscriber: asyncio.Task[None] | None = None
        self._closing = False
        self._subscribed = asyncio.Event()

    # -- keys ------------------------------------------------------------------------------
    def _hb_key(self, device_id: str) -> str:
        return f"{self._prefix}hb:{device_id}"

    def _link_key(self, member: str) -> str:
        return f"{self._prefix}linkend:{member}"

    def _channel(self, channel: str) -> str:
        return f"{self._prefix}ch:{channel}"

    # -- heartbeats and liveness -------------------------------------------------------
    async def put_heartbeat(self, device_id: str, beat: dict[str, Any], ttl_s: float) -> None:
        # pydantic-core's encoder (in Rust), about 4 times faster than json.dumps here: every
        # heartbeat is encoded once by the replica that takes it.
        await self._beats.put(device_id, (pydantic_core.to_json(beat), _ms(ttl_s)))

    async def _write_beats(self, beats: dict[str, tuple[bytes, int]]) -> None:
        # One script call for the batch, not a pipeline of a SET per heartbeat: the client
        # builds and parses one command instead of one per heartbeat, which cost the
        # control plane about 2.5 times the CPU (bench/RESULTS.md, "Heartbeats", hb5).
        now_ms = _now_ms()
        keys = [self._hb_index, self._hb_changes]
        args: list[str | bytes | int] = [
            now_ms,
            now_ms - _CHANGES_KEEP_MS,
            json.dumps(list(beats), separators=(",", ":")),
            len(self._hb_key("").encode()),
        ]
        for device_id, (raw, ttl_ms) in beats.items():
            keys.append(self._hb_key(device_id))
            args += (raw, ttl_ms)
        await self._write(keys=keys, args=args)

    def _note_changes(self, pipe: Any, device_ids: list[str], now_ms: int) -> None:
        pipe.xadd(
            self._hb_changes,
            {"d": json.dumps(device_ids, separators=(",", ":"))},
            minid=str(now_ms - _CHANGES_KEEP_MS),
            approximate=True,
        )

    async def heartbeat(self, device_id: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self._hb_key(device_id))
        return None if raw is None else _loads(raw)

    async def heartbeats(self) -> dict[str, dict[str, Any]]:
        ids = await self._live_members(self._hb_index)
        if not ids:
            return {}
        raws = await self._redis.mget([self._hb_key(i) for i in ids])
        return {i: _loads(raw) for i, raw in zip(ids, raws, strict=True) if raw is not None}

    async def heartbeat_changes(self, cursor: str | None) -> HeartbeatChanges:
        now_ms = _now_ms()
        if cursor is not None and _stream_ms(cursor) >= now_ms - _CHANGES_FOLLOW_MS:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.exists(self._hb_changes)
                pipe.xrange(self._hb_changes, f"({cursor}", "+")
                exists, entries = await pipe.execute()
            # A stream gone (Redis restarted empty, or flushed) lost its entries after
            # the cursor: read everything.
            if exists:
                ids: dict[str, None] = {}
                for _, fields in entries:
                    ids.update(dict.fromkeys(json.loads(fields["d"])))
                last = entries[-1][0] if entries else cursor
                return HeartbeatChanges(last, await self._read_beats(list(ids)), False)
        # The cursor before the read: a write in between is read again next time.
        newest = await self._redis.xrevrange(self._hb_changes, "+", "-", count=1)
        start = _strings([newest[0][0]])[0] if newest else "0-0"
        ids_alive = await self._live_members(self._hb_index)
        beats = await self._read_beats(ids_alive)
        alive = {d: entry for d, entry in beats.items() if entry[0] is not None}
        return HeartbeatChanges(start, alive, True)

    async def _read_beats(
        self, device_ids: list[str]
    ) -> dict[str, tuple[dict[str, Any] | None, float]]:
        if not device_ids:
            return {}
        flat = await self._read_with_ttl(keys=[self._hb_key(d) for d in device_ids])
        now = time.time()
        out: dict[str, tuple[dict[str, Any] | None, float]] = {}
        for k, device_id in enumerate(device_ids):
            raw, ttl_ms = flat[2 * k], int(flat[2 * k + 1])
            if raw is None or ttl_ms == -2:
                out[device_id] = (None, now)
            else:
                # -1 (no TTL) never happens for a key written here; kept a day if it does.
                ttl_s = ttl_ms / 1000 if ttl_ms >= 0 else 86_400.0
                out[device_id] = (_loads(raw), now + ttl_s)
        return out

    async def forget(self, device_id: str) -> None:
        members = _strings(await self._redis.zrange(self._link_index, 0, -1))
        gone = [m for m in members if device_id in json.loads(m)]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._hb_key(device_id), *(self._link_key(m) for m in gone))
            pipe.zrem(self._hb_index, device_id)
            self._note_changes(pipe, [device_id], _now_ms())
            if gone:
                pipe.zrem(self._link_index, *gone)
            await pipe.execute()

    # -- link measurements -----------------------------------------------------------------
    async def put_link(
        self, reporter: str, peer: str, mbps: float, rtt_ms: float, ttl_s: float
    ) -> None:
        member = json.dumps([*link_key(reporter, peer), reporter], separators=(",", ":"))
        await self._remember(
            keys=[self._link_key(member), self._link_index],
            args=[member, float(mbps), float(rtt_ms), time.time(), float(ttl_s),
                  _ms(MEMORY_S), MIN_WEIGHT, TAU_S],
        )  # fmt: skip

    async def links(self) -> dict[tuple[str, str], dict[str, Any]]:
        members = await self._live_members(self._link_index)
        if not members:
            return {}
        raws = await self._redis.mget([self._link_key(m) for m in members])
        reports: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for member, raw in zip(members, raws, strict=True):
            if raw is not None:
                a, b, _ = json.loads(member)
                reports.setdefault((a, b), []).append(json.loads(raw))
        now = time.time()
        return {key: bottleneck(ends, now) for key, ends in sorted(reports.items())}

    async def _live_members(self, index: str) -> list[str]:
        """Members of an index whose key may still be alive; prunes the long-dead ones."""
        now = _now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(index, "-inf", now - _INDEX_GRACE_MS)
            pipe.zrange(index, now - _INDEX_GRACE_MS, "+inf", byscore=True)
            _, members = await pipe.execute()
        return _strings(members)

    # -- pub/sub ---------------------------------------------------------------------------
    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        await self._redis.publish(self._channel(channel), json.dumps(message))

    async def publish_many(self, channel: str, messages: Sequence[dict[str, Any]]) -> None:
        name = self._channel(channel)
        for start in range(0, len(messages), _PUBLISH_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for message in messages[start : start + _PUBLISH_BATCH]:
                    pipe.publish(name, json.dumps(message))
                await pipe.execute()

    async def wait(self, channel: str, timeout_s: float) -> dict[str, Any] | None:
        future: _Waiter = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(channel, set()).add(future)
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                # The timeout covers subscribing too: a waiter never outlives its deadline
                # because Redis is slow to answer.
                self._ensure_subscriber()
                await self._subscribed.wait()
                return await future
        except TimeoutError:
            return None
        finally:
            unregister(self._waiters, channel, future)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, channel: str, maxsize: int = DEFAULT_BUFFER
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(channel, maxsize)
        # Registered before the pattern subscription is confirmed: everything the
        # subscriber reads from then on reaches it, so nothing published after entering
        # returns can slip between subscribing and listening.
        self._subscriptions.setdefault(channel, set()).add(subscription)
        try:
            while not self._subscribed.is_set() and not subscription.closed:
                # In slices: a subscriber task that died is started again. A close()
                # meanwhile closes the subscription, which then ends at once.
                self._ensure_subscriber()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._subscribed.wait()
            yield subscription
        finally:
            unregister(self._subscriptions, channel, subscription)
            subscription.close()

    def _ensure_subscriber(self) -> None:
        if self._closing:
            return
        if self._subscriber is None or self._subscriber.done():
            self._subscriber = asyncio.create_task(
                self._subscribe_forever(), name="continuum-live-subscriber"
            )

    async def _subscribe_forever(self) -> None:
        """Keep one pattern subscription open and fan messages out to local waiters and
        subscriptions.

        A lost connection is retried until close(); messages published while disconnected
        are lost (pub/sub is at-most-once), which is why waiters re-read the desired state
        after a timeout rather than rely on every notification, and why the gap is logged
        when subscriptions were open across it.
        """
        pattern = f"{self._prefix}ch:*"
        strip = len(self._prefix) + len("ch:")
        delay = _RESUBSCRIBE_FIRST_DELAY_S
        lost_at: float | None = None
        while not self._closing:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(pattern)
                while True:
                    # A bounded wait: a cancellation that lands while subscribing is
                    # seen within a second instead of hanging on a blocking read.
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._subscribed.set()
                        delay = _RESUBSCRIBE_FIRST_DELAY_S
                        if lost_at is not None and self._subscriptions:
                            log.warning(
                                "live-state subscriber back after %.1fs: messages published "
                                "meanwhile on %s are lost",
                                time.monotonic() - lost_at,
                                ", ".join(sorted(self._subscriptions)),
                            )
                        lost_at = None
                    elif message["type"] == "pmessage":
                        self._fan_out(message["channel"][strip:], message["data"])
            except (RedisError, OSError) as exc:
                log.warning("live-state subscriber lost Redis (retrying in %.1fs): %s", delay, exc)
            except Exception:  # a bug here must not leave every subscription deaf for good
                log.exception("live-state subscriber failed (retrying in %.1fs)", delay)
            finally:
                if lost_at is None and self._subscribed.is_set():
                    lost_at = time.monotonic()
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow
                    # the cancellation of close() when the inner call finishes meanwhile.
                    async with asyncio.timeout(2.0):
                        await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESUBSCRIBE_MAX_DELAY_S)

    def _fan_out(self, channel: str, data: str) -> None:
        waiters = list(self._waiters.get(channel, ()))
        subscriptions = list(self._subscriptions.get(channel, ()))
        if not waiters and not subscriptions:
            return
        try:
            _loads(data)
        except ValueError:
            log.warning("ignoring a message that is not a JSON object on %r", channel)
            return
        # Each receiver decodes its own copy: one mutating it cannot affect another.
        for future in waiters:
            _deliver(future, _loads(data))
        for subscription in subscriptions:
            subscription.put(_loads(data))

    # -- the reconcile loop's lock -------------------------------------------------------
    async def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        taken = await self._acquire(keys=[f"{self._prefix}lock:{name}"], args=[holder, _ms(ttl_s)])
        return bool(taken)

    async def release(self, name: str, holder: str) -> None:
        await self._release(keys=[f"{self._prefix}lock:{name}"], args=[holder])

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        for waiters in self._waiters.values():
            for future in waiters:
                # Wake long-polls at shutdown (as a timeout) rather than leave them hanging.
                _deliver(future, None)
        # A waiter still waiting for the subscription to be confirmed (a new replica, a
        # slow Redis) must reach its answer too: no confirmation comes after a close.
        self._subscribed.set()
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.close()
        self._closing = True
        try:
            subscriber, self._subscriber = self._subscriber, None
            while subscriber is not None and not subscriber.done():
                # Again until it ends: a cancellation absorbed inside the Redis client must
                # not leave close() waiting on a subscriber that goes on retrying.
                subscriber.cancel()
                await asyncio.wait({subscriber}, timeout=1.0)
            await self._redis.aclose()
        finally:
            # The client reconnects on next use, and so may the subscriber.
            self._closing = False


def _stream_ms(entry_id: str) -> int:
    """The time part of a stream entry id ("<ms>-<seq>"); 0 when it is not one."""
    head = entry_id.partition("-")[0]
    return int(head) if head.isdigit() else 0


def _strings(values: list[Any]) -> list[str]:
    # The client decodes responses (decode_responses=True); its types cannot say so.
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _loads(raw: str | bytes) -> dict[str, Any]:
    # pydantic-core's parser (in Rust), about 4 times faster than json.loads: the leader
    # parses every heartbeat written since its last tick. It reads what json.loads reads,
    # NaN and Infinity included, and raises a ValueError as it does on bad JSON.
    value = pydantic_core.from_json(raw)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value
