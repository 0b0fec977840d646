"""Simulated agents: heartbeat-only, hundreds or thousands of them in one asyncio loop,
against a real `continuum server`.

Each `SimulatedAgent` enrolls (the caller does that), heartbeats every interval with its
battery and measured links, long-polls its desired state as an agent does
(`after_version`, WAIT_S) and reports every partition of a new state ready at once (with
a heartbeat right away, so rollouts finish sooner). They talk over the lean HTTP client
of `tests/harness/leanhttp.py`: httpx would cost more CPU per request than the server on
a machine of two shared cores. `EventLog` keeps the server's `/v1/events` stream in
memory, to see what the control plane did and when.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.harness.leanhttp import Connection, request_bytes, server_sent_events, split_url

WAIT_S = 25.0  # an agent's desired-state long poll (agents/settings.py: long_poll_s)


@dataclass
class SimulatedAgent:
    """A heartbeat-only agent: it heartbeats every interval with its battery and measured
    links, long-polls its desired state as an agent does, and reports every partition of
    a new desired state ready at once (with a heartbeat right away: loading takes no time
    here, and rollouts finish sooner, so samples can follow each other)."""

    name: str
    device_id: str
    secret: str
    battery_pct: float | None
    links: list[dict[str, Any]]
    partitions: dict[str, bool] = field(default_factory=dict)
    version: int = 0
    alive: bool = True
    kick: asyncio.Event = field(default_factory=asyncio.Event)
    # revision -> when (time.time()) the long poll brought it: the client's own figure
    received: dict[int, float] = field(default_factory=dict)
    last_sent: float = 0.0  # when the last heartbeat was sent
    marking: bool = False  # the next heartbeat carries a changed condition: note its time
    mark: float = 0.0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def got(self, revision: int) -> float | None:
        """When it first held `revision` or a later one."""
        return min((at for r, at in self.received.items() if r >= revision), default=None)


class SimulatedFleet:
    """Every simulated agent in one asyncio loop, each with two keep-alive connections
    (heartbeats, long poll) of the lean client (leanhttp): httpx would cost more
    CPU per request than the server on these two shared cores."""

    def __init__(self, url: str, interval: float) -> None:
        self.host, self.port = split_url(url)
        self.interval = interval
        self.sims: dict[str, SimulatedAgent] = {}  # by name
        self.by_id: dict[str, SimulatedAgent] = {}
        # The newest HeartbeatAck figures any agent saw: a rollout is in flight while
        # live_version < desired_version.
        self.desired_version = 0
        self.live_version = 0
        self.changed_at = time.monotonic()
        self.errors = 0
        # What failed, by kind ("heartbeat 503", "long poll timeout", ...): a soak says which.
        self.error_kinds: collections.Counter[str] = collections.Counter()

    def add(self, sim: SimulatedAgent) -> None:
        self.sims[sim.name] = sim
        self.by_id[sim.device_id] = sim

    def start(self, sim: SimulatedAgent, stagger: bool) -> None:
        sim.alive = True
        sim.tasks = [asyncio.create_task(self._heartbeats(sim, stagger)),
                     asyncio.create_task(self._long_poll(sim))]  # fmt: skip

    async def kill(self, sim: SimulatedAgent) -> float:
        """The agent dies after its heartbeat in flight (if any) is answered; returns when
        its last heartbeat was sent."""
        sim.alive = False
        sim.kick.set()
        beats, poll = sim.tasks
        await beats
        poll.cancel()  # a dead agent's long poll connection drops
        with contextlib.suppress(asyncio.CancelledError):
            await poll
        return sim.last_sent

    def revive(self, sim: SimulatedAgent) -> None:
        """A restarted agent: it runs nothing and reports so."""
        sim.version, sim.partitions = 0, {}
        self.start(sim, stagger=False)

    async def stop(self) -> None:
        tasks = [t for sim in self.sims.values() for t in sim.tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _fail(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] += 1

    def _ack(self, payload: bytes) -> None:
        ack = json.loads(payload)
        desired, live = int(ack["desired_version"]), int(ack.get("live_version") or 0)
        if desired > self.desired_version or live > self.live_version:
            self.desired_version = max(self.desired_version, desired)
            self.live_version = max(self.live_version, live)
            self.changed_at = time.monotonic()

    async def _heartbeats(self, sim: SimulatedAgent, stagger: bool) -> None:
        conn = Connection(self.host, self.port)
        path = f"/v1/agents/{sim.device_id}/heartbeat"
        if stagger:
            await asyncio.sleep(random.uniform(0, self.interval))
        try:
            while sim.alive:
                sim.kick.clear()
                body = {"battery_pct": sim.battery_pct, "utilization": 0.1,
                        "free_memory_mb": 1024.0, "links": sim.links,
                        "partitions": sim.partitions, "desired_version": sim.version}  # fmt: skip
                request = request_bytes("POST", self.host, path, json.dumps(body).encode(),
                                        sim.secret)  # fmt: skip
                sim.last_sent = time.time()
                if sim.marking:
                    sim.mark, sim.marking = sim.last_sent, False
                try:
                    async with asyncio.timeout(5.0):
                        status, payload = await conn.send(request)
                    if status == 200:
                        self._ack(payload)
                    else:
                        self._fail(f"heartbeat {status}")
                except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    # A loaded server may drop a beat: the next follows.
                    self._fail(f"heartbeat {_kind(exc)}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sim.kick.wait(), self.interval)
        finally:
            conn.close()

    async def _long_poll(self, sim: SimulatedAgent) -> None:
        conn = Connection(self.host, self.port)
        try:
            while True:
                path = (f"/v1/agents/{sim.device_id}/desired-state"
                        f"?after_version={sim.version}&wait_s={WAIT_S:g}")  # fmt: skip
                failure = ""
                try:
                    async with asyncio.timeout(WAIT_S + 15.0):
                        status, payload = await conn.send(
                            request_bytes("GET", self.host, path, token=sim.secret)
                        )
                except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                    status, payload, failure = 0, b"", _kind(exc)
                if status != 200:
                    self._fail(f"long poll {failure or status}")
                    await asyncio.sleep(0.5)
                    continue
                now = time.time()
                state = json.loads(payload)
                version = int(state["version"])
                if version <= sim.version:
                    continue
                sim.received[version] = now
                keys = [p["key"] for p in state["partitions"]]
                keys += [s["key"] for s in state["cascade_stages"]]
                fresh = not set(keys) <= set(sim.partitions)
                sim.partitions, sim.version = dict.fromkeys(keys, True), version
                if fresh:
                    sim.kick.set()  # report the new partitions ready now
        finally:
            conn.close()

    async def quiet(
        self, hold_s: float, timeout_s: float = 120.0, busy: Callable[[], float] | None = None
    ) -> None:
        """Until no rollout is in flight and no revision came (nor, with `busy`, anything
        else it reports: its last activity, monotonic) for hold_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            idle = self.live_version >= self.desired_version > 0
            last = max(self.changed_at, busy() if busy is not None else 0.0)
            if idle and time.monotonic() - last >= hold_s:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(
            f"no quiet within {timeout_s:g} s: revision {self.desired_version}, "
            f"live {self.live_version}"
        )


