"""Fixtures of the orchestrator's tests.

`pg_url`, `redis_url` and `live_prefix` live in `tests/services.py`, a plugin loaded by
`tests/conftest.py`, so that the CLI and API tests can use them too.
"""
