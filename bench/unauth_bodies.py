"""Big bodies without a token: `python bench/unauth_bodies.py`.

Starts `continuum server` (embedded) and sends it N concurrent POSTs announcing a 50 MB
JSON body with no token (declared length, then chunked), over raw sockets: each writes
at most 1 MB of it, then waits for the answer, which must come without the rest. Reports
per wave: the 401s read, the time to the slowest, the body sent before it, the server's
resident memory before and at its peak, and /healthz latency meanwhile. Issue #18
measured, before api/limits.py: 1.2 s and +200 MB for one such body, 1.7 GB and /healthz
at 3.6 s for eight.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import cpu_model  # noqa: E402

from tests.harness.processes import ControlPlane, Launcher, clean_env  # noqa: E402

BODY = 50 * 1_000_000
CHUNK = 64 * 1024
# The client announces 50 MB but stops writing after this much and waits: a server that
# read the body before answering would wait for the rest, and never answer.
STALL_AFTER = 1_000_000
ANSWER_TIMEOUT_S = 20.0


async def _one(port: int, chunked: bool) -> tuple[float, int, int]:
    """(seconds to the answer, bytes of body sent before it, status)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
    head = (
        f"POST /v1/deployments HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"{framing}\r\n\r\n"
    )
    started = time.perf_counter()
    writer.write(head.encode())
    answer = asyncio.create_task(reader.readline())
    sent = 0
    piece = b" " * CHUNK
    try:
        while sent < STALL_AFTER and not answer.done():
            data = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
            writer.write(data)
            await writer.drain()
            sent += len(piece)
            # Let the answer be read before the next write: a write after the server's
            # close resets the connection, and the answer with it.
            await asyncio.sleep(0.002)
    except (ConnectionError, OSError):
        pass  # the server closed the connection after its answer: the point
    try:
        status_line = await asyncio.wait_for(answer, ANSWER_TIMEOUT_S)
    except TimeoutError:
        status_line = b""  # no answer: the server waits for the body it announced
    except (ConnectionError, OSError):
        # Our write after the server's close failed the read too; the answer had arrived
        # and sits in the stream's buffer.
        status_line = bytes(reader._buffer).split(b"\r\n", 1)[0]
    elapsed = time.perf_counter() - started
    writer.close()
    status = int(status_line.split()[1]) if status_line else 0
    return elapsed, sent, status


async def _wave(url: str, port: int, pid: int, n: int, chunked: bool) -> dict[str, float]:
    proc = psutil.Process(pid)
    before = proc.memory_info().rss
    peak = before
    health: list[float] = []
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            await client.get("/healthz")  # a warm connection: time the server, not a connect
            ready.set()
            while not done.is_set() or len(health) < 20:
                started = time.perf_counter()
                await client.get("/healthz")
                health.append(time.perf_counter() - started)
                peak = max(peak, proc.memory_info().rss)
                await asyncio.sleep(0.01)

    ready = asyncio.Event()
    watcher = asyncio.create_task(watch())
    await ready.wait()
    results = await asyncio.gather(*(_one(port, chunked) for _ in range(n)))
    done.set()
    await watcher
    assert all(status == 401 for _, _, status in results), results
    return {
        "answers_read": sum(status == 401 for _, _, status in results),
        "seconds_max": max(r[0] for r in results),
        "sent_mb_max": max(r[1] for r in results) / 1e6,
        "rss_before_mb": before / 1e6,
        "rss_peak_mb": peak / 1e6,
        "healthz_p50_ms": statistics.median(health) * 1000 if health else 0.0,
        "healthz_max_ms": max(health) * 1000 if health else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {psutil.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        launcher = Launcher(env=clean_env())
        env = {"CONTINUUM_DATA_DIR": str(Path(tmp) / "data"), "CONTINUUM_ADMIN_TOKEN": "cnt_x" * 5}
        try:
            plane = ControlPlane(launcher, "server", env, Path(tmp) / "server.log",
                                 ["--log-level", "warning"])  # fmt: skip
            plane.wait_ready(120)
            assert plane.proc.popen is not None
            pid = plane.proc.popen.pid
            # `continuum server` may run uvicorn in a child: measure the serving process.
            children = psutil.Process(pid).children(recursive=True)
            serving = max([psutil.Process(pid), *children], key=lambda p: p.memory_info().rss)
            print(f"{'framing':<16}{'n':>3}{'401s read':>10}{'answer after s':>15}"
                  f"{'body sent MB':>14}{'RSS MB':>16}{'/healthz p50/max ms':>22}")  # fmt: skip
            for chunked in (False, True):
                for n in (1, args.concurrency):
                    r = asyncio.run(_wave(plane.url, plane.port, serving.pid, n, chunked))
                    framing = "chunked" if chunked else "Content-Length"
                    rss = f"{r['rss_before_mb']:.0f} -> {r['rss_peak_mb']:.0f}"
                    health = f"{r['healthz_p50_ms']:.1f} / {r['healthz_max_ms']:.1f}"
                    print(f"{framing:<16}{n:>3}{r['answers_read']:>10.0f}"
                          f"{r['seconds_max']:>15.3f}{r['sent_mb_max']:>14.2f}"
                          f"{rss:>16}{health:>22}")  # fmt: skip
        finally:
            launcher.stop_all()


if __name__ == "__main__":
    main()
