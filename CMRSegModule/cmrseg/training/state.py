"""The resumable training state (``last.pt``) and the per-epoch history files.

``last.pt`` is ``torch.save`` of plain data (tensors, numbers, strings; JSON text for the configuration and
the history), written atomically after every epoch (and inside epochs, with the position reached: see
:mod:`cmrseg.training.epoch_checkpoints`) and read with ``weights_only=True``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cmrseg.errors import CMRSegError
from cmrseg.model.checkpoint import atomic_save, atomic_write, plain_state_dict

STATE_FORMAT = "cmrseg-training-state"
STATE_VERSION = 1
HISTORY_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "val_loss",
    "dice_LV",
    "dice_RV",
    "dice_Myo",
    "dice_mean",
    "epoch_seconds",
)


def save_state(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    config: dict[str, Any],
    history: list[dict[str, Any]],
    best: dict[str, Any],
    class_weights: torch.Tensor,
    wall_seconds: float,
    init_sha256: str | None = None,
    teacher_sha256: str | None = None,
    partial: dict[str, Any] | None = None,
) -> Path:
    """Everything needed to continue after ``epoch`` (1-based, completed); ``init_sha256`` is the checkpoint
    a fine-tuning run started from, as it was then (the file may be replaced later), ``teacher_sha256`` the
    model it distils from. ``partial``, for a state saved inside the next epoch: that epoch, its batches done
    (``step``), their summed loss (``loss_sum``), its generator's state, learning rate and seconds so far."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    payload = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "epoch": int(epoch),
        "model": plain_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng,
        "class_weights": class_weights.detach().cpu().float(),
        "wall_seconds": float(wall_seconds),
        "config": json.dumps(config),
        "history": json.dumps(history),
        "best": json.dumps(best),
        "init_sha256": init_sha256 or "",
        "teacher_sha256": teacher_sha256 or "",
    }
    if partial is not None:
        payload["partial"] = partial
    return atomic_save(payload, path)


def load_state(path: str | Path) -> dict[str, Any]:
    """A ``last.pt`` with its JSON parts decoded; :class:`CMRSegError` if it is not one."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same message
        raise CMRSegError(f"Cannot resume: {path} is not a readable training state ({type(exc).__name__}).") from exc
    if not isinstance(payload, dict) or payload.get("format") != STATE_FORMAT:
        raise CMRSegError(f"Cannot resume: {path} is not a CMRSeg training state.")
    if payload.get("version") != STATE_VERSION:
        raise CMRSegError(f"Cannot resume: {path} has training-state version {payload.get('version')!r}.")
    for key in ("config", "history", "best"):
        payload[key] = json.loads(payload[key])
    partial = payload.get("partial")
    if partial is not None and partial.get("epoch") != payload["epoch"] + 1:
        raise CMRSegError(f"Cannot resume: {path} holds a part of epoch {partial.get('epoch')} after epoch "
                          f"{payload['epoch']}.")
    return payload


def restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():  # on as many GPUs as there are now
        for device, state in enumerate(rng["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, device)


def _atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda stream: stream.write(text.encode()))


def write_history(out_dir: str | Path, history: list[dict[str, Any]]) -> None:
    """``history.json`` (all fields) and ``history.csv`` (the main columns), one row per epoch."""
    out_dir = Path(out_dir)
    _atomic_text(out_dir / "history.json", json.dumps(history, indent=1) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    _atomic_text(out_dir / "history.csv", buffer.getvalue())
