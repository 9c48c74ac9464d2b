"""The results table node: LV/RV EDV, ESV, SV, EF and LV mass, automatic vs corrected, and their difference.

Columns ``parameter``, ``unit``, ``automatic``, ``corrected``, ``difference`` (corrected - automatic), then the
reference range (:mod:`cmrseg.reference`, for the patient's sex and age) and where each column's value lies
against it (``low (z -3.2)``; empty without a range). Rows
follow :data:`cmrseg.report.PARAMETERS`, then the BSA-indexed values and the BSA when height and weight are
known, and the quality check (:mod:`cmrseg.qc`) of each column as a code (0 pass, 1 review, 2 fail; its flags
are in the exact values' ``qc``); a single-frame result has frame volumes instead. The cells show values rounded
to :data:`DECIMALS` (the BSA to :data:`BSA_DECIMALS`); the exact values are kept as JSON in the table's attributes
(``CMRSeg.AutomaticMeasures``, ``CMRSeg.CorrectedMeasures``) for export. The automatic column is written once,
when the table is made; only the corrected column is recomputed, from the corrected segmentation nodes.
"""

from __future__ import annotations

import json
import math

import vtk

from cmrseg.io.study import PatientInfo
from cmrseg.measures import frame_measures, study_measures
from cmrseg.qc import judged_curve, quality_check, unusable_parameters, unusable_text
from cmrseg.reference import compare_with_ranges
from cmrseg.report import INDEXED, PARAMETERS
from CMRSegModuleLib.PatientAttributes import readPatient, writePatient
from CMRSegModuleLib.SegmentationNodes import labelmapFromSegmentation
from CMRSegModuleLib.VolumeNodes import volumeNodeGeometry

COLUMNS = ("parameter", "unit", "automatic", "corrected", "difference", "reference", "automatic_flag",
           "corrected_flag")
TEXT_COLUMNS = ("parameter", "unit", "reference", "automatic_flag", "corrected_flag")
COLUMN_TITLES = {"parameter": "Parameter", "unit": "Unit", "automatic": "Automatic", "corrected": "Corrected",
                 "difference": "Difference (corrected - automatic)", "reference": "Reference range",
                 "automatic_flag": "Automatic: quality check, range",
                 "corrected_flag": "Corrected: quality check, range"}
FRAME_PARAMETERS = (
    ("lv_ml", "LV blood pool volume", "ml"),
    ("rv_ml", "RV blood pool volume", "ml"),
    ("myo_mass_g", "LV mass", "g"),
)
# One decimal, as the report and the printout show values and as the reference flags and the quality check
# judge them (a cell never shows a value on the other side of a range than its flag says); the BSA two.
DECIMALS = 1
BSA_DECIMALS = 2
QC_ROW = ("qc_status", "Quality check (0 pass, 1 review, 2 fail)", "")
QC_CODES = {"pass": 0, "review": 1, "fail": 2}
ROW_KEYS_ATTRIBUTE = "CMRSeg.RowKeys"
RESULTS_TABLE_ATTRIBUTE = ROW_KEYS_ATTRIBUTE  # every CMRSeg results table has it; the module's selector filters on it
AUTOMATIC_ATTRIBUTE = "CMRSeg.AutomaticMeasures"
CORRECTED_ATTRIBUTE = "CMRSeg.CorrectedMeasures"
PATIENT_ATTRIBUTES = {"height_cm": "CMRSeg.HeightCm", "weight_kg": "CMRSeg.WeightKg", "sex": "CMRSeg.Sex",
                      "age_years": "CMRSeg.AgeYears"}
BSA_METHOD_ATTRIBUTE = "CMRSeg.BsaMethod"
CURVE_ATTRIBUTE = "CMRSeg.LvCurve"  # the run's LV volume curve, judged again with the corrected ED/ES volumes
FRAME_PHASE_ATTRIBUTE = "CMRSeg.FramePhase"  # "ED" for one frame given as both ED and ES (checked as ED)
MIRRORED_ATTRIBUTE = "CMRSeg.SegmentedMirrored"  # "1": the network saw the slices mirrored (a quality-check flag)


def decimalsOf(key: str) -> int:
    """The decimals a row's cells show."""
    return BSA_DECIMALS if key == "bsa_m2" else DECIMALS


