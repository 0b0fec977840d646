"""What the agent serves right now: loaded partitions, routes, tokens, received results.

One object shared by the data plane (which reads it on every request), the desired-state
watcher (which changes it) and the heartbeat loop (which reports it). Changes replace
whole dictionaries rather than mutating them, so a request that read a route keeps a
consistent view while a rollout swaps in the next one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.battery import Battery
from agents.metrics import Metrics
from agents.runtime import Loaded
from api.wire import DesiredState, SourceSpec, UnreachablePeer

RESULTS_KEPT = 32
# How long a next hop that failed is reported to the control plane (unless a send to it
# succeeds first): long enough for a few heartbeats to carry it.
UNREACHABLE_REPORTED_S = 30.0


PROBE_CONTEXT = b"continuum-probe-v1"  # as orchestrator/link_proposals.py


def token_digest(token: str) -> str:
    """What the agent keeps of a data-plane token it only checks (256-bit random tokens:
    a fast hash is enough)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class Result:
    at: float
    tensors: dict[str, np.ndarray]
    trace: list[dict[str, Any]]


@dataclass
class ServingState:
    battery: Battery
    metrics: Metrics = field(default_factory=Metrics)
    device_id: str = ""
    emulate_gflops: float | None = None
    max_tensor_bytes: int = 64_000_000
    default_j_per_mb: float = 0.0
    # key -> loaded partition or stage (the current version's, and retiring ones)
    loaded: dict[str, Loaded] = field(default_factory=dict)
    sources: dict[str, SourceSpec] = field(default_factory=dict)
    # deployment -> sha256 digests of the tokens accepted (during a rollout a token may be
    # be in two versions). Digests: this map is only checked against, never presented, so
    # a dump of the agent's memory or status does not hand out what it accepts.
    tokens: dict[str, set[str]] = field(default_factory=dict)
    desired: DesiredState | None = None  # the version in force here
    version: int = 0
    results: dict[str, deque[Result]] = field(default_factory=dict)
    control_plane: dict[str, Any] = field(default_factory=dict)  # reachability, RTT...
    discovery: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    # EMULATION ONLY (`POST /v1/emulation`): this device's uplink, in Mbit/s; sends and
    # bandwidth probes are slowed to it. None: not emulated, the network decides.
    uplink_mbps: float | None = None
    # EMULATION ONLY: the uplink towards one peer (a degraded link), over uplink_mbps.
    peer_uplink_mbps: dict[str, float] = field(default_factory=dict)
    # EMULATION ONLY: a round-trip delay added to every exchange with one peer (pings,
    # probes, tensors), like netem's `delay`: a link's latency that load on this machine
    # cannot move, where loopback's is a few ms that a busy host moves by as much.
    peer_delay_ms: dict[str, float] = field(default_factory=dict)
    # Digest of this device's probe token (`allow_probe`): any agent may probe it.
    probe_digest: str | None = None
    # Digests of the tokens that open the status and emulation routes (allow_status).
    status_digests: frozenset[str] = frozenset()
    # Next hops that failed lately: peer -> (monotonic time of the last failure, why). The
    # heartbeat reports them; `wake` sends the next heartbeat now, not an interval later.
    unreachable: dict[str, tuple[float, str]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    degraded_answers: int = 0  # answers given by a local fallback since the start

    def hop_failed(self, peer: str, error: str) -> None:
        fresh = peer not in self.unreachable
        self.unreachable[peer] = (time.monotonic(), error[:256])
        if fresh:
            self.wake.set()

    def hop_ok(self, peer: str) -> None:
        if peer in self.unreachable:
            self.unreachable.pop(peer, None)

    def failed_within(self, peer: str, seconds: float) -> bool:
        last = self.unreachable.get(peer)
        return last is not None and time.monotonic() - last[0] < seconds

    def unreachable_report(self) -> list[UnreachablePeer]:
        """The failed next hops to report (`api.wire.UnreachablePeer`), oldest dropped."""
        now = time.monotonic()
        for peer, (at, _) in list(self.unreachable.items()):
            if now - at > UNREACHABLE_REPORTED_S:
                self.unreachable.pop(peer, None)
        return [
            UnreachablePeer(peer=peer, age_s=round(now - at, 3), error=error)
            for peer, (at, error) in self.unreachable.items()
        ]

    def uplink_delay_s(self, size_bytes: int, peer: str | None = None) -> float:
        """Extra seconds an emulated uplink (to `peer`, else this device's) and an
        emulated delay to `peer` add to sending size_bytes."""
        mbps = self.peer_uplink_mbps.get(peer, self.uplink_mbps) if peer else self.uplink_mbps
        wire = 0.0 if mbps is None else size_bytes * 8.0 / (mbps * 1e6)
        return wire + self.peer_delay_s(peer)

    def peer_delay_s(self, peer: str | None) -> float:
        """The emulated round-trip delay to `peer`, in seconds (0 when none)."""
        return self.peer_delay_ms.get(peer, 0.0) / 1000.0 if peer else 0.0

    def allow_probe(self, agent_token: str | None) -> None:
        """The probe token other agents get for this device from the control plane: an
        HMAC keyed with the SHA-256 of this agent's token (orchestrator/link_proposals.py),
        so that a peer sharing no deployment with it can still probe it."""
        if not agent_token:
            self.probe_digest = None
            return
        key = token_digest(agent_token).encode()
        self.probe_digest = token_digest(hmac.new(key, PROBE_CONTEXT, hashlib.sha256).hexdigest())

    def probe_ok(self, token: str | None) -> bool:
        """A token that opens `/v1/probe`: a deployment's, or this device's probe token."""
        if self.any_token_ok(token):
            return True
        if not token or self.probe_digest is None:
            return False
        return hmac.compare_digest(token_digest(token).encode(), self.probe_digest.encode())

    def token_ok(self, deployment: str, token: str | None) -> bool:
        if not token:
            return False
        digest = token_digest(token).encode()
        return any(
            hmac.compare_digest(digest, known.encode()) for known in self.tokens.get(deployment, ())
        )

    def any_token_ok(self, token: str | None) -> bool:
        if not token:
            return False
        digest = token_digest(token).encode()
        return any(
            hmac.compare_digest(digest, known.encode())
            for accepted in list(self.tokens.values())
            for known in accepted
        )

    def allow_status(self, *tokens: str | None) -> None:
        """Tokens that open `/v1/status` and `/v1/emulation`: this agent's own token
        (issued by the control plane) and an operator's CONTINUUM_AGENT_STATUS_TOKEN."""
        self.status_digests = frozenset(token_digest(t) for t in tokens if t)

    def status_ok(self, token: str | None) -> bool:
        if not token:
            return False
        digest = token_digest(token).encode()
        return any(hmac.compare_digest(digest, known.encode()) for known in self.status_digests)

    def keep_result(self, deployment: str, result: Result) -> None:
        self.results.setdefault(deployment, deque(maxlen=RESULTS_KEPT)).append(result)

    def readiness(self) -> dict[str, bool]:
        """Keys of the version in force -> loaded and serving (for the heartbeat)."""
        if self.desired is None:
            return {}
        keys = [p.key for p in self.desired.partitions] + [
            s.key for s in self.desired.cascade_stages
        ]
        return {key: key in self.loaded for key in keys}
