"""The harness as pytest fixtures, for every test package (a plugin registered in
tests/conftest.py): `pg_url`, `fresh_pg`, `redis_url`, `live_prefix`, `processes`,
`group_processes`, `net` and `chromium`. A service that is down FAILS the test with the
command that starts it, as does a missing Chromium: these tests never skip. A
network-namespace test skips where namespaces cannot be made, except where
`CONTINUUM_REQUIRE_NETNS=1` (CI) makes that a failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import netns
from tests.harness.processes import Launcher
from tests.harness.services import (
    ServiceDown,
    check_redis,
    delete_prefix,
    fresh_database,
    new_prefix,
)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser) for a test module
    (`tests.harness.console.browser`)."""
    from tests.harness.console import NoBrowser, browser

    try:
        with browser() as launched:
            yield launched
    except NoBrowser as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for the whole test session, dropped at the end.

    Shared by every test of the session: a test that migrates it should leave it at
    `base` (downgrade) or at `head` with its rows deleted, as it found it.
    """
    try:
        with fresh_database("continuum_test") as url:
            yield url
    except ServiceDown as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """An empty PostgreSQL database for one test, dropped after it."""
    try:
        with fresh_database("continuum_one") as url:
            yield url
    except ServiceDown as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis of this machine, checked to answer. Isolate keys with `live_prefix`."""
    try:
        return check_redis()
    except ServiceDown as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def live_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix no other test uses; with Redis, its keys are deleted afterwards."""
    prefix = new_prefix()
    yield prefix
    if "redis_url" in request.fixturenames:
        delete_prefix(request.getfixturevalue("redis_url"), prefix)


@pytest.fixture
def processes() -> Iterator[Launcher]:
    """A launcher whose processes are all stopped at the end of the test."""
    launcher = Launcher()
    yield launcher
    launcher.stop_all()


@pytest.fixture
def group_processes() -> Iterator[Launcher]:
    """The same, each process in a session of its own, killed as a group (its solver
    workers too, as when a node dies)."""
    launcher = Launcher(group=True)
    yield launcher
    launcher.stop_all()


def need_netns() -> None:
    """Skip a network-namespace test where namespaces cannot be made (saying why), or FAIL
    it when `CONTINUUM_REQUIRE_NETNS=1` (CI, as root) says it must run."""
    reason = netns.unavailable()
    if reason is None:
        return
    if netns.required():
        pytest.fail(f"{netns.REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def net() -> Iterator[netns.Net]:
    """An empty test network (see tests/harness/netns.py), removed afterwards."""
    need_netns()
    made = netns.Net()
    try:
        yield made
    finally:
        made.close()
