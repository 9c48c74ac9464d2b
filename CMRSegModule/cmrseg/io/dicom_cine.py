"""Cine short-axis DICOM (one 2D image per file, or Enhanced MR multi-frame files: each frame is read as one
such image, :mod:`cmrseg.io.dicom_enhanced`) to :class:`Study`.

The folder is scanned recursively, headers only, and the instances are grouped by
``SeriesInstanceUID``. Within the chosen series, slices are told apart by ``ImagePositionPatient``
projected on the slice normal (``SliceLocation`` is never used: scanners fill it inconsistently) and
phases by ``TriggerTime``. The result follows the core convention (see :mod:`cmrseg`): image
``[t, z, y, x]`` with ``y`` the DICOM row index and ``x`` the column index; spacing
``(column spacing, row spacing, slice spacing)``; origin the ``ImagePositionPatient`` of the slice with
the lowest projection on the normal; direction columns the row cosine, the column cosine and the normal
``row x column`` (slices are sorted ascending along it).

Problems a user can cause raise :class:`CMRSegError`; files that are skipped, a missing ``TriggerTime``
and single-phase series are reported with :class:`DicomReadWarning`. The choice among several series
(:mod:`cmrseg.io.dicom_series`) is logged at INFO level on the ``cmrseg.io.dicom_cine`` logger.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom import config as dicom_config

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_codecs import decoder_advice
from cmrseg.io.dicom_pixels import read_pixels
from cmrseg.io.dicom_scan import (  # noqa: F401 (scan_dicom_folder: re-exported, part of this reader's API)
    GEOMETRY_TOLERANCE,
    TRIGGER_TOLERANCE_MS,
    DicomReadWarning,
    InstanceHeader,
    SeriesSummary,
    _float,
    _names,
    _position_clusters,
    _Scan,
    _scan_folder,
    _slice_normal,
    scan_dicom_folder,
    times_tell_phases,
    uneven_gaps,
)
from cmrseg.io.dicom_series import choose_series
from cmrseg.io.study import PatientInfo, Study
from cmrseg.progress import ProgressCallback, report
from cmrseg.validate import check_dimensions


@dataclass(frozen=True)
class InstanceRef:
    """Where one DICOM file of the chosen series went in the study image ``[t, z, y, x]``."""

    path: Path
    instance_number: int | None
    frame: int  # t
    slice: int  # z


# ---------------------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    grid: list[list[InstanceHeader]]  # [z][t]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    frame_times_ms: np.ndarray | None


def _check_same(series: SeriesSummary, what: str, values: list[np.ndarray], relative: bool) -> None:
    """All instances must share one value of ``what`` (within :data:`GEOMETRY_TOLERANCE`)."""
    reference = values[0]
    scale = np.maximum(np.abs(reference), 1.0) if relative else 1.0
    odd = [
        i
        for i, v in enumerate(values)
        if v.shape != reference.shape or np.max(np.abs((v - reference) / scale)) > GEOMETRY_TOLERANCE
    ]
    if odd:
        odd_set = set(odd)
        same = [h.path for i, h in enumerate(series.instances) if i not in odd_set]
        other = [series.instances[i].path for i in odd]
        raise CMRSegError(
            f"The instances of {series.describe()} do not share one {what}: "
            f"{np.round(reference, 6).tolist()} in {len(same)} files (e.g. {_names(same[:2])}) but "
            f"{np.round(values[odd[0]], 6).tolist()} in {len(other)} files (e.g. {_names(other[:2])}). "
            "A cine series needs one image geometry; remove the stray files or choose another series."
        )


def _check_geometry(series: SeriesSummary) -> None:
    missing = [h for h in series.instances if not h.has_geometry]
    if missing:
        raise CMRSegError(
            f"{len(missing)} instances of {series.describe()} lack the image geometry (Rows, Columns, "
            "PixelSpacing, ImageOrientationPatient, ImagePositionPatient: missing, or not finite numbers), "
            f"e.g. {_names(missing)}. "
            "Export the series again with complete headers."
        )
    multi = [h for h in series.instances if h.number_of_frames > 1 and h.frame_index is None]
    if multi:
        raise CMRSegError(
            f"{_names(multi)} are multi-frame DICOM without per-frame geometry (no per-frame functional groups), "
            "which CMRSeg does not read; export the cine as Enhanced MR or as one image per file."
        )
    other = sorted({h.modality for h in series.instances if h.modality not in ("MR", "")})
    if other:
        raise CMRSegError(
            f"{series.describe()} has Modality {', '.join(other)}; CMRSeg segments MR cine images only "
            "(the network was trained on MR). Choose the MR short-axis cine series."
        )
    instances = series.instances
    _check_same(series, "Rows x Columns", [np.array([h.rows, h.columns], float) for h in instances], False)
    _check_same(series, "PixelSpacing", [np.array(h.pixel_spacing) for h in instances], True)
    _check_same(series, "ImageOrientationPatient", [np.array(h.orientation) for h in instances], False)


def _order_phases(position_mm: float, members: list[InstanceHeader], by_time: bool) -> list[InstanceHeader]:
    key = (lambda h: h.trigger_time) if by_time else (lambda h: h.instance_number)
    ordered = sorted(members, key=key)
    for a, b in zip(ordered, ordered[1:], strict=False):
        same = abs(a.trigger_time - b.trigger_time) < TRIGGER_TOLERANCE_MS if by_time else key(a) == key(b)
        if same:
            what = f"trigger time {a.trigger_time:g} ms" if by_time else f"InstanceNumber {a.instance_number}"
            raise CMRSegError(
                f"{a.path.name} and {b.path.name} are duplicates: both lie at slice position {position_mm:.2f} mm "
                f"with {what} (files {a.path} and {b.path}). Remove one of them."
            )
    return ordered


def _check_phase_counts(grid: list[list[InstanceHeader]], positions: list[float], by_time: bool, note: str) -> None:
    counts = [len(members) for members in grid]
    expected = Counter(counts).most_common(1)[0][0]
    odd = [z for z, count in enumerate(counts) if count != expected]
    if not odd:
        return
    complete = [members for members in grid if len(members) == expected]
    problems = []
    for z in odd:
        members = grid[z]
        where = f"slice position {positions[z]:.2f} mm (slice {z + 1} of {len(grid)}, e.g. {members[0].path.name})"
        if by_time and len(members) < expected:
            reference = np.median([[h.trigger_time for h in m] for m in complete], axis=0)
            own = np.array([h.trigger_time for h in members])
            gap = np.median(np.diff(reference)) / 2 if expected > 1 else np.inf
            absent = [t for t in reference if np.min(np.abs(own - t)) > gap]
            problems.append(
                f"{where} has {len(members)} phases, not {expected}: missing trigger time(s) near "
                f"{', '.join(f'{t:.1f}' for t in absent)} ms"
            )
        else:
            problems.append(f"{where} has {len(members)} phases, not {expected}")
    raise CMRSegError(
        "Every slice position of a cine needs the same phases; "
        + "; ".join(problems)
        + ". Export the complete series (or remove the stray files)."
        + note
    )


def _check_spacing(positions: list[float], grid: list[list[InstanceHeader]], note: str) -> float:
    gaps = np.diff(positions)
    usual = float(np.median(gaps))
    bad = uneven_gaps(positions)
    if bad:
        details = []
        for i in bad:
            ratio = gaps[i] / usual
            missing = (
                f": about {round(ratio) - 1} slice(s) seem missing there"
                if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1
                else ""
            )
            details.append(
                f"{gaps[i]:.2f} mm between slice positions {positions[i]:.2f} mm ({grid[i][0].path.name}) and "
                f"{positions[i + 1]:.2f} mm ({grid[i + 1][0].path.name}){missing}"
            )
        raise CMRSegError(
            f"The slices are not evenly spaced (usually {usual:.2f} mm apart, but "
            + "; ".join(details)
            + "). CMRSeg needs a regular stack; export the complete short-axis series."
            + note
        )
    return (positions[-1] - positions[0]) / (len(positions) - 1)


def _layout(series: SeriesSummary, scan: _Scan) -> _Layout:
    _check_geometry(series)
    note = scan.skipped_note()
    clusters = _position_clusters(series.instances)
    first = series.instances[0]
    normal = _slice_normal(first.orientation)
    positions = [float(np.mean([np.dot(normal, h.position) for h in members])) for members in clusters]
    if len(clusters) < 2:
        raise CMRSegError(
            f"{series.describe()} has a single slice position; CMRSeg needs a stack of short-axis slices. "
            "Choose the short-axis cine series." + note
        )
    by_time = times_tell_phases(clusters)
    if not by_time:
        if any(h.instance_number is None for h in series.instances):
            raise CMRSegError(
                f"{series.describe()} lacks TriggerTime and InstanceNumber, so its phases cannot be ordered."
            )
        times = {h.trigger_time for h in series.instances}
        why = ("gives every phase of a slice TriggerTime 0" if None not in times
               else "has instances without TriggerTime")
        warnings.warn(
            f"{series.describe()} {why}; phases are ordered by InstanceNumber within each slice position and "
            "frame times are frame indices.",
            DicomReadWarning,
            stacklevel=4,
        )
    grid = [_order_phases(p, members, by_time) for p, members in zip(positions, clusters, strict=True)]
    _check_phase_counts(grid, positions, by_time, note)
    slice_spacing = _check_spacing(positions, grid, note)
    if len(grid[0]) == 1:
        warnings.warn(
            f"{series.describe()} has a single phase; it is read as one frame (t = 1).",
            DicomReadWarning,
            stacklevel=4,
        )
    origin = np.asarray(grid[0][0].position)
    row_spacing, col_spacing = first.pixel_spacing
    shifts = {}  # slice number -> in-plane shift (mm) from the first slice, where over half a pixel
    for z, members in enumerate(grid):
        offset = np.asarray(members[0].position) - origin
        shift = float(np.linalg.norm(offset - np.dot(offset, normal) * normal))
        if shift > 0.5 * min(row_spacing, col_spacing):
            shifts[z + 1] = shift
    if shifts:  # volumes are unaffected; the label maps place those slices as if they were not shifted
        warnings.warn(
            f"{len(shifts)} slice(s) are shifted in-plane from the first slice (slice {', '.join(map(str, shifts))}; "
            f"up to {max(shifts.values()):.2f} mm); the stack is read on the first slice's grid, so the label maps "
            "place those slices that far from where the images show them.",
            DicomReadWarning,
            stacklevel=4,
        )
    _check_unique_uids([h for members in grid for h in members])
    direction = np.column_stack([first.orientation[:3], first.orientation[3:], normal])
    times = np.median([[h.trigger_time for h in members] for members in grid], axis=0) if by_time else None
    return _Layout(grid, (col_spacing, row_spacing, slice_spacing), tuple(origin), direction, times)


def _check_unique_uids(headers: list[InstanceHeader]) -> None:
    """Refuse two files of one SOPInstanceUID (an anonymiser's or a copy's error): a SEG and an SR reference
    images by it, and would point at the wrong image. The frames of one enhanced file share the file's."""
    files: dict[str, Path] = {}
    for header in headers:
        if header.sop_instance_uid and files.setdefault(header.sop_instance_uid, header.path) != header.path:
            raise CMRSegError(
                f"{files[header.sop_instance_uid].name} and {header.path.name} are two images with one "
                f"SOPInstanceUID ({header.sop_instance_uid}; files {files[header.sop_instance_uid]} and "
                f"{header.path}): a segmentation would reference the wrong one. Export the series again."
            )


