"""Models, their int8 variants and early-exit heads, exit calibration; and cascades.

An upload is analysed (in the process pool) before anything is stored; on any failure
nothing is stored and the staged upload is removed.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path, PurePath
from typing import Any

from sqlalchemy.orm import Session

from models_registry.errors import ModelError
from models_registry.loading import parse_input_shapes
from orchestrator import catalog, model_jobs
from orchestrator.db.tables import Cascade, ExitHead, Model
from orchestrator.errors import Conflict, Invalid
from orchestrator.profiled import variant_ratio
from orchestrator.scenario_builder import build, read_snapshot
from orchestrator.services.artifacts import local_file
from orchestrator.services.context import Context

DEFAULT_EXIT_THRESHOLD = 0.8
PROFILE_RUNS = 5  # timed runs per block when the control plane profiles a model itself


@dataclass(frozen=True)
class ExitHeadView:
    after: str
    sha256: str
    gflops: float
    params_mb: float
    prob: float | None
    threshold: float


@dataclass(frozen=True)
class ModelSummary:
    id: str
    sha256: str
    parent_id: str | None
    variant: str | None
    accuracy: float | None
    input_mb: float
    total_gflops: float
    params_mb: float
    blocks: int
    created_at: datetime


@dataclass(frozen=True)
class ModelView:
    id: str
    sha256: str
    parent_id: str | None
    variant: str | None
    accuracy: float | None
    input_mb: float
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    blocks: list[dict[str, Any]]
    exits: list[ExitHeadView]
    total_gflops: float
    params_mb: float
    detail: dict[str, Any]  # the partitions as a sorted list of their keys
    created_at: datetime
    # An int8 variant's speed against its source: measured when made, confirmed on the
    # devices that serve it, and planned (calibration.VariantRatio); None otherwise.
    speed_ratio: dict[str, Any] | None = None


@dataclass(frozen=True)
class CascadeView:
    id: str
    stages: list[dict[str, Any]]
    created_at: datetime


class ModelsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- uploads ---------------------------------------------------------------------------
    @property
    def upload_limit_bytes(self) -> int:
        return int(self._ctx.settings.max_upload_mb * 1_000_000)

    def staging_file(self) -> Path:
        """A fresh path for a streamed upload, beside the artifact store."""
        return self._ctx.artifacts.temp_file()

    async def upload(
        self, actor: str, upload: Path, filename: str | None, fields: dict[str, str]
    ) -> ModelView:
        """A model from an upload form: `id` (default: the file name's stem), `accuracy`,
        `input_shape` (NAME=1,3,224,224[;NAME=...])."""
        try:
            model_id = fields.get("id", "").strip() or PurePath(filename or "").stem
            catalog.check_id(model_id, "id")
            accuracy = _form_float(fields, "accuracy", 0.0, 1.0)
            shapes = _form_shapes(fields)
        except Exception:
            upload.unlink(missing_ok=True)
            raise
        await self.add(actor, model_id, upload, accuracy, shapes)
        return await self.view(model_id)

    async def add(
        self,
        actor: str,
        model_id: str,
        upload: Path,
        accuracy: float | None,
        input_shapes: dict[str, list[int]] | None,
    ) -> ModelSummary:
        """Analyse an uploaded file, then store it and its rows."""
        ctx = self._ctx
        try:
            catalog.check_id(model_id, "id")
            if await ctx.run_sync(catalog.model_exists, model_id):
                raise Conflict(f"a model {model_id!r} already exists; choose another id")
            analysis = await ctx.in_pool(model_jobs.analyse_file, str(upload), input_shapes)
            sha, size = await asyncio.to_thread(ctx.artifacts.adopt, upload)
        finally:
            upload.unlink(missing_ok=True)
        model = await ctx.run_sync(
            _register, actor, model_id, sha, size, analysis, accuracy, input_shapes, None, None, {}
        )
        return _summary(model)

    async def upload_int8_variant(
        self, actor: str, model_id: str, upload: Path, fields: dict[str, str]
    ) -> ModelView:
        """A static int8 variant from an upload form: `id` (required), `accuracy`, `kind`
        (int8), and the file part `data`: calibration inputs (.npy batch or .npz)."""
        try:
            variant_id = fields.get("id", "").strip()
            catalog.check_id(variant_id, "id")
            if fields.get("kind", "int8").strip() not in ("", "int8"):
                raise Invalid("kind: the only variant kind is 'int8'", field="kind")
            accuracy = _form_float(fields, "accuracy", 0.0, 1.0)
            data = _calibration_file(upload)
        except Exception:
            upload.unlink(missing_ok=True)
            raise
        try:
            return await self.add_int8_variant(actor, model_id, variant_id, accuracy, data)
        finally:
            data.unlink(missing_ok=True)

    async def add_int8_variant(
        self,
        actor: str,
        model_id: str,
        variant_id: str,
        accuracy: float | None,
        data: Path | None = None,
    ) -> ModelView:
        """An int8 variant, a model of its own that deployments can name among their
        `variants`: static quantization with calibration inputs (`data`, a .npy or .npz
        file), dynamic without. Either way its speed against its source is measured here,
        and the scenario costs it by that ratio (orchestrator/profiled.py)."""
        ctx = self._ctx
        catalog.check_id(variant_id, "id")
        parent = await ctx.run_sync(catalog.get_model, model_id)
        if await ctx.run_sync(catalog.model_exists, variant_id):
            raise Conflict(f"a model {variant_id!r} already exists; choose another id")
        shapes = parent.detail.get("input_shapes")
        source = str(await local_file(ctx.artifacts, parent.artifact_sha256))
        try:
            made = await ctx.in_pool(
                model_jobs.quantize_to_store,
                source,
                shapes,
                str(ctx.artifacts.root),
                None if data is None else str(data),
            )
        except model_jobs.CalibrationDataError as exc:
            raise Invalid(f"data: {exc}", field="data") from None
        await asyncio.to_thread(ctx.artifacts.share, made["sha256"])
        await ctx.run_sync(
            _register, actor, variant_id, made["sha256"], made["size"], made["analysis"],
            accuracy, shapes, model_id, "int8", made["detail"],
        )  # fmt: skip
        return await self.view(variant_id)

    async def upload_exit_head(
        self, actor: str, model_id: str, upload: Path, fields: dict[str, str]
    ) -> ModelView:
        """An exit head from an upload form: `after` (required), `prob`, `threshold`."""
        try:
            after = fields.get("after", "").strip()
            if not after:
                raise Invalid("after: the block the exit head follows is required", field="after")
            prob = _form_float(fields, "prob", 0.0, 1.0)
            threshold = _form_float(fields, "threshold", 0.0, 1.0)
        except Exception:
            upload.unlink(missing_ok=True)
            raise
        if threshold is None:
            threshold = DEFAULT_EXIT_THRESHOLD
        await self.add_exit_head(actor, model_id, after, upload, prob, threshold)
        return await self.view(model_id)

    async def add_exit_head(
        self,
        actor: str,
        model_id: str,
        after: str,
        upload: Path,
        prob: float | None,
        threshold: float,
    ) -> ExitHeadView:
        ctx = self._ctx
        try:
            model = await ctx.run_sync(catalog.get_model, model_id)
            catalog.check_exit_block(model, after)
            # Checked against the block before anything is stored: a head whose input does
            # not fit the block's output is refused with both shapes named.
            cost = await ctx.in_pool(
                model_jobs.check_exit_head,
                str(await local_file(ctx.artifacts, model.artifact_sha256)),
                model.detail.get("input_shapes"),
                after,
                str(upload),
            )
            sha, size = await asyncio.to_thread(ctx.artifacts.adopt, upload)
        finally:
            upload.unlink(missing_ok=True)
        head = await ctx.run_sync(
            catalog.add_exit_head, actor, model_id, after, sha, size,
            cost["gflops"], cost["params_mb"], prob, threshold,
        )  # fmt: skip
        await ctx.request_replan(f"exit head after {after} added to {model_id} by {actor}")
        return _exit(head)

    async def calibrate(self, actor: str, model_id: str, probs: dict[str, float]) -> ModelView:
        """Set the measured probability of taking each exit head (by the block it follows)."""

        def apply(session: Session) -> None:
            heads = catalog.exit_heads(session, model_id)
            unknown = sorted(set(probs) - {h.after for h in heads})
            if unknown:
                raise Invalid(
                    f"probs: model {model_id!r} has no exit head after {unknown[0]!r}",
                    field="probs",
                )
            catalog.set_exit_probs(session, actor, model_id, probs, {"probs": probs})

        await self._ctx.run_sync(apply)
        await self._ctx.request_replan(f"exit probabilities of {model_id} calibrated by {actor}")
        return await self.view(model_id)

    async def profile(self, actor: str, model_id: str, block_ms: dict[str, float]) -> ModelView:
        """Store each block's measured time (given, or measured here in the pool): the
        scenario costs the blocks by it (orchestrator/profiled.py)."""
        ctx = self._ctx
        model = await ctx.run_sync(catalog.get_model, model_id)
        names = [b["name"] for b in model.blocks]
        host = "given"
        if not block_ms:
            block_ms = await ctx.in_pool(
                model_jobs.profile_file,
                str(await local_file(ctx.artifacts, model.artifact_sha256)),
                model.detail.get("input_shapes"),
                PROFILE_RUNS,
            )
            host = "control-plane"
        missing = [n for n in names if n not in block_ms]
        unknown = sorted(set(block_ms) - set(names))
        if missing or unknown:
            what = f"has no time for block {missing[0]!r}" if missing else (
                f"names {unknown[0]!r}, which is no block of {model_id!r}")  # fmt: skip
            raise Invalid(f"block_ms: the profile {what}", field="block_ms")
        if sum(block_ms.values()) <= 0:
            raise Invalid("block_ms: every time is 0; nothing was measured", field="block_ms")
        record = {"block_ms": {n: float(block_ms[n]) for n in names}, "measured_on": host}
        await ctx.run_sync(catalog.set_profile, actor, model_id, record)
        await ctx.request_replan(f"blocks of {model_id} profiled by {actor}")
        return await self.view(model_id)

    # -- reads and deletion ------------------------------------------------------------------
    async def summaries(self) -> list[ModelSummary]:
        return [_summary(m) for m in await self._ctx.run_sync(catalog.list_models)]

    async def view(self, model_id: str) -> ModelView:
        """A model with its blocks (scenario-v1 layers) and exit heads."""

        def read(session: Session) -> tuple[Model, list[ExitHead]]:
            return catalog.get_model(session, model_id), catalog.exit_heads(session, model_id)

        m, heads = await self._ctx.run_sync(read)
        ratio = None
        if m.parent_id is not None and variant_ratio(m.detail or {}) is not None:
            # What the scenario costs it by now: built as the planner builds it.
            snap = await self._ctx.run_sync(read_snapshot)
            built = build(snap, await self._ctx.live.heartbeats(), {})
            if (found := built.variant_ratios.get(m.id)) is not None:
                ratio = asdict(found)
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
            speed_ratio=ratio,
        )

    async def delete(self, actor: str, model_id: str) -> None:
        """Refused (409) while a deployment, a variant or a cascade uses the model."""
        await self._ctx.run_sync(catalog.delete_model, actor, model_id)


class CascadesService:
    """Cascades: a small model first, a larger one when it is not confident enough."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def create(
        self, actor: str, cascade_id: str, stages: list[dict[str, Any]]
    ) -> CascadeView:
        return _cascade(await self._ctx.run_sync(catalog.create_cascade, actor, cascade_id, stages))

    async def views(self) -> list[CascadeView]:
        return [_cascade(c) for c in await self._ctx.run_sync(catalog.list_cascades)]

    async def view(self, cascade_id: str) -> CascadeView:
        return _cascade(await self._ctx.run_sync(catalog.get_cascade, cascade_id))

    async def delete(self, actor: str, cascade_id: str) -> None:
        """Refused (409) while a deployment names the cascade."""
        await self._ctx.run_sync(catalog.delete_cascade, actor, cascade_id)


