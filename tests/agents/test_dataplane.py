"""The data plane with real servers (two agents' data planes on local ports) and a tiny
real model: x -> [MatMul] -> h -> [MatMul] -> y, cut after h, with an exit head after h;
and a two-stage cascade. The routing is installed with the watcher's make-before-break
switch, as a desired state would be."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from onnx import TensorProto, helper, numpy_helper

from agents import tensorframe
from agents.battery import EmulatedBattery
from agents.client import ControlPlaneClient
from agents.dataplane import DataPlane, create_app
from agents.ingress import timed_protocol
from agents.runtime import Loaded, load_partition, load_stage
from agents.state import ServingState, token_digest
from agents.watcher import Watcher
from api.wire import (
    ArtifactRef,
    CascadeStageSpec,
    DesiredState,
    Endpoint,
    ExitHeadSpec,
    NextHop,
    PartitionSpec,
    SourceSpec,
)
from tests.harness.ports import free_port

TOKEN = "cnt_dp_test_token"
RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((4, 4)).astype(np.float32)
W2 = RNG.standard_normal((4, 3)).astype(np.float32)


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any]) -> bytes:
    graph = helper.make_graph(nodes, "t", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def _vi(name: str, shape: list[int]) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


PART_A = _model(
    [helper.make_node("MatMul", ["x", "w1"], ["h"])],
    [_vi("x", [1, 4])], [_vi("h", [1, 4])], [numpy_helper.from_array(W1, "w1")],
)  # fmt: skip
PART_B = _model(
    [helper.make_node("MatMul", ["h", "w2"], ["y"])],
    [_vi("h", [1, 4])], [_vi("y", [1, 3])], [numpy_helper.from_array(W2, "w2")],
)  # fmt: skip


# Both partitions in one model: x -> h -> y.
WHOLE = _model(
    [helper.make_node("MatMul", ["x", "w1"], ["h"]),
     helper.make_node("MatMul", ["h", "w2"], ["y"])],
    [_vi("x", [1, 4])], [_vi("y", [1, 3])],
    [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")],
)  # fmt: skip


def _head(scale: float) -> bytes:
    # Its input is named differently from the block's tensor: heads are fed by position.
    weight = np.eye(4, 5, dtype=np.float32) * scale
    return _model(
        [helper.make_node("MatMul", ["feat", "hw"], ["logits"])],
        [_vi("feat", [1, 4])], [_vi("logits", [1, 5])], [numpy_helper.from_array(weight, "hw")],
    )  # fmt: skip


def _ref(data: bytes) -> ArtifactRef:
    return ArtifactRef(sha256=hashlib.sha256(data).hexdigest(), url="", size=len(data))


class Node:
    """One agent's data plane, served by uvicorn in a thread on a free port."""

    def __init__(self, device_id: str, tmp: Path, max_tensor_mb: float = 1.0) -> None:
        self.state = ServingState(
            battery=EmulatedBattery(1.0, 100.0, 1.0, 5.0),
            device_id=device_id,
            max_tensor_bytes=int(max_tensor_mb * 1e6),
            default_j_per_mb=1.0,
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dp = DataPlane(self.state)
        self.client = ControlPlaneClient("http://127.0.0.1:9")
        self.watcher = Watcher(self.state, self.client, tmp / device_id, 1, 10.0)
        config = uvicorn.Config(
            create_app(self.dp), host="127.0.0.1", port=self.port, log_level="warning",
            lifespan="off", http=timed_protocol(),
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())
        self.loop.run_until_complete(self.dp.aclose())
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("data plane did not start")
            threading.Event().wait(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def install(self, desired: DesiredState, loaded: list[Loaded]) -> None:
        self.watcher._switch(desired, {lo.key: lo for lo in loaded})


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    a, b = Node("a", tmp_path), Node("b", tmp_path)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def _partitions(
    a: Node, b: Node, head: bytes | None, threshold: float, fallback: bool = False
) -> None:
    sink = Endpoint(device_id="a", data_plane_url=a.url)
    exits = (
        [ExitHeadSpec(after="h", artifact=_ref(head), threshold=threshold, prob=0.5)]
        if head is not None
        else []
    )
    spec_a = PartitionSpec(
        key="d/m/0-0", deployment="d", model="m", first="h", last="h", first_index=0,
        last_index=0, artifact=_ref(PART_A), exits=exits,
        next_hop=NextHop(device_id="b", data_plane_url=b.url, key="d/m/1-1", j_per_mb=2.0),
        sink=sink, data_plane_token=TOKEN, fallback=fallback,
    )  # fmt: skip
    spec_b = PartitionSpec(
        key="d/m/1-1", deployment="d", model="m", first="y", last="y", first_index=1,
        last_index=1, artifact=_ref(PART_B), exits=[], next_hop=None, sink=sink,
        data_plane_token=TOKEN,
    )  # fmt: skip
    heads = {"h": head} if head is not None else {}
    source = SourceSpec(
        deployment="d", rate_rps=1.0, data_plane_token=TOKEN,
        first_hop=NextHop(device_id="a", data_plane_url=a.url, key="d/m/0-0"),
    )  # fmt: skip
    a.install(
        DesiredState(device_id="a", version=1, partitions=[spec_a], sources=[source]),
        [load_partition(spec_a, PART_A, heads, 1, 10.0)],
    )
    b.install(
        DesiredState(device_id="b", version=1, partitions=[spec_b]),
        [load_partition(spec_b, PART_B, {}, 1, 10.0)],
    )


def _first_stage(a: Node, stage0: CascadeStageSpec) -> None:
    """Install cascade stage 0 (the small model, PART_A) on `a`, the deployment's source."""
    source = SourceSpec(
        deployment="d", rate_rps=1.0, data_plane_token=TOKEN,
        first_hop=NextHop(device_id="a", data_plane_url=a.url, key="d/stage0"),
    )  # fmt: skip
    a.install(
        DesiredState(device_id="a", version=1, cascade_stages=[stage0], sources=[source]),
        [load_stage(stage0, PART_A, 1, 10.0)],
    )


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _infer(node: Node, array: np.ndarray, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{node.url}/v1/infer/d", content=_npy(array), headers=headers, timeout=30)


X = RNG.standard_normal((1, 4)).astype(np.float32)


def test_two_hops_give_the_whole_models_answer(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    response = _infer(a, X)
    assert response.status_code == 200, response.text
    out = np.load(io.BytesIO(response.content))
    np.testing.assert_allclose(out, X @ W1 @ W2, rtol=1e-5)
    trace = json.loads(response.headers["X-Continuum-Trace"])
    assert [(h["device"], h["partition"], h["exit"]) for h in trace] == [
        ("a", "d/m/0-0", None),
        ("b", "d/m/1-1", None),
    ]
    assert all(h["compute_ms"] >= 0 and h["transfer_ms"] >= 0 for h in trace)
    assert b.state.metrics.snapshot()["d/m/1-1"].requests == 1
    # a sent h (16 bytes and a header) at 2 J/MB: its emulated battery paid for it.
    drained = a.state.battery.describe()["drained_j"]
    assert drained["transfer"] > 0 and drained["compute"] > 0


def test_a_confident_exit_answers_without_the_next_hop(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, _head(100.0), 0.5)
    # softmax of 100 * h over 5 logits: the largest one near 1, unless h is flat.
    response = _infer(a, X)
    assert response.status_code == 200, response.text
    out = np.load(io.BytesIO(response.content))
    np.testing.assert_allclose(out, (X @ W1) @ (np.eye(4, 5, dtype=np.float32) * 100), rtol=1e-5)
    trace = json.loads(response.headers["X-Continuum-Trace"])
    assert [(h["device"], h["exit"]) for h in trace] == [("a", "h")]
    assert "d/m/1-1" not in b.state.metrics.snapshot()
    assert a.state.metrics.snapshot()["d/m/0-0"].exits == {"h": 1}


def test_an_unconfident_exit_goes_on(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, _head(0.0), 0.5)  # all-zero logits: confidence 1/5
    response = _infer(a, X)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.load(io.BytesIO(response.content)), X @ W1 @ W2, rtol=1e-5)
    assert [h["exit"] for h in json.loads(response.headers["X-Continuum-Trace"])] == [None, None]


def test_bad_requests_get_a_clear_4xx_and_touch_nothing(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    assert _infer(a, X, token=None).status_code == 401
    assert _infer(a, X, token="wrong").status_code == 403
    assert _infer(a, X.astype(np.float64)).status_code == 422
    assert _infer(a, np.zeros((1, 5), np.float32)).status_code == 422
    too_big = _infer(a, np.zeros((1, 400_000), np.float32))
    assert too_big.status_code == 413
    auth = {"Authorization": f"Bearer {TOKEN}"}
    garbage = httpx.post(f"{a.url}/v1/infer/d", content=b"\x93NUMPY junk", headers=auth)
    assert garbage.status_code == 422
    assert httpx.post(f"{a.url}/v1/infer/nope", content=_npy(X)).status_code == 404
    hop = httpx.post(
        f"{b.url}/v1/hop/d/m/1-1", content=b"not a frame",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )  # fmt: skip
    assert hop.status_code == 422
    assert a.state.metrics.snapshot() == {} and b.state.metrics.snapshot() == {}


def test_cascade_sends_the_original_input_on_and_delivers_to_the_sink(
    nodes: tuple[Node, Node], tmp_path: Path
) -> None:
    a, b = nodes
    # Stage 0 on a is never confident (threshold above 1); stage 1 on b answers; the
    # sink is b, so b also keeps the result for the sink's consumers.
    whole = WHOLE
    sink = Endpoint(device_id="b", data_plane_url=b.url)
    stage0 = CascadeStageSpec(
        key="d/stage0", deployment="d", index=0, model="small", artifact=_ref(PART_A),
        exit_prob=0.5, threshold=1.5, sink=sink, data_plane_token=TOKEN,
        next_stage=NextHop(device_id="b", data_plane_url=b.url, key="d/stage1"),
    )  # fmt: skip
    stage1 = CascadeStageSpec(
        key="d/stage1", deployment="d", index=1, model="big", artifact=_ref(whole),
        exit_prob=None, threshold=None, next_stage=None, sink=sink, data_plane_token=TOKEN,
    )  # fmt: skip
    _first_stage(a, stage0)
    b.install(
        DesiredState(device_id="b", version=1, cascade_stages=[stage1]),
        [load_stage(stage1, whole, 1, 10.0)],
    )
    response = _infer(a, X)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.load(io.BytesIO(response.content)), X @ W1 @ W2, rtol=1e-5)
    trace = json.loads(response.headers["X-Continuum-Trace"])
    assert [(h["partition"], h["exit"]) for h in trace] == [("d/stage0", None), ("d/stage1", None)]
    kept = httpx.get(f"{b.url}/v1/results/d", headers={"Authorization": f"Bearer {TOKEN}"})
    assert kept.status_code == 200
    np.testing.assert_allclose(np.load(io.BytesIO(kept.content)), X @ W1 @ W2, rtol=1e-5)


def test_make_before_break_keeps_old_partitions_until_the_route_is_live(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    # Version 2 drops everything from b: b keeps serving until the route is live.
    b.install(DesiredState(device_id="b", version=2), [])
    assert "d/m/1-1" in b.state.loaded
    assert _infer(a, X).status_code == 200
    assert b.watcher.retire(live_version=1) == []
    assert b.watcher.retire(live_version=2) == ["d/m/1-1"]
    assert b.state.loaded == {}
    assert _infer(a, X).status_code == 404  # a's route still points at b (a's business)


def test_probe_endpoints_need_a_token_and_move_the_bytes(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{b.url}/v1/probe", params={"bytes": 10}).status_code == 401
    got = httpx.get(f"{b.url}/v1/probe", params={"bytes": 4096}, headers=auth)
    assert got.status_code == 200 and len(got.content) == 4096
    posted = httpx.post(f"{b.url}/v1/probe", content=b"\0" * 1000, headers=auth)
    assert posted.json() == {"bytes": 1000}


def test_hop_frames_carry_the_trace(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    frame = tensorframe.encode({"h": X @ W1}, {"trace": [{"device": "z"}], "source": "z"})
    response = httpx.post(
        f"{b.url}/v1/hop/d/m/1-1", content=frame, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200
    result = tensorframe.decode(response.content)
    np.testing.assert_allclose(result.tensors["y"], X @ W1 @ W2, rtol=1e-5)
    assert [h["device"] for h in result.meta["trace"]] == ["z", "b"]


def _route_a_to(a: Node, url: str, key: str = "d/m/1-1") -> None:
    """Re-point a's partition at `url` (a peer that is not b)."""
    spec = a.state.loaded["d/m/0-0"].spec
    assert isinstance(spec, PartitionSpec)
    moved = spec.model_copy(
        update={"next_hop": NextHop(device_id="b", data_plane_url=url, key=key)}
    )
    a.install(
        DesiredState(device_id="a", version=2, partitions=[moved],
                     sources=list(a.state.sources.values())),
        [load_partition(moved, PART_A, {}, 1, 10.0)],
    )  # fmt: skip


def test_hops_reuse_one_connection_and_pass_the_peers_errors_on(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    for _ in range(3):
        assert _infer(a, X).status_code == 200
    assert a.dp.hops.connections_opened == 1  # kept alive between hops
    # b answers a problem (a key it does not serve): a passes the status and detail on.
    _route_a_to(a, b.url, key="d/m/nope")
    refused = _infer(a, X)
    assert refused.status_code == 404
    assert refused.json()["detail"] == "b: partition 'd/m/nope' is not served on this device"
    b.state.tokens["d"] = {token_digest("another-token")}
    _route_a_to(a, b.url)
    forbidden = _infer(a, X)
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == "b: this token is not valid for deployment 'd'"


def test_an_unreachable_or_silent_next_hop_is_a_502_or_504(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    _route_a_to(a, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    unreachable = _infer(a, X)
    assert unreachable.status_code == 502
    assert unreachable.json()["detail"].startswith("next hop b is unreachable")

    handlers: list[tuple[asyncio.Task[Any], asyncio.StreamWriter]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append((task, writer))
        await reader.read()  # reads until the client hangs up; never answers
        writer.close()

    async def serve_silently(ready: threading.Event, stop: asyncio.Event, port: list[int]) -> None:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        await stop.wait()
        server.close()
        # The agent may still hold its connection open: close this side and let every
        # handler end before the loop closes (else its socket is reported unclosed, as a
        # warning that fails whichever test the collector happens to run in).
        for _, writer in handlers:
            writer.close()
        await asyncio.gather(*(task for task, _ in handlers), return_exceptions=True)
        await server.wait_closed()

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready, port = threading.Event(), list[int]()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve_silently(ready, stop, port),), daemon=True
    )
    thread.start()
    try:
        assert ready.wait(10)
        _route_a_to(a, f"http://127.0.0.1:{port[0]}")
        a.dp.hops.timeout_s = 0.5
        timed_out = _infer(a, X)
        assert timed_out.status_code == 504
        assert timed_out.json()["detail"].startswith("next hop b (http://127.0.0.1:")
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def test_the_hop_route_reads_any_body_framing_and_refuses_what_it_must(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    frame = tensorframe.encode({"h": X @ W1}, {"trace": []})
    # A body of unknown length (chunked): read whole all the same.
    chunked = httpx.post(f"{b.url}/v1/hop/d/m/1-1", content=iter([frame[:7], frame[7:]]),
                         headers=auth)  # fmt: skip
    assert chunked.status_code == 200, chunked.text
    np.testing.assert_allclose(
        tensorframe.decode(chunked.content).tensors["y"], X @ W1 @ W2, rtol=1e-5
    )
    assert float(chunked.headers["X-Continuum-Handler-Ms"]) >= 0
    # Over the cap (1 MB here), declared or not: 413 before the model runs.
    big = tensorframe.encode({"h": np.zeros((1, 300_000), np.float32)}, {})
    assert httpx.post(f"{b.url}/v1/hop/d/m/1-1", content=big, headers=auth).status_code == 413
    streamed = httpx.post(f"{b.url}/v1/hop/d/m/1-1", content=iter([big]), headers=auth)
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    assert httpx.post(f"{b.url}/v1/hop/d/m/1-1", content=frame).status_code == 401
    assert httpx.get(f"{b.url}/v1/hop/d/m/1-1", headers=auth).status_code == 405
    assert b.state.metrics.snapshot()["d/m/1-1"].requests == 1
