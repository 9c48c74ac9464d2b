"""The ACDC dataset (Bernard et al., IEEE TMI 2018): patient folders with ED/ES frames and expert masks."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.io.study import PatientInfo, Study

GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")
PHASES = ("ED", "ES")  # the annotated frames of every patient


@dataclass
class AcdcFrame:
    """One annotated frame: image ``[z, y, x]``, expert mask (ACDC labels), geometry in a 1-frame Study."""

    patient: str
    phase: str  # "ED" or "ES"
    frame_number: int  # 1-based, as in Info.cfg and the file names
    study: Study  # t = 1
    mask: np.ndarray  # [z, y, x] uint8

    @property
    def image(self) -> np.ndarray:
        return self.study.image[0]


def read_info(folder: Path) -> dict[str, str]:
    info_path = folder / "Info.cfg"
    if not info_path.is_file():
        raise CMRSegError(f"{folder} is not an ACDC patient folder: Info.cfg is missing.")
    info = {}
    try:
        text = info_path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CMRSegError(f"Cannot read {info_path} as text ({exc}).") from exc
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    for key in PHASES:
        value = info.get(key)
        if value is None:
            raise CMRSegError(f"{info_path} has no {key} entry.")
        if not value.isdigit() or int(value) < 1:
            raise CMRSegError(f"{info_path}: {key} is {value!r}; it must be a 1-based frame number such as 1.")
    for key in ("Height", "Weight", "NbFrame"):
        if key in info and _number(info[key]) is None:
            raise CMRSegError(f"{info_path}: {key} is {info[key]!r}; it must be a number (or remove the line).")
    return info


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def is_patient_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "Info.cfg").is_file()


def patient_info(folder: Path, info: dict[str, str]) -> PatientInfo:
    return PatientInfo(
        height_cm=_number(info["Height"]) if "Height" in info else None,
        weight_kg=_number(info["Weight"]) if "Weight" in info else None,
        group=info.get("Group"),
        patient_id=folder.name,
    )


def _read_volume(path: str | Path) -> Study:
    # SimpleITK is imported here only: listing patients and reading Info.cfg need none (training from a slice pack).
    from cmrseg.io.volume_files import read_volume_file

    return read_volume_file(path)


def load_frame(folder: str | Path, phase: str, with_mask: bool = True) -> AcdcFrame:
    """The ED or ES frame of one patient with its expert mask (``with_mask`` false: without, an empty mask)."""
    folder = Path(folder)
    info = read_info(folder)
    number = int(info[phase])
    base = folder / f"{folder.name}_frame{number:02d}"
    study = _read_volume(f"{base}.nii.gz")
    study.patient = patient_info(folder, info)
    study.description = f"ACDC {folder.name} {phase} (frame {number})"
    if not with_mask:  # segmenting a patient needs no expert's mask
        return AcdcFrame(folder.name, phase, number, study, np.zeros(study.image.shape[1:], np.uint8))
    mask_study = _read_volume(f"{base}_gt.nii.gz")
    mask = mask_study.image[0].astype(np.uint8)
    if not mask_study.on_grid_of(study):
        raise CMRSegError(f"{base}_gt.nii.gz does not match its image's grid (matrix, spacing, origin or direction).")
    return AcdcFrame(folder.name, phase, number, study, mask)


def ed_es_study(ed_frame: AcdcFrame, es_frame: AcdcFrame) -> Study:
    """A patient's ED and ES frames as one study of two frames (ED first), as a patient folder without its cine
    is segmented: one heart, located once."""
    if not es_frame.study.on_grid_of(ed_frame.study):
        raise CMRSegError(f"The ED and ES frames of {ed_frame.patient} are not on one grid (matrix, spacing, origin "
                          "or direction); they cannot be measured as one heart.")
    study = copy.copy(ed_frame.study)
    study.image = np.stack([ed_frame.image, es_frame.image])
    study.frame_times_ms = np.array([ed_frame.frame_number - 1, es_frame.frame_number - 1], dtype=float)
    study.frame_times_known = False
    study.frame_numbers = [ed_frame.frame_number, es_frame.frame_number]
    study.ed_frame, study.es_frame = 0, 1
    study.__post_init__()
    return study


def load_patient_study(folder: str | Path) -> Study:
    """A patient as a study: the full cine when ``*_4d.nii.gz`` is there, else ED and ES as two frames."""
    folder = Path(folder)
    info = read_info(folder)
    ed, es = int(info["ED"]), int(info["ES"])
    if ed == es:
        raise CMRSegError(f"{folder / 'Info.cfg'} names frame {ed} as both ED and ES; correct one of them.")
    cine = folder / f"{folder.name}_4d.nii.gz"
    if cine.is_file():
        study = _read_volume(cine)
        if max(ed, es) > study.num_frames:
            raise CMRSegError(f"{folder / 'Info.cfg'} names frame {max(ed, es)}, but {cine.name} has "
                              f"{study.num_frames} frames.")
        study.ed_frame, study.es_frame = ed - 1, es - 1
        study.frame_numbers = list(range(1, study.num_frames + 1))  # ACDC numbers frames from 1
    else:
        study = ed_es_study(load_frame(folder, "ED", with_mask=False), load_frame(folder, "ES", with_mask=False))
    study.patient = patient_info(folder, info)
    study.source = str(folder)
    study.description = f"ACDC {folder.name} ({info.get('Group', '?')})"
    study.__post_init__()
    return study


def list_patients(root: str | Path) -> list[Path]:
    """Patient folders under an ACDC root (``.../acdc`` or ``.../acdc/training``), sorted by name."""
    root = Path(root)
    if (root / "training").is_dir():
        root = root / "training"
    patients = sorted(p for p in root.iterdir() if is_patient_folder(p)) if root.is_dir() else []
    if not patients:
        raise CMRSegError(f"No ACDC patient folders (with Info.cfg) under {root}.")
    return patients


def patient_folder(root: str | Path, patient: str) -> Path:
    """The folder of ``patient`` under an ACDC root (``.../acdc`` or ``.../acdc/training``)."""
    root = Path(root)
    for folder in (root / "training" / patient, root / patient):
        if is_patient_folder(folder):
            return folder
    raise CMRSegError(f"Patient {patient} not found under {root} (looked for Info.cfg in {root}/training/{patient}).")