def _register(
    session: Session,
    actor: str,
    model_id: str,
    sha: str,
    size: int,
    analysis: dict[str, Any],
    accuracy: float | None,
    shapes: dict[str, list[int]] | None,
    parent_id: str | None,
    variant: str | None,
    detail: dict[str, Any],
) -> Model:
    return catalog.register_model(
        session, actor, model_id, sha, size, analysis, accuracy=accuracy, input_shapes=shapes,
        parent_id=parent_id, variant=variant, detail=detail,
    )  # fmt: skip


def _form_float(fields: dict[str, str], name: str, low: float, high: float) -> float | None:
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


_NPY_MAGIC = b"\x93NUMPY"
_NPZ_MAGIC = b"PK\x03\x04"  # an .npz is a zip archive of .npy files


def _calibration_file(upload: Path) -> Path:
    """The staged calibration upload renamed by what it holds (numpy reads .npy and .npz
    by their suffix), whatever the client named it."""
    with upload.open("rb") as f:
        head = f.read(6)
    if head.startswith(_NPY_MAGIC):
        suffix = ".npy"
    elif head.startswith(_NPZ_MAGIC):
        suffix = ".npz"
    else:
        raise Invalid("data: calibration inputs must be a .npy or .npz file", field="data")
    return upload.rename(upload.with_suffix(suffix))


def _form_shapes(fields: dict[str, str]) -> dict[str, list[int]] | None:
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


def _cascade(row: Cascade) -> CascadeView:
    return CascadeView(id=row.id, stages=row.stages, created_at=row.created_at)
