"""Local fallback at the edge (issue 18): with its next hop down, an agent answers from
what it holds (an exit head, its cascade stage, a whole-model copy on the source), marked
degraded, and keeps the hop for its next heartbeat; without `fallback` it answers 502."""

from __future__ import annotations

import io
import json

import numpy as np

from agents.runtime import load_partition
from api.wire import (
    CascadeStageSpec,
    DesiredState,
    Endpoint,
    NextHop,
    PartitionSpec,
    SourceSpec,
)
from tests.agents.test_dataplane import (
    PART_A,
    TOKEN,
    W1,
    W2,
    WHOLE,
    Node,
    X,
    _first_stage,
    _head,
    _infer,
    _partitions,
    _ref,
    nodes,
)

__all__ = ["nodes"]

DEGRADED = "X-Continuum-Degraded"


def _out(response: object) -> np.ndarray:
    return np.load(io.BytesIO(response.content))  # type: ignore[attr-defined]


def test_an_unconfident_exit_head_answers_when_the_next_hop_is_down(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    _partitions(a, b, _head(0.0), 0.5, fallback=True)  # the head never answers on its own
    assert DEGRADED not in _infer(a, X).headers
    b.stop()
    response = _infer(a, X)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(_out(response), np.zeros((1, 5), np.float32))  # its logits
    assert "next hop b is unreachable" in response.headers[DEGRADED]
    trace = json.loads(response.headers["X-Continuum-Trace"])
    assert [(h["device"], h["exit"], h.get("degraded")) for h in trace] == [("a", "h", True)]
    (report,) = a.state.unreachable_report()
    assert report.peer == "b" and "unreachable" in report.error
    # Within the cooldown the dead hop is not tried again: answered at once, still marked.
    again = _infer(a, X)
    assert again.status_code == 200 and "moments ago" in again.headers[DEGRADED]
    assert a.state.degraded_answers == 2


def test_without_fallback_a_dead_next_hop_is_a_502(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, _head(0.0), 0.5)
    b.stop()
    response = _infer(a, X)
    assert response.status_code == 502, response.text
    assert "next hop b is unreachable" in response.json()["detail"]
    assert [u.peer for u in a.state.unreachable_report()] == ["b"]  # reported all the same


def test_the_sources_whole_model_copy_answers_in_full(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    sink = Endpoint(device_id="a", data_plane_url=a.url)
    first = PartitionSpec(
        key="d/m/0-0", deployment="d", model="m", first="h", last="h", first_index=0,
        last_index=0, artifact=_ref(PART_A), exits=[], sink=sink, data_plane_token=TOKEN,
        next_hop=NextHop(device_id="b", data_plane_url=b.url, key="d/m/1-1"),
    )  # fmt: skip
    kept = PartitionSpec(
        key="d/m/fallback", deployment="d", model="m", first="h", last="y", first_index=0,
        last_index=1, artifact=_ref(WHOLE), exits=[], next_hop=None, sink=sink,
        data_plane_token=TOKEN,
    )  # fmt: skip
    source = SourceSpec(
        deployment="d", rate_rps=1.0, data_plane_token=TOKEN, fallback_key="d/m/fallback",
        first_hop=NextHop(device_id="a", data_plane_url=a.url, key="d/m/0-0"),
    )  # fmt: skip
    a.install(
        DesiredState(device_id="a", version=1, partitions=[first, kept], sources=[source]),
        [load_partition(first, PART_A, {}, 1, 10.0), load_partition(kept, WHOLE, {}, 1, 10.0)],
    )
    b.stop()  # b never served: the route beyond a is broken from the start
    response = _infer(a, X)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(_out(response), X @ W1 @ W2, rtol=1e-5)  # the full answer
    assert "b" in response.headers[DEGRADED]
    trace = json.loads(response.headers["X-Continuum-Trace"])
    assert [(h["partition"], h.get("degraded")) for h in trace] == [("d/m/fallback", True)]
    # Next, within the cooldown: straight to the copy, without running a's own part first.
    again = _infer(a, X)
    assert again.status_code == 200 and "moments ago" in again.headers[DEGRADED]
    assert a.state.metrics.snapshot()["d/m/0-0"].requests == 1


def test_a_cascade_stage_answers_itself_when_the_next_stage_is_down(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    sink = Endpoint(device_id="a", data_plane_url=a.url)
    stage0 = CascadeStageSpec(
        key="d/stage0", deployment="d", index=0, model="small", artifact=_ref(PART_A),
        exit_prob=0.5, threshold=1.5, sink=sink, data_plane_token=TOKEN, fallback=True,
        next_stage=NextHop(device_id="b", data_plane_url=b.url, key="d/stage1"),
    )  # fmt: skip
    _first_stage(a, stage0)
    b.stop()
    response = _infer(a, X)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(_out(response), X @ W1, rtol=1e-5)  # stage 0's own answer
    trace = json.loads(response.headers["X-Continuum-Trace"])
    assert [(h["partition"], h["exit"], h.get("degraded")) for h in trace] == [
        ("d/stage0", "stage", True)
    ]
