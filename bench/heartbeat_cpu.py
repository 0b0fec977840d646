"""The control plane's own CPU per heartbeat, without an HTTP server:
`python bench/heartbeat_cpu.py`.

One app (`api.app.create_app`, SQLite and the local Redis under a fresh prefix) in this
process; `--agents` agents enrolled through it; then `--beats` heartbeats (the body of
bench/heartbeats.py) called straight into the app as ASGI requests, `--concurrency` at a
time, the reconcile loop running as in a server (this process leads it). Reported: this
process's CPU time (user + system) per heartbeat, which the machine's other load stretches
far less than a rate, and the rate. What uvicorn adds (parsing, the socket) is not in it:
`bench/heartbeats.py` measures the whole.

`--code DIR` runs another checkout's code (e.g. `git archive main` unpacked) with this
script, to compare two versions in turns on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ADMIN = "cnt_admin_bench-heartbeat-cpu"
BODY = {"battery_pct": 80.0, "utilization": 0.3, "free_memory_mb": 300.0, "partitions": {},
        "desired_version": 0}  # fmt: skip


async def _run(args: argparse.Namespace) -> dict[str, float]:
    import httpx
    import redis

    from api.app import create_app
    from orchestrator.live.redis import RedisLiveState
    from orchestrator.settings import Settings

    prefix = f"continuum-bench-hbcpu-{os.getpid()}:"
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="continuum-bench-")), redis_url=args.redis_url,
        admin_token=ADMIN, solver="ilp", heartbeat_interval_s=60, gc_freeze=False,
        enroll_rate_per_source=1e6, enroll_rate_global=1e7,
    )  # fmt: skip
    app = create_app(settings, live=RedisLiveState(args.redis_url, prefix=prefix), migrate=True)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            admin = {"Authorization": f"Bearer {ADMIN}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as client:
                token = (await client.post("/v1/enrollment-tokens", json={}, headers=admin)).json()
                agents = []
                for k in range(args.agents):
                    r = await client.post("/v1/agents/enroll", json={
                        "token": token["token"], "name": f"sim-{k:05d}", "tier": "device",
                        "gflops": 10, "memory_mb": 512, "power_w": {"idle": 1, "busy": 4},
                        "data_plane_url": f"http://sim-{k}:9000", "emulated": True,
                    })  # fmt: skip
                    r.raise_for_status()
                    agents.append((r.json()["device_id"], r.json()["agent_token"]))
            return await _beat(app, agents, args)
    finally:
        client_ = redis.Redis.from_url(args.redis_url)
        for key in client_.scan_iter(match=prefix + "*"):
            client_.delete(key)
        client_.close()


async def _beat(
    app: Any, agents: list[tuple[str, str]], args: argparse.Namespace
) -> dict[str, float]:
    body = json.dumps(BODY).encode()
    scopes = [
        {"type": "http", "method": "POST", "path": f"/v1/agents/{device}/heartbeat",
         "raw_path": f"/v1/agents/{device}/heartbeat".encode(), "query_string": b"",
         "root_path": "", "scheme": "http", "server": ("cp", 80), "client": ("127.0.0.1", 1),
         "http_version": "1.1", "asgi": {"version": "3.0"},
         "headers": [(b"host", b"cp"), (b"authorization", f"Bearer {secret}".encode()),
                     (b"content-type", b"application/json"),
                     (b"content-length", str(len(body)).encode())]}
        for device, secret in agents
    ]  # fmt: skip
    message = {"type": "http.request", "body": body, "more_body": False}
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return message

    async def send(sent: dict[str, Any]) -> None:
        if sent["type"] == "http.response.start":
            statuses.append(sent["status"])

    async def worker(first: int, count: int) -> None:
        k = first
        for _ in range(count):
            await app(dict(scopes[k % len(scopes)]), receive, send)
            k += args.concurrency

    per_worker = args.beats // args.concurrency
    await asyncio.gather(*(worker(w, per_worker // 10) for w in range(args.concurrency)))  # warm
    statuses.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w, per_worker) for w in range(args.concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if set(statuses) != {200}:
        raise SystemExit(f"heartbeats answered {sorted(set(statuses))}, not only 200")
    return {"beats": len(statuses), "cpu_us": 1e6 * cpu / len(statuses),
            "per_s": len(statuses) / wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--beats", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    result = asyncio.run(_run(args))
    print(
        f"{result['beats']:,} heartbeats: {result['cpu_us']:.1f} us CPU each in the control "
        f"plane's process, {result['per_s']:,.0f}/s; code {args.code}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
