"""ACDC frames pre-processed once into memory as 2D slices, and the random batches drawn from them.

Training frames are resampled to the network's pixel spacing on a canvas of ``size + 2 * jitter`` pixels
centred on the centroid of the expert labels; each batch takes a ``size`` crop at a random offset of up to
``jitter`` pixels from the centre (the heart is not always at the crop centre at inference). Validation
frames are cropped at ``size`` centred on the label centroid (segmentation quality given localisation).
With ``context`` K > 0, each slice comes with its K neighbours on either side as channels
(:mod:`cmrseg.neighbours`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from cmrseg.io.acdc import PHASES, load_frame
from cmrseg.neighbours import neighbour_indices, neighbour_order
from cmrseg.preprocess import PreprocessConfig, label_centroid, plan_crop, preprocess_frame, resample_labels
from cmrseg.progress import ProgressCallback, report


@dataclass
class SliceSet:
    """Pre-processed slices: ``images`` ``[N, H, W]`` (float16, [0, 1]), ``labels`` ``[N, H, W]`` (uint8).

    ``volumes`` lists ``(name, first slice, number of slices)`` for each frame, for per-volume metrics.
    """

    images: torch.Tensor
    labels: torch.Tensor
    volumes: list[tuple[str, int, int]]
    margin: int  # canvas pixels on each side beyond the crop size
    context: int = 0  # neighbour slices on each side given as extra channels (2.5-D input)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def crop_size(self) -> tuple[int, int]:
        return self.images.shape[1] - 2 * self.margin, self.images.shape[2] - 2 * self.margin

    def central_labels(self) -> torch.Tensor:
        """Labels of the central crops (what the network sees on average)."""
        m, (h, w) = self.margin, self.crop_size
        return self.labels[:, m : m + h, m : m + w]

    def crops(
        self, indices: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B, 2 K + 1, h, w]`` (float32: each slice with its ``context`` K neighbours on either side)
        and labels ``[B, h, w]`` (int64) of the slices ``indices``.

        With a ``generator``, each crop is shifted by a random offset of up to ``margin`` pixels, and the
        neighbours come in either order at random.
        """
        m, (h, w) = self.margin, self.crop_size
        if generator is not None and m > 0:
            offsets = torch.randint(0, 2 * m + 1, (len(indices), 2), generator=generator).tolist()
        else:
            offsets = [(m, m)] * len(indices)
        windows = [(i, slice(y, y + h), slice(x, x + w)) for i, (y, x) in zip(indices.tolist(), offsets, strict=True)]
        stacks = torch.from_numpy(self.neighbours[indices.numpy()])
        images = torch.stack([self.images[stack, ys, xs] for stack, (_, ys, xs) in zip(stacks, windows, strict=True)])
        labels = torch.stack([self.labels[i, ys, xs] for i, ys, xs in windows])
        images = images.float()
        if self.context and generator is not None:
            images = neighbour_order(images, generator)
        return images, labels.long()

    @cached_property
    def neighbours(self) -> np.ndarray:
        """``[N, 2 K + 1]``: each slice's index and its neighbours' in its own stack (clamped at the ends)."""
        return np.concatenate([neighbour_indices(first, count, self.context) for _, first, count in self.volumes])


def load_slices(
    data_root: str | Path,
    patients: list[str],
    config: PreprocessConfig,
    margin: int = 0,
    progress: ProgressCallback | None = None,
    what: str = "Pre-processing",
    context: int = 0,
) -> SliceSet:
    """ED and ES frames of ``patients`` (ACDC folder names under ``data_root``, or a slice pack of
    :mod:`cmrseg.training.pack`) as pre-processed slices."""
    from cmrseg.training.pack import is_pack, slices_from_pack

    if is_pack(data_root):
        return slices_from_pack(data_root, patients, config, margin, context)
    root = Path(data_root)
    if (root / "training").is_dir():
        root = root / "training"
    canvas = PreprocessConfig(
        target_spacing_mm=config.target_spacing_mm,
        size=(config.size[0] + 2 * margin, config.size[1] + 2 * margin),
        percentiles=config.percentiles,
        antialias=config.antialias,
    )
    images, labels, volumes, start = [], [], [], 0
    total = len(patients) * len(PHASES)
    for done, (patient, phase) in enumerate(((p, ph) for p in patients for ph in PHASES), start=1):
        frame = load_frame(root / patient, phase)
        center = label_centroid(frame.mask)
        image, geometry = preprocess_frame(frame.image, frame.study.spacing, canvas, center)
        mask = resample_labels(frame.mask, plan_crop(frame.mask.shape, frame.study.spacing, canvas, center))
        images.append(torch.from_numpy(image).to(torch.float16))
        labels.append(torch.from_numpy(mask))
        volumes.append((f"{patient}_{phase}", start, image.shape[0]))
        start += image.shape[0]
        report(progress, done, total, what)
    return SliceSet(torch.cat(images), torch.cat(labels), volumes, margin, context)


def epoch_order(n_slices: int, batch_size: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """``[iterations, batch_size]`` slice indices: consecutive random permutations of all slices."""
    needed = iterations * batch_size
    chunks, count = [], 0
    while count < needed:
        chunks.append(torch.randperm(n_slices, generator=generator))
        count += n_slices
    return torch.cat(chunks)[:needed].reshape(iterations, batch_size)
