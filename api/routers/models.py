"""Models: upload (multipart, streamed, capped), list, get, variants, exit heads,
calibration; and cascades of models."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.deps import CascadesDep, ModelsDep, Operator, ResourceId
from api.schemas import (
    CalibrateRequest,
    CascadeRequest,
    CascadeView,
    ModelSummary,
    ModelView,
    ProfileRequest,
    VariantRequest,
)
from api.upload import read_upload

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
_VARIANT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": VariantRequest.model_json_schema()},
            **_multipart(
                {
                    "id": {"type": "string", "description": "the variant's model id"},
                    "accuracy": {"type": "number", "description": "top-1 accuracy, if known"},
                    "kind": {"type": "string", "enum": ["int8"]},
                    "data": {
                        "type": "string",
                        "format": "binary",
                        "description": "calibration inputs (.npy batch or .npz): static int8",
                    },
                },
                ["id", "data"],
            )["requestBody"]["content"],
        },
    }
}
_EXIT_FORM = _multipart(
    {
        "file": {"type": "string", "format": "binary", "description": "the exit head (ONNX)"},
        "after": {"type": "string", "description": "the block the head follows"},
        "prob": {"type": "number", "description": "probability of exiting there, if known"},
        "threshold": {"type": "number", "description": "confidence threshold (default 0.8)"},
    },
    ["file", "after"],
)


@router.post("/models", status_code=status.HTTP_201_CREATED, openapi_extra=_MODEL_FORM)
async def upload_model(request: Request, models: ModelsDep, actor: Operator) -> ModelView:
    """Upload an ONNX model; the registry analyses it into blocks. Over the size limit:
    413; not a usable ONNX model: 422. Either way nothing is stored."""
    upload = await read_upload(request, "file", models.upload_limit_bytes, models.staging_file)
    assert upload.file is not None
    view = await models.upload(actor, upload.file, upload.filename, upload.fields)
    return ModelView.model_validate(asdict(view))


@router.get("/models")
async def list_models(models: ModelsDep, _: Operator) -> list[ModelSummary]:
    return [ModelSummary.model_validate(asdict(m)) for m in await models.summaries()]


@router.get("/models/{model_id}")
async def get_model(model_id: ResourceId, models: ModelsDep, _: Operator) -> ModelView:
    """A model with its blocks (scenario-v1 layers) and exit heads."""
    return ModelView.model_validate(asdict(await models.view(model_id)))


@router.delete("/models/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_model(model_id: ResourceId, models: ModelsDep, actor: Operator) -> None:
    await models.delete(actor, model_id)


@router.post(
    "/models/{model_id}/variants",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_VARIANT_BODY,
)
async def add_variant(
    model_id: ResourceId, request: Request, models: ModelsDep, actor: Operator
) -> ModelView:
    """An int8 variant, as a model of its own that deployments can name among their
    `variants`. A JSON body: dynamic quantization. A multipart form with a `data` file
    (calibration inputs, .npy or .npz): static quantization, activations' ranges fixed
    from those inputs. Either way the variant's speed against its source is measured on
    the control plane's host and stored (`detail.method`, `detail.speedup`); the scenario
    costs the variant by it. Calibration data over the upload limit: 413; unusable: 422
    naming `data`."""
    if request.headers.get("content-type", "").lower().startswith("multipart/"):
        upload = await read_upload(request, "data", models.upload_limit_bytes, models.staging_file)
        assert upload.file is not None
        view = await models.upload_int8_variant(actor, model_id, upload.file, upload.fields)
        return ModelView.model_validate(asdict(view))
    body = await _json_body(request)
    view = await models.add_int8_variant(actor, model_id, body.id, body.accuracy)
    return ModelView.model_validate(asdict(view))


@router.post(
    "/models/{model_id}/exits", status_code=status.HTTP_201_CREATED, openapi_extra=_EXIT_FORM
)
async def add_exit_head(
    model_id: ResourceId, request: Request, models: ModelsDep, actor: Operator
) -> ModelView:
    """Attach an early-exit head (an ONNX model fed by the block `after`)."""
    upload = await read_upload(request, "file", models.upload_limit_bytes, models.staging_file)
    assert upload.file is not None
    view = await models.upload_exit_head(actor, model_id, upload.file, upload.fields)
    return ModelView.model_validate(asdict(view))


@router.post("/models/{model_id}/calibrate")
async def calibrate(
    model_id: ResourceId, body: CalibrateRequest, models: ModelsDep, actor: Operator
) -> ModelView:
    """Set the measured probability of taking each exit head."""
    return ModelView.model_validate(asdict(await models.calibrate(actor, model_id, body.probs)))


@router.post("/models/{model_id}/profile")
async def profile(
    model_id: ResourceId, body: ProfileRequest, models: ModelsDep, actor: Operator
) -> ModelView:
    """Store each block's measured time: the scenario then costs the model's blocks by it
    (its GFLOP shared out by measured time) rather than in proportion to FLOPs."""
    view = await models.profile(actor, model_id, body.block_ms)
    return ModelView.model_validate(asdict(view))


async def _json_body(request: Request) -> VariantRequest:
    """The JSON body, validated as FastAPI would have (its errors answer 422 naming the
    field): the route reads the body itself since it also takes a multipart form."""
    try:
        return VariantRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


# -- cascades ------------------------------------------------------------------------------------
@router.post("/cascades", status_code=status.HTTP_201_CREATED, tags=["cascades"])
async def create_cascade(
    body: CascadeRequest, cascades: CascadesDep, actor: Operator
) -> CascadeView:
    stages = [s.model_dump() for s in body.stages]
    return CascadeView.model_validate(asdict(await cascades.create(actor, body.id, stages)))


@router.get("/cascades", tags=["cascades"])
async def list_cascades(cascades: CascadesDep, _: Operator) -> list[CascadeView]:
    return [CascadeView.model_validate(asdict(c)) for c in await cascades.views()]


@router.get("/cascades/{cascade_id}", tags=["cascades"])
async def get_cascade(cascade_id: ResourceId, cascades: CascadesDep, _: Operator) -> CascadeView:
    return CascadeView.model_validate(asdict(await cascades.view(cascade_id)))


@router.delete("/cascades/{cascade_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["cascades"])
async def delete_cascade(cascade_id: ResourceId, cascades: CascadesDep, actor: Operator) -> None:
    await cascades.delete(actor, cascade_id)
