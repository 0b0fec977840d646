"""A small fleet of real `continuum agent` processes in EMULATION mode (compute speed,
power and battery emulated; HTTP, ONNX Runtime and the data plane real) around a real
`continuum server`.

The default agents are the demo's CPU camera (cam-2), an edge box and a cloud machine:
sending early is the camera's least energy, the edge box is cheaper per MB towards the
cloud than the camera is, and `deploy()` caps the edge's memory at half the model's
weights, so the first plan splits the model across all three (camera -> edge -> cloud).
Without the edge, camera -> cloud is still feasible (the direct uplink carries the
traffic well within the SLO)."""

from __future__ import annotations

import io
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx

from models_registry import randomize
from tests.harness.ports import free_port
from tests.harness.processes import Launcher, Proc, wait_until
from tests.harness.tls import Certs

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
ADMIN_TOKEN = "cnt_admin_test_" + "x" * 24
HEARTBEAT_S = 0.5
DEPLOYMENT = "vision"


@dataclass(frozen=True)
class AgentSpec:
    """How one agent is started: its tier, its battery (`none` or
    `emulated:WH:LEVEL_PCT`) and, when given, its emulated speed and power draw (else the
    agent's own discovery)."""

    tier: str
    battery: str
    gflops: float | None = None
    power_w: tuple[float, float] | None = None  # (idle, busy)
    labels: str | None = None  # k=v,k2=v2 (e.g. site=lab: neighbour discovery)

    def args(self) -> list[str]:
        out = ["--tier", self.tier, "--battery", self.battery]
        if self.labels is not None:
            out += ["--labels", self.labels]
        if self.gflops is not None:
            out += ["--emulate-gflops", f"{self.gflops:g}"]
        if self.power_w is not None:
            out += ["--power-idle", f"{self.power_w[0]:g}", "--power-busy", f"{self.power_w[1]:g}"]
        return out


