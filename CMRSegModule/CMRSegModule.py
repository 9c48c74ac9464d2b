"""CMRSeg: review of automatic short-axis cine cardiac MRI segmentations in 3D Slicer.

The module stays thin: MRML work lives in ``CMRSegModuleLib`` and the computation in the ``cmrseg`` core.
"""

from __future__ import annotations

import logging
import os

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin


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
            "parameters of the automatic and the corrected segmentation."
        )
        self.parent.acknowledgementText = (
            "Trained on the ACDC dataset (Bernard et al., IEEE TMI 37(11):2514-2525, 2018). "
            "Validated on Sunnybrook Cardiac Data (Radau et al., MIDAS Journal 2009)."
        )


class CMRSegModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CMRSegModule.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CMRSegModuleLogic()
        self.ui.loadDicomFolderButton.connect("clicked(bool)", self.onLoadDicomFolder)

    def onLoadDicomFolder(self) -> None:
        import qt

        folder = qt.QFileDialog.getExistingDirectory(None, "Cine short-axis DICOM folder")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Could not load the cine study.", waitCursor=True):
            sequenceNode = self.logic.loadCineDicomFolder(folder)
            self.ui.inputSelector.setCurrentNode(sequenceNode)


class CMRSegModuleLogic(ScriptedLoadableModuleLogic):
    """Works without a GUI: every method can be called from the Python console or a test."""

    def loadCineDicomFolder(self, folder: str):
        """Read a cine SAX DICOM folder with the project's reader and add it as a browsable volume sequence."""
        from cmrseg.io.dicom_cine import read_dicom_cine
        from CMRSegModuleLib.SequenceNodes import createSequenceFromStudy

        study = read_dicom_cine(folder)
        name = study.description or os.path.basename(os.path.normpath(folder))
        sequenceNode, browserNode, proxyNode = createSequenceFromStudy(slicer.mrmlScene, study, name=name)
        slicer.util.setSliceViewerLayers(background=proxyNode, fit=True)
        logging.info(f"Loaded {study.num_frames} frames x {study.num_slices} slices from {folder}")
        return sequenceNode
