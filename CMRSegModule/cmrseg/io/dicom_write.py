"""Write a :class:`Study` as a classic multi-file DICOM MR cine series (one 2D image per slice and phase).

The series reads back with :func:`cmrseg.io.dicom_cine.read_dicom_cine` (and any DICOM viewer) with the
same geometry: ``ImageOrientationPatient`` holds direction columns 0 (along a row, ``x``) and 1 (down a
column, ``y``), ``ImagePositionPatient`` of slice ``z`` is ``origin + direction[:, 2] * z * spacing_z``,
``PixelSpacing`` is ``[row spacing (y), column spacing (x)]``. The direction must be right-handed
(column 2 = column 0 x column 1), as a DICOM reader derives the slice normal that way.

Pixels are stored as unsigned 16-bit with one ``RescaleSlope`` / ``RescaleIntercept`` for the whole
series, chosen so that the stored range spans the image: the float image comes back within half a
quantisation step (``slope / 2``, about 1e-5 of the image range). An image of integers in ``0..65535``
is stored exactly with slope 1 and intercept 0.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from cmrseg import __version__
from cmrseg.errors import CMRSegError
from cmrseg.io.study import Study
from cmrseg.progress import ProgressCallback, report

MAX_STORED = 65535


def write_dicom_cine(
    study: Study,
    folder: str | Path,
    series_description: str = "CMRSeg cine SAX",
    patient_name: str = "CMRSeg^Phantom",
    overwrite: bool = False,
    slice_thickness_mm: float | None = None,
    series_number: int = 1,
    progress: ProgressCallback | None = None,
) -> list[Path]:
    """Write ``study`` into ``folder`` as one MR Image Storage file per slice and phase.

    Args:
        study: image ``[t, z, y, x]``, geometry, frame times (``TriggerTime``) and patient data.
        folder: created if missing; it must be empty unless ``overwrite`` (then files of the same names
            are replaced and other files are left alone).
        series_description, patient_name, series_number: written as such; ``PatientID`` comes from
            ``study.patient.patient_id`` (or ``"CMRSEG"``).
        slice_thickness_mm: ``SliceThickness``; by default the slice spacing.
        progress: called as ``progress(done, total, what)`` after each file.

    Returns:
        The written files, ``IM_z{slice}_t{phase}.dcm``, in the order slice-major then phase
        (``InstanceNumber`` 1, 2, ...).

    Raises:
        CMRSegError: ``folder`` is a file or a non-empty folder without ``overwrite``, the direction is
            not right-handed, or the image is not finite.
    """
    folder = Path(folder)
    _check_folder(folder, overwrite)
    direction = np.asarray(study.direction, dtype=float)
    if np.dot(np.cross(direction[:, 0], direction[:, 1]), direction[:, 2]) <= 0:
        raise CMRSegError(
            "The study's direction is left-handed (slice axis opposite to row x column); DICOM readers would "
            "reverse the slice order. Flip the slice axis of the study before writing DICOM."
        )
    if not np.all(np.isfinite(study.image)):
        raise CMRSegError("The study image holds NaN or infinite values, which DICOM pixels cannot store.")
    slope, intercept = rescale_for(study.image)
    stored = quantise(study.image, slope, intercept)
    template = _series_dataset(study, series_description, patient_name, series_number, slope, intercept)
    template.SliceThickness = _ds(slice_thickness_mm or study.spacing[2])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    frames, slices = study.num_frames, study.num_slices
    for z in range(slices):
        position = np.asarray(study.origin) + direction[:, 2] * z * study.spacing[2]
        for t in range(frames):
            ds = _instance(template, stored[t, z], position, z * frames + t + 1, float(study.frame_times_ms[t]))
            ds.TemporalPositionIdentifier = t + 1
            path = folder / f"IM_z{z:03d}_t{t:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
            report(progress, len(paths), frames * slices, "Writing DICOM")
    return paths


def rescale_for(image: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` whose stored range ``0..65535`` covers the image, both exact as DICOM DS.

    An image of integers within ``0..65535`` gets ``(1, 0)`` (stored exactly).
    """
    low, high = float(np.min(image)), float(np.max(image))
    if low >= 0 and high <= MAX_STORED and np.array_equal(image, np.round(image)):
        return 1.0, 0.0
    if high == low:
        return 1.0, float(_ds(low))
    intercept = 0.0 if low >= 0 else _decimal_below(low)
    slope = float(f"{(high - intercept) / MAX_STORED:.5e}")
    while intercept + slope * MAX_STORED < high:  # rounding went down: one step up suffices
        slope = float(f"{slope * (1 + 1e-5):.5e}")
    return slope, intercept


