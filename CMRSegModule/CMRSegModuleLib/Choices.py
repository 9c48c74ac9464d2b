"""The module's fixed choices (parameter node enums); ``label()`` is what the combo boxes show."""

from __future__ import annotations

import enum


class PatientSex(enum.Enum):
    UNKNOWN = "unknown"
    FEMALE = "F"
    MALE = "M"
    OTHER = "O"

    def label(self) -> str:
        return {"unknown": "Unknown (no reference ranges)", "F": "Female", "M": "Male", "O": "Other"}[self.value]


class Device(enum.Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"

    def label(self) -> str:
        return {"auto": "Automatic (CUDA if available)", "cpu": "CPU", "cuda": "CUDA GPU"}[self.value]


class BasalRule(enum.Enum):
    NONE = "none"
    HALF = "50"
    FULL = "100"

    def label(self) -> str:
        return {"none": "Keep all slices", "50": "Keep if >= 50 % enclosed by myocardium",
                "100": "Keep only if 100 % enclosed"}[self.value]
