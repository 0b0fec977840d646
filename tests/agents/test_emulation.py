from __future__ import annotations

import pytest

from agents.emulation import emulated_seconds, extra_wait


def test_stretches_to_the_emulated_device() -> None:
    # 2 GFLOP on a 10 GFLOP/s device: 0.2 s, of which 0.05 s were real.
    assert emulated_seconds(0.05, 2.0, 10.0) == pytest.approx(0.2)
    assert extra_wait(0.05, 2.0, 10.0) == pytest.approx(0.15)


def test_never_faster_than_real() -> None:
    assert emulated_seconds(0.5, 2.0, 100.0) == 0.5
    assert extra_wait(0.5, 2.0, 100.0) == 0.0


def test_no_emulation_is_real_time() -> None:
    assert emulated_seconds(0.3, 5.0, None) == 0.3
