"""The console as a person uses it, in Debian's headless Chromium (Playwright pointed at
/usr/bin/chromium, no browser download): log in, see the demo's fleet, watch a
re-placement appear live after the camera's EMULATED battery drains (no reload), and a
viewer who cannot cordon. Real processes throughout: `continuum server` and three
`continuum agent`s in emulation mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.console import (
    DEPLOYMENT,
    drain_battery,
    login,
    npu_fleet,
    placement,
)
from tests.harness.emulated import ADMIN_TOKEN, EmulatedFleet
from tests.harness.processes import Launcher

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedFleet]:
    launcher = Launcher()
    try:
        made = npu_fleet(tmp_path_factory.mktemp("console-browser"), launcher)
        yield made
        made.close()
    finally:
        launcher.stop_all()


def test_log_in_and_see_the_demo_fleet(fleet: EmulatedFleet, chromium: Any) -> None:
    page = chromium.new_page()
    page.goto(f"{fleet.url}/console/fleet")
    page.wait_for_url("**/console/login?next=/console/fleet")
    page.fill("#token", "cnt_key_not-a-token")
    page.click("button[type=submit]")
    assert "token: unknown or revoked operator token" in page.inner_text("p.error")
    login(page, fleet.url, ADMIN_TOKEN)
    for device in ("cam", "edge", "cloud"):
        assert page.locator(f"tr[data-device={device}]").count() == 1
    # 90% at start, 41.7% once the other test drained it (the order is random).
    battery = page.inner_text("tr[data-device=cam] td.battery")
    assert battery.startswith(("90.0%", "41.7%")), battery
    # The event stream opens after the page loads (EventSource's onopen): wait for it, as
    # the next test does; read at once, it was still "connecting…" now and then.
    page.wait_for_function("document.getElementById('live-status').textContent === 'live'")
    assert page.inner_text("#live-status") == "live"  # the event stream is open
    page.goto(f"{fleet.url}/console/topology")
    assert page.locator("svg.topology .node").count() == 3
    page.close()


def test_a_replacement_appears_live_after_the_battery_drains(
    fleet: EmulatedFleet, chromium: Any
) -> None:
    page = chromium.new_page()
    login(page, fleet.url, ADMIN_TOKEN, "deployments")
    page.wait_for_function("document.getElementById('live-status').textContent === 'live'")
    row = f"tr[data-deployment={DEPLOYMENT}]"
    before = page.get_attribute(row, "data-placement")
    assert before == placement(fleet) and before.count("@cam") == 1  # the whole model on cam
    page.evaluate("window.loadedOnce = true")  # gone if the page were reloaded
    drain_battery(fleet)
    page.wait_for_function(
        f"document.querySelector('{row}').dataset.placement !== {before!r}", timeout=60_000
    )
    after = page.get_attribute(row, "data-placement")
    assert page.evaluate("window.loadedOnce") is True  # swapped in place, not reloaded
    assert after != before and ("@edge" in after or "@cloud" in after)
    # What the page shows is what the control plane put in force.
    fleet_now = placement(fleet)
    assert after == fleet_now, (after, fleet_now)
    assert page.evaluate("window.continuumConsole.swaps") >= 1
    page.close()


def test_a_viewer_cannot_cordon(fleet: EmulatedFleet, chromium: Any, tmp_path: Path) -> None:
    made = fleet.admin.post("/v1/api-keys", json={"name": "wall-screen", "role": "viewer"})
    assert made.status_code == 201, made.text
    page = chromium.new_page()
    login(page, fleet.url, made.json()["token"])
    assert page.locator("tr[data-device=cam]").count() == 1
    assert page.locator("button[data-action=cordon]").count() == 0
    assert "Read-only" in page.inner_text("main")
    # Even a crafted form post, with the session's own CSRF token, is refused.
    status = page.evaluate(
        """async () => {
            const csrf = document.querySelector('input[name=csrf]').value;
            const r = await fetch('/console/devices/cam/cordon', {method: 'POST',
                body: new URLSearchParams({csrf}), redirect: 'manual'});
            return [r.status, await r.text()];
        }"""
    )
    assert status[0] == 403 and "viewer role" in status[1]
    assert fleet.devices()["cam"]["state"] == "active"
    page.close()
