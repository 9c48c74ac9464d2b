"""What a trained model's checkpoint records about its training (data, settings, machine, metrics)."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cmrseg import __version__
from cmrseg.augment import AugmentConfig
from cmrseg.labels import CHECKPOINT_LABELS
from cmrseg.training.config import TrainConfig, reproducing_command
from cmrseg.training.data import SliceSet
from cmrseg.training.split import file_sha256


def machine_description(device: torch.device) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def checkpoint_metadata(
    config: TrainConfig,
    split_path: Path,
    train: SliceSet,
    val: SliceSet,
    weights: torch.Tensor,
    augmentation: AugmentConfig,
    history: list[dict[str, Any]],
    best_row: dict[str, Any],
    wall_seconds: float,
    device: torch.device,
    n_parameters: int,
    init_sha256: str | None = None,
    teacher_sha256: str | None = None,
) -> dict[str, Any]:
    """What ``best.pt`` says about itself besides the architecture."""
    preprocessing = config.preprocess().as_dict()
    preprocessing.update(
        {
            "resampling": "in-plane only (slices kept); bilinear images, one-hot labels",
            "intensity": "clip to the frame's 1st/99th percentiles, map to [0, 1]",
            "crop_center_training": f"label centroid, random shift up to {config.jitter_px} px",
            "crop_center_validation": "label centroid",
        }
    )
    return {
        "labels": CHECKPOINT_LABELS,
        "preprocessing": preprocessing,
        "training": {
            "dataset": "ACDC (Bernard et al., IEEE TMI 2018), ED and ES frames",
            "data": str(config.data),
            "split_file": str(split_path),
            "split_sha256": file_sha256(split_path),
            "train_volumes": len(train.volumes),
            "train_slices": len(train),
            "val_volumes": len(val.volumes),
            "epochs": config.epochs,
            "epochs_trained": len(history),
            "best_epoch": best_row["epoch"],
            "loss": config.loss,
            "class_weighting": f"{config.class_weighting} (frequencies of the central training crops)",
            "class_weights": [round(float(w), 6) for w in weights],
            "optimizer": f"Adam (lr {config.lr}, weight decay {config.weight_decay})",
            "schedule": f"linear warm-up {config.warmup_epochs} epochs, cosine decay to 1 % over {config.epochs}",
            "precision": config.precision,
            "augmentation": augmentation.as_dict(),
            "config": asdict(config),
            "parameters": n_parameters,
            "command": reproducing_command(config, str(split_path)),  # the run's own split.json
            **({"init_sha256": init_sha256} if init_sha256 else {}),
            **({"teacher_sha256": teacher_sha256} if teacher_sha256 else {}),
            "argv": sys.argv,
            "wall_seconds": round(wall_seconds, 1),
            "machine": machine_description(device),
        },
        "metrics": {"validation": {k: v for k, v in best_row.items() if k != "epoch"}, "epoch": best_row["epoch"]},
        "cmrseg_version": __version__,
    }
