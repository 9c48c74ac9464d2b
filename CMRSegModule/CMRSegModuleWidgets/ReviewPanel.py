"""The widget's results panel: review list, show and correct each phase, the corrected column, what the
correction changed, the reviewer's approval and the export.

A mixin of ``CMRSegModuleWidget``: it uses the widget's ``ui``, ``logic``, ``_parameterNode``,
``_reviewEntries``, ``_observedSegmentations``, ``_updateTimer`` and ``_updateGui``.
"""

import qt
import slicer

from cmrseg.errors import CMRSegError
from CMRSegModuleLib import Corrections, ReviewList
from CMRSegModuleLib.SegmentationNodes import segmentationEditEvents

REVIEWER_SETTING = "CMRSeg/ReviewerName"  # the reviewer's name is prefilled from the last approval


class ReviewPanelMixin:
    def _setupReviewPanel(self) -> None:
        self.ui.updateCorrectedButton.clicked.connect(self.onUpdateCorrected)
        self.ui.reviewListWidget.itemClicked.connect(self.onReviewEntryClicked)
        self.ui.showEdButton.clicked.connect(lambda: self.onShowPhase("ED"))
        self.ui.showEsButton.clicked.connect(lambda: self.onShowPhase("ES"))
        self.ui.editEdButton.clicked.connect(lambda: self.onEditPhase("ED"))
        self.ui.editEsButton.clicked.connect(lambda: self.onEditPhase("ES"))
        self.ui.approveButton.clicked.connect(self.onApprove)
        self.ui.exportButton.clicked.connect(self.onExport)
        self.ui.sendToPacsButton.clicked.connect(self.onSendToPacs)
        self.ui.reviewerNameLineEdit.text = str(qt.QSettings().value(REVIEWER_SETTING, "") or "")

    def _showReviewState(self, review) -> None:
        """The review list with its looked-at and edited marks, what the correction changed, and the approval."""
        self.ui.reviewListWidget.clear()
        self._reviewEntries = ReviewList.reviewEntries(review.table) if review is not None else []
        if review is None:
            self.ui.correctionsLabel.text = self.ui.approvalLabel.text = ""
            return
        try:
            rows, approval = Corrections.reviewState(review)
        except CMRSegError as exc:  # e.g. a structure's segment deleted: said here, on every update, not raised
            self.ui.correctionsLabel.text, self.ui.approvalLabel.text = str(exc), ""
            return
        edited, visited = Corrections.editedSliceKeys(rows), ReviewList.visitedEntries(review.table)
        for entry in self._reviewEntries:
            self.ui.reviewListWidget.addItem(ReviewList.describeEntry(entry, visited, edited))
        self.ui.correctionsLabel.text = Corrections.describeCorrections(rows)
        self.ui.approvalLabel.text = Corrections.describeApproval(approval)

    def onReviewEntryClicked(self, item) -> None:
        entry = self._reviewEntries[self.ui.reviewListWidget.row(item)]
        with slicer.util.tryWithErrorDisplay("Could not show that slice."):
            self.logic.jumpToReviewEntry(self._parameterNode.resultsTable, entry)
            self._updateGui()

    def onShowPhase(self, phase: str) -> None:
        with slicer.util.tryWithErrorDisplay(f"Could not show {phase}."):
            self.logic.showPhase(self._parameterNode.resultsTable, phase)

    def onEditPhase(self, phase: str) -> None:
        with slicer.util.tryWithErrorDisplay(f"Could not open the Segment Editor on {phase}."):
            volume, corrected = self.logic.showPhase(self._parameterNode.resultsTable, phase)
            slicer.util.selectModule("SegmentEditor")
            editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
            editor.setSegmentationNode(corrected)
            setSource = getattr(editor, "setSourceVolumeNode", None) or editor.setMasterVolumeNode
            setSource(volume)

    def onUpdateCorrected(self) -> None:
        table = self._parameterNode.resultsTable if self._parameterNode else None
        if table is not None:
            with slicer.util.tryWithErrorDisplay("Could not update the corrected values."):
                self.logic.updateCorrected(table)
                self._showReviewState(self.logic.reviewOf(table))

    def onApprove(self) -> None:
        table, name = self._parameterNode.resultsTable, self.ui.reviewerNameLineEdit.text
        with slicer.util.tryWithErrorDisplay("Could not approve the result."):
            approval = self.logic.approve(table, name)
            qt.QSettings().setValue(REVIEWER_SETTING, approval["by"])
            self._showReviewState(self.logic.reviewOf(table))

    def _observeSegmentations(self, nodes: list) -> None:
        if [n.GetID() for n in nodes] == [n.GetID() for n in self._observedSegmentations]:
            return
        events = segmentationEditEvents()
        for node in self._observedSegmentations:
            for event in events:
                self.removeObserver(node, event, self._onSegmentationEdited)
        self._observedSegmentations = list(nodes)
        for node in nodes:
            for event in events:
                self.addObserver(node, event, self._onSegmentationEdited)
        if nodes:  # automatic updates (back) on, or another result: edits made unobserved are counted now
            self._updateTimer.start()

    def _onSegmentationEdited(self, caller, event) -> None:
        self._updateTimer.start()

    def onExport(self) -> None:
        table, folder = self._parameterNode.resultsTable, str(self._parameterNode.exportFolder)
        with slicer.util.tryWithErrorDisplay("Could not export the results.", waitCursor=True):
            existing = self.logic.existingExportFiles(table, folder)
            if existing and not slicer.util.confirmOkCancelDisplay(
                "These files exist and would be replaced:\n" + "\n".join(p.name for p in existing), "CMRSeg export"
            ):
                return
            written = self.logic.export(table, folder, overwrite=bool(existing))
            approval = Corrections.approvalOf(self.logic.reviewOf(table))["status"]
            self.ui.statusLabel.text = f"Exported {len(written)} files to {folder} ({approval})."

    def onSendToPacs(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not send to the PACS.", waitCursor=True):
            sent = self.logic.sendToPacs(p.resultsTable, str(p.exportFolder), p.pacsAddress.strip(),
                                         p.pacsCalledAet.strip(), p.pacsCallingAet.strip())
            self.ui.statusLabel.text = f"Sent {len(sent)} DICOM files to {p.pacsCalledAet} at {p.pacsAddress}."
