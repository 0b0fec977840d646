"""When the agents measure the traced links: the bandwidths as a control plane knows them.

An agent measures a link's bandwidth with a timed upload every `probe_interval_s` (30 s
by default, `agents/probes.py`), not at every sample of a trace; the reconcile loop takes
each measurement once (by its time), and the scenario a re-plan solves carries each link's
latest one. So a policy that stands for the control plane (`continuum`) is shown what the
live one would have: each traced link measured when the run starts (an agent probes as it
starts), then every `probe_s`, each link at a phase of its own (agents start at different
moments; drawn from the run's seed, so a run is reproducible), and when one of its devices
comes back. A probe measures the trace's figure of its step. A device that is down probes
nothing.

A real agent probes a link its plan does not use less often (one such peer a minute, in
turn); here every traced link is probed at `probe_s`, which shows the control plane a
little more than it would have.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Collection, Mapping, Sequence

from simulate.inputs import Link


class ProbeClock:
    def __init__(self, keys: Sequence[Link], probe_s: float, seed: int) -> None:
        if probe_s <= 0:
            raise ValueError(f"probe_s must be more than 0 (got {probe_s:g})")
        rng = random.Random(f"probes:{seed}")
        self.keys = list(keys)
        self.probe_s = probe_s
        # The first probe of each link after the one at the start, in (0, probe_s]; kept
        # as a heap of (time, link): a step asks for the few that are due.
        self.due = [(probe_s - rng.uniform(0.0, probe_s), j) for j in range(len(self.keys))]
        heapq.heapify(self.due)
        self.measured: dict[Link, float] = {}  # each link's latest probe
        self._started = False

    def probe(
        self,
        t: float,
        figures: Mapping[Link, float],
        down: Collection[str],
        joined: Collection[str] = (),
    ) -> dict[Link, float]:
        """The probes of the step that starts at `t` (link -> Mbit/s), from the traced
        `figures` of that step; they become the links' `measured` figures."""
        todo: list[int]
        if not self._started:
            self._started = True
            todo = list(range(len(self.keys)))
        else:
            due, now = self.due, t + 1e-9
            popped = []
            while due and due[0][0] <= now:
                popped.append(heapq.heappop(due))
            todo = []
            for at, j in popped:
                # The next probe keeps the link's phase, however long the step.
                late = math.floor((now - at) / self.probe_s) + 1
                heapq.heappush(due, (at + self.probe_s * late, j))
                todo.append(j)
            if joined:
                back = {j for j, (a, b) in enumerate(self.keys) if a in joined or b in joined}
                todo = sorted(back.union(todo))
            elif len(todo) > 1:
                todo.sort()
        out: dict[Link, float] = {}
        for j in todo:
            key = self.keys[j]
            if key[0] in down or key[1] in down:
                continue
            out[key] = figures[key]
        self.measured.update(out)
        return out


__all__ = ["ProbeClock"]
