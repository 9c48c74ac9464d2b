"""The correction record (ml added and removed per phase, slice and structure) and the reviewer's approval."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from cmrseg import labels  # noqa: E402
from cmrseg.errors import CMRSegError  # noqa: E402
from CMRSegModuleLib.Corrections import (  # noqa: E402
    APPROVED_BY_ATTRIBUTE,
    approvalOf,
    approve,
    correctionRecord,
    correctionTotals,
    hasReviewWork,
    reviewState,
)
from CMRSegModuleLib.Export import exportPaths, exportReview  # noqa: E402
from CMRSegModuleLib.ReviewList import editedSlices  # noqa: E402
from slicer_helpers import edit_segments, relabel_voxels, review_from_labels  # noqa: E402


@pytest.fixture
def review(headless_slicer, oblique_phantom):
    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    maps = {ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}
    return review_from_labels(headless_slicer.scene, study, maps, ed, es, "Corrections test"), maps


def test_an_unedited_result_has_an_empty_record(review):
    nodes, _ = review
    assert correctionRecord(nodes) == [] and editedSlices(nodes) == set()
    assert not hasReviewWork(nodes)  # may be offered for removal when a new result is made


def test_a_corrected_or_approved_result_counts_as_review_work(headless_slicer, oblique_phantom):
    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    maps = {ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}
    approved = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Approved as it was")
    approve(approved, "Dr Keep")
    corrected = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Corrected")
    edit_segments(corrected.edCorrected, corrected.edVolume, relabel_voxels(maps[ed], labels.LV, labels.MYO, 3)[0])
    broken = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Segment deleted")
    broken.esCorrected.GetSegmentation().RemoveSegment("RV")
    assert hasReviewWork(approved) and hasReviewWork(corrected) and hasReviewWork(broken)


def test_a_paint_on_the_automatic_segmentation_is_refused_not_recorded(review, oblique_phantom, tmp_path):
    """The Segment Editor lists the automatic segmentation beside the corrected one: painted by mistake, the
    record showed a correction that is not in the corrected result."""
    nodes, maps = review
    ed = oblique_phantom.study.ed_frame
    edited, _ = relabel_voxels(maps[ed], labels.LV, labels.MYO, 9)
    edit_segments(nodes.edAutomatic, nodes.edVolume, edited)
    for action in (lambda: correctionRecord(nodes), lambda: reviewState(nodes),
                   lambda: exportReview(nodes, tmp_path)):  # fmt: skip
        with pytest.raises(CMRSegError, match="automatic segmentation .* was changed after the run"):
            action()
    assert list(tmp_path.iterdir()) == []
    edit_segments(nodes.edAutomatic, nodes.edVolume, maps[ed])  # undone: as it was
    assert correctionRecord(nodes) == []


def test_the_record_gives_the_ml_moved_per_slice_and_structure(review, oblique_phantom):
    nodes, maps = review
    study = oblique_phantom.study
    voxel_ml = study.voxel_volume_ml
    ed_edit, moved = relabel_voxels(maps[study.ed_frame], labels.LV, labels.MYO, 50)  # LV -> Myo at ED
    edit_segments(nodes.edCorrected, nodes.edVolume, ed_edit)
    es_edit = maps[study.es_frame].copy()
    background = np.argwhere(es_edit[3] == 0)[:30]
    es_edit[3][tuple(background.T)] = labels.RV  # 30 voxels of RV painted on ES slice 3
    edit_segments(nodes.esCorrected, nodes.esVolume, es_edit)

    rows = correctionRecord(nodes)
    per_slice = {int(z): int(n) for z, n in zip(*np.unique(moved[:, 0], return_counts=True), strict=True)}
    expected = []
    for z, n in sorted(per_slice.items()):
        expected.append(("ED", z, "Myo", n * voxel_ml, 0.0))
        expected.append(("ED", z, "LV", 0.0, n * voxel_ml))
    expected.append(("ES", 3, "RV", 30 * voxel_ml, 0.0))
    got = [(r["phase"], r["slice"], r["structure"], r["added_ml"], r["removed_ml"]) for r in rows]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    np.testing.assert_allclose([g[3:] for g in got], [e[3:] for e in expected], rtol=1e-12)
    totals = correctionTotals(rows)
    assert totals["ED LV"]["net_ml"] == pytest.approx(-50 * voxel_ml) and totals["ES RV"]["added_ml"] == pytest.approx(
        30 * voxel_ml
    )
    assert editedSlices(nodes) == {f"ED:{z}" for z in per_slice} | {"ES:3"}


def test_an_approval_holds_until_the_corrected_segmentation_changes(review, oblique_phantom):
    nodes, maps = review
    assert approvalOf(nodes) == {"status": "not approved"}
    with pytest.raises(CMRSegError, match="reviewer's name"):
        approve(nodes, "   ")
    when = datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)  # noqa: UP017
    assert approve(nodes, " Dr  A. Reviewer ", when) == {
        "status": "approved", "by": "Dr A. Reviewer", "at": "2026-12-02T09:30:00+00:00"
    }  # fmt: skip
    assert approvalOf(nodes)["status"] == "approved"  # looking again changes nothing
    assert reviewState(nodes) == ([], approvalOf(nodes))  # what the module shows, from one export
    study = oblique_phantom.study
    edit_segments(nodes.esCorrected, nodes.esVolume, relabel_voxels(maps[study.es_frame], labels.LV, 0, 1)[0])
    assert approvalOf(nodes) == {"status": "not approved"}  # one voxel later
    assert nodes.table.GetAttribute(APPROVED_BY_ATTRIBUTE) is None  # cleared, not just hidden
    edit_segments(nodes.esCorrected, nodes.esVolume, maps[study.es_frame])  # undone: still needs approving
    assert approvalOf(nodes) == {"status": "not approved"}



def test_an_approval_saved_before_patient_facts_were_fingerprinted_still_stands(review):
    """A scene saved by an earlier CMRSeg holds a fingerprint of the label maps alone; its table holds the facts
    the result was approved with."""
    from CMRSegModuleLib.Corrections import APPROVED_FINGERPRINT_ATTRIBUTE, _fingerprint, phaseLabelmaps

    nodes, _ = review
    approve(nodes, "Dr A")
    nodes.table.SetAttribute(APPROVED_FINGERPRINT_ATTRIBUTE, _fingerprint(phaseLabelmaps(nodes)))  # as saved then
    assert approvalOf(nodes)["by"] == "Dr A"
    assert nodes.table.GetAttribute(APPROVED_FINGERPRINT_ATTRIBUTE).startswith("v2:")  # stamped anew
    nodes.table.SetAttribute(APPROVED_FINGERPRINT_ATTRIBUTE, "0" * 64)  # of other label maps: stale
    assert approvalOf(nodes) == {"status": "not approved"}


def test_an_approval_covers_the_numbers_of_the_segmentations_approved(review, oblique_phantom):
    """Edited with the module's automatic update off: the corrected column still showed the numbers before."""
    from CMRSegModuleLib.ResultsTable import correctedMeasures

    nodes, maps = review
    study = oblique_phantom.study
    before = correctedMeasures(nodes.table)["lv_edv_ml"]
    edit_segments(nodes.edCorrected, nodes.edVolume, relabel_voxels(maps[study.ed_frame], labels.LV, 0, 200)[0])
    assert correctedMeasures(nodes.table)["lv_edv_ml"] == before  # not recomputed yet
    approve(nodes, "Dr A")
    assert correctedMeasures(nodes.table)["lv_edv_ml"] == pytest.approx(before - 200 * study.voxel_volume_ml)


