"""A device's speed calibrated from what runs (issue 17): a real agent on this machine's
real compute (no emulation) serves SqueezeNet; the scenario the control plane solves, and
shows at `GET /v1/scenario`, then carries the speed its measured compute times give, not
the start-up benchmark's, and the overhead it measures per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from models_registry import randomize
from tests.harness.emulated import LIGHT, AgentSpec, EmulatedFleet, npy
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow

REQUESTS = 30


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(
        tmp_path, processes, agents={"cam": AgentSpec("device", "none", None, (2, 6))}
    )
    yield made
    made.close()


def _ok(response: httpx.Response, code: int = 201) -> Any:
    assert response.status_code == code, response.text
    return response.json()


def _expected_gflops(prior: float, model: dict[str, Any], metrics: dict[str, Any]) -> float:
    """What the control plane should compute from the heartbeat, written out here."""
    (key,) = [k for k in metrics if k.startswith("vision/squeezenet/")]
    first, last = (int(x) for x in key.rsplit("/", 1)[1].split("-"))
    gflop = sum(float(b["gflops"]) for b in model["layers"][first : last + 1])
    n = max(metrics[key]["recent_count"], metrics[key]["requests"])
    tau = metrics[key]["recent_ms"] / 1000.0 / gflop
    w = 20.0 * max(0.0, 1.0 - n / 64)  # the prior's weight fades to none at 64 requests
    return float(f"{1.0 / ((w / prior + n * tau) / (w + n)):.4g}")


def test_the_scenario_carries_the_measured_speed(fleet: EmulatedFleet) -> None:
    fleet.start_server()
    fleet.start_agents()
    admin = fleet.admin
    model = randomize(LIGHT / "light_squeezenet.onnx", seed=0)
    _ok(admin.post("/v1/models", files={"file": ("sq.onnx", model.SerializeToString())},
                   data={"id": "squeezenet"}))  # fmt: skip
    _ok(admin.post("/v1/deployments", json={
        "name": "vision", "model": "squeezenet", "source": "cam", "rate_rps": 1, "slo_ms": 5000,
    }))  # fmt: skip
    wait_until("the plan to roll out", fleet.complete, 180, fleet.procs())
    prior = fleet.devices()["cam"]["gflops"]  # the start-up benchmark
    token = _ok(admin.get("/v1/deployments/vision/token"), 200)["data_plane_token"]
    url = f"http://127.0.0.1:{fleet.ports['cam']}/v1/infer/vision"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-npy"}
    rng = np.random.default_rng(0)
    with httpx.Client(timeout=60) as client:
        for _ in range(REQUESTS):
            x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
            assert client.post(url, content=npy(x), headers=headers).status_code == 200

    seen: dict[str, Any] = {}

    def calibrated() -> bool:
        beat = fleet.devices()["cam"]["last_heartbeat"]
        scenario = _ok(admin.get("/v1/scenario"), 200)
        # The registry's FLOPs (the scenario's are scaled by the model's cost factor).
        entry = {"layers": _ok(admin.get("/v1/models/squeezenet"), 200)["blocks"]}
        metrics = beat["metrics"]
        if sum(m["recent_count"] for m in metrics.values()) < REQUESTS:
            return False
        seen.update(want=_expected_gflops(prior, entry, metrics),
                    got=scenario["devices"][0]["gflops"], metrics=metrics)  # fmt: skip
        return bool(seen["got"] == seen["want"])

    wait_until("the calibrated speed in the scenario", calibrated, 30, fleet.procs())
    assert seen["got"] != prior, seen  # the measured speed took over
    # With one model on one device, the model's cost factor is near 1: the device's speed
    # already is that model's.
    scenario = _ok(admin.get("/v1/scenario"), 200)
    (entry,) = scenario["models"]
    registry = _ok(admin.get("/v1/models/squeezenet"), 200)["blocks"]
    factor = entry["layers"][0]["gflops"] / registry[0]["gflops"]
    assert 0.5 < factor < 2.0, factor
    # And the time each request spends here beyond compute is measured: overhead_ms.
    (device,) = scenario["devices"]
    assert device["overhead_ms"] > 0, device

    # Predicted against measured, in the API and the metrics.
    view = _ok(admin.get("/v1/deployments/vision"), 200)
    latency = view["latency"]
    assert latency["measured_requests"] == REQUESTS
    assert 0 < latency["measured_p50_ms"] <= latency["measured_p95_ms"]
    assert latency["predicted_expected_ms"] == view["placement"]["latency_ms"]["expected"]
    p50, predicted = latency["measured_p50_ms"], latency["predicted_expected_ms"]
    assert latency["error"] == round((predicted - p50) / p50, 4)
    metrics = admin.get("/metrics").text
    for figure in ("predicted_expected", "predicted_worst", "measured_p50", "measured_p95"):
        line = f'continuum_deployment_latency_ms{{deployment="vision",figure="{figure}"}}'
        assert line in metrics, figure
