"""The reconcile leader's read of the fleet's heartbeats: `python bench/observe.py`.

`--devices` heartbeats (the bench's simulated agent's body) are written to the local Redis
under a fresh prefix; then `--ticks` ticks each first rewrite `--changed` of them (as the
heartbeats arriving between two ticks) and read the fleet two ways:
- full: `LiveState.heartbeats()`, every alive device's heartbeat, as the leader read it
  before (orchestrator/reconcile_gateway.py);
- mirror: `HeartbeatMirror.read()` (orchestrator/live/mirror.py), only the changes.
Reported per tick: CPU of this process (time.process_time: the control plane's side) and
of redis-server (psutil), which the machine's other load does not stretch, and wall time.
Both reads must agree: the bench checks that the mirror's view equals the full read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402

from orchestrator.live.mirror import HeartbeatMirror  # noqa: E402
from orchestrator.live.redis import RedisLiveState  # noqa: E402
from tests.harness.services import delete_prefix, new_prefix  # noqa: E402

BEAT = {"battery_pct": 80.0, "utilization": 0.3, "free_memory_mb": 300.0, "partitions": {},
        "desired_version": 0, "unreachable": []}  # fmt: skip
TTL_S = 600.0


async def _run(args: argparse.Namespace) -> None:
    prefix = new_prefix("continuum-bench-observe")
    live = RedisLiveState(args.redis_url, prefix=prefix)
    redis_proc = psutil.Process(int((await live._redis.info("server"))["process_id"]))
    try:
        ids = [f"sim-{k:05d}" for k in range(args.devices)]
        for k in range(0, len(ids), 500):  # in batches, as heartbeats arriving together
            await asyncio.gather(*(live.put_heartbeat(d, {**BEAT, "at": time.time()}, TTL_S)
                                   for d in ids[k : k + 500]))  # fmt: skip
        mirror = HeartbeatMirror(live, full_every_s=3600.0)
        await mirror.read()
        figures: dict[str, list[float]] = {"full": [0.0, 0.0, 0.0], "mirror": [0.0, 0.0, 0.0]}
        for tick in range(args.ticks):
            start = (tick * args.changed) % len(ids)
            changed = [ids[(start + j) % len(ids)] for j in range(args.changed)]
            await asyncio.gather(*(live.put_heartbeat(d, {**BEAT, "at": time.time()}, TTL_S)
                                   for d in changed))  # fmt: skip
            seen = {}
            for name, read in (("full", live.heartbeats), ("mirror", mirror.read)):
                cpu, rcpu, wall = time.process_time(), _cpu(redis_proc), time.perf_counter()
                seen[name] = await read()
                figures[name][0] += time.process_time() - cpu
                figures[name][1] += _cpu(redis_proc) - rcpu
                figures[name][2] += time.perf_counter() - wall
            if seen["full"] != seen["mirror"]:
                raise SystemExit(f"tick {tick}: the mirror's view differs from the full read")
        print(f"{args.devices:,} devices, {args.changed:,} changed between ticks, "
              f"{args.ticks} ticks; ms per tick:")  # fmt: skip
        print(f"{'read':8} {'process CPU':>12} {'redis CPU':>10} {'wall':>8}")
        for name, (cpu, rcpu, wall) in figures.items():
            n = args.ticks
            print(f"{name:8} {1000 * cpu / n:12.1f} {1000 * rcpu / n:10.1f} {1000 * wall / n:8.1f}")
        print(f"full reads by the mirror: {mirror.full_reads} (the first); load average "
              f"{os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}; "
              f"python {platform.python_version()}")  # fmt: skip
    finally:
        await live.close()
        delete_prefix(args.redis_url, prefix)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=3_000, help="heartbeats between ticks")
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
