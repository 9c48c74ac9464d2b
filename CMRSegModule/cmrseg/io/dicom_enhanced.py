"""Enhanced (multi-frame) MR DICOM: one file holding a whole cine, its frames described by functional groups.

Newer scanners (Philips, Siemens XA) store a cine as one Enhanced MR Image Storage file: every frame's slice
position, orientation, pixel spacing, cardiac trigger delay and rescale are in its per-frame functional group,
or in the shared one when all frames have the same. Each frame becomes one :class:`InstanceHeader`, with its
index in the file, and the reader then treats the frames exactly as one-image files.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from cmrseg.io.dicom_scan import InstanceHeader, _float, _floats, _int, _number

GROUPS_READ = ("PixelMeasuresSequence", "PlaneOrientationSequence", "PlanePositionSequence",
               "CardiacSynchronizationSequence", "PixelValueTransformationSequence")


def has_frame_groups(ds: pydicom.Dataset) -> bool:
    """Whether ``ds`` describes its frames with per-frame functional groups (an enhanced image): several
    frames, or one whose position is in the groups only (some scanners export an enhanced cine one frame per
    file). A one-image file with its own position is read as one, whatever groups it carries besides (the
    shared Sunnybrook images carry a stray per-frame group)."""
    if "PerFrameFunctionalGroupsSequence" not in ds:
        return False
    return (_int(ds.get("NumberOfFrames")) or 1) > 1 or "ImagePositionPatient" not in ds


def frame_headers(ds: pydicom.Dataset, path: Path, common: dict) -> list[InstanceHeader]:
    """One header per frame of an enhanced multi-frame image; ``common`` holds the file-level fields
    (series, rows, columns, modality, ...) that every frame shares."""
    headers = []
    # a frame's number is its place in the file; a one-frame file's, the file's own InstanceNumber
    several, own_number = len(ds.PerFrameFunctionalGroupsSequence) > 1, _int(ds.get("InstanceNumber"))
    for index in range(len(ds.PerFrameFunctionalGroupsSequence)):
        measures, plane, position, cardiac, rescale = (frame_group(ds, index, name) for name in GROUPS_READ)
        headers.append(InstanceHeader(
            path=path,
            instance_number=index + 1 if several else own_number,  # orders phases without trigger times
            pixel_spacing=_floats(_get(measures, "PixelSpacing"), 2),
            orientation=_floats(_get(plane, "ImageOrientationPatient"), 6),
            position=_floats(_get(position, "ImagePositionPatient"), 3),
            trigger_time=_float(_get(cardiac, "NominalCardiacTriggerDelayTime")),
            rescale=(_number(_get(rescale, "RescaleSlope")), _number(_get(rescale, "RescaleIntercept"))),
            frame_index=index,
            **common,
        ))  # fmt: skip
    return headers


def frame_group(ds: pydicom.Dataset, index: int, name: str):
    """The item of functional group ``name`` for frame ``index`` of an enhanced image: the frame's own, else the
    shared one (None when neither has it)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    own = _first(per_frame[index].get(name)) if index < len(per_frame) else None
    shared = _first(ds.get("SharedFunctionalGroupsSequence"))
    return own or _first(shared.get(name) if shared is not None else None)


def _first(sequence):
    return sequence[0] if sequence else None


def _get(item, keyword: str):
    return item.get(keyword) if item is not None else None
