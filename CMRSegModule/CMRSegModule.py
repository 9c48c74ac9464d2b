"""CMRSeg: review of automatic short-axis cine cardiac MRI segmentations in 3D Slicer.

The module stays thin: MRML work lives in ``CMRSegModuleLib`` and the computation in the ``cmrseg`` core.
(No ``from __future__ import annotations`` here: the parameter node wrapper reads the real type hints.)
"""

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Union

import qt
import slicer
import vtk
from CMRSegModuleWidgets.BackgroundRun import BackgroundRunMixin
from CMRSegModuleWidgets.InstallProgress import InstallProgress
from CMRSegModuleWidgets.ReviewPanel import ReviewPanelMixin
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSequenceNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from cmrseg.errors import CMRSegError
from cmrseg.shipped import default_model_path as shippedModelPath
from CMRSegModuleLib import Corrections, Dependencies, Export, ResultsTable, ReviewList, ReviewNodes, Runner
from CMRSegModuleLib.Choices import BasalRule, Device, PatientSex
from CMRSegModuleLib.SequenceNodes import (
    describeInputNode,
    inputProblem,
    loadCineDicomFolder,
    numberOfFrames,
    patientFromSequence,
    studyFromInputNode,
)

INPUT_SECTIONS = ("inputsCollapsibleButton", "framesCollapsibleButton", "optionsCollapsibleButton")


