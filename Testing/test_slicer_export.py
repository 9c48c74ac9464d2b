"""Export of a reviewed result (slicer-core, headless): files, read-back, never overwriting silently."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from cmrseg import __version__, labels  # noqa: E402
from cmrseg.errors import CMRSegError  # noqa: E402
from cmrseg.io.segmentation_file import read_seg_nrrd, terminology_entry  # noqa: E402
from cmrseg.io.study import PatientInfo  # noqa: E402
from cmrseg.io.volume_files import read_volume_file  # noqa: E402
from CMRSegModuleLib import ResultsTable  # noqa: E402
from CMRSegModuleLib.Export import existingExportFiles, exportPaths, exportReview, sendToPacs  # noqa: E402
from CMRSegModuleLib.SegmentationNodes import labelmapFromSegmentation  # noqa: E402
from slicer_helpers import edit_segments, relabel_voxels, review_from_labels  # noqa: E402


@pytest.fixture
def edited(headless_slicer, oblique_phantom):
    """A result whose corrected ED lost 50 LV voxels to the myocardium; returns (review, corrected ED labels)."""
    study = oblique_phantom.study
    ed, es = study.ed_frame, study.es_frame
    maps = {ed: oblique_phantom.labels[ed], es: oblique_phantom.labels[es]}
    review = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Patient 7/ED test",
                                patient=PatientInfo(height_cm=165.0, weight_kg=60.0))
    corrected_ed, _ = relabel_voxels(maps[ed], labels.LV, labels.MYO, 50)
    edit_segments(review.edCorrected, review.edVolume, corrected_ed)
    return review, corrected_ed


def test_export_writes_files_that_read_back_equal(headless_slicer, edited, oblique_phantom, tmp_path):
    review, corrected_ed = edited
    written = exportReview(review, tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == sorted([
        "Patient_7_ED_test_ED_corrected.seg.nrrd", "Patient_7_ED_test_ED_corrected.nii.gz",
        "Patient_7_ED_test_ES_corrected.seg.nrrd", "Patient_7_ED_test_ES_corrected.nii.gz",
        "Patient_7_ED_test_results.csv", "Patient_7_ED_test_results.json", "Patient_7_ED_test_corrections.csv",
    ])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == names  # no scratch folder left
    study = oblique_phantom.study
    paths = exportPaths(review, tmp_path / "out")
    # .seg.nrrd: the corrected label map, the study grid, named segments with terminology (core reader).
    seg = read_seg_nrrd(paths["ED_seg"])
    np.testing.assert_array_equal(seg.labelmap, corrected_ed)
    np.testing.assert_allclose(seg.geometry.spacing, study.spacing, atol=1e-6)
    np.testing.assert_allclose(seg.geometry.origin, study.origin, atol=1e-4)
    np.testing.assert_allclose(seg.geometry.direction, study.direction, atol=1e-6)
    assert [(s.name, s.label) for s in seg.segments] == [(s.name, s.label) for s in labels.STRUCTURES]
    assert seg.segments[2].terminology == terminology_entry(labels.BY_LABEL[labels.LV])
    # ... and Slicer reads it back as a segmentation with the same segments and voxels.
    reader = slicer.vtkMRMLSegmentationStorageNode()
    headless_slicer.scene.AddNode(reader)
    reader.SetFileName(str(paths["ES_seg"]))
    loaded = headless_slicer.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    assert reader.ReadData(loaded)
    assert [loaded.GetSegmentation().GetNthSegment(i).GetName() for i in range(3)] == [
        "RV blood pool", "LV myocardium", "LV blood pool"]
    np.testing.assert_array_equal(labelmapFromSegmentation(loaded, review.esVolume),
                                  oblique_phantom.labels[study.es_frame])
    # NIfTI: ACDC values on the frame's grid.
    nifti = read_volume_file(paths["ED_labelmap"])
    np.testing.assert_array_equal(nifti.image[0].astype(np.uint8), corrected_ed)
    np.testing.assert_allclose(nifti.direction, study.direction, atol=1e-6)
    np.testing.assert_allclose(nifti.origin, study.origin, atol=1e-4)
    # CSV: the table as shown.
    with open(paths["csv"], newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == list(ResultsTable.COLUMNS)
    table_rows = ResultsTable.readTable(review.table)
    assert [r[0] for r in rows[1:]] == [r["parameter"] for r in table_rows]
    lv_edv = next(r for r in rows if r[0] == "LV EDV")
    assert float(lv_edv[4]) == pytest.approx(-50 * study.voxel_volume_ml, abs=0.051)  # one decimal, as shown
    # JSON: exact values, model, basal rule, frames, version.
    document = json.loads(paths["json"].read_text())
    assert document["model"] == "test labels" and document["basal_rule"] == "none"
    assert document["cmrseg_version"] == __version__
    assert (document["ed_frame"], document["es_frame"]) == (study.ed_frame, study.es_frame)
    assert document["patient"] == {"height_cm": 165.0, "weight_kg": 60.0}
    assert document["difference"]["lv_edv_ml"] == pytest.approx(-50 * study.voxel_volume_ml, rel=1e-9)
    assert document["corrected"]["lv_mass_ed_g"] > document["automatic"]["lv_mass_ed_g"]
    assert document["difference"]["rv_edv_ml"] == 0.0
    assert document["files"]["ED_seg"] == paths["ED_seg"].name


def test_existing_files_are_never_overwritten_silently(edited, tmp_path):
    review, _ = edited
    first = exportReview(review, tmp_path)
    before = {p: p.read_bytes() for p in first}
    assert existingExportFiles(review, tmp_path) == list(exportPaths(review, tmp_path).values())
    edit_segments(review.edCorrected, review.edVolume,
                  relabel_voxels(labelmapFromSegmentation(review.edCorrected, review.edVolume), labels.LV, 0, 5)[0])
    with pytest.raises(CMRSegError, match="allow overwriting"):
        exportReview(review, tmp_path)
    assert {p: p.read_bytes() for p in first} == before
    exportReview(review, tmp_path, overwrite=True)
    assert first[0].read_bytes() != before[first[0]]


def test_the_export_of_another_result_with_the_same_names_is_never_replaced(headless_slicer, edited,
                                                                           oblique_phantom, tmp_path):
    """Names come from the study's description, which many patients share ("SAX cine")."""
    review, _ = edited
    first = exportReview(review, tmp_path)
    before = {p: p.read_bytes() for p in first}
    study = oblique_phantom.study
    other = {study.ed_frame: oblique_phantom.labels[study.es_frame], study.es_frame: oblique_phantom.labels[2]}
    another = review_from_labels(headless_slicer.scene, study, other, study.ed_frame, study.es_frame,
                                 "Patient 7/ED test")  # another result, the same name  # fmt: skip
    with pytest.raises(CMRSegError, match="holds the export of another result"):
        exportReview(another, tmp_path, overwrite=True)
    with pytest.raises(CMRSegError, match="holds the export of another result"):  # before the module asks
        existingExportFiles(another, tmp_path)
    # The same label maps on other images (the network found the same, or nothing, in two patients).
    from dataclasses import replace

    maps = {frame: oblique_phantom.labels[frame] for frame in (study.ed_frame, study.es_frame)}
    lookalike = review_from_labels(headless_slicer.scene, replace(study, image=study.image + 1.0), maps,
                                   study.ed_frame, study.es_frame, "Patient 7/ED test")  # fmt: skip
    with pytest.raises(CMRSegError, match="holds the export of another result"):
        exportReview(lookalike, tmp_path, overwrite=True)
    assert {p: p.read_bytes() for p in first} == before
    exportReview(review, tmp_path, overwrite=True)  # its own earlier export: replaced when allowed


