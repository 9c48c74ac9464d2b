"""The clean-up of a predicted label map: stray blobs go, a ventricle split by a missed slice stays whole (and
the quality check then sees the gap), papillary-muscle holes join the blood pool."""

from __future__ import annotations

import numpy as np
import ring_hearts

from cmrseg.labels import LV, MYO, RV
from cmrseg.postprocess import clean_labels
from cmrseg.qc import structure_flags


def ring_heart(slices: int = 9) -> np.ndarray:
    return ring_hearts.ring_heart(slices, 64, (32, 28), (32, 50), (9, 14, 9))


def test_a_stray_blob_is_removed():
    labels = ring_heart()
    labels[4, 2:5, 2:5] = LV  # far from the heart, on a slice the LV has
    labels[4, 58:61, 58:61] = RV
    cleaned = clean_labels(labels)
    np.testing.assert_array_equal(cleaned, ring_heart())


def test_a_small_part_beyond_an_empty_slice_is_removed():
    labels = ring_heart()
    labels[8][labels[8] == LV] = 0  # the LV ends at slice 6; slice 7 empty; a small LV blob on slice 8
    labels[7][labels[7] == LV] = 0
    labels[8, 30:33, 27:30] = LV  # 9 voxels, under the LV, far below 10 % of it
    assert (clean_labels(labels)[8] != LV).all()


def test_a_ventricle_split_by_a_missed_slice_keeps_both_parts_and_the_gap_fails():
    labels = ring_heart()
    labels[4][labels[4] == LV] = MYO  # the network called the LV myocardium on one mid slice
    cleaned = clean_labels(labels)
    np.testing.assert_array_equal(cleaned == LV, labels == LV)  # both halves kept: nothing silently dropped
    (gap,) = [f for f in structure_flags(cleaned, "ED") if f.code == "lv_gap"]
    assert gap.severity == "fail" and gap.slice == 4


def test_papillary_muscles_inside_the_blood_pool_join_it():
    labels = ring_heart()
    labels[4, 27:30, 26:29] = MYO  # inside the LV disc
    assert (clean_labels(labels)[4, 27:30, 26:29] == LV).all()
