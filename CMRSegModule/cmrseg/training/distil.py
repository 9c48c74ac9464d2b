"""Distillation: training one network to reproduce a trained model's probabilities (``--distil-from``).

An ensemble's mean probabilities are more accurate than each member's, but cost one forward pass per member.
With a teacher, every training batch also goes through that trained model (frozen), and the loss becomes
``(1 - w) x`` the run's loss against the expert labels ``+ w x`` the Kullback-Leibler divergence of the
network's probabilities from the teacher's on the same augmented slices. The teacher's probabilities are
what its inference outputs; for a network trained with class weights they are scaled by those weights, as
weighted cross-entropy scales its own (inference divides them out again when the checkpoint says so), so that
both terms aim at the same output. Validation (and so the choice of ``best.pt``) still scores against the
expert labels only; the history's ``train_loss`` is the mixed loss.

The teacher must have been trained on the run's split: one trained on other patients would hand on what it
learned of this run's validation and test patients, and their numbers would no longer be held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cmrseg.errors import CMRSegError
from cmrseg.labels import CHECKPOINT_LABELS
from cmrseg.model.checkpoint import load_model
from cmrseg.model.ensemble import Ensemble
from cmrseg.neighbours import context_of
from cmrseg.preprocess import PreprocessConfig
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
    # the factor from the teacher's raw probabilities to the target: 1 / its class weights where its inference
    # divides by them, times the run's class weights
    scale: torch.Tensor | None = None

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """The target for a training batch ``[B, channels, H, W]``: the teacher's inference output (scaled by the
        run's class weights, if any)."""
        with self.runtime.autocast():
            logits = self.network(images[:, self.channels])
        probabilities = torch.softmax(logits.float(), dim=1)
        if self.scale is not None:
            probabilities = probabilities * self.scale.view(1, -1, 1, 1)
            probabilities = probabilities / probabilities.sum(dim=1, keepdim=True)
        return probabilities

    def mixed_loss(self, label_loss: torch.Tensor, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``(1 - w) x label_loss + w x KL(teacher || network)``, the divergence a mean over pixels."""
        target = self.probabilities(images)
        divergence = target * (torch.log(target.clamp_min(1e-8)) - torch.log_softmax(logits.float(), dim=1))
        return (1.0 - self.weight) * label_loss + self.weight * divergence.sum(dim=1).mean()


def load_teacher(config: TrainConfig, split_path: Path, runtime: Runtime, class_weights: torch.Tensor
                 ) -> tuple[Teacher, str]:
    """The run's teacher (``config.distil_from``) on the run's device, for a run with these loss
    ``class_weights``, and its checkpoint's SHA-256."""
    path = Path(config.distil_from)
    sha256 = file_sha256(path) if path.is_file() else ""  # of the file as loaded (it may be replaced later)
    network, metadata = load_model(path, runtime.device)
    trained_on = metadata.get("training", {}).get("split_sha256")
    if trained_on != file_sha256(split_path):
        raise CMRSegError(
            f"--distil-from {path} was trained on another split than {split_path}: it would teach what it learned of "
            "this run's validation or test patients. Distil from a model trained on this run's split."
        )
    if metadata.get("labels") != CHECKPOINT_LABELS:
        raise CMRSegError(f"--distil-from {path} has the labels {metadata.get('labels')}; this run's are "
                          f"{CHECKPOINT_LABELS}.")
    theirs, ours = PreprocessConfig.from_dict(metadata.get("preprocessing", {})), config.preprocess()
    if theirs != ours:
        raise CMRSegError(
            f"--distil-from {path} reads slices at {theirs.target_spacing_mm} mm, {theirs.size[0]} pixels, "
            f"intensities {theirs.percentiles}; this run's are {ours.target_spacing_mm} mm, {ours.size[0]} pixels, "
            f"{ours.percentiles}. They must match."
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
    scale = class_weights.float().to(runtime.device)
    weights = metadata.get("training", {}).get("class_weights")
    if metadata.get("inference", {}).get("prior_correction") and weights:
        scale = scale / torch.tensor(weights, dtype=torch.float32, device=runtime.device)
    scale = None if torch.allclose(scale, scale[0]) else scale  # a uniform factor changes nothing
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    if runtime.channels_last:
        network = network.to(memory_format=torch.channels_last)
    return Teacher(network.eval(), config.distil_weight, runtime, channels, scale), sha256
