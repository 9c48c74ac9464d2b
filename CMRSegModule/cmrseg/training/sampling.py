"""Drawing some training slices more often than others: ``cmrseg train --oversample ES=2,HCM=2``.

The weak cases of the network are known (end-systolic cavities, hypertrophic hearts); drawing their slices more
often is one way to weight them. A slice's weight is the product of the factors of its phase (ED, ES) and of
its patient's ACDC group (NOR, MINF, DCM, HCM, RV); slices no factor names keep weight 1.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cmrseg.errors import CMRSegError
from cmrseg.io.acdc import GROUPS, PHASES, patient_folder, read_info
from cmrseg.training.data import SliceSet


def parse_oversample(spec: str) -> dict[str, float]:
    """``"ES=2,HCM=1.5"`` as ``{"ES": 2.0, "HCM": 1.5}``; a clear error for anything else."""
    factors: dict[str, float] = {}
    for item in spec.split(","):
        name, sep, value = item.strip().partition("=")
        name = name.strip().upper()
        if not sep or name not in PHASES + GROUPS:
            raise CMRSegError(
                f"--oversample {spec!r}: give NAME=FACTOR pairs separated by commas, NAME one of "
                f"{', '.join(PHASES + GROUPS)} (for example ES=2,HCM=2)."
            )
        try:
            factor = float(value)
        except ValueError:
            factor = float("nan")
        if not 0 < factor <= 100:  # also refuses nan
            raise CMRSegError(f"--oversample {spec!r}: the factor of {name} must be a number in (0, 100].")
        if name in factors:
            raise CMRSegError(f"--oversample {spec!r}: {name} is given twice.")
        factors[name] = factor
    return factors


def slice_weights(data: SliceSet, data_root: str | Path, spec: str) -> torch.Tensor:
    """Sampling weight ``[N]`` of every slice of ``data`` (loaded from ``data_root``) under ``spec``."""
    factors = parse_oversample(spec)
    weights = torch.ones(len(data), dtype=torch.float64)
    for name, first, count in data.volumes:
        patient, phase = name.rsplit("_", 1)
        group = read_info(patient_folder(data_root, patient)).get("Group", "")
        weights[first : first + count] = factors.get(phase, 1.0) * factors.get(group, 1.0)
    return weights


def weighted_order(weights: torch.Tensor, batch_size: int, iterations: int, generator: torch.Generator
                   ) -> torch.Tensor:
    """``[iterations, batch_size]`` slice indices drawn with replacement in proportion to ``weights``."""
    drawn = torch.multinomial(weights, iterations * batch_size, replacement=True, generator=generator)
    return drawn.reshape(iterations, batch_size)
