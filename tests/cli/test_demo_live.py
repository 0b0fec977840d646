"""`continuum demo --json` end to end: real server and agent processes on this machine.

The demo drains cam-1's emulated battery and degrades cam-2's emulated uplink; both must
force a re-placement, and no request may fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_replaces_on_battery_and_link_without_failing() -> None:
    exe = Path(sys.executable).with_name("continuum")
    done = subprocess.run(
        [str(exe), "demo", "--json", "--duration", "3"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["requests"] > 0
    assert summary["failed"] == 0, summary
    reasons = [r["reason"] for r in summary["replacements"]]
    assert any("battery" in r for r in reasons), reasons
    assert any("link" in r for r in reasons), reasons
    assert all(r["reaction_ms"] >= 0 for r in summary["replacements"])
    rows = [(r["reason"], r["reaction_ms"]) for r in summary["replacements"]]
    assert len(rows) == len(set(rows)), "duplicate re-placement rows"
