"""A cine study as an MRML volume sequence with a browser (slicer-core, headless)."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")

from cmrseg.errors import CMRSegError  # noqa: E402
from cmrseg.io.acdc import load_patient_study  # noqa: E402
from cmrseg.io.study import PatientInfo, Study  # noqa: E402
from CMRSegModuleLib.SequenceNodes import (  # noqa: E402
    createSequenceFromStudy,
    describeInputNode,
    inputProblem,
    patientFromSequence,
    studyFromInputNode,
    studyFromSequence,
)
from CMRSegModuleLib.VolumeNodes import volumeNodeGeometry  # noqa: E402


def test_study_to_sequence_and_back_is_exact(headless_slicer):
    rng = np.random.default_rng(0)
    study = Study(
        image=rng.normal(size=(4, 3, 6, 5)).astype(np.float32),
        spacing=(1.3, 1.3, 8.0),
        origin=(10.0, -20.0, 30.0),
        direction=np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=float),
        frame_times_ms=[0.0, 40.5, 81.0, 121.5],
        patient=PatientInfo(height_cm=171.0, weight_kg=64.5, sex="F", age_years=47.0, patient_id="not kept"),
    )
    sequence, browser, proxy = createSequenceFromStudy(headless_slicer.scene, study)
    # What the report needs of the patient travels with the sequence (the identifier does not).
    assert patientFromSequence(sequence) == PatientInfo(height_cm=171.0, weight_kg=64.5, sex="F", age_years=47.0)
    assert sequence.GetNumberOfDataNodes() == 4
    assert [sequence.GetNthIndexValue(i) for i in range(4)] == ["0", "40.5", "81", "121.5"]
    back = studyFromSequence(sequence)
    np.testing.assert_array_equal(back.image, study.image)
    np.testing.assert_allclose(back.frame_times_ms, study.frame_times_ms)
    np.testing.assert_allclose(back.direction, study.direction, atol=1e-12)
    np.testing.assert_allclose(back.origin, study.origin, atol=1e-9)
    # Stepping the browser updates the proxy volume to the selected frame, with the study geometry.
    browser.SetSelectedItemNumber(2)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(proxy), study.image[2])
    spacing, _, _ = volumeNodeGeometry(proxy)
    np.testing.assert_allclose(spacing, study.spacing)


@pytest.mark.shared_data
def test_real_acdc_cine_round_trips_through_a_sequence_file(headless_slicer, acdc_root, tmp_path):
    study = load_patient_study(acdc_root / "patient090")
    sequence, _, _ = createSequenceFromStudy(headless_slicer.scene, study)
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    headless_slicer.scene.AddNode(storage)
    path = str(tmp_path / "cine.seq.nrrd")
    storage.SetFileName(path)
    assert storage.WriteData(sequence)
    readBack = headless_slicer.scene.AddNewNodeByClass("vtkMRMLSequenceNode", "read back")
    reader = slicer.vtkMRMLVolumeSequenceStorageNode()
    headless_slicer.scene.AddNode(reader)
    reader.SetFileName(path)
    assert reader.ReadData(readBack)
    back = studyFromSequence(readBack)
    np.testing.assert_array_equal(back.image, study.image)
    matrix = vtk.vtkMatrix4x4()
    readBack.GetNthDataNode(0).GetIJKToRASMatrix(matrix)
    assert matrix.GetElement(2, 2) == pytest.approx(10.0)  # header slice spacing, not the unit-scale affine


def small_study(**kwargs) -> Study:
    image = np.random.default_rng(1).normal(size=(3, 2, 5, 4)).astype(np.float32)
    return Study(image=image, spacing=(1.5, 1.5, 8.0), origin=(0, 0, 0), direction=np.eye(3), **kwargs)


@pytest.mark.parametrize(
    ("unit", "values", "expected"),
    [
        ("ms", ["0", "40", "80"], [0.0, 40.0, 80.0]),
        ("s", ["0", "0.04", "0.08"], [0.0, 40.0, 80.0]),  # Slicer's DICOM image-sequence loader
        ("", ["0", "1", "2"], None),  # frame numbers: no trigger times
        ("mm", ["0", "5", "10"], None),  # not a time
    ],
)
def test_index_values_are_read_in_their_unit(headless_slicer, unit, values, expected):
    sequence, _, _ = createSequenceFromStudy(headless_slicer.scene, small_study(frame_times_ms=[0.0, 40.0, 80.0]))
    sequence.SetIndexUnit(unit)
    for i, value in enumerate(values):
        sequence.UpdateIndexValue(sequence.GetNthIndexValue(i), value)
    study = studyFromSequence(sequence)
    if expected is None:
        assert not study.frame_times_known and study.frame_time_ms(1) is None
    else:
        assert study.frame_times_known
        np.testing.assert_allclose(study.frame_times_ms, expected)


def test_a_study_without_trigger_times_round_trips_without_inventing_them(headless_slicer):
    sequence, _, _ = createSequenceFromStudy(headless_slicer.scene, small_study())
    assert sequence.GetIndexName() == "frame" and sequence.GetIndexUnit() == ""
    assert not studyFromSequence(sequence).frame_times_known


def test_label_maps_and_sequences_of_other_things_are_refused(headless_slicer):
    scene = headless_slicer.scene
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    slicer.util.updateVolumeFromArray(labelmap, np.zeros((2, 5, 4), dtype=np.uint8))
    assert "not an image volume" in inputProblem(labelmap)
    with pytest.raises(CMRSegError, match="not an image volume"):
        studyFromInputNode(labelmap)
    segmentations = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "segmentations")
    segmentations.SetDataNodeAtValue(slicer.vtkMRMLSegmentationNode(), "0")
    assert "vtkMRMLSegmentationNode items" in describeInputNode(segmentations)
    with pytest.raises(CMRSegError, match="not image volumes"):
        studyFromInputNode(segmentations)
    assert "is empty" in inputProblem(scene.AddNewNodeByClass("vtkMRMLSequenceNode", "empty"))
    sequence, _, _ = createSequenceFromStudy(scene, small_study())
    assert inputProblem(sequence) == "" and describeInputNode(sequence) == "Cine with 3 frames (0 to 2)."


def test_a_sequence_file_slicer_writes_is_read_by_the_command_as_the_same_cine(headless_slicer, tmp_path):
    """The module's own save format (.seq.nrrd, frames on a 'list' axis) as a command-line input."""
    from cmrseg.io.volume_files import read_volume_file

    study = small_study(frame_times_ms=[0.0, 40.5, 81.0])
    study.direction = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=float)
    sequence, _, _ = createSequenceFromStudy(headless_slicer.scene, study)
    storage = slicer.vtkMRMLVolumeSequenceStorageNode()
    headless_slicer.scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "cine.seq.nrrd"))
    assert storage.WriteData(sequence)
    back = read_volume_file(tmp_path / "cine.seq.nrrd")
    np.testing.assert_array_equal(back.image, study.image)
    np.testing.assert_allclose(back.spacing, study.spacing)
    np.testing.assert_allclose(back.origin, study.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, study.direction, atol=1e-9)
    np.testing.assert_allclose(back.frame_times_ms, [0.0, 40.5, 81.0])


