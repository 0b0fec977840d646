"""Where a client's round trip goes beyond the agent's share of it (issue 17).

A server in its own process, built as the agent's data plane is (uvicorn with
`agents.ingress.timed_protocol`, the app behind `AnswerClock`), answers a POST of a
0.6 MB body (a 1x3x224x224 float32 `.npy`, as the calibration bench sends) with 4 KB,
timing each request from its first byte to its answer's last. An httpx client (as
bench/calibration.py uses) sends --requests of them on one keep-alive connection,
timing each round trip and its own CPU time (`time.process_time`). Printed: the medians
of the round trip, the agent's share, the client's CPU, and the gap (round trip minus
share): what no agent can time. With `--stamp app` the share starts when the ASGI app is
called (uvicorn's own protocol), as before the first-byte stamp, for comparison.

    python bench/client_gap.py [--requests 300] [--stamp first-byte|app]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.harness.ports import free_port  # noqa: E402

SERVER = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from agents.ingress import AnswerClock, arrived, timed_protocol, when_answered

shares = []

async def infer(request):
    started = arrived(request.scope["state"])
    await request.body()
    when_answered(request.scope["state"], lambda now: shares.append((now - started) * 1000))
    return Response(bytes(4096), media_type="application/x-npy")

async def timed(request):
    return Response(",".join(f"{s:.4f}" for s in shares))

app = AnswerClock(Starlette(routes=[Route("/infer", infer, methods=["POST"]),
                                    Route("/shares", timed)]))
http = timed_protocol() if sys.argv[2] == "first-byte" else "auto"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            lifespan="off", http=http)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--stamp", choices=["first-byte", "app"], default="first-byte")
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port), args.stamp], env=env)
    load = [os.getloadavg()[0]]
    try:
        with httpx.Client(timeout=30) as client:
            url = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    client.get(f"{url}/shares")
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            body = bytes(602_240)
            trips, cpu = [], []
            for _ in range(args.requests):
                cpu0, wall0 = time.process_time(), time.perf_counter()
                response = client.post(f"{url}/infer", content=body,
                                       headers={"Content-Type": "application/x-npy"})  # fmt: skip
                trips.append((time.perf_counter() - wall0) * 1000.0)
                cpu.append((time.process_time() - cpu0) * 1000.0)
                response.raise_for_status()
            load.append(os.getloadavg()[0])
            shares = [float(x) for x in client.get(f"{url}/shares").text.split(",")]
    finally:
        server.terminate()
        server.wait()
    gaps = sorted(t - s for t, s in zip(trips, shares, strict=True))
    print(f"{args.requests} requests, share stamped from the {args.stamp}; load average "
          f"{min(load):.1f} to {max(load):.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"median ms: round trip {statistics.median(trips):.2f}, agent's share "
          f"{statistics.median(shares):.2f}, client CPU {statistics.median(cpu):.2f}, "
          f"gap {statistics.median(gaps):.2f} (p90 {gaps[int(len(gaps) * 0.9)]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
