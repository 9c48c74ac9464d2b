"""Scanning a DICOM folder: every file's header (no pixel data), grouped into series and slice positions.

Used by :mod:`cmrseg.io.dicom_cine`, which chooses the cine series and reads it. Slices are told apart by
``ImagePositionPatient`` projected on the slice normal, phases by ``TriggerTime`` (see that module).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom import config as dicom_config
from pydicom.errors import InvalidDicomError

from cmrseg.errors import CMRSegError
from cmrseg.progress import ProgressCallback, report

logger = logging.getLogger(__name__)

POSITION_TOLERANCE_MM = 0.05  # instances closer than this along the normal share a slice position
TRIGGER_TOLERANCE_MS = 0.5  # two instances of one position closer in time than this are duplicates
GEOMETRY_TOLERANCE = 1e-4  # on direction cosines and (relatively) on pixel spacing
SPACING_TOLERANCE = 0.01  # relative deviation of a slice gap from the median gap that is accepted ...
SPACING_TOLERANCE_MM = 0.05  # ... or this absolute deviation, whichever is larger
MAX_NAMES = 5  # file names quoted in one message


class DicomReadWarning(UserWarning):
    """Something in the DICOM folder was skipped or guessed; the cine was read all the same."""


@dataclass(frozen=True)
class InstanceHeader:
    """What the reader needs from one DICOM file's header (read without pixel data)."""

    path: Path
    series_uid: str
    series_number: int | None = None
    study_uid: str = ""
    series_description: str = ""
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    pixel_spacing: tuple[float, float] | None = None  # (row spacing, column spacing) as in DICOM
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient: row cosine, column cosine
    position: tuple[float, float, float] | None = None  # ImagePositionPatient
    trigger_time: float | None = None
    number_of_frames: int = 1
    modality: str = ""
    transfer_syntax: str = ""
    sop_instance_uid: str = ""
    frame_index: int | None = None  # a frame of an enhanced multi-frame file (:mod:`cmrseg.io.dicom_enhanced`)
    rescale: tuple[float | None, float | None] | None = None  # that frame's RescaleSlope and RescaleIntercept

    @property
    def has_geometry(self) -> bool:
        return None not in (self.rows, self.columns, self.pixel_spacing, self.orientation, self.position)


@dataclass
class SeriesSummary:
    """One series of a scanned folder: its instances and how many slice positions and phases they form."""

    series_uid: str
    series_number: int | None
    description: str
    instances: list[InstanceHeader]
    num_positions: int  # distinct slice positions along the normal (0 without image geometry)
    num_phases: int  # most distinct trigger times (or instances) found at one position
    parts: tuple[SeriesSummary, ...] = ()  # the series of a stack joined from several (cmrseg.io.dicom_series)

    @property
    def num_instances(self) -> int:
        return len(self.instances)

    def describe(self) -> str:
        size = f"{self.num_instances} instances, {self.num_positions} slice positions x {self.num_phases} phases"
        if self.parts:
            numbers = ", ".join(str(p.series_number) if p.series_number is not None else "?" for p in self.parts)
            return f'{len(self.parts)} series ({numbers}) "{self.description}" joined as one stack ({size})'
        number = f"series {self.series_number}" if self.series_number is not None else "series"
        return f'{number} "{self.description}" ({size}; SeriesInstanceUID {self.series_uid})'


@dataclass
class _Scan:
    headers: list[InstanceHeader]
    non_dicom: list[Path]
    unreadable: list[Path]  # DICOM files whose header could not be read or that hold no image series

    def skipped_note(self) -> str:
        if not self.unreadable:
            return ""
        return f" Files that could not be read: {_names(self.unreadable)}."


# --------------------------------------------------------------------------------------------- scanning


def scan_dicom_folder(folder: str | Path, progress: ProgressCallback | None = None) -> list[SeriesSummary]:
    """The image series under ``folder`` (searched recursively), from the file headers only.

    Non-DICOM files and unreadable DICOM files are skipped with a :class:`DicomReadWarning` naming them.
    Series come sorted by series number, then UID.
    """
    scan = _scan_folder(Path(folder), progress)
    return _group_series(scan.headers)


