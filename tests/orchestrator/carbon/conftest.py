"""The Boavizta worker, shared by the carbon tests (its first start imports its tables)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.carbon.boavizta import Boavizta, default_python


@pytest.fixture(scope="session")
def boavizta() -> Iterator[Boavizta]:
    if not default_python().exists():
        pytest.fail(f"no Boavizta environment at {default_python()}: run `make boavizta`")
    client = Boavizta()
    yield client
    client.close()
