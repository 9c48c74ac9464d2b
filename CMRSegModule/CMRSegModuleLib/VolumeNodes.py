"""Study frames <-> MRML scalar volume nodes, with the geometry converted once (LPS core -> RAS Slicer)."""

from __future__ import annotations

import numpy as np
import slicer
import vtk

# The core keeps LPS (DICOM/ITK); MRML uses RAS. Flip the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ijkToRasArray(spacing, origin, direction) -> np.ndarray:
    """4x4 IJK-to-RAS matrix for core geometry ((x, y, z) spacing/origin, direction columns, LPS)."""
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ np.asarray(direction, dtype=float) @ np.diag(spacing)
    matrix[:3, 3] = LPS_TO_RAS @ np.asarray(origin, dtype=float)
    return matrix


def geometryFromIjkToRas(matrix: np.ndarray) -> tuple[tuple, tuple, np.ndarray]:
    """Inverse of :func:`ijkToRasArray`: (spacing, origin, direction) in the core's LPS convention."""
    linear = LPS_TO_RAS @ np.asarray(matrix)[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    direction = linear / spacing
    origin = LPS_TO_RAS @ np.asarray(matrix)[:3, 3]
    return tuple(spacing), tuple(origin), direction


def setVolumeGeometry(volumeNode, spacing, origin, direction) -> None:
    volumeNode.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRasArray(spacing, origin, direction)))


def createVolumeNodeFromFrame(scene, study, frameIndex: int, name: str | None = None):
    """A new scalar volume node in ``scene`` holding frame ``frameIndex`` of a core ``Study``."""
    volumeNode = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name or f"frame {frameIndex}")
    slicer.util.updateVolumeFromArray(volumeNode, np.ascontiguousarray(study.image[frameIndex]))
    setVolumeGeometry(volumeNode, study.spacing, study.origin, study.direction)
    volumeNode.CreateDefaultDisplayNodes()
    return volumeNode


def volumeNodeGeometry(volumeNode) -> tuple[tuple, tuple, np.ndarray]:
    """(spacing, origin, direction) of a volume node in the core's LPS convention."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return geometryFromIjkToRas(slicer.util.arrayFromVTKMatrix(matrix))


def studyFromVolumeNode(volumeNode):
    """A one-frame core ``Study`` holding a scalar volume node's voxels (a copy) and geometry."""
    from cmrseg.errors import CMRSegError
    from cmrseg.io.study import Study

    if volumeNode is None or volumeNode.GetImageData() is None:
        raise CMRSegError("The selected volume holds no image; load a short-axis cine or volume first.")
    if volumeNode.GetImageData().GetNumberOfScalarComponents() != 1:
        raise CMRSegError(f"'{volumeNode.GetName()}' has several components per voxel; a grey-level volume is needed.")
    spacing, origin, direction = volumeNodeGeometry(volumeNode)
    image = slicer.util.arrayFromVolume(volumeNode).copy()
    return Study(image=image[np.newaxis], spacing=spacing, origin=origin, direction=direction,
                 source=volumeNode.GetName(), description=volumeNode.GetName())
