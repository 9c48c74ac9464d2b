"""One training epoch and one validation pass."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from cmrseg.augment import AugmentConfig, augment_batch
from cmrseg.labels import STRUCTURES
from cmrseg.metrics import dice
from cmrseg.progress import ProgressCallback, report
from cmrseg.training.data import SliceSet, epoch_order
from cmrseg.training.sampling import weighted_order

if TYPE_CHECKING:
    from cmrseg.training.distil import Teacher


@dataclass(frozen=True)
class Runtime:
    """Where and how the network runs: device, mixed precision (``bf16`` or ``fp32``), memory format."""

    device: torch.device
    precision: str = "bf16"
    channels_last: bool = True

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images


@dataclass
class EpochPosition:
    """How far an epoch has come: its first ``step`` batches trained, their summed loss, and the state of the
    epoch's generator after them, from which the rest of the epoch draws what an uninterrupted one would."""

    step: int
    loss_sum: float
    generator_state: torch.Tensor


class Checkpoints(Protocol):
    """Saves an epoch's position when ``due`` (:class:`cmrseg.training.epoch_checkpoints.EpochCheckpoints`)."""

    def due(self) -> bool: ...

    def save(self, position: EpochPosition) -> None: ...


def train_epoch(
    model: nn.Module,
    data: SliceSet,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    runtime: Runtime,
    augmentation: AugmentConfig,
    generator: torch.Generator,
    batch_size: int,
    iterations: int,
    progress: ProgressCallback | None = None,
    what: str = "Training",
    weights: torch.Tensor | None = None,
    teacher: Teacher | None = None,
    start: EpochPosition | None = None,
    checkpoints: Checkpoints | None = None,
) -> float:
    """Train on ``iterations`` random batches drawn with ``generator`` (in proportion to the slices' sampling
    ``weights`` when given, else permutations of all slices), mixing in a ``teacher``'s probabilities when
    given; the mean training loss. From ``start`` on when given (an epoch saved part-way through), handing
    ``checkpoints`` the position after each batch when it is due."""
    model.train()
    if weights is None:
        order = epoch_order(len(data), batch_size, iterations, generator)
    else:
        order = weighted_order(weights, batch_size, iterations, generator)
    total = torch.zeros((), dtype=torch.float64, device=runtime.device)
    done = 0
    if start is not None:  # the order is drawn first, so the generator's saved state continues after it
        generator.set_state(start.generator_state)
        total += start.loss_sum
        done = start.step
    for step, indices in enumerate(order[done:], start=done + 1):
        images, labels = data.crops(indices, generator)
        images, labels = augment_batch(images, labels, augmentation, generator)
        images, labels = runtime.to_input(images), labels.to(runtime.device, non_blocking=True)
        with runtime.autocast():
            logits = model(images)
        loss = loss_fn(logits.float(), labels)
        if teacher is not None:
            loss = teacher.mixed_loss(loss, logits, images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.detach()
        report(progress, step, iterations, what)
        if checkpoints is not None and step < len(order) and checkpoints.due():
            checkpoints.save(EpochPosition(step, float(total), generator.get_state()))
    return float(total) / len(order)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: SliceSet, loss_fn: nn.Module, runtime: Runtime, batch_size: int = 32
) -> dict[str, float]:
    """Validation loss (mean over slices) and Dice per structure per volume (3D), averaged over volumes."""
    model.eval()
    loss_sum, slices = 0.0, 0
    scores: dict[str, list[float]] = {s.key: [] for s in STRUCTURES}
    for _, first, count in data.volumes:
        predictions = []
        for start in range(first, first + count, batch_size):
            index = torch.arange(start, min(start + batch_size, first + count))
            images, labels = data.crops(index)
            with runtime.autocast():
                logits = model(runtime.to_input(images))
            labels = labels.to(runtime.device)
            loss_sum += float(loss_fn(logits.float(), labels)) * len(index)
            slices += len(index)
            predictions.append(logits.argmax(dim=1).cpu())
        predicted = torch.cat(predictions).numpy()
        reference = data.crops(torch.arange(first, first + count))[1].numpy()
        for structure in STRUCTURES:
            scores[structure.key].append(dice(predicted == structure.label, reference == structure.label))
    result = {"val_loss": loss_sum / max(slices, 1)}
    for key, values in scores.items():
        result[f"dice_{key}"] = float(np.mean(values))
    result["dice_mean"] = float(np.mean([result[f"dice_{s.key}"] for s in STRUCTURES]))
    return result
