"""Real processes: `continuum server`, `continuum agent`, or any command.

Every process a `Launcher` started is stopped by `stop_all()` (SIGTERM, then SIGKILL),
whatever the caller's outcome; each writes its output to a log file, whose tail
`wait_until` shows when what it waited for did not come.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.harness.ports import free_port

# The installed console script, as operators run it.
CONTINUUM = [str(Path(sys.executable).with_name("continuum"))]
STOP_S = 15.0


class NotReady(AssertionError):
    """What a caller waited for did not happen in time, or a process it needs exited.

    An AssertionError: in a test it is a failure with its message (and the logs)."""


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any CONTINUUM_ setting, plus `overrides`: a
    server or agent configured by the caller alone, not by the shell it runs in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
    env.update(overrides)
    return env


@dataclass
class Proc:
    """One process. `group`: in a session of its own, signalled as a group, so a SIGKILL
    also takes its children (a control plane's solver workers), as when a node dies, and
    no child outlives the caller."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    group: bool = False
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or start again, after a stop or a kill)."""
        with self.log.open("ab") as handle:
            self.popen = subprocess.Popen(
                self.args, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=self.group,
            )  # fmt: skip

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            if self.group:
                os.killpg(self.popen.pid, sig)
            else:
                self.popen.send_signal(sig)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_S (for a group: whatever of it is left)."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=STOP_S)
        if self.group or self.popen.poll() is None:
            self._signal(signal.SIGKILL)
        self.popen.wait(timeout=STOP_S)

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean stop."""
        if self.popen is None or (not self.group and self.popen.poll() is not None):
            return
        self._signal(signal.SIGKILL)
        self.popen.wait(timeout=STOP_S)

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])


class Launcher:
    """Starts `continuum` processes and remembers them, to stop them all at the end.

    `env` is the base environment of every process (default: this process's own);
    `group` starts each in a session of its own (see `Proc`)."""

    def __init__(self, env: Mapping[str, str] | None = None, group: bool = False) -> None:
        self.env = dict(os.environ if env is None else env)
        self.group = group
        self.started: list[Proc] = []

    def start(
        self, name: str, args: list[str], env: Mapping[str, str], log: Path,
        prefix: list[str] | None = None, program: list[str] | None = None,
    ) -> Proc:  # fmt: skip
        """`continuum *args` (or `program *args`) with `env` over the base environment;
        `prefix` runs it through another command (e.g. `ip netns exec NAME`)."""
        full_env = {**self.env, **env, "PYTHONUNBUFFERED": "1"}
        argv = [*(prefix or []), *(CONTINUUM if program is None else program), *args]
        proc = Proc(name, argv, full_env, log, self.group)
        proc.start()
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            proc.stop()


def wait_until(
    what: str, check: Callable[[], bool], timeout_s: float, procs: list[Proc] | None = None,
    poll_s: float = 0.25,
) -> None:  # fmt: skip
    """Until `check()` holds (an HTTP error counts as not yet); NotReady with the procs'
    logs when timeout_s passes or one of them exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        for proc in procs or []:
            if proc.popen is not None and proc.popen.poll() is not None:
                raise NotReady(f"{proc.name} exited ({proc.popen.returncode})\n{proc.tail()}")
        time.sleep(poll_s)
    logs = "\n".join(p.tail() for p in procs or [])
    raise NotReady(f"timed out after {timeout_s:.0f}s waiting for {what}\n{logs}")


class ControlPlane:
    """`continuum server` on a free port of 127.0.0.1, configured by `env` alone."""

    def __init__(
        self, launcher: Launcher, name: str, env: Mapping[str, str], log: Path,
        args: Sequence[str] = (),
    ) -> None:  # fmt: skip
        """Started at once; `args` go to `continuum server` (e.g. `--log-level`)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "CONTINUUM_HOST": "127.0.0.1", "CONTINUUM_PORT": str(self.port)}
        self.proc = launcher.start(name, ["server", *args], self.env, log)

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def wait_ready(self, timeout_s: float = 90.0) -> ControlPlane:
        wait_until(f"{self.proc.name} to be ready", self.ready, timeout_s, [self.proc], 0.2)
        return self
