"""What agents call, and who a bearer token is: enrollment, heartbeats, the desired-state
get and long poll, and the operator and agent token lookups.

The heartbeat path touches no SQL: it authenticates against an in-memory cache of
agent-token hashes (`cached_agent`) and writes the live state only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from orchestrator import fleet, tokens
from orchestrator.calls import Publish, RunSync
from orchestrator.carbon.boavizta import Boavizta
from orchestrator.carbon.devices import CarbonInput, enroll_carbon, spec_from_json
from orchestrator.db.tables import Device
from orchestrator.desired.states import DesiredStates
from orchestrator.live.base import LiveState
from orchestrator.metrics import Metrics
from orchestrator.power import check_report, planned_power
from orchestrator.private import private_dir
from orchestrator.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a heartbeat (`api.wire.HeartbeatAck`)."""

    desired_version: int  # the desired-state revision in force
    interval_s: float
    live_version: int  # the newest revision every agent switched to


def load_or_create_admin_token(settings: Settings) -> str:
    """CONTINUUM_ADMIN_TOKEN, else the token in the data directory's file, else a new one
    written there readable by its owner only (created 0600, never widened)."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.admin_token_file
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    private_dir(path.parent)
    secret = tokens.new_token(tokens.ADMIN_PREFIX)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    log.warning("generated an admin token in %s", path)
    return secret


def _carbon_before(session: Session, device_id: str) -> CarbonInput | None:
    """A re-enrolling device's carbon sources (None: a new device)."""
    device = session.get(Device, device_id)
    if device is None:
        return None
    return CarbonInput(
        tier=device.tier,
        zone=device.zone,
        spec=spec_from_json(device.carbon_spec),
        embodied_kgco2e=device.embodied_declared_kgco2e,
        lifetime_h=device.lifetime_declared_h,
        grid_gco2_per_kwh=device.grid_declared_gco2_per_kwh,
    )


