"""The console in a real browser: Debian's headless Chromium driven by Playwright (never a
browser download), and the demo's fleet to look at, for the browser tests, the
screenshot script and the console benchmark alike.

`npu_fleet` is the demo's NPU camera (cam, 50 GFLOP/s at 2.5 W over idle, an EMULATED
60 Wh battery at 90%) with an edge box and a cloud machine: on a full battery the least
energy is the whole model on the camera; at 41.7% that plan breaks the camera's battery
constraint and the loop re-places (cli/demo.py has the arithmetic).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.harness.emulated import DEMO_AGENTS, DEMO_LINKS, LIGHT, AgentSpec, EmulatedFleet
from tests.harness.processes import Launcher, wait_until

CHROMIUM = os.environ.get("CONTINUUM_CHROMIUM", "/usr/bin/chromium")
NPU_AGENTS = {
    "cam": AgentSpec("device", "emulated:60:90", 50, (1.5, 4.0)),
    "edge": DEMO_AGENTS["edge"],
    "cloud": DEMO_AGENTS["cloud"],
}
DRAINED_PCT = 41.7
DEPLOYMENT = "vision"


class NoBrowser(RuntimeError):
    """Chromium is not installed where the tests look for it."""


def chromium_path() -> str:
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        found = shutil.which("chromium")
        if found is None:
            raise NoBrowser(
                f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium.sh (apt-get install "
                "chromium), or set CONTINUUM_CHROMIUM to a Chromium binary"
            )
        return found
    return CHROMIUM


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser), closed on the way out."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        # --no-sandbox: the tests run as root in a container, where Chromium's sandbox
        # cannot start; the pages are our own.
        launched = pw.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def login(page: Any, url: str, token: str, next_page: str = "fleet") -> None:
    """Log in through the form, as a person does, and land on `next_page`."""
    page.goto(f"{url}/console/{next_page}")
    page.wait_for_url("**/console/login**")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/console/{next_page}")


def npu_fleet(tmp: Path, launcher: Launcher, **env: str) -> EmulatedFleet:
    """The fleet started (`env`: more of the server's settings), squeezenet (random
    weights) deployed from the camera at 4 req/s with a 1 s SLO, its first plan rolled out."""
    from models_registry import randomize

    fleet = EmulatedFleet(tmp, launcher, agents=NPU_AGENTS)
    fleet.env.update(env)
    fleet.start_server()
    fleet.start_agents()
    model = randomize(LIGHT / "light_squeezenet.onnx", seed=0)
    created = fleet.admin.post(
        "/v1/models",
        files={"file": ("squeezenet.onnx", model.SerializeToString())},
        data={"id": "squeezenet"},
    )
    assert created.status_code == 201, created.text
    for a, b, mbps, rtt, jpm in DEMO_LINKS:
        body = {"a": a, "b": b, "mbps": mbps, "rtt_ms": rtt, "j_per_mb": jpm}
        assert fleet.admin.post("/v1/links", json=body).status_code == 201
    deployed = fleet.admin.post("/v1/deployments", json={
        "name": DEPLOYMENT, "model": "squeezenet", "source": "cam", "rate_rps": 4.0,
        "slo_ms": 1000,
    })  # fmt: skip
    assert deployed.status_code == 201, deployed.text
    wait_until("the first plan to roll out", fleet.complete, 180, fleet.procs())
    return fleet


def placement(fleet: EmulatedFleet) -> str:
    """The deployment's placement as the console writes it in `data-placement`."""
    (app,) = [a for a in fleet.plan()["plan"]["apps"] if a["id"] == DEPLOYMENT]
    return "".join(f"{s['first']}..{s['last']}@{s['device']};" for s in app["segments"] or [])


def drain_battery(fleet: EmulatedFleet, pct: float = DRAINED_PCT) -> None:
    """Set the camera's EMULATED battery level through the agent's emulation control."""
    import httpx

    response = httpx.post(
        f"http://127.0.0.1:{fleet.ports['cam']}/v1/emulation",
        json={"battery_pct": pct},
        headers={"Authorization": f"Bearer {fleet.agent_token('cam')}"},
    )
    response.raise_for_status()
