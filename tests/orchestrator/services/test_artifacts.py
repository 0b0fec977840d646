"""The artifacts service serves only what the database records and the store holds."""

from __future__ import annotations

import pytest

from orchestrator import catalog
from orchestrator.errors import NotFound
from orchestrator.services.artifacts import ArtifactsService
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio


async def test_a_recorded_artifact_is_served_from_the_store(ctx: Harness) -> None:
    sha, size = ctx.artifacts.put_bytes(b"partition bytes")
    await ctx.run_sync(catalog.ensure_artifact, sha, size, "partition")
    path = await ArtifactsService(ctx).path(sha)
    assert path.read_bytes() == b"partition bytes"


async def test_an_unrecorded_artifact_is_not_served_even_if_stored(ctx: Harness) -> None:
    sha, _ = ctx.artifacts.put_bytes(b"stray bytes")
    with pytest.raises(NotFound, match=f"no artifact {sha}"):
        await ArtifactsService(ctx).path(sha)


async def test_a_recorded_artifact_missing_from_the_store(ctx: Harness) -> None:
    sha = "ab" * 32
    await ctx.run_sync(catalog.ensure_artifact, sha, 10, "model")
    with pytest.raises(NotFound, match="recorded but missing from the store"):
        await ArtifactsService(ctx).path(sha)