def test_the_export_carries_the_record_and_the_approval(review, oblique_phantom, tmp_path):
    nodes, maps = review
    study = oblique_phantom.study
    edit_segments(nodes.edCorrected, nodes.edVolume, relabel_voxels(maps[study.ed_frame], labels.LV, 0, 20)[0])
    paths = exportPaths(nodes, tmp_path / "a")
    exportReview(nodes, tmp_path / "a")
    document = json.loads(paths["json"].read_text())
    assert document["approval"] == {"status": "not approved"}
    assert document["corrections"]["by_slice"] == correctionRecord(nodes)
    with open(paths["corrections"], newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert sum(float(r["removed_ml"]) for r in rows) == pytest.approx(20 * study.voxel_volume_ml, abs=1e-3 * len(rows))
    assert {r["structure"] for r in rows} == {"LV"} and {r["phase"] for r in rows} == {"ED"}
    approve(nodes, "Dr B")
    exportReview(nodes, tmp_path / "b")
    approved = json.loads(exportPaths(nodes, tmp_path / "b")["json"].read_text())["approval"]
    assert approved["status"] == "approved" and approved["by"] == "Dr B"


@pytest.mark.parametrize("damage", ["missing", "values"])
def test_a_restore_that_fails_leaves_the_result_as_it_was(headless_slicer, review, oblique_phantom, tmp_path, damage):
    """The ED corrections were put back before a missing or unusable ES label map stopped the restore."""
    from cmrseg.io.volume_files import write_frame
    from CMRSegModuleLib.Export import restoreExport
    from CMRSegModuleLib.SegmentationNodes import labelmapFromSegmentation

    nodes, maps = review
    study = oblique_phantom.study
    edit_segments(nodes.edCorrected, nodes.edVolume, relabel_voxels(maps[study.ed_frame], labels.LV, 0, 20)[0])
    exportReview(nodes, tmp_path)
    es_file = exportPaths(nodes, tmp_path)["ES_labelmap"]
    es_file.unlink()
    if damage == "values":  # a file there, of values no label map has
        write_frame(np.full(maps[study.es_frame].shape, 7, np.uint8), study, es_file)
    again = review_from_labels(headless_slicer.scene, study, maps, study.ed_frame, study.es_frame, "Corrections test")
    with pytest.raises(CMRSegError, match="has no usable ES label map"):
        restoreExport(again, tmp_path)
    np.testing.assert_array_equal(labelmapFromSegmentation(again.edCorrected, again.edVolume), maps[study.ed_frame])
