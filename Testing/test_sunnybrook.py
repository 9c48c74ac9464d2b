"""Sunnybrook manual contours as ACDC masks on the DICOM grid, checked against the images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import config as dicom_config
from scipy import ndimage

from cmrseg import labels
from cmrseg.contour_origin import image_grid, measure_study, peak
from cmrseg.io.dicom_cine import read_dicom_cine_with_index
from cmrseg.io.sunnybrook import (
    SunnybrookCase,
    contours_to_case,
    load_sunnybrook_contours,
    polygon_mask,
    read_contour,
    read_link_csv,
)

# --------------------------------------------------------------------------------- rasterisation (no data)


def test_polygon_mask_uses_pixel_centres_and_x_as_column() -> None:
    square = np.array([[0.5, 0.5], [3.5, 0.5], [3.5, 3.5], [0.5, 3.5]])
    mask = polygon_mask(square, (6, 6))
    assert mask.sum() == 9 and mask[1:4, 1:4].all()
    wide = np.array([[0.5, 0.5], [4.5, 0.5], [4.5, 1.5], [0.5, 1.5]])  # x spans columns 1..4, y row 1
    mask = polygon_mask(wide, (6, 6))
    assert mask.sum() == 4 and mask[1, 1:5].all()


def test_polygon_mask_clips_to_the_image() -> None:
    triangle = np.array([[-10.0, -10.0], [20.0, -10.0], [-10.0, 20.0]])
    mask = polygon_mask(triangle, (8, 8))
    assert mask[0, 0] and not mask[7, 7] and mask.sum() == 64 - 15  # centres with x + y < 10 on the 8 x 8 grid
    assert not polygon_mask(triangle + 100, (8, 8)).any()


def test_read_contour_counts_from_one(tmp_path: Path) -> None:
    path = tmp_path / "IM-0001-0001-icontour-manual.txt"
    path.write_text("1.00 1.00\n4.50 1.00\n4.50 3.00\n")
    assert read_contour(path).tolist() == [[0.0, 0.0], [3.5, 0.0], [3.5, 2.0]]


def test_contour_origin_refuses_a_folder_that_is_not_a_sunnybrook_copy(tmp_path: Path, capsys) -> None:
    from cmrseg.contour_origin import main

    assert main([str(tmp_path), "--images-only"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmrseg: error:") and "link.csv" in err and err.count("\n") == 1


def test_edge_measure_finds_a_known_contour_offset() -> None:
    """A bright disc (radius 12 pixels, blurred like a real edge) and its contour drawn 0.5 pixel right of and
    0.75 pixel above it: the sharpest edges lie at the shift that undoes exactly that."""
    ys, xs = np.mgrid[0:64, 0:64].astype(float)
    disc = ndimage.gaussian_filter((np.hypot(xs - 30.0, ys - 28.0) < 12).astype(float) * 100 + 10, 1.0)
    angles = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    drawn = np.column_stack([30.5 + 12 * np.cos(angles), 27.25 + 12 * np.sin(angles)])
    assert peak(image_grid([(disc, drawn)])) == (-0.5, 0.75)
    assert peak(image_grid([(disc, drawn[::-1])])) == (-0.5, 0.75)  # the points' order does not matter


# --------------------------------------------------------------------------------------------- real data

CASES = ("SCD0000101", "SCD0000201")


@pytest.fixture(scope="module", params=CASES)
def case(request, sunnybrook_root: Path) -> SunnybrookCase:
    contour_folder = read_link_csv(sunnybrook_root)[request.param]
    return load_sunnybrook_contours(sunnybrook_root / "dicoms" / request.param, contour_folder)


@pytest.mark.shared_data
def test_link_csv(sunnybrook_root: Path) -> None:
    links = read_link_csv(sunnybrook_root)
    assert links == {
        "SCD0000101": sunnybrook_root / "contours" / "SC-HF-I-1",
        "SCD0000201": sunnybrook_root / "contours" / "SC-HF-I-2",
    }
    assert all(folder.is_dir() for folder in links.values())


@pytest.mark.shared_data
def test_masks_and_phases(case: SunnybrookCase) -> None:
    assert case.ed_frame != case.es_frame
    assert (case.study.ed_frame, case.study.es_frame) == (case.ed_frame, case.es_frame)
    assert case.ed_mask.shape == case.es_mask.shape == case.study.image.shape[1:]
    assert set(np.unique(case.ed_mask)) == {0, labels.MYO, labels.LV}
    assert set(np.unique(case.es_mask)) == {0, labels.LV}
    assert len(case.ed_slices) >= 8 and len(case.es_slices) >= 8 and set(case.epi_slices) <= set(case.ed_slices)
    for z in case.ed_slices:
        assert (case.ed_mask[z] == labels.LV).any()
    for z in case.es_slices:
        assert (case.es_mask[z] == labels.LV).any()


@pytest.mark.shared_data
def test_volumes_are_plausible(case: SunnybrookCase) -> None:
    edv, esv = case.lv_volume_ml("ED"), case.lv_volume_ml("ES")
    myo = np.count_nonzero(case.ed_mask == labels.MYO) * case.study.voxel_volume_ml
    ef = 100 * (edv - esv) / edv
    print(
        f"{Path(case.study.source).name}: ED frame {case.ed_frame}, ES frame {case.es_frame}, "
        f"LV EDV {edv:.1f} ml, ESV {esv:.1f} ml, EF {ef:.1f} %, Myo {myo:.1f} ml (ED)"
    )
    assert 60 < esv < edv < 400  # dilated, poorly contracting hearts (heart failure with infarction)
    assert 10 < ef < 70
    assert 50 < myo < 250


@pytest.mark.shared_data
def test_blood_pool_is_bright(case: SunnybrookCase) -> None:
    image = case.study.image[case.ed_frame]
    assert image[case.ed_mask == labels.LV].mean() > 1.5 * image[case.ed_mask == labels.MYO].mean()


def contrast(image: np.ndarray, points: np.ndarray) -> float:
    """Mean inside the polygon over the mean in a ring around it (the polygon scaled 1.5x about its centre)."""
    centre = points.mean(axis=0)
    inside = polygon_mask(points, image.shape)
    ring = polygon_mask(centre + 1.5 * (points - centre), image.shape) & ~inside
    return float(image[inside].mean() / image[ring].mean())


@pytest.mark.shared_data
def test_contours_enclose_bright_blood_with_x_as_column(case: SunnybrookCase, sunnybrook_root: Path) -> None:
    """On its instance file NNNN.dcm, each i-contour read as (x = column, y = row) encloses bright blood;
    transposed (x = row) it does much worse on average."""
    folder = read_link_csv(sunnybrook_root)[Path(case.study.source).name]
    right, transposed = [], []
    for path in sorted((folder / "i-contours").glob("*.txt")):
        number = int(path.name.split("-")[2])
        with dicom_config.disable_value_validation():
            image = pydicom.dcmread(Path(case.study.source) / f"{number}.dcm").pixel_array.astype(float)
        points = read_contour(path)
        right.append(contrast(image, points))
        transposed.append(contrast(image, points[:, ::-1]))
    assert min(right) > 1.4
    assert np.mean(right) > 1.3 * np.mean(transposed)


@pytest.mark.shared_data
def test_endocardium_inside_epicardium(case: SunnybrookCase, sunnybrook_root: Path) -> None:
    folder = read_link_csv(sunnybrook_root)[Path(case.study.source).name]
    shape = case.study.matrix
    pairs = 0
    for outer_path in sorted((folder / "o-contours").glob("*.txt")):
        inner_path = folder / "i-contours" / outer_path.name.replace("ocontour", "icontour")
        if not inner_path.is_file():
            continue
        inner = polygon_mask(read_contour(inner_path), shape)
        outer = polygon_mask(read_contour(outer_path), shape)
        assert np.count_nonzero(inner & ~outer) <= 0.005 * inner.sum()  # at most a boundary pixel or two
        assert outer.sum() > inner.sum()
        pairs += 1
    assert pairs == len(case.epi_slices)


@pytest.mark.shared_data
def test_mask_area_matches_polygon_area(case: SunnybrookCase, sunnybrook_root: Path) -> None:
    folder = read_link_csv(sunnybrook_root)[Path(case.study.source).name]
    for path in sorted((folder / "i-contours").glob("*.txt"))[:4]:
        x, y = read_contour(path).T
        shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        assert polygon_mask(np.column_stack([x, y]), case.study.matrix).sum() == pytest.approx(shoelace, rel=0.03)


@pytest.mark.shared_data
def test_contours_as_read_lie_on_the_blood_pool_edges(case: SunnybrookCase, sunnybrook_root: Path) -> None:
    """The file coordinates count from 1 (CONTOUR_ORIGIN): moved over a grid of shifts, the i-contours as read
    have their sharpest bright-inside, dark-outside edges within half a pixel of where they are read; read from
    0 instead (one pixel right and down) their edges are at least 5 % weaker. Measured on the images alone."""
    folder = read_link_csv(sunnybrook_root)[Path(case.study.source).name]
    edges = measure_study(Path(case.study.source), folder)["image edges"]
    dx, dy = edges["best_shift_xy"]
    print(f"\n{Path(case.study.source).name}: sharpest edges at dx {dx:+.2f}, dy {dy:+.2f}")
    assert abs(dx) <= 0.5 and abs(dy) <= 0.5
    assert edges["as_read"] > 1.05 * edges["one_pixel_right_down"]


@pytest.mark.shared_data
def test_a_shift_moves_the_masks_by_whole_pixels_along_x_and_y(case: SunnybrookCase) -> None:
    """contours_to_case(shift_xy=(dx, dy)): x moves along columns, y along rows (the measure's direction)."""
    study, refs = read_dicom_cine_with_index(case.study.source)
    folder = read_link_csv(Path(case.study.source).parents[1])[Path(case.study.source).name]
    for (dx, dy), axis, step in (((1.0, 0.0), 2, 1), ((0.0, -1.0), 1, -1)):
        moved = contours_to_case(study, refs, folder, shift_xy=(dx, dy))
        assert np.array_equal(moved.ed_mask, np.roll(case.ed_mask, step, axis=axis))
        assert np.array_equal(moved.es_mask, np.roll(case.es_mask, step, axis=axis))