# ---------------------------------------------------------------------------------------- reading


def _age_years(value: object) -> float | None:
    text = str(value or "").strip().upper()
    if len(text) < 2 or not text[:-1].isdigit():
        return None
    per_year = {"Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}.get(text[-1])
    return float(int(text[:-1])) / per_year if per_year else None


def _age_from_dates(birth: object, study: object) -> float | None:
    """Whole years from PatientBirthDate to StudyDate (DICOM DA, YYYYMMDD); None when either is missing or
    not a real date (anonymisation writes dates such as 00000000)."""
    try:
        born, seen = (datetime.strptime(str(value or "").strip(), "%Y%m%d").date() for value in (birth, study))
    except ValueError:
        return None
    years = seen.year - born.year - ((seen.month, seen.day) < (born.month, born.day))
    return float(years) if years >= 0 else None


def _patient(ds: pydicom.Dataset) -> PatientInfo:
    with dicom_config.disable_value_validation():
        size_m = _float(ds.get("PatientSize"))
        weight = _float(ds.get("PatientWeight"))
        sex = str(ds.get("PatientSex", "") or "").strip().upper() or None
        patient_id = str(ds.get("PatientID", "") or "").strip() or None
        age = _age_years(ds.get("PatientAge"))
        if age is None:
            age = _age_from_dates(ds.get("PatientBirthDate"), ds.get("StudyDate") or ds.get("SeriesDate"))
    # PatientSize is in metres by the standard; some systems store centimetres (no adult is 3 m tall).
    height_cm = None if not size_m else size_m if size_m > 3.0 else size_m * 100.0
    return PatientInfo(
        height_cm=height_cm,
        weight_kg=weight or None,
        sex=sex,
        age_years=age,
        patient_id=patient_id,
    )


def read_dicom_cine_with_index(
    folder: str | Path, series_uid: str | None = None, progress: ProgressCallback | None = None
) -> tuple[Study, list[InstanceRef]]:
    """Read a cine short-axis series and say where each of its files went.

    Args:
        folder: searched recursively for DICOM files (one 2D image per file).
        series_uid: the ``SeriesInstanceUID`` to read; by default the multi-phase series with the most
            slice positions x phases is chosen (and the choice logged).
        progress: called as ``progress(done, total, what)`` while headers and then images are read.

    Returns:
        The :class:`Study` (image ``[t, z, y, x]`` float32 after RescaleSlope/Intercept, LPS geometry,
        median TriggerTime per phase in ms, patient data) and one :class:`InstanceRef` per file, sorted
        by ``(frame, slice)``.

    Raises:
        CMRSegError: no usable series, an unknown ``series_uid``, mixed geometry, missing or duplicated
            phases, unevenly spaced slices, or unreadable pixel data; the message names the files.
    """
    folder = Path(folder)
    scan = _scan_folder(folder, progress)
    series = choose_series(folder, scan, series_uid)
    layout = _layout(series, scan)
    num_slices, num_frames = len(layout.grid), len(layout.grid[0])
    rows, columns = series.instances[0].rows, series.instances[0].columns
    check_dimensions((num_frames, num_slices, rows, columns), str(folder))
    advice = decoder_advice(h.transfer_syntax for h in series.instances)
    if advice:
        raise CMRSegError(f"Cannot read the images of {folder}. {advice}")
    image = np.empty((num_frames, num_slices, rows, columns), dtype=np.float32)
    refs = []
    files = [[""] * num_slices for _ in range(num_frames)]
    file_frames = [[0] * num_slices for _ in range(num_frames)]
    first_ds = None
    total = num_slices * num_frames
    last: dict = {}
    for z, members in enumerate(layout.grid):
        for t, header in enumerate(members):
            image[t, z], ds = read_pixels(header, last)
            first_ds = first_ds if first_ds is not None else ds
            refs.append(InstanceRef(header.path, header.instance_number, t, z))
            files[t][z] = header.path.relative_to(folder).as_posix()
            file_frames[t][z] = header.frame_index + 1 if header.frame_index is not None else 0
            report(progress, z * num_frames + t + 1, total, "Reading DICOM images")
    study = Study(
        image=image,
        spacing=layout.spacing,
        origin=layout.origin,
        direction=layout.direction,
        frame_times_ms=layout.frame_times_ms,
        patient=_patient(first_ds),
        source=str(folder),
        description=series.description or (f"series {series.series_number}" if series.series_number else ""),
        slice_files=files,
        slice_frames=file_frames if any(h.frame_index is not None for h in series.instances) else None,
        series_uids=tuple(part.series_uid for part in series.parts) or (series.series_uid,),
    )
    return study, sorted(refs, key=lambda r: (r.frame, r.slice))


def read_dicom_cine(
    folder: str | Path, series_uid: str | None = None, progress: ProgressCallback | None = None
) -> Study:
    """The cine short-axis series of a DICOM folder as a :class:`Study` (see :func:`read_dicom_cine_with_index`)."""
    return read_dicom_cine_with_index(folder, series_uid, progress)[0]
