"""The one wrapper around every call the agent makes to the control plane.

Enroll, heartbeat, the desired-state long poll and artifact downloads all go through
`ControlPlaneClient`. Failures come in two kinds: `Unreachable` (connection refused, a
timeout, a 5xx, 429: try again later, with `Backoff`) and `Rejected` (any other 4xx:
retrying the same request will not help; the message is the server's problem detail).
Nothing here tears anything down: what the agent serves is its own business, and an
unreachable control plane only means "keep serving what you have, try again later".
"""

from __future__ import annotations

import hashlib
import os
import random
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from api.wire import (
    ArtifactRef,
    DesiredState,
    EnrollRequest,
    EnrollResponse,
    Heartbeat,
    HeartbeatAck,
    LinkProposalAck,
    LinkProposalRequest,
    ProbePeers,
)

M = TypeVar("M", bound=BaseModel)


class Unreachable(Exception):
    """Transient: the control plane cannot be reached or is failing; retry later."""


class Rejected(Exception):
    """The control plane refused the request (4xx); retrying unchanged will not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Backoff:
    """Exponential backoff with jitter: attempt n waits between half of and all of
    `min(cap, base * factor**n)` seconds. Never zero (no tight loop against a server
    that is down), never above `cap`, and randomised so that a fleet of agents that lost
    the control plane together does not come back in lockstep."""

    def __init__(
        self,
        base_s: float = 0.5,
        cap_s: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if base_s <= 0 or cap_s < base_s or factor < 1:
            raise ValueError("backoff needs 0 < base <= cap and factor >= 1")
        self.base_s, self.cap_s, self.factor = base_s, cap_s, factor
        self.attempt = 0
        self._rng = rng or random.Random()

    def ceiling(self, attempt: int) -> float:
        # min() before the power would overflow for a long outage: cap the exponent.
        return min(self.cap_s, self.base_s * self.factor ** min(attempt, 64))

    def next_delay(self) -> float:
        ceiling = self.ceiling(self.attempt)
        self.attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)[:200]


class ControlPlaneClient:
    def __init__(
        self, server: str, *, timeout_s: float = 10.0, verify: ssl.SSLContext | bool = True
    ) -> None:
        """`verify`: the trust for an https:// server (agents.tls.client_verify)."""
        self.server = server.rstrip("/")
        self.token: str | None = None
        self._http = httpx.AsyncClient(
            base_url=self.server, timeout=httpx.Timeout(timeout_s, connect=5.0), verify=verify
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _request(
        self, method: str, url: str, *, timeout_s: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        extra: dict[str, Any] = {}
        if timeout_s is not None:
            extra["timeout"] = httpx.Timeout(timeout_s, connect=5.0)
        try:
            kwargs.setdefault("headers", self._headers())
            response = await self._http.request(method, url, **kwargs, **extra)
        except httpx.HTTPError as exc:
            raise Unreachable(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise Unreachable(f"{method} {url}: {response.status_code} {_detail(response)}")
        if response.status_code >= 400:
            raise Rejected(response.status_code, _detail(response))
        return response

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValueError as exc:
            # A server speaking another version of the wire: retrying will not fix it,
            # but neither must it crash the agent.
            raise Rejected(response.status_code, f"unexpected answer: {exc}") from None

    async def enroll(self, request: EnrollRequest) -> EnrollResponse:
        response = await self._request(
            # Unset fields stay out: the control plane takes a carbon figure the agent
            # sends as declared, and derives the ones it does not (docs/carbon.md).
            "POST",
            "/v1/agents/enroll",
            json=request.model_dump(mode="json", exclude_unset=True),
        )
        return self._parse(EnrollResponse, response)

    async def heartbeat(self, device_id: str, beat: Heartbeat) -> HeartbeatAck:
        response = await self._request(
            "POST",
            f"/v1/agents/{device_id}/heartbeat",
            content=beat.model_dump_json(),
            headers={**self._headers(), "Content-Type": "application/json"},
            timeout_s=5.0,
        )
        return self._parse(HeartbeatAck, response)

    async def peers(self, device_id: str) -> ProbePeers:
        """The devices to probe: declared links' other ends and same-site neighbours."""
        response = await self._request("GET", f"/v1/agents/{device_id}/peers", timeout_s=10.0)
        return self._parse(ProbePeers, response)

    async def propose_link(self, device_id: str, proposal: LinkProposalRequest) -> LinkProposalAck:
        response = await self._request(
            "POST",
            f"/v1/agents/{device_id}/link-proposals",
            content=proposal.model_dump_json(),
            headers={**self._headers(), "Content-Type": "application/json"},
            timeout_s=10.0,
        )
        return self._parse(LinkProposalAck, response)

    async def desired_state(
        self, device_id: str, after_version: int, wait_s: float
    ) -> DesiredState:
        response = await self._request(
            "GET",
            f"/v1/agents/{device_id}/desired-state",
            params={"after_version": after_version, "wait_s": wait_s},
            # The server holds the request up to wait_s: the read timeout must exceed it.
            timeout_s=wait_s + 15.0,
        )
        return self._parse(DesiredState, response)

    def artifact_url(self, ref: ArtifactRef) -> str:
        if ref.url.startswith(("http://", "https://")):
            return ref.url
        if ref.url:
            return f"{self.server}/{ref.url.lstrip('/')}"
        return f"{self.server}/v1/artifacts/{ref.sha256}"

    async def download(self, ref: ArtifactRef, directory: Path) -> tuple[Path, float]:
        """Fetch an artifact into `directory/<sha256>`, verified; (path, seconds taken).
        A file already there is trusted only if its hash matches. A download whose hash
        differs is discarded (never renamed into place) and reported as Rejected."""
        target = directory / ref.sha256
        if target.is_file() and _sha256_file(target) == ref.sha256:
            return target, 0.0
        directory.mkdir(parents=True, exist_ok=True)
        url = self.artifact_url(ref)
        fd, tmp = tempfile.mkstemp(prefix=f".{ref.sha256[:12]}.", dir=directory)
        digest = hashlib.sha256()
        started = time.perf_counter()
        try:
            with os.fdopen(fd, "wb") as handle:
                try:
                    async with self._http.stream(
                        "GET", url, headers=self._headers(), timeout=httpx.Timeout(120.0)
                    ) as response:
                        if response.status_code >= 500 or response.status_code == 429:
                            raise Unreachable(f"GET {url}: {response.status_code}")
                        if response.status_code >= 400:
                            await response.aread()
                            raise Rejected(response.status_code, _detail(response))
                        async for chunk in response.aiter_bytes(1 << 20):
                            digest.update(chunk)
                            handle.write(chunk)
                except httpx.HTTPError as exc:
                    raise Unreachable(f"GET {url}: {type(exc).__name__}: {exc}") from None
            if digest.hexdigest() != ref.sha256:
                raise Rejected(
                    200,
                    f"artifact {ref.sha256[:12]}: downloaded bytes hash to "
                    f"{digest.hexdigest()[:12]}; discarded",
                )
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target, time.perf_counter() - started


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
