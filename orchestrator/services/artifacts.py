"""Artifact downloads: only what the database records, and only by a checked sha256."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator import catalog
from orchestrator.artifacts import Artifacts
from orchestrator.errors import NotFound
from orchestrator.services.context import Context


class ArtifactsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def path(self, sha256: str) -> Path:
        """The stored file of a recorded artifact. NotFound when it is not recorded, or is
        recorded but missing from the store."""
        await self._ctx.run_sync(catalog.get_artifact, sha256)
        return await local_file(self._ctx.artifacts, sha256)


async def local_file(artifacts: Artifacts, sha256: str) -> Path:
    """The file of a recorded artifact on this replica (restored from the database when
    replicas share no volume); NotFound when it is nowhere."""
    found = await asyncio.to_thread(artifacts.local, sha256)
    if found is None:
        raise NotFound(f"artifact {sha256} is recorded but missing from the store")
    return found