class EventLog:
    """The server's `/v1/events` stream, kept in memory: triggers (observation time),
    placements (commit time) and replacements (reaction_ms and targets)."""

    def __init__(self, fleet: SimulatedFleet, admin_token: str) -> None:
        self.fleet = fleet
        self.admin_token = admin_token
        self.triggers: list[tuple[float, dict[str, Any]]] = []
        self.decisions: list[tuple[float, dict[str, Any]]] = []  # every plan (monotonic)
        self.placements: dict[int, float] = {}  # plan version -> when committed
        self.stages: dict[int, dict[str, float]] = {}  # plan version -> the server's stages
        self.replacements: list[tuple[float, dict[str, Any]]] = []
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.last_trigger = self.last_plan = time.monotonic()

    async def run(self) -> None:
        stream = server_sent_events(
            self.fleet.host, self.fleet.port, "/v1/events", self.admin_token
        )
        self.connected.set()
        async for event, data in stream:
            at = float(data.get("at") or time.time())
            if event == "trigger":
                self.last_trigger = time.monotonic()
            elif event == "placement":
                self.last_plan = time.monotonic()
                self.decisions.append((self.last_plan, data))
            if event == "trigger":
                self.triggers.append((at, data))
            elif event == "placement" and data.get("in_force"):
                self.placements[int(data["version"])] = at
                self.stages[int(data["version"])] = data.get("timings_ms") or {}
            elif event == "replacement":
                self.replacements.append((at, data))

    def last_activity(self) -> float:
        """When the control plane was last busy with a trigger (monotonic): now while a
        trigger has no plan yet (kept or not, every solve announces one; after 10 s the
        plan's event is taken as lost), else the later of the two."""
        now = time.monotonic()
        if self.last_plan < self.last_trigger > now - 10.0:
            return now
        return max(self.last_trigger, self.last_plan)


def _kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed"
    return type(exc).__name__
