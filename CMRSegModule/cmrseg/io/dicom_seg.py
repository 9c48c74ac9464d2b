"""DICOM Segmentation objects (SEG) of a frame's label map, referencing the cine's own DICOM images, so a
PACS or viewer shows the segmentation over the images it came from (written with highdicom).

One SEG per phase: a labelled (binary) segmentation with the segments RV blood pool, LV myocardium and LV
blood pool (segment numbers 1, 2, 3 = the ACDC labels), their SNOMED CT codes and colours, and the algorithm
(automatic, or semi-automatic once a physician corrected it). Only a study read from DICOM can have one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmrseg import __version__, labels
from cmrseg.errors import CMRSegError
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


def write_dicom_seg(labelmap: np.ndarray, study: Study, frame: int, path: str | Path, algorithm: str,
                    corrected: bool = False, series_number: int = 900) -> Path:  # fmt: skip
    """Write the ``[z, y, x]`` label map of ``frame`` as a DICOM SEG referencing that frame's DICOM files.

    Raises:
        CMRSegError: the study was not read from DICOM, or the label map does not fit the frame.
    """
    import highdicom as hd
    import pydicom

    if study.slice_files is None:
        raise CMRSegError("A DICOM SEG needs a study read from DICOM files (it references the source images).")
    if labelmap.shape != study.image.shape[1:]:
        raise CMRSegError(f"The label map {labelmap.shape} does not fit the frame {study.image.shape[1:]}.")
    sources = [pydicom.dcmread(Path(study.source) / name) for name in study.slice_files[frame]]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.ascontiguousarray(labelmap.astype(np.uint8)),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(algorithm, corrected),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="CMRSeg dense U-Net",
        software_versions=__version__,
        device_serial_number="0",
        content_label="CMRSEG",
        content_description="CMRSeg LV, RV and myocardium" + (" (corrected)" if corrected else ""),
    )
    path = Path(path)
    seg.save_as(path)
    return path
