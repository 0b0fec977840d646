"""`solver.stuck.held_clear`: whether the apps held where they run stand in the stuck app's
way, judged on what its candidates and its repair's paths overflowed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from solver.candidates import Candidate
from solver.fastcost import Score
from solver.plan import Placement
from solver.stuck import held_clear


@dataclass
class _Entry:
    candidates: list[Candidate]
    overflowed: set[int] = field(default_factory=set)


@dataclass
class _State:
    """Resources 0..3; each candidate's score uses the resources `uses[j]` names."""

    fixed_load: np.ndarray
    load: np.ndarray
    cap: np.ndarray
    uses: list[dict[int, float]]

    def score(self, e: _Entry, j: int) -> Score:
        use = self.uses[j]
        rows = np.array(sorted(use), dtype=np.int64)
        return Score(0.0, 0.0, rows, np.array([use[r] for r in rows.tolist()]), True)

    def overflow(self, sc: Score) -> list[int]:
        over = self.load[sc.resources] + sc.amounts > self.cap[sc.resources]
        return [int(r) for r in sc.resources[over]]


def _state(fixed: list[float]) -> _State:
    # Candidate 0 overflows resource 1 (the camera's battery, say), candidate 1 resource 2.
    return _State(
        fixed_load=np.array(fixed),
        load=np.array(fixed),
        cap=np.array([10.0, 1.0, 1.0, 10.0]),
        uses=[{0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0}],
    )


def _entry(overflowed: set[int] | None = None) -> _Entry:
    p = Placement(app="a", model="m", blocks=("d",))
    return _Entry([Candidate(p, 1.0), Candidate(p, 2.0)], overflowed or set())


def test_held_apps_that_use_nothing_it_overflowed_do_not_stand_in_its_way() -> None:
    # The held apps load resources 0 and 3 only: neither candidate overflowed those.
    assert held_clear(_state([5.0, 0.0, 0.0, 5.0]), _entry())


def test_a_held_app_on_what_a_candidate_overflowed_stands_in_its_way() -> None:
    assert not held_clear(_state([5.0, 0.0, 0.5, 5.0]), _entry())


def test_what_the_repair_tried_counts_too() -> None:
    """A path the repair tried and dropped (it overflowed resource 3, where held apps run)
    is not among the candidates, but re-placing the held apps could make it fit."""
    assert held_clear(_state([5.0, 0.0, 0.0, 0.0]), _entry({3}))
    assert not held_clear(_state([5.0, 0.0, 0.0, 9.5]), _entry({3}))


def test_nothing_overflowed_is_no_judgment() -> None:
    st = _state([0.0, 0.0, 0.0, 0.0])
    st.cap = np.array([10.0, 10.0, 10.0, 10.0])
    assert not held_clear(st, _entry())