def test_an_export_that_fails_while_moving_in_puts_the_earlier_files_back(edited, tmp_path, monkeypatch):
    """A file open in another program (Windows refuses to replace it) or a full disk, midway."""
    import os

    from CMRSegModuleLib import Export

    review, _ = edited
    first = exportReview(review, tmp_path)
    before = {p: p.read_bytes() for p in first}
    edit_segments(review.edCorrected, review.edVolume,
                  relabel_voxels(labelmapFromSegmentation(review.edCorrected, review.edVolume), labels.LV, 0, 5)[0])
    calls = []

    def replace_failing_midway(source, target):
        calls.append(target)
        if len(calls) == len(first) + 3:  # all set aside, three moved in
            raise PermissionError(13, "The process cannot access the file", str(target))
        os.replace(source, target)

    monkeypatch.setattr(Export.os, "replace", replace_failing_midway)
    with pytest.raises(CMRSegError, match="nothing was changed"):
        exportReview(review, tmp_path, overwrite=True)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in first} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in first)


def test_a_failed_export_writes_nothing(edited, tmp_path):
    review, _ = edited
    review.esCorrected.GetSegmentation().RemoveSegment("RV")  # the physician deleted a segment
    with pytest.raises(CMRSegError, match="RV blood pool"):
        exportReview(review, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_single_volume_exports_one_frame(headless_slicer, oblique_phantom, tmp_path):
    study = oblique_phantom.study.single_frame(2)
    review = review_from_labels(headless_slicer.scene, study, {0: oblique_phantom.labels[2]}, None, None, "Vol")
    written = exportReview(review, tmp_path)
    assert sorted(p.name for p in written) == sorted([
        "Vol_frame_corrected.seg.nrrd", "Vol_frame_corrected.nii.gz", "Vol_results.csv", "Vol_results.json",
        "Vol_corrections.csv"])
    document = json.loads((tmp_path / "Vol_results.json").read_text())
    assert document["ed_frame"] is None and set(document["automatic"]) == {"lv_ml", "rv_ml", "myo_ml", "myo_mass_g",
                                                                           "qc", "qc_status"}


def test_a_cine_loaded_from_dicom_exports_its_corrections_as_dicom_seg(headless_slicer, tmp_path):
    hd = pytest.importorskip("highdicom")
    import pydicom

    from cmrseg.io.dicom_write import write_dicom_cine
    from cmrseg.phantom import make_phantom
    from CMRSegModuleLib.SequenceNodes import loadCineDicomFolder, studyFromInputNode

    phantom = make_phantom(seed=3, frames=4, slices=8, matrix=(120, 128), oblique=True)
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    sequence, _, _ = loadCineDicomFolder(headless_slicer.scene, str(tmp_path / "dicom"))
    study = studyFromInputNode(sequence)
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    maps = {ed: phantom.labels[ed], es: phantom.labels[es]}
    review = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Cine")
    corrected_es, _ = relabel_voxels(maps[es], labels.LV, labels.MYO, 40)
    edit_segments(review.esCorrected, review.esVolume, corrected_es)
    written = exportReview(review, tmp_path / "out")
    assert sorted(p.name for p in written if p.name.endswith(".seg.dcm")) == [
        "Cine_ED_corrected.seg.dcm", "Cine_ES_corrected.seg.dcm"]
    seg = hd.seg.segread(tmp_path / "out" / "Cine_ES_corrected.seg.dcm")
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert seg.SeriesDescription == "CMRSeg corrected segmentation at ES"
    # ED was not edited: its SEG says it is the automatic result (the physician changed nothing there).
    unedited = hd.seg.segread(tmp_path / "out" / "Cine_ED_corrected.seg.dcm")
    assert unedited.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert unedited.SeriesDescription == "CMRSeg automatic segmentation at ED"
    uids = [pydicom.dcmread(tmp_path / "dicom" / name).SOPInstanceUID for name in study.slice_files[es]]
    for label in (labels.RV, labels.MYO, labels.LV):
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[label])
        np.testing.assert_array_equal(pixels[..., 0].astype(bool), corrected_es == label)
    document = json.loads((tmp_path / "out" / "Cine_results.json").read_text())
    assert document["dicom_seg"] == "written"
    # The corrected parameters as an SR: the corrected LV ESV, as the JSON has it.
    sr = pydicom.dcmread(tmp_path / "out" / "Cine_corrected_measures.sr.dcm")
    assert sr.SeriesDescription.startswith("CMRSeg corrected measurements")
    numbers = {leaf.ConceptNameCodeSequence[0].CodeValue: float(leaf.MeasuredValueSequence[0].NumericValue)
               for item in sr.ContentSequence for sub in getattr(item, "ContentSequence", [])
               for leaf in getattr(sub, "ContentSequence", []) if leaf.ValueType == "NUM"}  # fmt: skip
    assert numbers["8823-7"] == pytest.approx(document["corrected"]["lv_esv_ml"], rel=1e-6)  # LOINC LV ES volume
    assert (sr.PreliminaryFlag, sr.VerificationFlag) == ("PRELIMINARY", "UNVERIFIED")  # not approved
    # Approved, the SR says so to the PACS: FINAL, VERIFIED by the reviewer at the time of the approval.
    from datetime import datetime, timezone

    from CMRSegModuleLib.Corrections import approve

    approve(review, "Dr SR", datetime(2026, 12, 3, 9, 30, 5, tzinfo=timezone.utc))  # noqa: UP017
    exportReview(review, tmp_path / "out", overwrite=True)
    sr = pydicom.dcmread(tmp_path / "out" / "Cine_corrected_measures.sr.dcm")
    assert (sr.PreliminaryFlag, sr.VerificationFlag) == ("FINAL", "VERIFIED")
    observer = sr.VerifyingObserverSequence[0]
    assert (str(observer.VerifyingObserverName), observer.VerificationDateTime) == ("Dr SR", "20261203093005+0000")
    # The edit undone, nothing is corrected: the SR and both SEGs say they are the automatic result.
    edit_segments(review.esCorrected, review.esVolume, maps[es])
    exportReview(review, tmp_path / "out", overwrite=True)
    sr = pydicom.dcmread(tmp_path / "out" / "Cine_corrected_measures.sr.dcm")
    assert sr.SeriesDescription.startswith("CMRSeg automatic measurements")
    assert hd.seg.segread(tmp_path / "out" / "Cine_ES_corrected.seg.dcm").SegmentSequence[0].SegmentAlgorithmType \
        == "AUTOMATIC"
    # The DICOM folder moved away since (a saved scene reopened): the rest is exported, and the JSON says why
    # there is no SEG or SR.
    # The earlier SEGs and (approved) SR go too: never beside a JSON of other numbers, nor sent with it.
    (tmp_path / "dicom").rename(tmp_path / "moved")
    assert len(existingExportFiles(review, tmp_path / "out")) == 10  # the question names the DICOM files too
    edit_segments(review.esCorrected, review.esVolume, maps[es])
    written = exportReview(review, tmp_path / "out", overwrite=True)
    assert not [p for p in written if p.name.endswith(".dcm")] and len(written) == 7
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)
    document = json.loads((tmp_path / "out" / "Cine_results.json").read_text())
    assert "no longer in" in document["dicom_seg"]
    with pytest.raises(CMRSegError, match="has no DICOM SEG or SR to send"):
        sendToPacs(review, tmp_path / "out", "127.0.0.1:11112", "PACS", "CMRSEG")
    again = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Cine again")  # a result made now
    assert "cannot be read" in json.loads(exportReview(again, tmp_path / "again")[-1].read_text())["dicom_seg"]


