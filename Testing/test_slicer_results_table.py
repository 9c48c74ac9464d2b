"""The results table (slicer-core, headless): rows, columns, automatic vs corrected, updates after edits."""

from __future__ import annotations

import math

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from cmrseg import labels  # noqa: E402
from cmrseg.errors import CMRSegError  # noqa: E402
from cmrseg.io.study import PatientInfo  # noqa: E402
from cmrseg.measures import body_surface_area, frame_measures, study_measures  # noqa: E402
from CMRSegModuleLib import ResultsTable  # noqa: E402
from CMRSegModuleLib.ReviewNodes import (  # noqa: E402
    createReviewNodes,
    reviewNodesFromTable,
    updateCorrected,
    voxelVolumeMl,
)
from CMRSegModuleLib.Runner import RunResult  # noqa: E402
from slicer_helpers import edit_segments, relabel_voxels, review_from_labels  # noqa: E402

PATIENT = PatientInfo(height_cm=180.0, weight_kg=80.0)


@pytest.fixture
def review(headless_slicer, oblique_phantom):
    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    maps = {ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}
    return review_from_labels(headless_slicer.scene, study, maps, ed, es, "Phantom", patient=PATIENT)


def test_rows_columns_units_and_automatic_values(review, oblique_phantom):
    table = review.table
    assert [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())] == list(ResultsTable.COLUMNS)
    rows = ResultsTable.readTable(table)
    names = [row["parameter"] for row in rows]
    assert names[:10] == ["LV EDV", "LV ESV", "LV SV", "LV EF", "LV mass (ED)", "LV mass (ES)",
                          "RV EDV", "RV ESV", "RV SV", "RV EF"]
    assert "LV EDV index" in names and "RV SV index" in names and names[-2] == "BSA (mosteller)"
    assert rows[-1]["key"] == "qc_status"
    units = {row["parameter"]: row["unit"] for row in rows}
    assert units["LV EDV"] == "ml" and units["LV EF"] == "%" and units["LV mass (ED)"] == "g"
    assert units["LV EDV index"] == "ml/m²" and units["BSA (mosteller)"] == "m²"
    # The automatic values are the core's measures of the label maps on the volume's grid, exactly.
    study = oblique_phantom.study
    expected = study_measures(
        frame_measures(oblique_phantom.labels[study.ed_frame], study.spacing),
        frame_measures(oblique_phantom.labels[study.es_frame], study.spacing), PATIENT,
    ).as_dict()
    automatic = ResultsTable.automaticMeasures(table)
    for key, value in expected.items():
        assert automatic[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key
    assert automatic["bsa_m2"] == pytest.approx(body_surface_area(180.0, 80.0))
    # Before any edit the corrected column equals the automatic one and the difference is 0.
    for row in rows:
        assert row["automatic"] == row["corrected"] == round(automatic[row["key"]], ResultsTable.decimalsOf(row["key"]))
        assert row["difference"] == 0.0
    assert table.GetLocked()


def test_removing_lv_voxels_changes_corrected_edv_by_exactly_n_voxel_volumes(review, oblique_phantom):
    study = oblique_phantom.study
    automatic = ResultsTable.automaticMeasures(review.table)
    voxel = voxelVolumeMl(review.edVolume)
    assert voxel == pytest.approx(study.voxel_volume_ml)
    ed_labels, _ = relabel_voxels(oblique_phantom.labels[study.ed_frame], labels.LV, labels.BACKGROUND, 120)
    es_labels, _ = relabel_voxels(oblique_phantom.labels[study.es_frame], labels.BACKGROUND, labels.RV, 30)
    edit_segments(review.edCorrected, review.edVolume, ed_labels)
    edit_segments(review.esCorrected, review.esVolume, es_labels)

    corrected = updateCorrected(review)

    assert corrected["lv_edv_ml"] == pytest.approx(automatic["lv_edv_ml"] - 120 * voxel, rel=1e-12)
    assert corrected["lv_esv_ml"] == automatic["lv_esv_ml"]
    assert corrected["lv_sv_ml"] == pytest.approx(automatic["lv_sv_ml"] - 120 * voxel, rel=1e-12)
    expected_ef = 100 * (corrected["lv_edv_ml"] - corrected["lv_esv_ml"]) / corrected["lv_edv_ml"]
    assert corrected["lv_ef_pct"] == pytest.approx(expected_ef)
    assert corrected["rv_esv_ml"] == pytest.approx(automatic["rv_esv_ml"] + 30 * voxel, rel=1e-12)
    assert corrected["lv_mass_ed_g"] == automatic["lv_mass_ed_g"]
    assert corrected["lv_edv_index"] == pytest.approx(corrected["lv_edv_ml"] / automatic["bsa_m2"])
    # The automatic column never changes; the table shows the difference.
    assert ResultsTable.automaticMeasures(review.table) == automatic
    rows = {row["key"]: row for row in ResultsTable.readTable(review.table)}
    assert rows["lv_edv_ml"]["automatic"] == round(automatic["lv_edv_ml"], 1)  # one decimal, as reports show
    assert rows["lv_edv_ml"]["difference"] == pytest.approx(-120 * voxel, abs=0.051)
    assert rows["rv_esv_ml"]["difference"] == pytest.approx(30 * voxel, abs=0.051)
    assert rows["rv_edv_ml"]["difference"] == 0.0
    assert ResultsTable.correctedMeasures(review.table) == corrected


def test_reference_columns_follow_the_patient_and_the_corrections(headless_slicer, oblique_phantom):
    from cmrseg.reference import compare_with_ranges

    study = oblique_phantom.study
    maps = {0: oblique_phantom.labels[0], study.es_frame: oblique_phantom.labels[study.es_frame]}
    patient = PatientInfo(height_cm=170.0, weight_kg=70.0, sex="M", age_years=60.0)
    review = review_from_labels(headless_slicer.scene, study, maps, 0, study.es_frame, "Ref", patient=patient)
    automatic = ResultsTable.automaticMeasures(review.table)
    expected = compare_with_ranges(automatic, "M", 60.0)["parameters"]
    assert automatic["reference"]["parameters"].keys() == expected.keys()
    rows = {row["key"]: row for row in ResultsTable.readTable(review.table)}
    ef = expected["lv_ef_pct"]  # UK Biobank men 58 +/- 5 %
    assert rows["lv_ef_pct"]["reference"] == f"{58 - 1.96 * 5:.1f}-{58 + 1.96 * 5:.1f}"
    assert rows["lv_ef_pct"]["automatic_flag"] == f"{ef['flag']} (z {(automatic['lv_ef_pct'] - 58) / 5:+.1f})"
    assert rows["lv_edv_index"]["reference"] and rows["rv_ef_pct"]["reference"] == ""  # no RV EF range shipped
    assert rows["lv_sv_ml"]["automatic_flag"] == ""
    # Taking LV voxels away at ED lowers the corrected EF; its flag follows, the automatic one stays.
    voxel = voxelVolumeMl(review.edVolume)
    removed = int(0.5 * automatic["lv_edv_ml"] / voxel)
    edited, _ = relabel_voxels(oblique_phantom.labels[0], labels.LV, labels.MYO, removed)
    edit_segments(review.edCorrected, review.edVolume, edited)
    corrected = updateCorrected(review)
    rows = {row["key"]: row for row in ResultsTable.readTable(review.table)}
    assert corrected["lv_ef_pct"] < ef["lower"] and rows["lv_ef_pct"]["corrected_flag"].startswith("low (z ")
    assert rows["lv_ef_pct"]["automatic_flag"] == ResultsTable.flagCell(ef)
    assert ResultsTable.tablePatient(review.table) == patient



def test_the_range_is_shown_where_only_the_corrected_value_has_one(headless_slicer, oblique_phantom):
    """ED and ES reversed by the automatic result (no SV or EF): the corrected EF's range cell was blank."""
    study = oblique_phantom.study
    maps = {0: oblique_phantom.labels[study.es_frame], study.es_frame: oblique_phantom.labels[0]}  # swapped
    patient = PatientInfo(height_cm=170.0, weight_kg=70.0, sex="M", age_years=60.0)
    review = review_from_labels(headless_slicer.scene, study, maps, 0, study.es_frame, "Swapped", patient=patient)
    assert "lv_ef_pct" not in ResultsTable.automaticMeasures(review.table)["reference"]["parameters"]
    edit_segments(review.edCorrected, review.edVolume, oblique_phantom.labels[0])
    edit_segments(review.esCorrected, review.esVolume, oblique_phantom.labels[study.es_frame])
    updateCorrected(review)
    row = next(r for r in ResultsTable.readTable(review.table) if r["key"] == "lv_ef_pct")
    assert row["reference"] == f"{58 - 1.96 * 5:.1f}-{58 + 1.96 * 5:.1f}" and row["corrected_flag"]


def test_a_table_saved_before_the_reference_columns_still_updates(review, oblique_phantom):
    for name in ("reference", "automatic_flag", "corrected_flag"):  # as a scene saved by an earlier CMRSeg
        review.table.RemoveColumn(review.table.GetColumnIndex(name))
    edited, _ = relabel_voxels(oblique_phantom.labels[oblique_phantom.study.ed_frame], labels.LV, labels.MYO, 20)
    edit_segments(review.edCorrected, review.edVolume, edited)
    corrected = updateCorrected(review)
    row = next(r for r in ResultsTable.readTable(review.table) if r["key"] == "lv_edv_ml")
    assert row["corrected"] == round(corrected["lv_edv_ml"], ResultsTable.DECIMALS) and row["corrected_flag"] == ""


def test_table_finds_its_nodes_again_and_reports_deleted_ones(headless_slicer, review):
    again = reviewNodesFromTable(review.table)
    assert again.edCorrected is review.edCorrected and again.esVolume is review.esVolume
    info = again.runInfo()
    assert info["study"] == "Phantom" and info["basalRule"] == "none" and info["model"] == "test labels"
    assert (info["edFrame"], info["esFrame"]) == (0, 1)
    headless_slicer.scene.RemoveNode(review.esCorrected)
    with pytest.raises(CMRSegError, match="esCorrected"):
        reviewNodesFromTable(review.table)
    other = headless_slicer.scene.AddNewNodeByClass("vtkMRMLTableNode", "not ours")
    with pytest.raises(CMRSegError, match="CMRSeg results table"):
        reviewNodesFromTable(other)


def test_a_run_segmented_mirrored_keeps_its_flag_in_the_table(headless_slicer, oblique_phantom, tmp_path):
    """The run's check says the network saw the slices mirrored; the table's check (automatic and corrected),
    the export and the corrected SR come from the table, and lost that flag. Read back from a run folder too."""
    import json

    from cmrseg.io.volume_files import write_frame
    from CMRSegModuleLib.Runner import readOutputFolder

    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    maps = {ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}
    codes = {}
    for mirrored in (False, True):
        result = RunResult(maps, ed, es, "test labels", "none", "input or user", segmentedMirrored=mirrored)
        review = createReviewNodes(headless_slicer.scene, study, result, f"mirrored {mirrored}")
        corrected = updateCorrected(reviewNodesFromTable(review.table))
        codes[mirrored] = [[flag["code"] for flag in qc["flags"]]
                           for qc in (ResultsTable.automaticMeasures(review.table)["qc"], corrected["qc"])]
    assert codes[True] == [["segmented_mirrored"], ["segmented_mirrored"]] and codes[False] == [[], []]
    flag = {"code": "segmented_mirrored", "severity": "review", "message": "", "phase": None, "slice": None}
    frames = {}
    for frame in (ed, es):
        write_frame(maps[frame], study, tmp_path / f"labels_{frame}.nii.gz")
        frames[str(frame)] = {"file": f"labels_{frame}.nii.gz", "lv_ml": 1.0}
    (tmp_path / "measures.json").write_text(json.dumps({"ed_frame": ed, "es_frame": es, "frames": frames,
                                                        "qc": {"status": "review", "flags": [flag]}}))
    assert readOutputFolder(tmp_path).segmentedMirrored


def test_one_frame_given_as_both_ed_and_es_is_checked_as_ed_as_the_command_checks_it(headless_slicer,
                                                                                     oblique_phantom):
    """``cmrseg segment --ed k --es k`` checks that frame as ED (the RV on at least half of the LV's slices); its
    review checked it as a frame of unknown phase (a quarter) and passed an RV the run's own check failed."""
    study = oblique_phantom.study
    frame = study.ed_frame
    truth = oblique_phantom.labels[frame]
    lv_slices = np.flatnonzero((truth == labels.LV).any(axis=(1, 2)))
    rv_slices = np.flatnonzero((truth == labels.RV).any(axis=(1, 2)))
    kept = rv_slices[: int(0.4 * len(lv_slices))]  # the RV on 40 % of the LV's slices, without a gap
    few = np.where((truth == labels.RV) & ~np.isin(np.arange(truth.shape[0]), kept)[:, None, None], 0, truth)
    few = few.astype(np.uint8)
    status = {}
    for name, (ed, es) in {"as ED": (frame, frame), "unknown phase": (None, None)}.items():
        review = review_from_labels(headless_slicer.scene, study, {frame: few}, ed, es, name)
        cells = {row["key"]: row for row in ResultsTable.readTable(review.table)}
        corrected = updateCorrected(reviewNodesFromTable(review.table))  # the corrected column, checked alike
        status[name] = (cells["qc_status"]["automatic"], corrected["qc"]["status"], cells["rv_ml"]["automatic_flag"])
    assert status["as ED"][:2] == (2, "fail") and status["as ED"][2].startswith("NOT USABLE (quality check: rv_")
    assert status["unknown phase"] == (0, "pass", "")


def test_a_single_volume_gives_frame_volumes_without_ejection_fraction(headless_slicer, oblique_phantom):
    study = oblique_phantom.study.single_frame(0)
    review = review_from_labels(headless_slicer.scene, study, {0: oblique_phantom.labels[0]}, None, None, "One")
    assert review.singleFrame and [p[0] for p in review.phases()] == ["frame"]
    rows = ResultsTable.readTable(review.table)
    assert [row["key"] for row in rows] == ["lv_ml", "rv_ml", "myo_mass_g", "qc_status"]
    assert rows[-1]["automatic"] == 0  # the structural checks pass on the phantom's truth
    # The RV missed on most slices: its volume is marked where it is shown, as the command line marks it.
    noRv = np.where(oblique_phantom.labels[0] == labels.RV, 0, oblique_phantom.labels[0]).astype(np.uint8)
    missed = review_from_labels(headless_slicer.scene, study, {0: noRv}, None, None, "No RV")
    cells = {row["key"]: row for row in ResultsTable.readTable(missed.table)}
    assert cells["qc_status"]["automatic"] == 2
    assert cells["rv_ml"]["automatic_flag"].startswith("NOT USABLE (quality check: rv_coverage)")
    assert cells["lv_ml"]["automatic_flag"] == ""
    lv = float((oblique_phantom.labels[0] == labels.LV).sum()) * study.voxel_volume_ml
    assert ResultsTable.automaticMeasures(review.table)["lv_ml"] == pytest.approx(lv, rel=1e-12)
    edited, _ = relabel_voxels(oblique_phantom.labels[0], labels.LV, labels.MYO, 10)
    edit_segments(review.edCorrected, review.edVolume, edited)
    corrected = updateCorrected(reviewNodesFromTable(review.table))
    assert corrected["lv_ml"] == pytest.approx(lv - 10 * study.voxel_volume_ml, rel=1e-12)
    assert corrected["myo_mass_g"] > ResultsTable.automaticMeasures(review.table)["myo_mass_g"]


def test_without_height_and_weight_there_are_no_indexed_rows(headless_slicer, oblique_phantom):
    study = oblique_phantom.study
    maps = {0: oblique_phantom.labels[0], 1: oblique_phantom.labels[1]}
    review = review_from_labels(headless_slicer.scene, study, maps, 0, 1, "NoBSA", patient=PatientInfo())
    keys = [row["key"] for row in ResultsTable.readTable(review.table)]
    assert keys == [key for key, _, _ in ResultsTable.tableRows({"lv_edv_ml": 1.0, "qc_status": 0})]
    assert not any(key.endswith("_index") for key in keys)


def test_an_empty_left_ventricle_gives_an_undefined_ejection_fraction(headless_slicer, oblique_phantom):
    study = oblique_phantom.study
    maps = {0: np.where(oblique_phantom.labels[0] == labels.LV, 0, oblique_phantom.labels[0]).astype(np.uint8),
            1: oblique_phantom.labels[1]}
    review = review_from_labels(headless_slicer.scene, study, maps, 0, 1, "Empty")
    row = next(r for r in ResultsTable.readTable(review.table) if r["key"] == "lv_ef_pct")
    assert math.isnan(row["automatic"]) and math.isnan(row["difference"])


def test_the_quality_check_of_each_column_follows_the_segmentations(headless_slicer, oblique_phantom):
    from cmrseg.qc import quality_check

    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    truth = {ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}
    no_rv = np.where(truth[ed] == labels.RV, 0, truth[ed]).astype(np.uint8)  # the RV missed at ED
    review = review_from_labels(headless_slicer.scene, study, {ed: no_rv, es: truth[es]}, ed, es, "QC")
    automatic = ResultsTable.automaticMeasures(review.table)
    assert automatic["qc"]["status"] == "fail" and automatic["qc_status"] == 2
    assert "rv_coverage" in {flag["code"] for flag in automatic["qc"]["flags"]}
    edit_segments(review.edCorrected, review.edVolume, truth[ed])  # the physician paints the RV back
    corrected = updateCorrected(review)
    expected = quality_check({0: truth[ed], 1: truth[es]}, 0, 1, study_measures(
        frame_measures(truth[ed], study.spacing), frame_measures(truth[es], study.spacing)).as_dict())
    assert corrected["qc"] == expected and expected["status"] != "fail"
    rows = {r["key"]: r for r in ResultsTable.readTable(review.table)}
    # The values the failing check makes unusable say so in their row; the painted RV's do not.
    for key in ("rv_edv_ml", "rv_esv_ml"):  # the RV lost at ED: none of its volumes
        assert rows[key]["automatic_flag"].startswith("NOT USABLE (quality check: rv_"), rows[key]
        assert "NOT USABLE" not in rows[key]["corrected_flag"]
    assert np.isnan(rows["rv_sv_ml"]["automatic"]) and rows["rv_sv_ml"]["automatic_flag"] == ""  # not given
    assert not any("NOT USABLE" in rows[key]["automatic_flag"] for key in ("lv_edv_ml", "lv_ef_pct"))
    row = rows["qc_status"]
    assert row["automatic"] == 2 and row["corrected"] == ResultsTable.QC_CODES[expected["status"]]
    # The review's top bar says both: the automatic failure, and what the correction made of it.
    summary = ResultsTable.reviewQcSummary(review.table)
    assert summary.startswith("Automatic result: Quality check: FAIL.")
    assert f"Corrected: Quality check: {expected['status'].upper()}." in summary
    edit_segments(review.edCorrected, review.edVolume, no_rv)  # the correction undone: one check, said once
    updateCorrected(review)
    assert ResultsTable.reviewQcSummary(review.table) == ResultsTable.qcSummary(review.table)


def test_a_jump_in_the_runs_volume_curve_is_flagged_as_the_command_flags_it(headless_slicer, oblique_phantom):
    """A run that segmented every frame: its ES under-segmented makes a dip in the LV curve (and is why it
    was chosen as ES). The table's automatic check flags it as `cmrseg segment` does; the corrected column
    judges the curve with the corrected ES volume."""
    from cmrseg.qc import quality_check

    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    truth = {ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}
    shrunk, _ = relabel_voxels(truth[es], labels.LV, labels.BACKGROUND, 600)
    volume = {name: frame_measures(maps, study.spacing).lv_ml for name, maps in
              (("ed", truth[ed]), ("es", shrunk), ("es_truth", truth[es]))}  # fmt: skip
    others = [36.0, 40.0, 50.0, 60.0, 70.0, 78.0, 84.0]  # the run's other frames
    curve = {ed: volume["ed"], es: volume["es"], **dict(zip(range(2, 9), others, strict=True))}
    result = RunResult({ed: truth[ed], es: shrunk}, ed, es, "test labels", "none", "LV volume curve", lvCurve=curve)
    review = createReviewNodes(headless_slicer.scene, study, result, "Curve")
    automatic = ResultsTable.automaticMeasures(review.table)
    measures = study_measures(frame_measures(truth[ed], study.spacing), frame_measures(shrunk, study.spacing))
    assert automatic["qc"] == quality_check({ed: truth[ed], es: shrunk}, ed, es, measures.as_dict(), curve)
    assert "curve_jump" in {flag["code"] for flag in automatic["qc"]["flags"]}
    edit_segments(review.esCorrected, review.esVolume, truth[es])  # the physician paints the ES cavity back
    corrected = updateCorrected(review)
    assert "curve_jump" not in {flag["code"] for flag in corrected["qc"]["flags"]}
    fixed = {**curve, es: volume["es_truth"]}
    measures = study_measures(frame_measures(truth[ed], study.spacing), frame_measures(truth[es], study.spacing))
    assert corrected["qc"] == quality_check(truth, ed, es, measures.as_dict(), fixed)


def test_the_table_indexes_with_the_runs_bsa_formula(headless_slicer, oblique_phantom, tmp_path):
    """A run made with --bsa dubois is reviewed with DuBois (the page showed Mosteller beside a DuBois report)."""
    import json

    from CMRSegModuleLib.Runner import readOutputFolder

    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    result = RunResult({ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}, ed, es, "test labels",
                       "none", "input or user", bsaMethod="dubois")  # fmt: skip
    review = createReviewNodes(headless_slicer.scene, study, result, "DuBois", patient=PATIENT)
    names = [row["parameter"] for row in ResultsTable.readTable(review.table)]
    assert "BSA (dubois)" in names
    assert ResultsTable.automaticMeasures(review.table)["bsa_m2"] == pytest.approx(
        body_surface_area(180.0, 80.0, "dubois"))
    assert updateCorrected(review)["bsa_m2"] == pytest.approx(body_surface_area(180.0, 80.0, "dubois"))
    # A run folder says which formula it used (earlier versions only beside the indexed values).
    from cmrseg.io.volume_files import write_frame

    frames = {}
    for frame in (ed, es):
        write_frame(oblique_phantom.labels[frame], study, tmp_path / f"f{frame}_seg.nii.gz")
        frames[str(frame)] = {"file": f"f{frame}_seg.nii.gz", "lv_ml": 1.0}
    measures = {"ed_frame": ed, "es_frame": es, "frames": frames, "bsa_method": "dubois"}
    (tmp_path / "measures.json").write_text(json.dumps(measures))
    assert readOutputFolder(tmp_path).bsaMethod == "dubois"
    measures = {**measures, "bsa_method": None, "study": {"bsa_method": "dubois"}}
    (tmp_path / "measures.json").write_text(json.dumps(measures))
    assert readOutputFolder(tmp_path).bsaMethod == "dubois"


def test_updating_the_corrected_column_adds_no_node_to_the_scene(headless_slicer, review, oblique_phantom):
    scene = headless_slicer.scene
    added = []
    tag = scene.AddObserver(scene.NodeAddedEvent, lambda caller, event: added.append(event))
    study = oblique_phantom.study
    edited, _ = relabel_voxels(oblique_phantom.labels[study.ed_frame], labels.LV, labels.BACKGROUND, 25)
    edit_segments(review.edCorrected, review.edVolume, edited)
    added.clear()
    corrected = updateCorrected(review)
    scene.RemoveObserver(tag)
    assert added == []  # no transient label map nodes reach the selectors and the subject hierarchy
    voxel = voxelVolumeMl(review.edVolume)
    assert corrected["lv_edv_ml"] == pytest.approx(ResultsTable.automaticMeasures(review.table)["lv_edv_ml"]
                                                   - 25 * voxel, rel=1e-12)
