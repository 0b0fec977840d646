"""Models: upload (multipart, streamed, capped), list, get, variants, exit heads,
calibration; and cascades of models."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, Request, status

from api.deps import ControlPlaneDep, Operator
from api.schemas import (
    CalibrateRequest,
    CascadeRequest,
    CascadeView,
    ExitHeadView,
    ModelSummary,
    ModelView,
    VariantRequest,
)
from api.upload import read_upload
from models_registry.errors import ModelError
from models_registry.loading import parse_input_shapes
from orchestrator import catalog
from orchestrator.db.tables import ExitHead, Model
from orchestrator.errors import Invalid

router = APIRouter(tags=["models"])


def _multipart(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": fields, "required": required}
                }
            },
        }
    }


_MODEL_FORM = _multipart(
    {
        "file": {"type": "string", "format": "binary", "description": "the ONNX model"},
        "id": {"type": "string", "description": "model id (default: the file name's stem)"},
        "accuracy": {"type": "number", "description": "top-1 accuracy in [0, 1], if known"},
        "input_shape": {
            "type": "string",
            "description": "static shapes for dynamic inputs: NAME=1,3,224,224[;NAME=...]",
        },
    },
    ["file"],
)
_EXIT_FORM = _multipart(
    {
        "file": {"type": "string", "format": "binary", "description": "the exit head (ONNX)"},
        "after": {"type": "string", "description": "the block the head follows"},
        "prob": {"type": "number", "description": "probability of exiting there, if known"},
        "threshold": {"type": "number", "description": "confidence threshold (default 0.8)"},
    },
    ["file", "after"],
)


def _float(fields: dict[str, str], name: str, low: float, high: float) -> float | None:
    raw = fields.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Invalid(f"{name}: not a number ({raw!r})", field=name) from None
    if not low <= value <= high:
        raise Invalid(f"{name}: must be within [{low:g}, {high:g}] (got {value:g})", field=name)
    return value


def _shapes(fields: dict[str, str]) -> dict[str, list[int]] | None:
    raw = fields.get("input_shape", "").strip()
    if not raw:
        return None
    try:
        parsed = parse_input_shapes([s for s in raw.split(";") if s.strip()])
    except ModelError as exc:
        raise Invalid(f"input_shape: {exc}", field="input_shape") from None
    return {name: list(shape) for name, shape in parsed.items()}


def _summary(m: Model) -> ModelSummary:
    return ModelSummary(
        id=m.id,
        sha256=m.artifact_sha256,
        parent_id=m.parent_id,
        variant=m.variant,
        accuracy=m.accuracy,
        input_mb=m.input_mb,
        total_gflops=m.total_gflops,
        params_mb=m.params_mb,
        blocks=len(m.blocks),
        created_at=m.created_at,
    )


def _exit(h: ExitHead) -> ExitHeadView:
    return ExitHeadView(
        after=h.after,
        sha256=h.artifact_sha256,
        gflops=h.gflops,
        params_mb=h.params_mb,
        prob=h.prob,
        threshold=h.threshold,
    )


async def _view(cp: ControlPlaneDep, model_id: str) -> ModelView:
    def read(session: Any) -> tuple[Model, list[ExitHead]]:
        return catalog.get_model(session, model_id), catalog.exit_heads(session, model_id)

    m, heads = await cp.run_sync(read)
    detail = {k: v for k, v in m.detail.items() if k != "partitions"}
    detail["partitions"] = sorted(m.detail.get("partitions", {}))
    return ModelView(
        id=m.id,
        sha256=m.artifact_sha256,
        parent_id=m.parent_id,
        variant=m.variant,
        accuracy=m.accuracy,
        input_mb=m.input_mb,
        inputs=m.inputs,
        outputs=m.outputs,
        blocks=m.blocks,
        exits=[_exit(h) for h in heads],
        total_gflops=m.total_gflops,
        params_mb=m.params_mb,
        detail=detail,
        created_at=m.created_at,
    )


def _cap(cp: ControlPlaneDep) -> int:
    return int(cp.settings.max_upload_mb * 1_000_000)


@router.post("/models", status_code=status.HTTP_201_CREATED, openapi_extra=_MODEL_FORM)
async def upload_model(request: Request, cp: ControlPlaneDep, actor: Operator) -> ModelView:
    """Upload an ONNX model; the registry analyses it into blocks. Over the size limit:
    413; not a usable ONNX model: 422. Either way nothing is stored."""
    upload = await read_upload(request, "file", _cap(cp), cp.artifacts.temp_file)
    assert upload.file is not None
    try:
        fields = upload.fields
        model_id = fields.get("id", "").strip() or PurePath(upload.filename or "").stem
        catalog.check_id(model_id, "id")
        accuracy = _float(fields, "accuracy", 0.0, 1.0)
        shapes = _shapes(fields)
    except Exception:
        upload.discard()
        raise
    await cp.add_model(actor, model_id, upload.file, accuracy, shapes)
    return await _view(cp, model_id)


@router.get("/models")
async def list_models(cp: ControlPlaneDep, _: Operator) -> list[ModelSummary]:
    return [_summary(m) for m in await cp.run_sync(catalog.list_models)]


@router.get("/models/{model_id}")
async def get_model(model_id: str, cp: ControlPlaneDep, _: Operator) -> ModelView:
    """A model with its blocks (scenario-v1 layers) and exit heads."""
    return await _view(cp, model_id)


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_model(model_id: str, cp: ControlPlaneDep, actor: Operator) -> None:
    await cp.run_sync(catalog.delete_model, actor, model_id)


@router.post("/models/{model_id}/variants", status_code=status.HTTP_201_CREATED)
async def add_variant(
    model_id: str, body: VariantRequest, cp: ControlPlaneDep, actor: Operator
) -> ModelView:
    """An int8 variant (dynamic quantization through the registry), as a model of its own
    that deployments can name among their `variants`."""
    await cp.add_int8_variant(actor, model_id, body.id, body.accuracy)
    return await _view(cp, body.id)


@router.post(
    "/models/{model_id}/exits", status_code=status.HTTP_201_CREATED, openapi_extra=_EXIT_FORM
)
async def add_exit_head(
    model_id: str, request: Request, cp: ControlPlaneDep, actor: Operator
) -> ModelView:
    """Attach an early-exit head (an ONNX model fed by the block `after`)."""
    upload = await read_upload(request, "file", _cap(cp), cp.artifacts.temp_file)
    assert upload.file is not None
    try:
        after = upload.fields.get("after", "").strip()
        if not after:
            raise Invalid("after: the block the exit head follows is required", field="after")
        prob = _float(upload.fields, "prob", 0.0, 1.0)
        threshold = _float(upload.fields, "threshold", 0.0, 1.0)
    except Exception:
        upload.discard()
        raise
    await cp.add_exit_head(
        actor, model_id, after, upload.file, prob, threshold if threshold is not None else 0.8
    )
    return await _view(cp, model_id)


@router.post("/models/{model_id}/calibrate")
async def calibrate(
    model_id: str, body: CalibrateRequest, cp: ControlPlaneDep, actor: Operator
) -> ModelView:
    """Set the measured probability of taking each exit head."""
    await cp.calibrate(actor, model_id, body.probs)
    return await _view(cp, model_id)


# -- cascades ------------------------------------------------------------------------------------
def _cascade(row: Any) -> CascadeView:
    return CascadeView(id=row.id, stages=row.stages, created_at=row.created_at)


@router.post("/cascades", status_code=status.HTTP_201_CREATED, tags=["cascades"])
async def create_cascade(body: CascadeRequest, cp: ControlPlaneDep, actor: Operator) -> CascadeView:
    stages = [s.model_dump() for s in body.stages]
    return _cascade(await cp.run_sync(catalog.create_cascade, actor, body.id, stages))


@router.get("/cascades", tags=["cascades"])
async def list_cascades(cp: ControlPlaneDep, _: Operator) -> list[CascadeView]:
    return [_cascade(c) for c in await cp.run_sync(catalog.list_cascades)]


@router.get("/cascades/{cascade_id}", tags=["cascades"])
async def get_cascade(cascade_id: str, cp: ControlPlaneDep, _: Operator) -> CascadeView:
    return _cascade(await cp.run_sync(catalog.get_cascade, cascade_id))


@router.delete("/cascades/{cascade_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["cascades"])
async def delete_cascade(cascade_id: str, cp: ControlPlaneDep, actor: Operator) -> None:
    await cp.run_sync(catalog.delete_cascade, actor, cascade_id)
