"""The segmentation network and its self-describing checkpoints."""

from __future__ import annotations

from cmrseg.model.checkpoint import load_model, read_checkpoint, save_checkpoint
from cmrseg.model.dense_unet import PRESETS, DenseUNet, build_model, count_parameters, preset_args
from cmrseg.model.ensemble import Ensemble

__all__ = [
    "PRESETS",
    "DenseUNet",
    "Ensemble",
    "build_model",
    "count_parameters",
    "load_model",
    "preset_args",
    "read_checkpoint",
    "save_checkpoint",
]
