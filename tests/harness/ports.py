"""Listening ports for the servers and agents a test or a benchmark starts."""

from __future__ import annotations

import os
import random
import socket
import time

# Listening ports come from below the kernel's ephemeral range (32768-60999 here): a port
# the kernel hands out with bind(0) is free now, but the same range feeds every outgoing
# connection (each server's Redis and PostgreSQL clients), and one of those took a port
# between this check and the server's own bind (uvicorn exited 3: address in use).
LISTEN_PORTS = (20000, 32000)
_handed_out: set[int] = set()


def _share() -> tuple[int, int]:
    """This process's part of LISTEN_PORTS: under pytest-xdist each worker has its own, so
    that two workers never hand out the same port before either server binds it (one of
    them then exited 3: address in use)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return LISTEN_PORTS
    k = int(worker[2:]) % count
    low, high = LISTEN_PORTS
    size = (high - low) // count
    return low + k * size, low + (k + 1) * size


def free_port() -> int:
    """A port nothing listens on now, never handed out before by this process (nor by
    another test worker: `_share`)."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    share = _share()
    for _ in range(200):
        port = rng.randrange(*share)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {share[0]}-{share[1]}")
