"""The deployments service: creation and deletion announce themselves and trigger a
replan; the data-plane token is shown once and every later read is audited; placement
settings start at the contract's defaults."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import audit
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.services.deployments import DeploymentsService
from orchestrator.services.models import ModelsService
from tests.onnx_models import small_cnn
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio

SPEC = {"name": "cam-det", "model": "cnn", "source": "cam-1", "rate_rps": 5.0, "slo_ms": 200.0}


@pytest.fixture
async def deployments(ctx: Harness) -> DeploymentsService:
    await ctx.enroll("cam-1")
    models = ModelsService(ctx)
    upload = models.staging_file()
    upload.write_bytes(small_cnn())
    await models.upload("operator:ops", upload, "cnn.onnx", {})
    return DeploymentsService(ctx)


async def _event(events: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await asyncio.wait_for(events.get(), timeout=10)
        if message["type"] == kind:
            return message


async def test_create_answers_with_the_token_once(
    ctx: Harness, deployments: DeploymentsService
) -> None:
    async with ctx.events.subscribe() as events:
        made = await deployments.create("operator:ops", SPEC)
        announced = await _event(events, "deployment")
    assert announced["data"] == {"deployment": "cam-det", "change": "created"}
    assert (made["name"], made["status"], made["placement"]) == ("cam-det", "pending", None)
    assert made["data_plane_token"].startswith("cnt_dp_")
    assert "data_plane_token" not in made["spec"]
    (trigger,) = ctx.triggers
    assert (trigger.kind, trigger.target, trigger.replan) == (
        "deployment-created", "deployment:cam-det", True,
    )  # fmt: skip
    listed = await deployments.views()
    assert [d["name"] for d in listed] == ["cam-det"]
    assert "data_plane_token" not in listed[0] and "data_plane_token" not in listed[0]["spec"]
    assert await deployments.token("operator:ops", "cam-det") == made["data_plane_token"]
    reads = [e for e in await ctx.run_sync(audit.recent, 50) if e.action == "deployment.token_read"]
    assert [(e.actor, e.target) for e in reads] == [("operator:ops", "deployment:cam-det")]


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({**SPEC, "model": "ghost"}, Invalid, "model: unknown model 'ghost'"),
        ({**SPEC, "source": "ghost"}, Invalid, "source: unknown device 'ghost'"),
        ({**SPEC, "variants": ["cnn"]}, Invalid, "model: give exactly one of"),
    ],
)
async def test_a_bad_deployment_is_refused(
    ctx: Harness, deployments: DeploymentsService, spec: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        await deployments.create("operator:ops", spec)
    assert await deployments.views() == []
    assert ctx.triggers == []


async def test_a_taken_name_conflicts(deployments: DeploymentsService) -> None:
    await deployments.create("operator:ops", SPEC)
    with pytest.raises(Conflict, match="a deployment 'cam-det' already exists"):
        await deployments.create("operator:ops", SPEC)


async def test_delete(ctx: Harness, deployments: DeploymentsService) -> None:
    await deployments.create("operator:ops", SPEC)
    await deployments.delete("operator:ops", "cam-det")
    assert await deployments.views() == []
    assert ctx.invalidations == 1
    assert [t.kind for t in ctx.triggers] == ["deployment-created", "deployment-deleted"]
    with pytest.raises(NotFound, match="no deployment 'cam-det'"):
        await deployments.view("cam-det")
    with pytest.raises(NotFound):
        await deployments.token("operator:ops", "cam-det")


async def test_placement_settings(ctx: Harness, deployments: DeploymentsService) -> None:
    defaults = await deployments.placement()
    assert defaults == {
        "energy": 1.0, "carbon": 0.0, "latency": 0.0, "migration": 0.0,
        "horizon_h": 8.0, "max_utilization": 0.8, "hysteresis": 0.05,
    }  # fmt: skip
    changed = await deployments.update_placement("operator:ops", {"carbon": 0.5, "energy": 0.5})
    assert changed == {**defaults, "carbon": 0.5, "energy": 0.5}
    assert await deployments.placement() == changed
    assert [r.reason for r in ctx.replans] == ["placement settings changed by operator:ops"]
