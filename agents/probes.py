"""Bandwidth and RTT to the next hops, measured with timed transfers at a low duty cycle.

Peers are the devices this agent sends tensors to (next hops, next cascade stages, first
hops of the deployments it is the source of). For each peer:

- every heartbeat, an RTT ping: `GET /v1/probe?bytes=0` on the peer's data plane
  (about 300 bytes both ways with HTTP headers);
- every `probe_interval_s`, a bandwidth probe: an UPLOAD, `POST /v1/probe` with N random
  bytes; the peer answers once it has read them all and says how many it got; bandwidth
  is `8 N / (elapsed - base RTT)`, the base RTT being the least of the last 10 pings (one
  ping can sit behind a tensor in the queue, and subtracting that would flatter the
  figure).

The upload is the direction tensors take: this device sends, the peer receives, so the
figure is this device's uplink towards the peer (a camera's uplink is usually the narrow
end; timing a download from the peer would measure the peer's uplink instead). The
heartbeat reports it as the link to that peer (the control plane keeps one figure per
undirected link, as the scenario has them).

N is `probe_bytes` (256 KB by default), smaller on a slow link: the probe is sized to
occupy the link for at most `PROBE_TARGET_S` at the last measured rate (never below
`MIN_PROBE_BYTES`), so that on a 2 Mbit/s uplink it holds tensors up for 0.5 s per
interval, not 1 s, and on 256 kbit/s not 8 s. An upload that times out is itself a
measurement: the link carried less than N bytes in `UPLOAD_TIMEOUT_S`, and that upper
bound is reported rather than the last (stale, higher) figure.

With the defaults (1 s heartbeats, 256 KB every 30 s) that is about 0.3 KB/s + 8.7 KB/s,
so about 9 KB/s per peer; `ProbeStats` counts the bytes actually moved (bodies plus
headers) and `/v1/status` shows it. The control plane's RTT is the heartbeat's round trip.

Unused links and neighbours (issue 17). The control plane lists the devices this agent
should probe besides its next hops (`set_known`, from `GET /v1/agents/{id}/peers`): the
other end of every link declared to it, and the devices of its site. At most one of them
is probed per `unused_interval_s` (in turn), with a ping and an upload of at most
`unused_bytes`: with the defaults (one per 60 s, 64 KB) that is about 1.1 KB/s for the
whole device, however many peers it has. A declared link's figure is reported in the
heartbeat like a next hop's, so the control plane's memory of a link the plan left
(orchestrator/live/links.py) is refreshed and a link that recovered is seen to recover.
A same-site neighbour with no declared link is not reported as a link (the solver must not
plan over it before anyone accepts it): its figure becomes a proposal (`proposals`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from agents.state import ServingState
from api.wire import MeasuredLink

PROBE_TARGET_S = 0.5  # longest a bandwidth probe should hold the link, at the last rate
MIN_PROBE_BYTES = 32 * 1024  # below this, TCP slow start and shaper bursts dominate
UPLOAD_TIMEOUT_S = 10.0
RTT_WINDOW = 10  # pings the base RTT is the minimum of


@dataclass
class Peer:
    device_id: str
    url: str
    token: str


@dataclass
class KnownPeer:
    """A device to probe besides the next hops, as the control plane lists it."""

    peer: Peer
    declared: bool
    same_site: bool


@dataclass
class PeerFigures:
    rtt_ms: float | None = None
    mbps: float | None = None
    rtt_at: float = 0.0
    bandwidth_at: float = 0.0
    # The last pings' RTTs: their minimum is the path's base RTT, without the queueing
    # that tensors in flight add to one ping and not to the next.
    recent_rtt_s: deque[float] = field(default_factory=lambda: deque(maxlen=RTT_WINDOW))


@dataclass
class ProbeStats:
    bytes_moved: int = 0
    probes: int = 0
    since: float = field(default_factory=time.monotonic)

    def rate_bps(self) -> float:
        elapsed = time.monotonic() - self.since
        return self.bytes_moved / elapsed if elapsed > 0 else 0.0


class ProbeError(Exception):
    """A probe whose answer cannot be trusted as a measurement."""


def _header_bytes(headers: httpx.Headers) -> int:
    return sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2


def probe_size(probe_bytes: int, last_mbps: float | None) -> int:
    """Bytes for the next bandwidth probe: probe_bytes, or what the link carries in
    PROBE_TARGET_S at the last measured rate when that is less (not below the floor)."""
    if last_mbps is None:
        return probe_bytes
    fits = int(last_mbps * 1e6 / 8 * PROBE_TARGET_S)
    return max(min(probe_bytes, fits), min(MIN_PROBE_BYTES, probe_bytes))


class Prober:
    def __init__(
        self,
        state: ServingState,
        probe_bytes: int,
        interval_s: float,
        verify: ssl.SSLContext | bool = True,
        unused_interval_s: float | None = 60.0,
        unused_bytes: int = 65_536,
    ) -> None:
        """`unused_interval_s`: at most one probe of a peer that is not a next hop per
        this many seconds (None: never); `unused_bytes`: the most one such probe uploads."""
        self.state = state
        self.probe_bytes = probe_bytes
        self.interval_s = interval_s
        self.unused_interval_s = unused_interval_s
        self.unused_bytes = min(unused_bytes, probe_bytes)
        self.known: dict[str, KnownPeer] = {}
        # Same-site neighbours with no declared link, measured: peer -> (Mbit/s, RTT ms).
        self.proposals: dict[str, tuple[float, float]] = {}
        self._unused_at = float("-inf")
        self._turn = 0
        self.figures: dict[str, PeerFigures] = {}
        self.stats = ProbeStats()
        # Random, not zeros: a compressing link or proxy must not flatter the figure.
        self._payload = os.urandom(probe_bytes)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(UPLOAD_TIMEOUT_S, connect=3.0), verify=verify
        )

    def set_known(self, peers: list[KnownPeer]) -> None:
        """The control plane's list of peers to probe besides the next hops."""
        self.known = {
            k.peer.device_id: k for k in peers if k.peer.device_id != self.state.device_id
        }
        for gone in set(self.figures) - set(self.known) - {p.device_id for p in self.peers()}:
            del self.figures[gone]

    async def aclose(self) -> None:
        await self.http.aclose()

    def peers(self) -> list[Peer]:
        state = self.state
        found: dict[str, Peer] = {}
        hops = []
        for loaded in state.loaded.values():
            nxt = getattr(loaded.spec, "next_hop", None) or getattr(loaded.spec, "next_stage", None)
            if nxt is not None:
                hops.append((nxt, loaded.token))
        for source in state.sources.values():
            hops.append((source.first_hop, source.data_plane_token))
        for hop, token in hops:
            if hop.device_id != state.device_id and hop.device_id not in found:
                found[hop.device_id] = Peer(hop.device_id, hop.data_plane_url.rstrip("/"), token)
        return list(found.values())

    def _count(self, response: httpx.Response, sent_body: int) -> None:
        """Counts what one probe moved: bodies both ways, headers, the request line."""
        self.stats.bytes_moved += (
            sent_body
            + len(response.content)
            + _header_bytes(response.headers)
            + _header_bytes(response.request.headers)
            + len(str(response.request.url)) + 16
        )  # fmt: skip
        self.stats.probes += 1

    async def _ping(self, peer: Peer) -> float:
        """Seconds for an empty probe: one request/response round trip."""
        started = time.perf_counter()
        response = await self.http.get(
            f"{peer.url}/v1/probe",
            params={"bytes": 0},
            headers={"Authorization": f"Bearer {peer.token}"},
        )
        response.raise_for_status()
        delay = self.state.peer_delay_s(peer.device_id)
        if delay > 0:
            await asyncio.sleep(delay)  # an emulated link delay (POST /v1/emulation)
        elapsed = time.perf_counter() - started
        self._count(response, 0)
        return elapsed

    async def _upload(self, peer: Peer, size: int) -> float:
        """Seconds to send `size` bytes to the peer, until it confirms it read them all."""
        body = self._payload[:size]
        started = time.perf_counter()
        response = await self.http.post(
            f"{peer.url}/v1/probe",
            content=body,
            headers={
                "Authorization": f"Bearer {peer.token}",
                "Content-Type": "application/octet-stream",
            },
        )
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        self._count(response, size)
        answer = response.json()
        got = answer.get("bytes") if isinstance(answer, dict) else None
        if got != size:
            # A proxy or a peer that cut the body short would make the figure up.
            raise ProbeError(f"{peer.device_id} read {got} of {size} probe bytes")
        return elapsed

    async def _bandwidth(self, peer: Peer, figures: PeerFigures, budget: int) -> float:
        """Mbit/s from this device to the peer (the upload direction), uploading at most
        `budget` bytes."""
        size = probe_size(budget, figures.mbps)
        try:
            elapsed = await self._upload(peer, size)
        except (httpx.WriteTimeout, httpx.ReadTimeout):
            # The peer answered the ping just before, so the link is up but did not carry
            # `size` bytes in the timeout: that is an upper bound, and far closer to the
            # truth than the last figure.
            self.stats.probes += 1
            return 8 * size / 1e6 / UPLOAD_TIMEOUT_S
        delay = self.state.uplink_delay_s(size, peer.device_id)
        if delay > 0:
            # An emulated uplink or delay (POST /v1/emulation) slows what this device
            # sends: the probe pays it like a tensor would (the delay is in the base RTT
            # taken off below as well).
            await asyncio.sleep(delay)
            elapsed += delay
        # Subtract one base RTT (the request's headers out, the answer back); floor at
        # 50 µs so that a loopback transfer does not divide by ~0.
        transfer = max(elapsed - min(figures.recent_rtt_s), 50e-6)
        return 8 * size / 1e6 / transfer

    async def tick(self) -> None:
        """One heartbeat's worth of probing: RTT to each next hop, bandwidth when due;
        and one unused peer when its turn is due."""
        now = time.monotonic()
        hops = self.peers()
        for peer in hops:
            figures = self.figures.setdefault(peer.device_id, PeerFigures())
            due = now - figures.bandwidth_at >= self.interval_s or figures.mbps is None
            await self._measure(peer, figures, now, self.probe_bytes if due else None)
        await self._unused(now, {p.device_id for p in hops})
        self.state.probes = self.describe()

    async def _measure(
        self, peer: Peer, figures: PeerFigures, now: float, budget: int | None
    ) -> bool:
        """A ping, and with a `budget` a bandwidth probe; False when it gave no figure."""
        try:
            rtt_s = await self._ping(peer)
            figures.rtt_ms, figures.rtt_at = rtt_s * 1000.0, now
            figures.recent_rtt_s.append(rtt_s)
            if budget is not None:
                figures.mbps = await self._bandwidth(peer, figures, budget)
                figures.bandwidth_at = now
        except (httpx.HTTPError, ValueError, ProbeError):
            # An unreachable peer, or an answer that is no measurement: its figures age
            # out of the heartbeat.
            return False
        return True

    async def _unused(self, now: float, hops: set[str]) -> None:
        """Probe the next unused peer in turn, when one is due (see the module docstring)."""
        if self.unused_interval_s is None or now - self._unused_at < self.unused_interval_s:
            return
        unused = [k for name, k in sorted(self.known.items()) if name not in hops]
        if not unused:
            return
        self._unused_at = now
        known = unused[self._turn % len(unused)]
        self._turn += 1
        name = known.peer.device_id
        figures = self.figures.setdefault(name, PeerFigures())
        if not known.declared:
            # A neighbour's figure is kept apart from the links the heartbeat reports.
            figures = PeerFigures()
        if await self._measure(known.peer, figures, now, self.unused_bytes) and not known.declared:
            assert figures.mbps is not None and figures.rtt_ms is not None
            self.proposals[name] = (figures.mbps, figures.rtt_ms)

    def links(self, max_age_s: float) -> list[MeasuredLink]:
        now = time.monotonic()
        out = []
        for peer, f in sorted(self.figures.items()):
            if f.rtt_ms is None or f.mbps is None or now - f.rtt_at > max_age_s:
                continue
            out.append(MeasuredLink(peer=peer, mbps=round(f.mbps, 3), rtt_ms=round(f.rtt_ms, 3)))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "peers": {
                peer: {"rtt_ms": f.rtt_ms, "mbps": f.mbps} for peer, f in self.figures.items()
            },
            "bytes_moved": self.stats.bytes_moved,
            "probes": self.stats.probes,
            "traffic_bytes_per_s": round(self.stats.rate_bps(), 1),
            "probe_bytes": self.probe_bytes,
            "bandwidth_interval_s": self.interval_s,
            "unused_interval_s": self.unused_interval_s,
            "unused_bytes": self.unused_bytes,
            "known": {
                n: {"declared": k.declared, "same_site": k.same_site}
                for n, k in sorted(self.known.items())
            },
            "direction": "upload",
        }
