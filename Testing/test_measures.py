"""Clinical parameters against analytic shapes on anisotropic grids and the ACDC expert masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cmrseg.io.acdc import load_frame
from cmrseg.io.study import PatientInfo
from cmrseg.labels import LV, MYO, RV
from cmrseg.measures import body_surface_area, frame_measures, study_measures


def grid(shape_zyx, spacing_xyz):
    """Voxel-centre coordinates (mm) ``z, y, x`` of a grid centred on the origin."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape_zyx, spacing_xyz[::-1], strict=True)]
    return np.meshgrid(*axes, indexing="ij")


def cylinder_labels(radius, height, spacing, shape=(24, 96, 120), label=LV):
    z, y, x = grid(shape, spacing)
    labels = np.zeros(shape, np.uint8)
    labels[(x**2 + y**2 <= radius**2) & (np.abs(z) < height / 2)] = label
    return labels


def test_cylinder_volume_on_an_anisotropic_grid():
    spacing = (1.25, 1.1, 8.0)  # 10 slices of 8 mm cover the 80 mm height exactly
    labels = cylinder_labels(radius=20.0, height=80.0, spacing=spacing)
    measured = frame_measures(labels, spacing)
    analytic = math.pi * 20.0**2 * 80.0 / 1000.0  # 100.53 ml
    assert measured.lv_ml == pytest.approx(analytic, rel=0.01)
    assert measured.rv_ml == 0.0 and measured.myo_ml == 0.0
    assert sum(measured.lv_area_mm2) * spacing[2] / 1000 == pytest.approx(measured.lv_ml)


def test_ellipsoid_volumes_and_myocardial_mass():
    spacing = (0.9, 1.3, 5.0)
    z, y, x = grid((30, 110, 120), spacing)
    inner = (x / 25) ** 2 + (y / 20) ** 2 + (z / 40) ** 2 <= 1
    outer = (x / 33) ** 2 + (y / 28) ** 2 + (z / 48) ** 2 <= 1
    labels = np.where(inner, LV, np.where(outer, MYO, 0)).astype(np.uint8)
    measured = frame_measures(labels, spacing)
    lv = 4 / 3 * math.pi * 25 * 20 * 40 / 1000
    myo = 4 / 3 * math.pi * 33 * 28 * 48 / 1000 - lv
    assert measured.lv_ml == pytest.approx(lv, rel=0.02)
    assert measured.myo_ml == pytest.approx(myo, rel=0.02)
    assert measured.myo_mass_g == pytest.approx(1.05 * measured.myo_ml)


def test_study_measures_ef_sv_and_bsa_indexing():
    spacing = (1.25, 1.25, 8.0)
    # LV cylinder at the centre, RV cylinder 42.5 mm to the side (no overlap).
    ed = cylinder_labels(20.0, 80.0, spacing) + np.roll(cylinder_labels(16.0, 48.0, spacing, label=RV), 34, axis=2)
    es = cylinder_labels(14.0, 80.0, spacing) + np.roll(cylinder_labels(12.0, 48.0, spacing, label=RV), 34, axis=2)
    patient = PatientInfo(height_cm=180.0, weight_kg=80.0)
    result = study_measures(frame_measures(ed, spacing), frame_measures(es, spacing), patient)
    assert result.lv_ef_pct == pytest.approx(100 * (1 - 14.0**2 / 20.0**2), abs=1.5)  # 51 %
    # Small disks on 1.25 mm pixels: voxel counts within 4 % of the analytic volumes, so EF within 3 points.
    assert result.rv_edv_ml == pytest.approx(math.pi * 16.0**2 * 48.0 / 1000, rel=0.04)
    assert result.rv_esv_ml == pytest.approx(math.pi * 12.0**2 * 48.0 / 1000, rel=0.04)
    assert result.rv_ef_pct == pytest.approx(100 * (result.rv_edv_ml - result.rv_esv_ml) / result.rv_edv_ml)
    assert result.rv_ef_pct == pytest.approx(100 * (1 - 12.0**2 / 16.0**2), abs=3.0)  # 43.75 %
    assert result.lv_sv_ml == pytest.approx(result.lv_edv_ml - result.lv_esv_ml)
    assert result.bsa_m2 == pytest.approx(2.0)  # Mosteller: sqrt(180 * 80 / 3600)
    assert result.lv_edv_index == pytest.approx(result.lv_edv_ml / 2.0)
    assert study_measures(frame_measures(ed, spacing), frame_measures(es, spacing)).bsa_m2 is None


def test_bsa_formulas():
    assert body_surface_area(180, 80) == pytest.approx(2.0)
    assert body_surface_area(180, 80, "dubois") == pytest.approx(0.007184 * 80**0.425 * 180**0.725)
    assert body_surface_area(180, 80, "dubois") == pytest.approx(1.9964, abs=1e-3)


@pytest.mark.shared_data
def test_acdc_expert_mask_volumes_match_voxel_counts_and_header_spacing(acdc_root):
    frame = load_frame(acdc_root / "patient001", "ED")
    measured = frame_measures(frame.mask, frame.study.spacing)
    voxel_ml = 1.5625 * 1.5625 * 10.0 / 1000
    assert measured.lv_ml == pytest.approx((frame.mask == LV).sum() * voxel_ml)
    # patient001 is a dilated cardiomyopathy: a large LV (the ACDC expert EDV is about 296 ml).
    assert 250 < measured.lv_ml < 350
