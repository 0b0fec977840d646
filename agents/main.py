"""The agent's main: discovery, enrollment, heartbeats, the desired-state watch, probes
and the data plane, in one asyncio loop; a clean stop on SIGTERM or SIGINT.

Order matters for offline autonomy: the data plane starts first and serves the desired
state saved by the last run (from the artifact cache) before the control plane is even
asked anything, so an agent restarted during a control-plane outage keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import uvicorn

from agents import credentials
from agents.battery import Battery, open_battery
from agents.client import Backoff, ControlPlaneClient, Rejected, Unreachable
from agents.dataplane import DataPlane, create_app
from agents.discovery import Discovery, discover, free_memory_mb
from agents.ingress import timed_protocol
from agents.inventory import inventory
from agents.power import (
    MAX_PLAUSIBLE_W,
    BatteryDrainReader,
    NvmlReader,
    PowerMeter,
    PowerSupplyReader,
    RaplReader,
    Reader,
)
from agents.probes import KnownPeer, Peer, Prober
from agents.settings import AgentSettings
from agents.state import ServingState
from agents.tls import TlsError, check_server_pair, client_verify
from agents.watcher import DRAIN_S, Watcher
from api.wire import BatterySpec, EnrollRequest, Heartbeat, LinkProposalRequest, PowerSpec

log = logging.getLogger("continuum.agent")


class FatalError(Exception):
    """The agent cannot run as configured; the message says what to change."""


class _Server(uvicorn.Server):
    # The agent owns SIGTERM/SIGINT (to stop its loops too); uvicorn must not take them.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise FatalError(f"--listen: expected HOST:PORT (got {listen!r})")
    return host.strip("[]") or "0.0.0.0", int(port)


def default_name() -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64]
    return name or "agent"


def advertise_url(settings: AgentSettings) -> str:
    if settings.advertise_url:
        return settings.advertise_url.rstrip("/")
    host, port = split_listen(settings.listen)
    if host in {"0.0.0.0", "::", ""}:
        # The address this machine uses to reach the control plane is the one peers
        # on the same network most likely reach it by.
        target = urlparse(settings.server).hostname or "8.8.8.8"
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                host = probe.getsockname()[0]
        except OSError:
            host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.tls_cert is not None else "http"
    return f"{scheme}://{host}:{port}"


def power_meter(settings: AgentSettings, battery_emulated: bool) -> PowerMeter:
    """The agent's power meter: readers of the platform's sensors, none in emulation."""
    emulated = battery_emulated or settings.emulate_gflops is not None
    readers: list[Reader] = []
    if settings.power_readers == "auto" and not emulated:
        readers = [
            PowerSupplyReader(settings.power_supply_root),
            BatteryDrainReader(settings.power_supply_root),
            RaplReader(settings.powercap_root),
            NvmlReader(),
        ]
    return PowerMeter(
        readers, settings.power_idle_w, settings.power_busy_w,
        settings.power_max_w or MAX_PLAUSIBLE_W[settings.tier],
    )  # fmt: skip


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.battery: Battery = open_battery(
            settings.battery, settings.power_idle_w, settings.power_busy_w
        )
        self.state = ServingState(
            battery=self.battery,
            emulate_gflops=settings.emulate_gflops,
            max_tensor_bytes=int(settings.max_tensor_mb * 1_000_000),
            default_j_per_mb=settings.j_per_mb,
        )
        try:
            if settings.tls_cert is not None and settings.tls_key is not None:
                check_server_pair(settings.tls_cert, settings.tls_key)
            self.verify = client_verify(settings.ca_file)
        except TlsError as exc:
            raise FatalError(str(exc)) from None
        self.client = ControlPlaneClient(settings.server, verify=self.verify)
        self.power = power_meter(settings, self.battery.emulated)
        self.creds: credentials.Credentials | None = None
        self.discovery: Discovery | None = None

    # -- enrollment -------------------------------------------------------------------------
    def enroll_request(self) -> EnrollRequest:
        s, found = self.settings, self.discovery
        assert found is not None
        token = s.enroll_token.get_secret_value() if s.enroll_token else ""
        capacity = self.battery.capacity_wh()
        level = self.battery.level_pct()
        battery = (
            BatterySpec(
                capacity_wh=capacity,
                level_pct=level if level is not None else 100.0,
                min_pct=s.battery_min_pct,
            )
            if capacity is not None
            else None
        )
        emulated = self.battery.emulated or s.emulate_gflops is not None
        # An emulated device is not the machine it runs on: neither the host's hardware
        # nor its power profile describes it.
        declared_power = {"power_idle_w", "power_busy_w"} & s.model_fields_set
        carbon: dict[str, Any] = {
            k: v
            for k, v in (
                ("grid_gco2_per_kwh", s.grid_gco2_per_kwh),
                ("embodied_kgco2e", s.embodied_kgco2e),
                ("zone", s.zone),
            )
            if v is not None
        }
        if not emulated:
            carbon["inventory"] = inventory(
                s.device_kind, s.archetype, s.cloud_provider, s.cloud_instance
            )
            if not declared_power:
                carbon["power_provenance"] = "profile"
        return EnrollRequest(
            token=token,
            name=s.name or default_name(),
            tier=s.tier,
            gflops=s.emulate_gflops or round(found.gflops, 3),
            memory_mb=round(found.memory_mb, 1),
            power_w=PowerSpec(idle=s.power_idle_w, busy=s.power_busy_w),
            battery=battery,
            labels=dict(s.labels),
            data_plane_url=advertise_url(s),
            emulated=emulated,
            **carbon,
        )

    async def enroll(self) -> None:
        if self.settings.enroll_token is None:
            raise FatalError(
                "this agent has not enrolled yet: give --enroll-token (or "
                "CONTINUUM_AGENT_ENROLL_TOKEN) from `POST /v1/enrollment-tokens`"
            )
        request = self.enroll_request()
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                answer = await self.client.enroll(request)
                break
            except Unreachable as exc:
                delay = backoff.next_delay()
                log.warning("enroll: control plane unreachable (%s); retrying in %.1fs", exc, delay)
                await self._sleep(delay)
            except Rejected as exc:
                raise FatalError(f"enrollment refused: {exc.detail}") from None
        else:
            return
        self.creds = credentials.Credentials(
            answer.device_id, answer.agent_token, self.client.server
        )
        credentials.save(self.settings.state_dir, self.creds)
        self.client.token = answer.agent_token
        self.state.device_id = answer.device_id
        self._allow_status()
        log.info("enrolled as %s (credential in %s)", answer.device_id,
                 credentials.path_in(self.settings.state_dir))  # fmt: skip

    def _allow_status(self) -> None:
        self.state.allow_probe(self.creds.agent_token if self.creds is not None else None)
        status = self.settings.status_token
        self.state.allow_status(
            self.creds.agent_token if self.creds is not None else None,
            status.get_secret_value() if status is not None else None,
        )

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleep `seconds`, less when the agent stops or `wake` is set (a next hop failed:
        the control plane hears of it now)."""
        events = [self.stop] if wake is None else [self.stop, wake]
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    # -- loops ------------------------------------------------------------------------------
    async def heartbeats(self, watcher: Watcher, prober: Prober) -> None:
        interval = self.settings.heartbeat_interval_s
        backoff = Backoff(base_s=interval, cap_s=max(30.0, interval))
        last_busy, last_at = self.state.metrics.busy_s, time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            busy = self.state.metrics.busy_s
            utilization = (busy - last_busy) / max(now - last_at, 1e-6)
            last_busy, last_at = busy, now
            self.power.sample(time.time(), utilization)
            beat = Heartbeat(
                battery_pct=self.battery.level_pct(),
                charging=self.battery.charging(),
                utilization=round(max(utilization, 0.0), 4),
                free_memory_mb=round(free_memory_mb(), 1),
                links=prober.links(max_age_s=max(3 * interval, 10.0)),
                partitions=watcher.readiness(),
                desired_version=self.state.version,
                metrics=self.state.metrics.snapshot(),
                power=self.power.report(),
                requests=self.state.metrics.requests(),
                unreachable=self.state.unreachable_report(),
            )
            self.state.wake.clear()  # what woke this beat is in it
            started = time.perf_counter()
            wait = interval
            try:
                assert self.creds is not None
                ack = await self.client.heartbeat(self.creds.device_id, beat)
                backoff.reset()
                self.state.control_plane = {
                    "url": self.client.server,
                    "reachable": True,
                    "rtt_ms": round((time.perf_counter() - started) * 1000.0, 3),
                    "last_ack_at": time.time(),
                    "desired_version": ack.desired_version,
                }
                wait = ack.interval_s
                if ack.live_version is not None:
                    watcher.server_says_live = True
                    watcher.retire(ack.live_version)
            except Unreachable as exc:
                wait = backoff.next_delay()
                self.state.control_plane = {
                    **self.state.control_plane, "url": self.client.server, "reachable": False,
                    "error": str(exc),
                }  # fmt: skip
                log.warning("heartbeat: control plane unreachable; serving on, retry in %.1fs",
                            wait)  # fmt: skip
            except Rejected as exc:
                wait = backoff.next_delay()
                if exc.status == 401 and self.settings.enroll_token is not None:
                    log.warning("heartbeat: agent token refused (%s); enrolling again", exc.detail)
                    with contextlib.suppress(FatalError):
                        await self.enroll()
                else:
                    log.error("heartbeat refused: %s", exc)
            await self._sleep(wait, self.state.wake)

    async def probes(self, prober: Prober) -> None:
        asked = float("-inf")
        while not self.stop.is_set():
            try:
                if time.monotonic() - asked >= self.settings.peers_refresh_s:
                    asked = time.monotonic()
                    await self._known_peers(prober)
                await prober.tick()
                await self._propose(prober)
            except Exception:  # probing is best effort; it must never stop the agent
                log.exception("probe failed")
            await self._sleep(self.settings.heartbeat_interval_s)

    async def _known_peers(self, prober: Prober) -> None:
        """The peers to probe besides the next hops, as the control plane lists them."""
        if self.creds is None:
            return
        try:
            answer = await self.client.peers(self.creds.device_id)
        except (Unreachable, Rejected) as exc:
            log.info("peers: not refreshed (%s)", exc)
            return
        prober.set_known([
            KnownPeer(Peer(p.device_id, p.data_plane_url.rstrip("/"), p.token), p.declared,
                      p.same_site)
            for p in answer.peers
        ])  # fmt: skip

    async def _propose(self, prober: Prober) -> None:
        """Propose a link to each same-site neighbour measured since the last time."""
        while prober.proposals and self.creds is not None:
            peer, (mbps, rtt_ms) = prober.proposals.popitem()
            try:
                ack = await self.client.propose_link(
                    self.creds.device_id,
                    LinkProposalRequest(peer=peer, mbps=round(mbps, 3), rtt_ms=round(rtt_ms, 3)),
                )
                log.info("proposed a link to %s at %.1f Mbit/s: %s", peer, mbps, ack.state)
            except (Unreachable, Rejected) as exc:
                log.info("link proposal to %s not taken (%s)", peer, exc)

    # -- life cycle -------------------------------------------------------------------------
    async def run(self) -> None:
        s = self.settings
        credentials.private_dir(s.state_dir)
        host, port = split_listen(s.listen)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        if self.battery.emulated:
            log.warning("battery: EMULATED %s", self.battery.describe())
        if s.emulate_gflops is not None:
            log.warning("compute: EMULATED at %g GFLOP/s (--emulate-gflops)", s.emulate_gflops)
        self.discovery = await asyncio.to_thread(discover, s.threads)
        self.state.discovery = self.discovery.describe()
        log.info("discovered %s", self.state.discovery)

        self.creds = credentials.load(s.state_dir)
        if self.creds is not None and self.creds.server.rstrip("/") != self.client.server:
            log.warning("the saved credential is for %s, not %s", self.creds.server, s.server)
            if s.enroll_token is not None:
                self.creds = None
        if self.creds is not None:
            self.client.token = self.creds.agent_token
            self.state.device_id = self.creds.device_id
        self._allow_status()

        dataplane = DataPlane(self.state, verify=self.verify)
        server = _Server(
            uvicorn.Config(
                create_app(dataplane), host=host, port=port, log_level="warning",
                access_log=False, lifespan="off", timeout_keep_alive=30,
                http=timed_protocol(),  # a request's time here from its first byte
                ssl_certfile=s.tls_cert, ssl_keyfile=s.tls_key,
            )
        )  # fmt: skip
        serving = asyncio.create_task(server.serve(), name="dataplane")
        prober = Prober(
            self.state, s.probe_bytes, s.probe_interval_s, verify=self.verify,
            unused_interval_s=s.unused_probe_interval_s, unused_bytes=s.unused_probe_bytes,
        )  # fmt: skip
        rate = self.discovery.gflops
        watcher = Watcher(self.state, self.client, s.state_dir, s.threads, rate, DRAIN_S)
        tasks: list[asyncio.Task[None]] = []
        try:
            while not server.started:
                if serving.done():
                    await serving  # raises the bind error
                    raise FatalError(f"the data plane could not listen on {s.listen}")
                await asyncio.sleep(0.02)
            log.info("data plane listening on %s (advertised as %s)", s.listen, advertise_url(s))
            saved = watcher.load_saved()
            if (
                saved is not None
                and self.creds is not None
                and saved.device_id == self.creds.device_id
            ):
                try:
                    await watcher.apply(saved)
                    log.info("serving the saved desired state (version %d)", saved.version)
                except Exception as exc:
                    log.warning("cannot serve the saved desired state yet: %s", exc)
            if self.creds is None:
                await self.enroll()
            if self.creds is not None and not self.stop.is_set():
                tasks = [
                    asyncio.create_task(self.heartbeats(watcher, prober), name="heartbeats"),
                    asyncio.create_task(
                        watcher.run(self.creds.device_id, s.long_poll_s, self.stop), name="watch"
                    ),
                    asyncio.create_task(self.probes(prober), name="probes"),
                ]
                stopped = asyncio.create_task(self.stop.wait())
                await asyncio.wait([stopped, serving, *tasks], return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()
        finally:
            log.info("stopping")
            self.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            server.should_exit = True
            with contextlib.suppress(Exception):
                await serving
            await dataplane.aclose()
            await prober.aclose()
            await self.client.aclose()


def run_agent(settings: AgentSettings) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per request to the control plane would drown what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(Agent(settings).run())
