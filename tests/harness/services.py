"""The real PostgreSQL and Redis of this machine (or of CI): fresh databases dropped
afterwards, and Redis key prefixes deleted afterwards. When a service is down, the error
names the command that starts it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis
from psycopg import sql

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_SERVER_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}"
REDIS_URL = "redis://127.0.0.1:6379/0"

START_PG = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


class ServiceDown(RuntimeError):
    """PostgreSQL or Redis does not answer; the message says how to start it."""


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    # CREATE/DROP DATABASE cannot run inside a transaction: autocommit.
    try:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres",
            autocommit=True, connect_timeout=5,
        )  # fmt: skip
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ServiceDown(
            f"PostgreSQL is not answering at {PG_HOST}:{PG_PORT} ({first}). Start it with "
            f"`{START_PG}` or `scripts/ensure-services.sh`."
        ) from exc


@contextmanager
def fresh_database(prefix: str = "continuum_test") -> Iterator[str]:
    """An empty database (its SQLAlchemy URL), dropped on the way out."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    with admin_connection() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{PG_SERVER_URL}/{name}"
    finally:
        with admin_connection() as conn:
            # FORCE: a leaked connection (a failed test, a killed server) must not keep
            # the database alive.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def check_redis(url: str = REDIS_URL) -> str:
    """`url`, once Redis answers there."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceDown(
            f"Redis is not answering at {url} ({exc}). Start it with "
            f"`{START_REDIS}` or `scripts/ensure-services.sh`."
        ) from exc
    finally:
        client.close()
    return url


def new_prefix(kind: str = "continuum-test") -> str:
    """A live-state key prefix no other run uses."""
    return f"{kind}:{secrets.token_hex(8)}:"


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under `prefix`."""
    client = redis.Redis.from_url(url)
    try:
        stale = list(client.scan_iter(match=f"{prefix}*", count=500))
        if stale:
            client.delete(*stale)
    finally:
        client.close()
