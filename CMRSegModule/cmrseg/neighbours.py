"""2.5-D input: each short-axis slice seen together with its neighbours in the stack, as extra channels.

A network with ``2 K + 1`` input channels sees slice ``k`` as channels ``[k - K, ..., k, ..., k + K]``: the
slices on either side tell it where along the ventricle it is (the base's outflow tracts, the apex's small
cavities), which one slice alone leaves ambiguous. At the ends of the stack the end slice stands in for the
missing neighbours. A stack may run base to apex or apex to base, so training shows the neighbours in either
order at random (:func:`neighbour_order`) and the network does not depend on which way the stack runs.
"""

from __future__ import annotations

import numpy as np
import torch


def context_of(network: torch.nn.Module) -> int:
    """``K``, the neighbours on each side that a network reads (0 for one slice)."""
    return (network.args["in_channels"] - 1) // 2


def neighbour_indices(first: int, count: int, context: int) -> np.ndarray:
    """``[count, 2 K + 1]`` indices of each slice of the stack ``first .. first + count - 1`` and its
    neighbours, clamped to the stack's ends."""
    offsets = np.arange(-context, context + 1)
    return first + np.clip(np.arange(count)[:, None] + offsets[None, :], 0, count - 1)


def with_neighbours(slices: np.ndarray, context: int) -> np.ndarray:
    """The slices ``[n, h, w]`` of one stack as network input ``[n, 2 K + 1, h, w]``."""
    return slices[neighbour_indices(0, len(slices), context)]


def neighbour_order(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A batch ``[B, 2 K + 1, h, w]`` with the neighbour channels of half its samples (at random) in reverse
    order, as a stack running the other way would give them."""
    reverse = torch.rand(len(images), generator=generator) < 0.5
    return torch.where(reverse[:, None, None, None], images.flip(1), images)
