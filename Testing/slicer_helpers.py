"""Helpers of the headless Slicer workflow tests: results from known label maps, and physician-like edits."""

from __future__ import annotations

import numpy as np
import slicer

from cmrseg import labels
from CMRSegModuleLib.ReviewNodes import ReviewNodes, createReviewNodes
from CMRSegModuleLib.Runner import RunResult


def review_from_labels(scene, study, label_maps: dict[int, np.ndarray], ed: int | None, es: int | None,
                       name: str = "Study", patient=None) -> ReviewNodes:
    """The review nodes of a result whose "automatic" label maps are given (no network involved)."""
    result = RunResult(dict(label_maps), ed, es, "test labels", "none", "input or user")
    return createReviewNodes(scene, study, result, name, patient=patient)


def edit_segments(segmentation_node, volume_node, labelmap: np.ndarray) -> None:
    """Make the segments equal a label map by rewriting every segment's array, as the Segment Editor's
    overwrite mode does (updating one segment alone can leave overlaps)."""
    for structure in labels.STRUCTURES:
        array = (labelmap == structure.label).astype(np.uint8)
        slicer.util.updateSegmentBinaryLabelmapFromArray(array, segmentation_node, structure.key, volume_node)


def segment_arrays(segmentation_node, volume_node) -> np.ndarray:
    """The label map the segments hold, read segment by segment (RV, Myo, LV; later ones win)."""
    result = None
    for structure in labels.STRUCTURES:
        array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, structure.key, volume_node)
        result = np.zeros(array.shape, np.uint8) if result is None else result
        result[array > 0] = structure.label
    return result


def relabel_voxels(labelmap: np.ndarray, source: int, target: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A copy with the first ``count`` voxels of label ``source`` set to ``target``, and their indices."""
    indices = np.argwhere(labelmap == source)[:count]
    assert len(indices) == count, f"only {len(indices)} voxels of label {source}"
    edited = labelmap.copy()
    edited[tuple(indices.T)] = target
    return edited, indices
