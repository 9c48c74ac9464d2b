"""A core cine ``Study`` <-> an MRML volume sequence with a browser (frame times as index values).

The index unit says what the values are: CMRSeg writes milliseconds ("ms"); Slicer's DICOM image-sequence
loader writes seconds ("s") for trigger times and no unit for plain frame numbers. Values without a time
unit are taken as the frame order, with no trigger times (nothing is computed from them then).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import slicer

from CMRSegModuleLib.PatientAttributes import readPatient, writePatient
from CMRSegModuleLib.VolumeNodes import setVolumeGeometry, studyFromVolumeNode, volumeNodeGeometry

# Patient data known from the source (DICOM), kept on the sequence node for BSA indexing.
PATIENT_ATTRIBUTES = {"height_cm": "CMRSeg.PatientHeightCm", "weight_kg": "CMRSeg.PatientWeightKg",
                      "sex": "CMRSeg.PatientSex", "age_years": "CMRSeg.PatientAgeYears"}
# The DICOM files each frame's slices came from ({"folder", "files": [t][z]}), for DICOM SEG export.
SOURCE_DICOM_ATTRIBUTE = "CMRSeg.SourceDicom"
# Index units that are times, and their factor to milliseconds.
TIME_UNITS_TO_MS = {"ms": 1.0, "msec": 1.0, "millisecond": 1.0, "milliseconds": 1.0,
                    "s": 1000.0, "sec": 1000.0, "second": 1000.0, "seconds": 1000.0}


def createSequenceFromStudy(scene, study, name: str = "Cine"):
    """Add a volume sequence holding every frame of ``study`` and a browser showing it.

    Returns ``(sequenceNode, browserNode, proxyVolumeNode)``; the proxy shows the selected frame.
    """
    sequenceNode = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequenceNode.SetIndexName("time" if study.frame_times_known else "frame")
    sequenceNode.SetIndexUnit("ms" if study.frame_times_known else "")
    sequenceNode.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
    # Frame volumes are built outside the scene; the sequence keeps its own copies.
    frameNode = slicer.vtkMRMLScalarVolumeNode()
    for index, time in enumerate(study.frame_times_ms):
        slicer.util.updateVolumeFromArray(frameNode, np.ascontiguousarray(study.image[index]))
        setVolumeGeometry(frameNode, study.spacing, study.origin, study.direction)
        sequenceNode.SetDataNodeAtValue(frameNode, f"{time:g}")
    writePatient(sequenceNode, study.patient, PATIENT_ATTRIBUTES)
    if study.slice_files is not None:
        source = {"folder": str(Path(study.source).resolve()), "files": study.slice_files,
                  "frames": study.slice_frames}
        sequenceNode.SetAttribute(SOURCE_DICOM_ATTRIBUTE, json.dumps(source))
    browserNode = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browserNode.SetAndObserveMasterSequenceNodeID(sequenceNode.GetID())
    browserNode.SetSelectedItemNumber(0)
    sequencesLogic = _sequencesLogic()
    if sequencesLogic is not None:
        sequencesLogic.UpdateProxyNodesFromSequences(browserNode)
    proxyNode = browserNode.GetProxyNode(sequenceNode)
    return sequenceNode, browserNode, proxyNode


def loadCineDicomFolder(scene, folder: str):
    """Read a cine SAX DICOM folder with the project's reader (phases grouped by trigger time and slice
    position) into a volume sequence; returns ``(sequenceNode, browserNode, proxyVolumeNode)``."""
    import logging

    from cmrseg.io.load import load_study

    study = load_study(folder)  # the same checks as the command line; implausible height/weight dropped
    # No patient identifier in node names: they become export file names and show in screenshots.
    name = study.description or "Cine"
    nodes = createSequenceFromStudy(scene, study, name=name)
    logging.info(f"Loaded {study.num_frames} frames x {study.num_slices} slices from {folder}")
    return nodes


def frameArrayFromSequence(sequenceNode, frameIndex: int) -> np.ndarray:
    """Frame ``frameIndex`` of a volume sequence as a ``[z, y, x]`` array (a copy)."""
    return slicer.util.arrayFromVolume(sequenceNode.GetNthDataNode(frameIndex)).copy()


def studyFromSequence(sequenceNode):
    """A core ``Study`` from a volume sequence (all frames must share one grid).

    Raises:
        CMRSegError: the sequence is empty, holds something else than scalar volumes, or its frames differ in
            size or geometry.
    """
    from cmrseg.errors import CMRSegError
    from cmrseg.io.study import Study

    name = sequenceNode.GetName()
    count = sequenceNode.GetNumberOfDataNodes()
    problem = inputProblem(sequenceNode)
    if problem:
        raise CMRSegError(problem)
    nodes = [sequenceNode.GetNthDataNode(i) for i in range(count)]
    if not all(_isImageVolume(node) for node in nodes):
        raise CMRSegError(f"The sequence '{name}' does not hold image volumes only; select a cine volume sequence.")
    spacing, origin, direction = volumeNodeGeometry(nodes[0])
    for index, node in enumerate(nodes[1:], start=1):
        other = volumeNodeGeometry(node)
        if not (np.allclose(other[0], spacing) and np.allclose(other[1], origin) and np.allclose(other[2], direction)):
            raise CMRSegError(f"Frame {index} of '{name}' is not on the grid of frame 0; a cine needs one grid.")
    frames = [frameArrayFromSequence(sequenceNode, i) for i in range(count)]
    if len({frame.shape for frame in frames}) != 1:
        raise CMRSegError(f"The frames of '{name}' differ in size; a cine needs one grid.")
    source = json.loads(sequenceNode.GetAttribute(SOURCE_DICOM_ATTRIBUTE) or "null")
    if source is not None and len(source["files"]) != count:
        source = None  # frames were added or removed since loading: the file list no longer fits
    return Study(image=np.stack(frames), spacing=spacing, origin=origin, direction=direction,
                 frame_times_ms=frameTimesMs(sequenceNode), patient=patientFromSequence(sequenceNode),
                 source=source["folder"] if source else name, description=name,
                 slice_files=source["files"] if source else None,
                 slice_frames=source.get("frames") if source else None)


def frameTimesMs(sequenceNode) -> list[float] | None:
    """The frame times in ms from the index values and unit, or None when they are not times (frame order)."""
    factor = TIME_UNITS_TO_MS.get(sequenceNode.GetIndexUnit().strip().lower())
    if factor is None or sequenceNode.GetIndexType() != slicer.vtkMRMLSequenceNode.NumericIndex:
        return None
    try:
        return [float(sequenceNode.GetNthIndexValue(i)) * factor for i in range(sequenceNode.GetNumberOfDataNodes())]
    except ValueError:
        return None


def patientFromSequence(sequenceNode):
    """The patient height, weight, sex and age stored on a sequence node (``None`` where unknown)."""
    return readPatient(sequenceNode, PATIENT_ATTRIBUTES)


def studyFromInputNode(node):
    """The study to segment from the module's input: a volume sequence (cine) or a single scalar volume."""
    from cmrseg.errors import CMRSegError

    if node is None:
        raise CMRSegError("Select a cine volume sequence or a volume as input, or load a cine DICOM folder.")
    problem = inputProblem(node)
    if problem:
        raise CMRSegError(problem)
    if node.IsA("vtkMRMLSequenceNode"):
        return studyFromSequence(node)
    return studyFromVolumeNode(node)


