"""Boavizta's methodology and data, reached through its own code in its own interpreter.

`boaviztapi` pins FastAPI and uvicorn below the versions Continuum runs on, so it cannot be
installed beside Continuum without breaking `pip check`. It is installed instead in a
Python environment of its own (`make boavizta`, `.boavizta/` beside `.venv/`), and
`boavizta_worker.py` runs there: a long-lived process that answers JSON lines by calling
Boavizta's model classes, archetype tables and impact factors directly (no HTTP server,
nothing online). The figures are therefore Boavizta's own, computed by its own functions.

One worker per process, started on first use (about two seconds to import pandas and
Boavizta's tables), its catalog and every derivation cached: the same question is asked
once.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from orchestrator.errors import ServiceError

WORKER = Path(__file__).with_name("boavizta_worker.py")


class BoaviztaUnavailable(ServiceError):
    """No interpreter with boaviztapi: derived figures cannot be computed here."""

    status = 503
    title = "Boavizta unavailable"


class BoaviztaError(ServiceError):
    """Boavizta refused a configuration our checks let through (it cannot model it)."""

    status = 422
    title = "Invalid request"


def default_python() -> Path:
    """The Boavizta environment next to the running one: `.boavizta/` beside `.venv/`."""
    return Path(sys.prefix).parent / ".boavizta" / "bin" / "python"


@dataclass(frozen=True, slots=True)
class Zone:
    code: str
    name: str
    gco2_per_kwh: float
    source: str
    year: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """The names Boavizta knows, for validation and for "did you mean"."""

    server: tuple[str, ...]
    terminal: tuple[str, ...]
    iot: tuple[str, ...]
    iot_blocks: dict[str, tuple[str, ...]]  # IoT functional block -> its HSL levels
    cloud: dict[str, tuple[str, ...]]  # provider -> instance types
    zones: dict[str, Zone]
    cpus: tuple[str, ...]


class Boavizta:
    """A client of one worker process; thread-safe (one request at a time)."""

    def __init__(self, python: Path | None = None, timeout_s: float = 60.0) -> None:
        self.python = python if python is not None else default_python()
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Any]] = {}

    def _start(self) -> subprocess.Popen[str]:
        if not self.python.exists():
            raise BoaviztaUnavailable(
                f"no Boavizta environment at {self.python}: run `make boavizta` (or set "
                "CONTINUUM_BOAVIZTA_PYTHON to a Python that has boaviztapi installed)"
            )
        return subprocess.Popen(
            [str(self.python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            # Boavizta's settings read a `.env` in the working directory; give it none.
            cwd="/",
        )

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        key = json.dumps(request, sort_keys=True)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            assert self._proc.stdin is not None and self._proc.stdout is not None
            try:
                self._proc.stdin.write(key + "\n")
                self._proc.stdin.flush()
                line = self._proc.stdout.readline()
            except OSError:  # a worker that died (or was closed) before reading it
                line = ""
            if not line:
                ended, self._proc = self._proc, None
                _end(ended)
                raise BoaviztaUnavailable(f"the Boavizta worker ({self.python}) exited")
            answer: dict[str, Any] = json.loads(line)
            if not answer.pop("ok", False):
                raise BoaviztaError(str(answer.get("error")))
            self._cache[key] = answer
            return answer

    @cached_property
    def catalog(self) -> Catalog:
        raw = self._ask({"op": "catalog"})
        return Catalog(
            server=tuple(raw["server"]),
            terminal=tuple(raw["terminal"]),
            iot=tuple(raw["iot"]),
            iot_blocks={b: tuple(h) for b, h in raw["iot_blocks"].items()},
            cloud={p: tuple(v) for p, v in raw["cloud"].items()},
            zones={code: Zone(code=code, **z) for code, z in raw["zones"].items()},
            cpus=tuple(raw["cpus"]),
        )

    def derive(self, request: dict[str, Any]) -> dict[str, Any]:
        """Boavizta's embodied figure (and power profile) for one device description."""
        return self._ask({"op": "derive", **request})

    def close(self) -> None:
        """End the worker. A request in flight (most often the start-up warm-up, while the
        worker still imports its tables) is cut short: it raises BoaviztaUnavailable."""
        proc = self._proc
        if not self._lock.acquire(blocking=False):
            if proc is not None:
                proc.kill()
            self._lock.acquire()
        try:
            if self._proc is not None:
                _end(self._proc)
                self._proc = None
        finally:
            self._lock.release()


def _end(proc: subprocess.Popen[str]) -> None:
    """Close a worker's input (its signal to exit), wait for it (killed after 5 s), and
    close its pipes; a worker already dead or killed leaves broken pipes, ignored."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
