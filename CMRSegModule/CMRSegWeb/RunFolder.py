"""A finished ``cmrseg segment`` output folder as a result to review: its study and its ED/ES label maps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError
from CMRSegModuleLib.Runner import RunResult


def isRunFolder(path: str | Path) -> bool:
    return (Path(path) / "measures.json").is_file()


def readRunFolder(folder: str | Path, seriesUid: str | None = None, heightCm: float | None = None,
                  weightKg: float | None = None, progress=None):
    """``(study, RunResult)`` of a finished run: the study read again from the run's inputs, the label maps
    from the folder. The inputs are looked up as the run named them, then relative to the folder's parent."""
    from cmrseg.io.load import load_study
    from cmrseg.io.volume_files import read_volume_file

    folder = Path(folder)
    try:
        measures = json.loads((folder / "measures.json").read_text())
        ed, es = measures["ed_frame"], measures["es_frame"]
        frames = measures["frames"]
        inputs = [_existingInput(Path(path), folder) for path in measures["input"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CMRSegError(f"{folder} is not a complete CMRSeg result ({exc}).") from exc
    if ed is None or es is None:
        raise CMRSegError(f"{folder} holds a single-frame result; the review needs ED and ES.")
    study = load_study(inputs, series_uid=seriesUid, progress=progress)
    patient = replace(study.patient)
    patient.height_cm = heightCm or patient.height_cm
    patient.weight_kg = weightKg or patient.weight_kg
    study = replace(study, patient=patient)
    labels = {}
    for frame in (ed, es):
        entry = frames.get(str(frame))
        if entry is None or not (folder / entry["file"]).is_file():
            raise CMRSegError(f"{folder} has no label map of frame {frame}.")
        image = read_volume_file(folder / entry["file"]).image[0]
        if image.shape != study.image.shape[1:]:
            raise CMRSegError(f"The label map of frame {frame} ({image.shape}) does not match the study "
                              f"({study.image.shape[1:]}); was the input changed after the run?")
        labels[frame] = np.ascontiguousarray(image, dtype=np.uint8)
    result = RunResult(labels, ed, es, measures.get("model", ""), measures.get("basal_rule", "none"),
                       measures.get("ed_es_from", ""), measures.get("study"), measures.get("review"))
    return study, result


def _existingInput(path: Path, folder: Path) -> Path:
    for candidate in (path, folder.parent / path, folder / path):
        if candidate.exists():
            return candidate
    raise CMRSegError(f"The run's input {path} is gone; the review needs the images it segmented.")