def files_under(folder: Path) -> list[Path]:
    """Every file under ``folder``, sorted, through linked folders too (a study assembled from links, an archive
    that links its series), each file once (by its device and inode: a file linked twice, a folder linked
    twice or a link loop adds nothing twice). A link to a folder that holds ``folder`` itself (``..``, ``/``)
    is not followed: it would bring in the studies beside this one."""
    start = os.path.realpath(folder)
    files, seen_folders, seen_files = [], set(), set()
    for root, subfolders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_folders:
            subfolders[:] = []
            continue
        seen_folders.add(real)
        subfolders[:] = sorted(name for name in subfolders if not _holds(os.path.realpath(Path(root, name)), start))
        for name in sorted(names):
            path = Path(root, name)
            try:
                status = path.stat()
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):  # a dangling link: nothing to read
                    continue
                raise
            if stat.S_ISREG(status.st_mode) and (status.st_dev, status.st_ino) not in seen_files:
                seen_files.add((status.st_dev, status.st_ino))
                files.append(path)
    return sorted(files)


def _holds(outer: str, inner: str) -> bool:
    """Whether the real folder ``outer`` is ``inner`` or one of the folders above it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _scan_folder(folder: Path, progress: ProgressCallback | None) -> _Scan:
    if not folder.is_dir():
        raise CMRSegError(f"{folder} is not a folder; choose the folder that holds the cine DICOM files.")
    files = files_under(folder)
    scan = _Scan([], [], [])
    for done, path in enumerate(files, start=1):
        try:
            headers = _read_headers(path)
        except InvalidDicomError:
            scan.non_dicom.append(path)
        except Exception as exc:  # noqa: BLE001 - any failure of a corrupt file is reported by name
            logger.debug("Cannot read %s: %s", path, exc)
            scan.unreadable.append(path)
        else:
            if not headers:
                if path.name.upper() != "DICOMDIR":
                    scan.unreadable.append(path)
            else:
                scan.headers += headers
        report(progress, done, len(files), "Reading DICOM headers")
    if scan.non_dicom:
        warnings.warn(
            f"Skipped {len(scan.non_dicom)} file(s) in {folder} that are not DICOM: {_names(scan.non_dicom)}.",
            DicomReadWarning,
            stacklevel=3,
        )
    if scan.unreadable:
        warnings.warn(
            f"Skipped {len(scan.unreadable)} DICOM file(s) in {folder} that are unreadable, truncated or hold "
            f"no image series (a segmentation, say): {_names(scan.unreadable)}.",
            DicomReadWarning,
            stacklevel=3,
        )
    return scan


def _read_headers(path: Path) -> list[InstanceHeader]:
    """The header of one file (one per frame of an enhanced multi-frame image); none for DICOM that is not
    part of an image series."""
    from cmrseg.io.dicom_enhanced import frame_headers, has_frame_groups

    with dicom_config.disable_value_validation():
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=False)
        series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not series_uid or "Rows" not in ds or _is_segmentation(ds):
            return []
        common = dict(
            series_uid=series_uid,
            series_number=_int(ds.get("SeriesNumber")),
            study_uid=str(ds.get("StudyInstanceUID", "") or ""),
            series_description=str(ds.get("SeriesDescription", "") or ""),
            rows=_int(ds.get("Rows")),
            columns=_int(ds.get("Columns")),
            number_of_frames=_int(ds.get("NumberOfFrames")) or 1,
            modality=str(ds.get("Modality", "") or "").strip().upper(),
            sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
            transfer_syntax=str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or ""),
        )
        if has_frame_groups(ds):
            return frame_headers(ds, path, common)
        return [InstanceHeader(
            path=path,
            instance_number=_int(ds.get("InstanceNumber")),
            pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
            orientation=_floats(ds.get("ImageOrientationPatient"), 6),
            position=_floats(ds.get("ImagePositionPatient"), 3),
            trigger_time=_float(ds.get("TriggerTime")),
            **common,
        )]  # fmt: skip


SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def _is_segmentation(ds: pydicom.Dataset) -> bool:
    """A DICOM SEG (CMRSeg's own, beside the cine it segments, say): frames of masks, not of images."""
    modality = str(ds.get("Modality", "")).strip().upper()
    return modality == "SEG" or str(ds.get("SOPClassUID", "")) == SEGMENTATION_STORAGE


def _group_series(headers: list[InstanceHeader]) -> list[SeriesSummary]:
    by_uid: dict[str, list[InstanceHeader]] = {}
    for header in headers:
        by_uid.setdefault(header.series_uid, []).append(header)
    summaries = [summarise(instances) for instances in by_uid.values()]
    return sorted(summaries, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid))


