"""Bandwidth and RTT to the next hops, measured with timed transfers at a low duty cycle.

Peers are the devices this agent sends tensors to (next hops, next cascade stages, first
hops of the deployments it is the source of). For each peer:

- every heartbeat, an RTT ping: `GET /v1/probe?bytes=0` on the peer's data plane
  (about 300 bytes both ways with HTTP headers);
- every `probe_interval_s`, a bandwidth probe: `GET /v1/probe?bytes=N` (N = probe_bytes,
  256 KB by default); bandwidth is `8 N / (elapsed - rtt)`.

With the defaults (1 s heartbeats, 256 KB every 30 s) that is about 0.3 KB/s + 8.7 KB/s,
so about 9 KB/s per peer; `ProbeStats` counts the bytes actually moved (bodies plus
headers) and `/v1/status` shows it. The control plane's RTT is the heartbeat's round trip.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from agents.state import ServingState
from api.wire import MeasuredLink


@dataclass
class Peer:
    device_id: str
    url: str
    token: str


@dataclass
class PeerFigures:
    rtt_ms: float | None = None
    mbps: float | None = None
    rtt_at: float = 0.0
    bandwidth_at: float = 0.0


@dataclass
class ProbeStats:
    bytes_moved: int = 0
    probes: int = 0
    since: float = field(default_factory=time.monotonic)

    def rate_bps(self) -> float:
        elapsed = time.monotonic() - self.since
        return self.bytes_moved / elapsed if elapsed > 0 else 0.0


def _header_bytes(headers: httpx.Headers) -> int:
    return sum(len(k) + len(v) + 4 for k, v in headers.items()) + 2


class Prober:
    def __init__(self, state: ServingState, probe_bytes: int, interval_s: float) -> None:
        self.state = state
        self.probe_bytes = probe_bytes
        self.interval_s = interval_s
        self.figures: dict[str, PeerFigures] = {}
        self.stats = ProbeStats()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))

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

    async def _get(self, peer: Peer, size: int) -> float:
        """Seconds for one probe of `size` bytes; counts the bytes moved."""
        started = time.perf_counter()
        response = await self.http.get(
            f"{peer.url}/v1/probe",
            params={"bytes": size},
            headers={"Authorization": f"Bearer {peer.token}"},
        )
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        self.stats.bytes_moved += (
            len(response.content)
            + _header_bytes(response.headers)
            + _header_bytes(response.request.headers)
            + len(str(response.request.url)) + 16
        )  # fmt: skip
        self.stats.probes += 1
        return elapsed

    async def tick(self) -> None:
        """One heartbeat's worth of probing: RTT to each peer, bandwidth when due."""
        now = time.monotonic()
        for peer in self.peers():
            figures = self.figures.setdefault(peer.device_id, PeerFigures())
            try:
                rtt_s = await self._get(peer, 0)
                figures.rtt_ms, figures.rtt_at = rtt_s * 1000.0, now
                if now - figures.bandwidth_at >= self.interval_s or figures.mbps is None:
                    elapsed = await self._get(peer, self.probe_bytes)
                    delay = self.state.uplink_delay_s(self.probe_bytes)
                    if delay > 0:
                        # An emulated uplink (POST /v1/emulation) slows what this device
                        # sends: the probe pays it like a tensor would.
                        await asyncio.sleep(delay)
                        elapsed += delay
                    # Subtract one RTT (request and first byte); floor at 50 µs so that a
                    # loopback transfer does not divide by ~0.
                    transfer = max(elapsed - rtt_s, 50e-6)
                    figures.mbps = 8 * self.probe_bytes / 1e6 / transfer
                    figures.bandwidth_at = now
            except httpx.HTTPError:
                # An unreachable peer: its figures age out of the heartbeat.
                continue
        self.state.probes = self.describe()

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
        }
