"""Training losses: weighted cross-entropy (WCE) and WCE + 0.2 x soft Dice loss, as in the published method.

Class weights come from the class frequencies of the training label maps by median frequency balancing
(Eigen & Fergus 2015): ``w_c = median(f) / f_c`` (the default), or its square root (a milder weighting:
strong background down-weighting moves the decision boundary outwards), or none.
The WCE is normalised by the summed weights of the pixels
(``sum_i w_{y_i} * nll_i / sum_i w_{y_i}``, PyTorch's convention), so uniform logits give ``log(C)`` whatever
the weights. The Dice loss is ``1 - mean over foreground classes of the soft Dice``
``(2 * sum(p * y) + eps) / (sum(p) + sum(y) + eps)``, summed over the whole batch.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmrseg.errors import CMRSegError
from cmrseg.labels import NUM_CLASSES

LOSSES = ("wce", "wce+dice")
WEIGHTINGS = ("median", "sqrt-median", "none")
DICE_WEIGHT = 0.2
DICE_EPS = 1e-5


def class_frequencies(label_maps: list[np.ndarray] | np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Fraction of pixels of each class over all ``label_maps``."""
    counts = np.zeros(num_classes, dtype=np.float64)
    for labels in label_maps if isinstance(label_maps, list) else [label_maps]:
        counts += np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=num_classes)[:num_classes]
    total = counts.sum()
    if total == 0:
        raise CMRSegError("No labelled pixels to compute class frequencies from.")
    return counts / total


def median_frequency_weights(frequencies: np.ndarray) -> np.ndarray:
    """Median frequency balancing: ``median(f) / f_c`` (classes never seen get weight 0)."""
    f = np.asarray(frequencies, dtype=np.float64)
    present = f > 0
    weights = np.zeros_like(f)
    weights[present] = np.median(f[present]) / f[present]
    return weights


def class_weights(frequencies: np.ndarray, method: str = "median") -> np.ndarray:
    """Loss weights from class frequencies by one of :data:`WEIGHTINGS`."""
    if method not in WEIGHTINGS:
        raise CMRSegError(f"Unknown class weighting {method!r}; choose one of {', '.join(WEIGHTINGS)}.")
    if method == "none":
        return np.ones(len(frequencies))
    weights = median_frequency_weights(frequencies)
    return np.sqrt(weights) if method == "sqrt-median" else weights


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = DICE_EPS) -> torch.Tensor:
    """``1 - mean foreground soft Dice`` of ``logits`` ``[B, C, H, W]`` against labels ``[B, H, W]``."""
    probs = torch.softmax(logits.float(), dim=1)
    one_hot = F.one_hot(target.long(), probs.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = (0, *range(2, probs.ndim))
    intersection = (probs * one_hot).sum(dims)
    denominator = probs.sum(dims) + one_hot.sum(dims)
    dice = (2.0 * intersection + eps) / (denominator + eps)
    return 1.0 - dice[1:].mean()


class SegmentationLoss(nn.Module):
    """``wce`` or ``wce+dice`` (WCE + 0.2 x soft Dice loss) on logits ``[B, C, H, W]`` and labels ``[B, H, W]``."""

    def __init__(self, kind: str = "wce", class_weights: torch.Tensor | np.ndarray | None = None) -> None:
        super().__init__()
        if kind not in LOSSES:
            raise CMRSegError(f"Unknown loss {kind!r}; choose one of {', '.join(LOSSES)}.")
        self.kind = kind
        weights = torch.ones(NUM_CLASSES) if class_weights is None else torch.as_tensor(class_weights)
        self.register_buffer("class_weights", weights.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits.float(), target.long(), weight=self.class_weights)
        if self.kind == "wce+dice":
            loss = loss + DICE_WEIGHT * soft_dice_loss(logits, target)
        return loss