def test_a_cine_from_an_enhanced_dicom_file_exports_segs_on_its_frames(headless_slicer, tmp_path):
    """A cine in one Enhanced MR file: the loaded sequence keeps each slice's frame in the file, and the
    exported SEGs reference the ED and ES frames of that file, read back voxel for voxel."""
    pytest.importorskip("highdicom")
    from enhanced_dicom import assert_seg_on_its_frames, enhanced_cine

    from CMRSegModuleLib.SequenceNodes import loadCineDicomFolder, studyFromInputNode

    phantom, read, path = enhanced_cine(tmp_path, seed=15)
    sequence, _, _ = loadCineDicomFolder(headless_slicer.scene, str(tmp_path / "enhanced"))
    study = studyFromInputNode(sequence)
    assert study.slice_frames == read.slice_frames
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    maps = {ed: phantom.labels[ed], es: phantom.labels[es]}
    review = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Enhanced")
    corrected_es, _ = relabel_voxels(maps[es], labels.LV, labels.MYO, 40)
    edit_segments(review.esCorrected, review.esVolume, corrected_es)
    exportReview(review, tmp_path / "out")
    for frame, expected in ((ed, maps[ed]), (es, corrected_es)):
        phase = "ED" if frame == ed else "ES"
        assert_seg_on_its_frames(tmp_path / "out" / f"Enhanced_{phase}_corrected.seg.dcm", path, expected,
                                 study.slice_frames[frame], study.frame_times_ms[frame])  # fmt: skip
    assert (tmp_path / "out" / "Enhanced_corrected_measures.sr.dcm").is_file()
    # A scene saved before the frames were kept: the rest is exported, the SR too (it references the file,
    # not its frames), and the JSON says why there is no SEG.
    from CMRSegModuleLib.SequenceNodes import SOURCE_DICOM_ATTRIBUTE

    source = json.loads(sequence.GetAttribute(SOURCE_DICOM_ATTRIBUTE))
    del source["frames"]
    sequence.SetAttribute(SOURCE_DICOM_ATTRIBUTE, json.dumps(source))
    assert_an_sr_and_no_seg(headless_slicer.scene, sequence, maps, ed, es, tmp_path / "older",
                            "frame numbers were not kept")  # fmt: skip


