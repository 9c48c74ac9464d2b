"""Clinical parameters from label maps: volumes (ml), myocardial mass (g), EF (%), BSA indexing.

Volumes are voxel counts x voxel volume, with the slice spacing from the slice positions (the study's z
spacing, which the readers derive from positions, never from SliceThickness).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.io.study import PatientInfo
from cmrseg.labels import LV, MYO, RV

MYOCARDIAL_DENSITY_G_PER_ML = 1.05


@dataclass
class FrameMeasures:
    """Volumes of one frame and the per-slice areas (mm^2, index = slice z)."""

    lv_ml: float
    rv_ml: float
    myo_ml: float
    myo_mass_g: float
    lv_area_mm2: list[float]
    rv_area_mm2: list[float]
    myo_area_mm2: list[float]


def frame_measures(labels: np.ndarray, spacing: tuple[float, float, float]) -> FrameMeasures:
    """Measures of one ``[z, y, x]`` label map (ACDC labels) with ``(x, y, z)`` spacing in mm."""
    if labels.ndim != 3:
        raise CMRSegError(f"A frame label map must be [z, y, x]; got shape {labels.shape}.")
    pixel_mm2 = float(spacing[0] * spacing[1])
    voxel_ml = pixel_mm2 * float(spacing[2]) / 1000.0

    def areas(label: int) -> list[float]:
        return [float(a) * pixel_mm2 for a in (labels == label).sum(axis=(1, 2))]

    myo_ml = float((labels == MYO).sum()) * voxel_ml
    return FrameMeasures(
        lv_ml=float((labels == LV).sum()) * voxel_ml,
        rv_ml=float((labels == RV).sum()) * voxel_ml,
        myo_ml=myo_ml,
        myo_mass_g=myo_ml * MYOCARDIAL_DENSITY_G_PER_ML,
        lv_area_mm2=areas(LV),
        rv_area_mm2=areas(RV),
        myo_area_mm2=areas(MYO),
    )


def body_surface_area(height_cm: float, weight_kg: float, method: str = "mosteller") -> float:
    """BSA in m^2: Mosteller (default) or DuBois & DuBois."""
    if height_cm <= 0 or weight_kg <= 0:
        raise CMRSegError(f"Height ({height_cm} cm) and weight ({weight_kg} kg) must be positive for BSA.")
    if method == "mosteller":
        return math.sqrt(height_cm * weight_kg / 3600.0)
    if method == "dubois":
        return 0.007184 * weight_kg**0.425 * height_cm**0.725
    raise CMRSegError(f"Unknown BSA method {method!r}; use 'mosteller' or 'dubois'.")


@dataclass
class StudyMeasures:
    """Per-study clinical parameters (ml, g, %); ``*_index`` values are per m^2 BSA when known."""

    lv_edv_ml: float
    lv_esv_ml: float
    lv_sv_ml: float
    lv_ef_pct: float
    rv_edv_ml: float
    rv_esv_ml: float
    rv_sv_ml: float
    rv_ef_pct: float
    lv_mass_ed_g: float
    lv_mass_es_g: float
    bsa_m2: float | None = None
    bsa_method: str | None = None
    lv_edv_index: float | None = None
    lv_esv_index: float | None = None
    lv_sv_index: float | None = None
    rv_edv_index: float | None = None
    rv_esv_index: float | None = None
    rv_sv_index: float | None = None
    lv_mass_ed_index: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def stroke_volume(edv: float, esv: float) -> float:
    """EDV - ESV; undefined (NaN) when the ESV exceeds the EDV: no ventricle ejects a negative volume, so the
    number would only look like a measurement (the quality check fails such a study)."""
    return edv - esv if esv <= edv else float("nan")


def ejection_fraction(edv: float, esv: float) -> float:
    """100 SV / EDV; undefined (NaN) without a blood pool at ED or with a negative stroke volume."""
    return 100.0 * (edv - esv) / edv if 0 < edv and esv <= edv else float("nan")


def study_measures(
    ed: FrameMeasures, es: FrameMeasures, patient: PatientInfo | None = None, bsa_method: str = "mosteller"
) -> StudyMeasures:
    """LV/RV EDV, ESV, SV, EF and LV mass from the ED and ES frame measures, indexed when BSA is known."""
    result = StudyMeasures(
        lv_edv_ml=ed.lv_ml,
        lv_esv_ml=es.lv_ml,
        lv_sv_ml=stroke_volume(ed.lv_ml, es.lv_ml),
        lv_ef_pct=ejection_fraction(ed.lv_ml, es.lv_ml),
        rv_edv_ml=ed.rv_ml,
        rv_esv_ml=es.rv_ml,
        rv_sv_ml=stroke_volume(ed.rv_ml, es.rv_ml),
        rv_ef_pct=ejection_fraction(ed.rv_ml, es.rv_ml),
        lv_mass_ed_g=ed.myo_mass_g,
        lv_mass_es_g=es.myo_mass_g,
    )
    if patient is not None and patient.height_cm and patient.weight_kg:
        bsa = body_surface_area(patient.height_cm, patient.weight_kg, bsa_method)
        result.bsa_m2, result.bsa_method = bsa, bsa_method
        for name in ("lv_edv", "lv_esv", "lv_sv", "rv_edv", "rv_esv", "rv_sv"):
            setattr(result, f"{name}_index", getattr(result, f"{name}_ml") / bsa)
        result.lv_mass_ed_index = result.lv_mass_ed_g / bsa
    return result
