"""Server-sent events: placements, rollouts, device and deployment changes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.deps import EventsDep, Operator
from orchestrator.services.events import EventsService

router = APIRouter(tags=["events"])

# A comment line this often keeps proxies from closing an idle stream.
_KEEPALIVE_S = 15.0


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, events: EventsDep, _: Operator) -> StreamingResponse:
    """`text/event-stream`; each event's `event:` is its type (placement, rollout, device,
    deployment, trigger, replacement) and its `data:` a JSON object. A `trigger` carries
    its kind, target and reason; a `replacement` its reason and `reaction_ms`."""
    return event_stream(request, events)


def event_stream(request: Request, events: EventsService) -> StreamingResponse:
    """The stream itself, for this route and the console's (which authenticates by its
    session cookie instead)."""

    async def stream() -> AsyncIterator[str]:
        async with events.subscribe() as feed:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                event = await feed.next(_KEEPALIVE_S)
                if feed.ended:
                    return
                if event is None:
                    yield ": keep-alive\n\n"
                    continue
                data = json.dumps(event.data)
                yield f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
