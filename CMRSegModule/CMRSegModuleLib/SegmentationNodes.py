"""ACDC label maps ``[z, y, x]`` <-> MRML segmentation nodes holding the three CMRSeg segments.

Every CMRSeg segmentation has the segments of :mod:`cmrseg.labels` with explicit IDs (``RV``, ``Myo``,
``LV``), their names, colours and standard terminology (the ``TerminologyEntry`` tag), and the ACDC label
values 1, 2, 3 in one layer. Label maps are always on the grid of a reference volume node.

For each reviewed phase (ED, ES) there are two nodes: the "automatic" one, kept as the network made it
(outline only, for comparison), and the "corrected" copy the physician edits in the Segment Editor.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from cmrseg import labels
from cmrseg.errors import CMRSegError
from cmrseg.io.segmentation_file import terminology_entry

ROLE_ATTRIBUTE = "CMRSeg.Role"
PHASE_ATTRIBUTE = "CMRSeg.Phase"
FRAME_ATTRIBUTE = "CMRSeg.Frame"
AUTOMATIC = "automatic"
CORRECTED = "corrected"


def structureSegmentIds(segmentationNode) -> list[str]:
    """The segment IDs of RV, Myo and LV (label order 1, 2, 3) in ``segmentationNode``.

    A segment is found by its CMRSeg ID, else by the type code of its terminology, else by its name.

    Raises:
        CMRSegError: a structure has no segment (it was deleted); an empty segment is fine.
    """
    segmentation = segmentationNode.GetSegmentation()
    ids = []
    for structure in labels.STRUCTURES:
        segmentId = _findSegment(segmentation, structure)
        if segmentId is None:
            raise CMRSegError(
                f"The segmentation '{segmentationNode.GetName()}' has no '{structure.name}' segment. "
                "Add it back (an empty segment is fine) before measuring or exporting."
            )
        ids.append(segmentId)
    return ids


def addStructureSegments(segmentationNode) -> None:
    """Add the missing CMRSeg segments (empty), named, coloured and with their terminology."""
    segmentation = segmentationNode.GetSegmentation()
    for structure in labels.STRUCTURES:
        if _findSegment(segmentation, structure) is not None:
            continue
        segment = slicer.vtkSegment()
        segment.SetName(structure.name)
        segment.SetColor(*structure.color)
        segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), terminology_entry(structure))
        segmentation.AddSegment(segment, structure.key)


def createSegmentationFromLabelmap(scene, labelmap: np.ndarray, referenceVolumeNode, name: str):
    """A new segmentation node in ``scene`` holding an ACDC ``[z, y, x]`` label map on the reference grid."""
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(referenceVolumeNode)
    addStructureSegments(segmentationNode)
    setLabelmapToSegmentation(segmentationNode, labelmap, referenceVolumeNode)
    return segmentationNode


def setLabelmapToSegmentation(segmentationNode, labelmap: np.ndarray, referenceVolumeNode) -> None:
    """Replace the contents of the three segments with an ACDC label map (values 0..3) on the reference grid."""
    labelmap = checkedLabelmap(labelmap, referenceVolumeNode)
    addStructureSegments(segmentationNode)
    labelmapNode = slicer.vtkMRMLLabelMapVolumeNode()  # a carrier, never added to the scene
    slicer.util.updateVolumeFromArray(labelmapNode, labelmap)
    matrix = vtk.vtkMatrix4x4()
    referenceVolumeNode.GetIJKToRASMatrix(matrix)
    labelmapNode.SetIJKToRASMatrix(matrix)
    segmentIds = _stringArray(structureSegmentIds(segmentationNode))  # label value n -> n-th ID
    if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
        labelmapNode, segmentationNode, segmentIds
    ):
        raise CMRSegError(f"Could not put the label map into the segmentation '{segmentationNode.GetName()}'.")


def labelmapFromSegmentation(segmentationNode, referenceVolumeNode) -> np.ndarray:
    """The ACDC label map ``[z, y, x]`` (uint8) of a CMRSeg segmentation, resampled on the reference grid.

    Where segments overlap (possible when the Segment Editor allows overlap), the later structure in the
    order RV, Myo, LV wins, as in :func:`cmrseg.io.segmentation_file.read_seg_nrrd`. Computed in memory: no
    node is added to the scene (the table updates after every edit; scene nodes would churn every selector).
    """
    geometry = slicer.vtkOrientedImageData()
    ijkToRas = vtk.vtkMatrix4x4()
    referenceVolumeNode.GetIJKToRASMatrix(ijkToRas)
    geometry.SetGeometryFromImageToWorldMatrix(ijkToRas)
    geometry.SetExtent(referenceVolumeNode.GetImageData().GetExtent())
    labelValues = vtk.vtkIntArray()
    for structure in labels.STRUCTURES:
        labelValues.InsertNextValue(structure.label)
    merged = slicer.vtkOrientedImageData()
    if not segmentationNode.GenerateMergedLabelmapForAllSegments(
        merged, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, geometry,
        _stringArray(structureSegmentIds(segmentationNode)), labelValues,
    ):
        raise CMRSegError(f"Could not export the segmentation '{segmentationNode.GetName()}' to a label map.")
    array = vtk_to_numpy(merged.GetPointData().GetScalars()).reshape(tuple(reversed(merged.GetDimensions())))
    array = array.astype(np.uint8)
    expected = tuple(reversed(referenceVolumeNode.GetImageData().GetDimensions()))
    if array.shape != expected:
        raise CMRSegError(f"The exported label map has shape {array.shape}, not the reference grid {expected}.")
    return array


def createAutomaticAndCorrected(
    scene, labelmap: np.ndarray, referenceVolumeNode, baseName: str, phase: str, frame: int | None
):
    """The pair of segmentation nodes of one phase: ``(automatic, corrected)``, both from ``labelmap``.

    The automatic node is shown as outlines only; the corrected copy is filled and is the one to edit.
    """
    pair = []
    for role in (AUTOMATIC, CORRECTED):
        node = createSegmentationFromLabelmap(scene, labelmap, referenceVolumeNode, f"{baseName} {phase} {role}")
        node.SetAttribute(ROLE_ATTRIBUTE, role)
        node.SetAttribute(PHASE_ATTRIBUTE, phase)
        if frame is not None:
            node.SetAttribute(FRAME_ATTRIBUTE, str(frame))
        styleSegmentation(node, role)
        pair.append(node)
    return pair[0], pair[1]


def styleSegmentation(segmentationNode, role: str) -> None:
    """Automatic: outlines only (a reference to compare with); corrected: filled and outlined."""
    displayNode = segmentationNode.GetDisplayNode()
    if displayNode is None:
        return
    automatic = role == AUTOMATIC
    displayNode.SetVisibility2DFill(not automatic)
    displayNode.SetVisibility2DOutline(True)
    displayNode.SetOpacity2DFill(0.4)
    displayNode.SetOpacity2DOutline(0.7 if automatic else 1.0)
    displayNode.SetVisibility3D(False)


def segmentationEditEvents() -> list[int]:
    """The segmentation node events that mean "the segments' voxels changed" (Segment Editor edits)."""
    segmentation = slicer.vtkSegmentation
    modified = getattr(segmentation, "SourceRepresentationModified", None)
    if modified is None:  # Slicer before 5.4
        modified = segmentation.MasterRepresentationModified
    return [modified, segmentation.SegmentModified, segmentation.SegmentRemoved]


def _findSegment(segmentation, structure: labels.Structure) -> str | None:
    if segmentation.GetSegment(structure.key) is not None:
        return structure.key
    tagName = slicer.vtkSegment.GetTerminologyEntryTagName()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        value = vtk.reference("")
        if segment.GetTag(tagName, value):
            parts = str(value).split("~")
            typeCode = parts[2].split("^") if len(parts) > 2 else []
            if len(typeCode) > 1 and typeCode[1] == structure.type[0]:
                return segmentation.GetNthSegmentID(index)
    for index in range(segmentation.GetNumberOfSegments()):
        name = (segmentation.GetNthSegment(index).GetName() or "").strip().lower()
        if name in (structure.name.lower(), structure.key.lower()):
            return segmentation.GetNthSegmentID(index)
    return None


def checkedLabelmap(labelmap: np.ndarray, referenceVolumeNode) -> np.ndarray:
    """``labelmap`` as uint8, refused unless it lies on the volume's grid and holds CMRSeg's labels only."""
    labelmap = np.asarray(labelmap)
    expected = tuple(reversed(referenceVolumeNode.GetImageData().GetDimensions()))
    if labelmap.shape != expected:
        raise CMRSegError(f"A label map of shape {labelmap.shape} does not match the volume grid {expected}.")
    unknown = sorted(set(np.unique(labelmap).tolist()) - {labels.BACKGROUND, *labels.BY_LABEL})
    if unknown:
        raise CMRSegError(f"The label map holds values {unknown}; CMRSeg label maps use 0 to {labels.NUM_CLASSES - 1}.")
    return np.ascontiguousarray(labelmap, dtype=np.uint8)


def _stringArray(values: list[str]):
    array = vtk.vtkStringArray()
    for value in values:
        array.InsertNextValue(value)
    return array
