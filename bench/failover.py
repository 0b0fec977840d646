"""Failover benchmark: how long the reconcile loop has no leader after its leader dies.

Real `continuum server` processes (--replicas, 2 by default) on one fresh PostgreSQL
database (created, migrated with `continuum db upgrade`, dropped at the end) and one Redis
(a key prefix of their own, deleted at the end), leader lease --ttl. One run: find the
leader from every replica's /metrics (`continuum_reconcile_leader`), read the lease left on
the lock (Redis PTTL), SIGKILL the leader's process group (no release, no clean stop),
then poll the other replicas' /metrics every --poll seconds until one leads. The takeover
time is from the kill to that poll, so it is late by up to one poll. The killed replica
is restarted and rejoins as a follower before the next run.

The expected figure: the lease left at the kill (between 2/3 TTL and TTL: the leader
renews every TTL/3) plus up to 0.5 s (a follower retries every 0.5 s).

    python bench/failover.py [--runs 10] [--ttl 2,3] [--replicas 2] [--poll 0.02]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
from machine import cpu_model  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from psycopg import sql  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

ADMIN = "cnt_admin_bench_" + secrets.token_hex(12)
CONTINUUM = str(Path(sys.executable).with_name("continuum"))
LOCK = "lock:reconcile"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Replica:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    def start(self) -> None:
        with self.log.open("ab") as out:
            # Its own session: killing the group also takes its solver workers.
            self.popen = subprocess.Popen(
                [CONTINUUM, "server", "--port", str(self.port), "--log-level", "warning"],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def leads(self) -> bool:
        response = self.client.get("/metrics")
        response.raise_for_status()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "continuum_reconcile_leader":
                    return sample.value == 1
        return False

    def signal_group(self, sig: signal.Signals) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=15)

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=15)
        self.signal_group(signal.SIGKILL)
        self.popen.wait(timeout=15)
        self.client.close()


def _wait(what: str, check: Callable[[], bool], timeout_s: float, replicas: list[Replica]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return
        for r in replicas:
            if r.popen is not None and r.popen.poll() is not None:
                sys.exit(f"{r.name} exited:\n{r.log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    sys.exit(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _ready(r: Replica) -> bool:
    return r.client.get("/readyz").status_code == 200


def measure(ttl: float, runs: int, count: int, poll: float, pg: str, redis_url: str,
            data: Path) -> list[tuple[float, float]]:  # fmt: skip
    """(lease left at the kill, takeover) per run, in seconds."""
    name = f"continuum_bench_failover_{secrets.token_hex(6)}"
    prefix = f"continuum-bench:{secrets.token_hex(8)}:"
    admin = psycopg.connect(pg.replace("+psycopg", "") + "/postgres", autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    replicas: list[Replica] = []
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
        env.update(CONTINUUM_DATA_DIR=str(data), CONTINUUM_ADMIN_TOKEN=ADMIN,
                   CONTINUUM_DATABASE_URL=f"{pg}/{name}", CONTINUUM_REDIS_URL=redis_url,
                   CONTINUUM_REDIS_PREFIX=prefix, CONTINUUM_LEADER_TTL_S=str(ttl))  # fmt: skip
        subprocess.run([CONTINUUM, "db", "upgrade"], env=env, check=True, capture_output=True)
        for i in range(count):
            r = Replica(f"replica-{i}", _free_port(), env, data / f"replica-{i}-ttl{ttl:g}.log")
            r.start()
            replicas.append(r)
        for r in replicas:
            _wait(f"{r.name} to serve", partial(_ready, r), 90, replicas)
        samples: list[tuple[float, float]] = []
        for run in range(runs):
            _wait("one leader", lambda: sum(r.leads() for r in replicas) == 1, 30, replicas)
            (leader,) = [r for r in replicas if r.leads()]
            others = [r for r in replicas if r is not leader]
            lease_s = int(store.pttl(prefix + LOCK)) / 1000
            read_at = time.monotonic()
            leader.kill()
            killed_at = time.monotonic()
            lease_left = lease_s - (killed_at - read_at)
            deadline = killed_at + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if any(r.leads() for r in others):
                        break
                if time.monotonic() > deadline:
                    sys.exit(f"no takeover within 60 s (ttl {ttl:g} s)")
                time.sleep(poll)
            takeover = time.monotonic() - killed_at
            samples.append((lease_left, takeover))
            print(f"ttl {ttl:g} s, run {run + 1}: lease left {lease_left:.2f} s, "
                  f"takeover {takeover:.2f} s", file=sys.stderr)  # fmt: skip
            leader.start()  # rejoins as a follower
            _wait(f"{leader.name} to serve again", partial(_ready, leader), 90, replicas)
        return samples
    finally:
        for r in replicas:
            r.stop()
        stale = list(store.scan_iter(match=f"{prefix}*", count=500))
        if stale:
            store.delete(*stale)
        store.close()
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="kills per lease TTL")
    parser.add_argument("--ttl", default="2,3", help="leader lease TTLs (s), comma-separated")
    parser.add_argument("--replicas", type=int, default=2, help="control-plane processes")
    parser.add_argument("--poll", type=float, default=0.02, help="takeover poll period (s)")
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL, without a database")  # fmt: skip
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.runs < 1 or args.replicas < 2 or args.poll <= 0:
        parser.error("--runs must be >= 1, --replicas >= 2 and --poll > 0")
    try:
        ttls = [float(t) for t in args.ttl.split(",")]
    except ValueError:
        parser.error(f"--ttl: expected seconds separated by commas, got {args.ttl!r}")
    if any(t <= 0 for t in ttls):
        parser.error("--ttl: every lease must be > 0 s")
    # SIGTERM (a `timeout`, a CI cancel) unwinds like Ctrl-C: the servers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = []
    with tempfile.TemporaryDirectory(prefix="continuum-failover-") as tmp:
        for ttl in ttls:
            samples = measure(ttl, args.runs, args.replicas, args.poll, args.pg, args.redis,
                              Path(tmp))  # fmt: skip
            rows.append((ttl, samples))
    table = Table(title="failover (s): leader SIGKILLed -> another replica leads")
    for col in ("ttl", "runs", "lease left p50", "takeover p50", "p95", "max",
                "takeover - lease p50", "max", "bound ttl+0.5"):  # fmt: skip
        table.add_column(col, justify="right")
    for ttl, samples in rows:
        lease = [s[0] for s in samples]
        takeover = [s[1] for s in samples]
        wait = [t - lease_left for lease_left, t in samples]
        table.add_row(
            f"{ttl:g}", str(len(samples)), f"{statistics.median(lease):.2f}",
            f"{statistics.median(takeover):.2f}", f"{_pct(takeover, 0.95):.2f}",
            f"{max(takeover):.2f}", f"{statistics.median(wait):.2f}", f"{max(wait):.2f}",
            f"{ttl + 0.5:.1f}",
        )  # fmt: skip
    Console(width=140).print(table)
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}; "
          f"{args.replicas} replicas; poll {args.poll:g} s; load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip


if __name__ == "__main__":
    main()
