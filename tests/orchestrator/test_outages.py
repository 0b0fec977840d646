"""Which errors are outages of a service (503 with Retry-After), not bugs (500)."""

from __future__ import annotations

import psycopg
import redis
import sqlalchemy
import sqlalchemy.exc

from orchestrator.outages import unavailable


def test_a_lost_redis_or_database_connection_is_an_outage() -> None:
    assert unavailable(redis.exceptions.ConnectionError("refused")) == "the live state (Redis)"
    assert unavailable(redis.exceptions.TimeoutError("slow")) == "the live state (Redis)"
    refused = psycopg.OperationalError("connection failed: Connection refused")
    assert unavailable(refused) == "the database"
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, refused)
    assert unavailable(wrapped) == "the database"


def test_other_errors_are_not_outages() -> None:
    assert unavailable(ValueError("bug")) is None
    assert unavailable(KeyError("capacity_wh")) is None
    assert unavailable(redis.exceptions.ResponseError("WRONGTYPE")) is None
    # SQLite's lock contention is no service going away.
    locked = sqlalchemy.exc.OperationalError("UPDATE", {}, Exception("database is locked"))
    assert unavailable(locked) is None