def test_sources_without_a_slice_thickness_export_an_sr_and_no_seg(headless_slicer, tmp_path):
    """A SEG must state its sources' slice thickness, an SR need not: the export writes the SR and says why
    there is no SEG."""
    import pydicom

    from cmrseg.io.dicom_write import write_dicom_cine
    from cmrseg.phantom import make_phantom
    from CMRSegModuleLib.SequenceNodes import loadCineDicomFolder

    phantom = make_phantom(seed=20, frames=3, slices=8, matrix=(120, 128))
    for path in write_dicom_cine(phantom.study, tmp_path / "dicom"):
        ds = pydicom.dcmread(path)
        del ds.SliceThickness
        ds.save_as(path)
    sequence, _, _ = loadCineDicomFolder(headless_slicer.scene, str(tmp_path / "dicom"))
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    maps = {ed: phantom.labels[ed], es: phantom.labels[es]}
    assert_an_sr_and_no_seg(headless_slicer.scene, sequence, maps, ed, es, tmp_path / "out", "no SliceThickness")


def assert_an_sr_and_no_seg(scene, sequence, maps: dict, ed: int, es: int, folder, reason: str) -> None:
    """A result of ``sequence`` exported into ``folder``: its SR and no SEG, the JSON giving ``reason``."""
    from CMRSegModuleLib.SequenceNodes import studyFromInputNode

    review = review_from_labels(scene, studyFromInputNode(sequence), maps, ed, es, "Result")
    written = exportReview(review, folder)
    assert [p.name for p in written if p.name.endswith(".dcm")] == ["Result_corrected_measures.sr.dcm"]
    document = json.loads((folder / "Result_results.json").read_text())
    assert reason in document["dicom_seg"] and document["dicom_sr"] == "written"