class CMRSegModule(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "CMRSeg"
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["Sequences", "Segmentations"]
        self.parent.contributors = ["CMRSeg developers"]
        self.parent.helpText = (
            "Load a short-axis cine cardiac MRI study, segment LV blood pool, RV blood pool and LV myocardium "
            "at end-diastole and end-systole with a dense U-Net, correct the result and compare the clinical "
            "parameters of the automatic and the corrected segmentation. Research use only."
        )
        self.parent.acknowledgementText = (
            "Trained on the ACDC dataset (Bernard et al., IEEE TMI 37(11):2514-2525, 2018). "
            "Validated on Sunnybrook Cardiac Data (Radau et al., MIDAS Journal 2009)."
        )
        slicer.app.connect("startupCompleted()", registerTerminology)


def registerTerminology() -> None:
    """Load CMRSeg's terminology context into Slicer's list (no list Slicer ships has a myocardium entry), so
    the segment editor and DICOM export show and keep the structures' names and codes."""
    terminologies = getattr(slicer.modules, "terminologies", None)
    path = Path(__file__).parent / "Resources" / "Terminology" / "SegmentationCategoryTypeModifier-CMRSeg.json"
    if terminologies is None or not terminologies.logic().LoadTerminologyFromFile(str(path)):
        logging.warning("CMRSeg: could not register the terminology %s", path)


@parameterNodeWrapper
class CMRSegModuleParameterNode:
    """The user's choices, saved with the scene. Frames are 0-based; height/weight 0 mean unknown."""

    inputNode: Union[vtkMRMLSequenceNode, vtkMRMLScalarVolumeNode, None]  # noqa: UP007 (the wrapper needs typing.Union)
    autoFrames: bool = True
    edFrame: Annotated[int, WithinRange(0, 999)] = 0
    esFrame: Annotated[int, WithinRange(0, 999)] = 0
    device: Device = Device.AUTO
    useShippedModel: bool = True
    modelFile: Path = shippedModelPath()  # shown greyed out while the shipped model is used; never "."
    basalRule: BasalRule = BasalRule.NONE
    heightCm: Annotated[float, WithinRange(0.0, 250.0)] = 0.0
    weightKg: Annotated[float, WithinRange(0.0, 400.0)] = 0.0
    patientSex: PatientSex = PatientSex.UNKNOWN
    ageYears: Annotated[float, WithinRange(0.0, 130.0)] = 0.0
    patientFieldsFrom: str = ""  # ID of the input node the four fields above were filled from
    resultsTable: vtkMRMLTableNode
    autoUpdate: bool = True
    exportFolder: Path = Path.home()
    pacsAddress: str = ""  # HOST:PORT
    pacsCalledAet: str = "ANY-SCP"
    pacsCallingAet: str = "CMRSEG"


class CMRSegModuleWidget(BackgroundRunMixin, ReviewPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Reads the parameter node, calls the logic, shows progress and results; computes nothing itself."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # the running background job: dict(process, job, study, parser, cancelled)
        self._observedSegmentations = []
        self._finishedProcess = None
        self._reviewEntries = []  # the entries the review list shows, in its order

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CMRSegModule.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        # Only CMRSeg results in the results selector (label maps are hidden from the input one in the .ui).
        self.ui.resultsTableSelector.addAttribute("vtkMRMLTableNode", ResultsTable.RESULTS_TABLE_ATTRIBUTE)
        self.logic = CMRSegModuleLogic()
        self.ui.progressBar.hide()
        self._updateTimer = qt.QTimer()
        self._updateTimer.setSingleShot(True)
        self._updateTimer.setInterval(500)  # one update after a burst of edits
        self._updateTimer.timeout.connect(self.onUpdateCorrected)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadDicomFolderButton.clicked.connect(self.onLoadDicomFolder)
        self.ui.applyButton.clicked.connect(self.onApplyButton)
        self._setupReviewPanel()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._cancelRun()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # Keep observing the corrected segmentations: the Segment Editor edits them while this module is hidden.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)

    def onSceneStartClose(self, caller, event) -> None:
        self._cancelRun()
        self._observeSegmentations([])
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputNode:
            self._parameterNode.inputNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceNode")

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
            self._updateGui()

    def _updateGui(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        if p.inputNode is not None and p.inputNode.GetID() != p.patientFieldsFrom:
            self._fillPatientFields(p)  # the run takes the fields as the user leaves them: start from this input's
            return  # filling modified the parameter node: _updateGui runs again
        running = self._run is not None
        self.ui.applyButton.text = "Cancel" if running else "Apply"
        self.ui.applyButton.enabled = running or (p.inputNode is not None and not inputProblem(p.inputNode))
        for section in INPUT_SECTIONS:  # a run's settings are fixed once it started
            getattr(self.ui, section).enabled = not running
        self.ui.inputInfoLabel.text = describeInputNode(p.inputNode)
        frames = numberOfFrames(p.inputNode)
        for spinBox in (self.ui.edFrameSpinBox, self.ui.esFrameSpinBox):
            spinBox.enabled, spinBox.maximum = not p.autoFrames and frames > 1, max(frames - 1, 0)
        self.ui.autoFramesCheckBox.enabled = frames > 1
        self.ui.modelPathLineEdit.enabled = not p.useShippedModel
        review = self.logic.reviewOf(p.resultsTable)
        self.ui.resultsTableView.setMRMLTableNode(p.resultsTable)
        for button in (self.ui.showEdButton, self.ui.editEdButton, self.ui.updateCorrectedButton,
                       self.ui.approveButton, self.ui.exportButton):
            button.enabled = review is not None
        self.ui.sendToPacsButton.enabled = review is not None and bool(p.pacsAddress.strip())
        for button in (self.ui.showEsButton, self.ui.editEsButton):
            button.enabled = review is not None and not review.singleFrame
        corrected = [n for n in (review.edCorrected, review.esCorrected) if n] if review and p.autoUpdate else []
        self._observeSegmentations(corrected)
        self._showReviewState(review)

    def onLoadDicomFolder(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(None, "Cine short-axis DICOM folder")
        if not folder or not self._installWithConsent(
            lambda ask, progress: Dependencies.ensureDicomDecoders(folder, ask, progress)
        ):
            return
        with slicer.util.tryWithErrorDisplay("Could not load the cine study.", waitCursor=True):
            self._parameterNode.inputNode = self.logic.loadCineDicomFolder(folder)[0]  # _updateGui fills the fields

    @staticmethod
    def _fillPatientFields(p: CMRSegModuleParameterNode) -> None:
        """Height, weight, sex and age from the input node (DICOM's, where it carries them; else unknown)."""
        patient = patientFromSequence(p.inputNode)
        p.patientFieldsFrom = p.inputNode.GetID()  # first: the updates each assignment below triggers see it
        p.heightCm, p.weightKg = patient.height_cm or 0.0, patient.weight_kg or 0.0
        p.patientSex = next((s for s in PatientSex if s.value == patient.sex), PatientSex.UNKNOWN)
        p.ageYears = patient.age_years or 0.0

    # ------------------------------------------------------------------ background run
    def onApplyButton(self) -> None:
        if self._run is not None:
            self._cancelRun()
            return
        if not self._installWithConsent(self.logic.ensureDependencies):
            return
        with slicer.util.tryWithErrorDisplay("Could not start the segmentation.", waitCursor=True):
            settings = self.logic.runSettings(self._parameterNode)
            inputNode = self._parameterNode.inputNode
            self._startProcess(inputNode, *self.logic.prepareBackgroundRun(inputNode, settings))

    def _installWithConsent(self, ensure) -> bool:
        """Run ``ensure(confirm, progress)``: the question comes first (no wait cursor), then the install with
        a progress dialog. False when the user declines or the install fails (the error is shown)."""
        try:
            with InstallProgress() as progress:
                return ensure(slicer.util.confirmOkCancelDisplay, progress)
        except Exception as exc:  # noqa: BLE001 - shown to the user; pip's output is in the Python console
            slicer.util.errorDisplay("Could not install the Python packages CMRSeg needs.", detailedText=str(exc))
            return False

    def onReload(self) -> None:
        """Reload the module's libraries too (Slicer's Reload re-imports only this file)."""
        for name in [n for n in sys.modules if n.split(".")[0] in ("CMRSegModuleLib", "CMRSegModuleWidgets", "cmrseg")]:
            del sys.modules[name]
        super().onReload()

    def _showNewResult(self, review) -> None:
        info = review.runInfo()
        p = self._parameterNode
        p.resultsTable = review.table
        if info["edFrame"] is not None:
            p.edFrame, p.esFrame = info["edFrame"], info["esFrame"]
        self.ui.statusLabel.text = (f"Done: {info['model']}. {ResultsTable.qcSummary(review.table)} "
                                    "Correct the segmentations; the table updates.")
        self.logic.showResultTable(review.table)
        folder = str(p.exportFolder)
        exported = Export.earlierExport(review, folder)
        if exported and slicer.util.confirmYesNoDisplay(
            f"{folder} holds corrections of this result exported {exported.get('exported', '')} "
            f"({exported.get('approval', {}).get('status', 'not approved')}). Go on from them?", windowTitle="CMRSeg"):
            with slicer.util.tryWithErrorDisplay("Could not go on from the earlier export."):
                self.ui.statusLabel.text = Export.restoreExport(review, folder)
        earlier = self.logic.showOnlyResult(review)
        untouched = [other for other in earlier if not Corrections.hasReviewWork(other)]
        worked = len(earlier) - len(untouched)  # corrected or approved: never offered for removal
        if untouched and slicer.util.confirmYesNoDisplay(
            f"Remove the {len(untouched)} earlier CMRSeg result(s) nobody corrected or approved from the scene? "
            f"(Their segmentations are hidden either way; your input volumes are kept"
            f"{f', and the {worked} with corrections or an approval stay' if worked else ''}.)", windowTitle="CMRSeg"):
            self.logic.removeResults(untouched)
        try:
            self.onEditPhase("frame" if review.singleFrame else "ED")
        except Exception:  # noqa: BLE001 - onEditPhase has shown the one error dialog; the result stands
            logging.exception("CMRSeg: could not open the Segment Editor")


class CMRSegModuleLogic(ScriptedLoadableModuleLogic):
    """Works without a GUI: every method can be called from the Python console or a test.

    The MRML work is in ``CMRSegModuleLib`` (tested in CI against slicer-core); this class only wires it to
    the application (scene, views, parameter node).
    """

    def getParameterNode(self):
        return CMRSegModuleParameterNode(super().getParameterNode())

    def loadCineDicomFolder(self, folder: str):
        """Read a cine DICOM folder with the project's reader into a volume sequence; ``(sequence, patient)``."""
        sequenceNode, _, proxyNode = loadCineDicomFolder(slicer.mrmlScene, folder)
        slicer.util.setSliceViewerLayers(background=proxyNode, fit=True, rotateToVolumePlane=True)
        return sequenceNode, patientFromSequence(sequenceNode)

    def runSettings(self, p: CMRSegModuleParameterNode) -> Runner.RunSettings:
        return Runner.RunSettings(
            edFrame=None if p.autoFrames else p.edFrame,
            esFrame=None if p.autoFrames else p.esFrame,
            device=p.device.value,
            modelPath=None if p.useShippedModel else str(p.modelFile),
            basalRule=p.basalRule.value,
            heightCm=p.heightCm or None,
            weightKg=p.weightKg or None,
            sex=None if p.patientSex == PatientSex.UNKNOWN else p.patientSex.value,
            ageYears=p.ageYears or None,
            patientAsEntered=True,  # the fields start from the study's values; what the user left is the answer
        )

    def ensureDependencies(self, confirm, progress=None) -> bool:
        return Dependencies.ensureDependencies(confirm, progress=progress)

    def prepareBackgroundRun(self, inputNode, settings):
        """Write the input to temporary files; returns ``(job, study, command, environment additions)``."""
        study = studyFromInputNode(inputNode)
        job = Runner.prepareJob(study, settings, workDir=slicer.app.temporaryPath or tempfile.gettempdir())
        environment = Runner.processEnvironment({"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
        return job, study, Runner.buildCommand(job), environment

    def finishBackgroundRun(self, job, study, inputNode):
        return self.createReview(study, Runner.readResults(job), job.settings, inputNode)

    def runInProcess(self, inputNode, settings, segmenter=None):
        """Segment in this process (blocks; for scripts and tests) and add the result to the scene."""
        study = studyFromInputNode(inputNode)
        return self.createReview(study, Runner.runInProcess(study, settings, segmenter), settings, inputNode)

    def createReview(self, study, result, settings, inputNode=None):
        volume = inputNode if inputNode is not None and inputNode.IsA("vtkMRMLScalarVolumeNode") else None
        return ReviewNodes.createReviewNodes(slicer.mrmlScene, study, result, inputVolumeNode=volume,
                                             patient=Runner.patientWithSettings(study.patient, settings))

    def reviewOf(self, table):
        """The result a table belongs to, or None when it is not a (complete) CMRSeg result."""
        try:
            return ReviewNodes.reviewNodesFromTable(table) if table is not None else None
        except CMRSegError:
            return None

    def updateCorrected(self, table) -> dict:
        return ReviewNodes.updateCorrected(ReviewNodes.reviewNodesFromTable(table))

    def showPhase(self, table, phase: str):
        """Show one phase (ED, ES or frame) over its volume; returns ``(volume, correctedSegmentation)``."""
        volume, corrected = ReviewNodes.showPhase(ReviewNodes.reviewNodesFromTable(table), phase)
        if slicer.app.layoutManager() is not None:
            slicer.util.setSliceViewerLayers(background=volume, fit=True, rotateToVolumePlane=True)
        return volume, corrected

    def jumpToReviewEntry(self, table, entry: dict):
        """Show the entry's phase and slice (views centred on it); marks it looked at."""
        review = ReviewNodes.reviewNodesFromTable(table)
        volume, corrected = ReviewList.jumpToEntry(slicer.mrmlScene, review, entry)
        if slicer.app.layoutManager() is not None:
            slicer.util.setSliceViewerLayers(background=volume, rotateToVolumePlane=True)
            ReviewList.jumpToEntry(slicer.mrmlScene, review, entry)  # again, after the views were rotated
        return volume, corrected

    def showOnlyResult(self, review) -> list:
        """Hide every other result's segmentations; returns the other results."""
        return ReviewNodes.showOnlyResult(slicer.mrmlScene, review)

    def removeResults(self, reviews) -> None:
        for review in reviews:
            ReviewNodes.removeResult(slicer.mrmlScene, review)

    def showResultTable(self, table) -> None:
        """Show the table in a table view of the layout, beside the slice views."""
        if slicer.app.layoutManager() is None:
            return
        slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def approve(self, table, reviewer: str) -> dict:
        """Record the reviewer's approval of the corrected result as it is now (cleared by any later edit)."""
        return Corrections.approve(ReviewNodes.reviewNodesFromTable(table), reviewer)

    def existingExportFiles(self, table, folder) -> list[Path]:
        return Export.existingExportFiles(ReviewNodes.reviewNodesFromTable(table), folder)

    def export(self, table, folder, overwrite: bool = False) -> list[Path]:
        return Export.exportReview(ReviewNodes.reviewNodesFromTable(table), folder, overwrite=overwrite)

    def sendToPacs(self, table, folder, address: str, calledAet: str, callingAet: str) -> list[dict]:
        return Export.sendToPacs(ReviewNodes.reviewNodesFromTable(table), folder, address, calledAet, callingAet)


class CMRSegModuleTest(ScriptedLoadableModuleTest):
    """The whole workflow on a synthetic phantom (no downloads): segment, review nodes, correct, export."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_WorkflowOnPhantom()

    def test_WorkflowOnPhantom(self):
        from CMRSegModuleLib.SelfTest import workflowOnPhantom

        workflowOnPhantom(self, slicer.mrmlScene, CMRSegModuleLogic())
