"""How long `continuum server` takes to exit on SIGTERM: `python bench/shutdown.py`.

A control plane with the demo's three agents (emulation mode) long-polling their desired
state (`CONTINUUM_LONG_POLL_MAX_S=30`, the default) and, with `--events`, an operator's
`/v1/events` stream open. Prints the seconds from SIGTERM to the process's exit, for
`--runs` runs; a run that has not exited after `--give-up` seconds is SIGKILLed and
printed as such.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from machine import cpu_model  # noqa: E402

from tests.harness.emulated import ADMIN_TOKEN, EmulatedFleet  # noqa: E402
from tests.harness.processes import Launcher  # noqa: E402


def one(events: bool, give_up_s: float) -> float | None:
    tmp = Path(tempfile.mkdtemp(prefix="continuum-shutdown-"))
    launcher = Launcher()
    fleet = EmulatedFleet(tmp, launcher)
    fleet.env["CONTINUUM_LONG_POLL_MAX_S"] = "30"
    try:
        fleet.start_server()
        fleet.start_agents()
        if events:

            def watch() -> None:
                headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                try:
                    with httpx.stream("GET", f"{fleet.url}/v1/events", headers=headers,
                                      timeout=None) as response:  # fmt: skip
                        for _ in response.iter_lines():
                            pass
                except httpx.HTTPError:
                    pass

            threading.Thread(target=watch, daemon=True).start()
        time.sleep(3)  # every agent is in a long poll now
        popen = fleet.server.popen
        assert popen is not None
        start = time.monotonic()
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=give_up_s)
        except subprocess.TimeoutExpired:
            fleet.server.kill()
            return None
        return time.monotonic() - start
    finally:
        fleet.close()
        launcher.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", action="store_true", help="an event stream open too")
    parser.add_argument("--give-up", type=float, default=60.0)
    args = parser.parse_args()
    if args.runs < 1 or args.give_up <= 0:
        parser.error("--runs must be at least 1 and --give-up positive")
    print(f"machine: {cpu_model()}; long polls of 30 s open"
          f"{', and an event stream' if args.events else ''}")  # fmt: skip
    took = []
    for k in range(args.runs):
        seconds = one(args.events, args.give_up)
        shown = (
            f"{seconds:.2f} s" if seconds is not None else f"not exited after {args.give_up:g} s"
        )
        print(f"run {k + 1}: SIGTERM to exit {shown}", flush=True)
        if seconds is not None:
            took.append(seconds)
    if took:
        print(f"median {statistics.median(took):.2f} s, max {max(took):.2f} s "
              f"over {len(took)} exited run(s)")  # fmt: skip


if __name__ == "__main__":
    main()
