"""Heartbeat throughput of the control plane: `python bench/heartbeats.py`.

Modes (`--modes`, comma-separated):
- `embedded`: one `continuum server` on SQLite and the in-process live state;
- `redis`: one server with the Redis live state;
- `replicas`: `--replicas` servers (default 3) on one PostgreSQL database and one Redis
  prefix, as the chart's production values run them; each simulated agent beats to one
  replica (as behind a load balancer), agents spread evenly.

Load: one process per server (so the load generator is not the bottleneck of a
multi-replica run), each enrolling its share of `--agents` simulated agents, then all
heartbeating together over HTTP/1.1 keep-alive (tests/harness/leanhttp.py; httpx only to
enroll) for `--duration` seconds after a 3 s warm-up. Reported: sustained heartbeats per
second across all servers, and p50/p99 latency over every heartbeat of the window. The
load processes, the servers, Redis and PostgreSQL share this machine's cores, so the
figures are a lower bound of what the servers alone sustain.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402

from tests.harness.leanhttp import Connection, request_bytes, split_url  # noqa: E402
from tests.harness.processes import ControlPlane, Launcher, NotReady, clean_env  # noqa: E402
from tests.harness.services import (  # noqa: E402
    admin_connection,
    delete_prefix,
    fresh_database,
    new_prefix,
)

ADMIN = "cnt_admin_bench-token"
CONTINUUM = [str(Path(sys.executable).with_name("continuum"))]
WARMUP_S = 3.0
T = TypeVar("T")


# -- a load process ------------------------------------------------------------------------------
async def _enroll(url: str, first: int, count: int) -> list[tuple[str, str]]:
    import httpx

    admin = {"Authorization": f"Bearer {ADMIN}"}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        token = (await client.post("/v1/enrollment-tokens", json={}, headers=admin)).json()

        async def one(k: int) -> tuple[str, str]:
            body = {
                "token": token["token"], "name": f"sim-{k:05d}", "tier": "device",
                "gflops": 10, "memory_mb": 512, "power_w": {"idle": 1, "busy": 4},
                "data_plane_url": f"http://sim-{k}:9000", "emulated": True,
            }  # fmt: skip
            r = await client.post("/v1/agents/enroll", json=body)
            r.raise_for_status()
            return r.json()["device_id"], r.json()["agent_token"]

        enrolled: list[tuple[str, str]] = []
        for start in range(first, first + count, 16):  # 16 at a time
            batch = range(start, min(start + 16, first + count))
            enrolled += await asyncio.gather(*(one(k) for k in batch))
        return enrolled


async def _beat(
    url: str, enrolled: list[tuple[str, str]], concurrency: int, duration_s: float
) -> dict[str, Any]:
    beat = {"battery_pct": 80.0, "utilization": 0.3, "free_memory_mb": 300.0,
            "partitions": {}, "desired_version": 0}  # fmt: skip
    latencies: list[float] = []
    errors = answered = 0
    stop_at = 0.0
    measuring = False
    host, port = split_url(url)
    payload = json.dumps(beat).encode()
    # Requests prebuilt as bytes, one keep-alive connection per in-flight agent and a
    # lean parser (tests/harness/leanhttp.py): with httpx, on two shared cores the load
    # generator, not the server, would be what this measures.
    requests = [
        request_bytes("POST", host, f"/v1/agents/{device_id}/heartbeat", payload, secret)
        for device_id, secret in enrolled
    ]

    async def worker(offset: int) -> None:
        nonlocal errors, answered
        conn = Connection(host, port)
        k = offset
        try:
            while time.perf_counter() < stop_at:
                request = requests[k % len(requests)]
                k += concurrency
                start = time.perf_counter()
                status, _ = await conn.send(request)
                elapsed = time.perf_counter() - start
                if status != 200:
                    errors += 1
                    continue
                answered += 1
                if measuring:
                    latencies.append(elapsed)
        finally:
            conn.close()

    # Warm-up: connections opened, every agent seen alive once (which triggers the
    # planner), caches warm. Then the measured window.
    stop_at = time.perf_counter() + WARMUP_S
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    measuring = True
    begin = time.perf_counter()
    stop_at = begin + duration_s
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    # `answered`: every 200 since the warm-up began (for a server CPU time per heartbeat).
    return {"wall_s": time.perf_counter() - begin, "errors": errors, "latencies": latencies,
            "answered": answered}  # fmt: skip


def _load_process(args: argparse.Namespace) -> None:
    """Enroll this process's share, say `ready`, wait for `go` on stdin, beat, print JSON."""
    enrolled = _run(_enroll(args.load, args.first, args.agents))
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    result = _run(_beat(args.load, enrolled, args.concurrency, args.duration))
    # Its own CPU over the warm-up and the window (it exits before the driver could read
    # it from /proc).
    result["cpu_s"] = time.process_time() - cpu
    print(json.dumps(result), flush=True)


