"""The audit service: the newest entries first, as many as asked."""

from __future__ import annotations

import pytest

from orchestrator.services.audit import AuditService
from orchestrator.services.tokens import TokensService
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio


async def test_recent_is_newest_first_and_limited(ctx: Harness) -> None:
    keys = TokensService(ctx)
    for name in ("first", "second", "third"):
        await keys.create_api_key("operator:admin", name)
    entries = await AuditService(ctx).recent(2)
    assert [e.detail for e in entries] == [
        {"name": "third", "role": "operator"},
        {"name": "second", "role": "operator"},
    ]
    assert {(e.actor, e.action) for e in entries} == {("operator:admin", "api_key.created")}
    assert entries[0].id > entries[1].id
    assert len(await AuditService(ctx).recent()) == 3
