"""ACDC label maps <-> MRML segmentation nodes (slicer-core, headless): segments, terminology, geometry, edits."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")

from cmrseg import labels  # noqa: E402
from cmrseg.errors import CMRSegError  # noqa: E402
from cmrseg.io.segmentation_file import terminology_entry  # noqa: E402
from CMRSegModuleLib.SegmentationNodes import (  # noqa: E402
    AUTOMATIC,
    CORRECTED,
    ROLE_ATTRIBUTE,
    createAutomaticAndCorrected,
    createSegmentationFromLabelmap,
    labelmapFromSegmentation,
    segmentationEditEvents,
    structureSegmentIds,
)
from CMRSegModuleLib.VolumeNodes import createVolumeNodeFromFrame  # noqa: E402
from slicer_helpers import edit_segments, relabel_voxels  # noqa: E402


@pytest.fixture
def frame(headless_slicer, oblique_phantom):
    """The oblique phantom's ED frame as a volume node and its label map."""
    study = oblique_phantom.study
    volume = createVolumeNodeFromFrame(headless_slicer.scene, study, study.ed_frame, "ED")
    return volume, oblique_phantom.labels[study.ed_frame]


def test_label_map_becomes_three_named_coloured_segments_with_terminology(headless_slicer, frame):
    volume, labelmap = frame
    node = createSegmentationFromLabelmap(headless_slicer.scene, labelmap, volume, "seg")
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())] == ["RV", "Myo", "LV"]
    assert segmentation.GetNumberOfLayers() == 1
    for structure in labels.STRUCTURES:
        segment = segmentation.GetSegment(structure.key)
        assert segment.GetName() == structure.name
        assert segment.GetColor() == pytest.approx(structure.color)
        assert segment.GetLabelValue() == structure.label  # ACDC values in the shared layer
        tag = vtk.reference("")
        assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
        assert str(tag) == terminology_entry(structure)
    assert [s.name for s in labels.STRUCTURES] == ["RV blood pool", "LV myocardium", "LV blood pool"]
    np.testing.assert_array_equal(labelmapFromSegmentation(node, volume), labelmap)


def test_a_labelled_voxel_lands_at_the_same_ras_point_as_in_the_volume(headless_slicer, frame, oblique_phantom):
    volume, labelmap = frame
    node = createSegmentationFromLabelmap(headless_slicer.scene, labelmap, volume, "seg")
    z, y, x = np.argwhere(labelmap == labels.LV)[17]
    volume_ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(volume_ijk_to_ras)
    ras = np.array(volume_ijk_to_ras.MultiplyPoint((x, y, z, 1.0))[:3])
    lps = oblique_phantom.study.index_to_lps([x, y, z])  # the core's placement of the same voxel
    np.testing.assert_allclose(ras, [-lps[0], -lps[1], lps[2]], atol=1e-6)
    # The LV segment's own binary labelmap (a 0/1 copy on its own grid) is set at that RAS point.
    image = slicer.vtkOrientedImageData()
    node.GetBinaryLabelmapRepresentation("LV", image)
    world_to_image = vtk.vtkMatrix4x4()
    image.GetWorldToImageMatrix(world_to_image)
    ijk = world_to_image.MultiplyPoint((*ras, 1.0))[:3]
    np.testing.assert_allclose(ijk, np.rint(ijk), atol=1e-6)  # on a voxel centre of the segment's grid too
    assert image.GetScalarComponentAsDouble(*np.rint(ijk).astype(int), 0) == 1
    # A voxel of the exported label map is at the same RAS point as in the volume.
    exported = slicer.vtkMRMLLabelMapVolumeNode()
    headless_slicer.scene.AddNode(exported)
    ids = vtk.vtkStringArray()
    for segment_id in structureSegmentIds(node):
        ids.InsertNextValue(segment_id)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
        node, ids, exported, volume, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    exported_ijk_to_ras = vtk.vtkMatrix4x4()
    exported.GetIJKToRASMatrix(exported_ijk_to_ras)
    assert np.allclose(exported_ijk_to_ras.MultiplyPoint((x, y, z, 1.0))[:3], ras, atol=1e-6)
    assert slicer.util.arrayFromVolume(exported)[z, y, x] == labels.LV


