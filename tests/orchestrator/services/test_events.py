"""The events service: public events in order, internal ones held back, the end of the
stream told apart from a quiet spell."""

from __future__ import annotations

import pytest

from orchestrator.services.events import EventsService
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio


async def test_a_feed_passes_public_events_and_holds_back_deliveries(ctx: Harness) -> None:
    async with EventsService(ctx).subscribe() as feed:
        await ctx.events.publish("delivery", {"device_id": "cam-1", "revision": 3, "at": 1.0})
        await ctx.events.publish("device", {"device_id": "cam-1", "change": "updated"})
        event = await feed.next(10.0)
        assert event is not None
        assert event.kind == "device"
        assert {k: v for k, v in event.data.items() if k != "at"} == {
            "device_id": "cam-1",
            "change": "updated",
        }
        assert isinstance(event.data["at"], float) and isinstance(event.id, int)
        assert await feed.next(0.2) is None  # a quiet spell
        assert not feed.ended


async def test_a_feed_ends_when_the_bus_stops(ctx: Harness) -> None:
    async with EventsService(ctx).subscribe() as feed:
        await ctx.events.stop()
        assert await feed.next(10.0) is None
        assert feed.ended