def _run(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop when it is installed (as the servers run): the load processes' event loop
    in Python cost them about a seventh of the machine's CPU per heartbeat (0.042 of
    0.288 ms, bench/RESULTS.md), most of it the loop's own work, not the requests'."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


# -- the driver ------------------------------------------------------------------------------------
def _ticks(urls: list[str]) -> tuple[float, float]:
    """(ticks, seconds) of the reconcile loop's observe step, summed over the servers (the
    leader's: followers do not tick), from /metrics."""
    import httpx

    count = total = 0.0
    for url in urls:
        for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
            if line.startswith('continuum_reconcile_step_seconds_count{step="observe"}'):
                count += float(line.rsplit(" ", 1)[1])
            elif line.startswith('continuum_reconcile_step_seconds_sum{step="observe"}'):
                total += float(line.rsplit(" ", 1)[1])
    return count, total


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of the server processes (not their solver workers): the
    cost of a heartbeat that the machine's other load does not stretch, unlike its rate."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


# Where a heartbeat's CPU goes: each group's processes, read from /proc (psutil) before and
# after the window (the load processes time themselves). PostgreSQL counts the backends
# connected to the bench's database; Redis is the whole redis-server, which other users of
# this Redis share.
GROUPS = ("servers", "solver workers", "load", "redis-server", "postgres", "machine")


def _processes(servers: list[int], redis_url: str, database: str | None) -> dict[str, list[int]]:
    import psutil
    import redis

    workers = []
    for pid in servers:
        with contextlib.suppress(psutil.Error):
            workers += [c.pid for c in psutil.Process(pid).children(recursive=True)]
    client = redis.Redis.from_url(redis_url)
    try:
        redis_pid = [int(client.info("server")["process_id"])]
    finally:
        client.close()
    backends: list[int] = []
    if database is not None:
        with admin_connection() as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s",
                (database.rsplit("/", 1)[1],),
            ).fetchall()
        backends = [int(r[0]) for r in rows]  # type: ignore[call-overload]
    return {"servers": servers, "solver workers": workers, "redis-server": redis_pid,
            "postgres": backends}  # fmt: skip


def _cpu_times(groups: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    """CPU seconds (user + system) of every process of each group; "machine": every core's
    busy time, everything on the machine included (other users of it too)."""
    import psutil

    out: dict[str, dict[int, float]] = {}
    for name, pids in groups.items():
        out[name] = {}
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                t = psutil.Process(pid).cpu_times()
                out[name][pid] = t.user + t.system
    total = psutil.cpu_times()
    out["machine"] = {0: sum(total) - total.idle - getattr(total, "iowait", 0.0)}
    return out


def _split(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]],
           beats: float) -> dict[str, float]:  # fmt: skip
    """CPU ms per heartbeat of each group (processes seen at both ends of the window)."""
    return {
        name: 1000
        * sum(after[name][p] - t for p, t in before[name].items() if p in after[name])
        / beats
        for name in before
    }


def _drive(
    urls: list[str], pids: list[int], args: argparse.Namespace, database: str | None = None
) -> dict[str, Any]:
    share = args.agents // len(urls)
    loads = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--load",
                url,
                "--first",
                str(i * share),
                "--agents",
                str(share),
                "--concurrency",
                str(args.concurrency),
                "--duration",
                str(args.duration),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, url in enumerate(urls)
    ]
    try:
        started = time.perf_counter()
        for load in loads:
            assert load.stdin is not None and load.stdout is not None
            if load.stdout.readline().strip() != "ready":
                raise SystemExit("a load process failed while enrolling (see above)")
        enroll_s = time.perf_counter() - started
        ticks_before = _ticks(urls)
        groups = _processes(pids, args.redis_url, database)
        split_before = _cpu_times(groups)
        cpu_before = _cpu_s(pids)
        for load in loads:
            assert load.stdin is not None
            load.stdin.write("go\n")
            load.stdin.flush()
        parts = []
        for load in loads:
            assert load.stdout is not None
            parts.append(json.loads(load.stdout.readline()))
            load.wait(60)
        cpu_after = _cpu_s(pids)
        split_after = _cpu_times(groups)
        load_after = os.getloadavg()[0]
        ticks_after = _ticks(urls)
    finally:
        for load in loads:
            if load.poll() is None:
                load.kill()
    latencies = sorted(x for p in parts for x in p["latencies"])
    wall = max(p["wall_s"] for p in parts)
    per_s = len(latencies) / wall
    # Warm-up included: the window the ticks were counted over is the warm-up plus `wall`.
    ticks = ticks_after[0] - ticks_before[0]
    tick_ms = 1000 * (ticks_after[1] - ticks_before[1]) / ticks if ticks else 0.0
    if not latencies:
        raise SystemExit("no heartbeat succeeded in the measured window")
    return {
        "agents": share * len(urls),
        "servers": len(urls),
        "concurrency": args.concurrency * len(urls),
        "enroll_s": enroll_s,
        "duration_s": wall,
        "heartbeats": len(latencies),
        "errors": sum(p["errors"] for p in parts),
        "per_s": per_s,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        # The CPU window, like the ticks', is the warm-up plus `wall`: the warm-up's
        # heartbeats are counted at the window's rate.
        "cpu_ms_per_beat": 1000 * (cpu_after - cpu_before) / (per_s * (wall + WARMUP_S)),
        "ticks_per_s": ticks / (wall + WARMUP_S),
        "tick_ms": tick_ms,
        "split_ms": {
            **_split(split_before, split_after, per_s * (wall + WARMUP_S)),
            "load": 1000 * sum(p["cpu_s"] for p in parts) / (per_s * (wall + WARMUP_S)),
        },
        "loadavg": load_after,
    }


