"""Models, exit heads, variants, cascades and artifacts through HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from orchestrator.db.engine import make_engine
from orchestrator.db.tables import Artifact, Model
from tests.api.conftest import Backend, agent_auth, beat, enroll, fleet_with_model, upload
from tests.onnx_models import exit_head

pytestmark = pytest.mark.anyio


def stored_files(backend: Backend) -> list[Path]:
    root = backend.settings.artifact_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def row_counts(backend: Backend) -> tuple[int, int]:
    engine = make_engine(backend.settings)
    try:
        with engine.connect() as conn:
            models = conn.execute(select(func.count()).select_from(Model)).scalar_one()
            artifacts = conn.execute(select(func.count()).select_from(Artifact)).scalar_one()
            return models, artifacts
    finally:
        engine.dispose()


async def test_upload_analyse_and_download(client: httpx.AsyncClient, cnn_bytes: bytes) -> None:
    r = await upload(client, "cnn", cnn_bytes, accuracy="0.71")
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["sha256"] == hashlib.sha256(cnn_bytes).hexdigest()
    assert model["accuracy"] == 0.71
    assert len(model["blocks"]) >= 3
    assert {"name", "gflops", "params_mb", "out_mb"} == set(model["blocks"][0])
    assert model["inputs"] == [{"name": "x", "shape": [1, 3, 32, 32], "dtype": "float32"}]
    assert [m["id"] for m in (await client.get("/v1/models")).json()] == ["cnn"]
    assert (await client.get("/v1/models/cnn")).json()["blocks"] == model["blocks"]
    again = await upload(client, "cnn", cnn_bytes)
    assert again.status_code == 409

    got = await client.get(f"/v1/artifacts/{model['sha256']}")
    assert got.status_code == 200
    assert got.content == cnn_bytes
    agent = await enroll(client, "edge-1")
    by_agent = await client.get(f"/v1/artifacts/{model['sha256']}", headers=agent_auth(agent))
    assert by_agent.content == cnn_bytes
    assert (await client.get("/v1/artifacts/" + "f" * 64)).status_code == 404
    upper = await client.get(f"/v1/artifacts/{model['sha256'].upper()}")
    assert upper.status_code == 422

    assert (await client.delete("/v1/models/cnn")).status_code == 204
    assert (await client.get("/v1/models")).json() == []


async def test_oversized_upload_is_413_and_stores_nothing(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    big = b"\x08\x07" + bytes(1_200_000)  # over the tests' 1 MB cap
    r = await upload(client, "big", big)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert "1 MB" in r.json()["detail"]
    assert stored_files(backend) == []
    assert row_counts(backend) == (0, 0)


async def test_non_onnx_upload_is_422_and_stores_nothing(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    r = await upload(client, "junk", b"this is not a model at all")
    assert r.status_code == 422
    assert "not an ONNX model" in r.json()["detail"]
    assert stored_files(backend) == []
    r = await client.post("/v1/models", json={"id": "x"})
    assert r.status_code == 422
    assert "multipart" in r.json()["detail"]
    r = await client.post("/v1/models", files={"other": ("a.onnx", b"x")}, data={"id": "nofile"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("file:")
    r = await upload(client, "bad id!", b"x")
    assert r.status_code == 422
    assert r.json()["detail"].startswith("id:")
    assert stored_files(backend) == []
    assert row_counts(backend) == (0, 0)


async def test_exit_heads_calibration_and_cascades(
    client: httpx.AsyncClient, backend: Backend, cnn_bytes: bytes
) -> None:
    model = (await upload(client, "cnn", cnn_bytes)).json()
    first = model["blocks"][0]["name"]
    r = await client.post(
        "/v1/models/cnn/exits",
        files={"file": ("head.onnx", exit_head(16), "application/octet-stream")},
        data={"after": first, "threshold": "0.9"},
    )
    assert r.status_code == 201, r.text
    (head,) = r.json()["exits"]
    assert head["after"] == first
    assert head["prob"] is None
    assert head["threshold"] == 0.9
    before = len(stored_files(backend))
    r = await client.post(
        "/v1/models/cnn/exits",
        files={"file": ("head.onnx", exit_head(8), "application/octet-stream")},
        data={"after": model["blocks"][1]["name"]},
    )
    assert r.status_code == 422, r.text
    assert "[1,8,32,32]" in r.json()["detail"] and "outputs" in r.json()["detail"]
    assert len(stored_files(backend)) == before  # refused before anything was stored
    last = model["blocks"][-1]["name"]
    r = await client.post(
        "/v1/models/cnn/exits",
        files={"file": ("head.onnx", exit_head(16), "application/octet-stream")},
        data={"after": last},
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith("after:")

    r = await client.post("/v1/models/cnn/calibrate", json={"probs": {first: 0.4}})
    assert r.status_code == 200
    assert r.json()["exits"][0]["prob"] == 0.4
    r = await client.post("/v1/models/cnn/calibrate", json={"probs": {"nope": 0.4}})
    assert r.status_code == 422
    r = await client.post("/v1/models/cnn/calibrate", json={"probs": {first: 1.5}})
    assert r.status_code == 422

    cascade = {"id": "two", "stages": [{"model": "cnn", "exit_prob": 0.6}, {"model": "cnn"}]}
    r = await client.post("/v1/cascades", json=cascade)
    assert r.status_code == 201, r.text
    assert (await client.post("/v1/cascades", json=cascade)).status_code == 409
    bad = {"id": "bad", "stages": [{"model": "cnn"}, {"model": "ghost"}]}
    r = await client.post("/v1/cascades", json=bad)
    assert r.status_code == 422
    assert [c["id"] for c in (await client.get("/v1/cascades")).json()] == ["two"]
    assert (await client.get("/v1/cascades/two")).json()["stages"][0]["exit_prob"] == 0.6
    # A model in a cascade cannot be deleted from under it.
    assert (await client.delete("/v1/models/cnn")).status_code == 409
    assert (await client.delete("/v1/cascades/two")).status_code == 204
    assert (await client.delete("/v1/models/cnn")).status_code == 204


@pytest.mark.parametrize("backend", ["sqlite+memory"], indirect=True)
async def test_int8_variant(client: httpx.AsyncClient, cnn_bytes: bytes) -> None:
    # The variant goes through the registry's quantizer: one backend is enough for it.
    await upload(client, "cnn", cnn_bytes)
    r = await client.post("/v1/models/cnn/variants", json={"id": "cnn-int8", "accuracy": 0.69})
    assert r.status_code == 201, r.text
    variant = r.json()
    assert variant["parent_id"] == "cnn"
    assert variant["variant"] == "int8"
    assert variant["detail"]["int8_mb"] < variant["detail"]["fp32_mb"]
    assert variant["detail"]["method"] == "dynamic"
    r = await client.post("/v1/models/cnn/variants", json={"id": "cnn-int8"})
    assert r.status_code == 409
    assert (await client.delete("/v1/models/cnn")).status_code == 409
    # Planned at the speed measured against its source, not as fp32's FLOPs.
    await beat(client, await enroll(client, "cam-1"))
    deployment = {"name": "d", "variants": ["cnn", "cnn-int8"], "source": "cam-1", "rate_rps": 1}
    assert (await client.post("/v1/deployments", json=deployment)).status_code == 201
    models = {m["id"]: m for m in (await client.get("/v1/scenario")).json()["models"]}
    ratio = variant["detail"]["int8_latency_ms"] / variant["detail"]["fp32_latency_ms"]
    source = [b["gflops"] for b in models["cnn"]["layers"]]
    assert [b["gflops"] for b in models["cnn-int8"]["layers"]] == pytest.approx(
        [g * ratio for g in source], rel=1e-5
    )


async def test_a_profile_costs_the_blocks_by_measured_time(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    await fleet_with_model(client, cnn_bytes)
    model = (await client.get("/v1/models/cnn")).json()
    names = [b["name"] for b in model["blocks"]]
    total = sum(b["gflops"] for b in model["blocks"])
    # The last block takes as long as all the others together, whatever its FLOPs.
    given = {name: 1.0 for name in names[:-1]} | {names[-1]: float(len(names) - 1)}
    r = await client.post("/v1/models/cnn/profile", json={"block_ms": given})
    assert r.status_code == 200, r.text
    assert r.json()["detail"]["profile"] == {"block_ms": given, "measured_on": "given"}
    deployment = {"name": "d", "model": "cnn", "source": "cam-1", "rate_rps": 1}
    assert (await client.post("/v1/deployments", json=deployment)).status_code == 201
    scenario = (await client.get("/v1/scenario")).json()
    (entry,) = [m for m in scenario["models"] if m["id"] == "cnn"]
    costs = [layer["gflops"] for layer in entry["layers"]]
    assert costs[-1] == pytest.approx(total / 2, rel=1e-5)
    assert sum(costs) == pytest.approx(total, rel=1e-5)
    assert model["blocks"] == (await client.get("/v1/models/cnn")).json()["blocks"]  # FLOPs kept

    for body, field in (
        ({"block_ms": {names[0]: 1.0}}, "block_ms"),  # a block left out
        ({"block_ms": {**given, "nope": 1.0}}, "block_ms"),
        ({"block_ms": {**given, names[0]: -1.0}}, "block_ms"),
        ({"block_ms": dict.fromkeys(names, 0.0)}, "block_ms"),
    ):
        r = await client.post("/v1/models/cnn/profile", json=body)
        assert r.status_code == 422, r.text
        assert field in r.json()["detail"]
    assert (await client.post("/v1/models/nope/profile", json={})).status_code == 404


@pytest.mark.parametrize("backend", ["sqlite+memory"], indirect=True)
async def test_the_control_plane_profiles_a_model_itself(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    await upload(client, "cnn", cnn_bytes)
    r = await client.post("/v1/models/cnn/profile", json={})
    assert r.status_code == 200, r.text
    profile = r.json()["detail"]["profile"]
    assert profile["measured_on"] == "control-plane"
    assert set(profile["block_ms"]) == {b["name"] for b in r.json()["blocks"]}
    assert all(ms > 0 for ms in profile["block_ms"].values())
