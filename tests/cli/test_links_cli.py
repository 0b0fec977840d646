"""`continuum links proposals|accept|reject` against a real `continuum server` process: an
agent proposes a link to a same-site neighbour over HTTP, an operator decides from the
command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cli.test_fleet_cli import flags, one_error, run
from tests.harness.processes import ControlPlane, Launcher, clean_env

ADMIN = "cnt_admin_fleet-cli-" + "f" * 20  # flags() sends this one


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    tmp = tmp_path_factory.mktemp("links-cli")
    launcher = Launcher(env=clean_env())
    env = {"CONTINUUM_DATA_DIR": str(tmp / "cp"), "CONTINUUM_ADMIN_TOKEN": ADMIN,
           "CONTINUUM_HEARTBEAT_INTERVAL_S": "60", "CONTINUUM_SOLVER": "heuristic"}  # fmt: skip
    cp = ControlPlane(launcher, "server", env, tmp / "server.log")
    try:
        cp.wait_ready()
        yield cp
    finally:
        launcher.stop_all()


def _propose(url: str) -> list[dict[str, Any]]:
    """Three devices of one site; the first proposes a link to each of the others."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        agents = {}
        for name in ("cam-1", "cam-2", "edge-1"):
            token = c.post("/v1/enrollment-tokens", json={}).json()["token"]
            body = {"token": token, "name": name, "data_plane_url": f"http://{name}:9",
                    "tier": "device", "gflops": 5, "memory_mb": 256,
                    "power_w": {"idle": 1, "busy": 4}, "labels": {"site": "lab"}}  # fmt: skip
            agents[name] = c.post("/v1/agents/enroll", json=body).json()["agent_token"]
        made = []
        for peer in ("cam-2", "edge-1"):
            r = c.post("/v1/agents/cam-1/link-proposals",
                       json={"peer": peer, "mbps": 90, "rtt_ms": 2},
                       headers={"Authorization": f"Bearer {agents['cam-1']}"})  # fmt: skip
            assert r.status_code == 200, r.text
            made.append(r.json())
        return made


def test_list_accept_and_reject_proposals(server: ControlPlane) -> None:
    first, second = _propose(server.url)
    table = run("links", "proposals", *flags(server))
    assert table.returncode == 0, table.stderr
    assert "cam-1 ~ edge-1" in table.stdout and "pending" in table.stdout
    rows = json.loads(run("links", "proposals", "--json", *flags(server)).stdout)
    assert [(p["id"], p["state"]) for p in rows] == [(first["id"], "pending"),
                                                     (second["id"], "pending")]  # fmt: skip

    accepted = run("links", "accept", str(second["id"]), *flags(server))
    assert accepted.returncode == 0, accepted.stderr
    assert "cam-1 ~ edge-1 accepted (declared link" in accepted.stdout
    rejected = run("links", "reject", str(first["id"]), *flags(server))
    assert rejected.returncode == 0 and "cam-1 ~ cam-2 rejected" in rejected.stdout
    links = json.loads(run("fleet", "links", "--json", *flags(server)).stdout)
    assert [(d["a"], d["b"]) for d in links["declared"]] == [("cam-1", "edge-1")]

    assert "ID" in one_error(run("links", "accept", "abc", *flags(server)), 2)
    assert "ID" in one_error(run("links", "accept", "0", *flags(server)), 2)
    assert "no link proposal with id 999" in one_error(
        run("links", "accept", "999", *flags(server)), 1
    )
    assert "already accepted" in one_error(
        run("links", "reject", str(second["id"]), *flags(server)), 1
    )
