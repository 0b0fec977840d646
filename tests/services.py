"""Fixtures for the real PostgreSQL and Redis of this machine (or of CI).

A pytest plugin (registered in tests/conftest.py) so that every test package can use
`pg_url`, `redis_url` and `live_prefix`. When a service is down the fixture FAILS with the
command that starts it: these tests never skip.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
REDIS_URL = "redis://127.0.0.1:6379/0"

START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    # CREATE/DROP DATABASE cannot run inside a transaction: autocommit.
    return psycopg.connect(
        host=PG_HOST,
        port=PG_PORT,
        user="postgres",
        dbname="postgres",
        autocommit=True,
        connect_timeout=5,
    )


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for the whole test session, dropped at the end.

    Shared by every test of the session: a test that migrates it should leave it at
    `base` (downgrade) or at `head` with its rows deleted, as it found it.
    """
    name = f"continuum_test_{secrets.token_hex(6)}"
    try:
        with _admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.fail(
            f"PostgreSQL is not answering at {PG_HOST}:{PG_PORT} ({first}). Start it with "
            f"`{START_PG}` or `scripts/ensure-services.sh`.",
            pytrace=False,
        )
    yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with _admin() as conn:
        # FORCE: a leaked connection from a failed test must not keep the database alive.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis of this machine, checked to answer. Isolate keys with `live_prefix`."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not answering at {REDIS_URL} ({exc}). Start it with "
            f"`{START_REDIS}` or `scripts/ensure-services.sh`.",
            pytrace=False,
        )
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def live_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix no other test uses; with Redis, its keys are deleted afterwards."""
    prefix = f"continuum-test:{secrets.token_hex(8)}:"
    yield prefix
    if "redis_url" in request.fixturenames:
        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        try:
            stale = list(client.scan_iter(match=f"{prefix}*", count=500))
            if stale:
                client.delete(*stale)
        finally:
            client.close()
