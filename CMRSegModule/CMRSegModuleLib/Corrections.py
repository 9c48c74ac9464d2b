"""What the physician changed, and who approved the corrected result.

The correction record compares, per phase, slice and structure, the corrected label map with the automatic
one: the ml added (in the corrected, not in the automatic) and removed (the reverse), on the label maps the
measures come from (where edited segments overlap, the later of RV, Myo, LV wins).

An approval (reviewer's name, UTC time) is stored on the results table together with a fingerprint of the
corrected label maps. It holds only while they stay as approved: any later edit clears it
(:func:`approvalOf` checks the fingerprint, so an edit made anywhere, in any module, is caught).
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cmrseg import labels
from cmrseg.errors import CMRSegError
from CMRSegModuleLib.ReviewNodes import ReviewNodes, voxelVolumeMl
from CMRSegModuleLib.SegmentationNodes import labelmapFromSegmentation

APPROVED_BY_ATTRIBUTE = "CMRSeg.ApprovedBy"
APPROVED_AT_ATTRIBUTE = "CMRSeg.ApprovedAt"
APPROVED_FINGERPRINT_ATTRIBUTE = "CMRSeg.ApprovedFingerprint"
AUTOMATIC_FINGERPRINT_ATTRIBUTE = "CMRSeg.AutomaticFingerprint"  # {phase: sha256 of a label map, "images": ...}
CSV_COLUMNS = ("phase", "slice", "structure", "added_ml", "removed_ml", "net_ml")


def correctionRecord(review: ReviewNodes) -> list[dict]:
    """One row per phase, slice and structure the correction changed: ``phase``, ``slice`` (0-based, as the
    review list and the label maps count), ``structure`` (RV, Myo, LV), ``added_ml``, ``removed_ml``,
    ``net_ml``; in phase, slice, structure order. Empty when nothing was changed."""
    return _record(phaseLabelmaps(review))


def reviewState(review: ReviewNodes, maps: list | None = None) -> tuple[list[dict], dict]:
    """The correction record and the approval, from one export of the label maps (the module shows both
    after every edit); ``maps`` (:func:`phaseLabelmaps`) when the caller has them already."""
    maps = phaseLabelmaps(review) if maps is None else maps
    return _record(maps), _approval(review, maps)


def hasReviewWork(review: ReviewNodes) -> bool:
    """Whether a physician corrected or approved this result (also when it cannot be told, e.g. a segment
    deleted): such a result is not offered for removal."""
    try:
        rows, approval = reviewState(review)
    except CMRSegError:
        return True
    return bool(rows) or approval["status"] == "approved"


def editedSliceKeys(rows: list[dict]) -> set[str]:
    """``phase:slice`` of every slice a correction record changed."""
    return {f"{row['phase']}:{row['slice']}" for row in rows}


def phaseLabelmaps(review: ReviewNodes) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """``(phase, automatic, corrected, voxel ml)`` label maps of each phase, on its volume's grid.

    Raises:
        CMRSegError: an automatic segmentation is no longer the run's result (the Segment Editor lists it
            beside the corrected one; painted by mistake, the record would show corrections that are not in
            the corrected result).
    """
    recorded = automaticFingerprints(review) or {}
    maps = []
    for phase, volume, automatic, corrected in review.phases():
        before = labelmapFromSegmentation(automatic, volume)
        if phase in recorded and _labelmapFingerprint(before) != recorded[phase]:
            raise CMRSegError(f"The automatic segmentation '{automatic.GetName()}' was changed after the run; it "
                              "is what the corrections are measured against. Undo that edit (Edit > Undo), and "
                              "make corrections in the 'corrected' segmentation.")  # fmt: skip
        maps.append((phase, before, labelmapFromSegmentation(corrected, volume), voxelVolumeMl(volume)))
    return maps


def recordAutomatic(review: ReviewNodes) -> None:
    """Keep a fingerprint of each phase's automatic label map on the table (see :func:`phaseLabelmaps`), and
    of the images, so that together they tell this result from another patient's with the same label maps
    (the network found nothing in either, say)."""
    import slicer

    fingerprints = {phase: _labelmapFingerprint(labelmapFromSegmentation(automatic, volume))
                    for phase, volume, automatic, _ in review.phases()}  # fmt: skip
    images = hashlib.sha256()
    for _, volume, _, _ in review.phases():
        images.update(np.ascontiguousarray(slicer.util.arrayFromVolume(volume)).tobytes())
    fingerprints["images"] = images.hexdigest()
    review.table.SetAttribute(AUTOMATIC_FINGERPRINT_ATTRIBUTE, json.dumps(fingerprints))


def automaticFingerprints(review: ReviewNodes) -> dict | None:
    """The fingerprints :func:`recordAutomatic` kept (None for a result made before they were)."""
    stored = review.table.GetAttribute(AUTOMATIC_FINGERPRINT_ATTRIBUTE)
    return json.loads(stored) if stored else None


def _labelmapFingerprint(labelmap: np.ndarray) -> str:
    return hashlib.sha256(f"{labelmap.shape}".encode() + np.ascontiguousarray(labelmap).tobytes()).hexdigest()


def _record(maps: list[tuple[str, np.ndarray, np.ndarray, float]]) -> list[dict]:
    rows = []
    for phase, before, after, voxelMl in maps:
        for z in np.flatnonzero((before != after).any(axis=(1, 2))):
            for structure in labels.STRUCTURES:
                was, now = before[z] == structure.label, after[z] == structure.label
                added, removed = int(np.count_nonzero(now & ~was)), int(np.count_nonzero(was & ~now))
                if added or removed:
                    rows.append({"phase": phase, "slice": int(z), "structure": structure.key,
                                 "added_ml": added * voxelMl, "removed_ml": removed * voxelMl,
                                 "net_ml": (added - removed) * voxelMl})
    return rows


def correctionTotals(rows: list[dict]) -> dict[str, dict[str, float]]:
    """``"<phase> <structure>"`` -> summed added, removed and net ml, for the rows that changed."""
    totals: dict[str, dict[str, float]] = {}
    for row in rows:
        total = totals.setdefault(f"{row['phase']} {row['structure']}", {"added_ml": 0.0, "removed_ml": 0.0,
                                                                         "net_ml": 0.0})
        for key in total:
            total[key] += row[key]
    return totals


def writeCorrectionCsv(rows: list[dict], path: str | Path) -> Path:
    """The correction record as CSV (ml with 3 decimals: one voxel is a few microlitres to a few tenths)."""
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([row["phase"], row["slice"], row["structure"]]
                            + [f"{row[key]:.3f}" for key in ("added_ml", "removed_ml", "net_ml")])
    return Path(path)


FINGERPRINT_VERSION = "v2:"  # label maps and patient facts; a fingerprint without it covers the label maps only


def correctedFingerprint(review: ReviewNodes, maps: list | None = None) -> str:
    """SHA-256 of what the corrected numbers are computed from: the corrected label maps and their grids (any
    edit of any voxel) and the patient's height, weight, sex, age and BSA formula (indexed values and flags: a
    result reopened with another weight is not the one approved or exported)."""
    from CMRSegModuleLib.ResultsTable import BSA_METHOD_ATTRIBUTE, tablePatient

    facts = {**tablePatient(review.table).as_dict(), "bsa": review.table.GetAttribute(BSA_METHOD_ATTRIBUTE) or ""}
    maps = phaseLabelmaps(review) if maps is None else maps
    return FINGERPRINT_VERSION + _fingerprint(maps, json.dumps(facts, sort_keys=True))


def _fingerprint(maps: list[tuple[str, np.ndarray, np.ndarray, float]], facts: str = "") -> str:
    digest = hashlib.sha256(facts.encode())
    for phase, _, corrected, _ in maps:
        digest.update(f"{phase}:{corrected.shape}".encode())
        digest.update(np.ascontiguousarray(corrected).tobytes())
    return digest.hexdigest()


def approve(review: ReviewNodes, reviewer: str, when: datetime | None = None) -> dict:
    """Record that ``reviewer`` approved the corrected result as it is now; returns the approval.

    Raises:
        CMRSegError: no reviewer name was given.
    """
    reviewer = " ".join(reviewer.split())
    if not reviewer:
        raise CMRSegError("Type the reviewer's name before approving.")
    when = (when or datetime.now(timezone.utc)).astimezone(timezone.utc)  # noqa: UP017 (UTC is 3.11+)
    from CMRSegModuleLib.ReviewNodes import updateCorrected

    updateCorrected(review)  # the numbers approved are those of the segmentations approved, shown before the name
    table = review.table
    table.SetAttribute(APPROVED_BY_ATTRIBUTE, reviewer)
    table.SetAttribute(APPROVED_AT_ATTRIBUTE, when.isoformat(timespec="seconds"))
    table.SetAttribute(APPROVED_FINGERPRINT_ATTRIBUTE, correctedFingerprint(review))
    return {"status": "approved", "by": reviewer, "at": table.GetAttribute(APPROVED_AT_ATTRIBUTE)}


def approvalOf(review: ReviewNodes) -> dict:
    """``{"status": "approved", "by", "at"}`` while the corrected result is as approved, else
    ``{"status": "not approved"}`` (an approval made stale by a later edit is removed from the table)."""
    return _approval(review, phaseLabelmaps(review))


def _approval(review: ReviewNodes, maps: list) -> dict:
    table = review.table
    approved, fingerprint = table.GetAttribute(APPROVED_FINGERPRINT_ATTRIBUTE), correctedFingerprint(review, maps)
    if approved and not approved.startswith(FINGERPRINT_VERSION) and approved == _fingerprint(maps):
        # approved in a scene saved before the patient facts were part of it: this table holds the facts it was
        # approved with (a result made again with others is another table), so the approval stands
        approved = fingerprint
        table.SetAttribute(APPROVED_FINGERPRINT_ATTRIBUTE, approved)
    if approved and approved == fingerprint:
        return {"status": "approved", "by": table.GetAttribute(APPROVED_BY_ATTRIBUTE),
                "at": table.GetAttribute(APPROVED_AT_ATTRIBUTE)}
    for attribute in (APPROVED_BY_ATTRIBUTE, APPROVED_AT_ATTRIBUTE, APPROVED_FINGERPRINT_ATTRIBUTE):
        table.RemoveAttribute(attribute)
    return {"status": "not approved"}


def putBack(review: ReviewNodes, labelmaps: list, record: dict) -> str:
    """Put corrected label maps kept earlier (``(labelmap, volume, corrected segmentation)``, each already
    checked against its volume) back into the review, with the approval ``record`` kept beside them when they
    are still the approved ones (``record``'s ``approval`` and ``corrected_fingerprint``); returns
    ``approved by NAME`` or ``not approved``."""
    from CMRSegModuleLib.ReviewNodes import updateCorrected
    from CMRSegModuleLib.SegmentationNodes import setLabelmapToSegmentation

    for labelmap, volume, corrected in labelmaps:
        setLabelmapToSegmentation(corrected, labelmap, volume)
    updateCorrected(review)
    approval = record.get("approval") or {}
    if approval.get("status") == "approved" and record.get("corrected_fingerprint") == correctedFingerprint(review):
        approve(review, approval["by"], datetime.fromisoformat(approval["at"]))  # as approved then
    return f"approved by {approval['by']}" if approvalOf(review)["status"] == "approved" else "not approved"


def describeCorrections(rows: list[dict]) -> str:
    """One line for the module: the edited slices per phase and the net ml per structure."""
    if not rows:
        return "No corrections yet."
    parts = []
    for phase in dict.fromkeys(row["phase"] for row in rows):
        slices = sorted({row["slice"] for row in rows if row["phase"] == phase})
        nets = correctionTotals([row for row in rows if row["phase"] == phase])
        changes = ", ".join(f"{key.split()[1]} {total['net_ml']:+.2f} ml" for key, total in nets.items())
        parts.append(f"{phase} slice{'s' if len(slices) > 1 else ''} {', '.join(map(str, slices))} ({changes})")
    return "Edited: " + "; ".join(parts) + "."


def describeApproval(approval: dict) -> str:
    if approval["status"] == "approved":
        return f"Approved by {approval['by']} at {approval['at']} (UTC)."
    return "Not approved: the export is marked 'not approved' until a reviewer approves it."
