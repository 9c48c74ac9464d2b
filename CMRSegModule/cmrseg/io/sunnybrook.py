"""Sunnybrook Cardiac Data (Radau et al., MIDAS Journal 2009): manual LV contours as ACDC label masks.

A case is a DICOM folder (the full cine, one image per file, read with :mod:`cmrseg.io.dicom_cine`) and a
contour folder. Contour files are named ``IM-0001-NNNN-icontour-manual.txt`` (LV endocardium, drawn at ED
and ES) and ``IM-0001-NNNN-ocontour-manual.txt`` (epicardium, ED only). Each holds the ``x y`` pixel
coordinates of a closed polygon on the DICOM instance with ``InstanceNumber`` NNNN (in the shared copy the
file ``NNNN.dcm`` is that instance too). ``x`` counts columns and ``y`` rows, both from 1: the centre of
pixel ``[row, column]`` (0-based) is the point ``(x, y) = (column + 1, row + 1)``. The data's documentation
does not state the origin; it is measured (``CONTOUR_ORIGIN``). A pixel belongs to a contour when its centre
lies inside the polygon (even-odd rule).

Masks use the ACDC labels of :mod:`cmrseg.labels`: LV blood pool (inside the i-contour) and, at ED where an
o-contour exists, myocardium (inside the o-contour, outside the i-contour). There is no RV.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmrseg import labels
from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_cine import DicomReadWarning, InstanceRef, read_dicom_cine_with_index
from cmrseg.io.study import Study
from cmrseg.metrics import dice
from cmrseg.progress import ProgressCallback

CONTOUR_NAME = re.compile(r"IM-\d+-(\d+)-([io])contour-manual\.txt$", re.IGNORECASE)
# The file coordinates of the centre of pixel [0, 0]. On the shared studies, the contours read from 0 sit
# about one pixel right of and below both the image's blood-pool edges and the shipped networks' boundaries
# (which are aligned to ACDC's masks within 0.2 pixel); read from 1 they fit both
# (measured by `python -m cmrseg.contour_origin`).
CONTOUR_ORIGIN = 1.0


@dataclass
class SunnybrookCase:
    """A Sunnybrook cine with its expert masks at ED and ES (``[z, y, x]``, ACDC labels, uint8)."""

    study: Study  # the whole cine, with ed_frame and es_frame set
    ed_frame: int  # 0-based
    es_frame: int
    ed_mask: np.ndarray  # LV and (where an o-contour exists) Myo
    es_mask: np.ndarray  # LV only
    ed_slices: tuple[int, ...]  # slices with an i-contour at ED
    es_slices: tuple[int, ...]  # slices with an i-contour at ES
    epi_slices: tuple[int, ...]  # slices with an o-contour at ED

    def phases(self) -> tuple:
        """``(name, frame, expert mask, contoured slices)`` of ED and ES."""
        return (("ed", self.ed_frame, self.ed_mask, list(self.ed_slices)),
                ("es", self.es_frame, self.es_mask, list(self.es_slices)))

    def contour_dice(self, predicted: dict[int, np.ndarray]) -> dict[str, float]:
        """Dice of label maps by frame against the contours: LV at ED and ES on the slices with an i-contour,
        myocardium at ED on those with an o-contour."""
        scores = {f"lv_dice_{phase}": dice(predicted[frame][slices] == labels.LV, mask[slices] == labels.LV)
                  for phase, frame, mask, slices in self.phases()}
        epi = list(self.epi_slices)
        scores["myo_dice_ed"] = dice(predicted[self.ed_frame][epi] == labels.MYO, self.ed_mask[epi] == labels.MYO)
        return scores

    def lv_volume_ml(self, phase: str) -> float:
        """LV blood-pool volume at ``"ED"`` or ``"ES"`` from voxel counts."""
        mask = self.ed_mask if phase.upper() == "ED" else self.es_mask
        return float(np.count_nonzero(mask == labels.LV)) * self.study.voxel_volume_ml


def read_link_csv(root: str | Path) -> dict[str, Path]:
    """``link.csv`` of a Sunnybrook root: DICOM folder name -> contour folder (``root/contours/<id>``)."""
    root = Path(root)
    path = root / "link.csv"
    if not path.is_file():
        raise CMRSegError(f"{path} is missing; it maps the DICOM folders of a Sunnybrook copy to its contours.")
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows or not {"patient_id", "original_id"} <= set(rows[0]):
        raise CMRSegError(f"{path} must have the columns patient_id and original_id.")
    return {row["patient_id"].strip(): root / "contours" / row["original_id"].strip() for row in rows}


def read_contour(path: str | Path) -> np.ndarray:
    """The ``(n, 2)`` array of ``x y`` (column, row) points of one contour file, counted from 0 as array
    indices are (the file's values less ``CONTOUR_ORIGIN``)."""
    path = Path(path)
    try:
        points = np.loadtxt(path, dtype=float, ndmin=2)
    except ValueError as exc:
        raise CMRSegError(f"{path} is not a list of 'x y' pixel coordinates ({exc}).") from exc
    if points.shape[1] != 2 or len(points) < 3:
        raise CMRSegError(f"{path} must hold at least 3 points of 2 coordinates; got shape {points.shape}.")
    return points - CONTOUR_ORIGIN


def polygon_mask(points_xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``[rows, columns]`` mask of the pixels whose centre lies inside a closed polygon.

    ``points_xy`` is ``(n, 2)`` in pixel units, ``x`` = column and ``y`` = row, the centre of pixel
    ``[r, c]`` being ``(c, r)``. Even-odd ray casting; the polygon closes itself (last to first point).
    """
    points = np.asarray(points_xy, dtype=float)
    mask = np.zeros(shape, dtype=bool)
    x0, y0 = np.maximum(np.ceil(points.min(axis=0)).astype(int), 0)
    x1 = min(int(np.floor(points[:, 0].max())), shape[1] - 1)
    y1 = min(int(np.floor(points[:, 1].max())), shape[0] - 1)
    if x0 > x1 or y0 > y1:
        return mask
    ys, xs = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(float)
    inside = np.zeros(ys.shape, dtype=bool)
    xa, ya = points[:, 0], points[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)
    for ax, ay, bx, by in zip(xa, ya, xb, yb, strict=True):
        if ay == by:
            continue  # a horizontal edge is never crossed by a horizontal ray
        crosses = (ay > ys) != (by > ys)
        x_cross = ax + (ys - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xs < x_cross)
    mask[y0 : y1 + 1, x0 : x1 + 1] = inside
    return mask


def require_contour_folder(contour_folder: str | Path) -> Path:
    if not Path(contour_folder).is_dir():
        raise CMRSegError(f"{contour_folder} is not a folder of Sunnybrook contour files.")
    return Path(contour_folder)


def contour_files(contour_folder: Path, refs: list[InstanceRef]) -> dict[str, dict[tuple[int, int], Path]]:
    """Contour files by kind (``"i"``, ``"o"``) and the ``(frame, slice)`` of the instance they lie on."""
    contour_folder = require_contour_folder(contour_folder)
    by_instance = {ref.instance_number: ref for ref in refs}
    found: dict[str, dict[tuple[int, int], Path]] = {"i": {}, "o": {}}
    for path in sorted(contour_folder.rglob("*contour-manual.txt")):
        match = CONTOUR_NAME.search(path.name)
        if match is None:
            continue
        number, kind = int(match.group(1)), match.group(2).lower()
        ref = by_instance.get(number)
        if ref is None:
            raise CMRSegError(
                f"{path.name} lies on image {number}, but the cine has no instance with InstanceNumber {number}. "
                "Check that the contour folder belongs to this DICOM folder (see link.csv)."
            )
        key = (ref.frame, ref.slice)
        if key in found[kind]:
            raise CMRSegError(f"{path.name} and {found[kind][key].name} are two contours on one image.")
        found[kind][key] = path
    if not found["i"]:
        raise CMRSegError(f"No i-contour files (IM-....-NNNN-icontour-manual.txt) under {contour_folder}.")
    return found


def contours_to_case(study: Study, refs: list[InstanceRef], contour_folder: str | Path,
                     shift_xy: tuple[float, float] = (0.0, 0.0)) -> SunnybrookCase:
    """Rasterise the contours of ``contour_folder`` on the grid of a cine read with its index.

    ``shift_xy`` (pixels) moves every contour as read; :mod:`cmrseg.contour_origin` measures with it.
    """
    contour_folder = Path(contour_folder)
    found = contour_files(contour_folder, refs)
    shape = study.matrix
    areas: dict[int, dict[int, int]] = {}
    inner: dict[tuple[int, int], np.ndarray] = {}
    for (t, z), path in found["i"].items():
        inner[t, z] = polygon_mask(read_contour(path) + shift_xy, shape)
        areas.setdefault(t, {})[z] = int(inner[t, z].sum())
    if len(areas) != 2:
        raise CMRSegError(
            f"The i-contours of {contour_folder} lie on {len(areas)} phase(s) (frames {sorted(areas)}); "
            "expected two, ED and ES."
        )
    first, second = sorted(areas)
    common = set(areas[first]) & set(areas[second])
    totals = {t: sum(a for z, a in areas[t].items() if not common or z in common) for t in areas}
    ed, es = (first, second) if totals[first] >= totals[second] else (second, first)
    ed_mask = np.zeros(study.image.shape[1:], dtype=np.uint8)
    es_mask = np.zeros_like(ed_mask)
    for (t, z), mask in inner.items():
        (ed_mask if t == ed else es_mask)[z][mask] = labels.LV
    epi = []
    for (t, z), path in sorted(found["o"].items()):
        if t != ed:
            warnings.warn(
                f"{path.name} is an o-contour on frame {t}, not on ED (frame {ed}); it is ignored.",
                DicomReadWarning,
                stacklevel=2,
            )
            continue
        outer = polygon_mask(read_contour(path) + shift_xy, shape)
        ed_mask[z][outer & (ed_mask[z] != labels.LV)] = labels.MYO
        epi.append(z)
    study.ed_frame, study.es_frame = ed, es
    return SunnybrookCase(
        study=study,
        ed_frame=ed,
        es_frame=es,
        ed_mask=ed_mask,
        es_mask=es_mask,
        ed_slices=tuple(sorted(areas[ed])),
        es_slices=tuple(sorted(areas[es])),
        epi_slices=tuple(epi),
    )


def load_sunnybrook_contours(
    dicom_folder: str | Path, contour_folder: str | Path, progress: ProgressCallback | None = None
) -> SunnybrookCase:
    """Read a Sunnybrook cine and its manual contours.

    ED and ES are the two phases the i-contours are drawn on; ED is the one with the larger LV area summed
    over the slices contoured at both. The returned study has ``ed_frame`` and ``es_frame`` set.
    """
    require_contour_folder(contour_folder)  # before the slower DICOM read
    study, refs = read_dicom_cine_with_index(dicom_folder, progress=progress)
    return contours_to_case(study, refs, contour_folder)
