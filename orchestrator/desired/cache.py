"""Every device's desired state at the current revision, and which agents have news.

Revisions are global: every rollout phase is one, whatever it changes. Answering every
agent's long poll on every revision made a fleet of 1,000 re-poll for a change that
concerned three of them (a rollout has up to three phases, each a whole fleet of
answers), and the affected agents' answers queued behind the others'. So a long poll is
answered only when the agent has news: its desired state differs from the one it holds,
or the rollout of this revision counts on it (its targets: they must report the revision
they run before routes switch or the rollout settles).

What an agent holds is known by its `after_version`: this replica remembers at which
revision each device's state last changed, and which revisions it served. A revision it
never served (another replica's, a restart's) is news by default: answering is always
safe, only not answering must be proven.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

State = dict[str, Any]
# Revisions whose content this replica remembers; an agent further behind gets an answer.
_KEEP = 256


def content(state: State | None) -> Any:
    """A state without its revision: what the agent runs."""
    if state is None:
        return None
    return {k: v for k, v in state.items() if k != "version"}


class DesiredCache:
    def __init__(self) -> None:
        self.version: int | None = None
        self.states: dict[str, State] = {}
        self.targets: frozenset[str] = frozenset()
        self.stale = True  # read the revision from SQL before serving (see `fresh`)
        self.checked = 0.0  # monotonic time the revision was last confirmed
        self._changed_at: dict[str, int] = {}
        self._served: OrderedDict[int, None] = OrderedDict()

    def install(self, version: int, states: dict[str, State], targets: frozenset[str]) -> bool:
        """Serve `states` (each already at `version`) from now on; False when this cache
        is already at a newer revision (a late refresh must not take it back)."""
        if self.version is not None and version < self.version:
            return False
        if self.version is None:
            changed = {d: version for d in states}
        else:
            before, changed = self.states, {}
            for d, state in states.items():
                old = before.get(d)
                same = old is not None and content(old) == content(state)
                changed[d] = self._changed_at.get(d, version) if same else version
        self.version, self.states, self.targets = version, states, targets
        self._changed_at = changed
        self._served[version] = None
        self._served.move_to_end(version)
        while len(self._served) > _KEEP:
            self._served.popitem(last=False)
        self.stale = False
        self.checked = time.monotonic()
        return True

    def fresh(self, version: int, max_age_s: float) -> bool:
        """Whether the cache may answer for revision `version` without asking SQL."""
        return (
            not self.stale
            and self.version is not None
            and self.version >= version
            and time.monotonic() - self.checked < max_age_s
        )

    def confirm(self) -> None:
        self.checked = time.monotonic()

    def news(self, device_id: str, after: int) -> bool:
        """Whether an agent holding revision `after` must be answered now."""
        if self.version is None or self.version <= after:
            return False
        if after not in self._served or device_id in self.targets:
            return True
        return self._changed_at.get(device_id, self.version) > after