def inputProblem(node) -> str:
    """Why ``node`` cannot be the module's input ("" when it can): label maps and sequences of anything but
    image volumes (segmentations, transforms, label maps) are refused."""
    if node is None:
        return ""
    name = node.GetName()
    if node.IsA("vtkMRMLSequenceNode"):
        if node.GetNumberOfDataNodes() == 0:
            return f"The sequence '{name}' is empty."
        if not _isImageVolume(node.GetNthDataNode(0)):
            kind = node.GetDataNodeClassName() or "nothing"
            return f"The sequence '{name}' holds {kind} items, not image volumes; select a cine volume sequence."
        return ""
    if not _isImageVolume(node):
        return f"'{name}' is a {node.GetClassName()}, not an image volume; select the cine or an image volume."
    return ""


def _isImageVolume(node) -> bool:
    return node is not None and node.IsA("vtkMRMLScalarVolumeNode") and not node.IsA("vtkMRMLLabelMapVolumeNode")


def numberOfFrames(node) -> int:
    """Frames of the module's input: a sequence's data nodes, 1 for a volume, 0 for none."""
    if node is None:
        return 0
    return node.GetNumberOfDataNodes() if node.IsA("vtkMRMLSequenceNode") else 1


def describeInputNode(node) -> str:
    """One line telling the user what the selected input gives (or why it cannot be used)."""
    problem = inputProblem(node)
    if problem:
        return problem
    frames = numberOfFrames(node)
    if frames < 2:
        return "One volume: volumes and mass only (no ejection fraction)." if frames else "No input selected."
    return f"Cine with {frames} frames (0 to {frames - 1})."


def _sequencesLogic():
    modules = getattr(slicer, "modules", None)
    sequences = getattr(modules, "sequences", None)
    return sequences.logic() if sequences is not None else None
