"""CMRSeg core: segmentation and measurement of short-axis cine cardiac MRI.

Pure Python on numpy, SimpleITK, pydicom and torch. It never imports slicer, qt, ctk or vtk, so it
runs inside 3D Slicer and from the ``cmrseg`` command alike.

Axis and geometry convention, used everywhere in the core:
    image arrays are indexed ``[t, z, y, x]`` (a 3D frame is ``[z, y, x]``);
    ``spacing``, ``origin`` and the columns of ``direction`` are in ``(x, y, z)`` order and in LPS
    patient coordinates (as DICOM and ITK), so voxel ``(x, y, z)`` lies at
    ``origin + direction @ (spacing * (x, y, z))``.
"""

from __future__ import annotations

__version__ = "0.1.0"
