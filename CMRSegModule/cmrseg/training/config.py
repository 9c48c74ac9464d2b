"""The settings that define a training run, how a resumed run treats them, and the command that repeats them."""

from __future__ import annotations

import argparse
import math
import shlex
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from cmrseg.errors import CMRSegError

if TYPE_CHECKING:
    from cmrseg.preprocess import PreprocessConfig

# The choices of the command line, kept here so that parsing needs no torch (tests check them against
# cmrseg.model.dense_unet.PRESETS, cmrseg.losses.LOSSES, cmrseg.losses.WEIGHTINGS and
# cmrseg.augment.AUGMENTATIONS).
PRESET_NAMES = ("compact", "medium", "paper")
LOSS_NAMES = ("wce", "wce+dice")
WEIGHTING_NAMES = ("median", "sqrt-median", "none")
AUGMENTATION_NAMES = ("standard", "strong", "domain", "none")


@dataclass(frozen=True)
class TrainConfig:
    """What defines a training run (stored in ``last.pt``; a resumed run keeps it)."""

    data: str
    preset: str = "compact"
    base_filters: int | None = None  # overrides the preset's width
    # defaults: the shipped model's best single recipe (scripts/model_levers.md, row 4)
    loss: str = "wce+dice"
    class_weighting: str = "none"
    epochs: int = 60
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_epochs: float = 2.0
    iterations_per_epoch: int | None = None  # default: one pass over the training slices
    seed: int = 0
    max_patients: int | None = None  # at most this many training and this many validation patients
    spacing_mm: float = 1.5
    size: int = 176
    jitter_px: int = 32  # random crop offset around the heart during training (48 mm at 1.5 mm)
    precision: str = "bf16"
    augmentation: str = "strong"
    init: str | None = None  # checkpoint whose weights start the run (fine-tuning)
    init_member: int | None = None  # which network of an ensemble checkpoint
    oversample: str | None = None  # draw some slices more often, e.g. "ES=2,HCM=2" (cmrseg.training.sampling)
    neighbour_slices: int = 0  # 2.5-D input: this many neighbours on each side as channels (cmrseg.neighbours)
    distil_from: str | None = None  # a trained model whose probabilities it also learns (cmrseg.training.distil)
    distil_weight: float | None = None  # its share of the loss (DEFAULT_DISTIL_WEIGHT when distilling)

    def preprocess(self) -> PreprocessConfig:
        from cmrseg.preprocess import PreprocessConfig

        return PreprocessConfig(target_spacing_mm=self.spacing_mm, size=(self.size, self.size))

    def model_args(self) -> dict[str, int]:
        args = {"in_channels": 2 * self.neighbour_slices + 1}
        return {**args, "base_filters": self.base_filters} if self.base_filters else args


DEFAULT_DISTIL_WEIGHT = 0.5

# Settings a resumed run may change; any other explicit difference from last.pt is an error.
RESUME_MUTABLE = {"epochs", "data", "distil_from"}  # files checked by content where it matters


# The defaults before the shipped recipe became the default: a resumed run whose saved settings lack one (saved
# before it was recorded) trained with these.
EARLIER_DEFAULTS = {"loss": "wce", "class_weighting": "median", "epochs": 100}


def default_precision() -> str:
    """bf16 autocast where it is native (a CUDA GPU, or a CPU with AVX-512 BF16 / AMX), else fp32: emulated
    bf16 on a CPU without it was measured ~7x slower than fp32."""
    import torch

    from cmrseg.inference import cpu_has_fast_bf16

    return "bf16" if torch.cuda.is_available() or cpu_has_fast_bf16() else "fp32"


def resolve_config(args: argparse.Namespace, stored: dict[str, Any] | None) -> TrainConfig:
    """Defaults, then the stored configuration of a resumed run, then what was given on the command line."""
    names = [f.name for f in fields(TrainConfig)]
    given = {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}
    if stored is not None:
        changed = sorted(k for k, v in given.items() if k not in RESUME_MUTABLE and stored.get(k) != v)
        if changed:
            raise CMRSegError(
                "Cannot resume with different settings: "
                + ", ".join(f"--{k.replace('_', '-')} {given[k]} (run: {stored.get(k)})" for k in changed)
                + ". Leave them out to keep the run's settings, or start a new run in another --out."
            )
    earlier = {}
    if stored is not None:  # a run saved before a setting existed keeps what it trained with then
        earlier = {**EARLIER_DEFAULTS, "augmentation": "standard" if stored.get("augment", True) else "none"}
    values = {**asdict(TrainConfig(data="")), **earlier, **(stored or {}), **given}
    if stored is None and "precision" not in given:
        values["precision"] = default_precision()
    if not values["data"]:
        raise CMRSegError("Give the ACDC data folder with --data.")
    config = TrainConfig(**{k: values[k] for k in names})
    if config.size % 16 or config.size < 16:
        raise CMRSegError(f"--size {config.size}: the network input size must be a multiple of 16.")
    if config.epochs < 1 or config.batch_size < 1:
        raise CMRSegError("--epochs and --batch-size must be at least 1.")
    check_numbers(config)
    if not 0 <= config.neighbour_slices <= 3:
        raise CMRSegError(f"--neighbour-slices {config.neighbour_slices}: give 0 (one slice) to 3 on each side.")
    if config.distil_weight is not None and not (config.distil_from and 0.0 < config.distil_weight <= 1.0):
        raise CMRSegError(f"--distil-weight {config.distil_weight}: give a share in (0, 1], with --distil-from.")
    if config.distil_from and config.distil_weight is None:
        config = replace(config, distil_weight=DEFAULT_DISTIL_WEIGHT)
    if config.oversample is not None:
        from cmrseg.training.sampling import parse_oversample

        parse_oversample(config.oversample)
    return config


# option -> (smallest allowed, whether that value itself is allowed): a value outside trains a broken network
# (a NaN or infinite rate: every loss NaN, a validation Dice of 0 saved as best) or fails deep in the run
NUMBER_LIMITS = {"lr": (0.0, False), "weight_decay": (0.0, True), "warmup_epochs": (0.0, True),
                 "spacing_mm": (0.0, False), "jitter_px": (0, True), "max_patients": (1, True),
                 "iterations_per_epoch": (1, True), "base_filters": (1, True), "init_member": (0, True)}


def check_numbers(config: TrainConfig) -> None:
    """Refuse numeric settings that are not finite or below their limit, before any work."""
    for name, (lowest, inclusive) in NUMBER_LIMITS.items():
        value = getattr(config, name)
        if value is None:
            continue
        if not (math.isfinite(value) and (value >= lowest if inclusive else value > lowest)):
            bound = f"at least {lowest:g}" if inclusive else f"more than {lowest:g}"
            raise CMRSegError(f"--{name.replace('_', '-')} {value}: give a finite number {bound}.")


def reproducing_command(config: TrainConfig, split_file: str | None = None) -> str:
    """The ``cmrseg train`` command with every setting of ``config`` spelled out (``--out`` left to choose), and
    the ``--split`` file given (without one, the split is made from ``--seed``: another seed, another split)."""
    words = ["cmrseg", "train"]
    for name, value in asdict(config).items():
        option = "--" + name.replace("_", "-")
        if value is not None:
            words += [option, str(value)]
    return shlex.join(words + (["--split", split_file] if split_file else []) + ["--out", "OUT"])
