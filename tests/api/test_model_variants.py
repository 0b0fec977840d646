"""int8 variants through HTTP: static quantization from uploaded calibration data, its
bad input, the scenario costing the variant by its measured speed, and that speed
confirmed by what a device measures."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from agents.metrics import Metrics
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


def _served(model: bytes, key: str, runs: int, metrics: Metrics, seed: int) -> None:
    """`runs` requests of the small CNN's shape through `model` with onnxruntime, one
    thread, each timed into the agent's own metrics under `key`, as its data plane does."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
        started = time.perf_counter()
        session.run(None, {name: x})
        metrics.observe(key, (time.perf_counter() - started) * 1000.0)


@pytest.mark.parametrize("backend", ["sqlite+memory"], indirect=True)
async def test_the_devices_confirm_a_variants_speed_ratio(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    """A variant's speed against its source, measured when it is made, is replaced by the
    ratio its device measures once it has served enough requests: the model view shows
    both, and the scenario costs the variant by the device's."""
    await upload(client, "cnn", cnn_bytes)
    r = await client.post("/v1/models/cnn/variants", json={"id": "cnn-int8"})
    assert r.status_code == 201, r.text
    variant = r.json()
    quantized = variant["detail"]["int8_latency_ms"] / variant["detail"]["fp32_latency_ms"]
    ratio = variant["speed_ratio"]
    assert ratio["quantized"] == pytest.approx(quantized)
    assert (ratio["source"], ratio["devices"], ratio["requests"]) == ("cnn", None, 0)
    assert ratio["planned"] == ratio["quantized"]  # nothing measured on a device yet
    assert (await client.get("/v1/models/cnn")).json()["speed_ratio"] is None  # not a variant

    agent = await enroll(client, "cam-1")
    await beat(client, agent)
    for name, model in (("fp32", "cnn"), ("int8", "cnn-int8")):
        spec = {"name": name, "model": model, "source": "cam-1", "rate_rps": 1}
        assert (await client.post("/v1/deployments", json=spec)).status_code == 201
    # The device serves both with real onnxruntime, timed as its agent times them.
    metrics = Metrics()
    int8 = (await client.get(f"/v1/artifacts/{variant['sha256']}")).content
    keys = {}
    for name, model, data in (("fp32", "cnn", cnn_bytes), ("int8", "cnn-int8", int8)):
        blocks = (await client.get(f"/v1/models/{model}")).json()["blocks"]
        keys[model] = f"{name}/{model}/0-{len(blocks) - 1}"
        _served(data, keys[model], 80, metrics, seed=len(keys))
    served = {k: m.model_dump() for k, m in metrics.snapshot().items()}
    await beat(client, agent, metrics=served)

    ratio = (await client.get("/v1/models/cnn-int8")).json()["speed_ratio"]
    measured = served[keys["cnn-int8"]]["recent_ms"] / served[keys["cnn"]]["recent_ms"]
    assert ratio["requests"] == 80
    assert ratio["devices"] == pytest.approx(measured, rel=2e-3)  # 4 significant digits
    assert ratio["planned"] == ratio["devices"]  # 80 requests are enough: the prior is gone
    models = {m["id"]: m for m in (await client.get("/v1/scenario")).json()["models"]}
    totals = {k: sum(b["gflops"] for b in m["layers"]) for k, m in models.items()}
    assert totals["cnn-int8"] / totals["cnn"] == pytest.approx(ratio["planned"], rel=2e-3)
