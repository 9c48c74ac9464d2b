"""Pearson R^2 and Bland-Altman with hand-computed values, and the plot file."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cmrseg.agreement import agreement, plot_agreement
from cmrseg.errors import CMRSegError


def test_hand_computed_example():
    reference = np.array([1.0, 2.0, 3.0, 4.0])
    method = np.array([2.0, 2.0, 4.0, 6.0])
    result = agreement(method, reference)
    # differences 1, 0, 1, 2: bias 1, SD sqrt(2/3); r = 7 / sqrt(11 * 5)
    assert result.bias == pytest.approx(1.0)
    assert result.sd == pytest.approx(math.sqrt(2 / 3))
    assert result.upper == pytest.approx(1 + 2 * math.sqrt(2 / 3))
    assert result.r2 == pytest.approx(49 / 55)
    assert result.n == 4


def test_constant_offset_and_missing_values():
    reference = np.array([100.0, 150.0, np.nan, 200.0, 120.0])
    result = agreement(reference + 5.0, reference)
    assert result.n == 4 and result.bias == pytest.approx(5.0) and result.sd == pytest.approx(0.0)
    assert result.r2 == pytest.approx(1.0)
    with pytest.raises(CMRSegError):
        agreement(np.ones(2), np.ones(2))


def test_plot_is_written(tmp_path):
    rng = np.random.default_rng(0)
    reference = rng.uniform(80, 250, 20)
    path = plot_agreement(reference + rng.normal(0, 5, 20), reference, "LV EDV", "ml", tmp_path / "lv_edv.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
