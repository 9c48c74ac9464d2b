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


def test_the_apical_cap_of_the_myocardium_is_kept():
    """The last myocardium slice at the apex is a disc inside the ring above it: not connected to the ring, and
    far smaller than the myocardium. It was dropped (LV mass too low); a blob beside the outline still goes."""
    from scipy import ndimage

    labels = ring_heart()
    apex = 7
    labels[apex:] = 0
    inside = ndimage.binary_erosion(labels[apex - 1] == LV, np.ones((3, 3)))  # no voxel next to the ring above
    labels[apex][inside] = MYO
    cleaned = clean_labels(labels)
    np.testing.assert_array_equal(cleaned[apex] == MYO, inside)
    labels[apex][inside] = 0
    labels[apex, 2:6, 2:6] = MYO  # not under the myocardium's outline: a stray blob
    assert not (clean_labels(labels)[apex] == MYO).any()


def test_the_expert_masks_keep_their_myocardium_and_lv(acdc_root):
    """On the 200 ACDC expert label maps the clean-up removes no myocardium or LV beyond 0.5 ml (it removed up to
    7.5 ml of apical myocardium, in 13 frames, before)."""
    from cmrseg.io.acdc import list_patients, load_frame

    worst = {MYO: 0.0, LV: 0.0}
    for folder in list_patients(acdc_root):
        for phase in ("ED", "ES"):
            frame = load_frame(folder, phase)
            cleaned = clean_labels(frame.mask)
            for label in worst:
                lost = int(((frame.mask == label) & (cleaned != label)).sum()) * frame.study.voxel_volume_ml
                worst[label] = max(worst[label], lost)
    assert worst[MYO] < 0.5 and worst[LV] < 0.5, worst
