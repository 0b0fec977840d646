"""What the fault tests need beside a fleet: a PRIVATE Redis and a PRIVATE PostgreSQL on
random ports (a test restarts them, so never the shared ones that other tests use), and
a recorder of live traffic and of what each agent holds while a fault happens.

The private services are real `redis-server` and `postgres` processes started by the
`Launcher` (stopped with the test's other processes). PostgreSQL refuses to run as root:
as root its cluster is made and run as the `postgres` user (through `runuser`)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from tests.harness.emulated import DEPLOYMENT, EmulatedFleet, Traffic
from tests.harness.ports import free_port
from tests.harness.processes import Launcher, NotReady, Proc, wait_until


class PrivateRedis:
    """`redis-server` on a free port, no persistence (as the shared one): a restart
    loses every key, as a Redis restart without a disk does."""

    def __init__(self, launcher: Launcher, log: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise NotReady("redis-server is not on PATH: `apt-get install redis-server`")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly",
                "no"]  # fmt: skip
        self.proc = launcher.start("redis", args, {}, log, program=[binary])
        self.wait()

    def ping(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def wait(self) -> None:
        wait_until("the private redis-server", self.ping, 30, [self.proc])

    def restart(self, down_s: float) -> None:
        """SIGKILL, `down_s` seconds down, started again on the same port."""
        self.proc.kill()
        time.sleep(down_s)
        self.proc.start()
        self.wait()


def _pg_bin() -> Path:
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise NotReady(
            "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: "
            "`apt-get install postgresql`"
        )
    return Path(found[-1]).parent


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb) in `root` (as root: in a directory of its
    own under the system's tmp, removed at exit), served by `postgres` on a free port of
    127.0.0.1 with trust authentication; `url` is its `continuum` database."""

    def __init__(self, launcher: Launcher, root: Path, log: Path) -> None:
        bin_dir = _pg_bin()
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            # initdb and postgres refuse root; the cluster belongs to `postgres`. setpriv
            # execs (runuser would stay the parent, and a kill would miss the postmaster).
            self.as_user = ["setpriv", "--reuid=postgres", "--regid=postgres",
                            "--init-groups", "--"]  # fmt: skip
            # Not under the test's tmp: pytest makes its root 0700 again whenever a worker
            # (pytest-xdist) sets up its own tmp, which would lock `postgres` out mid-test.
            root = Path(tempfile.mkdtemp(prefix="continuum-pg-"))
            atexit.register(shutil.rmtree, root, True)
            shutil.chown(root, "postgres")
        self.data = root / "pgdata"
        made = subprocess.run(
            [*self.as_user, str(bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--no-sync"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if made.returncode:
            raise NotReady(f"initdb failed ({made.returncode}):\n{made.stdout}{made.stderr}")
        args = ["-D", str(self.data), "-p", str(self.port), "-k", str(root),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]  # fmt: skip
        log.touch()
        if self.as_user:
            shutil.chown(log, "postgres")
        # A group of its own: a kill takes the postmaster's backends too, as a crash of
        # the machine would (else they linger on its shared memory and block the start).
        self.proc = Proc("postgres", [*self.as_user, str(bin_dir / "postgres"), *args],
                         dict(os.environ), log, group=True)  # fmt: skip
        self.proc.start()
        launcher.started.append(self.proc)
        self.wait()
        with self._connect("postgres") as conn:
            conn.execute("CREATE DATABASE continuum")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/continuum"

    def _connect(self, dbname: str) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname,
            autocommit=True, connect_timeout=2,
        )  # fmt: skip

    def ready(self) -> bool:
        try:
            with self._connect("postgres") as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def wait(self) -> None:
        wait_until("the private PostgreSQL", self.ready, 60, [self.proc])

    def restart(self, down_s: float) -> None:
        """SIGKILL (a crash: crash recovery at the next start), `down_s` seconds down,
        started again on the same port and data directory."""
        self.proc.kill()
        time.sleep(down_s)
        self.proc.start()
        self.wait()


@dataclass
class Outcome:
    """One request of the recorded traffic."""

    at: float  # monotonic
    status: int | None  # None: the connection failed
    degraded: bool = False
    detail: str = ""


@dataclass
class Held:
    """What an agent held at one moment (from its /v1/status)."""

    at: float
    desired_version: int
    partitions: int
    sources: int


class Recorder:
    """Live traffic through the source agent, one request at a time, and every agent's
    held desired state, both in background threads from `start()` to `stop()`."""

    def __init__(self, fleet: EmulatedFleet, token: str, source: str = "cam") -> None:
        self.fleet = fleet
        self.traffic = Traffic(fleet, token, source)
        self.outcomes: list[Outcome] = []
        self.held: dict[str, list[Held]] = {name: [] for name in fleet.ports}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> Recorder:
        for target in (self._send, self._watch):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)
        self.traffic.close()

    def _send(self) -> None:
        while not self._stop.is_set():
            response = self.traffic.send()
            now = time.monotonic()
            if response is None:
                self.outcomes.append(Outcome(now, None))
                continue
            degraded = response.headers.get("x-continuum-degraded") is not None
            text = "" if response.status_code == 200 else response.text[:300]
            self.outcomes.append(Outcome(now, response.status_code, degraded, text))
            time.sleep(0.05)

    def _watch(self) -> None:
        client = httpx.Client(timeout=5)
        try:
            while not self._stop.is_set():
                for name in self.fleet.ports:
                    try:
                        # The status page takes the agent's own token (issue 18).
                        got = client.get(
                            f"{self.fleet.agent_url(name)}/v1/status",
                            headers={"Authorization": f"Bearer {self.fleet.agent_token(name)}"},
                        )
                        got.raise_for_status()
                        status = got.json()
                    except (httpx.HTTPError, ValueError, OSError, KeyError):
                        continue
                    self.held[name].append(Held(
                        time.monotonic(), int(status.get("desired_version") or 0),
                        len(status.get("partitions") or []), len(status.get("sources") or []),
                    ))  # fmt: skip
                time.sleep(0.05)
        finally:
            client.close()

    def failures(self, since: float = 0.0) -> list[Outcome]:
        return [o for o in self.outcomes if o.at >= since and o.status != 200]

    def served(self, since: float = 0.0) -> int:
        return sum(1 for o in self.outcomes if o.at >= since and o.status == 200)


@dataclass
class Baseline:
    """What every agent serves before a fault: a fault must not take any of it away."""

    partitions: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, fleet: EmulatedFleet) -> Baseline:
        made = cls()
        for name in fleet.ports:
            status = fleet.status(name)
            made.partitions[name] = len(status.get("partitions") or [])
            made.sources[name] = len(status.get("sources") or [])
        return made

    def losses(self, recorder: Recorder) -> list[str]:
        """Every moment an agent held fewer partitions or sources than before the fault."""
        out = []
        for name, seen in recorder.held.items():
            for held in seen:
                if held.partitions < self.partitions[name] or held.sources < self.sources[name]:
                    out.append(f"{name} at v{held.desired_version}: {held.partitions} "
                               f"partitions, {held.sources} sources")  # fmt: skip
        return out


def placed(fleet: EmulatedFleet) -> bool:
    """Whether the plan in force still places the fleet's deployment."""
    return DEPLOYMENT in [a["id"] for a in fleet.plan()["plan"]["apps"]]


def assert_nothing_lost(fleet: EmulatedFleet, recorder: Recorder, baseline: Baseline) -> None:
    """What every fault test asks after its fault: no request failed, no agent held less
    than before, the deployment is still placed, and no device was counted lost."""
    assert recorder.failures() == [], recorder.failures()[:5]
    assert baseline.losses(recorder) == []
    assert placed(fleet)
    entries = fleet.admin.get("/v1/audit", params={"limit": 1000}).json()
    assert not [e for e in entries if e["action"] == "trigger.device-lost"], entries[:10]
