"""A finished ``cmrseg segment`` output folder as a result to review: its study and its ED/ES label maps."""

from __future__ import annotations

import json
from pathlib import Path

from cmrseg.errors import CMRSegError
from CMRSegModuleLib.Runner import RunSettings, patientWithSettings, readOutputFolder


def isRunFolder(path: str | Path) -> bool:
    return (Path(path) / "measures.json").is_file()


def readRunFolder(folder: str | Path, seriesUid: str | None = None, heightCm: float | None = None,
                  weightKg: float | None = None, progress=None, sex: str | None = None, ageYears: float | None = None):
    """``(study, RunResult)`` of a finished run: the study read again from the run's inputs, the label maps
    from the folder. The inputs are looked up as the run named them, then relative to the folder's parent.
    The height, weight, sex and age the run used (``measures.json``'s ``patient``) are kept unless others are
    given: a NIfTI input does not carry them."""
    from dataclasses import replace

    from cmrseg.io.load import load_study

    folder = Path(folder)
    try:
        measures = json.loads((folder / "measures.json").read_text())
        singleFrame = measures["ed_frame"] is None or measures["es_frame"] is None
        inputs = [_existingInput(Path(path), folder) for path in measures["input"]]
        result = None if singleFrame else readOutputFolder(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CMRSegError(f"{folder} is not a complete CMRSeg result ({exc}).") from exc
    if singleFrame:
        raise CMRSegError(f"{folder} holds a single-frame result; the review needs ED and ES.")
    study = load_study(inputs, series_uid=seriesUid, progress=progress)
    used = measures.get("patient", {})
    settings = RunSettings(heightCm=heightCm or used.get("height_cm"), weightKg=weightKg or used.get("weight_kg"),
                           sex=sex or used.get("sex"), ageYears=ageYears or used.get("age_years"))
    study = replace(study, patient=patientWithSettings(study.patient, settings))
    for frame, labels in result.labels.items():
        if labels.shape != study.image.shape[1:]:
            raise CMRSegError(f"The label map of frame {frame} ({labels.shape}) does not match the study "
                              f"({study.image.shape[1:]}); was the input changed after the run?")
    return study, result


def _existingInput(path: Path, folder: Path) -> Path:
    for candidate in (path, folder.parent / path, folder / path):
        if candidate.exists():
            return candidate
    raise CMRSegError(f"The run's input {path} is gone; the review needs the images it segmented.")