class Agents:
    def __init__(
        self,
        settings: Settings,
        live: LiveState,
        run_sync: RunSync,
        publish: Publish,
        metrics: Metrics,
        desired: DesiredStates,
        *,
        poke: Callable[[], None],
        boavizta: Boavizta | None = None,
    ) -> None:
        self._settings = settings
        self._boavizta = boavizta  # derives an enrolling device's carbon (issue 14)
        self._live = live
        self._run_sync = run_sync
        self._publish = publish
        self._metrics = metrics
        self._desired = desired
        self._poke = poke  # the reconcile loop sees joins, batteries, links in heartbeats
        self._admin_token = ""
        self._tokens: dict[str, str] = {}  # agent-token hash -> device id
        # device id -> (tier, power provenance recorded in SQL): checks power reports, and
        # writes the provenance only when it changes, off the heartbeat's path.
        self._power: dict[str, tuple[str, str]] = {}
        self._writes: set[asyncio.Task[None]] = set()

    async def load(self) -> None:
        """Load (or create) the admin token and read every agent token's hash."""
        admin_token = await asyncio.to_thread(load_or_create_admin_token, self._settings)
        self._admin_token = admin_token
        await self._run_sync(fleet.ensure_admin_key, admin_token)
        self._tokens = await self._run_sync(fleet.agent_token_hashes)
        self._power = await self._run_sync(fleet.device_power_states)

    # -- who a token is ----------------------------------------------------------------
    async def operator(self, token: str) -> str | None:
        """The actor name of an operator token, or None."""
        found = await self.operator_role(token)
        return found[0] if found is not None else None

    async def operator_role(self, token: str) -> tuple[str, str] | None:
        """(actor name, role) of an operator token, or None (`orchestrator.tokens.ROLES`)."""
        if tokens.same(tokens.hash_token(token), tokens.hash_token(self._admin_token)):
            return "operator:admin", "admin"
        key = await self._run_sync(fleet.operator_for, token)
        return (f"operator:{key.name}", key.role) if key is not None else None

    def signing_key(self, purpose: str) -> bytes:
        """A key derived from the admin token, the same on every replica that shares it."""
        return tokens.derived_key(self._admin_token, purpose)

    def cached_agent(self, token_hash: str) -> str | None:
        """The device of an agent-token hash, from the cache only (the hot path)."""
        return self._tokens.get(token_hash)

    async def agent_for(self, token: str) -> str | None:
        """The device an agent token belongs to. The cache answers the hot path; a miss
        (a device enrolled on another replica) falls back to SQL once."""
        digest = tokens.hash_token(token)
        device_id = self._tokens.get(digest)
        if device_id is not None:
            return device_id
        device_id = await self._run_sync(fleet.device_for_token_hash, digest)
        if device_id is not None:
            self._tokens[digest] = device_id
        return device_id

    def forget(self, device_id: str) -> None:
        """A deleted device's tokens die with it."""
        for digest in [d for d, dev in self._tokens.items() if dev == device_id]:
            self._tokens.pop(digest, None)
        self._metrics.forget_device(device_id)
        self._power.pop(device_id, None)

    # -- enrollment and heartbeats ----------------------------------------------------
    async def enroll(
        self, request: dict[str, Any], agent_token: str | None = None
    ) -> dict[str, Any]:
        """`agent_token`: the bearer token sent along, which re-enrolling a device needs
        (unless an operator re-keyed it)."""
        # Boavizta's worker blocks (and takes seconds on first use): off the event loop.
        before = await self._run_sync(_carbon_before, request["name"])
        carbon = await asyncio.to_thread(enroll_carbon, self._boavizta, request, before)
        device, secret, existed = await self._run_sync(fleet.enroll, request, agent_token, carbon)
        self.forget(device.id)  # a re-enrolled device's old token dies
        self._tokens[tokens.hash_token(secret)] = device.id
        self._power[device.id] = (device.tier, device.power_provenance)
        if existed:
            self._desired.invalidate()  # its data-plane URL may have changed
        change = "reenrolled" if existed else "enrolled"
        await self._publish("device", {"device_id": device.id, "change": change})
        return {
            "device_id": device.id,
            "agent_token": secret,
            "heartbeat_interval_s": self._settings.heartbeat_interval_s,
        }

    async def heartbeat(self, device_id: str, beat: dict[str, Any]) -> Ack:
        """Record a heartbeat; answers with the revision in force (the agent compares it
        with what it runs) and the live one."""
        settings = self._settings
        ttl = settings.heartbeat_interval_s * settings.lost_after_intervals
        links = beat.pop("links", [])
        beat["at"] = time.time()
        # Dated by this clock: a peer that heartbeats after this is back (`triggers.suspects`).
        beat["unreachable"] = [
            {"peer": u["peer"], "at": beat["at"] - float(u["age_s"]), "error": u.get("error", "")}
            for u in beat.get("unreachable") or []
        ]
        self._check_power(device_id, beat)
        self._metrics.observe_device(device_id, beat)
        await self._live.put_heartbeat(device_id, beat, ttl)
        for link in links:
            if link["peer"] != device_id:
                await self._live.put_link(
                    device_id, link["peer"], link["mbps"], link["rtt_ms"], ttl
                )
        self._metrics.heartbeats.inc()
        self._poke()
        return Ack(
            self._desired.revision, settings.heartbeat_interval_s, self._desired.live_revision
        )

    def _check_power(self, device_id: str, beat: dict[str, Any]) -> None:
        """Drop (and count) a power report nothing may plan with; record a change of
        provenance in SQL in the background."""
        # A device enrolled on another replica is checked against the widest bound.
        tier, recorded = self._power.get(device_id, ("", ""))
        report = beat.get("power")
        if report is not None:
            reason = check_report(report, tier or None)
            if reason is not None:
                beat.pop("power")
                self._metrics.power_dropped.labels(reason).inc()
        provenance = planned_power({}, beat)[1]
        if provenance == "declared" and recorded == "profile":
            # Nothing measured: it runs on the figures Boavizta's profile gave at enrollment.
            provenance = "profile"
        if provenance != recorded:
            self._power[device_id] = (tier, provenance)
            task = asyncio.create_task(self._record_provenance(device_id, provenance))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _record_provenance(self, device_id: str, provenance: str) -> None:
        try:
            await self._run_sync(fleet.set_power_provenance, device_id, provenance)
        except Exception:  # the next change writes again; the live figures are unaffected
            log.exception("recording %s's power provenance failed", device_id)

    # -- desired state -----------------------------------------------------------------
    async def desired(self, device_id: str, after: int, wait_s: float) -> dict[str, Any]:
        """The agent's desired state: at once when it has news since revision `after`,
        else once it has or `wait_s` runs out (a long poll)."""
        return await self._desired.wait(device_id, after, wait_s)
