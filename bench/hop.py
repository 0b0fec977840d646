"""Micro-benchmark of one hop's sender: a 0.8 MB POST (a ResNet-50 mid-network activation,
1x128x28x28 float32) to the same peer through the agent's hop client
(`agents/hopclient.py`) and through httpx, on one keep-alive connection each.

The peer is a bare ASGI app under uvicorn with httptools in its own process (reads the
body, answers 16 bytes), so what differs between the two columns is the client alone.
Reported: median and p90 per POST over --runs, after --warmup, and the load average.

    .venv/bin/python bench/hop.py [--runs 300] [--warmup 30] [--mb 0.8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from machine import cpu_model  # noqa: E402

from agents.hopclient import HopClient  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402
from tests.harness.processes import Launcher, wait_until  # noqa: E402

ANSWER = b"0123456789abcdef"


async def peer_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/octet-stream"),
               (b"content-length", str(len(ANSWER)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": ANSWER})


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(peer_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                http="httptools")  # fmt: skip


async def timed(post: Any, runs: int, warmup: int) -> list[float]:
    out: list[float] = []
    for k in range(warmup + runs):
        started = time.perf_counter()
        await post()
        if k >= warmup:
            out.append((time.perf_counter() - started) * 1000.0)
    return out


async def measure(url: str, body: bytes, runs: int, warmup: int) -> dict[str, list[float]]:
    headers = {"Content-Type": "application/octet-stream"}
    hops = HopClient(timeout_s=30)
    async with httpx.AsyncClient(timeout=30) as client:

        async def via_hop() -> None:
            answer = await hops.post(url, body, headers)
            assert answer.status == 200 and answer.body == ANSWER

        async def via_httpx() -> None:
            answer = await client.post(url, content=body, headers=headers)
            assert answer.status_code == 200 and answer.content == ANSWER

        # Interleaved halves, so a change in the machine's load lands on both.
        results: dict[str, list[float]] = {"hop client": [], "httpx": []}
        for _ in range(2):
            results["hop client"] += await timed(via_hop, runs // 2, warmup)
            results["httpx"] += await timed(via_httpx, runs // 2, warmup)
    await hops.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--mb", type=float, default=0.8, help="body size (MB, 10^6 bytes)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.runs < 2 or args.warmup < 0 or args.mb <= 0:
        parser.error("--runs must be >= 2, --warmup >= 0 and --mb > 0")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/hop/b/m/0"
    body = os.urandom(int(args.mb * 1e6))
    launcher = Launcher()
    with tempfile.TemporaryDirectory(prefix="continuum-hop-") as tmp:
        try:
            peer = launcher.start("peer", ["--serve", str(port)], {}, Path(tmp) / "peer.log",
                                  program=[sys.executable, __file__])  # fmt: skip
            wait_until("the peer", lambda: httpx.post(url, content=b"x").status_code == 200,
                       60, [peer], 0.1)  # fmt: skip
            load = os.getloadavg()[0]
            results = asyncio.run(measure(url, body, args.runs, args.warmup))
        finally:
            launcher.stop_all()
    print(f"one {args.mb:g} MB POST to a bare uvicorn peer, {args.runs} runs each (ms):")
    for name, times in results.items():
        times.sort()
        p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
        print(f"  {name:10s}  median {statistics.median(times):6.2f}  p90 {p90:6.2f}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}; "
          f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")  # fmt: skip


if __name__ == "__main__":
    main()
