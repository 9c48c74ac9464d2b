"""The review list: the slices the review score (:mod:`cmrseg.review`) says are most worth checking.

The run's per-slice scores are kept on the results table (attribute ``CMRSeg.Review``, JSON), so a saved scene
keeps them. Each entry can be jumped to (the phase shown, the slice views centred on that slice), and is marked
as looked at (when jumped to) and as edited (when the corrected segmentation differs from the automatic one on
that slice).
"""

from __future__ import annotations

import json

from CMRSegModuleLib.Corrections import correctionRecord, editedSliceKeys
from CMRSegModuleLib.ReviewNodes import ReviewNodes, showPhase

REVIEW_ATTRIBUTE = "CMRSeg.Review"
VISITED_ATTRIBUTE = "CMRSeg.ReviewVisited"
LIST_LENGTH = 10  # the list shows the highest-scored slices


def storeReview(table, review: dict) -> None:
    table.SetAttribute(REVIEW_ATTRIBUTE, json.dumps(review))


def reviewEntries(table, count: int = LIST_LENGTH) -> list[dict]:
    """The ``count`` highest-scored slices, best first (empty when the run had no review score)."""
    text = table.GetAttribute(REVIEW_ATTRIBUTE)
    slices = json.loads(text)["slices"] if text else []
    return sorted(slices, key=lambda e: -e["score"])[:count]


def entryKey(entry: dict) -> str:
    return f"{entry['phase']}:{entry['slice']}"


def visitedEntries(table) -> set[str]:
    text = table.GetAttribute(VISITED_ATTRIBUTE)
    return set(json.loads(text)) if text else set()


def markVisited(table, entry: dict) -> None:
    table.SetAttribute(VISITED_ATTRIBUTE, json.dumps(sorted(visitedEntries(table) | {entryKey(entry)})))


def sliceCenterRas(volumeNode, sliceIndex: int) -> tuple[float, float, float]:
    """The RAS point at the centre of slice ``sliceIndex`` (the volume's k axis) of a volume node."""
    import vtk

    dimensions = volumeNodeDimensions(volumeNode)
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    point = ijkToRas.MultiplyPoint(((dimensions[0] - 1) / 2.0, (dimensions[1] - 1) / 2.0, float(sliceIndex), 1.0))
    return tuple(point[:3])


def volumeNodeDimensions(volumeNode) -> tuple[int, int, int]:
    return tuple(volumeNode.GetImageData().GetDimensions())


def jumpTarget(review: ReviewNodes, entry: dict) -> tuple[str, tuple[float, float, float]]:
    """The phase to show and the RAS point to centre the slice views on, for a review entry."""
    volume = {name: vol for name, vol, _, _ in review.phases()}[entry["phase"]]
    return entry["phase"], sliceCenterRas(volume, entry["slice"])


def jumpToEntry(scene, review: ReviewNodes, entry: dict):
    """Show the entry's phase, centre every slice view on its slice and mark it looked at; returns
    ``(volume, correctedSegmentation)`` of that phase (to show and to edit)."""
    import slicer

    phase, point = jumpTarget(review, entry)
    chosen = showPhase(review, phase)
    slicer.vtkMRMLSliceNode.JumpAllSlices(scene, *point, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
    markVisited(review.table, entry)
    return chosen


def editedSlices(review: ReviewNodes) -> set[str]:
    """``phase:slice`` of every slice where the corrected segmentation differs from the automatic one."""
    return editedSliceKeys(correctionRecord(review))


def describeEntry(entry: dict, visited: set[str], edited: set[str]) -> str:
    """One line of the list: phase, slice, score, what is suspicious, and the marks."""
    key = entryKey(entry)
    marks = ("edited" if key in edited else "") or ("looked at" if key in visited else "")
    why = ", ".join(entry.get("structures", []) + entry.get("signals", [])) or "-"
    line = (f"{entry['phase']} slice {entry['slice']}: score {entry['score']:.2f}, "
            f"~{entry['expected_error_ml']:.1f} ml ({why})")
    return f"{line}  [{marks}]" if marks else line
