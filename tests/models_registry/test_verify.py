from __future__ import annotations

import numpy as np
import pytest

from models_registry import ModelError
from models_registry.verify import difference


def test_difference_is_relative_to_the_output_scale() -> None:
    whole = np.array([[10.0, -20.0, 0.0]], np.float32)
    chain = np.array([[10.0, -20.002, 0.001]], np.float32)
    max_abs, max_rel = difference(chain, whole)
    assert max_abs == pytest.approx(0.002, rel=1e-3)
    assert max_rel == pytest.approx(0.002 / 20.0, rel=1e-3)


def test_difference_edge_cases() -> None:
    zeros = np.zeros((2, 2), np.float32)
    assert difference(zeros, zeros) == (0.0, 0.0)
    assert difference(np.full(2, np.nan), np.full(2, np.nan)) == (0.0, 0.0)
    assert difference(np.array([np.inf]), np.array([1.0])) == (float("inf"), float("inf"))
    with pytest.raises(ModelError, match="shapes differ"):
        difference(np.zeros(3), np.zeros(4))
