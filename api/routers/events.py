"""Server-sent events: placements, rollouts, device and deployment changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.deps import ControlPlaneDep, Operator

router = APIRouter(tags=["events"])

# A comment line this often keeps proxies from closing an idle stream.
_KEEPALIVE_S = 15.0


@router.get("/events", response_class=StreamingResponse)
async def events(request: Request, cp: ControlPlaneDep, _: Operator) -> StreamingResponse:
    """`text/event-stream`; each event's `event:` is its type (placement, rollout, device,
    deployment, trigger, replacement) and its `data:` a JSON object. A `trigger` carries
    its kind, target and reason; a `replacement` its reason and `reaction_ms`."""

    async def stream() -> AsyncIterator[str]:
        async with cp.events.subscribe() as queue:
            yield ": connected\n\n"
            while not await request.is_disconnected():
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=_KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if message.get("type") == "shutdown":
                    return
                if message.get("type") == "delivery":
                    continue  # internal: long-poll acknowledgements for the rollout
                data = json.dumps({"at": message.get("at"), **(message.get("data") or {})})
                yield f"id: {message.get('id', '')}\nevent: {message['type']}\ndata: {data}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