# The demo's CPU camera, an edge box and a cloud machine. The camera's 60 Wh at 52.5% leaves
# a plan, after its 2 W idle draw (scenario-v1), the 0.44 W that 5 Wh at 90% left before.
DEMO_AGENTS = {
    "cam": AgentSpec("device", "emulated:60:52.5", 10, (2, 6)),
    "edge": AgentSpec("edge", "none", 400, (10, 35)),
    "cloud": AgentSpec("cloud", "none", 4000, (80, 300)),
}
# (a, b, Mbit/s, RTT ms, J per MB)
DEMO_LINKS = [("cam", "edge", 50, 4, 0.4), ("edge", "cloud", 200, 15, 0.05),
              ("cam", "cloud", 20, 40, 0.8)]  # fmt: skip


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class EmulatedFleet:
    """A control plane (`start_server`, again after a kill: `servers` keeps each) and
    the agents of `agents` (`start_agents`), all on free ports of 127.0.0.1 with their
    state under `tmp`, started by `launcher`; `admin` is an operator's client."""

    def __init__(
        self, tmp: Path, launcher: Launcher, heartbeat_s: float = HEARTBEAT_S,
        agents: dict[str, AgentSpec] | None = None, probe_interval_s: float | None = 1.0,
        certs: Certs | None = None, agent_args: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """`probe_interval_s`: how often each agent probes its links (None: the agent's
        default). `certs`: the server and every agent's data plane speak HTTPS only, with
        that certificate, and everyone trusts its CA (and only it). `agent_args`: given to
        every agent besides its own."""
        self.certs = certs
        self.scheme = "http" if certs is None else "https"
        # What a client of this fleet passes to httpx as `verify`.
        self.verify: ssl.SSLContext | bool = (
            True if certs is None else ssl.create_default_context(cafile=str(certs.ca))
        )
        self.tmp = tmp
        self.probe_interval_s = probe_interval_s
        self.agent_args = agent_args  # given to every agent (e.g. --unused-probe-interval)
        self.heartbeat_s = heartbeat_s
        self.launcher = launcher
        self.specs = dict(DEMO_AGENTS if agents is None else agents)
        self.port = free_port()
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
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
        if certs is not None:
            self.env |= {"CONTINUUM_TLS_CERT": str(certs.cert), "CONTINUUM_TLS_KEY": str(certs.key)}
        self.servers: list[Proc] = []
        self.agents: dict[str, Proc] = {}
        self.ports: dict[str, int] = {}
        self.admin = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=60,
            verify=self.verify,
        )

    def close(self) -> None:
        self.admin.close()

    @property
    def server(self) -> Proc:
        return self.servers[-1]

    def procs(self) -> list[Proc]:
        """The current server and every agent still running: what a wait watches."""
        return [self.server, *(p for p in self.agents.values() if p.running())]

    def start_server(self) -> None:
        n = len(self.servers)
        self.servers.append(self.launcher.start(f"server-{n}", ["server"], self.env,
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
        """Every agent enrolled with one token; returns once all are alive."""
        enroll = self.admin.post("/v1/enrollment-tokens", json={}).json()["token"]
        for name, spec in self.specs.items():
            self.ports[name] = free_port()
            args = [
                "agent", "--server", self.url, "--enroll-token", enroll, "--name", name,
                *spec.args(), "--listen", f"127.0.0.1:{self.ports[name]}",
                "--state-dir", str(self.tmp / name), "--threads", "1",
                "--heartbeat-interval", str(self.heartbeat_s),
            ]  # fmt: skip
            if self.probe_interval_s is not None:
                args += ["--probe-interval", f"{self.probe_interval_s:g}"]
            args += self.agent_args
            if self.certs is not None:
                args += ["--tls-cert", str(self.certs.cert), "--tls-key", str(self.certs.key),
                         "--ca-file", str(self.certs.ca)]  # fmt: skip
            self.agents[name] = self.launcher.start(name, args, {}, self.tmp / f"{name}.log")
        count = len(self.specs)
        wait_until(
            f"{count} agents alive",
            lambda: len(d := self.devices()) == count and all(x["alive"] for x in d.values()),
            180,
            self.procs(),
        )

    def agent_url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.ports[name]}"

    def agent_token(self, name: str) -> str:
        """The agent's own token, from its credential file: what opens its status page."""
        saved = json.loads((self.tmp / name / "credentials.json").read_text(encoding="utf-8"))
        return str(saved["agent_token"])

    def status(self, name: str) -> dict[str, Any]:
        """An agent's own `/v1/status`."""
        response = httpx.get(
            f"{self.agent_url(name)}/v1/status", timeout=10, verify=self.verify,
            headers={"Authorization": f"Bearer {self.agent_token(name)}"},
        )  # fmt: skip
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def deploy(self, **extra: Any) -> str:
        """Upload squeezenet (random weights), declare the demo's links, cap the edge's
        memory, deploy it from the camera (with `extra` deployment fields), wait for the
        first plan to roll out; the data-plane token. For the default agents."""
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
        for a, b, mbps, rtt, jpm in DEMO_LINKS:
            link = self.admin.post(
                "/v1/links", json={"a": a, "b": b, "mbps": mbps, "rtt_ms": rtt, "j_per_mb": jpm}
            )
            assert link.status_code == 201, link.text
        deployed = self.admin.post("/v1/deployments", json={
            "name": DEPLOYMENT, "model": "squeezenet", "source": "cam", "rate_rps": 1.5,
            "slo_ms": 1000, **extra,
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

    def segments(self, deployment: str = DEPLOYMENT) -> list[dict[str, Any]]:
        (app,) = [a for a in self.plan()["plan"]["apps"] if a["id"] == deployment]
        segments: list[dict[str, Any]] = app["segments"]
        return segments


class Traffic:
    """Requests through the camera's data plane, one at a time."""

    def __init__(self, fleet: EmulatedFleet, token: str, source: str = "cam") -> None:
        self.url = f"{fleet.agent_url(source)}/v1/infer/{DEPLOYMENT}"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-npy"}
        self.rng = np.random.default_rng(0)
        self.client = httpx.Client(timeout=60, verify=fleet.verify)

    def send(self) -> httpx.Response | None:
        """One request; None when the connection itself failed."""
        body = npy(self.rng.standard_normal((1, 3, 224, 224)).astype(np.float32))
        try:
            return self.client.post(self.url, content=body, headers=self.headers)
        except httpx.HTTPError:
            return None

    def close(self) -> None:
        self.client.close()
