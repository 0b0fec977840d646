"""Artifact downloads: only what the database records, and only by a checked sha256."""

from __future__ import annotations

from pathlib import Path

from orchestrator import catalog
from orchestrator.errors import NotFound
from orchestrator.services.context import Context


class ArtifactsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def path(self, sha256: str) -> Path:
        """The stored file of a recorded artifact. NotFound when it is not recorded, or is
        recorded but missing from the store."""
        await self._ctx.run_sync(catalog.get_artifact, sha256)
        if not self._ctx.artifacts.has(sha256):
            raise NotFound(f"artifact {sha256} is recorded but missing from the store")
        return self._ctx.artifacts.path(sha256)
