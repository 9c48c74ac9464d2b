"""Export of a reviewed result: corrected segmentations (``.seg.nrrd`` and NIfTI label maps) and the table.

Files, for ``<base>`` the study name and ``<phase>`` ED and ES (``frame`` for a single volume):

* ``<base>_<phase>_corrected.seg.nrrd``: Slicer segmentation, segments named, coloured, with terminology;
* ``<base>_<phase>_corrected.nii.gz``: label map with the ACDC values (1 RV, 2 Myo, 3 LV), on the frame's grid;
* ``<base>_results.csv``: the results table as shown (values rounded);
* ``<base>_results.json``: exact automatic and corrected values, their difference, the model, the basal-slice
  rule, the ED/ES frames, the cmrseg version, the approval (or "not approved"), the correction record and the
  regional wall (AHA segments) of the automatic and the corrected result;
* ``<base>_corrections.csv``: ml added and removed by the correction per phase, slice and structure;
* ``<base>_<phase>_corrected.seg.dcm``: a DICOM SEG referencing the cine's own DICOM images,
  and ``<base>_corrected_measures.sr.dcm``, the corrected parameters and their quality check as a DICOM SR,
  when the cine was loaded from DICOM files that can be their sources (the JSON says why not otherwise). A
  phase the physician edited is described as corrected (semi-automatic), one left as it was as automatic;
  the SR as corrected when any phase was edited.

Existing files are never replaced unless ``overwrite`` is true, and never when they are the export of another
result (the JSON's ``automatic_fingerprint``); the files are written to a temporary folder first and moved
into place together (the replaced ones put back on any failure), so a failure leaves no partial export.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from cmrseg import __version__
from cmrseg.errors import CMRSegError
from cmrseg.io.segmentation_file import write_seg_nrrd
from cmrseg.io.volume_files import write_frame
from CMRSegModuleLib import ResultsTable
from CMRSegModuleLib.Corrections import (
    automaticFingerprints,
    correctedFingerprint,
    correctionTotals,
    phaseLabelmaps,
    reviewState,
    writeCorrectionCsv,
)
from CMRSegModuleLib.ReviewNodes import PHASE_DICOM_ATTRIBUTE, ReviewNodes, updateCorrected
from CMRSegModuleLib.VolumeNodes import studyFromVolumeNode, volumeNodeGeometry


def baseNameOf(review: ReviewNodes) -> str:
    """A file-name-safe name of the study the result belongs to."""
    name = review.runInfo().get("study") or review.table.GetName()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "cmrseg"


def exportPaths(review: ReviewNodes, folder: str | Path, baseName: str | None = None) -> dict[str, Path]:
    """The files an export of this result holds, by kind (``ED_seg``, ``ED_labelmap``, ..., ``csv``, ``json``);
    the DICOM ones when the result has DICOM sources, written while those can still be read."""
    folder = Path(folder)
    base = baseName or baseNameOf(review)
    paths = {}
    sources = storedDicomSources(review)
    for phase, *_ in review.phases():
        paths[f"{phase}_seg"] = folder / f"{base}_{phase}_corrected.seg.nrrd"
        paths[f"{phase}_labelmap"] = folder / f"{base}_{phase}_corrected.nii.gz"
        if phase in sources:
            paths[f"{phase}_dicom_seg"] = folder / f"{base}_{phase}_corrected.seg.dcm"
    if "ED" in sources and "ES" in sources:
        paths["dicom_sr"] = folder / f"{base}_corrected_measures.sr.dcm"
    paths["csv"] = folder / f"{base}_results.csv"
    paths["corrections"] = folder / f"{base}_corrections.csv"
    paths["json"] = folder / f"{base}_results.json"
    return paths


def storedDicomSources(review: ReviewNodes) -> dict:
    """The result's source DICOM files per phase (``folder``, ``ED``, ``ES``; for an enhanced file also each
    slice's frame in it, ``ED_frames``, ``ES_frames``; ``segProblem`` when they can have an SR but no SEG), or
    ``{"problem": why}``."""
    return json.loads(review.table.GetAttribute(PHASE_DICOM_ATTRIBUTE) or '{"problem": "no DICOM source"}')


def dicomSourcesProblem(sources: dict) -> str | None:
    """Why no DICOM SEG or SR can be written now: none recorded, or no longer where the study was loaded from
    (the rest of the export does not need them)."""
    if "problem" in sources:
        return sources["problem"]
    folder = Path(sources["folder"])
    if not all((folder / name).is_file() for phase in ("ED", "ES") for name in sources[phase]):
        return (f"the source DICOM files are no longer in {folder} (moved or deleted); DICOM SEG and SR "
                "reference them: load the study from its new place to write them")
    return None


def existingExportFiles(review: ReviewNodes, folder: str | Path, baseName: str | None = None) -> list[Path]:
    """The export files of this result that already exist in ``folder`` (ask before overwriting them).

    Raises:
        CMRSegError: they are another result's export (never replaced): asked first, not after the question.
    """
    paths = exportPaths(review, folder, baseName)
    _refuseAnotherResults(review, folder, baseName)
    return [path for path in paths.values() if path.exists()]


def exportReview(review: ReviewNodes, folder: str | Path, baseName: str | None = None,
                 overwrite: bool = False) -> list[Path]:
    """Write the corrected segmentations and the results; return the paths written.

    The corrected column is recomputed first, so the files match the segmentations as they are now.

    Raises:
        CMRSegError: files exist and ``overwrite`` is false (nothing is written), or a segment is missing.
    """
    folder = Path(folder)
    paths = exportPaths(review, folder, baseName)
    existing = [path.name for path in paths.values() if path.exists()]
    if existing and not overwrite:
        raise CMRSegError(f"{folder} already holds {', '.join(existing)}; choose another folder or allow overwriting.")
    _refuseAnotherResults(review, folder, baseName)
    corrected = updateCorrected(review)
    maps = phaseLabelmaps(review)  # one export of the label maps for the files, the record and the JSON
    sources = storedDicomSources(review)
    problem = dicomSourcesProblem(sources)
    segProblem = problem or sources.get("segProblem")
    written = {kind: path for kind, path in paths.items()
               if not (problem and kind in DICOM_KINDS or segProblem and kind in SEG_KINDS)}  # fmt: skip
    corrections, approval = reviewState(review, maps)
    edited = {row["phase"] for row in corrections}  # a phase nobody edited is exported as the automatic result
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".cmrseg-export-") as scratch:
        scratch = Path(scratch)
        for (phase, volume, _, _), (_, _, labelmap, _) in zip(review.phases(), maps, strict=True):
            grid = studyFromVolumeNode(volume)
            write_seg_nrrd(labelmap, grid, scratch / paths[f"{phase}_seg"].name)
            write_frame(labelmap, grid, scratch / paths[f"{phase}_labelmap"].name)
            if f"{phase}_dicom_seg" in written:
                from cmrseg.io.dicom_seg import write_dicom_seg

                write_dicom_seg(labelmap, sources["folder"], sources[phase], scratch / paths[f"{phase}_dicom_seg"].name,
                                review.runInfo()["model"], corrected=phase in edited,
                                frames=sources.get(f"{phase}_frames"), phase=phase)
        if "dicom_sr" in written:
            from cmrseg.io.dicom_sr import write_dicom_sr

            write_dicom_sr(corrected, sources["folder"], sources["ED"], sources["ES"], scratch / paths["dicom_sr"].name,
                           review.runInfo()["model"], corrected["qc"], corrected=bool(edited),
                           approval=approval)
        writeResultsCsv(review.table, scratch / paths["csv"].name)
        writeCorrectionCsv(corrections, scratch / paths["corrections"].name)
        writeResultsJson(review, corrected, maps, corrections, approval, written, segProblem, problem,
                         scratch / paths["json"].name)  # fmt: skip
        # an earlier export's SEG and SR go too when none can be written now: never beside other numbers
        _moveInTogether(scratch, list(paths.values()))
    return list(written.values())


def earlierExport(review: ReviewNodes, folder: str | Path, baseName: str | None = None) -> dict | None:
    """The results JSON of this result's earlier export in ``folder``; None when there is none (or only
    another result's, or one made before exports were told apart)."""
    fingerprints = automaticFingerprints(review)
    try:
        document = json.loads(exportPaths(review, folder, baseName)["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if fingerprints is None or not isinstance(document, dict) or document.get("automatic_fingerprint") != fingerprints:
        return None  # a result made before fingerprints were kept cannot be matched to an export
    return document


def restoreExport(review: ReviewNodes, folder: str | Path, baseName: str | None = None) -> str | None:
    """Put this result's earlier export from ``folder`` back into its corrected segmentations (a review
    reopened goes on from where it was exported, not from the automatic result), with its approval when the
    label maps are the approved ones; a line saying what was restored, or None when there is no such export.

    Raises:
        CMRSegError: the export's label maps are missing or do not fit the result's frames.
    """
    from cmrseg.io.volume_files import read_volume_file
    from CMRSegModuleLib.Corrections import putBack
    from CMRSegModuleLib.SegmentationNodes import checkedLabelmap

    paths = exportPaths(review, folder, baseName)
    document = earlierExport(review, folder, baseName)
    if document is None:
        return None
    labelmaps = []  # every phase read before any is put back: a failed restore leaves the result as it was
    for phase, volume, _, corrected in review.phases():
        try:
            labelmap = checkedLabelmap(read_volume_file(paths[f"{phase}_labelmap"]).image[0], volume)
            labelmaps.append((labelmap, volume, corrected))
        except (OSError, CMRSegError) as exc:
            raise CMRSegError(f"The earlier export in {folder} has no usable {phase} label map ({exc}); move it away "
                              "to start again from the automatic result.") from exc
    state = putBack(review, labelmaps, document)
    return f"Went on from the corrections exported {document.get('exported', '')} ({state})."


def holdsAnotherResult(review: ReviewNodes, folder: str | Path, baseName: str | None = None) -> bool:
    """Whether ``folder`` holds, under this result's export names, the export of another result (another
    patient, another run of the same study)."""
    try:
        document = json.loads(exportPaths(review, folder, baseName)["json"].read_text(encoding="utf-8"))
        earlier = document.get("automatic_fingerprint")
    except (OSError, ValueError, AttributeError):
        return False  # none, or not one of ours: the overwrite question covers it
    return earlier is not None and earlier != automaticFingerprints(review)


def _refuseAnotherResults(review: ReviewNodes, folder: Path, baseName: str | None) -> None:
    """Export names come from the study's description ("SAX cine" for many patients): never replace the
    export of another result (another patient, another run) that has the same names."""
    if holdsAnotherResult(review, folder, baseName):
        raise CMRSegError(f"{folder} holds the export of another result under the same names "
                          f"({exportPaths(review, folder, baseName)['json'].name}); choose another folder.")


def _moveInTogether(scratch: Path, paths: list[Path]) -> None:
    """Replace ``paths`` by the files of the same names in ``scratch`` (a path with none there is removed):
    the earlier files are first set aside with ``os.replace``, then the new ones moved in. On any failure (a
    file open in another program, a full disk) the new files are removed and the earlier ones put back; an
    earlier file that cannot be put back stays in a kept folder the error names, never deleted."""
    aside = Path(tempfile.mkdtemp(prefix=".cmrseg-replaced-", dir=paths[0].parent))
    movedAside, movedIn = [], []
    try:
        for path in paths:
            if path.exists():
                os.replace(path, aside / path.name)
                movedAside.append(path)
        for path in paths:
            if (scratch / path.name).exists():
                os.replace(scratch / path.name, path)
                movedIn.append(path)
    except BaseException as exc:
        stuck = _putBack(movedIn, movedAside, aside)
        if stuck:
            raise CMRSegError(f"The export failed ({exc}) and {', '.join(stuck)} could not be put back: they are "
                              f"in {aside}.") from exc
        shutil.rmtree(aside, ignore_errors=True)
        if isinstance(exc, OSError):
            raise CMRSegError(f"Could not write the export into {paths[0].parent} ({exc.strerror or exc}); "
                              "nothing was changed.") from exc
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _putBack(movedIn: list[Path], movedAside: list[Path], aside: Path) -> list[str]:
    """Undo :func:`_moveInTogether` file by file; the names of earlier files that could not be put back."""
    for path in movedIn:
        try:
            path.unlink()
        except OSError:
            pass  # replaced below when an earlier file of that name exists
    stuck = []
    for path in movedAside:
        try:
            os.replace(aside / path.name, path)
        except OSError:
            stuck.append(path.name)
    return stuck


def regionalWall(review: ReviewNodes, maps: list) -> dict | None:
    """The AHA-segment wall thickness and thickening (:mod:`cmrseg.regional`) of the automatic and the
    corrected ED/ES label maps (``maps``: :func:`phaseLabelmaps`); None for a single volume."""
    from cmrseg.regional import regional_wall_thickness

    if review.singleFrame:
        return None
    spacing, _, direction = volumeNodeGeometry(review.edVolume)
    byPhase = {phase: (automatic, corrected) for phase, automatic, corrected, _ in maps}
    return {kind: regional_wall_thickness(byPhase["ED"][index], byPhase["ES"][index], spacing, direction)
            for index, kind in enumerate(("automatic", "corrected"))}


def writeResultsCsv(table, path: str | Path) -> Path:
    """The results table as shown: one row per parameter, values with the table's decimals."""
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(ResultsTable.COLUMNS)
        for row in ResultsTable.readTable(table):
            writer.writerow([row["parameter"], row["unit"]] + [
                "" if math.isnan(row[column]) else f"{row[column]:.{ResultsTable.decimalsOf(row['key'])}f}"
                for column in ("automatic", "corrected", "difference")
            ] + [row["reference"], row["automatic_flag"], row["corrected_flag"]])
    return Path(path)


def writeResultsJson(review: ReviewNodes, corrected: dict, maps: list, corrections: list[dict], approval: dict,
                     paths: dict[str, Path], segProblem: str | None, srProblem: str | None,
                     path: str | Path) -> Path:  # fmt: skip
    """Exact values, the difference and the facts of the run, as JSON (``null`` where not defined)."""
    automatic = ResultsTable.automaticMeasures(review.table)
    info = review.runInfo()
    keys = ResultsTable.rowKeys(review.table)
    difference = ResultsTable.differences(corrected, automatic, keys)
    patient = ResultsTable.tablePatient(review.table)
    document = {
        "cmrseg_version": __version__,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (UTC is 3.11+)
        "study": info["study"],
        "model": info["model"],
        "basal_rule": info["basalRule"],
        "ed_frame": info["edFrame"],
        "es_frame": info["esFrame"],
        "ed_es_from": info["edEsFrom"],
        "segmented_with_cmrseg_version": info["version"],
        "patient": patient.as_dict(),
        "bsa_method": review.table.GetAttribute(ResultsTable.BSA_METHOD_ATTRIBUTE),
        "parameters": [{"key": key, "parameter": name, "unit": unit} for key, name, unit in
                       ResultsTable.tableRows(automatic)],
        "automatic": _clean(automatic),
        "corrected": _clean(corrected),
        "difference": _clean(difference),
        "approval": approval,
        "corrected_fingerprint": correctedFingerprint(review, maps),  # what a later send checks the screen against
        "automatic_fingerprint": automaticFingerprints(review),  # which result this is (a re-export must match)
        "dicom_seg": "written" if segProblem is None else segProblem,
        "dicom_sr": "written" if srProblem is None else srProblem,
        "corrections": {"by_slice": corrections, "totals": correctionTotals(corrections)},
        "regional_wall_thickness": regionalWall(review, maps),
        "files": {kind: p.name for kind, p in paths.items() if kind != "json"},
    }
    Path(path).write_text(json.dumps(document, indent=2), encoding="utf-8")
    return Path(path)


def _clean(values: dict) -> dict:
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in values.items()}


SEG_KINDS = ("ED_dicom_seg", "ES_dicom_seg")
DICOM_KINDS = (*SEG_KINDS, "dicom_sr")


def sendToPacs(review: ReviewNodes, folder: str | Path, address: str, calledAet: str, callingAet: str,
               baseName: str | None = None, progress=None) -> list[dict]:
    """Send the exported DICOM SEG and SR of ``review`` in ``folder`` to the PACS at ``address`` (HOST:PORT).

    Raises:
        CMRSegError: no DICOM objects for this result (not loaded from DICOM), not exported yet, edited since
            the export (the PACS would get other numbers than the screen shows), or the PACS refused (see
            :func:`cmrseg.pacs.send_files`).
    """
    from cmrseg.pacs import files_to_send, parse_address, send_files

    host, port = parse_address(address)
    paths = exportPaths(review, folder, baseName)
    if not paths["json"].is_file():
        raise CMRSegError(f"Export first: {paths['json'].name} not found in {folder}.")
    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    exported = document.get("corrected_fingerprint")
    if exported != correctedFingerprint(review):
        raise CMRSegError("The segmentations, or the patient's height, weight, sex or age, changed since the export; "
                          "export again before sending to the PACS.")
    dicomPaths = [paths[kind] for kind in DICOM_KINDS if kind in document.get("files", {})]
    if not dicomPaths:  # what the export wrote, not whether the sources are still there (sending needs none)
        raise CMRSegError(f"The export in {folder} has no DICOM SEG or SR to send ({document.get('dicom_seg')}).")
    missing = [p.name for p in dicomPaths if not p.exists()]
    if missing:
        raise CMRSegError(f"Export again: {', '.join(missing)} not found in {folder}.")
    return send_files(files_to_send(dicomPaths), host, port, calledAet, callingAet, progress)
