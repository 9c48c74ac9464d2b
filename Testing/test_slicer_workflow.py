"""The physician's workflow on the MRML layer (slicer-core, headless), on the phantom and on Sunnybrook.

A cine goes into a volume sequence, ED/ES volumes and automatic + corrected segmentations come out, a
correction changes the corrected measures by exactly what was edited, and the export reads back equal.
The network-free tests use known label maps (phantom truth, Sunnybrook expert contours) as the automatic
result; the inference tests (skipped without a checkpoint) check the mechanics, not the accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")

from cmrseg import labels  # noqa: E402
from cmrseg.io.segmentation_file import read_seg_nrrd, terminology_entry  # noqa: E402
from cmrseg.io.sunnybrook import load_sunnybrook_contours, read_link_csv  # noqa: E402
from cmrseg.io.volume_files import read_volume_file  # noqa: E402
from CMRSegModuleLib import ResultsTable  # noqa: E402
from CMRSegModuleLib.Export import exportPaths, exportReview  # noqa: E402
from CMRSegModuleLib.ReviewNodes import createReviewNodes, reviewNodesFromTable, updateCorrected  # noqa: E402
from CMRSegModuleLib.Runner import RunSettings, patientWithSettings, runInProcess  # noqa: E402
from CMRSegModuleLib.SegmentationNodes import labelmapFromSegmentation  # noqa: E402
from CMRSegModuleLib.SequenceNodes import createSequenceFromStudy, loadCineDicomFolder, studyFromInputNode  # noqa: E402
from slicer_helpers import edit_segments, relabel_voxels, review_from_labels  # noqa: E402

SUNNYBROOK_CASE = "SCD0000101"


def check_review(review, study, automatic_labels: dict[int, np.ndarray], tmp_path) -> None:
    """Everything the physician relies on, for a result made from ``automatic_labels`` of ``study``."""
    info = review.runInfo()
    name = info["study"]
    ed, es = info["edFrame"], info["esFrame"]
    for phase, frame, volume, automatic, corrected in (
        ("ED", ed, review.edVolume, review.edAutomatic, review.edCorrected),
        ("ES", es, review.esVolume, review.esAutomatic, review.esCorrected),
    ):
        assert automatic.GetName() == f"{name} {phase} automatic" and corrected.GetName() == f"{name} {phase} corrected"
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(volume), study.frame(frame))
        for node in (automatic, corrected):
            segmentation = node.GetSegmentation()
            for structure in labels.STRUCTURES:
                segment = segmentation.GetSegment(structure.key)
                assert segment.GetName() == structure.name
                assert segment.GetColor() == pytest.approx(structure.color)
                assert segment.GetLabelValue() == structure.label
                tag = vtk.reference("")
                assert segment.GetTag("TerminologyEntry", tag) and str(tag) == terminology_entry(structure)
            np.testing.assert_array_equal(labelmapFromSegmentation(node, volume), automatic_labels[frame])
        check_voxel_placement(volume, automatic, automatic_labels[frame], study)
    assert review.edCorrected.GetDisplayNode().GetVisibility2DFill()
    assert not review.edAutomatic.GetDisplayNode().GetVisibility2DFill()

    # A correction: LV voxels removed at ED, RV voxels added at ES, every segment rewritten.
    automatic = ResultsTable.automaticMeasures(review.table)
    voxel = study.voxel_volume_ml
    lv_count = int((automatic_labels[ed] == labels.LV).sum())
    removed = min(200, lv_count // 2)
    assert removed > 0, "the automatic result has no LV blood pool at ED"
    corrected_ed, _ = relabel_voxels(automatic_labels[ed], labels.LV, labels.BACKGROUND, removed)
    corrected_es, _ = relabel_voxels(automatic_labels[es], labels.BACKGROUND, labels.RV, 40)
    edit_segments(review.edCorrected, review.edVolume, corrected_ed)
    edit_segments(review.esCorrected, review.esVolume, corrected_es)
    corrected = updateCorrected(reviewNodesFromTable(review.table))
    assert corrected["lv_edv_ml"] == pytest.approx(automatic["lv_edv_ml"] - removed * voxel, rel=1e-9)
    assert corrected["rv_esv_ml"] == pytest.approx(automatic["rv_esv_ml"] + 40 * voxel, rel=1e-9)
    assert corrected["lv_esv_ml"] == automatic["lv_esv_ml"] and corrected["rv_edv_ml"] == automatic["rv_edv_ml"]
    assert ResultsTable.automaticMeasures(review.table) == automatic  # the automatic result is untouched
    for node, volume, frame in ((review.edAutomatic, review.edVolume, ed), (review.esAutomatic, review.esVolume, es)):
        np.testing.assert_array_equal(labelmapFromSegmentation(node, volume), automatic_labels[frame])

    # Export, read back, compare.
    exportReview(review, tmp_path / "export")
    paths = exportPaths(review, tmp_path / "export")
    for phase, expected in (("ED", corrected_ed), ("ES", corrected_es)):
        seg = read_seg_nrrd(paths[f"{phase}_seg"])
        np.testing.assert_array_equal(seg.labelmap, expected)
        np.testing.assert_allclose(seg.geometry.origin, study.origin, atol=1e-3)
        nifti = read_volume_file(paths[f"{phase}_labelmap"])
        np.testing.assert_array_equal(nifti.image[0].astype(np.uint8), expected)
        np.testing.assert_allclose(nifti.direction, study.direction, atol=1e-5)
    document = json.loads(paths["json"].read_text())
    assert document["difference"]["lv_edv_ml"] == pytest.approx(-removed * voxel, rel=1e-9)
    assert document["model"] == info["model"] and document["basal_rule"] == info["basalRule"]


def check_voxel_placement(volume, segmentation_node, labelmap, study) -> None:
    """A labelled voxel of the label map is at the same RAS point in the segmentation as in the volume."""
    z, y, x = np.argwhere(labelmap != labels.BACKGROUND)[len(np.argwhere(labelmap != 0)) // 2]
    label = int(labelmap[z, y, x])
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    ras = np.array(ijk_to_ras.MultiplyPoint((x, y, z, 1.0))[:3])
    lps = study.index_to_lps([x, y, z])
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-4)
    image = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(labels.BY_LABEL[label].key, image)
    world_to_image = vtk.vtkMatrix4x4()
    image.GetWorldToImageMatrix(world_to_image)
    ijk = np.rint(world_to_image.MultiplyPoint((*ras, 1.0))[:3]).astype(int)
    assert image.GetScalarComponentAsDouble(*ijk, 0) == 1


# --------------------------------------------------------------------------------------------- phantom


def test_phantom_workflow_with_its_truth_as_the_automatic_result(headless_slicer, phantom, tmp_path):
    sequence, browser, _ = createSequenceFromStudy(headless_slicer.scene, phantom.study, "Phantom")
    study = studyFromInputNode(sequence)
    np.testing.assert_array_equal(study.image, phantom.study.image)
    ed, es = phantom.study.ed_frame, phantom.study.es_frame
    maps = {ed: phantom.labels[ed], es: phantom.labels[es]}
    review = review_from_labels(headless_slicer.scene, study, maps, ed, es, "Phantom")
    automatic = ResultsTable.automaticMeasures(review.table)
    truth = phantom.truth.summary()
    for key in ("lv_edv_ml", "lv_esv_ml", "rv_edv_ml", "lv_mass_ed_g"):  # voxel counts vs analytic volumes
        assert automatic[key] == pytest.approx(truth[key], rel=0.03), key
    check_review(review, study, maps, tmp_path)


@pytest.mark.slow
def test_phantom_workflow_with_inference(headless_slicer, oblique_phantom, segmenter, tmp_path):
    sequence, _, _ = createSequenceFromStudy(headless_slicer.scene, oblique_phantom.study, "Oblique")
    study = studyFromInputNode(sequence)
    result = runInProcess(study, RunSettings(device="cpu"), segmenter)  # ED/ES from the curve
    review = createReviewNodes(headless_slicer.scene, study, result, "Oblique")
    assert review.runInfo()["edEsFrom"] == "LV volume curve"
    check_review(review, study, result.labels, tmp_path)


# ------------------------------------------------------------------------------------------ Sunnybrook


@pytest.fixture(scope="module")
def sunnybrook_case(sunnybrook_root):
    folder = sunnybrook_root / "dicoms" / SUNNYBROOK_CASE
    return folder, load_sunnybrook_contours(folder, read_link_csv(sunnybrook_root)[SUNNYBROOK_CASE])


@pytest.mark.shared_data
def test_sunnybrook_workflow_with_the_expert_contours(headless_slicer, sunnybrook_case, tmp_path):
    folder, case = sunnybrook_case
    sequence, browser, proxy = loadCineDicomFolder(headless_slicer.scene, str(folder))
    assert SUNNYBROOK_CASE not in sequence.GetName()  # no patient ID in node (and so export file) names
    assert sequence.GetName() == case.study.description and sequence.GetIndexUnit() == "ms"
    assert sequence.GetNumberOfDataNodes() == case.study.num_frames
    study = studyFromInputNode(sequence)
    np.testing.assert_array_equal(study.image, case.study.image)
    np.testing.assert_allclose(study.direction, case.study.direction, atol=1e-6)  # renormalised columns
    browser.SetSelectedItemNumber(case.es_frame)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(proxy), case.study.frame(case.es_frame))
    maps = {case.ed_frame: case.ed_mask, case.es_frame: case.es_mask}
    review = review_from_labels(headless_slicer.scene, study, maps, case.ed_frame, case.es_frame, SUNNYBROOK_CASE)
    check_review(review, study, maps, tmp_path)


@pytest.mark.shared_data
@pytest.mark.slow
def test_sunnybrook_workflow_with_inference(headless_slicer, sunnybrook_case, segmenter, tmp_path):
    folder, case = sunnybrook_case
    sequence, _, _ = loadCineDicomFolder(headless_slicer.scene, str(folder))
    study = studyFromInputNode(sequence)
    settings = RunSettings(edFrame=case.ed_frame, esFrame=case.es_frame, device="cpu", basalRule="50",
                           heightCm=175.0, weightKg=80.0)
    result = runInProcess(study, settings, segmenter)
    review = createReviewNodes(headless_slicer.scene, study, result, SUNNYBROOK_CASE,
                               patient=patientWithSettings(study.patient, settings))
    assert review.runInfo()["basalRule"] == "50"
    automatic = ResultsTable.automaticMeasures(review.table)
    for key in ("lv_edv_ml", "lv_ef_pct", "rv_esv_ml", "lv_mass_ed_g", "lv_edv_index"):  # as the run measured
        assert automatic[key] == pytest.approx(result.measures[key], rel=1e-9, nan_ok=True), key
    check_review(review, study, result.labels, tmp_path)
