"""Enrollment is rate-limited per source address and globally: 429 problem+json with
Retry-After, counted whatever the outcome (a wrong token costs an attempt too)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from orchestrator.carbon.boavizta import Boavizta
from orchestrator.live.memory import MemoryLiveState
from orchestrator.settings import Settings
from tests.api.conftest import ADMIN

pytestmark = pytest.mark.anyio


def _body(token: str, name: str) -> dict[str, object]:
    return {
        "token": token, "name": name, "tier": "edge", "gflops": 50, "memory_mb": 512,
        "power_w": {"idle": 1, "busy": 2}, "data_plane_url": f"http://{name}:9000",
    }  # fmt: skip


async def test_enrollment_is_limited_per_source_then_globally(
    tmp_path: Path, pool: ProcessPoolExecutor, boavizta: Boavizta
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", admin_token=ADMIN, gc_freeze=False,
        enroll_rate_per_source=3, enroll_rate_global=5, enroll_rate_window_s=600,
    )  # fmt: skip
    app = create_app(
        settings, live=MemoryLiveState(), executor=pool, migrate=True, boavizta=boavizta
    )

    def client(address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 40000)),
            base_url="http://control-plane",
            headers={"Authorization": f"Bearer {ADMIN}"},
        )

    async with app.router.lifespan_context(app), client("10.0.0.1") as a, client("10.0.0.2") as b:
        token = (await a.post("/v1/enrollment-tokens", json={})).json()["token"]
        assert (
            await a.post("/v1/agents/enroll", json=_body("cnt_enroll_wrong", "x"))
        ).status_code == 401
        for k in range(2):
            assert (
                await a.post("/v1/agents/enroll", json=_body(token, f"a-{k}"))
            ).status_code == 201
        refused = await a.post("/v1/agents/enroll", json=_body(token, "a-3"))
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) == 200  # 3 per 600 s: one per 200 s
        assert "from 10.0.0.1" in refused.json()["detail"]
        # Another address still gets in, until all sources together reach 5.
        for k in range(2):
            assert (
                await b.post("/v1/agents/enroll", json=_body(token, f"b-{k}"))
            ).status_code == 201
        everyone = await b.post("/v1/agents/enroll", json=_body(token, "b-2"))
        assert everyone.status_code == 429
        assert "all sources together" in everyone.json()["detail"]
        assert int(everyone.headers["retry-after"]) == 120  # 5 per 600 s
        # Nothing was stored for the refused attempts.
        names = {d["id"] for d in (await a.get("/v1/devices")).json()}
        assert names == {"a-0", "a-1", "b-0", "b-1"}