def test_a_sequence_file_with_its_frames_on_the_first_axis_is_read_too(tmp_path):
    """Older sequence files list the frames first: ``kinds: list domain domain domain``."""
    import gzip

    from cmrseg.io.volume_files import read_volume_file

    image = small_study().image  # [t, z, y, x]
    frames, slices, rows, columns = image.shape
    header = "\n".join([
        "NRRD0004", "type: float", "dimension: 4", "space: left-posterior-superior",
        f"sizes: {frames} {columns} {rows} {slices}", "space directions: none (1.5,0,0) (0,1.5,0) (0,0,8)",
        "kinds: list domain domain domain", 'labels: "frame" "" "" ""', "endian: little", "encoding: gzip",
        "space origin: (0,0,0)", "axis 0 index type:=numeric", "axis 0 index values:=0 1 2",
    ]) + "\n\n"  # fmt: skip
    data = np.moveaxis(image, 0, -1).astype("<f4")  # [z, y, x, t]: the frame axis varies fastest
    (tmp_path / "old.seq.nrrd").write_bytes(header.encode() + gzip.compress(data.tobytes()))
    back = read_volume_file(tmp_path / "old.seq.nrrd")
    np.testing.assert_array_equal(back.image, image)
    assert back.spacing == (1.5, 1.5, 8.0) and not back.frame_times_known  # frames labelled, not timed
