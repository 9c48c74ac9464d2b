"""Online augmentation of training batches."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cmrseg.augment import (
    AUGMENTATIONS,
    NO_AUGMENTATION,
    AugmentConfig,
    affine,
    augment_batch,
    bias_fields,
    gaussian_blur,
    lower_resolution,
    remap_intensities,
    rotate,
)

ALWAYS = AugmentConfig(
    p_rotate=1.0, p_scale=1.0, p_translate=1.0, p_gamma=1.0, p_intensity=1.0, p_blur=1.0, p_noise=1.0
)


def batch(b: int = 4, h: int = 48, w: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 1, h, w, generator=g)
    labels = torch.zeros(b, h, w, dtype=torch.long)
    labels[:, 10:30, 15:40] = 1
    labels[:, 15:25, 20:30] = 2
    labels[:, 18:22, 23:27] = 3
    return images, labels


def test_rotation_by_zero_is_identity():
    images, labels = batch()
    out, out_labels = rotate(images, labels, 0.0)
    assert torch.equal(out, images) and torch.equal(out_labels, labels)


def test_rotation_by_90_degrees_turns_the_slice_clockwise():
    images, labels = batch(h=32, w=32)
    out, out_labels = rotate(images, labels, 90.0)
    torch.testing.assert_close(out, torch.rot90(images, -1, (2, 3)), atol=1e-4, rtol=0)
    assert torch.equal(out_labels, torch.rot90(labels, -1, (1, 2)))


def test_shift_moves_content_by_whole_pixels():
    images, labels = batch()
    out, out_labels = affine(images, labels, torch.zeros(4), torch.ones(4), torch.tensor([[2.0, 3.0]] * 4))
    torch.testing.assert_close(out[:, :, 3:, 2:], images[:, :, :-3, :-2], atol=1e-4, rtol=0)
    assert torch.equal(out_labels[:, 3:, 2:], labels[:, :-3, :-2])
    assert not out_labels[:, :3].any()  # background comes in from outside


def test_shapes_dtypes_and_label_values_are_preserved():
    images, labels = batch()
    before = images.clone(), labels.clone()
    out, out_labels = augment_batch(images, labels, ALWAYS, torch.Generator().manual_seed(3))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out_labels.shape == labels.shape and out_labels.dtype == labels.dtype
    assert set(out_labels.unique().tolist()) <= {0, 1, 2, 3}
    assert torch.isfinite(out).all()
    assert torch.equal(images, before[0]) and torch.equal(labels, before[1])  # inputs untouched
    assert not torch.equal(out, images)


def test_same_seed_same_batch_other_seed_other_batch():
    images, labels = batch()
    a = augment_batch(images, labels, AugmentConfig(), torch.Generator().manual_seed(7))
    b = augment_batch(images, labels, AugmentConfig(), torch.Generator().manual_seed(7))
    c = augment_batch(images, labels, AugmentConfig(), torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_no_augmentation_leaves_the_batch_unchanged():
    images, labels = batch()
    out, out_labels = augment_batch(images, labels, NO_AUGMENTATION, torch.Generator().manual_seed(0))
    assert torch.equal(out, images) and torch.equal(out_labels, labels)


@pytest.mark.parametrize(
    "field", ["p_gamma", "p_intensity", "p_blur", "p_noise", "p_bias_field", "p_remap", "p_low_resolution"]
)
def test_intensity_transforms_leave_labels_alone(field):
    images, labels = batch()
    config = dataclasses.replace(NO_AUGMENTATION, **{field: 1.0}, gamma_range=(0.7, 1.5), blur_sigma_px=(0.5, 1.0))
    config = dataclasses.replace(config, max_intensity_scale=0.1, max_intensity_shift=0.1, max_noise_std=0.03)
    out, out_labels = augment_batch(images, labels, config, torch.Generator().manual_seed(1))
    assert torch.equal(out_labels, labels)
    assert not torch.equal(out, images)


def test_blur_keeps_a_flat_image_flat_and_zero_sigma_is_identity():
    flat = torch.full((2, 1, 20, 20), 0.5)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([1.0, 0.7])), flat)
    images, _ = batch(b=2)
    torch.testing.assert_close(gaussian_blur(images, torch.zeros(2)), images)


def test_remapping_with_evenly_spaced_knots_is_the_identity_and_random_knots_keep_order():
    x = torch.linspace(0, 1, 101).reshape(1, 1, 1, 101)
    even = torch.tensor([[0.2, 0.4, 0.6, 0.8]])
    torch.testing.assert_close(remap_intensities(x, even), x, atol=1e-6, rtol=0)
    knots = torch.rand(3, 5, generator=torch.Generator().manual_seed(2))
    y = remap_intensities(x.expand(3, 1, 1, 101), knots)
    assert (y[..., 0] == 0).all() and torch.allclose(y[..., -1], torch.ones(3, 1, 1))
    assert (y.diff(dim=-1) >= -1e-7).all()  # monotonic: tissue order is kept, only the contrast changes
    assert not torch.allclose(y, x.expand(3, 1, 1, 101), atol=0.02)


def test_bias_fields_are_smooth_and_reach_their_amplitude():
    amplitudes = torch.tensor([0.0, 0.2, 0.4])
    fields = bias_fields(3, 64, 48, amplitudes, 4, torch.Generator().manual_seed(0))
    assert fields.shape == (3, 1, 64, 48)
    torch.testing.assert_close(fields[0], torch.ones(1, 64, 48))
    peaks = fields.log().abs().amax(dim=(1, 2, 3))
    torch.testing.assert_close(peaks, amplitudes, atol=1e-5, rtol=0)
    # smooth: neighbouring pixels differ by a small part of the field's range
    steps = fields[2].log().diff(dim=-1).abs().max()
    assert steps < 0.4 * 2 / 10


def test_lower_resolution_removes_fine_detail_and_keeps_flat_images():
    flat = torch.full((2, 1, 32, 32), 0.3)
    torch.testing.assert_close(lower_resolution(flat, torch.tensor([2.0, 2.5])), flat)
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2).float().expand(2, 1, 32, 32)
    out = lower_resolution(checker, torch.tensor([1.0, 2.0]))
    assert torch.equal(out[0], checker[0])  # factor 1: unchanged
    assert out[1].std() < 0.05 * checker[1].std()  # one-pixel pattern gone at half the resolution


def test_domain_randomisation_keeps_labels_valid_and_is_reproducible():
    images, labels = batch(b=8)
    config = AUGMENTATIONS["domain"]
    a = augment_batch(images, labels, config, torch.Generator().manual_seed(5))
    b = augment_batch(images, labels, config, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert torch.isfinite(a[0]).all() and set(a[1].unique().tolist()) <= {0, 1, 2, 3}
