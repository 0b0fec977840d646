"""int8 variants through HTTP: static quantization from uploaded calibration data, its
bad input, and the scenario costing the variant by its measured speed."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest

from tests.api.conftest import Backend, beat, enroll, upload
from tests.api.test_models import row_counts, stored_files

pytestmark = pytest.mark.anyio


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def calibration(samples: int = 8, seed: int = 0) -> bytes:
    """A batch of the small CNN's inputs (1x3x32x32 each)."""
    rng = np.random.default_rng(seed)
    return npz(x=rng.standard_normal((samples, 3, 32, 32)).astype(np.float32))


async def post_static(
    client: httpx.AsyncClient, data: bytes, filename: str = "calib.npz", **fields: str
) -> httpx.Response:
    return await client.post(
        "/v1/models/cnn/variants",
        files={"data": (filename, data, "application/octet-stream")},
        data={"id": "cnn-int8", **fields},
    )


# Quantizing is the registry's work, measured once per backend: SQLite and PostgreSQL.
@pytest.mark.parametrize("backend", ["sqlite+memory", "postgres+redis"], indirect=True)
async def test_a_static_variant_from_calibration_data(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    await upload(client, "cnn", cnn_bytes)
    r = await post_static(client, calibration(), accuracy="0.7")
    assert r.status_code == 201, r.text
    variant = r.json()
    assert (variant["parent_id"], variant["variant"], variant["accuracy"]) == ("cnn", "int8", 0.7)
    detail = variant["detail"]
    assert detail["method"] == "static"
    assert detail["int8_latency_ms"] > 0 and detail["fp32_latency_ms"] > 0
    assert detail["speedup"] == pytest.approx(detail["fp32_latency_ms"] / detail["int8_latency_ms"])
    # Static QDQ: the graph carries QuantizeLinear/DequantizeLinear around its int8 kernels.
    model = (await client.get(f"/v1/artifacts/{variant['sha256']}")).content
    assert b"QuantizeLinear" in model and b"DequantizeLinear" in model
    # Planned at the measured ratio, as a dynamic variant is: the QDQ graph's blocks are
    # not its source's, so its own layers are scaled to the source's total times the ratio.
    await beat(client, await enroll(client, "cam-1"))
    deployment = {"name": "d", "variants": ["cnn", "cnn-int8"], "source": "cam-1", "rate_rps": 1}
    assert (await client.post("/v1/deployments", json=deployment)).status_code == 201
    models = {m["id"]: m for m in (await client.get("/v1/scenario")).json()["models"]}
    ratio = detail["int8_latency_ms"] / detail["fp32_latency_ms"]
    source = [b["gflops"] for b in models["cnn"]["layers"]]
    variant_total = sum(b["gflops"] for b in models["cnn-int8"]["layers"])
    assert variant_total == pytest.approx(sum(source) * ratio, rel=1e-4)


@pytest.mark.parametrize("backend", ["sqlite+memory"], indirect=True)
async def test_bad_calibration_data_is_refused_naming_the_field(
    client: httpx.AsyncClient, backend: Backend, cnn_bytes: bytes
) -> None:
    await upload(client, "cnn", cnn_bytes)
    before = (row_counts(backend), sorted(stored_files(backend)))
    rng = np.random.default_rng(1)
    wrong_shape = npz(x=rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    nan = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    nan[2, 1, 0, 0] = np.nan
    cases = [
        (b"this is not numpy", "must be a .npy or .npz"),
        (wrong_shape, "has shape [4,3,16,16]"),
        (npz(x=nan), "NaN or infinite"),
    ]
    for data, message in cases:
        r = await post_static(client, data)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["field"] == "data", r.json()
        assert message in r.json()["detail"]
    # Over the upload limit (1 MB in these tests): 413 before it is all read.
    r = await post_static(client, calibration(samples=100))
    assert r.status_code == 413
    assert r.json()["detail"].startswith("data:")
    # A form without the file, and form fields that do not validate.
    r = await client.post("/v1/models/cnn/variants", data={"id": "cnn-int8"}, files={"x": b"1"})
    assert (r.status_code, r.json()["field"]) == (422, "data")
    r = await post_static(client, calibration(), accuracy="2")
    assert (r.status_code, r.json()["field"]) == (422, "accuracy")
    r = await post_static(client, calibration(), kind="fp16")
    assert (r.status_code, r.json()["field"]) == (422, "kind")
    r = await client.post(
        "/v1/models/cnn/variants", files={"data": ("c.npz", calibration())}, data={"id": "no way"}
    )
    assert (r.status_code, r.json()["field"]) == (422, "id")
    # The JSON body keeps its validation (FastAPI's, naming the field).
    r = await client.post("/v1/models/cnn/variants", json={"id": "cnn-int8", "accuracy": 3})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.accuracy"
    assert (await client.get("/v1/models/cnn-int8")).status_code == 404
    assert (row_counts(backend), sorted(stored_files(backend))) == before
