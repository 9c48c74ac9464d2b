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
    from the folder. The inputs are looked up where the run read them (absolute paths), then beside the run
    folder (moved together); the images read must be those the run segmented (its ``image_sha256``), from the
    series it read.
    The height, weight, sex and age the run used (``measures.json``'s ``patient``) are kept unless others are
    given: a NIfTI input does not carry them."""
    from dataclasses import replace

    from cmrseg.io.load import load_study

    folder = Path(folder)
    measures, inputs, result = runRecord(folder)
    ranSeries = measures.get("series_uid")
    if seriesUid is not None and ranSeries is not None and seriesUid != ranSeries:
        raise CMRSegError(f"The run segmented series {ranSeries}, not {seriesUid}; review it without --series.")
    read = measures.get("series_read") or []
    ranSeries = ranSeries or (read[0] if len(read) == 1 else None)  # the series the reader chose then
    study = load_study(inputs, series_uid=seriesUid or ranSeries, progress=progress)
    if measures.get("image_sha256") not in (None, study.image_sha256()):
        raise CMRSegError(f"The images read from {', '.join(map(str, inputs))} are not the ones the run in {folder} "
                          "segmented (changed or replaced since, or another series); the review needs those.")
    used = measures.get("patient", {})
    settings = RunSettings(heightCm=heightCm or used.get("height_cm"), weightKg=weightKg or used.get("weight_kg"),
                           sex=sex or used.get("sex"), ageYears=ageYears or used.get("age_years"))
    study = replace(study, patient=patientWithSettings(study.patient, settings))
    for frame, labels in result.labels.items():
        if labels.shape != study.image.shape[1:]:
            raise CMRSegError(f"The label map of frame {frame} ({labels.shape}) does not match the study "
                              f"({study.image.shape[1:]}); was the input changed after the run?")
    return study, result


def runRecord(folder: Path):
    """``(measures, inputs, RunResult)`` of a finished run, without reading its images: what a review needs
    is refused here, before a server starts (a single frame, inputs gone, label maps missing)."""
    try:
        measures = json.loads((folder / "measures.json").read_text())
        # one frame given as both ED and ES is a single frame too (RunResult.singleFrame)
        singleFrame = measures["ed_frame"] is None or measures["es_frame"] is None or (
            measures["ed_frame"] == measures["es_frame"])
        inputs = [_existingInput(Path(path), folder) for path in measures["input"]]
        result = None if singleFrame else readOutputFolder(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CMRSegError(f"{folder} is not a complete CMRSeg result ({exc}).") from exc
    if singleFrame:
        raise CMRSegError(f"{folder} holds a single-frame result; the review needs ED and ES.")
    return measures, inputs, result


def _existingInput(path: Path, folder: Path) -> Path:
    # relative paths: runs of earlier versions, which recorded the inputs as typed (from an unknown folder)
    for candidate in (folder.parent / path, folder / path, path, folder.parent / path.name):
        if candidate.exists():
            return candidate
    raise CMRSegError(f"The run's input {path} is gone; the review needs the images it segmented.")
