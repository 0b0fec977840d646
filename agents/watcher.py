"""Desired state -> what this agent serves, make-before-break.

For a new desired-state version the agent downloads every artifact it lacks (verified by
sha256), loads and warms a session for every partition and cascade stage it does not
already serve, and only then switches its routes (sources, next hops, tokens) to the new
version; the heartbeat reports the new keys ready. Partitions the new version no longer
lists keep serving (upstream agents may still route to them) until the control plane
says the new route is live: `HeartbeatAck.live_version` reaching the version that dropped
them, or, when the server does not say, one full long-poll cycle after the switch. Even
then they drain for `drain_s` (the agent uses `DRAIN_S`) before they are unloaded: a
request that an upstream agent started on the old route just before it switched is still
on its way (on a 2 Mbit/s uplink a 0.19 MB tensor takes most of a second, more when the
link is shared), and it must find its partition here, not a 404.

The version in force here is written to `state_dir/desired.json`, so an agent restarted
while the control plane is down serves it again from its artifact cache. Nothing is
unloaded because the control plane is unreachable: only a newer desired state unloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

from agents import credentials
from agents.client import Backoff, ControlPlaneClient, Rejected, Unreachable
from agents.runtime import Loaded, load_partition, load_stage
from agents.state import ServingState, token_digest
from api.wire import (
    ArtifactRef,
    CascadeStageSpec,
    DesiredState,
    PartitionSpec,
    SinkSpec,
    SourceSpec,
)

log = logging.getLogger(__name__)

DESIRED_FILE = "desired.json"
# Seconds a dropped partition keeps serving once its replacement route is live: longer
# than a hop of the old route takes, slow uplinks included.
DRAIN_S = 15.0


class Watcher:
    def __init__(
        self,
        state: ServingState,
        client: ControlPlaneClient,
        state_dir: Path,
        threads: int,
        rate_gflops: float,
        drain_s: float = 0.0,
    ) -> None:
        self.state = state
        self.client = client
        self.state_dir = state_dir
        self.artifact_dir = state_dir / "artifacts"
        self.threads = threads
        self.rate = rate_gflops
        self.pending: DesiredState | None = None
        self.polls = 0  # completed long polls
        # key -> (version that dropped it, poll count at the switch)
        self.retiring: dict[str, tuple[int, int]] = {}
        self.drain_s = drain_s
        self._live_since: dict[str, float] = {}  # retiring key -> when its route went live
        self.last_error: str | None = None
        # True once the server has sent HeartbeatAck.live_version: then only it retires.
        self.server_says_live = False

    # -- persistence -----------------------------------------------------------------------
    def load_saved(self) -> DesiredState | None:
        path = self.state_dir / DESIRED_FILE
        if not path.is_file():
            return None
        try:
            return DesiredState.model_validate_json(path.read_bytes())
        except ValueError:
            log.warning("%s is unreadable; ignoring it", path)
            return None

    def _save(self, desired: DesiredState) -> None:
        credentials.private_dir(self.state_dir)
        # mkstemp: 0600, since the desired state holds the data-plane tokens to present.
        fd, tmp = tempfile.mkstemp(prefix=".desired.", dir=self.state_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(desired.model_dump_json())
            os.replace(tmp, self.state_dir / DESIRED_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- loading ---------------------------------------------------------------------------
    async def _artifact(self, ref: ArtifactRef) -> bytes:
        path, _ = await self.client.download(ref, self.artifact_dir)
        return await asyncio.to_thread(path.read_bytes)

    async def _load(self, spec: PartitionSpec | CascadeStageSpec) -> Loaded:
        data = await self._artifact(spec.artifact)
        if isinstance(spec, PartitionSpec):
            heads = {e.after: await self._artifact(e.artifact) for e in spec.exits}
            return await asyncio.to_thread(
                load_partition, spec, data, heads, self.threads, self.rate
            )
        return await asyncio.to_thread(load_stage, spec, data, self.threads, self.rate)

    @staticmethod
    def _same(a: PartitionSpec | CascadeStageSpec, b: PartitionSpec | CascadeStageSpec) -> bool:
        """Same sessions (artifacts and heads): routes may differ, sessions are reused."""
        if a.artifact.sha256 != b.artifact.sha256:
            return False
        if isinstance(a, PartitionSpec) and isinstance(b, PartitionSpec):
            return [(e.after, e.artifact.sha256, e.threshold) for e in a.exits] == [
                (e.after, e.artifact.sha256, e.threshold) for e in b.exits
            ]
        return True

    async def apply(self, desired: DesiredState) -> None:
        """Load everything `desired` needs, then switch to it. Raises Unreachable or
        Rejected when an artifact cannot be fetched (the caller retries); what is
        served meanwhile is unchanged."""
        if self.state.desired is not None and desired.version < self.state.version:
            return  # never go back
        self.pending = desired
        specs: list[PartitionSpec | CascadeStageSpec] = [
            *desired.partitions,
            *desired.cascade_stages,
        ]
        fresh: dict[str, Loaded] = {}
        for spec in specs:
            current = self.state.loaded.get(spec.key)
            if current is not None and self._same(current.spec, spec):
                # Same sessions: keep them, with the new route and token.
                current.spec = spec
                continue
            fresh[spec.key] = await self._load(spec)
            log.info("loaded %s (%.1f GFLOP, warm-up %.1f ms)", spec.key,
                     fresh[spec.key].gflops, fresh[spec.key].warmup_ms)  # fmt: skip
        self._switch(desired, fresh)

    def _switch(self, desired: DesiredState, fresh: dict[str, Loaded]) -> None:
        state = self.state
        wanted = {p.key for p in desired.partitions} | {s.key for s in desired.cascade_stages}
        loaded = dict(state.loaded)
        loaded.update(fresh)
        for key in loaded:
            if key not in wanted and key not in self.retiring:
                self.retiring[key] = (desired.version, self.polls)
        for key in wanted:
            self.retiring.pop(key, None)
            self._live_since.pop(key, None)
        state.loaded = loaded
        state.sources = {s.deployment: s for s in desired.sources}
        state.desired = desired
        state.version = desired.version
        self.pending = None
        self._refresh_tokens()
        self._save(desired)
        log.info("desired state version %d in force: %d partitions/stages, %d sources",
                 desired.version, len(wanted), len(desired.sources))  # fmt: skip

    def _refresh_tokens(self) -> None:
        state = self.state
        tokens: dict[str, set[str]] = {}
        desired = state.desired
        if desired is not None:
            items: list[PartitionSpec | CascadeStageSpec | SourceSpec | SinkSpec] = [
                *desired.partitions,
                *desired.cascade_stages,
                *desired.sources,
                *desired.sinks,
            ]
            for item in items:
                tokens.setdefault(item.deployment, set()).add(token_digest(item.data_plane_token))
        for key in self.retiring:
            old = state.loaded.get(key)
            if old is not None:
                tokens.setdefault(old.deployment, set()).add(token_digest(old.token))
        state.tokens = tokens

    def retire(self, live_version: int | None = None, now: float | None = None) -> list[str]:
        """Unload retiring partitions whose replacement route has been live for drain_s.
        Returns their keys."""
        now = time.monotonic() if now is None else now
        done = []
        for key, (version, switched_at) in list(self.retiring.items()):
            live = live_version is not None and live_version >= version
            cycled = live_version is None and self.polls > switched_at
            draining = live or cycled or key in self._live_since
            if draining and now - self._live_since.setdefault(key, now) >= self.drain_s:
                done.append(key)
        if done:
            loaded = dict(self.state.loaded)
            for key in done:
                loaded.pop(key, None)
                self.retiring.pop(key, None)
                self._live_since.pop(key, None)
            self.state.loaded = loaded
            self._refresh_tokens()
            log.info("unloaded %s: the new route is live", ", ".join(sorted(done)))
        return done

    def readiness(self) -> dict[str, bool]:
        """For the heartbeat: the keys of the version in force and of the one loading."""
        ready = self.state.readiness()
        if self.pending is not None:
            specs: list[PartitionSpec | CascadeStageSpec] = [
                *self.pending.partitions,
                *self.pending.cascade_stages,
            ]
            for spec in specs:
                ready[spec.key] = spec.key in self.state.loaded
        return ready

    # -- the long poll ---------------------------------------------------------------------
    async def run(self, device_id: str, wait_s: float, stop: asyncio.Event) -> None:
        backoff = Backoff()
        after = self.state.version if self.state.desired is not None else -1
        while not stop.is_set():
            try:
                desired = await self.client.desired_state(device_id, after, wait_s)
                self.polls += 1
                backoff.reset()
                if desired.device_id != device_id:
                    raise Rejected(200, f"desired state for {desired.device_id!r}, not us")
                if self.state.desired is None or desired.version > self.state.version:
                    await self.apply(desired)
                after = self.state.version
                if not self.server_says_live:
                    self.retire(None)
                self.last_error = None
            except (Unreachable, Rejected) as exc:
                # Keep serving what is loaded; try again later.
                self.last_error = str(exc)
                delay = backoff.next_delay()
                log.warning("desired state: %s; retrying in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            except Exception as exc:  # a model that will not load must not stop the loop
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("desired state: cannot apply version")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next_delay())
