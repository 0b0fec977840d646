"""Heartbeat throughput of the control plane: `python bench/heartbeats.py`.

Starts `continuum server` as a subprocess (embedded, then with Redis), then a separate
load process that enrolls N simulated agents and has them heartbeat concurrently over
HTTP/1.1 keep-alive (tests/harness/leanhttp.py; httpx only to enroll), and reports
sustained heartbeats per second and
p50/p99 latency. The load process and the server share this machine's cores, so the
figures are a lower bound of what the server alone sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402

from tests.harness.leanhttp import Connection, request_bytes, split_url  # noqa: E402
from tests.harness.processes import ControlPlane, Launcher, NotReady, clean_env  # noqa: E402
from tests.harness.services import delete_prefix  # noqa: E402

ADMIN = "cnt_admin_bench-token"


# -- the load process ----------------------------------------------------------------------------
async def _load(url: str, agents: int, concurrency: int, duration_s: float) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        token = (await client.post("/v1/enrollment-tokens", json={}, headers=admin)).json()
        enrolled: list[tuple[str, str]] = []
        for k in range(agents):
            body = {
                "token": token["token"], "name": f"sim-{k:05d}", "tier": "device",
                "gflops": 10, "memory_mb": 512, "power_w": {"idle": 1, "busy": 4},
                "data_plane_url": f"http://sim-{k}:9000", "emulated": True,
            }  # fmt: skip
            r = await client.post("/v1/agents/enroll", json=body)
            r.raise_for_status()
            enrolled.append((r.json()["device_id"], r.json()["agent_token"]))
        beat = {"battery_pct": 80.0, "utilization": 0.3, "free_memory_mb": 300.0,
                "partitions": {}, "desired_version": 0}  # fmt: skip

        latencies: list[float] = []
        errors = 0
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
            nonlocal errors
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
                    elif measuring:
                        latencies.append(elapsed)
            finally:
                conn.close()

        # Warm-up: connections opened, every agent seen alive once (which triggers the
        # planner), caches warm. Then the measured window.
        stop_at = time.perf_counter() + 3.0
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        measuring = True
        begin = time.perf_counter()
        stop_at = begin + duration_s
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall = time.perf_counter() - begin
    latencies.sort()
    return {
        "agents": agents,
        "concurrency": concurrency,
        "duration_s": wall,
        "heartbeats": len(latencies),
        "errors": errors,
        "per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


# -- the driver ------------------------------------------------------------------------------------
def _run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    launcher = Launcher(env=clean_env())
    with tempfile.TemporaryDirectory(prefix="continuum-bench-") as data:
        env = {
            "CONTINUUM_DATA_DIR": data,
            "CONTINUUM_ADMIN_TOKEN": ADMIN,
            "CONTINUUM_HEARTBEAT_INTERVAL_S": "60",
            "CONTINUUM_SOLVER": "ilp",
        }
        if mode == "redis":
            env["CONTINUUM_REDIS_URL"] = args.redis_url
        try:
            server = ControlPlane(launcher, "server", env, Path(data) / "server.log",
                                  args=["--log-level", "warning"])  # fmt: skip
            try:
                server.wait_ready(60)
            except NotReady as exc:
                raise SystemExit(str(exc)) from None
            load = subprocess.run(
                [sys.executable, __file__, "--load", server.url, "--agents", str(args.agents),
                 "--concurrency", str(args.concurrency), "--duration", str(args.duration)],
                check=True,
                capture_output=True,
                text=True,
            )  # fmt: skip
        finally:
            launcher.stop_all()
        if mode == "redis":
            # The keys the benchmark left (the default prefix): runs do not accumulate.
            delete_prefix(args.redis_url, "continuum:")
    result: dict[str, Any] = json.loads(load.stdout)
    result["mode"] = "embedded (SQLite + in-process)" if mode == "embedded" else "Redis live state"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--modes", default="embedded,redis")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        result = asyncio.run(_load(args.load, args.agents, args.concurrency, args.duration))
        print(json.dumps(result))
        return

    from rich.console import Console
    from rich.table import Table

    rows = [_run_mode(mode, args) for mode in args.modes.split(",")]
    table = Table(title=f"Heartbeats: {args.agents} agents, {args.concurrency} in flight")
    for column in ("mode", "heartbeats/s", "p50 ms", "p99 ms", "heartbeats", "errors"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in rows:
        table.add_row(
            r["mode"], f"{r['per_s']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
            f"{r['heartbeats']:,}", str(r["errors"]),
        )  # fmt: skip
    console = Console()
    console.print(table)
    console.print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