def _decimal_below(value: float) -> float:
    """A 7-significant-digit decimal (exact in a DS string) that is ``<= value``."""
    decimal = float(f"{value:.6e}")
    return decimal if decimal <= value else float(f"{value - abs(value) * 1e-6:.6e}")


def quantise(image: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Stored uint16 values whose ``stored * slope + intercept`` is nearest to ``image``."""
    values = np.round((np.asarray(image, dtype=np.float64) - intercept) / slope)
    return np.clip(values, 0, MAX_STORED).astype(np.uint16)


def _check_folder(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise CMRSegError(f"{folder} is a file; choose a folder for the DICOM series.")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise CMRSegError(
            f"{folder} is not empty; choose an empty or new folder for the DICOM series, or allow overwriting."
        )


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM DS)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8e}"


def _age(years: float | None) -> str | None:
    return None if years is None else f"{min(int(years), 999):03d}Y"


def _series_dataset(
    study: Study, description: str, patient_name: str, series_number: int, slope: float, intercept: float
) -> Dataset:
    """The attributes shared by every instance of the series."""
    now = datetime.datetime.now()
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.Modality = "MR"
    ds.Manufacturer = "CMRSeg"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Cardiac MRI"
    ds.SeriesDescription = description
    ds.ManufacturerModelName = f"cmrseg {__version__}"
    patient = study.patient
    ds.PatientName = patient_name
    ds.PatientID = patient.patient_id or "CMRSEG"
    ds.PatientBirthDate = ""
    ds.PatientSex = patient.sex or ""
    for keyword, value in (
        ("PatientAge", _age(patient.age_years)),
        ("PatientSize", None if patient.height_cm is None else _ds(patient.height_cm / 100.0)),
        ("PatientWeight", None if patient.weight_kg is None else _ds(patient.weight_kg)),
    ):
        if value is not None:
            setattr(ds, keyword, value)
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SS"
    ds.ScanOptions = "CG"
    ds.MRAcquisitionType = "2D"
    # Type 2 (present, empty when unknown): nothing here was acquired, so no sequence timing is claimed.
    ds.RepetitionTime = ds.EchoTime = ds.EchoTrainLength = None
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "HEART"  # unpaired: no Laterality
    ds.SpacingBetweenSlices = _ds(study.spacing[2])
    times = study.frame_times_ms
    if study.num_frames > 1:
        ds.NominalInterval = round(float(times[-1] + np.median(np.diff(times))))  # IS: whole ms
    ds.CardiacNumberOfImages = study.num_frames
    ds.NumberOfTemporalPositions = study.num_frames
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.PositionReferenceIndicator = ""
    direction = np.asarray(study.direction, dtype=float)
    ds.ImageOrientationPatient = [_ds(v) for v in (*direction[:, 0], *direction[:, 1])]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = study.matrix
    ds.PixelSpacing = [_ds(study.spacing[1]), _ds(study.spacing[0])]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleSlope = _ds(slope)
    ds.RescaleType = "US"
    low, high = float(np.min(study.image)), float(np.max(study.image))
    ds.WindowCenter = _ds((low + high) / 2)
    ds.WindowWidth = _ds(max(high - low, 1e-6))
    return ds


def _instance(template: Dataset, pixels: np.ndarray, position: np.ndarray, number: int, time_ms: float) -> Dataset:
    """One file's dataset: the series attributes plus this slice's position and this phase's time."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"CMRSEG_{__version__}"[:16]
    ds = FileDataset(None, Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.update(copy.deepcopy(template))
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [_ds(v) for v in position]
    normal = np.cross(*np.reshape(np.asarray(template.ImageOrientationPatient, dtype=float), (2, 3)))
    ds.SliceLocation = _ds(float(np.dot(position, normal)))
    ds.TriggerTime = _ds(time_ms)
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    return ds
