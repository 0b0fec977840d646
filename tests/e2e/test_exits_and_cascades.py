"""Early exits and cascades through the control plane and real agents (issue 17, item 8):
an exit-head deployment whose answers end early exactly on the inputs its head is
confident on, and a cascade declared as docs/control-plane.md shows it (`exit_prob`, no
`threshold`) that escalates at its declared rate; the scenario then plans with the rates
they measured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest

from models_registry import (
    analyse_model,
    confidence,
    extract_partition,
    make_exit_head,
    randomize,
)
from models_registry.runtime import make_session, run
from tests.harness.emulated import LIGHT, AgentSpec, EmulatedFleet, npy
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow

# Mains-powered: the camera's battery would only narrow where the plan may put the work.
AGENTS = {
    "cam": AgentSpec("device", "none", 10, (2, 6)),
    "edge": AgentSpec("edge", "none", 400, (10, 35)),
    "cloud": AgentSpec("cloud", "none", 4000, (80, 300)),
}
LINKS = [("cam", "edge", 50, 4, 0.4), ("edge", "cloud", 200, 15, 0.05),
         ("cam", "cloud", 20, 40, 0.8)]  # fmt: skip
AFTER = "r34"  # the exit head's block: mid-model
REQUESTS = 40


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(tmp_path, processes, agents=AGENTS)
    yield made
    made.close()


def _ok(response: httpx.Response, code: int = 201) -> Any:
    assert response.status_code == code, response.text
    return response.json()


def _inputs(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(REQUESTS)]


def _head_confidences(model: onnx.ModelProto, head: onnx.ModelProto, xs: list[np.ndarray]) -> Any:
    """What the head says on each input, computed here with the registry's own pieces."""
    analysis = analyse_model(model)
    prefix = make_session(extract_partition(analysis, 0, analysis.block_index(AFTER)).model, 1)
    head_session = make_session(head, 1)
    out = []
    for x in xs:
        env = {analysis.inputs[0].name: x}
        env.update(run(prefix, env))
        logits = next(iter(run(head_session, env).values()))
        out.append(float(confidence(logits)[0]))
    return np.array(out)


def _threshold(confs: Any) -> float:
    """Midway across the widest gap between the middle confidences: about half the inputs
    exit, and none lies close enough to the threshold for rounding to flip it."""
    ordered = np.sort(confs)
    lo, hi = len(ordered) // 4, 3 * len(ordered) // 4
    gaps = np.diff(ordered[lo:hi])
    k = lo + int(np.argmax(gaps))
    return float((ordered[k] + ordered[k + 1]) / 2)


def _rolled_out(fleet: EmulatedFleet, apps: set[str]) -> bool:
    body = fleet.plan()
    placed = {a["id"] for a in body["plan"]["apps"]}
    return apps <= placed and bool(body["rollout"]["complete"])


def _send(fleet: EmulatedFleet, deployment: str, token: str, xs: list[np.ndarray]) -> list[Any]:
    url = f"http://127.0.0.1:{fleet.ports['cam']}/v1/infer/{deployment}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-npy"}
    traces = []
    with httpx.Client(timeout=60) as client:
        for x in xs:
            response = client.post(url, content=npy(x), headers=headers)
            assert response.status_code == 200, response.text
            traces.append(json.loads(response.headers["X-Continuum-Trace"]))
    return traces