def measuresFromLabelmaps(edLabels, esLabels, spacing, patient: PatientInfo | None = None,
                          bsaMethod: str = "mosteller", curve: dict | None = None, direction=None,
                          framePhase: str | None = None, segmentedMirrored: bool = False) -> dict:
    """The clinical parameters of ED and ES label maps (``[z, y, x]``, ACDC values) as a flat dict.

    With ED and ES: the fields of :class:`cmrseg.measures.StudyMeasures`, the quality check ``qc`` and its
    code ``qc_status``. With ``esLabels`` None (a single frame): ``lv_ml``, ``rv_ml``, ``myo_ml``, ``myo_mass_g``
    and the frame's quality check.
    ``curve`` is the run's LV volume curve (:func:`lvCurve`) when it segmented every frame: the check judges
    it with these ED and ES volumes in it, as ``cmrseg segment`` judges its own. ``direction`` (LPS, as
    :func:`volumeNodeGeometry` gives it) lets the check find the side of the RV. ``framePhase`` "ED": the single
    frame is checked as ED, as ``cmrseg segment`` checks a frame given as both ED and ES. ``segmentedMirrored``:
    the run's network saw the slices mirrored against the header, which the check keeps saying.
    """
    ed = frame_measures(edLabels, spacing)
    geometry = None if direction is None else (spacing, direction)
    if esLabels is None:  # the structural checks of a single frame, as cmrseg segment makes them
        known = 0 if framePhase == "ED" else None
        qc = quality_check({0: edLabels}, known, known, None, geometry=geometry, segmented_mirrored=segmentedMirrored)
        return {"lv_ml": ed.lv_ml, "rv_ml": ed.rv_ml, "myo_ml": ed.myo_ml, "myo_mass_g": ed.myo_mass_g, "qc": qc,
                "qc_status": QC_CODES[qc["status"]]}
    es = frame_measures(esLabels, spacing)
    measures = study_measures(ed, es, patient, bsaMethod).as_dict()
    judged = None
    if curve is not None:
        judged = {**curve["lv_ml"], curve["ed"]: ed.lv_ml, curve["es"]: es.lv_ml}
    qc = quality_check({0: edLabels, 1: esLabels}, 0, 1, measures, judged, geometry,
                       segmented_mirrored=segmentedMirrored)
    reference = compare_with_ranges(measures, getattr(patient, "sex", None), getattr(patient, "age_years", None))
    return {**measures, "qc": qc, "qc_status": QC_CODES[qc["status"]], "reference": reference}


def lvCurve(lvMlByFrame: dict | None, edFrame: int, esFrame: int) -> dict | None:
    """What :func:`measuresFromLabelmaps` needs of a run's LV volume curve (``{frame: ml}`` after the basal
    rule; None, or ED and ES only, when the run segmented only those)."""
    judged = judged_curve({int(frame): float(ml) for frame, ml in (lvMlByFrame or {}).items()})
    return None if judged is None else {"lv_ml": judged, "ed": edFrame, "es": esFrame}


def measuresFromSegmentations(edSegmentation, edVolume, esSegmentation=None, esVolume=None,
                              patient: PatientInfo | None = None, bsaMethod: str = "mosteller",
                              curve: dict | None = None, framePhase: str | None = None,
                              segmentedMirrored: bool = False) -> dict:
    """:func:`measuresFromLabelmaps` of segmentation nodes, each exported on its reference volume's grid."""
    spacing, _, direction = volumeNodeGeometry(edVolume)
    edLabels = labelmapFromSegmentation(edSegmentation, edVolume)
    esLabels = labelmapFromSegmentation(esSegmentation, esVolume) if esSegmentation is not None else None
    return measuresFromLabelmaps(edLabels, esLabels, spacing, patient, bsaMethod, curve, direction, framePhase,
                                 segmentedMirrored)


def tableRows(measures: dict) -> list[tuple[str, str, str]]:
    """``(key, parameter, unit)`` of each row for a measures dict (study or single frame)."""
    if "lv_edv_ml" not in measures:
        return list(FRAME_PARAMETERS) + ([QC_ROW] if "qc_status" in measures else [])
    rows = list(PARAMETERS)
    if measures.get("bsa_m2"):
        names = {key: (name, unit) for key, name, unit in PARAMETERS}
        for key, indexKey in INDEXED.items():
            name, unit = names[key]
            rows.append((indexKey, f"{name} index", f"{unit}/m²"))
        rows.append(("bsa_m2", f"BSA ({measures.get('bsa_method') or 'mosteller'})", "m²"))
    if "qc_status" in measures:
        rows.append(QC_ROW)
    return rows


