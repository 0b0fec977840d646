"""Control-plane restarts as the agents see them (issue 18, "Restart gaps").

- A restart (SIGTERM, then the same data directory again): every agent keeps the
  partitions and sources it served, and live traffic through the camera sees no 404 (a
  restarted control plane used to count the agents still backing off towards it as lost
  and re-plan their deployment away).
- SIGTERM with agents' long polls and an operator's event stream open: the long polls are
  answered, the stream ends cleanly, and the process exits (it used to wait out every
  long poll, and an event stream held it forever). How long it takes is printed, not
  asserted (bench/RESULTS.md has the figure)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness.emulated import ADMIN_TOKEN, EmulatedFleet
from tests.harness.faults import Baseline, Recorder, assert_nothing_lost
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow

# A device counts as lost after 3 silent intervals. At 0.5 s (the harness's default) a
# machine loaded past 20 on its 2 cores delayed heartbeats by 1.5 s and more with no fault
# at all; what these tests look for is a loss the fault causes.
HEARTBEAT_S = 1.0


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(tmp_path, processes, heartbeat_s=HEARTBEAT_S)
    yield made
    made.close()


def test_agents_keep_their_desired_state_across_a_restart(fleet: EmulatedFleet) -> None:
    fleet.start_server()
    fleet.start_agents()
    token = fleet.deploy()
    baseline = Baseline.of(fleet)
    recorder = Recorder(fleet, token).start()
    try:
        wait_until("traffic to flow", lambda: recorder.served() >= 5, 60, fleet.procs())
        fleet.server.stop()  # SIGTERM
        fleet.start_server()  # same data directory and port
        wait_until(
            "every agent to report again",
            lambda: all(d["alive"] for d in fleet.devices().values()),
            120,
            fleet.procs(),
        )
        back = time.monotonic()
        # Past the restarted control plane's grace for devices on their way back.
        wait_until("traffic after the restart", lambda: recorder.served(back) >= 20, 120,
                   fleet.procs())  # fmt: skip
    finally:
        recorder.stop()
    assert_nothing_lost(fleet, recorder, baseline)


def test_sigterm_answers_long_polls_and_ends_event_streams(fleet: EmulatedFleet) -> None:
    fleet.env["CONTINUUM_LONG_POLL_MAX_S"] = "30"
    fleet.start_server()
    fleet.start_agents()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    stream: dict[str, object] = {}

    def watch_events() -> None:
        try:
            with httpx.stream("GET", f"{fleet.url}/v1/events", headers=headers,
                              timeout=httpx.Timeout(10, read=120)) as response:  # fmt: skip
                stream["status"] = response.status_code
                stream["lines"] = sum(1 for _ in response.iter_lines())
                stream["ended"] = True
        except httpx.HTTPError as exc:
            stream["error"] = repr(exc)

    watcher = threading.Thread(target=watch_events, daemon=True)
    watcher.start()
    wait_until("the event stream to open", lambda: "status" in stream, 30, fleet.procs())
    popen = fleet.server.popen
    assert popen is not None
    start = time.monotonic()
    popen.send_signal(signal.SIGTERM)
    # A hang guard, not a speed target: before the fix an open event stream kept the
    # server up forever.
    code = popen.wait(timeout=60)
    took = time.monotonic() - start
    watcher.join(timeout=30)
    print(f"SIGTERM to exit: {took:.2f} s")
    # uvicorn re-raises the signal once shut down: the exit is by SIGTERM, not a crash.
    assert code in (0, -signal.SIGTERM), fleet.server.tail()
    assert stream.get("ended") is True, stream
    assert stream.get("status") == 200
    log = fleet.server.log.read_text(errors="replace")
    assert "Application shutdown complete" in log, fleet.server.tail()
    assert "Traceback" not in log, fleet.server.tail(60)
