"""Synthetic label maps for tests: a stack of LV discs in myocardial rings with an RV beside them."""

from __future__ import annotations

import numpy as np

from cmrseg.labels import LV, MYO, RV


def ring_heart(slices: int, size: int, lv_centre: tuple[int, int], rv_centre: tuple[int, int],
               radii: tuple[float, float, float]) -> np.ndarray:
    """``[z, y, x]`` labels: LV blood pool (radius ``radii[0]``) in myocardium (``radii[1]``), and the RV
    (``radii[2]``, around ``rv_centre``) where there is no myocardium; the same on every slice."""
    y, x = np.mgrid[:size, :size]
    plane = np.zeros((size, size), np.uint8)
    plane[np.hypot(y - lv_centre[0], x - lv_centre[1]) < radii[1]] = MYO
    plane[np.hypot(y - lv_centre[0], x - lv_centre[1]) < radii[0]] = LV
    plane[(np.hypot(y - rv_centre[0], x - rv_centre[1]) < radii[2]) & (plane == 0)] = RV
    return np.repeat(plane[None], slices, axis=0)
