"""The nodes of one reviewed result: ED/ES volumes, automatic and corrected segmentations, the results table.

The table node references the others (``CMRSeg.*`` node references) and carries the run's facts as
attributes (model, basal rule, ED/ES frames), so a result found in a saved scene can be updated and
exported again from its table alone (:func:`reviewNodesFromTable`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cmrseg import __version__
from cmrseg.errors import CMRSegError
from CMRSegModuleLib import ResultsTable
from CMRSegModuleLib.SegmentationNodes import createAutomaticAndCorrected
from CMRSegModuleLib.VolumeNodes import createVolumeNodeFromFrame, volumeNodeGeometry

ROLES = ("edVolume", "edAutomatic", "edCorrected", "esVolume", "esAutomatic", "esCorrected")
RUN_ATTRIBUTES = {
    "study": "CMRSeg.Study",
    "model": "CMRSeg.Model",
    "basalRule": "CMRSeg.BasalRule",
    "edFrame": "CMRSeg.EDFrame",
    "esFrame": "CMRSeg.ESFrame",
    "edEsFrom": "CMRSeg.EDESFrom",
    "version": "CMRSeg.Version",
}
PHASE_DICOM_ATTRIBUTE = "CMRSeg.PhaseDicomSources"  # {"folder", "ED": [files], "ES": [files]} or {"problem"}
CREATED_ATTRIBUTE = "CMRSeg.CreatedForResult"  # on volume nodes a result made (not the user's input volume)


@dataclass
class ReviewNodes:
    """One result. A single-volume result has only the ``ed*`` nodes (the one frame) and no ``es*`` nodes."""

    table: object
    edVolume: object
    edAutomatic: object
    edCorrected: object
    esVolume: object = None
    esAutomatic: object = None
    esCorrected: object = None

    @property
    def singleFrame(self) -> bool:
        return self.esCorrected is None

    def phases(self) -> list[tuple[str, object, object, object]]:
        """``(phase, volume, automatic, corrected)`` for ED and ES (one entry ``"frame"`` for a single volume)."""
        if self.singleFrame:
            return [("frame", self.edVolume, self.edAutomatic, self.edCorrected)]
        return [("ED", self.edVolume, self.edAutomatic, self.edCorrected),
                ("ES", self.esVolume, self.esAutomatic, self.esCorrected)]

    def runInfo(self) -> dict:
        """The facts of the run stored on the table (``edFrame``/``esFrame`` as int or None)."""
        info = {key: self.table.GetAttribute(attribute) or "" for key, attribute in RUN_ATTRIBUTES.items()}
        for key in ("edFrame", "esFrame"):
            info[key] = int(info[key]) if info[key] else None
        return info


def createReviewNodes(scene, study, result, name: str | None = None, inputVolumeNode=None,
                      patient=None) -> ReviewNodes:
    """Add the volumes, segmentation pairs and results table of a :class:`CMRSegModuleLib.Runner.RunResult`.

    ED and ES frames become volume nodes of their own (the segmentations' reference grids). For a single
    volume, ``inputVolumeNode`` (when given) is the reference instead of a copy. ``patient`` (default: the
    study's) gives height and weight for the indexed values.
    """
    name = name or study.description or "CMRSeg"
    patient = patient if patient is not None else study.patient
    if result.singleFrame:
        frame = next(iter(result.labels))
        volume = inputVolumeNode
        if volume is None:
            volume = createVolumeNodeFromFrame(scene, study, frame, f"{name} frame {frame}")
            volume.SetAttribute(CREATED_ATTRIBUTE, "1")
        automatic, corrected = createAutomaticAndCorrected(scene, result.labels[frame], volume, name, "frame", None)
        nodes = dict(edVolume=volume, edAutomatic=automatic, edCorrected=corrected)
    else:
        nodes = {}
        for phase, frame in (("ED", result.edFrame), ("ES", result.esFrame)):
            if frame not in result.labels:
                raise CMRSegError(f"The result has no label map for the {phase} frame {frame}.")
            volume = createVolumeNodeFromFrame(scene, study, frame, f"{name} {phase} (frame {frame})")
            volume.SetAttribute(CREATED_ATTRIBUTE, "1")
            automatic, corrected = createAutomaticAndCorrected(scene, result.labels[frame], volume, name, phase, frame)
            prefix = phase.lower()
            nodes |= {f"{prefix}Volume": volume, f"{prefix}Automatic": automatic, f"{prefix}Corrected": corrected}
    curve = None if result.singleFrame else ResultsTable.lvCurve(result.lvCurve, result.edFrame, result.esFrame)
    # one frame given as both ED and ES: checked as ED, as the run's own quality check did
    framePhase = "ED" if result.edFrame is not None and result.edFrame == result.esFrame else None
    automaticValues = ResultsTable.measuresFromSegmentations(
        nodes["edAutomatic"], nodes["edVolume"], nodes.get("esAutomatic"), nodes.get("esVolume"),
        patient, result.bsaMethod, curve, framePhase, result.segmentedMirrored,
    )
    table = ResultsTable.createResultsTable(scene, f"{name} results", automaticValues, patient, result.bsaMethod,
                                            curve, framePhase, result.segmentedMirrored)  # fmt: skip
    review = ReviewNodes(table=table, **nodes)
    for role in ROLES:
        node = getattr(review, role)
        if node is not None:
            table.SetNodeReferenceID(_referenceRole(role), node.GetID())
    facts = {"study": name, "model": result.model, "basalRule": result.basalRule, "edEsFrom": result.edEsFrom,
             "edFrame": result.edFrame, "esFrame": result.esFrame, "version": __version__}
    for key, value in facts.items():
        if value is not None and not (result.singleFrame and key in ("edFrame", "esFrame")):
            table.SetAttribute(RUN_ATTRIBUTES[key], str(value))
    if study.slice_files is not None and not result.singleFrame:
        table.SetAttribute(PHASE_DICOM_ATTRIBUTE, json.dumps(phaseDicomSources(study, result.edFrame, result.esFrame)))
    if getattr(result, "review", None):
        from CMRSegModuleLib import ReviewList

        ReviewList.storeReview(table, result.review)
    from CMRSegModuleLib.Corrections import recordAutomatic  # it builds on this module

    recordAutomatic(review)
    return review


def phaseDicomSources(study, edFrame: int, esFrame: int) -> dict:
    """The DICOM files of the ED and ES frames, with ``segProblem`` when they can be the sources of a DICOM SR
    but not of a SEG; or ``{"problem": why}`` when they can be neither."""
    from pydicom.errors import InvalidDicomError

    from cmrseg.io.dicom_seg import check_seg_beyond_sr, check_study_for_sr

    unreadable = "the source DICOM files cannot be read ({})"  # they moved since loading (a saved scene)
    try:
        check_study_for_sr(study)
    except CMRSegError as exc:
        return {"problem": str(exc)}
    except (OSError, InvalidDicomError) as exc:
        return {"problem": unreadable.format(exc)}
    sources = {"folder": study.source, "ED": study.slice_files[edFrame], "ES": study.slice_files[esFrame]}
    if study.slice_frames is not None:  # an enhanced (multi-frame) file: the frame of each slice in it
        sources.update(ED_frames=study.slice_frames[edFrame], ES_frames=study.slice_frames[esFrame])
    try:
        check_seg_beyond_sr(study)
    except CMRSegError as exc:
        sources["segProblem"] = str(exc)
    except (OSError, InvalidDicomError) as exc:
        return {"problem": unreadable.format(exc)}
    return sources


def reviewNodesFromTable(table) -> ReviewNodes:
    """The result a CMRSeg results table belongs to.

    Raises:
        CMRSegError: the table is not a CMRSeg results table, or one of its nodes was deleted.
    """
    if table is None or not table.GetAttribute(ResultsTable.ROW_KEYS_ATTRIBUTE):
        raise CMRSegError("Select a CMRSeg results table (made by Apply).")
    nodes = {role: table.GetNodeReference(_referenceRole(role)) for role in ROLES}
    singleFrame = "lv_edv_ml" not in ResultsTable.rowKeys(table)  # frame volumes only: one volume, no ES
    required = ROLES[:3] if singleFrame else ROLES
    missing = [role for role in required if nodes[role] is None]
    if missing:
        raise CMRSegError(f"The nodes of '{table.GetName()}' ({', '.join(missing)}) were deleted; run Apply again.")
    return ReviewNodes(table=table, **nodes)


def updateCorrected(review: ReviewNodes) -> dict:
    """Recompute the corrected column of the table from the corrected segmentations; the exact values."""
    return ResultsTable.updateCorrectedColumn(review.table, review.edCorrected, review.edVolume,
                                              review.esCorrected, review.esVolume)


def showPhase(review: ReviewNodes, phase: str) -> tuple[object, object]:
    """Show the segmentations of ``phase`` (ED, ES or frame) and hide the others'.

    Returns ``(volume, correctedSegmentation)`` of that phase, to show as background and to edit. For a
    single-volume result, ED and frame both name its one frame.
    """
    if review.singleFrame and phase.upper() == "ED":
        phase = "frame"
    chosen = None
    for name, volume, automatic, corrected in review.phases():
        visible = name.upper() == phase.upper()
        for node in (automatic, corrected):
            displayNode = node.GetDisplayNode()
            if displayNode is not None:
                displayNode.SetVisibility(visible)
        if visible:
            chosen = (volume, corrected)
    if chosen is None:
        raise CMRSegError(f"This result has no {phase} phase.")
    return chosen


def resultsInScene(scene) -> list[ReviewNodes]:
    """Every complete CMRSeg result in the scene, oldest first."""
    results = []
    tables = scene.GetNodesByClass("vtkMRMLTableNode")
    for index in range(tables.GetNumberOfItems()):
        table = tables.GetItemAsObject(index)
        if table.GetAttribute(ResultsTable.ROW_KEYS_ATTRIBUTE):
            try:
                results.append(reviewNodesFromTable(table))
            except CMRSegError:
                continue  # some of its nodes were deleted
    return results


def showOnlyResult(scene, review: ReviewNodes) -> list[ReviewNodes]:
    """Hide the segmentations of every other result (display nodes without view lists show in every view);
    returns those other results."""
    others = [other for other in resultsInScene(scene) if other.table is not review.table]
    for other in others:
        for _, _, automatic, corrected in other.phases():
            for node in (automatic, corrected):
                if node.GetDisplayNode() is not None:
                    node.GetDisplayNode().SetVisibility(False)
    return others


def removeResult(scene, review: ReviewNodes) -> None:
    """Remove a result's segmentations, the volumes made for it and its table (never the user's input)."""
    nodes = [node for _, volume, automatic, corrected in review.phases() for node in (automatic, corrected, volume)
             if node is not None and (node is not volume or node.GetAttribute(CREATED_ATTRIBUTE))]
    for node in [*nodes, review.table]:
        scene.RemoveNode(node)


def voxelVolumeMl(volumeNode) -> float:
    """Volume of one voxel of a volume node in ml."""
    spacing = volumeNodeGeometry(volumeNode)[0]
    return float(spacing[0] * spacing[1] * spacing[2]) / 1000.0


def _referenceRole(role: str) -> str:
    return f"CMRSeg.{role}"
