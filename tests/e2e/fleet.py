"""A three-device EMULATED fleet (camera, edge, cloud) for the end-to-end tests.

The numbers are the demo's CPU camera (cam-2): sending early is the camera's least
energy, the edge box is cheaper per MB towards the cloud than the camera is, and the
edge's memory is capped at half the model's weights, so the first plan splits the model
across all three (camera -> edge -> cloud). Without the edge, camera -> cloud is still
feasible (the direct uplink carries the traffic well within the SLO)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx

from models_registry import randomize
from tests.agents.conftest import ADMIN_TOKEN, Proc, free_port, wait_until

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
HEARTBEAT_S = 0.5
# name -> (tier, emulated GFLOP/s, idle W, busy W, battery)
AGENTS = {
    "cam": ("device", "10", "2", "6", "emulated:5:90"),
    "edge": ("edge", "400", "10", "35", "none"),
    "cloud": ("cloud", "4000", "80", "300", "none"),
}
LINKS = [("cam", "edge", 50, 4, 0.4), ("edge", "cloud", 200, 15, 0.05),
         ("cam", "cloud", 20, 40, 0.8)]  # fmt: skip
DEPLOYMENT = "vision"


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class Fleet:
    def __init__(
        self, tmp: Path, start: Callable[..., Proc], heartbeat_s: float = HEARTBEAT_S
    ) -> None:
        self.tmp = tmp
        self.heartbeat_s = heartbeat_s
        self.start = start
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "CONTINUUM_DATA_DIR": str(tmp / "cp"),
            "CONTINUUM_ADMIN_TOKEN": ADMIN_TOKEN,
            "CONTINUUM_PORT": str(self.port),
            "CONTINUUM_HOST": "127.0.0.1",
            "CONTINUUM_SOLVER": "ilp",
            "CONTINUUM_LONG_POLL_MAX_S": "5",
            "CONTINUUM_HEARTBEAT_INTERVAL_S": str(heartbeat_s),
            "CONTINUUM_ROLLOUT_TIMEOUT_S": "30",
        }
        self.servers: list[Proc] = []
        self.agents: dict[str, Proc] = {}
        self.ports: dict[str, int] = {}
        self.admin = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
        )

    def close(self) -> None:
        self.admin.close()

    @property
    def server(self) -> Proc:
        return self.servers[-1]

    def procs(self) -> list[Proc]:
        return [self.server, *(p for p in self.agents.values() if p.popen is not None
                               and p.popen.returncode is None)]  # fmt: skip

    def start_server(self) -> None:
        n = len(self.servers)
        self.servers.append(self.start(f"server-{n}", ["server"], self.env,
                                       self.tmp / f"server-{n}.log"))  # fmt: skip
        wait_until(
            "the control plane",
            lambda: self.admin.get("/v1/devices").status_code == 200,
            90,
            [self.server],
        )

    def devices(self) -> dict[str, dict[str, Any]]:
        return {d["id"]: d for d in self.admin.get("/v1/devices").json()}

    def start_agents(self) -> None:
        enroll = self.admin.post("/v1/enrollment-tokens", json={}).json()["token"]
        for name, (tier, gflops, idle, busy, battery) in AGENTS.items():
            self.ports[name] = free_port()
            args = [
                "agent", "--server", self.url, "--enroll-token", enroll, "--name", name,
                "--tier", tier, "--emulate-gflops", gflops, "--power-idle", idle,
                "--power-busy", busy, "--battery", battery,
                "--listen", f"127.0.0.1:{self.ports[name]}",
                "--state-dir", str(self.tmp / name), "--threads", "1",
                "--heartbeat-interval", str(self.heartbeat_s), "--probe-interval", "1",
            ]  # fmt: skip
            self.agents[name] = self.start(name, args, {}, self.tmp / f"{name}.log")
        wait_until(
            "three agents alive",
            lambda: len(d := self.devices()) == 3 and all(x["alive"] for x in d.values()),
            180,
            self.procs(),
        )

    def deploy(self) -> str:
        """Upload squeezenet (random weights), declare the links, deploy it from the
        camera, wait for the first plan to roll out; the data-plane token."""
        model = randomize(LIGHT / "light_squeezenet.onnx", seed=0)
        created = self.admin.post(
            "/v1/models",
            files={"file": ("squeezenet.onnx", model.SerializeToString())},
            data={"id": "squeezenet"},
        )
        assert created.status_code == 201, created.text
        params_mb = float(created.json()["params_mb"])
        patched = self.admin.patch("/v1/devices/edge", json={"memory_mb": params_mb * 0.5})
        assert patched.status_code == 200, patched.text
        for a, b, mbps, rtt, jpm in LINKS:
            link = self.admin.post(
                "/v1/links", json={"a": a, "b": b, "mbps": mbps, "rtt_ms": rtt, "j_per_mb": jpm}
            )
            assert link.status_code == 201, link.text
        deployed = self.admin.post("/v1/deployments", json={
            "name": DEPLOYMENT, "model": "squeezenet", "source": "cam", "rate_rps": 1.5,
            "slo_ms": 1000,
        })  # fmt: skip
        assert deployed.status_code == 201, deployed.text
        wait_until("the first plan to roll out", self.complete, 180, self.procs())
        token = self.admin.get(f"/v1/deployments/{DEPLOYMENT}/token")
        assert token.status_code == 200, token.text
        return str(token.json()["data_plane_token"])

    def plan(self) -> dict[str, Any]:
        response = self.admin.get("/v1/plan")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def complete(self) -> bool:
        response = self.admin.get("/v1/plan")
        return response.status_code == 200 and bool(response.json()["rollout"]["complete"])

    def segments(self) -> list[dict[str, Any]]:
        (app,) = [a for a in self.plan()["plan"]["apps"] if a["id"] == DEPLOYMENT]
        segments: list[dict[str, Any]] = app["segments"]
        return segments


class Traffic:
    """Requests through the camera's data plane, one at a time."""

    def __init__(self, fleet: Fleet, token: str) -> None:
        self.url = f"http://127.0.0.1:{fleet.ports['cam']}/v1/infer/{DEPLOYMENT}"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-npy"}
        self.rng = np.random.default_rng(0)
        self.client = httpx.Client(timeout=60)

    def send(self) -> httpx.Response | None:
        """One request; None when the connection itself failed."""
        body = npy(self.rng.standard_normal((1, 3, 224, 224)).astype(np.float32))
        try:
            return self.client.post(self.url, content=body, headers=self.headers)
        except httpx.HTTPError:
            return None

    def close(self) -> None:
        self.client.close()
