"""An edge site cut off from the control plane by a network partition (issue 18,
"Faults"): it keeps serving, and reconverges when the partition heals.

Real network, root only (`tests/harness/netns.py`): the camera and the edge box each run
in their own network namespace; the control plane runs in the root namespace. The first
plan splits the model camera -> edge. The partition is a blackhole route in both agents'
namespaces towards the control plane's address: their heartbeats, long polls and probes
to it vanish (connections time out, as across a failed WAN link) while the camera and
the edge box still reach each other. Traffic comes from a second address of the root
namespace, a client on the site's side of the cut.

What must hold: during the partition every request through the camera is served (the
agents keep what they run: nothing is unloaded because the control plane is
unreachable); the control plane counts the site lost meanwhile; once healed, both agents
report again, they run the desired-state revision the control plane hands out, a
rollout after the heal completes (a cordon, as an operator would), and traffic still
flows."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from models_registry import randomize
from tests.harness import netns
from tests.harness.emulated import ADMIN_TOKEN, LIGHT, npy
from tests.harness.fixtures import need_netns
from tests.harness.ports import free_port
from tests.harness.processes import Launcher, Proc, wait_until

pytestmark = pytest.mark.slow

DEPLOYMENT = "vision"
HEARTBEAT_S = 0.5
DATA_PLANE_PORT = 7070
AGENTS = {
    "cam": ("device", "10", "2", "6", "emulated:60:52.5"),
    "edge": ("edge", "400", "10", "35", "none"),
}
PARTITION_S = 12.0  # well past the 1.5 s after which a silent device counts as lost


class Site:
    def __init__(self, net: netns.Net, tmp: Path) -> None:
        self.net, self.tmp = net, tmp
        self.launcher = Launcher()
        self.admin: httpx.Client | None = None

    def start(self, member: str, name: str, args: list[str], env: dict[str, str]) -> Proc:
        return self.launcher.start(name, args, env, self.tmp / f"{name}.log",
                                   prefix=self.net.exec_prefix(member))  # fmt: skip

    def alive(self) -> list[Proc]:
        return [p for p in self.launcher.started if p.running()]


def _agent_token(state_dir: Path) -> str:
    """The agent's own token (its credentials.json): what opens its status page."""
    saved = json.loads((state_dir / "credentials.json").read_text(encoding="utf-8"))
    return str(saved["agent_token"])


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    need_netns()
    net = netns.Net()
    made = Site(net, tmp_path)
    try:
        net.add(netns.ROOT)
        for name in AGENTS:
            net.add(name)
        yield made
    finally:
        if made.admin is not None:
            made.admin.close()
        made.launcher.stop_all()
        net.close()


class Traffic(threading.Thread):
    """Requests through the camera from `source` (an address of the root namespace),
    one after another; `log` keeps (phase, status or error) for each."""

    def __init__(self, url: str, token: str, source: str) -> None:
        super().__init__(name="partition-traffic", daemon=True)
        self.url, self.source = url, source
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-npy"}
        self.stop = threading.Event()
        self.phase = "before"
        self.log: list[tuple[str, str]] = []

    def run(self) -> None:
        rng = np.random.default_rng(0)
        transport = httpx.HTTPTransport(local_address=self.source)
        with httpx.Client(timeout=30, transport=transport) as client:
            while not self.stop.is_set():
                body = npy(rng.standard_normal((1, 3, 224, 224)).astype(np.float32))
                phase = self.phase
                try:
                    response = client.post(self.url, content=body, headers=self.headers)
                    outcome = "200" if response.status_code == 200 else (
                        f"{response.status_code}: {response.text[:200]}")  # fmt: skip
                except httpx.HTTPError as exc:
                    outcome = f"{type(exc).__name__}: {exc}"
                self.log.append((phase, outcome))
                self.stop.wait(0.1)

    def served(self, phase: str) -> int:
        return sum(1 for p, o in self.log if p == phase and o == "200")

    def failed(self) -> list[tuple[str, str]]:
        return [(p, o) for p, o in self.log if o != "200"]


