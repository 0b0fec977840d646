"""The models and cascades services on a real ONNX model: analysis before storage,
nothing stored (and the staged upload gone) on any refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from models_registry.errors import ModelError
from orchestrator import catalog
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.services.models import CascadesService, ModelsService
from tests.onnx_models import exit_head, small_cnn
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio


def staged(models: ModelsService, data: bytes) -> Path:
    path = models.staging_file()
    path.write_bytes(data)
    return path


def stored(ctx: Harness) -> list[str]:
    """The artifact store's files, staging excluded."""
    return sorted(p.name for p in ctx.artifacts.root.glob("??/*"))


async def model_ids(ctx: Harness) -> list[str]:
    return [m.id for m in await ctx.run_sync(catalog.list_models)]


async def test_upload_analyses_and_stores_the_model(ctx: Harness) -> None:
    models = ModelsService(ctx)
    upload = staged(models, small_cnn())
    view = await models.upload("operator:ops", upload, "cnn.onnx", {"accuracy": "0.7"})
    assert not upload.exists()
    assert (view.id, view.accuracy, view.parent_id, view.variant) == ("cnn", 0.7, None, None)
    assert len(view.blocks) >= 3 and view.exits == []
    assert view.total_gflops > 0 and view.detail["partitions"] == []
    assert stored(ctx) == [view.sha256]
    (summary,) = await models.summaries()
    assert (summary.id, summary.blocks, summary.sha256) == ("cnn", len(view.blocks), view.sha256)


@pytest.mark.parametrize(
    ("filename", "fields", "message"),
    [
        ("cnn.onnx", {"accuracy": "1.5"}, r"accuracy: must be within \[0, 1\]"),
        ("cnn.onnx", {"accuracy": "high"}, "accuracy: not a number"),
        ("cnn.onnx", {"id": "no spaces"}, "id: must be 1-64 characters"),
        ("cnn.onnx", {"input_shape": "x=1,three"}, "input_shape:"),
    ],
)
async def test_a_bad_form_stores_nothing(
    ctx: Harness, filename: str, fields: dict[str, str], message: str
) -> None:
    models = ModelsService(ctx)
    upload = staged(models, small_cnn())
    with pytest.raises(Invalid, match=message):
        await models.upload("operator:ops", upload, filename, fields)
    assert not upload.exists()
    assert stored(ctx) == [] and await model_ids(ctx) == []


async def test_a_file_that_is_not_onnx_stores_nothing(ctx: Harness) -> None:
    models = ModelsService(ctx)
    upload = staged(models, b"not a model")
    with pytest.raises(ModelError):
        await models.upload("operator:ops", upload, "junk.onnx", {})
    assert not upload.exists()
    assert stored(ctx) == [] and await model_ids(ctx) == []


async def test_a_taken_id_conflicts_and_the_upload_is_removed(ctx: Harness) -> None:
    models = ModelsService(ctx)
    await models.upload("operator:ops", staged(models, small_cnn()), "cnn.onnx", {})
    again = staged(models, small_cnn(seed=1))
    with pytest.raises(Conflict, match="a model 'cnn' already exists"):
        await models.upload("operator:ops", again, "other.onnx", {"id": "cnn"})
    assert not again.exists() and len(stored(ctx)) == 1


async def test_exit_heads_and_calibration(ctx: Harness) -> None:
    models = ModelsService(ctx)
    model = await models.upload("operator:ops", staged(models, small_cnn()), "cnn.onnx", {})
    first = model.blocks[0]["name"]
    view = await models.upload_exit_head(
        "operator:ops", "cnn", staged(models, exit_head(16)), {"after": first}
    )
    (head,) = view.exits
    assert (head.after, head.prob, head.threshold) == (first, None, 0.8)
    (replan,) = ctx.replans
    assert replan.reason == f"exit head after {first} added to cnn by operator:ops"

    misfit = staged(models, exit_head(8))
    with pytest.raises(ModelError, match=r"\[1,8,32,32\]"):
        await models.upload_exit_head(
            "operator:ops", "cnn", misfit, {"after": model.blocks[1]["name"]}
        )
    assert not misfit.exists() and len(stored(ctx)) == 2
    with pytest.raises(Invalid, match="after: the block the exit head follows is required"):
        await models.upload_exit_head("operator:ops", "cnn", staged(models, exit_head(16)), {})

    calibrated = await models.calibrate("operator:ops", "cnn", {first: 0.4})
    assert calibrated.exits[0].prob == 0.4
    assert ctx.replans[-1].reason == "exit probabilities of cnn calibrated by operator:ops"
    with pytest.raises(Invalid, match="probs: model 'cnn' has no exit head after 'nope'"):
        await models.calibrate("operator:ops", "cnn", {"nope": 0.4, first: 0.9})
    assert (await models.view("cnn")).exits[0].prob == 0.4  # nothing half-written


async def test_int8_variant(ctx: Harness) -> None:
    models = ModelsService(ctx)
    await models.upload("operator:ops", staged(models, small_cnn()), "cnn.onnx", {})
    variant = await models.add_int8_variant("operator:ops", "cnn", "cnn-int8", 0.69)
    assert (variant.parent_id, variant.variant, variant.accuracy) == ("cnn", "int8", 0.69)
    assert variant.detail["int8_mb"] < variant.detail["fp32_mb"]
    with pytest.raises(Conflict, match="a model 'cnn-int8' already exists"):
        await models.add_int8_variant("operator:ops", "cnn", "cnn-int8", None)
    with pytest.raises(Conflict, match="has variants cnn-int8"):
        await models.delete("operator:ops", "cnn")
    with pytest.raises(NotFound, match="no model 'ghost'"):
        await models.add_int8_variant("operator:ops", "ghost", "ghost-int8", None)


async def test_cascades_and_deletion(ctx: Harness) -> None:
    models = ModelsService(ctx)
    cascades = CascadesService(ctx)
    await models.upload("operator:ops", staged(models, small_cnn()), "cnn.onnx", {})
    stages = [{"model": "cnn", "exit_prob": 0.6, "threshold": None}, {"model": "cnn"}]
    made = await cascades.create("operator:ops", "two", stages)
    assert (made.id, made.stages[0]["exit_prob"]) == ("two", 0.6)
    with pytest.raises(Conflict):
        await cascades.create("operator:ops", "two", stages)
    with pytest.raises(Invalid, match=r"stages\[1\].model: unknown model 'ghost'"):
        bad = [{"model": "cnn", "exit_prob": 0.5}, {"model": "ghost"}]
        await cascades.create("operator:ops", "bad", bad)
    assert [c.id for c in await cascades.views()] == ["two"]
    assert (await cascades.view("two")).stages == stages
    with pytest.raises(Conflict, match="is a stage of cascades two"):
        await models.delete("operator:ops", "cnn")
    await cascades.delete("operator:ops", "two")
    with pytest.raises(NotFound):
        await cascades.view("two")
    await models.delete("operator:ops", "cnn")
    assert await model_ids(ctx) == []