def summarise(instances: list[InstanceHeader], parts: tuple[SeriesSummary, ...] = ()) -> SeriesSummary:
    """The summary of one series' instances, or of a stack joined from the series ``parts``."""
    first = instances[0]
    clusters = _position_clusters(instances)
    by_time = times_tell_phases(clusters)
    phases = [len({_phase_key(h, by_time) for h in members}) for members in clusters]
    return SeriesSummary(
        series_uid=first.series_uid,
        series_number=first.series_number,
        description=first.series_description,
        instances=instances,
        num_positions=len(clusters),
        num_phases=max(phases, default=0),
        parts=parts,
    )


def times_tell_phases(clusters: list[list[InstanceHeader]]) -> bool:
    """Whether TriggerTime tells the phases of each slice position apart: every instance has one, and they are
    not all zero where positions hold several instances (some exports and anonymisers zero them). Several
    images at one position sharing another time (magnitude and phase images, echoes) are not phases: they
    are refused as duplicates."""
    if any(h.trigger_time is None for members in clusters for h in members):
        return False
    several = [h for members in clusters if len(members) > 1 for h in members]
    return not several or any(abs(h.trigger_time) >= TRIGGER_TOLERANCE_MS for h in several)


def _phase_key(header: InstanceHeader, by_time: bool) -> float | int:
    if by_time:
        return round(header.trigger_time / TRIGGER_TOLERANCE_MS)
    return header.instance_number if header.instance_number is not None else id(header)


def uneven_gaps(positions: list[float]) -> list[int]:
    """The gaps (index i: between positions i and i + 1, ascending) that differ from the usual one by more than
    the tolerance: a slice missing there, or one that is not part of the stack."""
    gaps = np.diff(positions)
    if not len(gaps):
        return []
    usual = float(np.median(gaps))
    allowed = max(SPACING_TOLERANCE * usual, SPACING_TOLERANCE_MM)
    return [i for i, gap in enumerate(gaps) if abs(gap - usual) > allowed]


def _slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, col)
    norm = np.linalg.norm(normal)
    return normal / norm if norm > 0 else normal


def _position_clusters(instances: list[InstanceHeader]) -> list[list[InstanceHeader]]:
    """Instances with image geometry grouped by slice position, sorted ascending along the normal of the first."""
    located = [h for h in instances if h.has_geometry]
    if not located:
        return []
    normal = _slice_normal(located[0].orientation)
    order = sorted(located, key=lambda h: float(np.dot(normal, h.position)))
    clusters: list[list[InstanceHeader]] = [[order[0]]]
    last = float(np.dot(normal, order[0].position))
    for header in order[1:]:
        projection = float(np.dot(normal, header.position))
        if projection - last > POSITION_TOLERANCE_MM:
            clusters.append([])
        clusters[-1].append(header)
        last = projection
    return clusters


# ---------------------------------------------------------------------------------------- helpers


def _names(paths: list[Path] | list[InstanceHeader]) -> str:
    names = [p.path.name if isinstance(p, InstanceHeader) else Path(p).name for p in paths]
    more = f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    return ", ".join(names[:MAX_NAMES]) + more


def _number(value: object) -> float | None:
    """A header number as written (NaN and Inf too, for checks that refuse them by name), or None."""
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    """A header number, or None when it is missing or not a finite number (a NaN or Inf is no value)."""
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None


def _int(value: object) -> int | None:
    number = _float(value)
    return int(number) if number is not None else None


def _floats(value: object, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count and all(map(math.isfinite, numbers)) else None
