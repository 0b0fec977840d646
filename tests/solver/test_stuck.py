"""`solver.stuck.held_clear`: whether the apps held where they run stand in the stuck app's
way, judged on each option it tried: its candidates and its repair's paths."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.candidates import Candidate
from solver.fastcost import Score
from solver.plan import Placement
from solver.stuck import held_clear, overflows_unheld


@dataclass
class _Entry:
    candidates: list[Candidate]
    tipped: bool = False


@dataclass
class _State:
    """Resources 0..2, each of capacity 1; candidate j uses what `uses[j]` says."""

    fixed_load: np.ndarray  # the held apps'
    load: np.ndarray  # the held apps' and the free apps' placed so far
    uses: list[dict[int, float]]
    cap = np.ones(3)

    def score(self, e: _Entry, j: int) -> Score:
        use = self.uses[j]
        rows = np.array(sorted(use), dtype=np.int64)
        return Score(0.0, 0.0, rows, np.array([use[r] for r in rows.tolist()]), True)


def _entry(n: int, tipped: bool = False) -> _Entry:
    p = Placement(app="a", model="m", blocks=("d",))
    return _Entry([Candidate(p, float(j)) for j in range(n)], tipped)


def test_options_that_overflow_without_the_held_apps_are_clear_of_them() -> None:
    # Candidate 0 alone overflows resource 0 (its camera's battery, say); candidate 1
    # overflows resource 1 with a free app's load on it. Held apps load resource 2 only.
    st = _State(np.array([0.0, 0.0, 0.9]), np.array([0.0, 0.5, 0.9]), [{0: 2.0}, {1: 0.7}])
    assert held_clear(st, _entry(2))


def test_an_option_the_held_apps_tip_over_is_not() -> None:
    # Candidate 1 overflows resource 2 only because of the held apps' 0.9 on it.
    st = _State(np.array([0.0, 0.0, 0.9]), np.array([0.0, 0.0, 0.9]), [{0: 2.0}, {2: 0.5}])
    assert not overflows_unheld(st, st.score(_entry(2), 1))
    assert not held_clear(st, _entry(2))


def test_a_repair_path_the_held_apps_tipped_over_counts_too() -> None:
    """A path the repair tried and dropped is not among the candidates; it fitted but for
    the held apps' load (`tipped`): re-placing them could make room for it."""
    st = _State(np.array([0.0, 0.0, 0.9]), np.array([0.0, 0.0, 0.9]), [{0: 2.0}])
    assert held_clear(st, _entry(1))
    assert not held_clear(st, _entry(1, tipped=True))


def test_no_option_is_no_judgment() -> None:
    st = _State(np.zeros(3), np.zeros(3), [])
    assert not held_clear(st, _entry(0))
