"""A core cine ``Study`` <-> an MRML volume sequence with a browser (frame times as index values)."""

from __future__ import annotations

import numpy as np
import slicer

from CMRSegModuleLib.VolumeNodes import setVolumeGeometry, volumeNodeGeometry


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
    browserNode = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browserNode.SetAndObserveMasterSequenceNodeID(sequenceNode.GetID())
    browserNode.SetSelectedItemNumber(0)
    sequencesLogic = _sequencesLogic()
    if sequencesLogic is not None:
        sequencesLogic.UpdateProxyNodesFromSequences(browserNode)
    proxyNode = browserNode.GetProxyNode(sequenceNode)
    return sequenceNode, browserNode, proxyNode


def frameArrayFromSequence(sequenceNode, frameIndex: int) -> np.ndarray:
    """Frame ``frameIndex`` of a volume sequence as a ``[z, y, x]`` array (a copy)."""
    return slicer.util.arrayFromVolume(sequenceNode.GetNthDataNode(frameIndex)).copy()


def studyFromSequence(sequenceNode):
    """A core ``Study`` from a volume sequence (all frames must share one grid)."""
    from cmrseg.io.study import Study

    count = sequenceNode.GetNumberOfDataNodes()
    first = sequenceNode.GetNthDataNode(0)
    spacing, origin, direction = volumeNodeGeometry(first)
    frames = [frameArrayFromSequence(sequenceNode, i) for i in range(count)]
    times = [float(sequenceNode.GetNthIndexValue(i)) for i in range(count)]
    return Study(image=np.stack(frames), spacing=spacing, origin=origin, direction=direction, frame_times_ms=times,
                 source=sequenceNode.GetName())


def _sequencesLogic():
    modules = getattr(slicer, "modules", None)
    sequences = getattr(modules, "sequences", None)
    return sequences.logic() if sequences is not None else None
