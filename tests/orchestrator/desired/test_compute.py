"""What each agent should run under a plan: partitions with their next hops, the source's
first hop, the loading phase's merge, and what must be ready before routes switch."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

import solver
from orchestrator import audit, catalog, deployments, model_jobs
from orchestrator.db.tables import Device, PlanVersion
from orchestrator.desired import compute
from orchestrator.partitions import store_partitions
from tests.orchestrator.harness import Harness

pytestmark = pytest.mark.anyio
BASE = "http://cp.test"


def _plan(*segments: tuple[int, int, str], model: str = "cnn", app: str = "detect") -> Any:
    return lambda blocks: solver.PlanDoc.model_validate(
        {
            "status": "feasible", "solver": "test", "objective": 1.0, "bound": None,
            "solve_s": 0.0, "devices": [], "links": [],
            "apps": [{
                "id": app, "model": model, "stages": None,
                "segments": [{"first": blocks[a], "last": blocks[b], "device": d}
                             for a, b, d in segments],
                "latency_ms": {"worst": 1.0, "expected": 1.0},
                "energy_j": 0.0, "carbon_g": 0.0, "slo_met": True,
            }],
        }
    )  # fmt: skip


async def _with_partitions(fleet: Harness, ranges: list[tuple[int, int]]) -> list[str]:
    """The CNN's block names, with the partitions of `ranges` extracted and stored."""
    await fleet.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0)
    model = await fleet.run_sync(catalog.get_model, "cnn")
    path = str(fleet.artifacts.path(model.artifact_sha256))
    made = await fleet.in_pool(
        model_jobs.extract_ranges, path, None, ranges, str(fleet.artifacts.root)
    )
    await fleet.run_sync(store_partitions, "cnn", made)
    return [b["name"] for b in model.blocks]


async def _states(fleet: Harness, plan: solver.PlanDoc | None) -> dict[str, Any]:
    def run(session: Session) -> dict[str, Any]:
        return compute.for_plan(session, plan, 7, BASE)

    return await fleet.run_sync(run)


async def test_a_split_plan_chains_its_partitions_from_the_source(fleet: Harness) -> None:
    blocks = await _with_partitions(fleet, [(0, 1), (2, 3)])
    states = await _states(fleet, _plan((0, 1, "cam-1"), (2, 3, "edge-1"))(blocks))
    dep = await fleet.run_sync(deployments.get_deployment, "detect")
    token = dep.spec[deployments.TOKEN_KEY]
    assert {s["version"] for s in states.values()} == {7}
    (head,) = states["cam-1"]["partitions"]
    (tail,) = states["edge-1"]["partitions"]
    assert (head["key"], tail["key"]) == ("detect/cnn/0-1", "detect/cnn/2-3")
    assert (head["first"], head["last"], tail["first"], tail["last"]) == (
        blocks[0], blocks[1], blocks[2], blocks[3]
    )  # fmt: skip
    assert head["next_hop"] == {"device_id": "edge-1", "key": "detect/cnn/2-3",
                                "data_plane_url": "http://edge-1.test:9000"}  # fmt: skip
    assert tail["next_hop"] is None
    cam = {"device_id": "cam-1", "data_plane_url": "http://cam-1.test:9000"}
    assert head["sink"] == tail["sink"] == cam  # no sink given: results go to the source
    assert head["data_plane_token"] == tail["data_plane_token"] == token
    assert head["artifact"]["url"] == f"{BASE}/v1/artifacts/{head['artifact']['sha256']}"
    assert head["artifact"]["size"] > 0
    (source,) = states["cam-1"]["sources"]
    assert source == {"deployment": "detect", "rate_rps": 5.0, "data_plane_token": token,
                      "first_hop": {**cam, "key": "detect/cnn/0-1"},
                      "fallback_key": None}  # fmt: skip
    assert "fallback" not in head  # the default, `fallback: none`
    assert states["edge-1"]["sources"] == []


