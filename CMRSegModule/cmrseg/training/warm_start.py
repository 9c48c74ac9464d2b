"""Starting a run from a trained network's weights (fine-tuning), kept to the split that network was trained on.

A network fine-tuned on another split would have seen some of the new run's validation or test patients in
its first training, and their numbers would no longer be held out: that is refused. A one-slice network can
start a 2.5-D run (:mod:`cmrseg.neighbours`): its first convolution reads the centre channel, and the weights
for the neighbour channels start at zero, so the new network begins as exactly the old one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cmrseg.errors import CMRSegError
from cmrseg.model.checkpoint import load_model
from cmrseg.model.ensemble import Ensemble
from cmrseg.neighbours import context_of
from cmrseg.training.split import file_sha256

FIRST_CONVOLUTION = "encoder.0.0.weight"  # [filters, in_channels, 3, 3]


def initial_weights(path: str | Path, member: int | None, split_path: Path, context: int = 0
                    ) -> dict[str, torch.Tensor]:
    """The float32 weights of the network in checkpoint ``path`` (member ``member`` of an ensemble), for a
    network reading ``context`` neighbour slices on each side."""
    network, metadata = load_model(path)
    if isinstance(network, Ensemble):
        count = len(network.members)
        if member is None or not 0 <= member < count:
            raise CMRSegError(
                f"{path} is an ensemble of {count} networks; choose one with --init-member 0..{count - 1}."
            )
        network = network.members[member]
    elif member not in (None, 0):
        raise CMRSegError(f"{path} holds one network; --init-member {member} does not exist.")
    trained_on = metadata.get("training", {}).get("split_sha256")
    if trained_on != file_sha256(split_path):
        raise CMRSegError(
            f"{path} was trained on another split than {split_path}: fine-tuning it here would put patients it "
            "was trained on among this run's validation or test patients. Give its split with --split."
        )
    weights = {name: tensor.float() for name, tensor in network.state_dict().items()}
    own = context_of(network)
    if own == context:
        return weights
    if own != 0:
        raise CMRSegError(f"{path} reads {own} neighbour slices on each side; it can start a run of the same, or a "
                          f"one-slice network can start one of any, not --neighbour-slices {context}.")
    first = weights[FIRST_CONVOLUTION]
    widened = torch.zeros(first.shape[0], 2 * context + 1, *first.shape[2:])
    widened[:, context] = first[:, 0]
    return {**weights, FIRST_CONVOLUTION: widened}
