"""Pre-processing to the network grid and back: exactness, geometry, and real ACDC masks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmrseg.errors import CMRSegError
from cmrseg.io.acdc import load_frame
from cmrseg.metrics import dice
from cmrseg.preprocess import (
    CropGeometry,
    PreprocessConfig,
    label_centroid,
    plan_crop,
    preprocess_frame,
    resample_label_probabilities,
    resample_labels,
    to_native_labels,
    to_native_probabilities,
)


def disc_labels(shape, spacing_xyz, center_mm, radii_mm=(30.0, 22.0, 15.0)) -> np.ndarray:
    """Nested discs (RV outermost ring region, then Myo, then LV) on every slice, in mm."""
    _, ny, nx = shape
    y = np.arange(ny)[:, None] * spacing_xyz[1]
    x = np.arange(nx)[None, :] * spacing_xyz[0]
    r = np.hypot(y - center_mm[0], x - center_mm[1])
    plane = np.zeros((ny, nx), np.uint8)
    for label, radius in zip((1, 2, 3), radii_mm, strict=True):
        plane[r <= radius] = label
    return np.repeat(plane[None], shape[0], axis=0)


def test_identity_geometry_is_exact():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 30, (3, 176, 176)).astype(np.float32)
    labels = rng.integers(0, 4, (3, 176, 176)).astype(np.uint8)
    spacing = (1.5, 1.5, 8.0)
    net_image, geometry = preprocess_frame(image, spacing)
    assert geometry.offset == (0, 0) and geometry.is_integer_crop
    lo, hi = geometry.intensity_range
    assert np.array_equal(net_image, np.clip((image - lo) / (hi - lo), 0, 1).astype(np.float32))
    net_labels = resample_labels(labels, geometry)
    assert np.array_equal(net_labels, labels)
    assert np.array_equal(to_native_labels(net_labels, geometry), labels)
    one_hot = (labels[:, None] == np.arange(4)[None, :, None, None]).astype(np.float32)
    assert np.array_equal(to_native_probabilities(one_hot, geometry), one_hot)


def test_integer_crop_and_pad_round_trip_where_inside():
    labels = disc_labels((2, 190, 150), (1.5, 1.5, 10), (140.0, 110.0))
    geometry = plan_crop(labels.shape, (1.5, 1.5, 10), center_yx=label_centroid(labels))
    net = resample_labels(labels, geometry)
    assert net.shape == (2, 176, 176)
    back = to_native_labels(net, geometry)
    oy, ox = geometry.offset
    inside = np.zeros(labels.shape[1:], bool)
    inside[max(oy, 0) : oy + 176, max(ox, 0) : ox + 176] = True
    assert np.array_equal(back[:, inside], labels[:, inside])
    assert not back[:, ~inside].any()  # outside the crop: background


def test_anisotropic_pixels_keep_positions_in_mm():
    spacing = (0.8, 1.25, 10.0)  # x, y
    labels = disc_labels((2, 200, 300), spacing, center_mm=(130.0, 120.0))
    geometry = plan_crop(labels.shape, spacing, PreprocessConfig(size=(128, 160)))
    assert geometry.scale == pytest.approx((1.5 / 1.25, 1.5 / 0.8))
    net = resample_labels(labels, geometry)
    cy, cx = label_centroid(net)
    # network pixel j lies at native index offset + scale * j, i.e. at that times the native spacing in mm
    center_mm = (
        (geometry.offset[0] + geometry.scale[0] * cy) * 1.25,
        (geometry.offset[1] + geometry.scale[1] * cx) * 0.8,
    )
    assert center_mm == pytest.approx((130.0, 120.0), abs=0.3)
    area_mm2 = (net[0] == 3).sum() * 1.5 * 1.5
    assert area_mm2 == pytest.approx(np.pi * 15.0**2, rel=0.03)
    hard = to_native_labels(net, geometry)
    soft = to_native_probabilities(resample_label_probabilities(labels, geometry), geometry).argmax(axis=1)
    for label in (1, 2, 3):
        assert dice(soft == label, labels == label) > 0.99
        assert dice(hard == label, labels == label) > 0.96  # 7-8 mm rings on 1.5 mm pixels


def test_probabilities_back_on_native_grid_sum_to_one_with_background_outside():
    geometry = plan_crop((2, 300, 300), (0.9, 0.9, 10), PreprocessConfig(size=(96, 96)))
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=(2, 96, 96)).transpose(0, 3, 1, 2)
    native = to_native_probabilities(probs.astype(np.float32), geometry)
    assert native.shape == (2, 4, 300, 300)
    np.testing.assert_allclose(native.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(native[:, 0, :5, :5] == 1.0)  # the crop (86 mm) does not reach the corner


def test_image_intensities_are_in_unit_range_and_geometry_serialises():
    image = np.random.default_rng(2).gamma(2.0, 50.0, (4, 210, 180)).astype(np.float32)
    net, geometry = preprocess_frame(image, (1.1, 1.1, 7.0))
    assert net.shape == (4, 176, 176) and net.dtype == np.float32
    assert net.min() >= 0.0 and net.max() <= 1.0
    again = CropGeometry.from_dict(json.loads(json.dumps(geometry.as_dict())))
    assert again == geometry
    default = plan_crop(image.shape, (1.1, 1.1, 7.0))  # centred on the image centre
    assert default.offset == (round(104.5 - 87.5 * 1.5 / 1.1), round(89.5 - 87.5 * 1.5 / 1.1))


def test_bad_inputs_are_refused():
    with pytest.raises(CMRSegError):
        plan_crop((3, 1, 100), (1, 1, 1))
    geometry = plan_crop((2, 64, 64), (1.5, 1.5, 5.0), PreprocessConfig(size=(32, 32)))
    with pytest.raises(CMRSegError, match="does not match"):
        resample_labels(np.zeros((2, 60, 64), np.uint8), geometry)
    with pytest.raises(CMRSegError, match="Label values"):
        resample_label_probabilities(np.full((2, 64, 64), 7, np.uint8), plan_crop((2, 64, 64), (1, 1, 5)))


@pytest.mark.shared_data
@pytest.mark.parametrize("patient, spacing", [("patient002", 1.367), ("patient057", 0.703)])
def test_real_acdc_masks_survive_the_round_trip(acdc_root, patient, spacing):
    frame = load_frame(acdc_root / patient, "ED")
    assert frame.study.spacing[0] == pytest.approx(spacing, abs=1e-3)
    geometry = plan_crop(frame.mask.shape, frame.study.spacing, center_yx=label_centroid(frame.mask))
    # What inference does: per-class maps on the network grid, back to the native grid, then argmax.
    soft = to_native_probabilities(resample_label_probabilities(frame.mask, geometry), geometry).argmax(axis=1)
    hard = to_native_labels(resample_labels(frame.mask, geometry), geometry)
    for label in (1, 2, 3):
        assert dice(soft == label, frame.mask == label) > 0.99
        # A label map on 1.5 mm pixels cannot hold the detail of 0.7 mm pixels: thin myocardium loses most.
        assert dice(hard == label, frame.mask == label) > (0.98 if spacing > 1 else 0.96)
