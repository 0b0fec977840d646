"""Artifact downloads by sha256, for agents and operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from api.deps import ArtifactsDep, Reader
from api.wire import SHA256_PATTERN

router = APIRouter(prefix="/artifacts", tags=["artifacts"])

Sha256 = Annotated[str, Path(pattern=SHA256_PATTERN, description="64 lowercase hex digits")]


@router.get("/{sha256}", response_class=FileResponse)
async def get_artifact(sha256: Sha256, artifacts: ArtifactsDep, _: Reader) -> FileResponse:
    """Streams the bytes. The name is validated (64 hex) before any file-system access,
    and only artifacts recorded in the database are served."""
    return FileResponse(
        await artifacts.path(sha256),
        media_type="application/octet-stream",
        headers={"ETag": f'"{sha256}"', "Cache-Control": "public, max-age=31536000, immutable"},
    )
