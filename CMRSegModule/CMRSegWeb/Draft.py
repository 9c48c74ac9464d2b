"""The browser review's draft: the corrected label maps and the approval, saved after every change into one
hidden file of the export folder, so that a review stopped before its export (the server stopped, the
computer restarted) goes on from where it was when the run is reviewed again. An export holds the same and
removes the draft."""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError
from CMRSegModuleLib.Corrections import (
    automaticFingerprints,
    correctedFingerprint,
    phaseLabelmaps,
    putBack,
    reviewState,
)
from CMRSegModuleLib.ReviewNodes import ReviewNodes

log = logging.getLogger(__name__)

DRAFT_NAME = ".cmrseg-review-draft.npz"


def draftPath(exportFolder: str | Path) -> Path:
    return Path(exportFolder) / DRAFT_NAME


def saveDraft(review: ReviewNodes, exportFolder: str | Path) -> Path:
    """Write this review's corrected label maps and approval to its draft (replaced whole, never half-written)."""
    maps = phaseLabelmaps(review)  # one export of the label maps for the maps, the fingerprint and the approval
    record = {
        "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (UTC is 3.11+)
        "automatic_fingerprint": automaticFingerprints(review),
        "corrected_fingerprint": correctedFingerprint(review, maps),
        "approval": reviewState(review, maps)[1],
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, record=np.array(json.dumps(record)),
                        **{phase: corrected for phase, _, corrected, _ in maps})  # fmt: skip
    path = draftPath(exportFolder)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=".cmrseg-draft-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(buffer.getvalue())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return path


def removeDraft(exportFolder: str | Path) -> None:
    draftPath(exportFolder).unlink(missing_ok=True)


def restoreDraft(review: ReviewNodes, exportFolder: str | Path) -> str | None:
    """Put this result's draft back into its corrected segmentations, with its approval when the label maps are
    the approved ones; a line saying so, or None when there is no draft of this result.

    Raises:
        CMRSegError: the draft cannot be read or does not fit the result's frames.
    """
    from CMRSegModuleLib.SegmentationNodes import checkedLabelmap

    path = draftPath(exportFolder)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            record = json.loads(str(stored["record"]))
            fingerprints = automaticFingerprints(review)
            if fingerprints is None or record.get("automatic_fingerprint") != fingerprints:
                log.info("%s is the draft of another result; it is replaced at this review's first change", path)
                return None
            labelmaps = [(checkedLabelmap(stored[phase], volume), volume, corrected)
                         for phase, volume, _, corrected in review.phases()]  # fmt: skip
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, CMRSegError) as exc:
        raise CMRSegError(f"The review's draft {path} cannot be read ({exc}); move it away to go on from the "
                          "export or the automatic result.") from exc
    state = putBack(review, labelmaps, record)  # every phase checked above before any is put back
    return f"Went on from the corrections saved {record['saved']}, not yet exported ({state})."