def createResultsTable(scene, name: str, automatic: dict, patient: PatientInfo | None = None,
                       bsaMethod: str = "mosteller", curve: dict | None = None, framePhase: str | None = None,
                       segmentedMirrored: bool = False):
    """A new table node with the automatic values, the corrected column equal to them, difference 0;
    ``curve`` (:func:`lvCurve`), ``framePhase`` and ``segmentedMirrored`` are kept for the corrected column's
    quality check."""
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    for column in COLUMNS:
        array = vtk.vtkStringArray() if column in TEXT_COLUMNS else vtk.vtkDoubleArray()
        array.SetName(column)
        table.AddColumn(array)
        table.SetColumnTitle(column, COLUMN_TITLES[column])
    table.SetUseColumnTitleAsColumnHeader(True)
    rows = tableRows(automatic)
    for _, parameter, unit in rows:
        row = table.AddEmptyRow()
        table.SetCellText(row, 0, parameter)
        table.SetCellText(row, 1, unit)
    table.SetAttribute(ROW_KEYS_ATTRIBUTE, ",".join(key for key, _, _ in rows))
    table.SetAttribute(AUTOMATIC_ATTRIBUTE, json.dumps(automatic))
    table.SetAttribute(BSA_METHOD_ATTRIBUTE, bsaMethod)
    if curve is not None:
        table.SetAttribute(CURVE_ATTRIBUTE, json.dumps(curve))
    if framePhase is not None:
        table.SetAttribute(FRAME_PHASE_ATTRIBUTE, framePhase)
    if segmentedMirrored:
        table.SetAttribute(MIRRORED_ATTRIBUTE, "1")
    writePatient(table, patient, PATIENT_ATTRIBUTES)
    _setColumn(table, "automatic", automatic)
    _setReferenceColumns(table, "automatic", automatic)
    setCorrectedMeasures(table, automatic)
    table.SetLocked(True)  # values come from the segmentations, not from typing in the table
    return table


def setCorrectedMeasures(table, corrected: dict) -> None:
    """Write the corrected column and the difference column (corrected - automatic)."""
    difference = differences(corrected, automaticMeasures(table), rowKeys(table))
    table.SetAttribute(CORRECTED_ATTRIBUTE, json.dumps(corrected))
    wasModifying = table.StartModify()
    _setColumn(table, "corrected", corrected)
    _setColumn(table, "difference", difference)
    _setReferenceColumns(table, "corrected", corrected)
    # the range is the patient's (sex, age), whichever value has it: an automatic EF not computed has none
    ranges = {**corrected.get("reference", {}).get("parameters", {}),
              **automaticMeasures(table).get("reference", {}).get("parameters", {})}
    _setCells(table, "reference", {key: rangeCell(ranges.get(key)) for key in rowKeys(table)})
    table.EndModify(wasModifying)


def updateCorrectedColumn(table, edSegmentation, edVolume, esSegmentation=None, esVolume=None) -> dict:
    """Recompute the corrected column from the corrected segmentation nodes; return the exact measures."""
    corrected = measuresFromSegmentations(edSegmentation, edVolume, esSegmentation, esVolume,
                                          tablePatient(table), table.GetAttribute(BSA_METHOD_ATTRIBUTE) or "mosteller",
                                          tableCurve(table), table.GetAttribute(FRAME_PHASE_ATTRIBUTE),
                                          table.GetAttribute(MIRRORED_ATTRIBUTE) == "1")  # fmt: skip
    setCorrectedMeasures(table, corrected)
    return corrected


def tableCurve(table) -> dict | None:
    """The run's LV volume curve the table was made with (:func:`lvCurve`), or None."""
    stored = table.GetAttribute(CURVE_ATTRIBUTE)
    if not stored:
        return None
    curve = json.loads(stored)
    return {**curve, "lv_ml": {int(frame): ml for frame, ml in curve["lv_ml"].items()}}  # JSON keys are text


def rowKeys(table) -> list[str]:
    keys = table.GetAttribute(ROW_KEYS_ATTRIBUTE) or ""
    return [key for key in keys.split(",") if key]


def automaticMeasures(table) -> dict:
    """The exact automatic values the table was made with."""
    return json.loads(table.GetAttribute(AUTOMATIC_ATTRIBUTE) or "{}")


def correctedMeasures(table) -> dict:
    """The exact corrected values last written to the table."""
    return json.loads(table.GetAttribute(CORRECTED_ATTRIBUTE) or "{}")


