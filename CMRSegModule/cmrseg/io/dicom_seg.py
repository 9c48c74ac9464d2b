"""DICOM Segmentation objects (SEG) of a frame's label map, referencing the cine's own DICOM images (one-image
files, or the frames of one enhanced multi-frame file), so a PACS or viewer shows the segmentation over the
images it came from (written with highdicom).

One SEG per phase: a labelled (binary) segmentation with the segments RV blood pool, LV myocardium and LV
blood pool (segment numbers 1, 2, 3 = the ACDC labels), their SNOMED CT codes and colours, and the algorithm
(automatic, or semi-automatic once a physician corrected it). Only a study read from DICOM can have one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from pydicom import config as dicom_config

from cmrseg import __version__, labels
from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_enhanced import frame_group
from cmrseg.io.dicom_seg_frames import check_enhanced_header, check_phase_sources, phase_view, refer_to_file_frames
from cmrseg.io.study import Study

MANUFACTURER = "CMRSeg"


def segment_descriptions(algorithm: str, corrected: bool) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    identification = hd.AlgorithmIdentificationSequence(
        name="CMRSeg dense U-Net", version=__version__, family=codes.cid7162.ArtificialIntelligence, source=algorithm
    )
    kind = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC if corrected else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    heart = codes.SCT.Heart
    return [
        hd.seg.SegmentDescription(
            segment_number=structure.label,
            segment_label=structure.name,
            segmented_property_category=Code(structure.category[0], "SCT", structure.category[1]),
            segmented_property_type=Code(structure.type[0], "SCT", structure.type[1]),
            algorithm_type=kind,
            algorithm_identification=identification,
            anatomic_regions=[heart],
            display_color=hd.color.CIELabColor(*_lab(structure.color)),
        )
        for structure in labels.STRUCTURES
    ]


def _lab(rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB colour in [0, 1], as DICOM's RecommendedDisplayCIELabValue wants."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    matrix = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = matrix @ np.array(linear) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return float(116 * f[1] - 16), float(500 * (f[0] - f[1])), float(200 * (f[1] - f[2]))


DATE_AND_TIME = {"PatientBirthDate": "DA", "StudyDate": "DA", "StudyTime": "TM"}  # what highdicom copies and parses
# Type 2 attributes of the Patient and General Study modules that highdicom copies from the sources.
COPIED_TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
                 "AccessionNumber", "ReferringPhysicianName")


def _as_source(dataset):
    """The source dataset as a SEG or SR can copy it: dates and times that do not parse blanked (anonymised
    studies often carry "00000000" as a birth date) and missing patient and study attributes added empty
    (they are type 2: empty means unknown); everything else as it is."""
    from pydicom.valuerep import DA, TM

    for keyword in COPIED_TYPE_2:
        if keyword not in dataset:
            setattr(dataset, keyword, "")
    for keyword, vr in DATE_AND_TIME.items():
        value = dataset.get(keyword)
        if value in (None, ""):
            continue
        try:
            (DA if vr == "DA" else TM)(str(value))
        except ValueError:
            setattr(dataset, keyword, "")
    return dataset


SAME_FOR_SR = ("StudyInstanceUID", "FrameOfReferenceUID")  # an SR may reference images of several series
SEG_BEYOND_SR = ("SeriesInstanceUID", "Rows", "Columns")  # a SEG, those of one series
SAME_FOR_SEG = (*SAME_FOR_SR, *SEG_BEYOND_SR)


def check_seg_sources(folder: str | Path, files: list[str], shared: tuple[str, ...] = SAME_FOR_SEG) -> None:
    """Refuse images that cannot be the sources of one DICOM SEG (or, with ``shared`` :data:`SAME_FOR_SR`,
    of one SR); reads headers only.

    Raises:
        CMRSegError: the files disagree on the study or frame of reference (one study; broken anonymisation
            often splits one), or, for a SEG, on the series or matrix (a stack joined from several series).
    """
    import pydicom

    values: dict[str, set] = {keyword: set() for keyword in shared}
    with dicom_config.disable_value_validation():
        for name in sorted(set(files)):
            header = pydicom.dcmread(Path(folder) / name, stop_before_pixels=True)
            for keyword in shared:
                values[keyword].add(str(header.get(keyword, "")))
    mixed = {keyword: found for keyword, found in values.items() if len(found) > 1}
    if not mixed:
        return
    counts = ", ".join(f"{len(found)} {keyword} values" for keyword, found in mixed.items())
    if set(mixed) <= set(SEG_BEYOND_SR):
        raise CMRSegError(
            f"The images of {folder} carry {counts}: the stack was joined from several series, and a DICOM SEG "
            "references the images of one series. No SEG can be written (the SR can)."
        )
    raise CMRSegError(
        f"The images of {folder} carry {counts}; the sources of a DICOM SEG or SR must share one study and "
        "frame of reference (an anonymisation may have split them). No SEG or SR can be written."
    )


def check_study_for_sr(study: Study) -> None:
    """Refuse a study that cannot have a DICOM SR (reads headers only): not read from DICOM, or its images
    split (see above). A SEG asks more (:func:`check_study_for_seg`)."""
    check_seg_sources(study.source, _source_files(study), SAME_FOR_SR)


def check_study_for_seg(study: Study) -> None:
    """Refuse a study that cannot have DICOM SEGs (reads headers only): what refuses an SR
    (:func:`check_study_for_sr`) and what a SEG asks beyond it (:func:`check_seg_beyond_sr`), each header
    read once."""
    check_seg_sources(study.source, _source_files(study), SAME_FOR_SEG)
    _check_seg_frames(study)


def check_seg_beyond_sr(study: Study) -> None:
    """Refuse, in a study that can have an SR, what a SEG cannot have: sources from several series, phases
    whose sources no SEG can reference (:func:`check_phase_sources`), enhanced frames without a shared geometry
    (:func:`check_enhanced_header`), or sources without a slice thickness."""
    check_seg_sources(study.source, _source_files(study), SEG_BEYOND_SR)
    _check_seg_frames(study)


def _source_files(study: Study) -> list[str]:
    if study.slice_files is None:
        raise CMRSegError("A DICOM SEG or SR needs a study read from DICOM files (it references the source images).")
    return [name for frame in study.slice_files for name in frame]


def _check_seg_frames(study: Study) -> None:
    """The part of :func:`check_seg_beyond_sr` that is about the sources' frames and thickness."""
    frames_of = study.slice_frames or [None] * len(study.slice_files)
    for files, frames in zip(study.slice_files, frames_of, strict=True):
        check_phase_sources(files, frames)
    import pydicom

    first = study.slice_files[0][0]
    enhanced: dict[str, list[int]] = {}  # each enhanced file with the frames the study takes from it
    for files, frames in zip(study.slice_files, frames_of, strict=True):
        if frames is not None:
            enhanced.setdefault(files[0], []).extend(frames)
    with dicom_config.disable_value_validation():
        headers = {name: pydicom.dcmread(Path(study.source) / name, stop_before_pixels=True)
                   for name in {first, *enhanced}}  # each file read once  # fmt: skip
    refuse_without_thickness({first: headers[first]})
    for name, frames in enhanced.items():
        check_enhanced_header(headers[name], frames)


