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


def free_port() -> int:
    """A port nothing listens on now, never handed out before by this process."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(*LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {LISTEN_PORTS[0]}-{LISTEN_PORTS[1]}")
