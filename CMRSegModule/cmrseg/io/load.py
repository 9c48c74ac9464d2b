"""Open whatever the user points at as a :class:`Study`: a DICOM folder, an ACDC patient folder, or
NIfTI / NRRD files (one 4D cine, or several 3D frames in time order)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.io import acdc
from cmrseg.io.study import Study
from cmrseg.io.volume_files import is_volume_file, read_volume_file
from cmrseg.progress import ProgressCallback
from cmrseg.validate import validate_study


def load_study(
    inputs: str | Path | Sequence[str | Path],
    series_uid: str | None = None,
    progress: ProgressCallback | None = None,
) -> Study:
    paths = [Path(inputs)] if isinstance(inputs, str | Path) else [Path(p) for p in inputs]
    if not paths:
        raise CMRSegError("No input given: name a DICOM folder, an ACDC patient folder or NIfTI/NRRD files.")
    for path in paths:
        if not path.exists():
            raise CMRSegError(f"{path} does not exist.")
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise CMRSegError(f"{path} is given twice (also as {seen[path.resolve()]}); give each frame once.")
        seen[path.resolve()] = path
    return validate_study(_read(paths, series_uid, progress))


def _read(paths: list[Path], series_uid: str | None, progress: ProgressCallback | None) -> Study:
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        if acdc.is_patient_folder(folder):
            return acdc.load_patient_study(folder)
        from cmrseg.io.dicom_cine import read_dicom_cine

        return read_dicom_cine(folder, series_uid=series_uid, progress=progress)
    folders = [str(p) for p in paths if p.is_dir()]
    if folders:
        raise CMRSegError(f"{', '.join(folders)}: give one DICOM or ACDC folder at a time (several inputs are the "
                          "frames of one study as NIfTI/NRRD files).")
    not_volumes = [str(p) for p in paths if not is_volume_file(p)]
    if not_volumes:
        raise CMRSegError(
            f"Not a NIfTI/NRRD file or a folder: {', '.join(not_volumes)}. "
            "Give a DICOM folder, an ACDC patient folder, a 4D cine file or 3D frame files."
        )
    study = read_volume_file(paths[0]) if len(paths) == 1 else stack_frames([read_volume_file(p) for p in paths])
    return with_acdc_info(study, paths)


def with_acdc_info(study: Study, paths: list[Path]) -> Study:
    """Frames taken from an ACDC patient folder get its patient data, and ED/ES when the files are those frames."""
    folder = paths[0].parent
    if not acdc.is_patient_folder(folder) or any(p.parent != folder for p in paths):
        return study
    info = acdc.read_info(folder)
    study.patient = acdc.patient_info(folder, info)
    if study.num_frames == len(paths) > 1:
        names = [p.name for p in paths]
        wanted = {key: f"{folder.name}_frame{int(info[key]):02d}.nii.gz" for key in ("ED", "ES")}
        if all(name in names for name in wanted.values()):
            study.ed_frame, study.es_frame = names.index(wanted["ED"]), names.index(wanted["ES"])
    return study


def stack_frames(frames: list[Study]) -> Study:
    """Several single-frame studies on one grid as the frames of one study (in the given order)."""
    first = frames[0]
    for frame in frames:
        if frame.num_frames != 1:
            raise CMRSegError(f"{frame.source} is already a cine ({frame.num_frames} frames); give 3D frames.")
        if not frame.on_grid_of(first):
            raise CMRSegError(f"{frame.source} is not on the same grid as {first.source}; frames must match.")
    return Study(
        image=np.concatenate([f.image for f in frames]),
        spacing=first.spacing,
        origin=first.origin,
        direction=first.direction,
        source=", ".join(f.source for f in frames),
        description=f"{len(frames)} frames",
    )