async def test_a_local_model_fallback_is_kept_on_the_source_when_its_memory_allows(
    fleet: Harness,
) -> None:
    await fleet.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0,
                       fallback="local-model")  # fmt: skip
    model = await fleet.run_sync(catalog.get_model, "cnn")
    blocks = [b["name"] for b in model.blocks]
    made = await fleet.in_pool(
        model_jobs.extract_ranges, str(fleet.artifacts.path(model.artifact_sha256)), None,
        [(0, 1), (2, len(blocks) - 1)], str(fleet.artifacts.root),
    )  # fmt: skip
    await fleet.run_sync(store_partitions, "cnn", made)
    plan = _plan((0, 1, "cam-1"), (2, len(blocks) - 1, "edge-1"))(blocks)
    states = await _states(fleet, plan)
    head, kept = states["cam-1"]["partitions"]
    (tail,) = states["edge-1"]["partitions"]
    assert head["fallback"] is tail["fallback"] is True  # both answer from what they hold
    assert kept["key"] == "detect/cnn/fallback" == states["cam-1"]["sources"][0]["fallback_key"]
    assert (kept["first_index"], kept["last_index"], kept["next_hop"]) == (0, len(blocks) - 1,
                                                                         None)  # fmt: skip
    assert kept["artifact"]["sha256"] == model.artifact_sha256  # the whole model

    def shrink(session: Session) -> None:  # no room for the whole model beside its part
        session.get(Device, "cam-1").memory_mb = model.params_mb  # type: ignore[union-attr]

    await fleet.run_sync(shrink)
    states = await _states(fleet, plan)
    assert [p["key"] for p in states["cam-1"]["partitions"]] == [head["key"]]
    assert states["cam-1"]["sources"][0]["fallback_key"] is None
    # The whole model on the source: no route leaves it, nothing to fall back from.
    whole = await _states(fleet, _plan((0, len(blocks) - 1, "cam-1"))(blocks))
    assert whole["cam-1"]["sources"][0]["fallback_key"] is None


async def test_no_plan_and_plans_of_deleted_deployments_give_empty_states(
    fleet: Harness,
) -> None:
    blocks = await _with_partitions(fleet, [(0, 3)])
    empty: dict[str, list[Any]] = {"partitions": [], "cascade_stages": [], "sources": []}
    for plan in (None, _plan((0, 3, "edge-1"), app="deleted-since")(blocks)):
        states = await _states(fleet, plan)
        assert set(states) == {"cam-1", "edge-1"}
        for device, state in states.items():
            assert state == {"device_id": device, "version": 7, **empty}


async def test_loading_keeps_the_live_routes_and_adds_the_new_partitions(
    fleet: Harness,
) -> None:
    blocks = await _with_partitions(fleet, [(0, 3), (0, 1), (2, 3)])
    old = await _states(fleet, _plan((0, 3, "edge-1"))(blocks))
    new = await _states(fleet, _plan((0, 1, "cam-1"), (2, 3, "edge-1"))(blocks))
    merged = compute.merge(old, new)
    assert compute.hosted_keys(merged["edge-1"]) == ["detect/cnn/0-3", "detect/cnn/2-3"]
    assert compute.hosted_keys(merged["cam-1"]) == ["detect/cnn/0-1"]
    # The route stays the live one until the switch: the source still sends to edge-1.
    assert merged["cam-1"]["sources"] == old["cam-1"]["sources"]
    assert merged["cam-1"]["sources"][0]["first_hop"]["key"] == "detect/cnn/0-3"
    # What must be reported ready before routes switch: only what the new plan adds.
    assert compute.added_keys(old, new) == {
        "cam-1": ["detect/cnn/0-1"],
        "edge-1": ["detect/cnn/2-3"],
    }
    assert compute.added_keys(new, new) == {}


def test_names_of_keys_and_channels() -> None:
    assert compute.partition_key("detect", "cnn", 0, 3) == "detect/cnn/0-3"
    assert compute.stage_key("triage", 1) == "triage/stage1"
    assert compute.channel("cam-1") == "desired:cam-1"


async def test_a_deployment_waiting_for_a_lost_device_keeps_its_last_placement(
    fleet: Harness,
) -> None:
    """A plan made while the deployment's source was not alive (a partition, a restart)
    leaves it waiting; its agents keep being handed its last placement, not nothing."""
    blocks = await _with_partitions(fleet, [(0, 1), (2, 3)])
    placed = _plan((0, 1, "cam-1"), (2, 3, "edge-1"))(blocks)
    empty = placed.model_copy(update={"apps": []})

    def run(session: Session) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        def row(plan: solver.PlanDoc, stats: dict[str, Any]) -> PlanVersion:
            made = PlanVersion(
                created_at=audit.now(), solver="test", status="feasible", objective=1.0,
                bound=None, solve_s=0.0, reason="", scenario={}, stats=stats,
                plan=plan.model_dump(mode="json"), in_force=False,
            )  # fmt: skip
            session.add(made)
            session.flush()
            return made

        row(placed, {})
        waiting = row(empty, {"waiting": {"detect": "device 'cam-1' is not alive"}})
        gone = row(empty, {})  # not waiting: the deployment was taken off on purpose
        held = compute.with_held(session, empty, waiting)
        return (
            compute.for_plan(session, held, 9, BASE),
            compute.for_plan(session, placed, 9, BASE),
            compute.for_plan(session, compute.with_held(session, empty, gone), 9, BASE),
        )

    held, before, dropped = await fleet.run_sync(run)
    assert held == before
    assert compute.hosted_keys(held["cam-1"]) == ["detect/cnn/0-1"]
    assert held["cam-1"]["sources"] and held["edge-1"]["partitions"]
    assert dropped["cam-1"]["sources"] == [] and dropped["edge-1"]["partitions"] == []