def _env(data: str) -> dict[str, str]:
    return {
        "CONTINUUM_DATA_DIR": data,
        "CONTINUUM_ADMIN_TOKEN": ADMIN,
        "CONTINUUM_HEARTBEAT_INTERVAL_S": "60",
        "CONTINUUM_SOLVER": "ilp",
        # Every simulated agent enrolls from this one address.
        "CONTINUUM_ENROLL_RATE_PER_SOURCE": "1000000",
        "CONTINUUM_ENROLL_RATE_GLOBAL": "10000000",
    }


def _servers(
    launcher: Launcher, env: dict[str, str], count: int, data: str
) -> tuple[list[str], list[int]]:
    servers = [
        ControlPlane(
            launcher,
            f"server-{i}",
            env,
            Path(data) / f"server-{i}.log",
            args=["--log-level", "warning"],
        )
        for i in range(count)
    ]
    try:
        for server in servers:
            server.wait_ready(90)
    except NotReady as exc:
        raise SystemExit(str(exc)) from None
    return [s.url for s in servers], [s.proc.popen.pid for s in servers if s.proc.popen]


def _run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    launcher = Launcher(env=clean_env())
    with tempfile.TemporaryDirectory(prefix="continuum-bench-") as data:
        env = _env(data)
        try:
            if mode == "embedded":
                result = _drive(*_servers(launcher, env, 1, data), args)
            elif mode == "redis":
                prefix = new_prefix("continuum-bench")
                env |= {"CONTINUUM_REDIS_URL": args.redis_url, "CONTINUUM_REDIS_PREFIX": prefix}
                try:
                    result = _drive(*_servers(launcher, env, 1, data), args)
                finally:
                    launcher.stop_all()
                    delete_prefix(args.redis_url, prefix)
            else:
                prefix = new_prefix("continuum-bench")
                with fresh_database("continuum_bench_heartbeats") as database:
                    env |= {"CONTINUUM_REDIS_URL": args.redis_url,
                            "CONTINUUM_REDIS_PREFIX": prefix,
                            "CONTINUUM_DATABASE_URL": database}  # fmt: skip
                    subprocess.run([*CONTINUUM, "db", "upgrade"], env={**clean_env(), **env},
                                   check=True, capture_output=True, cwd=ROOT)  # fmt: skip
                    try:
                        servers = _servers(launcher, env, args.replicas, data)
                        result = _drive(*servers, args, database)
                    finally:
                        launcher.stop_all()
                        delete_prefix(args.redis_url, prefix)
        finally:
            launcher.stop_all()
    result["mode"] = {
        "embedded": "embedded (SQLite + in-process)",
        "redis": "Redis live state",
        "replicas": f"{args.replicas} replicas (PostgreSQL + Redis)",
    }[mode]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64, help="in flight per server")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--modes", default="embedded,redis")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        _load_process(args)
        return

    from rich.console import Console
    from rich.table import Table

    rows = [_run_mode(mode, args) for mode in args.modes.split(",")]
    table = Table(
        title=f"Heartbeats: {args.agents:,} agents, {args.concurrency} in flight per server"
    )
    columns = ("mode", "heartbeats/s", "p50 ms", "p99 ms", "heartbeats", "errors", "enroll s",
               "ticks/s", "observe ms", "server CPU ms/beat")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in rows:
        table.add_row(
            r["mode"], f"{r['per_s']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
            f"{r['heartbeats']:,}", str(r["errors"]), f"{r['enroll_s']:.0f}",
            f"{r['ticks_per_s']:.1f}", f"{r['tick_ms']:.1f}", f"{r['cpu_ms_per_beat']:.3f}",
        )  # fmt: skip
    split = Table(title="CPU ms per heartbeat, by process (warm-up and window)")
    for column in ("mode", *GROUPS, "load avg"):
        split.add_column(column, justify="left" if column == "mode" else "right")
    for r in rows:
        split.add_row(r["mode"], *(f"{r['split_ms'][g]:.3f}" for g in GROUPS),
                      f"{r['loadavg']:.1f}")  # fmt: skip
    console = Console(width=140)
    console.print(table)
    console.print(split)
    console.print(
        "machine: every core's busy time, other users of the machine included; "
        "redis-server: the whole Redis, which other clients may share"
    )
    console.print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
