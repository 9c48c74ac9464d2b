"""Distillation: training one network to reproduce a trained model's probabilities (``--distil-from``).

An ensemble's mean probabilities are more accurate than each member's, but cost one forward pass per member.
With a teacher, every training batch also goes through that trained model (frozen), and the loss becomes
``(1 - w) x`` the run's loss against the expert labels ``+ w x`` the Kullback-Leibler divergence of the
network's probabilities from the teacher's on the same augmented slices. Validation (and so the choice of
``best.pt``) still scores against the expert labels only.

The teacher must have been trained on the run's split: one trained on other patients would hand on what it
learned of this run's validation and test patients, and their numbers would no longer be held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cmrseg.errors import CMRSegError
from cmrseg.model.checkpoint import load_model
from cmrseg.model.ensemble import Ensemble
from cmrseg.neighbours import context_of
from cmrseg.training.config import TrainConfig
from cmrseg.training.loop import Runtime
from cmrseg.training.split import file_sha256


@dataclass
class Teacher:
    """A frozen trained model whose probabilities the network learns to reproduce, with its share ``weight``."""

    network: nn.Module
    weight: float
    runtime: Runtime
    channels: slice  # which input channels it reads (the centre one only, for a one-slice teacher of a 2.5-D run)
    prior: torch.Tensor | None = None  # 1 / class weights, when the teacher's inference divides by them

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """What the teacher's inference outputs for a training batch ``[B, channels, H, W]``."""
        with self.runtime.autocast():
            logits = self.network(images[:, self.channels])
        probabilities = torch.softmax(logits.float(), dim=1)
        if self.prior is not None:
            probabilities = probabilities * self.prior.view(1, -1, 1, 1)
            probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
        return probabilities

    def mixed_loss(self, label_loss: torch.Tensor, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``(1 - w) x label_loss + w x KL(teacher || network)``, the divergence a mean over pixels."""
        target = self.probabilities(images)
        divergence = target * (torch.log(target.clamp_min(1e-8)) - torch.log_softmax(logits.float(), dim=1))
        return (1.0 - self.weight) * label_loss + self.weight * divergence.sum(dim=1).mean()


def load_teacher(config: TrainConfig, split_path: Path, runtime: Runtime) -> tuple[Teacher, str]:
    """The run's teacher (``config.distil_from``) on the run's device, and its checkpoint's SHA-256."""
    path = Path(config.distil_from)
    network, metadata = load_model(path, runtime.device)
    sha256 = file_sha256(path)
    trained_on = metadata.get("training", {}).get("split_sha256")
    if trained_on != file_sha256(split_path):
        raise CMRSegError(
            f"--distil-from {path} was trained on another split than {split_path}: it would teach what it learned of "
            "this run's validation or test patients. Distil from a model trained on this run's split."
        )
    pre = metadata.get("preprocessing", {})
    if pre.get("target_spacing_mm") != config.spacing_mm or list(pre.get("size", [])) != [config.size] * 2:
        raise CMRSegError(
            f"--distil-from {path} reads slices at {pre.get('target_spacing_mm')} mm, {pre.get('size')} pixels; "
            f"this run's are {config.spacing_mm} mm, {config.size} pixels. They must match."
        )
    members = list(network.members) if isinstance(network, Ensemble) else [network]
    contexts = {context_of(m) for m in members}
    context = config.neighbour_slices
    if contexts not in ({0}, {context}):
        raise CMRSegError(
            f"--distil-from {path} reads {sorted(contexts)} neighbour slices on each side; a teacher must read "
            f"one slice or the run's {context}."
        )
    channels = slice(context, context + 1) if contexts == {0} else slice(None)
    prior = None
    weights = metadata.get("training", {}).get("class_weights")
    if metadata.get("inference", {}).get("prior_correction") and weights:
        prior = 1.0 / torch.tensor(weights, dtype=torch.float32, device=runtime.device)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    if runtime.channels_last:
        network = network.to(memory_format=torch.channels_last)
    return Teacher(network.eval(), config.distil_weight, runtime, channels, prior), sha256
