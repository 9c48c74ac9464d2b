"""The published study's basal-slice criteria for the LV blood pool.

Near the base the LV outflow tract is not enclosed by myocardium. A basal slice keeps its LV blood pool
only when enough of the blood pool border touches myocardium: ``"50"`` keeps slices where at least 50 %
of the border does, ``"100"`` only slices where all of it does, ``"none"`` keeps everything. Slices are
tested from the basal end towards the apex and the test stops at the first slice that passes, and after the
basal third of the slices holding LV at the latest, so mid-ventricular slices are never touched: a blood pool
left open there is a segmentation error for the quality check to flag, not outflow tract to drop. (On the
expert masks of the 100 shared ACDC patients the rule removes at most one slice.) The myocardium and RV are
left as they are.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from cmrseg.errors import CMRSegError
from cmrseg.labels import BACKGROUND, LV, MYO

RULES = {"none": None, "50": 0.5, "100": 1.0}

_CROSS = ndimage.generate_binary_structure(2, 1)


def enclosed_fraction(slice_labels: np.ndarray) -> float:
    """Fraction of the LV blood pool border pixels (2D, 4-connected) that touch myocardium (8-neighbourhood)."""
    lv = slice_labels == LV
    if not lv.any():
        return float("nan")
    border = lv & ~ndimage.binary_erosion(lv, _CROSS, border_value=0)
    near_myo = ndimage.binary_dilation(slice_labels == MYO, np.ones((3, 3), bool))
    return float((border & near_myo).sum()) / float(border.sum())


def basal_end(labels: np.ndarray) -> int:
    """Index of the basal slice: the end slice holding LV at the end of the stack where the heart is larger,
    its area (LV, RV and myocardium) summed over that end's third of the LV slices. Two end slices alone are
    not enough: a stack cut short of the apex, a dilated apex or a basal sliver of LV made the apex win (3 of
    the 200 ACDC expert label maps)."""
    with_lv = np.flatnonzero((labels == LV).any(axis=(1, 2)))
    if with_lv.size == 0:
        return 0
    heart = (labels != BACKGROUND).sum(axis=(1, 2))
    third = math.ceil(with_lv.size / 3)
    first, last = int(with_lv[0]), int(with_lv[-1])
    return first if heart[with_lv[:third]].sum() >= heart[with_lv[-third:]].sum() else last


def basal_end_as(labels: np.ndarray, reference: np.ndarray) -> int:
    """The basal slice of ``labels`` at the end of the stack where ``reference`` has its base: in evaluation
    the expert mask decides which end is the base (a prediction's own guess, swayed by its RV errors, could
    start the rule at the apex and never test the base)."""
    with_lv = np.flatnonzero((labels == LV).any(axis=(1, 2)))
    reference_lv = np.flatnonzero((reference == LV).any(axis=(1, 2)))
    if with_lv.size == 0 or reference_lv.size == 0:
        return basal_end(labels)
    at_low_end = basal_end(reference) <= reference_lv.mean()
    return int(with_lv[0] if at_low_end else with_lv[-1])


def apply_basal_rule(labels: np.ndarray, rule: str, base_index: int | None = None) -> tuple[np.ndarray, list[int]]:
    """A copy of ``[z, y, x]`` labels with the LV blood pool removed from the basal slices that fail ``rule``.

    Returns the new labels and the list of slices whose LV blood pool was removed. ``base_index`` names
    the basal slice when it is known (e.g. the ED frame's, so ED and ES use the same end).
    """
    if rule not in RULES:
        raise CMRSegError(f"Unknown basal-slice rule {rule!r}; use one of {', '.join(RULES)}.")
    threshold = RULES[rule]
    result = labels.copy()
    if threshold is None:
        return result, []
    with_lv = np.flatnonzero((labels == LV).any(axis=(1, 2)))
    if with_lv.size == 0:
        return result, []
    base = basal_end(labels) if base_index is None else base_index
    step = 1 if base <= with_lv.mean() else -1  # towards the apex
    basal_third = math.ceil(with_lv.size / 3)
    removed = []
    z = base
    while 0 <= z < labels.shape[0] and len(removed) < basal_third:
        fraction = enclosed_fraction(labels[z])
        if np.isnan(fraction):  # no blood pool in this slice: move on towards the apex
            z += step
            continue
        if fraction + 1e-9 >= threshold:
            break
        result[z][result[z] == LV] = BACKGROUND
        removed.append(z)
        z += step
    return result, removed
