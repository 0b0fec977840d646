"""A soak: `python bench/soak.py [--duration 3600] [--agents 1000]`.

The demo fleet (a real control plane, three real agents in emulation mode, squeezenet split
camera -> edge -> cloud) serves live traffic through the camera, one request at a time,
while N simulated agents (tests/harness/simulated.py: heartbeats and desired-state long
polls over the lean client) load the same control plane, for `--duration` seconds. Every
`--sample` seconds it prints the control plane's and the agents' resident memory, requests
served and failed, and the simulated agents' failed heartbeats; at the end, whether the
control plane's memory stayed flat (within 10% of its first sample after the warm-up),
the errors, and the lost requests (a request through a healthy path that got no 200).

Everything runs on this machine (the load shares its cores with the server): a lower
bound of what the server alone does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from machine import cpu_model  # noqa: E402

from tests.harness.emulated import ADMIN_TOKEN, EmulatedFleet  # noqa: E402
from tests.harness.faults import Recorder  # noqa: E402
from tests.harness.processes import Launcher, Proc  # noqa: E402
from tests.harness.simulated import SimulatedAgent, SimulatedFleet  # noqa: E402

FLAT = 0.10  # memory counts as flat within 10% of its first sample after the warm-up


def rss_mb(proc: Proc) -> float:
    """Resident memory of a process (its own, not its children's), MB."""
    if proc.popen is None:
        return 0.0
    try:
        for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def enroll(url: str, count: int) -> list[SimulatedAgent]:
    """`count` simulated devices enrolled through the API (as agents enroll)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    sims = []
    with httpx.Client(base_url=url, timeout=60) as client:
        token = client.post("/v1/enrollment-tokens", json={}, headers=admin).json()["token"]
        for k in range(count):
            body = {
                "token": token, "name": f"soak-{k:05d}", "tier": "device", "gflops": 10,
                "memory_mb": 512, "power_w": {"idle": 1, "busy": 4},
                "data_plane_url": f"http://soak-{k}.invalid:9000", "emulated": True,
            }  # fmt: skip
            r = client.post("/v1/agents/enroll", json=body)
            r.raise_for_status()
            sims.append(SimulatedAgent(
                f"soak-{k:05d}", r.json()["device_id"], r.json()["agent_token"], 80.0, []
            ))  # fmt: skip
            if k % 100 == 99:
                print(f"  enrolled {k + 1}/{count} simulated agents", file=sys.stderr)
    return sims


class SimThread(threading.Thread):
    """The simulated fleet in an asyncio loop of its own, until `stop`."""

    def __init__(self, url: str, sims: list[SimulatedAgent], interval: float) -> None:
        super().__init__(name="soak-sims", daemon=True)
        self.fleet = SimulatedFleet(url, interval)
        for sim in sims:
            self.fleet.add(sim)
        self.done = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        for sim in self.fleet.sims.values():
            self.fleet.start(sim, stagger=True)
        while not self.done.is_set():
            await asyncio.sleep(0.5)
        await self.fleet.stop()


def soak(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="continuum-soak-"))
    launcher = Launcher()
    fleet = EmulatedFleet(tmp, launcher, heartbeat_s=args.interval)
    fleet.env |= {
        # Every simulated agent enrolls from this one address, faster than a real fleet.
        "CONTINUUM_ENROLL_RATE_PER_SOURCE": "1000000",
        "CONTINUUM_ENROLL_RATE_GLOBAL": "10000000",
        # The server's own cap on a long poll (the test harness cuts it to 5 s so tests
        # see news sooner): 1,000 agents then re-poll 200 times a second, not 40.
        "CONTINUUM_LONG_POLL_MAX_S": "30",
    }
    sims_thread: SimThread | None = None
    recorder: Recorder | None = None
    samples: list[dict[str, float]] = []
    try:
        print(f"starting the demo fleet in {tmp}", file=sys.stderr)
        fleet.start_server()
        fleet.start_agents()
        token = fleet.deploy()
        sims = enroll(fleet.url, args.agents)
        sims_thread = SimThread(fleet.url, sims, args.interval)
        sims_thread.start()
        recorder = Recorder(fleet, token).start()
        start = time.monotonic()
        print(f"{'elapsed s':>9} {'server MB':>9} {'agents MB':>9} {'served':>7} {'failed':>6} "
              f"{'hb errors':>9}")  # fmt: skip
        while True:
            elapsed = time.monotonic() - start
            row = {
                "elapsed_s": round(elapsed, 1),
                "server_mb": round(rss_mb(fleet.server), 1),
                "agents_mb": round(sum(rss_mb(p) for p in fleet.agents.values()), 1),
                "served": recorder.served(),
                "failed": len(recorder.failures()),
                "heartbeat_errors": sims_thread.fleet.errors,
            }
            samples.append(row)
            print(f"{row['elapsed_s']:>9.0f} {row['server_mb']:>9.1f} {row['agents_mb']:>9.1f} "
                  f"{row['served']:>7} {row['failed']:>6} {row['heartbeat_errors']:>9}",
                  flush=True)  # fmt: skip
            if elapsed >= args.duration or not fleet.server.running():
                break
            time.sleep(min(args.sample, max(args.duration - elapsed, 0.1)))
    finally:
        if recorder is not None:
            recorder.stop()
        if sims_thread is not None:
            sims_thread.done.set()
            sims_thread.join(timeout=60)
        fleet.close()
        launcher.stop_all()
    warm = [s for s in samples if s["elapsed_s"] >= args.warmup] or samples
    first = warm[0]["server_mb"]
    peak = max(s["server_mb"] for s in warm)
    last = warm[-1]["server_mb"]
    failures = recorder.failures() if recorder is not None else []
    return {
        "machine": f"{platform.node()}: {cpu_model()}",
        "duration_s": samples[-1]["elapsed_s"] if samples else 0,
        "simulated_agents": args.agents,
        "heartbeat_interval_s": args.interval,
        "server_mb_after_warmup": first,
        "server_mb_peak": peak,
        "server_mb_last": last,
        "server_growth": round((peak - first) / first, 4) if first else None,
        "flat_within_10pct": bool(first) and peak <= first * (1 + FLAT),
        "requests_served": recorder.served() if recorder is not None else 0,
        "requests_lost": len(failures),
        "lost_examples": [f"{o.status}: {o.detail[:120]}" for o in failures[:5]],
        "heartbeat_errors": sims_thread.fleet.errors if sims_thread is not None else None,
        "error_kinds": dict(sims_thread.fleet.error_kinds) if sims_thread is not None else {},
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds (default 3600)")
    parser.add_argument("--agents", type=int, default=1000, help="simulated agents (1000)")
    parser.add_argument("--interval", type=float, default=2.0,
                        help="heartbeat interval of every agent, s (default 2)")  # fmt: skip
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=120.0,
                        help="seconds before the memory baseline (default 120)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    for name in ("duration", "interval", "sample"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name}: must be positive")
    if args.agents < 0:
        parser.error("--agents: must be 0 or more")
    result = soak(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print()
    print(f"machine: {result['machine']}")
    print(f"soak of {result['duration_s']:.0f} s, {result['simulated_agents']} simulated agents "
          f"+ the demo fleet, heartbeats every {result['heartbeat_interval_s']:g} s")  # fmt: skip
    print(f"control plane memory: {result['server_mb_after_warmup']:.1f} MB after the warm-up, "
          f"peak {result['server_mb_peak']:.1f}, last {result['server_mb_last']:.1f} "
          f"(growth {100 * (result['server_growth'] or 0):.1f}%): "
          f"{'' if result['flat_within_10pct'] else 'NOT '}flat within 10%")  # fmt: skip
    print(f"requests served {result['requests_served']}, lost {result['requests_lost']}; "
          f"simulated agents' failed calls: {result['heartbeat_errors']}")  # fmt: skip
    for kind, count in sorted(result["error_kinds"].items()):
        print(f"  simulated agents' failures: {kind}: {count}")
    for example in result["lost_examples"]:
        print(f"  lost: {example}")


if __name__ == "__main__":
    main()