def slice_thickness(header) -> float | None:
    """The slice thickness a header states: its own, else (enhanced images) that of the first frame's pixel
    measures functional group."""
    if header.get("SliceThickness"):
        return float(header.SliceThickness)
    measures = frame_group(header, 0, "PixelMeasuresSequence")
    return float(measures.SliceThickness) if measures is not None and measures.get("SliceThickness") else None


def refuse_without_thickness(headers: dict) -> None:
    """A SEG states its sources' slice thickness (pixel measures): refuse sources that do not give one."""
    missing = [name for name, header in headers.items() if slice_thickness(header) is None]
    if missing:
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise CMRSegError(f"{named}: no SliceThickness, which a DICOM SEG must state for its slices; no SEG can be "
                          "written from these images.")


def write_dicom_seg(labelmap: np.ndarray, folder: str | Path, files: list[str], path: str | Path, algorithm: str,
                    corrected: bool = False, series_number: int = 900,
                    frames: list[int] | None = None, phase: str | None = None) -> Path:  # fmt: skip
    """Write a ``[z, y, x]`` label map as a DICOM SEG referencing ``files`` (one per slice z, below ``folder``);
    for an enhanced (multi-frame) source, ``frames`` gives each slice's 1-based frame number in that one file.
    ``phase`` (ED, ES) is named in the series and content descriptions, so that a PACS tells the two apart.

    Raises:
        CMRSegError: the images cannot be SEG sources (:func:`check_seg_sources`, :func:`check_phase_sources`,
            :func:`check_enhanced_header`), or the label map does not fit them.
    """
    import pydicom

    check_seg_sources(folder, files)
    check_phase_sources(files, frames)
    # The sources' own oddities (a one-part PatientName, a long description) are theirs, not the SEG's: quiet.
    with dicom_config.disable_value_validation(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if frames is None:
            sources = [_as_source(pydicom.dcmread(Path(folder) / name)) for name in files]
        else:
            enhanced = pydicom.dcmread(Path(folder) / files[0], stop_before_pixels=True)
            sources = [phase_view(_as_source(enhanced), frames)]
        refuse_without_thickness(dict(zip(dict.fromkeys(files), sources, strict=True)))  # each file once
        shape = (len(files), int(sources[0].Rows), int(sources[0].Columns))
        if labelmap.shape != shape:
            raise CMRSegError(f"The label map {labelmap.shape} does not fit its {shape[0]} source images {shape}.")
        try:
            seg = _segmentation(labelmap, sources, algorithm, corrected, series_number, phase)
        except (AttributeError, KeyError, ValueError) as exc:  # what highdicom finds wrong with the sources
            raise CMRSegError(f"No DICOM SEG can be built on the images of {folder}: {exc}") from exc
        if frames is not None:
            refer_to_file_frames(seg, frames)
    path = Path(path)
    seg.save_as(path)
    return path


def _segmentation(labelmap: np.ndarray, sources: list, algorithm: str, corrected: bool, series_number: int,
                  phase: str | None):
    import highdicom as hd

    at = f" at {phase}" if phase else ""
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.ascontiguousarray(labelmap.astype(np.uint8)),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(algorithm[:64], corrected),  # AlgorithmSource is a LO
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="CMRSeg dense U-Net",
        software_versions=__version__,
        device_serial_number="0",
        content_label="CMRSEG",
        content_description=f"CMRSeg LV, RV and myocardium{at}" + (" (corrected)" if corrected else ""),
    )
    seg.SeriesDescription = f"CMRSeg {'corrected' if corrected else 'automatic'} segmentation{at}"
    return seg
