"""The reconcile loop's leader lease: the live-state lock `reconcile`, kept by a task of
its own rather than between ticks, so that a tick slower than the lease cannot run on
after another replica took the lock (bench/RESULTS.md, "The leader's lease kept by its own
task": on main before it, a stuck leader's tick ran on beside a new leader's).

The holder trusts its lease only until two thirds of a TTL after its last successful
renewal was *sent*: the lock's own expiry is a TTL after the request arrived, and the rest
is the margin for clock rates. The loop checks `valid()` before every write it makes, so a
leader paused (a frozen VM, a stop-the-world stall) or cut off from the lock stops writing,
and stops saying it leads, before another replica can take over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

HELD_FRACTION = 2.0 / 3.0


class LeaseLost(Exception):
    """The lease ran out, or went to another replica, in the middle of a tick."""


class Lease:
    def __init__(
        self,
        acquire: Callable[[str, float], Awaitable[bool]],
        holder: str,
        ttl_s: float,
        on_lost: Callable[[], None],
    ) -> None:
        self._acquire = acquire  # take or renew: True when `holder` holds the lock after
        self.holder = holder
        self.ttl_s = ttl_s
        self._on_lost = on_lost
        self.held_until = 0.0  # monotonic
        # Whether the last grant continued this holder's lead: no other replica can have
        # led since its previous grant (see `take`).
        self.continued = False
        self._granted_sent: float | None = None  # when the last grant's request was sent

    def valid(self) -> bool:
        return time.monotonic() < self.held_until

    async def take(self) -> bool | None:
        """One request for the lock (to take it or renew it): True when held, False when
        another replica holds it, None when the lock could not be reached."""
        sent = time.monotonic()
        try:
            # Not longer than the lease would still hold: a late grant is no grant.
            held = await asyncio.wait_for(self._acquire(self.holder, self.ttl_s), self.ttl_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("leader lease: the lock is unreachable")
            return None
        if held:
            self.held_until = sent + self.ttl_s * HELD_FRACTION
            # Another replica could have led in between only by taking the lock once it
            # expired (a lease after our previous grant at the earliest) and keeping it a
            # lease (or stopping cleanly at once): not within two leases of that grant.
            # A holder that merely stalled past its own margin carries on where it was.
            last = self._granted_sent
            self.continued = last is not None and sent - last < 2 * self.ttl_s
            self._granted_sent = sent
        elif held is False:
            self._granted_sent = None  # another replica holds it: whatever comes is new
        return held

    async def keep(self) -> None:
        """Renew every TTL/3 until the lease is no longer valid, then call `on_lost` and
        return. Unreachable with time left: the next try comes before it runs out."""
        while True:
            await asyncio.sleep(self.ttl_s / 3.0)
            if await self.take() is False:
                self.held_until = 0.0  # another replica holds it: stop writing now
            if not self.valid():
                self._on_lost()
                return
