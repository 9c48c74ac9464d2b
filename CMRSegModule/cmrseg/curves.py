"""Peak ejection and peak filling rates (ml/s) from the volume-time curves of a cine segmented in every frame.

Rates are finite differences between consecutive frames, from the real trigger times: the ejection rate is
the steepest fall of the volume between ED and ES, the filling rate the steepest rise after ES. The step from
the last frame back to the first is not used (its duration is not in the data). Without trigger times there
are no rates.
"""

from __future__ import annotations

import numpy as np


def peak_rates(times_ms, volumes_ml, ed: int, es: int) -> tuple[float | None, float | None]:
    """(peak ejection rate, peak filling rate) in ml/s of one ventricle's curve (frames in time order)."""
    times, volumes = np.asarray(times_ms, dtype=float), np.asarray(volumes_ml, dtype=float)
    n = len(times)
    steps = np.diff(times)
    if n < 3 or not np.all(steps > 0) or not (0 <= ed < n and 0 <= es < n) or ed == es:
        return None, None
    slopes = np.diff(volumes) / steps * 1000.0  # ml/s of the step from frame i to i + 1
    systole = _steps_between(ed, es, n)
    diastole = _steps_between(es, ed, n)
    ejection = float(-slopes[systole].min()) if systole else None
    filling = float(slopes[diastole].max()) if diastole else None
    return ejection, filling


def _steps_between(first: int, last: int, n: int) -> list[int]:
    """Steps i -> i + 1 going forward from frame ``first`` to frame ``last``, without the wrap-around step."""
    steps, i = [], first
    while i != last:
        if i + 1 < n:
            steps.append(i)
        i = (i + 1) % n
    return steps


def volume_curve_rates(times_ms, lv_ml, rv_ml, ed: int, es: int) -> dict:
    """LV and RV peak ejection and filling rates (ml/s); ``None`` where they cannot be computed."""
    lv_per, lv_pfr = peak_rates(times_ms, lv_ml, ed, es)
    rv_per, rv_pfr = peak_rates(times_ms, rv_ml, ed, es)
    return {"lv_per_ml_s": lv_per, "lv_pfr_ml_s": lv_pfr, "rv_per_ml_s": rv_per, "rv_pfr_ml_s": rv_pfr}
