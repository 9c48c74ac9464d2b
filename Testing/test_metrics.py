"""Metrics with known answers: shifted boxes, concentric spheres, empty-mask conventions, ACDC masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cmrseg.io.acdc import load_frame
from cmrseg.labels import LV, MYO, RV
from cmrseg.metrics import dice, hausdorff, sensitivity, slicewise_hausdorff, structure_metrics


def box(shape, start, stop):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))] = True
    return mask


def test_dice_and_sensitivity_of_shifted_boxes():
    ref = box((10, 20, 20), (2, 5, 5), (8, 15, 15))  # 6 x 10 x 10 = 600 voxels
    pred = box((10, 20, 20), (2, 5, 7), (8, 15, 17))  # shifted 2 voxels in x: overlap 480
    assert dice(pred, ref) == pytest.approx(2 * 480 / 1200)
    assert sensitivity(pred, ref) == pytest.approx(480 / 600)


def test_hausdorff_of_a_shift_is_the_shift_in_mm_along_that_axis():
    ref = box((10, 20, 20), (2, 5, 5), (8, 15, 15))
    shifted_x = box((10, 20, 20), (2, 5, 8), (8, 15, 18))
    shifted_z = box((10, 20, 20), (3, 5, 5), (9, 15, 15))
    spacing_zyx = (8.0, 1.2, 1.5)
    assert hausdorff(shifted_x, ref, spacing_zyx) == pytest.approx(3 * 1.5)
    assert hausdorff(shifted_z, ref, spacing_zyx) == pytest.approx(8.0)


def test_hausdorff_of_concentric_spheres_is_the_radius_difference():
    z, y, x = np.mgrid[-30:31, -30:31, -30:31].astype(float)
    r = np.sqrt(x**2 + y**2 + z**2)
    inner, outer = r <= 12, r <= 20
    assert hausdorff(inner, outer, (1.0, 1.0, 1.0)) == pytest.approx(8.0, abs=1.0)
    assert hausdorff(inner, outer, (1.0, 1.0, 1.0), 95) <= hausdorff(inner, outer, (1.0, 1.0, 1.0))


def test_empty_mask_conventions():
    empty = np.zeros((3, 4, 4), bool)
    full = box((3, 4, 4), (0, 1, 1), (3, 3, 3))
    assert dice(empty, empty) == 1.0
    assert dice(full, empty) == 0.0
    assert hausdorff(empty, empty, (1, 1, 1)) == 0.0
    assert hausdorff(full, empty, (1, 1, 1)) == math.inf
    assert math.isnan(sensitivity(full, empty))
    assert sensitivity(empty, full) == 0.0
    assert slicewise_hausdorff(full, empty, (1, 1, 1)) == []


@pytest.mark.shared_data
def test_expert_mask_against_itself_and_an_eroded_copy(acdc_root):
    from scipy import ndimage

    frame = load_frame(acdc_root / "patient005", "ED")
    spacing = frame.study.spacing
    for label in (RV, MYO, LV):
        same = structure_metrics(frame.mask, frame.mask, label, spacing)
        assert same["dice"] == 1.0 and same["hd_mm"] == 0.0 and same["sensitivity"] == 1.0
    # Eroding the LV in-plane by one pixel moves its surface by at most one pixel diagonal within slices.
    eroded = frame.mask.copy()
    lv = frame.mask == LV
    shrunk = ndimage.binary_erosion(lv, np.ones((1, 3, 3), bool))
    eroded[lv & ~shrunk] = 0
    result = structure_metrics(eroded, frame.mask, LV, spacing)
    assert 0.8 < result["dice"] < 1.0
    assert result["sensitivity"] == pytest.approx(shrunk.sum() / lv.sum())
    assert result["hd_2d_median_mm"] == pytest.approx(spacing[0] * math.sqrt(2), rel=0.01)
