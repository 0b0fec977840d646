"""`continuum fleet ...`, `deploy`, `cordon`, `drain` against a real `continuum server`
process, as an operator runs them (the installed console script), with the server and
token from flags, the environment or a 0600 config file."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.processes import CONTINUUM, ControlPlane, Launcher, clean_env
from tests.onnx_models import small_cnn

ADMIN = "cnt_admin_fleet-cli-" + "f" * 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    tmp = tmp_path_factory.mktemp("fleet-cli")
    launcher = Launcher(env=clean_env())
    env = {"CONTINUUM_DATA_DIR": str(tmp / "cp"), "CONTINUUM_ADMIN_TOKEN": ADMIN,
           "CONTINUUM_HEARTBEAT_INTERVAL_S": "60", "CONTINUUM_SOLVER": "heuristic"}  # fmt: skip
    cp = ControlPlane(launcher, "server", env, tmp / "server.log")
    try:
        cp.wait_ready()
        _seed(cp.url)
        yield cp
    finally:
        launcher.stop_all()


def _seed(url: str) -> None:
    """Two alive devices, a link and the small CNN."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        specs = {
            "cam-1": {"tier": "device", "gflops": 5, "memory_mb": 256,
                      "power_w": {"idle": 1, "busy": 4},
                      "battery": {"capacity_wh": 60, "level_pct": 80, "min_pct": 20}},
            "edge-1": {"tier": "edge", "gflops": 200, "memory_mb": 4096,
                       "power_w": {"idle": 10, "busy": 40}},
        }  # fmt: skip
        for name, spec in specs.items():
            token = c.post("/v1/enrollment-tokens", json={}).json()["token"]
            body = {"token": token, "name": name, "data_plane_url": f"http://{name}:9", **spec}
            agent = c.post("/v1/agents/enroll", json=body).json()
            beat = c.post(f"/v1/agents/{name}/heartbeat", json={"battery_pct": 80},
                          headers={"Authorization": f"Bearer {agent['agent_token']}"})  # fmt: skip
            assert beat.status_code == 200, beat.text
        link = {"a": "cam-1", "b": "edge-1", "mbps": 50, "rtt_ms": 4}
        assert c.post("/v1/links", json=link).status_code == 201
        model = c.post("/v1/models", files={"file": ("cnn.onnx", small_cnn())}, data={"id": "cnn"})
        assert model.status_code == 201, model.text


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CONTINUUM, *args], env=clean_env(HOME="/nonexistent", **(env or {})),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def flags(cp: ControlPlane, token: str = ADMIN) -> list[str]:
    return ["--server", cp.url, "--token", token]


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_devices_and_links_as_tables_and_json(server: ControlPlane) -> None:
    table = run("fleet", "devices", *flags(server))
    assert table.returncode == 0, table.stderr
    assert "cam-1" in table.stdout and "80.0%" in table.stdout and "mains" in table.stdout
    rows = json.loads(run("fleet", "devices", "--json", *flags(server)).stdout)
    assert {d["id"] for d in rows} == {"cam-1", "edge-1"}
    links = run("fleet", "links", *flags(server))
    assert links.returncode == 0 and "cam-1 ~ edge-1" in links.stdout


def test_deploy_a_file_then_see_it_placed_and_its_plan(
    server: ControlPlane, tmp_path: Path
) -> None:
    spec = tmp_path / "vision.yaml"
    spec.write_text("name: vision\nmodel: cnn\nsource: cam-1\nrate_rps: 2\nslo_ms: 500\n")
    made = run("deploy", str(spec), *flags(server))
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("deployment vision created")

    def placed() -> bool:
        rows = json.loads(run("fleet", "deployments", "--json", *flags(server)).stdout)
        return rows[0]["status"] == "placed"

    deadline = time.monotonic() + 60
    while not placed():
        assert time.monotonic() < deadline, "vision was never placed"
        time.sleep(0.5)
    table = run("fleet", "deployments", *flags(server))
    assert "vision" in table.stdout and "placed" in table.stdout and "@" in table.stdout
    plans = json.loads(run("fleet", "plans", "--json", *flags(server)).stdout)
    assert plans[0]["in_force"] and plans[0]["totals"]["energy_w"] > 0
    assert "v1" in run("fleet", "plans", *flags(server)).stdout
    again = run("deploy", str(spec), *flags(server))
    assert "already" in one_error(again, 1)


