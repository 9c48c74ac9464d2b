"""Overlap and distance metrics between a predicted and a reference binary mask.

Conventions for empty masks (stated once, used everywhere):
- Dice: both empty -> 1.0 (perfect agreement on absence); one empty -> 0.0.
- Hausdorff distances: both empty -> 0.0; exactly one empty -> ``inf`` (summaries report how many).
- Sensitivity: reference empty -> ``nan`` (undefined; left out of means).
Distances are in mm, between mask surfaces (voxels of the mask with a 6-/4-connected neighbour outside),
with the real anisotropic spacing. HD95 is the percentile over surface voxels, each counted once (as medpy and
MONAI compute it), not weighted by the surface area each voxel stands for: with thick slices the end slices'
voxels weigh more than their area, so compare it with HD95 values computed the same way.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    pred, ref = pred.astype(bool), ref.astype(bool)
    total = int(pred.sum()) + int(ref.sum())
    if total == 0:
        return 1.0
    return 2.0 * float(np.logical_and(pred, ref).sum()) / total


def sensitivity(pred: np.ndarray, ref: np.ndarray) -> float:
    ref = ref.astype(bool)
    if not ref.any():
        return float("nan")
    return float(np.logical_and(pred.astype(bool), ref).sum()) / float(ref.sum())


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def _directed_distances(source: np.ndarray, target: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distances (mm) from each surface voxel of ``source`` to the nearest surface voxel of ``target``."""
    to_target = ndimage.distance_transform_edt(~_surface(target), sampling=spacing)
    return to_target[_surface(source)]


def hausdorff(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], percentile: float = 100.0) -> float:
    """Symmetric Hausdorff distance (``percentile`` 100) or HD95 (95) in mm.

    ``spacing`` is given in array axis order (``(z, y, x)`` for a ``[z, y, x]`` mask). The percentile form
    takes the larger of the two directed percentiles.
    """
    pred, ref = pred.astype(bool), ref.astype(bool)
    if not pred.any() and not ref.any():
        return 0.0
    if not pred.any() or not ref.any():
        return float("inf")
    forward = _directed_distances(pred, ref, spacing)
    backward = _directed_distances(ref, pred, spacing)
    return float(max(np.percentile(forward, percentile), np.percentile(backward, percentile)))


def slicewise_hausdorff(pred: np.ndarray, ref: np.ndarray, spacing_zyx: tuple[float, float, float]) -> list[float]:
    """2D Hausdorff distance (mm) of each slice where both masks have the structure (the paper's per-slice HD)."""
    in_plane = tuple(spacing_zyx[1:])
    return [
        hausdorff(pred[z], ref[z], in_plane)
        for z in range(ref.shape[0])
        if pred[z].any() and ref[z].any()
    ]


def structure_metrics(pred_labels: np.ndarray, ref_labels: np.ndarray, label: int, spacing_xyz) -> dict:
    """All metrics of one structure of two ``[z, y, x]`` label maps; ``spacing_xyz`` as in the core."""
    spacing_zyx = tuple(float(s) for s in spacing_xyz[::-1])
    pred, ref = pred_labels == label, ref_labels == label
    per_slice = slicewise_hausdorff(pred, ref, spacing_zyx)
    return {
        "dice": dice(pred, ref),
        "hd_mm": hausdorff(pred, ref, spacing_zyx),
        "hd95_mm": hausdorff(pred, ref, spacing_zyx, 95.0),
        "hd_2d_median_mm": float(np.median(per_slice)) if per_slice else float("nan"),
        "sensitivity": sensitivity(pred, ref),
    }