def test_a_partitioned_site_keeps_serving_and_reconverges(site: Site) -> None:
    net = site.net
    root = net.addresses[netns.ROOT]
    client_address = net.second_address(netns.ROOT)
    port = free_port()
    server_url = f"http://{root}:{port}"
    site.start(netns.ROOT, "server", ["server"], {
        "CONTINUUM_DATA_DIR": str(site.tmp / "cp"), "CONTINUUM_ADMIN_TOKEN": ADMIN_TOKEN,
        "CONTINUUM_HOST": root, "CONTINUUM_PORT": str(port), "CONTINUUM_SOLVER": "ilp",
        "CONTINUUM_LONG_POLL_MAX_S": "5", "CONTINUUM_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S),
        "CONTINUUM_ROLLOUT_TIMEOUT_S": "30",
    })  # fmt: skip
    admin = site.admin = httpx.Client(
        base_url=server_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
    )
    wait_until("the control plane", lambda: admin.get("/v1/devices").is_success, 90,
               site.alive())  # fmt: skip
    enroll = admin.post("/v1/enrollment-tokens", json={}).json()["token"]
    for name, (tier, gflops, idle, busy, battery) in AGENTS.items():
        site.start(name, name, [
            "agent", "--server", server_url, "--enroll-token", enroll, "--name", name,
            "--tier", tier, "--emulate-gflops", gflops, "--power-idle", idle,
            "--power-busy", busy, "--battery", battery,
            "--listen", f"{net.addresses[name]}:{DATA_PLANE_PORT}",
            "--state-dir", str(site.tmp / name), "--threads", "1",
            "--heartbeat-interval", str(HEARTBEAT_S), "--probe-interval", "2",
        ], {})  # fmt: skip

    def devices() -> dict[str, dict[str, object]]:
        return {d["id"]: d for d in admin.get("/v1/devices").json()}

    def all_alive() -> bool:
        found = devices()
        return len(found) == len(AGENTS) and all(d["alive"] for d in found.values())

    wait_until("both agents alive", all_alive, 120, site.alive())
    model = randomize(LIGHT / "light_squeezenet.onnx", seed=0)
    created = admin.post("/v1/models", data={"id": "squeezenet"},
                         files={"file": ("m.onnx", model.SerializeToString())})  # fmt: skip
    assert created.status_code == 201, created.text
    link = admin.post("/v1/links", json={"a": "cam", "b": "edge", "mbps": 50, "rtt_ms": 1,
                                         "j_per_mb": 0.4})  # fmt: skip
    assert link.status_code == 201, link.text
    deployed = admin.post("/v1/deployments", json={
        "name": DEPLOYMENT, "model": "squeezenet", "source": "cam", "rate_rps": 1.5,
        "slo_ms": 500,
    })  # fmt: skip
    assert deployed.status_code == 201, deployed.text
    token = str(deployed.json()["data_plane_token"])

    def plan() -> dict[str, object]:
        response = admin.get("/v1/plan")
        response.raise_for_status()
        body: dict[str, object] = response.json()
        return body

    wait_until("the first plan to roll out", lambda: bool(plan()["rollout"]["complete"]),  # type: ignore[index]
               120, site.alive())  # fmt: skip
    (app,) = plan()["plan"]["apps"]  # type: ignore[index]
    assert {s["device"] for s in app["segments"]} == {"cam", "edge"}, app

    url = f"http://{net.addresses['cam']}:{DATA_PLANE_PORT}/v1/infer/{DEPLOYMENT}"
    traffic = Traffic(url, token, client_address)
    traffic.start()
    try:
        wait_until("traffic before the cut", lambda: traffic.served("before") >= 5, 60,
                   site.alive())  # fmt: skip
        net.partition(list(AGENTS), root)
        traffic.phase = "partitioned"
        wait_until("the control plane to count the site lost",
                   lambda: not any(d["alive"] for d in devices().values()), 60,
                   site.alive())  # fmt: skip
        wait_until(f"{PARTITION_S:g} s of traffic across the cut",
                   lambda: traffic.served("partitioned") >= 20, 120, site.alive())  # fmt: skip
        net.partition(list(AGENTS), root, heal=True)
        traffic.phase = "healed"
        wait_until("both agents back", all_alive, 120, site.alive())

        def converged() -> bool:
            current = plan()
            revision = int(current["revision"])  # type: ignore[call-overload]
            held = [
                httpx.get(
                    f"http://{net.addresses[n]}:{DATA_PLANE_PORT}/v1/status", timeout=10,
                    headers={"Authorization": f"Bearer {_agent_token(site.tmp / n)}"},
                ).json()
                for n in AGENTS
            ]  # fmt: skip
            return bool(current["rollout"]["complete"]) and all(  # type: ignore[index]
                int(h["desired_version"]) == revision for h in held
            )

        wait_until("the agents to run the revision handed out", converged, 120, site.alive())
        # The loop acts on the site again: a cordon of the edge box rolls out.
        before = int(plan()["version"])  # type: ignore[call-overload]
        assert admin.post("/v1/devices/edge/cordon").status_code == 200

        def moved() -> bool:
            current = plan()
            apps = current["plan"]["apps"]  # type: ignore[index]
            return (
                int(current["version"]) > before  # type: ignore[call-overload]
                and bool(current["rollout"]["complete"])  # type: ignore[index]
                and all(s["device"] == "cam" for a in apps for s in a["segments"])
            )

        wait_until("a rollout after the heal", moved, 180, site.alive())
        healed_at = traffic.served("healed")
        wait_until("traffic after the heal", lambda: traffic.served("healed") >= healed_at + 5,
                   60, site.alive())  # fmt: skip
    finally:
        traffic.stop.set()
        traffic.join(timeout=60)
    assert traffic.served("partitioned") >= 20
    assert traffic.failed() == [], traffic.failed()[:5]
    entries = admin.get("/v1/audit", params={"limit": 1000}).json()
    lost = {e["target"] for e in entries if e["action"] == "trigger.device-lost"}
    assert lost == {"cam", "edge"}, lost  # the control plane did see the cut
