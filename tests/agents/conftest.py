"""Real processes for the agent tests: a control plane and agents on free local ports.

Every process started here is stopped by a finalizer (SIGTERM, then SIGKILL), whatever
the test's outcome; each writes its output to a log file in tmp_path, printed when a
test fails to find what it waited for.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

# The installed console script, as operators run it.
CONTINUUM = [str(Path(sys.executable).with_name("continuum"))]
ADMIN_TOKEN = "cnt_admin_test_" + "x" * 24


# Listening ports come from below the kernel's ephemeral range (32768-60999 here): a port
# the kernel hands out with bind(0) is free now, but the same range feeds every outgoing
# connection (each server's Redis and PostgreSQL clients), and one of those took a port
# between this check and the server's own bind (uvicorn exited 3: address in use).
_LISTEN_PORTS = (20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(*_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_LISTEN_PORTS[0]}-{_LISTEN_PORTS[1]}")


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        handle = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.args, env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        handle.close()

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=15)

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean stop."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=15)

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-30:])


def wait_until(
    what: str, check: Callable[[], bool], timeout_s: float, procs: list[Proc] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        for proc in procs or []:
            if proc.popen is not None and proc.popen.poll() is not None:
                pytest.fail(f"{proc.name} exited ({proc.popen.returncode})\n{proc.tail()}")
        time.sleep(0.25)
    logs = "\n".join(p.tail() for p in procs or [])
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}\n{logs}")


@pytest.fixture
def processes() -> Iterator[Callable[..., Proc]]:
    """`start(name, args, env)`: a started process, stopped at the end of the test."""
    started: list[Proc] = []

    def start(name: str, args: list[str], env: dict[str, str], log: Path) -> Proc:
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        proc = Proc(name, [*CONTINUUM, *args], full_env, log)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
