"""Which errors mean that a service the control plane stands on is down for now (Redis,
PostgreSQL): the API answers those 503 with Retry-After, not 500, so that agents and
operators retry (an agent's heartbeat backs off and comes back when the service does).

Recognised by the exception's class path, without importing the client libraries: an
embedded control plane never loads the Redis client."""

from __future__ import annotations

# (module prefix, class name) of the errors a lost connection raises.
_TRANSIENT = {
    ("redis", "ConnectionError"): "the live state (Redis)",
    ("redis", "TimeoutError"): "the live state (Redis)",
    ("redis", "BusyLoadingError"): "the live state (Redis)",
    ("sqlalchemy", "OperationalError"): "the database",
    ("sqlalchemy", "InterfaceError"): "the database",
    ("psycopg", "OperationalError"): "the database",
    ("psycopg", "InterfaceError"): "the database",
}


def unavailable(exc: BaseException) -> str | None:
    """What is unreachable when `exc` says a service is down, else None."""
    for klass in type(exc).__mro__:
        root = klass.__module__.split(".", 1)[0]
        what = _TRANSIENT.get((root, klass.__name__))
        if what is not None:
            if root == "sqlalchemy" and "locked" in str(exc):
                return None  # SQLite's "database is locked" is no outage
            return what
    return None
