"""Label values, segment names, colours and terminology, defined once (ACDC convention)."""

from __future__ import annotations

from dataclasses import dataclass

BACKGROUND = 0
RV = 1
MYO = 2
LV = 3
NUM_CLASSES = 4


@dataclass(frozen=True)
class Structure:
    label: int
    key: str  # short name used in tables and file names
    name: str  # segment name shown to the physician
    color: tuple[float, float, float]  # RGB in [0, 1], as in the paper's figure
    # Standard terminology (SNOMED CT): category, type and optional modifier as (code, meaning).
    category: tuple[str, str]
    type: tuple[str, str]
    modifier: tuple[str, str] | None = None


_TISSUE = ("85756007", "Tissue")
_ANATOMY = ("123037004", "Anatomical Structure")

# Codes of DICOM CID 7152 (cardiac structure segmentation type) and SNOMED CT "Myocardium structure". The
# blood pools carry the ventricle codes: DICOM has no separate "cavity" code, the segment name says it.
STRUCTURES: tuple[Structure, ...] = (
    Structure(RV, "RV", "RV blood pool", (1.0, 1.0, 0.0), _ANATOMY, ("53085002", "Right ventricle")),
    Structure(MYO, "Myo", "LV myocardium", (0.0, 0.8, 0.0), _TISSUE, ("74281007", "Myocardium")),
    Structure(LV, "LV", "LV blood pool", (1.0, 0.0, 0.0), _ANATOMY, ("87878005", "Left ventricle")),
)

BY_LABEL = {s.label: s for s in STRUCTURES}
BY_KEY = {s.key: s for s in STRUCTURES}
CHECKPOINT_LABELS = {"0": "background", **{str(s.label): s.key for s in STRUCTURES}}  # as checkpoints record them
