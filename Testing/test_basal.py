"""The basal-slice criteria on a synthetic LV with known myocardial coverage per slice, and on ACDC masks."""

from __future__ import annotations

import numpy as np
import pytest

from cmrseg.basal import apply_basal_rule, basal_end, basal_end_as, enclosed_fraction
from cmrseg.io.acdc import load_frame
from cmrseg.labels import LV, MYO


def lv_slice(coverage: float, radius: float = 14.0, size: int = 64) -> np.ndarray:
    """LV blood pool disk with a myocardial ring over ``coverage`` of the circumference (from angle 0)."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(x, y)
    angle = (np.arctan2(y, x) + 2 * np.pi) % (2 * np.pi)
    labels = np.zeros((size, size), np.uint8)
    labels[r <= radius] = LV
    labels[(r > radius) & (r <= radius + 5) & (angle <= coverage * 2 * np.pi)] = MYO
    return labels


def synthetic_lv() -> np.ndarray:
    # Slice 0 is basal (largest blood pool), 30 % enclosed; slice 1 is 70 % enclosed; slices 2-5 fully.
    slices = [lv_slice(0.3, radius=16), lv_slice(0.7, radius=15)] + [lv_slice(1.0, radius=r) for r in (14, 12, 10, 7)]
    return np.stack(slices)


def test_enclosed_fraction_follows_the_ring_coverage():
    assert enclosed_fraction(lv_slice(1.0)) == 1.0
    assert enclosed_fraction(lv_slice(0.5)) == pytest.approx(0.5, abs=0.05)
    assert enclosed_fraction(lv_slice(0.3)) == pytest.approx(0.3, abs=0.05)
    assert np.isnan(enclosed_fraction(np.zeros((8, 8), np.uint8)))


@pytest.mark.parametrize(("rule", "removed"), [("none", []), ("50", [0]), ("100", [0, 1])])
def test_rules_remove_only_the_failing_basal_slices(rule, removed):
    labels = synthetic_lv()
    result, removed_slices = apply_basal_rule(labels, rule)
    assert removed_slices == removed
    for z in range(labels.shape[0]):
        expected_lv = 0 if z in removed else (labels[z] == LV).sum()
        assert (result[z] == LV).sum() == expected_lv
    np.testing.assert_array_equal(result == MYO, labels == MYO)


def test_the_rule_never_reaches_past_the_basal_third():
    # Nine slices, the first six only 30 % enclosed (a segmentation that lost the myocardium): the rule removes
    # the basal third (3 slices) and leaves the rest for the quality check, instead of emptying the ventricle.
    labels = np.stack([lv_slice(0.3, radius=16 - k) for k in range(6)] + [lv_slice(1.0, radius=r) for r in (9, 8, 7)])
    result, removed = apply_basal_rule(labels, "50")
    assert removed == [0, 1, 2]
    assert all((result[z] == LV).sum() == (labels[z] == LV).sum() for z in range(3, 9))


def test_evaluation_applies_the_rule_to_a_prediction_from_the_experts_base():
    """A prediction's own guess of its base, swayed by a heart drawn larger at the apex (an RV error, say),
    started the rule at the apex: its open basal slice was never tested and it scored as the expert."""
    from cmrseg.evaluate import Case, case_rows
    from cmrseg.labels import RV

    expert = np.stack([lv_slice(1.0, radius=r) for r in (16, 15, 14, 12, 10, 7)])  # base at slice 0
    predicted = expert.copy()
    predicted[0] = lv_slice(0.3, radius=16)  # the basal slice's myocardium largely missed
    predicted[5][(predicted[5] == 0)] = RV  # a large false RV at the apex: the apex end now looks larger
    assert basal_end(predicted) == 5 and basal_end(expert) == 0
    assert basal_end_as(predicted, expert) == 0 and basal_end_as(expert[::-1], expert[::-1]) == 5
    rows = case_rows(Case("p", "ED", (1.5, 1.5, 8.0), expert, {"net": predicted}))
    lv = {row["criterion"]: row["dice"] for row in rows if row["structure"] == "LV"}
    assert lv["50"] < 0.9 and lv["100"] < 0.9  # its open basal slice loses its blood pool under either rule


def test_basal_end_is_found_when_the_base_is_the_last_slice():
    labels = synthetic_lv()[::-1]
    _, removed = apply_basal_rule(labels, "100")
    assert removed == [5, 4]


@pytest.mark.shared_data
def test_acdc_expert_masks_lose_at_most_a_few_basal_slices(acdc_root):
    for patient in ("patient001", "patient021", "patient041"):
        mask = load_frame(acdc_root / patient, "ED").mask
        lv_slices = int((mask == LV).any(axis=(1, 2)).sum())
        _, removed_50 = apply_basal_rule(mask, "50")
        _, removed_100 = apply_basal_rule(mask, "100")
        assert set(removed_50) <= set(removed_100)
        assert len(removed_100) <= 3 < lv_slices


@pytest.mark.shared_data
def test_the_base_is_found_on_every_acdc_expert_mask_either_way_up(acdc_root):
    """ACDC stores the base first. Comparing the two end slices' LV areas took the apex for the base in 3 of
    the 200 frames (patient047 ED and ES, patient054 ES: a basal sliver of LV, a dilated apex); the heart
    area over each end's third of the LV slices finds it in all, and in the stacks turned over."""
    from cmrseg.io.acdc import list_patients

    wrong = []
    for folder in list_patients(acdc_root):
        for phase in ("ED", "ES"):
            mask = load_frame(folder, phase).mask
            lv = np.flatnonzero((mask == LV).any(axis=(1, 2)))
            flipped_base = mask.shape[0] - 1 - lv[0]
            if basal_end(mask) != lv[0] or basal_end(mask[::-1]) != flipped_base:
                wrong.append(f"{folder.name} {phase}")
    assert wrong == []