def test_exit_heads_end_early_and_cascades_escalate(fleet: EmulatedFleet) -> None:
    fleet.start_server()
    fleet.start_agents()
    admin = fleet.admin
    for a, b, mbps, rtt, jpm in LINKS:
        _ok(admin.post("/v1/links", json={"a": a, "b": b, "mbps": mbps, "rtt_ms": rtt,
                                         "j_per_mb": jpm}))  # fmt: skip

    # -- an exit-head deployment ---------------------------------------------------------
    model = randomize(LIGHT / "light_squeezenet.onnx", seed=0)
    head = make_exit_head(analyse_model(model), AFTER, num_classes=10, seed=0)
    xs = _inputs(seed=5)
    confs = _head_confidences(model, head, xs)
    threshold = _threshold(confs)
    expected_exits = confs >= threshold
    prob = float(expected_exits.mean())
    _ok(admin.post("/v1/models", files={"file": ("sq.onnx", model.SerializeToString())},
                   data={"id": "squeezenet"}))  # fmt: skip
    _ok(admin.post(
        "/v1/models/squeezenet/exits", files={"file": ("exit.onnx", head.SerializeToString())},
        data={"after": AFTER, "threshold": f"{threshold!r}", "prob": f"{prob!r}"},
    ))  # fmt: skip
    _ok(admin.post("/v1/deployments", json={
        "name": "vision", "model": "squeezenet", "source": "cam", "rate_rps": 1, "slo_ms": 5000,
    }))  # fmt: skip
    wait_until("the exit-head plan to roll out", lambda: _rolled_out(fleet, {"vision"}), 180,
               fleet.procs())  # fmt: skip
    scenario = _ok(admin.get("/v1/scenario"), 200)
    (entry,) = [m for m in scenario["models"] if m["id"] == "squeezenet"]
    assert [(e["after"], e["prob"]) for e in entry["exits"]] == [(AFTER, prob)]

    token = _ok(admin.get("/v1/deployments/vision/token"), 200)["data_plane_token"]
    traces = _send(fleet, "vision", token, xs)
    ended = [trace[-1]["exit"] for trace in traces]
    # Each answer ends at the head exactly when the head is confident on that input.
    assert ended == [AFTER if e else None for e in expected_exits], (ended, threshold)
    assert 0 < sum(expected_exits) < REQUESTS  # some answers end early, some do not
    early = [t for t, e in zip(traces, expected_exits, strict=True) if e]
    late = [t for t, e in zip(traces, expected_exits, strict=True) if not e]
    # An early answer runs fewer blocks: it never reaches the model's last partition.
    last_partition = late[0][-1]["partition"]
    assert all(h["partition"] != last_partition for t in early for h in t)

    # -- a cascade as docs/control-plane.md shows it -------------------------------------
    for seed, name in ((1, "small"), (2, "big")):
        m = randomize(LIGHT / "light_squeezenet.onnx", seed=seed)
        _ok(admin.post("/v1/models", files={"file": (f"{name}.onnx", m.SerializeToString())},
                       data={"id": name}))  # fmt: skip
    _ok(admin.post("/v1/cascades", json={
        "id": "small-then-big", "stages": [{"model": "small", "exit_prob": 0.5}, {"model": "big"}],
    }))  # fmt: skip
    _ok(admin.post("/v1/deployments", json={
        "name": "tiered", "cascade": "small-then-big", "source": "cam", "rate_rps": 1,
        "slo_ms": 5000,
    }))  # fmt: skip
    wait_until("the cascade's plan to roll out",
               lambda: _rolled_out(fleet, {"vision", "tiered"}), 180, fleet.procs())  # fmt: skip
    token = _ok(admin.get("/v1/deployments/tiered/token"), 200)["data_plane_token"]
    traces = _send(fleet, "tiered", token, _inputs(seed=6))
    paths = [[h["partition"] for h in trace] for trace in traces]
    assert {tuple(p) for p in paths} == {("tiered/stage0",), ("tiered/stage0", "tiered/stage1")}
    escalated = sum(len(p) == 2 for p in paths)
    # Declared: half escalate. Before, none did (no threshold was taken as confident).
    assert 0.3 * REQUESTS <= escalated <= 0.7 * REQUESTS, escalated
    # The stage agent counts what it answered; the heartbeat carries it to the server.
    stage0_host = next(
        name for name in AGENTS if "tiered/stage0" in fleet.status(name)["partitions"]
    )
    counts = fleet.status(stage0_host)["metrics"]["tiered/stage0"]
    assert counts["requests"] == REQUESTS
    assert counts["exits"] == {"stage": REQUESTS - escalated}

    # -- the rates the next plan uses are learned from those counts ----------------------
    def learned(declared: float, fired: int) -> float:
        return round((20.0 * declared + fired) / (20.0 + REQUESTS), 4)

    want_exit = learned(prob, int(sum(expected_exits)))
    want_stage = learned(0.5, REQUESTS - escalated)

    def scenario_learned() -> bool:
        scenario = _ok(admin.get("/v1/scenario"), 200)
        (model,) = [m for m in scenario["models"] if m["id"] == "squeezenet"]
        (app,) = [a for a in scenario["apps"] if a["id"] == "tiered"]
        return bool(model["exits"][0]["prob"] == want_exit
                    and app["cascade"][0]["exit_prob"] == want_stage)  # fmt: skip

    wait_until("the learned rates in the scenario", scenario_learned, 30, fleet.procs())
