"""The tokens service: secrets shown once, only hashes kept, revocation audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator import audit, fleet, tokens
from orchestrator.errors import NotFound
from orchestrator.services.tokens import TokensService
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored in UTC).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def test_an_enrollment_token_expires_after_the_configured_lifetime(ctx: Harness) -> None:
    service = TokensService(ctx)
    before = datetime.now(UTC)
    made = await service.create_enrollment_token("operator:ops", None, single_use=True)
    assert made.token.startswith(tokens.ENROLL_PREFIX) and made.single_use
    lifetime = _utc(made.expires_at) - before
    assert timedelta(seconds=590) < lifetime <= timedelta(seconds=610)  # settings: 600 s
    short = await service.create_enrollment_token("operator:ops", 30.0, single_use=False)
    assert _utc(short.expires_at) - before <= timedelta(seconds=40)
    listed = await service.enrollment_tokens()
    assert [(t.id, t.single_use, t.uses, t.created_by) for t in listed] == [
        (made.id, True, 0, "operator:ops"),
        (short.id, False, 0, "operator:ops"),
    ]


async def test_a_revoked_enrollment_token_no_longer_enrolls(ctx: Harness) -> None:
    service = TokensService(ctx)
    made = await service.create_enrollment_token("operator:ops", None, single_use=False)
    await service.revoke_enrollment_token("operator:ops", made.id)
    assert await service.enrollment_tokens() == []
    with pytest.raises(NotFound, match=f"no enrollment token with id {made.id}"):
        await service.revoke_enrollment_token("operator:ops", made.id)
    actions = [e.action for e in await ctx.run_sync(audit.recent, 10)]
    assert "enrollment_token.revoked" in actions


async def test_api_keys(ctx: Harness) -> None:
    service = TokensService(ctx)
    made = await service.create_api_key("operator:admin", "ci")
    assert made.token.startswith(tokens.API_KEY_PREFIX) and made.name == "ci"
    key = await ctx.run_sync(fleet.operator_for, made.token)
    assert key is not None and key.id == made.id
    (info,) = await service.api_keys()
    assert (info.id, info.name, info.revoked_at) == (made.id, "ci", None)
    await service.revoke_api_key("operator:admin", made.id)
    assert await ctx.run_sync(fleet.operator_for, made.token) is None
    (info,) = await service.api_keys()
    assert info.revoked_at is not None
    with pytest.raises(NotFound, match="no API key with id 999"):
        await service.revoke_api_key("operator:admin", 999)
