"""TLS end to end, with a certificate made at test time (openssl) and real processes: the
control plane serves HTTPS only, agents enroll, heartbeat and fetch artifacts over it
trusting only the test CA (--ca-file), serve their data planes over HTTPS, and tensors go
camera -> edge -> cloud over HTTPS next hops. Bad TLS options are one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.emulated import EmulatedFleet, Traffic
from tests.harness.processes import Launcher
from tests.harness.tls import Certs, make_certs

pytestmark = pytest.mark.slow

CONTINUUM = Path(sys.executable).with_name("continuum")


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher, certs: Certs) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(tmp_path, processes, certs=certs)
    yield made
    made.close()


def test_a_fleet_runs_over_https_end_to_end(fleet: EmulatedFleet, certs: Certs) -> None:
    fleet.start_server()
    assert fleet.url.startswith("https://")
    # Plain HTTP to the TLS port gets no answer; an untrusting client refuses the cert.
    with pytest.raises(httpx.HTTPError):
        httpx.get(fleet.url.replace("https://", "http://") + "/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{fleet.url}/healthz", timeout=5)
    fleet.start_agents()  # enrollment and heartbeats over HTTPS, trusting the test CA
    devices = fleet.devices()
    assert {d["data_plane_url"].split(":")[0] for d in devices.values()} == {"https"}

    token = fleet.deploy()  # artifacts downloaded over HTTPS
    assert {s["device"] for s in fleet.segments()} == {"cam", "edge", "cloud"}
    traffic = Traffic(fleet, token)
    try:
        for _ in range(3):
            response = traffic.send()
            assert response is not None and response.status_code == 200, response
            trace = json.loads(response.headers["X-Continuum-Trace"])
            assert [h["device"] for h in trace] == ["cam", "edge", "cloud"]
    finally:
        traffic.close()
    for name in ("cam", "edge"):
        assert httpx.get(f"{fleet.agent_url(name)}/readyz", verify=fleet.verify).status_code == 200
        assert fleet.status(name)["control_plane"]["reachable"] is True


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
    return subprocess.run(
        [str(CONTINUUM), *args], env={**base, **(env or {})}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_bad_tls_options_are_one_line_errors(certs: Certs, tmp_path: Path) -> None:
    data = {"CONTINUUM_DATA_DIR": str(tmp_path / "data")}
    alone = _one_line_error(_run("server", "--tls-cert", str(certs.cert), env=data))
    assert "--tls-cert and --tls-key" in alone
    swapped = _run("server", "--tls-cert", str(certs.ca), "--tls-key", str(certs.key), env=data)
    assert "--tls-cert" in _one_line_error(swapped)
    missing = _run("server", "--tls-cert", str(tmp_path / "nope.pem"), "--tls-key",
                   str(certs.key), env=data)  # fmt: skip
    assert "No such file" in _one_line_error(missing)
    agent = _run("agent", "--tls-key", str(certs.key), "--state-dir", str(tmp_path / "a"))
    assert "--tls-cert and --tls-key" in _one_line_error(agent)
    ca = _run("agent", "--ca-file", str(tmp_path / "nope.pem"), "--state-dir", str(tmp_path / "a"))
    assert "--ca-file" in _one_line_error(ca)
