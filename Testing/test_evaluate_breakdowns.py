"""Where the errors lie: along the long axis (known errors placed in known slices of an analytic heart) and by
pathology group (known Dice per group)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmrseg import labels
from cmrseg.error_regions import case_error_regions, error_region_table, slice_regions
from cmrseg.evaluate import Case, case_rows, evaluate_cases
from cmrseg.evaluate_groups import group_markdown, group_table

SPACING = (1.5, 1.5, 8.0)
VOXEL_ML = 1.5 * 1.5 * 8.0 / 1000


def analytic_heart(slices: int = 12, heart: range = range(1, 10)) -> np.ndarray:
    """Discs of LV blood pool in a myocardial ring with an RV beside, largest at the first heart slice (the
    base), shrinking towards the apex."""
    y, x = np.mgrid[:64, :64]
    volume = np.zeros((slices, 64, 64), dtype=np.uint8)
    for step, z in enumerate(heart):
        radius = 12 - step
        distance = np.hypot(y - 32, x - 30)
        volume[z][distance < radius + 3] = labels.MYO
        volume[z][distance < radius] = labels.LV
        volume[z][(np.hypot(y - 32, x - 52) < 6) & (distance >= radius + 3)] = labels.RV
    return volume


def test_slices_are_cut_into_thirds_from_the_base():
    reference = analytic_heart(heart=range(1, 10))
    assert list(slice_regions(reference)) == ["outside"] + ["base"] * 3 + ["mid"] * 3 + ["apex"] * 3 + ["outside"] * 2
    # The same heart upside down (base at the end of the stack), ten heart slices: the base gets the extra one.
    flipped = analytic_heart(heart=range(1, 11))[::-1]
    assert list(slice_regions(flipped)) == ["outside"] + ["apex"] * 3 + ["mid"] * 3 + ["base"] * 4 + ["outside"]


def test_known_errors_are_found_where_they_were_put(tmp_path):
    reference = analytic_heart()
    predicted = reference.copy()
    predicted[2, 30:33, 28:32] = labels.MYO  # 12 LV voxels become myocardium in a basal slice
    predicted[8, 30:34, 28:34] = labels.MYO  # 24 in an apical one (the LV there has radius 5)
    predicted[11, 10:12, 10:15] = labels.RV  # 10 voxels of RV below the expert's heart
    assert (reference[8, 30:34, 28:34] == labels.LV).all() and (reference[2, 30:33, 28:32] == labels.LV).all()
    case = Case("p1", "ES", SPACING, reference, {"model": predicted})
    rows = case_error_regions(case)
    table = {entry["structure"]: entry for entry in error_region_table(rows)}
    expert_lv_base = float((reference[1:4] == labels.LV).sum()) * VOXEL_ML
    expert_lv_apex = float((reference[7:10] == labels.LV).sum()) * VOXEL_ML
    lv = table["LV"]
    assert lv["error_ml"] == pytest.approx(36 * VOXEL_ML)
    assert (lv["base_share"], lv["mid_share"], lv["apex_share"], lv["outside_share"]) == pytest.approx(
        (1 / 3, 0, 2 / 3, 0))
    assert lv["base_relative"] == pytest.approx(12 * VOXEL_ML / expert_lv_base)
    assert lv["apex_relative"] == pytest.approx(24 * VOXEL_ML / expert_lv_apex)
    assert lv["mid_relative"] == 0 and lv["outside_relative"] is None  # no expert LV outside the heart
    assert (table["Myo"]["base_share"], table["Myo"]["apex_share"]) == pytest.approx((1 / 3, 2 / 3))
    assert table["RV"]["outside_share"] == 1 and table["RV"]["error_ml"] == pytest.approx(10 * VOXEL_ML)
    # evaluate writes it beside Tables 1 and 3
    results = evaluate_cases([case], tmp_path / "eval")
    assert results["regions"][0]["structure"] == "RV"
    written = (tmp_path / "eval" / "regions.md").read_text()
    assert f"| model | ES | LV | 33% ({lv['base_relative']:.2f}) | 0% (0.00) | 67% (" in written
    assert f"| {36 * VOXEL_ML:.1f} |" in written
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["regions"]
    assert [entry["structure"] for entry in saved] == [s.key for s in labels.STRUCTURES]


def test_the_dice_by_group_averages_each_groups_own_cases(tmp_path):
    reference = analytic_heart()
    no_lv = np.where(reference == labels.LV, labels.MYO, reference).astype(np.uint8)  # the LV read as myocardium
    cases = [Case("p1", "ED", SPACING, reference, {"model": reference.copy()}, "HCM"),
             Case("p1", "ES", SPACING, reference, {"model": no_lv}, "HCM"),
             Case("p2", "ES", SPACING, reference, {"model": reference.copy()}, "HCM"),
             Case("p3", "ES", SPACING, reference, {"model": reference.copy()}, "NOR"),
             Case("p4", "ES", SPACING, reference, {"model": reference.copy()})]  # no group: left out  # fmt: skip
    table = group_table([row for case in cases for row in case_rows(case)])
    assert [(entry["group"], entry["patients"]) for entry in table] == [("HCM", 2), ("NOR", 1)]
    hcm, nor = table
    assert (hcm["ED_LV"], hcm["ES_LV"], hcm["ES_RV"]) == pytest.approx((1.0, 0.5, 1.0))  # (0 + 1) / 2 at ES
    myo_dice = 2 * (reference == labels.MYO).sum() / ((reference == labels.MYO).sum() + (no_lv == labels.MYO).sum())
    assert hcm["ES_Myo"] == pytest.approx((myo_dice + 1) / 2)
    assert nor["ED_LV"] is None and nor["ES_LV"] == 1.0
    assert "| model | HCM | 2 | 1.000 | 1.000 | 1.000 | 0.500 |" in group_markdown(table)
    results = evaluate_cases(cases, tmp_path / "eval")
    assert results["groups"] == table and (tmp_path / "eval" / "groups.md").is_file()
    assert group_markdown(group_table(case_rows(cases[-1]))).startswith("No case names a pathology group")
    # A later run on data without groups into the same folder replaces the earlier table, never leaves it.
    evaluate_cases(cases[-1:], tmp_path / "eval")
    assert (tmp_path / "eval" / "groups.md").read_text().startswith("No case names a pathology group")


def test_the_basal_rule_acts_before_the_errors_are_placed():
    """A prediction whose basal LV is open (less than half its border on myocardium) loses that slice's LV to
    the basal rule, as the headline Dice does: the whole expert LV of that slice is error, in the base; a
    structure without error reads "-"."""
    from cmrseg.error_regions import error_region_markdown

    reference = analytic_heart()
    predicted = reference.copy()
    y, x = np.mgrid[:64, :64]
    predicted[1][(predicted[1] == labels.MYO) & (x > 24)] = labels.BACKGROUND  # most of the basal ring gone
    table = {e["structure"]: e for e in error_region_table(case_error_regions(Case("p", "ED", SPACING, reference,
                                                                                   {"model": predicted})))}  # fmt: skip
    lv_voxels = int((reference[1] == labels.LV).sum())
    assert table["LV"]["error_ml"] == pytest.approx(lv_voxels * VOXEL_ML) and table["LV"]["base_share"] == 1
    assert table["RV"]["error_ml"] == 0 and table["RV"]["base_share"] is None
    assert "| model | ED | RV | - | - | - | - | 0.0 |" in error_region_markdown(list(table.values()))