def qcSummary(table, column: str = "automatic") -> str:
    """The quality check of the automatic (or the corrected) result in words, for the status line."""
    qc = (automaticMeasures(table) if column == "automatic" else correctedMeasures(table)).get("qc")
    if not qc:
        return ""
    text = f"Quality check: {qc['status'].upper()}."
    return text + "".join(f" [{flag['severity']}] {flag['message']}" for flag in qc["flags"])


def reviewQcSummary(table) -> str:
    """The automatic result's quality check, and the corrected result's where it differs (a correction can
    fix a failure, or make one): what the review's top bar says."""
    automatic, corrected = qcSummary(table), qcSummary(table, "corrected")
    return automatic if corrected in ("", automatic) else f"Automatic result: {automatic} Corrected: {corrected}"


def tablePatient(table) -> PatientInfo:
    """Height, weight, sex and age the table's values are indexed and compared with (``None`` where unknown)."""
    return readPatient(table, PATIENT_ATTRIBUTES)


def readTable(table) -> list[dict]:
    """The rows as shown: ``{"key", "parameter", "unit", "automatic", "corrected", "difference"}``."""
    rows = []
    columns = {name: table.GetTable().GetColumnByName(name) for name in COLUMNS}
    for row, key in enumerate(rowKeys(table)):
        entry = {"key": key}
        for name, array in columns.items():
            if array is None:  # a table saved by a CMRSeg without reference ranges
                entry[name] = ""
            else:
                entry[name] = array.GetValue(row) if name in TEXT_COLUMNS else float(array.GetValue(row))
        rows.append(entry)
    return rows


def exactRows(table) -> list[dict]:
    """:func:`readTable`'s rows with the exact values (the cells hold them rounded, :func:`decimalsOf`), for a display
    that rounds them once, as the report and the printout do (rounding twice shows 86.5 for 86.5534)."""
    automatic, corrected = automaticMeasures(table), correctedMeasures(table)
    exact = {"automatic": automatic, "corrected": corrected,
             "difference": differences(corrected, automatic, rowKeys(table))}
    rows = readTable(table)
    for row in rows:
        for column, values in exact.items():
            value = values.get(row["key"])
            row[column] = float(value) if _isNumber(value) else math.nan
    return rows


def _setColumn(table, column: str, values: dict) -> None:
    array = table.GetTable().GetColumnByName(column)
    for row, key in enumerate(rowKeys(table)):
        value = values.get(key)
        array.SetValue(row, round(value, decimalsOf(key)) if _isNumber(value) else math.nan)
    array.Modified()
    table.GetTable().Modified()
    table.Modified()


def _setReferenceColumns(table, column: str, measures: dict) -> None:
    """The ``{column}_flag`` text of each row (``low (z -3.2)``), empty where the parameter has no range (see
    :mod:`cmrseg.reference`); first, where the quality check makes the value unusable, that."""
    entries = measures.get("reference", {}).get("parameters", {})
    unusable = unusable_parameters(measures.get("qc"), measures)
    cells = {key: "; ".join(text for text in (unusable_text(unusable[key]) if key in unusable else "",
                                              flagCell(entries.get(key))) if text)
             for key in rowKeys(table)}
    _setCells(table, f"{column}_flag", cells)


def _setCells(table, name: str, cells: dict[str, str]) -> None:
    array = table.GetTable().GetColumnByName(name)
    if array is None:  # a table saved by a CMRSeg without reference ranges
        return
    for row, key in enumerate(rowKeys(table)):
        array.SetValue(row, cells[key])
    array.Modified()
    table.GetTable().Modified()
    table.Modified()


def rangeCell(entry: dict | None) -> str:
    if entry is None:
        return ""
    return entry["reason"] if entry["flag"] is None else f"{entry['lower']:.1f}-{entry['upper']:.1f}"


def flagCell(entry: dict | None) -> str:
    return "" if entry is None or entry["flag"] is None else f"{entry['flag']} (z {entry['z']:+.1f})"


def differences(corrected: dict, automatic: dict, keys: list[str]) -> dict:
    """Corrected - automatic for each key (None where either is missing or not a number)."""
    both = [key for key in keys if _isNumber(corrected.get(key)) and _isNumber(automatic.get(key))]
    return {key: corrected[key] - automatic[key] if key in both else None for key in keys}


def _isNumber(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)  # noqa: UP038 (runs on Slicer's Python 3.9)
