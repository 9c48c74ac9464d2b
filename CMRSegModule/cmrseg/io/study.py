"""The in-memory cine study: image ``[t, z, y, x]`` plus LPS geometry, frame times and patient data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np

from cmrseg.errors import CMRSegError


@dataclass
class PatientInfo:
    """What is known of the patient; ``None`` where the source does not say."""

    height_cm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None  # "M", "F" or "O" as in DICOM
    age_years: float | None = None
    group: str | None = None  # pathology group when a dataset gives it (ACDC: NOR, MINF, DCM, HCM, RV)
    patient_id: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Study:
    """A short-axis cine study (or a single frame, ``t = 1``).

    ``image`` is ``[t, z, y, x]``; ``spacing``, ``origin`` and the columns of ``direction`` are
    ``(x, y, z)`` in LPS millimetres (see :mod:`cmrseg`). ``ed_frame`` / ``es_frame`` are 0-based.
    """

    image: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    frame_times_ms: np.ndarray | None = None
    patient: PatientInfo = field(default_factory=PatientInfo)
    ed_frame: int | None = None
    es_frame: int | None = None
    source: str = ""
    description: str = ""
    # Number that names each frame in output files (ACDC keeps its own 1-based frame numbers); default the index.
    frame_numbers: list[int] | None = None
    # The file each [t][z] slice came from (relative to ``source``) where the reader knows it (DICOM): for messages
    # and for the references of a DICOM SEG.
    slice_files: list[list[str]] | None = None
    # Where those files are enhanced (multi-frame) DICOM: the 1-based frame number of each [t][z] slice in its file.
    slice_frames: list[list[int]] | None = None
    frame_times_known: bool = True  # False: frame_times_ms are frame indices (no real trigger times)
    series_uids: tuple[str, ...] = ()  # the DICOM series read (several: a stack joined from them)

    def __post_init__(self) -> None:
        if self.image.ndim == 3:
            self.image = self.image[np.newaxis]
        if self.image.ndim != 4:
            raise CMRSegError(f"A study image must be [t, z, y, x]; got an array of shape {self.image.shape}.")
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if not all(s > 0 for s in self.spacing):  # also refuses NaN
            raise CMRSegError(f"Voxel spacing must be positive; got {self.spacing}.")
        if self.frame_times_ms is None:
            self.frame_times_ms = np.arange(self.num_frames, dtype=float)
            self.frame_times_known = False
        self.frame_times_ms = np.asarray(self.frame_times_ms, dtype=float)
        if self.frame_times_ms.shape != (self.num_frames,):
            raise CMRSegError(
                f"{self.num_frames} frames but {self.frame_times_ms.size} frame times in {self.source or 'study'}."
            )
        if self.frame_numbers is not None and len(self.frame_numbers) != self.num_frames:
            raise CMRSegError(f"{self.num_frames} frames but {len(self.frame_numbers)} frame numbers.")
        for name in ("ed_frame", "es_frame"):
            index = getattr(self, name)
            if index is not None and not 0 <= index < self.num_frames:
                raise CMRSegError(f"{name} = {index} is outside the {self.num_frames} frames of the study.")

    @property
    def num_frames(self) -> int:
        return self.image.shape[0]

    @property
    def num_slices(self) -> int:
        return self.image.shape[1]

    @property
    def matrix(self) -> tuple[int, int]:
        """In-plane size as (rows, columns) = (y, x)."""
        return self.image.shape[2], self.image.shape[3]

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def frame_number(self, index: int) -> int:
        """The number that names frame ``index`` in output files."""
        return self.frame_numbers[index] if self.frame_numbers is not None else index

    def frame_time_ms(self, index: int) -> float | None:
        """The trigger time of frame ``index`` in ms, or ``None`` when the input does not give one."""
        return float(self.frame_times_ms[index]) if self.frame_times_known else None

    def frame(self, index: int) -> np.ndarray:
        """One frame as ``[z, y, x]``."""
        return self.image[index]

    def image_sha256(self) -> str:
        """A fingerprint of the pixel data as read (a run records it; a review re-reading the inputs checks
        that they still give the images the run segmented)."""
        return hashlib.sha256(np.ascontiguousarray(self.image).tobytes()).hexdigest()

    def on_grid_of(self, other: Study) -> bool:
        """Whether a frame of this study lies voxel for voxel where one of ``other`` does: the same matrix,
        spacing, origin and direction (within what file formats round)."""
        return (self.image.shape[1:] == other.image.shape[1:]
                and np.allclose(self.spacing, other.spacing, atol=1e-3)
                and np.allclose(self.origin, other.origin, atol=1e-2)
                and np.allclose(self.direction, other.direction, atol=1e-4))

    def single_frame(self, index: int) -> Study:
        """A one-frame study holding frame ``index`` (same geometry and patient data)."""
        return replace(
            self,
            image=self.image[index : index + 1],
            frame_times_ms=self.frame_times_ms[index : index + 1],
            frame_numbers=[self.frame_number(index)],
            slice_files=self.slice_files[index : index + 1] if self.slice_files is not None else None,
            slice_frames=self.slice_frames[index : index + 1] if self.slice_frames is not None else None,
            ed_frame=None,
            es_frame=None,
        )

    def index_to_lps(self, xyz: np.ndarray) -> np.ndarray:
        """Continuous voxel indices ``(..., 3)`` in (x, y, z) order to LPS points in mm."""
        xyz = np.asarray(xyz, dtype=float)
        return np.asarray(self.origin) + (xyz * np.asarray(self.spacing)) @ self.direction.T

    def summary(self) -> dict:
        """A JSON-ready description (what ``cmrseg info`` prints)."""
        times = self.frame_times_ms
        return {
            "source": self.source,
            "description": self.description,
            "frames": self.num_frames,
            "slices": self.num_slices,
            "matrix_rows_cols": list(self.matrix),
            "spacing_xyz_mm": [round(s, 4) for s in self.spacing],
            "origin_lps_mm": [round(o, 3) for o in self.origin],
            "direction_columns_lps": np.round(self.direction, 5).T.tolist(),
            "frame_times_ms": [round(float(t), 2) for t in times] if self.frame_times_known else None,
            "ed_frame": self.ed_frame,
            "es_frame": self.es_frame,
            "patient": self.patient.as_dict(),
        }