def test_bad_input_exits_2_with_one_line(server: ControlPlane, tmp_path: Path) -> None:
    assert "cannot read it" in one_error(run("deploy", str(tmp_path / "none.yaml"),
                                             *flags(server)), 2)  # fmt: skip
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert "not YAML" in one_error(run("deploy", str(bad), *flags(server)), 2)
    field = tmp_path / "field.yaml"
    field.write_text("name: x\nmodel: cnn\nsource: cam-1\nrate_rps: -1\n")
    assert "rate_rps" in one_error(run("deploy", str(field), *flags(server)), 2)
    assert "--server" in one_error(
        run("fleet", "devices", "--server", "ftp://x", "--token", "t"), 2
    )
    assert "--token" in one_error(run("fleet", "devices", "--server", server.url), 2)
    refused = run("fleet", "devices", *flags(server, "cnt_key_wrong"))
    assert "refused the token" in one_error(refused, 1)
    gone = run("fleet", "devices", "--server", "http://127.0.0.1:9", "--token", "t")
    assert "cannot reach" in one_error(gone, 1)
    assert "no device 'nope'" in one_error(run("cordon", "nope", *flags(server)), 1)


def test_config_file_must_be_0600(server: ControlPlane, tmp_path: Path) -> None:
    config = tmp_path / "config"
    env = {"CONTINUUM_CONFIG": str(config)}
    saved = run("fleet", "login", *flags(server), env=env)
    assert saved.returncode == 0, saved.stderr
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    listed = run("fleet", "devices", "--json", env=env)  # server and token from the file
    assert listed.returncode == 0, listed.stderr
    os.chmod(config, 0o644)
    assert "chmod 600" in one_error(run("fleet", "devices", env=env), 2)
    os.chmod(config, 0o600)
    config.write_text('server = "x"\nnope = 1\n')
    assert "unknown key 'nope'" in one_error(run("fleet", "devices", env=env), 2)
    # The environment beats the file, and a flag beats the environment.
    env2 = {"CONTINUUM_SERVER": server.url, "CONTINUUM_TOKEN": ADMIN}
    assert run("fleet", "links", env=env2).returncode == 0


def _follow(server: ControlPlane, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CONTINUUM, "fleet", "events", "--json", *extra, *flags(server)],
        env=clean_env(HOME="/nonexistent"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


class _Reader(threading.Thread):
    """A follower's lines as they come; ends when the follower is killed."""

    def __init__(self, follow: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        assert follow.stdout is not None
        self.stdout = follow.stdout
        self.lines: queue.Queue[str] = queue.Queue()
        self.start()

    def run(self) -> None:
        for line in self.stdout:
            self.lines.put(line)

    def kinds_until(self, kind: str, timeout_s: float) -> list[str]:
        kinds: list[str] = []
        deadline = time.monotonic() + timeout_s
        while kind not in kinds and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                kinds.append(json.loads(self.lines.get(timeout=0.5))["type"])
        return kinds


def test_cordon_drain_and_the_event_stream(server: ControlPlane) -> None:
    counted = _follow(server, "--count", "1")
    follow = _follow(server)
    reader = _Reader(follow)
    try:
        time.sleep(1.5)  # the streams are open before the change
        cordoned = run("cordon", "edge-1", *flags(server))
        assert cordoned.returncode == 0, cordoned.stderr
        assert cordoned.stdout.strip() == "device edge-1 cordoned (state cordoned)"
        # The cordon's own event comes, whatever the loop publishes around it (its triggers
        # and rollouts may come first).
        kinds = reader.kinds_until("device", 60)
        assert "device" in kinds, kinds
        # --count: the follower stops by itself after that many events.
        out, err = counted.communicate(timeout=60)
        assert counted.returncode == 0, err
        assert len(out.splitlines()) == 1, out
    finally:
        for proc in (follow, counted):
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        for proc in (follow, counted):
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    drained = run("drain", "edge-1", *flags(server))
    assert drained.stdout.strip() == "device edge-1 draining (state draining)"
    assert run("uncordon", "edge-1", *flags(server)).returncode == 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        viewer = c.post("/v1/api-keys", json={"name": "ro", "role": "viewer"}).json()["token"]
    assert "viewer role" in one_error(run("cordon", "edge-1", *flags(server, viewer)), 1)
