"""Where the shipped model lives; importable without torch (the Slicer self test checks for torch first)."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"
DEFAULT_MODEL_NAME = "cmrseg_dense_unet.pt"


def default_model_path() -> Path:
    return MODELS_DIR / DEFAULT_MODEL_NAME
