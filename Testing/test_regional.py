"""Regional wall thickness (AHA segments 1-16): analytic rings of known, segment-varying thickness and known
rotation, and the expert masks of ACDC patients with hypertrophic cardiomyopathy."""

from __future__ import annotations

import numpy as np
import pytest

from cmrseg.basal import basal_end
from cmrseg.io.acdc import list_patients, load_frame, read_info
from cmrseg.labels import LV, MYO, RV
from cmrseg.regional import SEGMENTS, anterior_origin, regional_wall_thickness, segment_of, segment_thickness

PIXEL_MM = 0.25
LEVELS = ["basal"] * 3 + ["mid"] * 3 + ["apical"] * 3
DESIGN = {number: 5.0 + 0.5 * number for number, _, _ in SEGMENTS}  # 5.5 .. 13 mm, all different


def ring_heart(origin: float, sense: int, design: dict[int, float], scale: float = 1.0) -> np.ndarray:
    """9 slices: an LV blood pool of radius 20 mm, myocardium of the designed thickness per segment, and an
    RV touching the septum from the anterior insertion ``origin`` over 120 degrees in direction ``sense``."""
    n = int(100 / PIXEL_MM)
    y, x = np.mgrid[0:n, 0:n] * PIXEL_MM
    dx, dy = x - 50.0, y - 50.0
    radius = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(dy, dx)) % 360
    labels = np.zeros((len(LEVELS), n, n), dtype=np.uint8)
    phi = (sense * (angle - origin)) % 360
    for z, level in enumerate(LEVELS):
        segment = np.vectorize(lambda a, lv=level: segment_of(a, origin, sense, lv))(angle)
        wall = np.vectorize(design.get)(segment) * scale
        labels[z][radius < 20.0] = LV
        labels[z][(radius >= 20.0) & (radius < 20.0 + wall)] = MYO
        labels[z][(phi <= 120) & (radius >= 20.0 + wall) & (radius < 32.0 + wall)] = RV
    return labels


# The third heart is mirrored left-right (the RV on the image's right), as a flipped image shows it.
@pytest.mark.parametrize(("origin", "sense"), [(260.0, -1), (300.0, -1), (250.0, +1)])
def test_each_segment_gets_its_designed_thickness(origin, sense):
    labels = ring_heart(origin, sense, DESIGN)
    measured = segment_thickness(labels, (PIXEL_MM, PIXEL_MM, 8.0), np.eye(3), 0)  # designed base first
    assert sorted(measured) == list(range(1, 17))
    for number, value in measured.items():
        assert value == pytest.approx(DESIGN[number], abs=0.3), number


def test_the_anterior_insertion_comes_from_the_study_orientation():
    arc = [(140.0, 260.0)]  # the RV touches the myocardium from 140 to 260 degrees (image angle)
    assert anterior_origin(arc, np.eye(3)) == (260.0, -1)  # rows run to the back (LPS): 260 degrees is front
    flipped = np.diag([1.0, -1.0, -1.0])  # rows run to the front
    assert anterior_origin(arc, flipped) == (140.0, +1)
    # Flipped, the same heart is read mirrored: anteroseptal and inferoseptal trade places.
    labels = ring_heart(260.0, -1, DESIGN)
    measured = segment_thickness(labels, (PIXEL_MM, PIXEL_MM, 8.0), flipped, 0)
    assert measured[2] == pytest.approx(DESIGN[3], abs=0.3) and measured[3] == pytest.approx(DESIGN[2], abs=0.3)


def test_thickening_from_ed_to_es():
    ed = ring_heart(260.0, -1, DESIGN)
    es = ring_heart(260.0, -1, DESIGN, scale=1.4)
    rows = regional_wall_thickness(ed, es, (PIXEL_MM, PIXEL_MM, 8.0), np.eye(3))
    assert [r["segment"] for r in rows] == list(range(1, 17))
    assert rows[0]["name"] == "basal anterior" and rows[13]["name"] == "apical septal"
    for row in rows:
        assert row["thickening_pct"] == pytest.approx(40.0, abs=4.0), row


def test_es_is_measured_on_the_slices_and_levels_of_ed():
    """An apical cavity closed at ES (no blood pool on the last slice) moved a basal slice into the mid third
    at ES: mid thickening then compared other slices at ED and ES (27.9-30.4 % read here for a wall that
    thickened 40 % everywhere)."""
    ed = ring_heart(260.0, -1, DESIGN)
    es = ring_heart(260.0, -1, DESIGN, scale=1.4)
    es[-1][es[-1] == LV] = MYO  # the apical slice's cavity closed at end-systole
    rows = regional_wall_thickness(ed, es, (PIXEL_MM, PIXEL_MM, 8.0), np.eye(3))
    for row in rows:
        assert row["thickening_pct"] == pytest.approx(40.0, abs=4.0), row


def test_without_rv_contact_or_enough_slices_there_are_no_segments():
    labels = ring_heart(260.0, -1, DESIGN)
    no_rv = np.where(labels == RV, 0, labels).astype(np.uint8)
    assert segment_thickness(no_rv, (PIXEL_MM, PIXEL_MM, 8.0), np.eye(3), 0) is None
    assert segment_thickness(labels[:2], (PIXEL_MM, PIXEL_MM, 8.0), np.eye(3), 0) is None


@pytest.mark.shared_data
def test_hypertrophic_hearts_have_a_thicker_septum_than_normal_ones(acdc_root):
    """Expert ED masks of the first 6 HCM and 6 NOR patients (measured: HCM septum median 12.6 mm, septal /
    lateral ratio 1.28; NOR 8.1 mm and 0.98)."""
    septal, lateral = [2, 3, 8, 9], [5, 6, 11, 12]

    def group(name: str) -> tuple[float, float]:
        patients = [p for p in list_patients(acdc_root) if read_info(p).get("Group") == name][:6]
        ratios, septum = [], []
        for patient in patients:
            frame = load_frame(patient, "ED")
            study = frame.study
            measured = segment_thickness(frame.mask, study.spacing, study.direction, basal_end(frame.mask))
            assert measured is not None, patient.name
            septum.append(np.mean([measured[s] for s in septal]))
            ratios.append(septum[-1] / np.mean([measured[s] for s in lateral]))
        return float(np.median(septum)), float(np.median(ratios))

    hcm_septum, hcm_ratio = group("HCM")
    normal_septum, normal_ratio = group("NOR")
    assert 6.0 < normal_septum < 11.0 and 0.85 < normal_ratio < 1.15  # a normal wall, evenly thick
    assert hcm_septum > 1.3 * normal_septum and hcm_ratio > normal_ratio + 0.15


def test_the_bullseye_puts_anterior_on_top_and_the_septum_on_the_left():
    import xml.etree.ElementTree as ET

    from cmrseg.bullseye import SIZE, bullseye_svg

    svg = ET.fromstring(bullseye_svg({n: float(n) for n in range(1, 17)} | {4: None}, "ED wall", "mm", 0, 16))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}path")) == 16 and len(svg.findall(f"{ns}circle")) == 1
    labels = {t.text: (float(t.get("x")), float(t.get("y"))) for t in svg.findall(f"{ns}text")}
    centre = SIZE / 2
    assert labels["1"][1] < centre and abs(labels["1"][0] - centre) < 1  # basal anterior: top
    assert labels["2"][0] < centre and labels["3"][0] < centre and labels["14"][0] < centre  # septum: left
    assert labels["5"][0] > centre and labels["16"][0] > centre  # lateral: right
    assert "-" in labels and "4" not in labels  # a segment without a value is shown as such
