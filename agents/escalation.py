"""When a cascade stage without a confidence threshold answers: at its declared rate.

A stage declared with `exit_prob` and no `threshold` (as docs/control-plane.md shows a
cascade) has no confidence level to compare against, yet the plan was costed on it
answering `exit_prob` of its inputs. Treating "no threshold" as "always confident" made
such cascades never escalate, so the later stages the plan paid for never ran. A
`RateGate` answers on the most confident `exit_prob` of the inputs it sees and escalates
the rest: each input's confidence is ranked among a sliding window of recent ones, ties
broken at random, and the input answers when its rank falls in the top `exit_prob`. For
inputs drawn from one distribution the rank is uniform, so the stage answers at
`exit_prob` from the first request on, whatever the model's confidence scale; when the
inputs drift, the window follows them.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right, insort
from collections import deque

WINDOW = 256  # recent confidences a stage ranks against


class RateGate:
    """Answers (True) on the top `rate` of recent confidences, escalates (False) the rest."""

    def __init__(self, rate: float, window: int = WINDOW, seed: str = "") -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"an exit rate is in [0, 1] (got {rate})")
        self.rate = rate
        self._recent: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []
        # Seeded by the stage key: the same inputs in the same order decide the same way.
        self._rng = random.Random(seed)

    def confident(self, confidence: float) -> bool:
        if confidence != confidence:  # NaN: nothing to rank, the next stage decides
            return False
        if len(self._recent) == self._recent.maxlen:
            old = self._recent[0]
            del self._sorted[bisect_left(self._sorted, old)]
        self._recent.append(confidence)
        insort(self._sorted, confidence)
        below = bisect_left(self._sorted, confidence)
        equal = bisect_right(self._sorted, confidence) - below  # itself included
        rank = (below + self._rng.random() * equal) / len(self._sorted)
        return rank >= 1.0 - self.rate
