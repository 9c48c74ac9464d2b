"""Weighted cross-entropy and soft Dice losses, against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmrseg.errors import CMRSegError
from cmrseg.losses import (
    DICE_EPS,
    SegmentationLoss,
    class_frequencies,
    median_frequency_weights,
    soft_dice_loss,
)


def labels_with_counts() -> torch.Tensor:
    """One 4 x 5 slice: 11 background, 3 RV, 4 Myo, 2 LV pixels."""
    flat = [0] * 11 + [1] * 3 + [2] * 4 + [3] * 2
    return torch.tensor(flat).reshape(1, 4, 5)


def test_perfect_prediction_has_zero_dice_loss_and_near_zero_wce():
    target = labels_with_counts()
    logits = 50.0 * F.one_hot(target, 4).movedim(-1, 1).float()
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.0, abs=1e-5)
    assert SegmentationLoss("wce+dice", torch.tensor([0.1, 1.0, 2.0, 3.0]))(logits, target).item() < 1e-5


def test_uniform_prediction_dice_loss_matches_hand_computation():
    target = labels_with_counts()
    logits = torch.zeros(1, 4, 4, 5)
    n = 20  # pixels; every class gets probability 1/4 everywhere
    expected_dice = [(2 * 0.25 * k + DICE_EPS) / (0.25 * n + k + DICE_EPS) for k in (3, 4, 2)]
    # = 1.5/8, 2/9, 1/7 -> loss = 1 - mean
    assert expected_dice == pytest.approx([1.5 / 8, 2 / 9, 1 / 7], abs=1e-5)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - np.mean(expected_dice), abs=1e-6)
    combined = SegmentationLoss("wce+dice")(logits, target).item()
    assert combined == pytest.approx(math.log(4) + 0.2 * (1 - np.mean(expected_dice)), abs=1e-5)


@pytest.mark.parametrize("weights", [None, [1.0, 1.0, 1.0, 1.0], [0.05, 1.2, 0.9, 3.0], [10.0, 0.1, 0.1, 0.1]])
def test_wce_of_uniform_logits_is_log4_whatever_the_weights(weights):
    target = labels_with_counts()
    loss = SegmentationLoss("wce", None if weights is None else torch.tensor(weights))
    assert loss(torch.zeros(1, 4, 4, 5), target).item() == pytest.approx(math.log(4), abs=1e-6)


def test_wce_weights_pixels_by_their_class():
    target = torch.tensor([[[0, 1]]])  # two pixels
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]]).reshape(1, 4, 1, 2)
    nll0 = -math.log(math.exp(2) / (math.exp(2) + 3))
    nll1 = -math.log(math.exp(1) / (math.exp(1) + 3))
    w = torch.tensor([0.5, 2.0, 1.0, 1.0])
    expected = (0.5 * nll0 + 2.0 * nll1) / (0.5 + 2.0)
    assert SegmentationLoss("wce", w)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_median_frequency_weights():
    freqs = class_frequencies([np.array([[0] * 7 + [1, 2, 3]])])
    np.testing.assert_allclose(freqs, [0.7, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(median_frequency_weights(freqs), [1 / 7, 1, 1, 1])
    np.testing.assert_allclose(median_frequency_weights(np.array([0.9, 0.05, 0.0, 0.05])), [1 / 18, 1, 0, 1])


def test_gradients_flow_through_both_losses():
    target = labels_with_counts()
    logits = torch.randn(1, 4, 4, 5, requires_grad=True)
    SegmentationLoss("wce+dice", torch.tensor([0.2, 1.0, 1.0, 1.5]))(logits, target).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    bf16 = torch.randn(1, 4, 4, 5).bfloat16().requires_grad_()
    soft_dice_loss(bf16, target).backward()
    assert bf16.grad is not None and bf16.grad.dtype == torch.bfloat16


def test_unknown_loss_is_refused():
    with pytest.raises(CMRSegError, match="Unknown loss"):
        SegmentationLoss("focal")
