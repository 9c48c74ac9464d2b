"""A core cine ``Study`` <-> an MRML volume sequence with a browser (frame times as index values)."""

from __future__ import annotations

import numpy as np
import slicer

from CMRSegModuleLib.VolumeNodes import setVolumeGeometry, studyFromVolumeNode, volumeNodeGeometry

# Patient data known from the source (DICOM), kept on the sequence node for BSA indexing.
PATIENT_ATTRIBUTES = {"height_cm": "CMRSeg.PatientHeightCm", "weight_kg": "CMRSeg.PatientWeightKg"}


def createSequenceFromStudy(scene, study, name: str = "Cine"):
    """Add a volume sequence holding every frame of ``study`` and a browser showing it.

    Returns ``(sequenceNode, browserNode, proxyVolumeNode)``; the proxy shows the selected frame.
    """
    sequenceNode = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequenceNode.SetIndexName("time")
    sequenceNode.SetIndexUnit("ms")
    sequenceNode.SetIndexType(slicer.vtkMRMLSequenceNode.NumericIndex)
    # Frame volumes are built outside the scene; the sequence keeps its own copies.
    frameNode = slicer.vtkMRMLScalarVolumeNode()
    for index, time in enumerate(study.frame_times_ms):
        slicer.util.updateVolumeFromArray(frameNode, np.ascontiguousarray(study.image[index]))
        setVolumeGeometry(frameNode, study.spacing, study.origin, study.direction)
        sequenceNode.SetDataNodeAtValue(frameNode, f"{time:g}")
    for field, attribute in PATIENT_ATTRIBUTES.items():
        value = getattr(study.patient, field, None)
        if value:
            sequenceNode.SetAttribute(attribute, repr(float(value)))
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
    import os

    from cmrseg.io.load import load_study

    study = load_study(folder)  # the same checks as the command line; implausible height/weight dropped
    parts = [part for part in (study.patient.patient_id, study.description) if part]
    name = " ".join(parts) or os.path.basename(os.path.normpath(folder))
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
    if count == 0:
        raise CMRSegError(f"The sequence '{name}' is empty.")
    nodes = [sequenceNode.GetNthDataNode(i) for i in range(count)]
    if not all(node is not None and node.IsA("vtkMRMLScalarVolumeNode") for node in nodes):
        raise CMRSegError(f"The sequence '{name}' does not hold image volumes; select a cine volume sequence.")
    spacing, origin, direction = volumeNodeGeometry(nodes[0])
    for index, node in enumerate(nodes[1:], start=1):
        other = volumeNodeGeometry(node)
        if not (np.allclose(other[0], spacing) and np.allclose(other[1], origin) and np.allclose(other[2], direction)):
            raise CMRSegError(f"Frame {index} of '{name}' is not on the grid of frame 0; a cine needs one grid.")
    frames = [frameArrayFromSequence(sequenceNode, i) for i in range(count)]
    if len({frame.shape for frame in frames}) != 1:
        raise CMRSegError(f"The frames of '{name}' differ in size; a cine needs one grid.")
    times = [_indexValueMs(sequenceNode.GetNthIndexValue(i), i) for i in range(count)]
    return Study(image=np.stack(frames), spacing=spacing, origin=origin, direction=direction,
                 frame_times_ms=times, patient=patientFromSequence(sequenceNode), source=name, description=name)


def patientFromSequence(sequenceNode):
    """The patient height and weight stored on a sequence node (``None`` where unknown)."""
    from cmrseg.io.study import PatientInfo

    return PatientInfo(**{
        field: float(sequenceNode.GetAttribute(attribute))
        for field, attribute in PATIENT_ATTRIBUTES.items()
        if sequenceNode.GetAttribute(attribute)
    })


def studyFromInputNode(node):
    """The study to segment from the module's input: a volume sequence (cine) or a single scalar volume."""
    from cmrseg.errors import CMRSegError

    if node is None:
        raise CMRSegError("Select a cine volume sequence or a volume as input, or load a cine DICOM folder.")
    if node.IsA("vtkMRMLSequenceNode"):
        return studyFromSequence(node)
    if node.IsA("vtkMRMLScalarVolumeNode"):
        return studyFromVolumeNode(node)
    raise CMRSegError(f"'{node.GetName()}' is neither a volume sequence nor a volume.")


def numberOfFrames(node) -> int:
    """Frames of the module's input: a sequence's data nodes, 1 for a volume, 0 for none."""
    if node is None:
        return 0
    return node.GetNumberOfDataNodes() if node.IsA("vtkMRMLSequenceNode") else 1


def describeInputNode(node) -> str:
    """One line telling the user what the selected input gives."""
    frames = numberOfFrames(node)
    if frames < 2:
        return "One volume: volumes and mass only (no ejection fraction)." if frames else "No input selected."
    return f"Cine with {frames} frames (0 to {frames - 1})."


def _indexValueMs(value: str, index: int) -> float:
    try:
        return float(value)
    except ValueError:
        return float(index)  # a non-numeric index (e.g. "frame 3"): frames in order


def _sequencesLogic():
    modules = getattr(slicer, "modules", None)
    sequences = getattr(modules, "sequences", None)
    return sequences.logic() if sequences is not None else None
