"""One result under review in the browser: the Slicer scene, the short-axis slice view and the segment editor.

The scene is the module's (``CMRSegModuleLib``): the same review nodes, results table, correction record,
approval and export. This class only drives them from the page, through trame-slicer's view and editor, and
knows nothing of the page itself, so the tests can run it without a browser.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from pathlib import Path

import slicer
import vtk
from trame_slicer.core import SlicerApp
from trame_slicer.segmentation import (
    BrushDiameterMode,
    SegmentationEffectErase,
    SegmentationEffectNoTool,
    SegmentationEffectPaint,
)
from undo_stack import UndoStack

from cmrseg import labels
from cmrseg.errors import CMRSegError
from CMRSegModuleLib import Corrections, Export, ResultsTable, ReviewList, ReviewNodes
from CMRSegWeb import Draft

TOOLS = {"none": SegmentationEffectNoTool, "paint": SegmentationEffectPaint, "erase": SegmentationEffectErase}


def createSlicerApp() -> SlicerApp:
    """trame-slicer's application (scene, logics, views, editor) with the logics the module's code expects.

    ``slicer.util`` helpers find the scene and the logics through the ``slicer.mrmlScene`` and
    ``slicer.modules`` globals, which the Slicer application sets and which are set here the same way.
    """
    app = SlicerApp()
    sequences = app.register_module_logic(slicer.vtkSlicerSequencesLogic())
    tables = app.register_module_logic(slicer.vtkSlicerTablesLogic())
    slicer.mrmlScene = app.scene
    slicer.modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: app.segmentations_logic),
        volumes=types.SimpleNamespace(logic=lambda: app.volumes_logic),
        sequences=types.SimpleNamespace(logic=lambda: sequences),
        tables=types.SimpleNamespace(logic=lambda: tables),
    )
    return app


def _rotateToShortAxis(sliceNode, volume) -> None:
    """Show the acquired (short-axis) slices: the view's normal along the volume's slice axis.

    ``RotateToVolumePlane`` keeps the view's normal on the volume axis closest to it, so the view is first given
    the standard orientation (axial, sagittal or coronal) closest to the slice axis, whose screen conventions
    the rotated view then keeps, as in Slicer's own views.
    """
    directions = vtk.vtkMatrix4x4()
    volume.GetIJKToRASDirectionMatrix(directions)
    sliceAxis = [abs(directions.GetElement(row, 2)) for row in range(3)]  # R, A, S components
    closest = max(zip(sliceAxis, ("Sagittal", "Coronal", "Axial"), strict=True))[1]
    sliceNode.SetOrientation(closest)
    sliceNode.RotateToVolumePlane(volume)


def ownExportFolder(review, folder: Path) -> Path:
    """``folder``, or where a run made again exports beside the earlier result's export it holds (which the
    page could not replace, and whose folder it cannot change): the first of ``folder-2``, ``folder-3``, ...
    that holds no other result's export (this result's, when reopened)."""
    candidate, number = folder, 1
    while Export.holdsAnotherResult(review, candidate):
        number += 1
        candidate = folder.with_name(f"{folder.name}-{number}")
    return candidate


@dataclass
class ViewState:
    """What the page shows: the phase, the slice (0 = the volume's first), window and level."""

    phase: str
    slice: int
    slices: int
    window: float
    level: float


class ReviewSession:
    """The review of one result in a trame-slicer application with one slice view."""

    def __init__(self, app: SlicerApp, review: ReviewNodes, sliceView, exportFolder: Path) -> None:
        self.app = app
        self.review = review
        self.view = sliceView
        self.exportFolder = ownExportFolder(review, Path(exportFolder))
        moved = (f"{exportFolder} holds the export of an earlier result (the run was made again since); this "
                 f"review exports to {self.exportFolder}." if self.exportFolder != Path(exportFolder) else None)
        # a review reopened goes on from its export, or from its draft when it changed since (before the undo
        # history starts: not undoable)
        restored = Draft.restoreDraft(review, self.exportFolder) or Export.restoreExport(review, self.exportFolder)
        self.restored = " ".join(text for text in (moved, restored) if text) or None
        self.editor = app.segmentation_editor
        self._undo = {phase: UndoStack(undo_limit=20) for phase, *_ in review.phases()}
        self.phase = review.phases()[0][0]
        self.slice = ReviewList.volumeNodeDimensions(review.edVolume)[2] // 2  # mid-ventricular to start
        self.showPhase(self.phase)

    # -- what is shown ------------------------------------------------------------------------------------------
    @property
    def phases(self) -> list[str]:
        return [phase for phase, *_ in self.review.phases()]

    def _phaseNodes(self, phase: str) -> tuple[object, object, object]:
        for name, volume, automatic, corrected in self.review.phases():
            if name == phase:
                return volume, automatic, corrected
        raise CMRSegError(f"This result has no {phase} phase.")

    @property
    def volume(self):
        return self._phaseNodes(self.phase)[0]

    @property
    def corrected(self):
        return self._phaseNodes(self.phase)[2]

    def showPhase(self, phase: str, sliceIndex: int | None = None) -> ViewState:
        """Show ``phase`` in the short-axis plane (the view rotated to the volume's slices) and edit its copy."""
        volume, corrected = ReviewNodes.showPhase(self.review, phase)
        tool = self.editor.active_effect_name if self.editor.active_segmentation else None
        segmentId = self.editor.get_active_segment_id() if self.editor.active_segmentation else None
        self.phase = phase
        self.view.set_background_volume_id(volume.GetID())
        _rotateToShortAxis(self.view.get_view_node(), volume)
        self.view.fit_view_to_content()
        self.editor.set_undo_stack(UndoStack())  # activating a segmentation clears the editor's current stack
        self.editor.set_active_segmentation(corrected, volume)
        self.editor.set_undo_stack(self._undo[phase])  # each phase keeps its own undo history
        if segmentId:
            self.editor.set_active_segment_id(segmentId)
        if tool:
            self.editor.set_active_effect_name(tool)
        slices = ReviewList.volumeNodeDimensions(volume)[2]
        return self.showSlice(min(self.slice if sliceIndex is None else sliceIndex, slices - 1))

    def showSlice(self, sliceIndex: int) -> ViewState:
        slices = ReviewList.volumeNodeDimensions(self.volume)[2]
        if not 0 <= sliceIndex < slices:
            raise CMRSegError(f"Slice {sliceIndex} is outside 0-{slices - 1}.")
        self.slice = sliceIndex
        point = ReviewList.sliceCenterRas(self.volume, sliceIndex)
        slicer.vtkMRMLSliceNode.JumpAllSlices(self.app.scene, *point, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
        return self.viewState()

    def setWindowLevel(self, window: float, level: float) -> ViewState:
        for _, volume, _, _ in self.review.phases():
            display = volume.GetDisplayNode()
            display.SetAutoWindowLevel(False)
            display.SetWindowLevel(max(float(window), 1.0), float(level))
        return self.viewState()

    def viewState(self) -> ViewState:
        display = self.volume.GetDisplayNode()
        return ViewState(self.phase, self.slice, ReviewList.volumeNodeDimensions(self.volume)[2],
                         display.GetWindow(), display.GetLevel())

    def jumpToEntry(self, entry: dict) -> ViewState:
        """Show a review-list entry's phase and slice, and mark it looked at."""
        ReviewList.markVisited(self.review.table, entry)
        return self.showPhase(entry["phase"], int(entry["slice"]))

    # -- editing ------------------------------------------------------------------------------------------------
    def setTool(self, tool: str, structure: str | None = None, brushMm: float | None = None) -> None:
        """``paint``/``erase`` a structure (``LV``, ``Myo``, ``RV``) with a brush of ``brushMm``, or ``none``."""
        if tool not in TOOLS:
            raise CMRSegError(f"Unknown tool {tool!r}; choose one of {', '.join(TOOLS)}.")
        if structure is not None:
            if structure not in labels.BY_KEY:
                raise CMRSegError(f"Unknown structure {structure!r}.")
            self.editor.set_active_segment_id(structure)
        effect = self.editor.set_active_effect_type(TOOLS[tool])
        if brushMm is not None and tool != "none":
            effect.set_brush_diameter(float(brushMm), BrushDiameterMode.Absolute)

    def undo(self) -> None:
        if self._undo[self.phase].can_undo():
            self._undo[self.phase].undo()

    def redo(self) -> None:
        if self._undo[self.phase].can_redo():
            self._undo[self.phase].redo()

    def canUndo(self) -> bool:
        return self._undo[self.phase].can_undo()

    def canRedo(self) -> bool:
        return self._undo[self.phase].can_redo()

    # -- results, approval, export ------------------------------------------------------------------------------
    def updateCorrected(self) -> dict:
        """Recompute the corrected column from the corrected segmentations (after every edit)."""
        return ReviewNodes.updateCorrected(self.review)

    def tableRows(self) -> list[dict]:
        """The results table's rows (parameter, unit, automatic, corrected, difference) with exact values."""
        return ResultsTable.exactRows(self.review.table)

    def qcSummary(self) -> str:
        return ResultsTable.reviewQcSummary(self.review.table)

    def reviewEntries(self) -> list[dict]:
        return ReviewList.reviewEntries(self.review.table)

    def corrections(self) -> tuple[list[dict], dict]:
        """The correction record (ml added/removed per phase, slice, structure) and the approval."""
        return Corrections.reviewState(self.review)

    def approve(self, reviewer: str) -> dict:
        if not reviewer.strip():
            raise CMRSegError("Enter the reviewer's name to approve.")
        return Corrections.approve(self.review, reviewer.strip())

    def existingExportFiles(self) -> list[Path]:
        return Export.existingExportFiles(self.review, self.exportFolder)

    def saveDraft(self) -> Path:
        """Keep the corrections and the approval as they are now (after every change): a review stopped before
        its export goes on from them."""
        return Draft.saveDraft(self.review, self.exportFolder)

    def export(self, overwrite: bool = False) -> list[Path]:
        """The module's export (corrected segmentations, label maps, results, corrections, DICOM SEG/SR); the
        export holds what the draft held, which goes."""
        self.exportFolder.mkdir(parents=True, exist_ok=True)
        written = Export.exportReview(self.review, self.exportFolder, overwrite=overwrite)
        Draft.removeDraft(self.exportFolder)
        return written
