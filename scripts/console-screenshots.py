#!/usr/bin/env python3
"""Screenshots of every console page for docs/console.md: `.venv/bin/python
scripts/console-screenshots.py` (needs Debian's chromium: scripts/ensure-chromium.sh).

Starts the demo's EMULATED fleet (tests/harness/console.py: a control plane and three
agent processes), logs in, waits for a few chart samples, shoots each page, then drains
the camera's emulated battery and shoots the re-placement (deployments, and the plan diff
of the two versions). Writes docs/img/console-*.png; stops everything it started.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.console import (  # noqa: E402
    DEPLOYMENT,
    browser,
    drain_battery,
    login,
    npu_fleet,
    placement,
)
from tests.harness.emulated import ADMIN_TOKEN  # noqa: E402
from tests.harness.processes import Launcher, wait_until  # noqa: E402

OUT = ROOT / "docs" / "img"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    launcher = Launcher()
    with tempfile.TemporaryDirectory(prefix="continuum-shots-") as tmp:
        try:
            fleet = npu_fleet(Path(tmp), launcher, CONTINUUM_CONSOLE_SAMPLE_INTERVAL_S="2")
            with browser() as chromium:
                page = chromium.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{fleet.url}/console/fleet")
                page.wait_for_url("**/console/login**")
                page.screenshot(path=str(OUT / "console-login.png"))
                login(page, fleet.url, ADMIN_TOKEN)
                time.sleep(8)  # a few chart points before the drain
                before = placement(fleet)
                first = int(fleet.plan()["version"])
                drain_battery(fleet)
                wait_until("the re-placement", lambda: placement(fleet) != before, 90,
                           fleet.procs())  # fmt: skip
                wait_until("its rollout", fleet.complete, 90, fleet.procs())
                time.sleep(6)  # the charts show the drain
                latest = int(fleet.plan()["version"])
                shots = {
                    "fleet": "/console/fleet",
                    "topology": "/console/topology",
                    "deployments": "/console/deployments",
                    "plans": f"/console/plans?a={first}&b={latest}",
                    "charts": "/console/charts?hours=0.5",
                    "models": "/console/models",
                }
                for name, path in shots.items():
                    page.goto(f"{fleet.url}{path}", wait_until="load")
                    page.wait_for_function(
                        "document.getElementById('live-status').textContent === 'live'"
                    )
                    page.screenshot(path=str(OUT / f"console-{name}.png"), full_page=True)
                    print(f"docs/img/console-{name}.png")
                print(f"{DEPLOYMENT}: plan v{first} ({before}) -> v{latest}")
            fleet.close()
        finally:
            launcher.stop_all()


if __name__ == "__main__":
    main()
