"""The hysteresis rule, and that it never flaps between two plans."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.hysteresis import decide


def test_first_plan_is_applied() -> None:
    assert decide(None, [], 10.0, True).apply


def test_broken_plan_in_force_is_replaced_even_by_a_worse_one() -> None:
    d = decide(5.0, ["device cam-1: battery"], 9.0, True)
    assert d.apply and "breaks" in d.reason


def test_small_improvement_is_not_applied() -> None:
    d = decide(10.0, [], 9.7, True)
    assert not d.apply and "margin" in d.reason


def test_large_improvement_is_applied() -> None:
    assert decide(10.0, [], 9.0, True).apply


def test_infeasible_candidate_is_never_applied() -> None:
    assert not decide(10.0, [], 1.0, False).apply
    assert not decide(10.0, ["link"], None, False).apply


@settings(max_examples=300, derandomize=True)
@given(
    a=st.floats(0, 1e6),
    b=st.floats(0, 1e6),
    move_ab=st.floats(0, 1e3),
    move_ba=st.floats(0, 1e3),
    margin=st.floats(0.001, 0.5),
)
def test_never_flaps(a: float, b: float, move_ab: float, move_ba: float, margin: float) -> None:
    """Under the same conditions, A -> B and B -> A are never both applied."""
    there = decide(a, [], b + move_ab, True, margin).apply
    back = decide(b, [], a + move_ba, True, margin).apply
    assert not (there and back)
