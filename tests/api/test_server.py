"""`continuum server` as a real process on a real socket, embedded defaults."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.processes import ControlPlane, Launcher, clean_env

SERVER_START_S = 60.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    # Configured by these settings alone, not by the CONTINUUM_ variables of the shell.
    launcher = Launcher(env=clean_env())
    env = {"CONTINUUM_DATA_DIR": str(tmp_path / "data"), "CONTINUUM_SOLVER": "ilp"}
    try:
        plane = ControlPlane(launcher, "server", env, tmp_path / "server.log",
                             args=["--log-level", "warning"])  # fmt: skip
        yield plane.wait_ready(SERVER_START_S).url, tmp_path / "data"
    finally:
        launcher.stop_all()


def test_server_process_embedded(server: tuple[str, Path]) -> None:
    url, data_dir = server
    token_file = data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    admin = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    assert (data_dir / "continuum.db").is_file()
    with httpx.Client(base_url=url, headers=admin, timeout=30) as client:
        assert client.get("/v1/devices").json() == []
        with client.stream("GET", "/v1/events") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines) == ": connected"
            token = client.post("/v1/enrollment-tokens", json={}).json()["token"]
            enrolled = client.post(
                "/v1/agents/enroll",
                json={
                    "token": token, "name": "gw-1", "tier": "edge", "gflops": 50,
                    "memory_mb": 1024, "power_w": {"idle": 5, "busy": 20},
                    "data_plane_url": "http://gw-1:9000",
                },
            )  # fmt: skip
            assert enrolled.status_code == 201
            event: list[str] = []
            while not event or not event[-1].startswith("data: "):
                line = next(lines)
                if line:
                    event.append(line)
        assert event[-2] == "event: device"
        assert json.loads(event[-1].removeprefix("data: "))["device_id"] == "gw-1"
        assert client.get("/v1/agents/gw-1/desired-state").status_code == 401
        unauthorized = httpx.get(f"{url}/v1/devices")
        assert unauthorized.status_code == 401
        assert unauthorized.headers["content-type"] == "application/problem+json"