def test_missing_structures_still_get_their_empty_segments(headless_slicer, frame):
    volume, labelmap = frame
    without_rv = np.where(labelmap == labels.RV, 0, labelmap).astype(np.uint8)
    node = createSegmentationFromLabelmap(headless_slicer.scene, without_rv, volume, "no RV")
    assert structureSegmentIds(node) == ["RV", "Myo", "LV"]
    assert slicer.util.arrayFromSegmentBinaryLabelmap(node, "RV", volume).sum() == 0
    np.testing.assert_array_equal(labelmapFromSegmentation(node, volume), without_rv)


def test_export_leaves_no_helper_nodes_in_the_scene(headless_slicer, frame):
    volume, labelmap = frame
    node = createSegmentationFromLabelmap(headless_slicer.scene, labelmap, volume, "seg")
    before = headless_slicer.scene.GetNumberOfNodes()
    labelmapFromSegmentation(node, volume)
    assert headless_slicer.scene.GetNumberOfNodes() == before


def test_automatic_and_corrected_copies_are_independent(headless_slicer, frame):
    volume, labelmap = frame
    automatic, corrected = createAutomaticAndCorrected(headless_slicer.scene, labelmap, volume, "P", "ED", 0)
    assert automatic.GetName() == "P ED automatic" and corrected.GetName() == "P ED corrected"
    assert automatic.GetAttribute(ROLE_ATTRIBUTE) == AUTOMATIC and corrected.GetAttribute(ROLE_ATTRIBUTE) == CORRECTED
    assert not automatic.GetDisplayNode().GetVisibility2DFill()  # outlines only, for comparison
    assert corrected.GetDisplayNode().GetVisibility2DFill()
    edited, _ = relabel_voxels(labelmap, labels.LV, labels.BACKGROUND, 25)
    edit_segments(corrected, volume, edited)
    np.testing.assert_array_equal(labelmapFromSegmentation(corrected, volume), edited)
    np.testing.assert_array_equal(labelmapFromSegmentation(automatic, volume), labelmap)


def test_editing_one_segment_alone_can_overlap_and_then_lv_wins(headless_slicer, frame):
    """The overlap caveat: painting Myo over LV voxels without rewriting LV keeps both; LV is exported."""
    volume, labelmap = frame
    node = createSegmentationFromLabelmap(headless_slicer.scene, labelmap, volume, "seg")
    myo = slicer.util.arrayFromSegmentBinaryLabelmap(node, "Myo", volume)
    lv_voxels = np.argwhere(labelmap == labels.LV)[:10]
    myo[tuple(lv_voxels.T)] = 1
    slicer.util.updateSegmentBinaryLabelmapFromArray(myo, node, "Myo", volume)
    exported = labelmapFromSegmentation(node, volume)
    assert (exported[tuple(lv_voxels.T)] == labels.LV).all()
    np.testing.assert_array_equal(exported, labelmap)


def test_segments_are_found_by_terminology_or_name_and_a_deleted_one_is_reported(headless_slicer, frame):
    volume, labelmap = frame
    node = headless_slicer.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "made elsewhere")
    for index, structure in enumerate(labels.STRUCTURES):
        segment = slicer.vtkSegment()
        segment.SetName(structure.name.upper() if index else "something else")
        if index == 0:  # found by its terminology only
            segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology_entry(structure))
        node.GetSegmentation().AddSegment(segment, f"Segment_{index + 1}")
    assert structureSegmentIds(node) == ["Segment_1", "Segment_2", "Segment_3"]
    node.GetSegmentation().RemoveSegment("Segment_3")
    with pytest.raises(CMRSegError, match="LV blood pool"):
        structureSegmentIds(node)


def test_label_maps_that_do_not_fit_are_refused(headless_slicer, frame):
    volume, labelmap = frame
    with pytest.raises(CMRSegError, match="does not match"):
        createSegmentationFromLabelmap(headless_slicer.scene, labelmap[:-1], volume, "bad")
    with pytest.raises(CMRSegError, match=r"values \[5\]"):
        createSegmentationFromLabelmap(headless_slicer.scene, np.where(labelmap == 3, 5, labelmap), volume, "bad")


def test_edit_events_fire_when_a_segment_is_edited(headless_slicer, frame):
    volume, labelmap = frame
    node = createSegmentationFromLabelmap(headless_slicer.scene, labelmap, volume, "seg")
    fired = []
    for event in segmentationEditEvents():
        node.AddObserver(event, lambda caller, name: fired.append(name))
    edit_segments(node, volume, relabel_voxels(labelmap, labels.LV, 0, 5)[0])
    assert fired