def test_a_cine_without_dicom_sources_exports_no_seg_and_says_why(edited, tmp_path):
    review, _ = edited
    written = exportReview(review, tmp_path)
    assert not [p for p in written if p.name.endswith(".seg.dcm")]
    document = json.loads(next(p for p in written if p.name.endswith("_results.json")).read_text())
    assert document["dicom_seg"] == document["dicom_sr"] == "no DICOM source"


def test_the_exported_dicom_is_sent_to_the_pacs_only_as_it_is_on_screen(headless_slicer, tmp_path):
    pytest.importorskip("highdicom")
    pytest.importorskip("pynetdicom")
    import pydicom

    from cmrseg.io.dicom_write import write_dicom_cine
    from cmrseg.phantom import make_phantom
    from CMRSegModuleLib.Export import sendToPacs
    from CMRSegModuleLib.SequenceNodes import loadCineDicomFolder, studyFromInputNode
    from storage_scp import Pacs

    phantom = make_phantom(seed=4, frames=4, slices=8, matrix=(120, 128), oblique=True)
    write_dicom_cine(phantom.study, tmp_path / "dicom")
    sequence, _, _ = loadCineDicomFolder(headless_slicer.scene, str(tmp_path / "dicom"))
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    review = review_from_labels(headless_slicer.scene, studyFromInputNode(sequence),
                                {ed: phantom.labels[ed], es: phantom.labels[es]}, ed, es, "Cine")  # fmt: skip
    pacs = Pacs()
    address = f"127.0.0.1:{pacs.port}"
    try:
        with pytest.raises(CMRSegError, match="Export first"):
            sendToPacs(review, tmp_path / "out", address, "TESTPACS", "CARDIO1")
        written = exportReview(review, tmp_path / "out")
        sent = sendToPacs(review, tmp_path / "out", address, "TESTPACS", "CARDIO1")
        assert [r["status"] for r in sent] == ["stored"] * 3 and pacs.calling == ["CARDIO1"] * 3
        files = sorted(p for p in written if p.name.endswith(".dcm"))
        assert {str(pydicom.dcmread(p).SOPInstanceUID) for p in files} == {str(d.SOPInstanceUID) for d in pacs.received}
        # One voxel edited after the export: the files no longer show what the screen shows; nothing is sent.
        corrected_ed, _ = relabel_voxels(phantom.labels[ed], labels.LV, labels.MYO, 1)
        edit_segments(review.edCorrected, review.edVolume, corrected_ed)
        with pytest.raises(CMRSegError, match="changed since the export"):
            sendToPacs(review, tmp_path / "out", address, "TESTPACS", "CARDIO1")
        assert len(pacs.received) == 3
        with pytest.raises(CMRSegError, match="not HOST:PORT"):
            sendToPacs(review, tmp_path / "out", "pacs", "TESTPACS", "CARDIO1")
    finally:
        pacs.close()


def test_a_result_without_dicom_sources_has_nothing_to_send(edited, tmp_path):
    from CMRSegModuleLib.Export import sendToPacs

    review, _ = edited
    exportReview(review, tmp_path)
    with pytest.raises(CMRSegError, match="no DICOM SEG or SR to send"):
        sendToPacs(review, tmp_path, "127.0.0.1:11112", "PACS", "CMRSEG")


def test_the_export_holds_the_regional_wall_of_both_results(edited, oblique_phantom, tmp_path):
    from cmrseg.regional import regional_wall_thickness

    review, corrected_ed = edited
    study = oblique_phantom.study
    ed, es = oblique_phantom.labels[study.ed_frame], oblique_phantom.labels[study.es_frame]
    document = json.loads(next(p for p in exportReview(review, tmp_path) if p.name.endswith(".json")).read_text())
    regional = document["regional_wall_thickness"]
    assert regional["automatic"] == regional_wall_thickness(ed, es, study.spacing, study.direction)
    assert regional["corrected"] == regional_wall_thickness(corrected_ed, es, study.spacing, study.direction)
    assert [row["segment"] for row in regional["corrected"]] == list(range(1, 17))
    assert regional["corrected"] != regional["automatic"]  # the 50 voxels moved into the wall show
