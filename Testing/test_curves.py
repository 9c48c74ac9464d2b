"""Peak ejection and filling rates from volume-time curves with known slopes."""

from __future__ import annotations

import numpy as np
import pytest

from cmrseg.curves import peak_rates, volume_curve_rates


def test_a_piecewise_linear_curve_gives_its_slopes():
    times = np.arange(0, 900, 30.0)  # 30 frames, 30 ms apart
    volumes = np.where(times <= 300, 150 - 0.3 * times, 60 + 0.15 * (times - 300))  # -300 ml/s, then +150 ml/s
    assert peak_rates(times, volumes, 0, 10) == (pytest.approx(300.0), pytest.approx(150.0))


def test_a_sine_curve_gives_its_peak_derivative_within_the_sampling_error():
    times = np.linspace(0, 1000, 40, endpoint=False)
    volumes = 100 + 40 * np.cos(2 * np.pi * times / 1000)  # peak |dV/dt| = 40 * 2 pi = 251 ml/s
    ejection, filling = peak_rates(times, volumes, 0, 20)
    assert ejection == pytest.approx(80 * np.pi, rel=0.01) and filling == pytest.approx(80 * np.pi, rel=0.01)


def test_es_before_ed_and_the_wrap_around_step():
    times = np.arange(10) * 50.0
    volumes = np.array([70, 90, 110, 130, 150, 140, 110, 90, 75, 70], dtype=float)  # ED at 4, ES at 9
    ejection, filling = peak_rates(times, volumes, 4, 9)
    assert ejection == pytest.approx(600.0)  # 140 -> 110 in 50 ms
    assert filling == pytest.approx(400.0)  # after ES only the steps 0 -> 4 count, not 9 -> 0 (no duration)


def test_no_rates_without_usable_times():
    assert peak_rates([0, 0, 0, 0], [1, 2, 3, 4], 0, 2) == (None, None)
    assert peak_rates([0, 30, 60], [1, 2, 3], 1, 1) == (None, None)
    rates = volume_curve_rates(np.arange(5) * 40.0, [100, 80, 60, 80, 100], [90, 70, 50, 70, 90], 0, 2)
    assert rates == {"lv_per_ml_s": pytest.approx(500.0), "lv_pfr_ml_s": pytest.approx(500.0),
                     "rv_per_ml_s": pytest.approx(500.0), "rv_pfr_ml_s": pytest.approx(500.0)}
