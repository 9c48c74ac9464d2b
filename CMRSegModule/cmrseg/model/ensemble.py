"""Several trained dense U-Nets used as one network: their class probabilities are averaged.

Networks trained from the same data with different losses, weights or seeds err in different places, so
the mean of their softmax outputs is usually more accurate than each of them (the shipped model card
compares the ensemble with its members). :meth:`Ensemble.forward` returns
the logarithm of that mean, so that a softmax of the output (what inference applies to any network) gives
the mean probabilities back exactly. For inference only; each member is trained on its own.
"""

from __future__ import annotations

import torch
from torch import nn

from cmrseg.errors import CMRSegError
from cmrseg.model.dense_unet import DenseUNet


class Ensemble(nn.Module):
    """Dense U-Nets of the given constructor arguments (``members``: one dict per network)."""

    def __init__(self, members: list[dict[str, int]]) -> None:
        super().__init__()
        if not members:
            raise CMRSegError("An ensemble needs at least one network.")
        self.members = nn.ModuleList(DenseUNet(**args) for args in members)
        self.args = {"members": [dict(m.args) for m in self.members]}

    @classmethod
    def of(cls, networks: list[DenseUNet]) -> Ensemble:
        """An ensemble holding copies of the weights of trained ``networks``."""
        ensemble = cls([dict(n.args) for n in networks])
        for member, network in zip(ensemble.members, networks, strict=True):
            member.load_state_dict(network.state_dict())
        return ensemble

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        widths = {m.args.get("in_channels", 1) for m in self.members}
        if widths != {x.shape[1]}:
            # 2.5-D members read their own neighbour slices: Segmenter.member_probabilities builds each input.
            raise CMRSegError(f"This ensemble's networks read {sorted(widths)} input channels; "
                              f"one input of {x.shape[1]} cannot serve them all.")
        mean = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members]).mean(dim=0)
        return torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))
