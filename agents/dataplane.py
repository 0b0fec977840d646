"""The data plane: serving partitions and moving tensors between agents.

Routes (every one needs the deployment's data-plane token as `Authorization: Bearer`):

- `POST /v1/infer/{deployment}` on the source device's agent: the body is the input as
  NumPy `.npy` (`application/x-npy`); the answer is the output as `.npy`, with the trace
  in the `X-Continuum-Trace` header (a JSON list of hops: device, partition, compute_ms,
  transfer_ms, exit).
- `POST /v1/hop/{key}`: a tensor frame (`agents.tensorframe`) for a partition or cascade
  stage hosted here; the answer is the final result as a frame, with the whole trace.
  Hops chain: each agent runs its segment, forwards the output to the next hop and
  answers with what came back, so the result travels back to the caller.
- `POST /v1/results/{deployment}`: results delivered to the sink device's agent when the
  sink is not the source; `GET` the same path for the latest one.
- `GET /v1/probe?bytes=N`, `POST /v1/probe`: timed transfers for bandwidth and RTT probes.
- `GET /v1/status`: what runs here, with emulation labelled. It reveals the fleet's
  layout, so it takes the agent's own token or the operator's status token
  (`CONTINUUM_AGENT_STATUS_TOKEN`); so do `/v1/emulation` writes, loopback or not.
- `GET /healthz` (the process answers) and `GET /readyz` (enrolled, and every partition of
  the desired state in force loaded; else 503 with the reason): open, for probes.

Bad requests get a problem+json 4xx and touch nothing: 401 without a token, 403 with a
wrong one, 404 for a deployment or key not served here, 413 over `max_tensor_mb`, 415
for the wrong media type, 422 for a tensor of the wrong dtype or shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from typing import Annotated

import httpx
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from agents import tensorframe
from agents.allocator import keep_freed_memory
from agents.emulation import emulated_seconds
from agents.escalation import RateGate
from agents.hopclient import HopClient, PeerError, PeerResponse, PeerTimeout, PeerUnreachable
from agents.hoproute import HANDLER_HEADER, HopRoute, HopTiming
from agents.ingress import AnswerClock, arrived, when_answered
from agents.npy import load_npy, npy_bytes
from agents.ops import add_ops_routes, bearer
from agents.problems import HopError, HopUnreachable, problem
from agents.runtime import InputError, Loaded
from agents.state import Result, ServingState
from agents.tensorframe import Frame, FrameError
from api.wire import CascadeStageSpec, Endpoint, NextHop
from models_registry.exits import confidence

log = logging.getLogger(__name__)

NPY = "application/x-npy"
TRACE_HEADER = "X-Continuum-Trace"
DEGRADED_HEADER = "X-Continuum-Degraded"
# After a next hop failed, a hop that can fall back answers locally without trying it
# again for this long: a partitioned peer would otherwise cost every request a connect
# timeout. Then one request tries it again.
PEER_COOLDOWN_S = 2.0
MAX_PROBE_BYTES = 8 * 1024 * 1024
MB = 1_000_000  # the registry's and the contract's megabyte


class DataPlane:
    def __init__(
        self,
        state: ServingState,
        peer_timeout_s: float = 60.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.state = state
        # Tensors pass through fresh buffers on every hop; without this each one
        # page-faults its memory in again (agents/allocator.py).
        keep_freed_memory()
        # Plain-http peers (the usual case) get the lean keep-alive client: httpx's
        # per-request work alone is over a hop's 2 ms budget on a small device. httpx
        # stays for https:// peers.
        self.hops = HopClient(timeout_s=peer_timeout_s, connect_timeout_s=5.0)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(peer_timeout_s, connect=5.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            verify=verify,
        )
        self._background: set[asyncio.Task[None]] = set()
        self._gates: dict[str, RateGate] = {}  # stage key -> its rate gate (no threshold)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.hops.aclose()
        await self.http.aclose()

    async def _post(self, url: str, payload: list[bytes | memoryview], token: str) -> PeerResponse:
        """POST a frame to a peer: the answer whatever its status, or PeerTimeout /
        PeerError when there is none."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": tensorframe.MEDIA_TYPE}
        if not url.startswith("https://"):
            return await self.hops.post(url, payload, headers)
        try:
            response = await self.http.post(url, content=b"".join(payload), headers=headers)
        except httpx.TimeoutException as exc:
            raise PeerTimeout(f"{url}: {exc or 'timed out'}") from None
        except httpx.HTTPError as exc:
            raise PeerUnreachable(f"{url}: {exc}") from None
        return PeerResponse(
            response.status_code, {k.lower(): v for k, v in response.headers.items()},
            response.content,
        )  # fmt: skip

    # -- auth and bodies -----------------------------------------------------------------
    def _check_token(self, deployment: str, token: str | None) -> None:
        if token is None:
            raise HopError(401, "missing data-plane token: send 'Authorization: Bearer <token>'")
        if not self.state.token_ok(deployment, token):
            raise HopError(403, f"this token is not valid for deployment {deployment!r}")

    @property
    def body_cap(self) -> int:
        return self.state.max_tensor_bytes + 64 * 1024  # room for a frame's header

    async def _body(self, request: Request) -> bytes:
        cap = self.body_cap
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            raise HopError(413, f"the body is {int(declared)} bytes; the cap is {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise HopError(413, f"the body exceeds the cap of {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_size(self, tensors: dict[str, np.ndarray]) -> None:
        total = sum(int(t.nbytes) for t in tensors.values())
        if total > self.state.max_tensor_bytes:
            raise HopError(
                413, f"tensors of {total} bytes exceed max_tensor_mb "
                f"({self.state.max_tensor_bytes / MB:g} MB)"
            )  # fmt: skip

    # -- the source's entry point ----------------------------------------------------------
    async def infer(
        self, deployment: str, token: str | None, body: bytes, timing: HopTiming | None = None
    ) -> Frame:
        source = self.state.sources.get(deployment)
        if source is None:
            raise HopError(404, f"deployment {deployment!r} has no source on this device")
        self._check_token(deployment, token)
        array = load_npy(body, self.state.max_tensor_bytes)
        self._check_size({"": array})
        meta = {"trace": [], "source": self.state.device_id, "deployment": deployment}
        first = Frame({"": array}, meta)
        kept = self.state.loaded.get(source.fallback_key or "")
        try:
            if kept is not None:
                self._check_route(source.first_hop)
            return await self.send(
                source.first_hop, first, source.data_plane_token, timing, may_skip=kept is not None
            )
        except HopUnreachable as exc:
            if kept is None:
                raise
            # `fallback: local-model`: the whole model kept here answers.
            fresh = Frame({"": array}, {**meta, "trace": []})
            result = await self.hop(kept.key, fresh, source.data_plane_token)
            return self._degraded(result, exc.detail)

    def _check_route(self, hop: NextHop | None) -> None:
        """HopUnreachable when the first device the route leaves this one for failed in
        the last PEER_COOLDOWN_S: the whole-model copy answers without running the local
        partitions first and waiting on that device again."""
        while hop is not None and hop.device_id == self.state.device_id:
            here = self.state.loaded.get(hop.key)
            if here is None:
                return
            spec = here.spec
            hop = spec.next_stage if isinstance(spec, CascadeStageSpec) else spec.next_hop
        if hop is not None and self.state.failed_within(hop.device_id, PEER_COOLDOWN_S):
            raise HopUnreachable(502, f"next hop {hop.device_id} failed moments ago")

    def _degraded(self, result: Frame, why: str) -> Frame:
        """`result`, answered by a local fallback: marked so in its meta (the answer's
        `X-Continuum-Degraded` header) and on its last trace entry."""
        self.state.degraded_answers += 1
        trace = result.meta.get("trace", [])
        if trace and isinstance(trace[-1], dict):
            trace[-1]["degraded"] = True
        result.meta["degraded"] = why[:256]
        return result

    # -- moving frames ---------------------------------------------------------------------
    async def send(
        self, hop: NextHop, frame: Frame, token: str, timing: HopTiming | None = None,
        may_skip: bool = False,
    ) -> Frame:  # fmt: skip
        """Run `frame` at `hop` (here, or over HTTP) and return the final result frame.
        `timing`, for a hop run here: filled with its compute and downstream time.
        HopUnreachable when the route from `hop` on is broken; `may_skip` (the caller can
        fall back): without trying a peer that failed in the last PEER_COOLDOWN_S."""
        sent = len(frame.meta.get("trace", []))
        if hop.device_id == self.state.device_id:
            return await self.hop(hop.key, frame, token, timing)
        if may_skip and self.state.failed_within(hop.device_id, PEER_COOLDOWN_S):
            raise HopUnreachable(502, f"next hop {hop.device_id} failed moments ago")
        started = time.perf_counter()  # serialising is part of the hop's cost
        payload = tensorframe.encode_parts(frame.tensors, frame.meta)
        size = sum(len(part) for part in payload)
        j_per_mb = hop.j_per_mb if hop.j_per_mb is not None else self.state.default_j_per_mb
        self.state.battery.charge_transfer(size / MB, j_per_mb)
        url = f"{hop.data_plane_url.rstrip('/')}/v1/hop/{hop.key}"
        delay = self.state.uplink_delay_s(size, hop.device_id)
        if delay > 0:
            await asyncio.sleep(delay)  # an emulated uplink (POST /v1/emulation)
        try:
            response = await self._post(url, payload, token)
        except PeerTimeout:
            why = f"next hop {hop.device_id} ({url}) timed out"
            self.state.hop_failed(hop.device_id, why)
            raise HopUnreachable(504, why) from None
        except PeerError as exc:
            why = f"next hop {hop.device_id} is unreachable: {exc}"
            self.state.hop_failed(hop.device_id, why)
            raise HopUnreachable(502, why) from None
        self.state.hop_ok(hop.device_id)
        if response.status != 200:
            status = response.status if 400 <= response.status < 600 else 502
            # A 502/504 from the peer: a hop beyond it is unreachable (its own report
            # names which), so the route from here is broken as well.
            broken = HopUnreachable if status in (502, 504) else HopError
            raise broken(status, f"{hop.device_id}: {_detail(response)}")
        try:
            result = tensorframe.decode(response.body)
        except FrameError as exc:
            raise HopError(502, f"{hop.device_id} answered a bad frame: {exc}") from None
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        try:
            handler_ms = float(response.headers.get(HANDLER_HEADER.lower(), "0") or 0)
        except ValueError:
            handler_ms = 0.0
        trace = result.meta.get("trace", [])
        if len(trace) > sent and isinstance(trace[sent], dict):
            # This hop's cost beyond the receiver's own work (its partition and the hops
            # after it): framing, the network and HTTP, both ways.
            trace[sent]["transfer_ms"] = round(max(elapsed_ms - handler_ms, 0.0), 3)
        return result

    async def hop(
        self, key: str, frame: Frame, token: str | None, timing: HopTiming | None = None
    ) -> Frame:
        """Run partition `key` on `frame`, then the hops after it; `timing` (when given)
        gets this hop's compute time and the time the hops after it took."""
        loaded = self.state.loaded.get(key)
        if loaded is None:
            raise HopError(404, f"partition {key!r} is not served on this device")
        self._check_token(loaded.deployment, token)
        self._check_size(frame.tensors)
        try:
            feeds = loaded.bind(frame.tensors)
        except InputError as exc:
            raise HopError(422, str(exc)) from None
        try:
            result = await asyncio.to_thread(loaded.run, feeds)
        except Exception as exc:  # onnxruntime's errors are untyped
            self.state.metrics.error(key)
            raise HopError(422, f"{key}: the model rejected the input: {exc}") from None
        seconds = emulated_seconds(result.real_s, result.gflops, self.state.emulate_gflops)
        if seconds > result.real_s:
            await asyncio.sleep(seconds - result.real_s)
        self.state.battery.charge_compute(seconds)
        if timing is not None:
            timing.key, timing.compute_ms = key, seconds * 1000.0
        exit_name = result.exit_taken
        answered = exit_name is not None
        spec = loaded.spec
        is_stage = loaded.kind == "stage"
        if isinstance(spec, CascadeStageSpec):
            nxt = spec.next_stage
            confident = nxt is None or self._stage_confident(key, spec, result.outputs)
            if confident and nxt is not None:
                exit_name = "stage"
            answered = confident
        else:
            nxt = getattr(spec, "next_hop", None)
            answered = answered or nxt is None
        self.state.metrics.observe(key, seconds * 1000.0, exit_name)
        trace = [*frame.meta.get("trace", []), {
            "device": self.state.device_id, "partition": key,
            "compute_ms": round(seconds * 1000.0, 3), "transfer_ms": 0.0, "exit": exit_name,
            **({"emulated": True} if seconds > result.real_s else {}),
        }]  # fmt: skip
        meta = {**frame.meta, "trace": trace}
        if answered or nxt is None:
            out = Frame({k: np.asarray(v) for k, v in result.outputs.items()}, meta)
            self._deliver_to_sink(loaded, out)
            return out
        # A cascade's next stage gets the ORIGINAL input, not this stage's output.
        onward = Frame(frame.tensors if is_stage else result.outputs, meta)
        # What this hop answers itself if the route beyond is broken (`fallback`): a
        # cascade stage's own answer, or a partition's last exit head.
        own: dict[str, np.ndarray] | None = None
        if getattr(spec, "fallback", False):
            if is_stage:
                own = {k: np.asarray(v) for k, v in result.outputs.items()}
            elif result.held is not None:
                own = {result.held[1]: np.asarray(result.held[2])}
        started = time.perf_counter()
        try:
            return await self.send(nxt, onward, loaded.token, may_skip=own is not None)
        except HopUnreachable as exc:
            if own is None:
                raise
            trace[-1]["exit"] = "stage" if is_stage else (result.held or ("",))[0]
            out = self._degraded(Frame(own, meta), exc.detail)
            self._deliver_to_sink(loaded, out)
            return out
        finally:
            if timing is not None:
                timing.downstream_ms = (time.perf_counter() - started) * 1000.0

    def _stage_confident(
        self, key: str, spec: CascadeStageSpec, outputs: dict[str, np.ndarray]
    ) -> bool:
        """Whether a cascade stage (not the last) answers: its confidence against its
        threshold, or, without one, at its declared exit rate (agents/escalation.py)."""
        if spec.threshold is not None:
            return _confidence(outputs) >= spec.threshold
        if spec.exit_prob is None:
            return True  # the control plane requires a rate on every stage but the last
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = RateGate(spec.exit_prob, seed=key)
        gate.rate = spec.exit_prob  # a new desired state may bring a new rate
        return gate.confident(_confidence(outputs))

    def _deliver_to_sink(self, loaded: Loaded, result: Frame) -> None:
        sink: Endpoint = loaded.spec.sink
        if sink.device_id == result.meta.get("source"):
            return  # the caller is the sink: the answer reaches it anyway
        if sink.device_id == self.state.device_id:
            self.state.keep_result(
                loaded.deployment,
                Result(time.time(), dict(result.tensors), list(result.meta.get("trace", []))),
            )
            return
        task = asyncio.create_task(self._post_result(sink, loaded, result))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _post_result(self, sink: Endpoint, loaded: Loaded, result: Frame) -> None:
        payload = tensorframe.encode_parts(result.tensors, result.meta)
        size = sum(len(part) for part in payload)
        self.state.battery.charge_transfer(size / MB, self.state.default_j_per_mb)
        url = f"{sink.data_plane_url.rstrip('/')}/v1/results/{loaded.deployment}"
        try:
            response = await self._post(url, payload, loaded.token)
        except PeerError as exc:
            log.warning("sink %s is unreachable: %s", sink.device_id, exc)
            return
        if response.status >= 300:
            log.warning("sink %s refused a result: %s", sink.device_id, _detail(response))


def _detail(response: PeerResponse) -> str:
    """The problem+json detail of a peer's error answer, or the start of its text."""
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return response.body[:200].decode("utf-8", "replace") or f"HTTP {response.status}"


def _header_text(text: str) -> str:
    """`text` as a header value: printable ASCII on one line."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:256]


def _confidence(outputs: dict[str, np.ndarray]) -> float:
    first = next(iter(outputs.values()))
    return float(confidence(first).min())


def create_app(dp: DataPlane) -> FastAPI:
    app = FastAPI(title="Continuum agent data plane", version="1", docs_url=None, redoc_url=None)
    state = dp.state

    @app.exception_handler(HopError)
    async def _hop_error(request: Request, exc: HopError) -> JSONResponse:
        return problem(exc.status, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ()))
        return problem(422, f"{field}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Never a plain-text 500: callers parse problem+json on every error.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, f"internal error ({type(exc).__name__}); the agent log has details")

    app.add_middleware(HopRoute, dp=dp)
    app.add_middleware(AnswerClock)  # outermost: every request's whole time here

    @app.post("/v1/infer/{deployment}")
    async def infer(deployment: str, request: Request) -> Response:
        started = arrived(request.scope["state"])
        token = bearer(request)
        if deployment not in state.sources:
            raise HopError(404, f"deployment {deployment!r} has no source on this device")
        dp._check_token(deployment, token)  # before reading a byte of the body
        media = request.headers.get("content-type", NPY).split(";")[0].strip()
        if media not in {NPY, "application/octet-stream"}:
            raise HopError(415, f"send the input as {NPY} (got {media})")
        body = await dp._body(request)
        timing = HopTiming()
        result = await dp.infer(deployment, token, body, timing)
        output = next(iter(result.tensors.values()))
        body = npy_bytes(np.asarray(output))
        handler_ms = (time.perf_counter() - started) * 1000.0

        def answered(now: float) -> None:
            # The request's whole time here, first byte in to last byte out; when the
            # first partition runs here, what is not its compute or later hops is its
            # overhead (the contract's `overhead_ms`).
            if timing.key:
                state.metrics.observe_overhead(timing.key, timing.overhead_ms(started, now))
            state.metrics.observe_request(deployment, (now - started) * 1000.0)

        when_answered(request.scope["state"], answered)
        # What the request took here until its answer was ready (the answer's own sending
        # is not in it): a client's own time beyond it is the network's and its.
        headers = {TRACE_HEADER: json.dumps(result.meta.get("trace", [])),
                   HANDLER_HEADER: f"{handler_ms:.3f}"}  # fmt: skip
        if result.meta.get("degraded"):
            headers[DEGRADED_HEADER] = _header_text(str(result.meta["degraded"]))
        return Response(body, media_type=NPY, headers=headers)

    @app.post("/v1/results/{deployment}", status_code=204)
    async def receive_result(deployment: str, request: Request) -> Response:
        dp._check_token(deployment, bearer(request))
        try:
            frame = tensorframe.decode(await dp._body(request))
        except FrameError as exc:
            raise HopError(422, str(exc)) from None
        state.keep_result(
            deployment, Result(time.time(), dict(frame.tensors), list(frame.meta.get("trace", [])))
        )
        return Response(status_code=204)

    @app.get("/v1/results/{deployment}")
    async def latest_result(deployment: str, request: Request) -> Response:
        dp._check_token(deployment, bearer(request))
        kept = state.results.get(deployment)
        if not kept:
            raise HopError(404, f"no result of {deployment!r} has arrived here yet")
        last = kept[-1]
        return Response(
            npy_bytes(np.asarray(next(iter(last.tensors.values())))),
            media_type=NPY,
            headers={TRACE_HEADER: json.dumps(last.trace), "X-Continuum-Results": str(len(kept))},
        )

    @app.get("/v1/probe")
    async def probe_get(
        request: Request, size: Annotated[int, Query(alias="bytes", ge=0)] = 0
    ) -> Response:
        if not state.probe_ok(bearer(request)):
            raise HopError(401 if bearer(request) is None else 403, "a data-plane token is needed")
        if size > MAX_PROBE_BYTES:
            raise HopError(413, f"probes are at most {MAX_PROBE_BYTES} bytes")
        return Response(bytes(size), media_type="application/octet-stream")

    @app.post("/v1/probe")
    async def probe_post(request: Request) -> dict[str, int]:
        if not state.probe_ok(bearer(request)):
            raise HopError(401 if bearer(request) is None else 403, "a data-plane token is needed")
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_PROBE_BYTES:
                raise HopError(413, f"probes are at most {MAX_PROBE_BYTES} bytes")
        return {"bytes": size}

    add_ops_routes(app, state)
    return app
