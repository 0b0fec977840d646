"""Fixtures of the API tests: an app per test over one of three backend combinations.

The combinations cover both databases and both live-state backends without running the
full product: SQLite + in-process, PostgreSQL + Redis, SQLite + Redis.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from orchestrator.carbon.boavizta import Boavizta
from orchestrator.live.memory import MemoryLiveState
from orchestrator.live.redis import RedisLiveState
from orchestrator.settings import Settings
from tests.onnx_models import small_cnn

ADMIN = "cnt_admin_test-token-for-the-api-tests"
BACKENDS = ["sqlite+memory", "postgres+redis", "sqlite+redis"]


@pytest.fixture(scope="session")
def pool() -> Iterator[ProcessPoolExecutor]:
    """One solver/analysis worker for the whole session: spawning one per app would cost
    a second of imports each time."""
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture(scope="session")
def boavizta() -> Iterator[Boavizta]:
    """One Boavizta worker for the session's apps: each app starting its own would import
    Boavizta's tables again (a second or more of CPU, and its stop waiting for it)."""
    client = Boavizta()
    yield client
    client.close()


@dataclass
class Backend:
    name: str
    settings: Settings
    redis_url: str | None
    prefix: str
    boavizta: Boavizta

    def live(self) -> Any:
        if self.redis_url is None:
            return MemoryLiveState()
        return RedisLiveState(self.redis_url, prefix=self.prefix)


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, live_prefix: str, boavizta: Boavizta
) -> Backend:
    name: str = request.param
    # fresh_pg: an empty database for this test (tests/harness/fixtures.py).
    database_url = request.getfixturevalue("fresh_pg") if name.startswith("postgres") else None
    redis_url = request.getfixturevalue("redis_url") if name.endswith("redis") else None
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        admin_token=ADMIN,
        solver="ilp",
        solver_time_limit_s=20,
        # Devices stay alive for the whole test between explicit heartbeats.
        heartbeat_interval_s=60,
        long_poll_max_s=5,
        max_upload_mb=1.0,
        # Many apps come and go in one test process: nothing of theirs may be frozen.
        gc_freeze=False,
    )
    return Backend(name, settings, redis_url, live_prefix, boavizta)


def make_app(backend: Backend, pool: ProcessPoolExecutor, live: Any = None) -> FastAPI:
    """`live`: the backend's live state made by the caller (default: a new one)."""
    # Every app migrates its database at start, PostgreSQL included (the fresh database
    # has no schema yet; production runs `continuum db upgrade` instead).
    live = backend.live() if live is None else live
    return create_app(
        backend.settings, live=live, executor=pool, migrate=True, boavizta=backend.boavizta
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan around an in-process client that sends the admin token."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://control-plane",
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as c,
    ):
        yield c


@pytest.fixture
async def client(backend: Backend, pool: ProcessPoolExecutor) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(make_app(backend, pool)) as c:
        yield c


@pytest.fixture(scope="session")
def cnn_bytes() -> bytes:
    return small_cnn()


# -- helpers over HTTP ---------------------------------------------------------------------
DEVICE_SPECS: dict[str, dict[str, Any]] = {
    "cam-1": {"tier": "device", "gflops": 5, "memory_mb": 256, "power_w": {"idle": 1, "busy": 4},
              "battery": {"capacity_wh": 60, "level_pct": 80, "min_pct": 20}},
    "edge-1": {"tier": "edge", "gflops": 200, "memory_mb": 4096,
               "power_w": {"idle": 10, "busy": 40}},
}  # fmt: skip


async def enroll(
    client: httpx.AsyncClient, name: str, agent_token: str = "", **overrides: Any
) -> dict[str, Any]:
    """`agent_token`: the device's current one, which re-enrolling it needs."""
    response = await try_enroll(client, name, agent_token, **overrides)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def try_enroll(
    client: httpx.AsyncClient, name: str, agent_token: str = "", **overrides: Any
) -> httpx.Response:
    token = (await client.post("/v1/enrollment-tokens", json={})).json()["token"]
    body = {
        "token": token,
        "name": name,
        "data_plane_url": f"http://{name}.local:9000",
        **DEVICE_SPECS.get(name, DEVICE_SPECS["edge-1"]),
        **overrides,
    }
    auth = f"Bearer {agent_token}" if agent_token else ""
    return await client.post("/v1/agents/enroll", json=body, headers={"Authorization": auth})


def agent_auth(agent: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent['agent_token']}"}


async def beat(client: httpx.AsyncClient, agent: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(
        f"/v1/agents/{agent['device_id']}/heartbeat",
        json=body,
        headers=agent_auth(agent),
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def upload(
    client: httpx.AsyncClient, model_id: str, data: bytes, **fields: str
) -> httpx.Response:
    return await client.post(
        "/v1/models",
        files={"file": (f"{model_id}.onnx", data, "application/octet-stream")},
        data={"id": model_id, **fields},
    )


async def fleet_with_model(client: httpx.AsyncClient, cnn: bytes) -> dict[str, dict[str, Any]]:
    """Two alive devices, a declared link, and the small CNN uploaded."""
    agents = {name: await enroll(client, name) for name in ("cam-1", "edge-1")}
    for agent in agents.values():
        await beat(client, agent, battery_pct=80)
    link = {"a": "cam-1", "b": "edge-1", "mbps": 50, "rtt_ms": 4, "j_per_mb": 0.5}
    assert (await client.post("/v1/links", json=link)).status_code == 201
    response = await upload(client, "cnn", cnn, accuracy="0.7")
    assert response.status_code == 201, response.text
    return agents
