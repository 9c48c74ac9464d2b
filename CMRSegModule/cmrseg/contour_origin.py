"""Where a Sunnybrook copy's contours fit best: measured on its images, and against a model.

The contour files give pixel coordinates without saying whether pixels count from 0 or from 1
(:data:`cmrseg.io.sunnybrook.CONTOUR_ORIGIN`). Two independent measures of the shift that would fit the
contours, as read, best:

- the images alone: the shift of every i-contour that makes its edges sharpest, blood bright inside and
  the wall dark outside;
- a model: the shift that gives the best mean of LV Dice at ED and ES and myocardium Dice at ED on the
  contoured slices (the model's own alignment is checked on ACDC, whose masks share the images' grid).

Both near no shift: the origin is right. Both near -1 (or +1) in x and y: the coordinates are off by one.

Run as ``python -m cmrseg.contour_origin SUNNYBROOK_ROOT [--model PATH] [--images-only]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_cine import read_dicom_cine_with_index
from cmrseg.io.sunnybrook import (
    contour_files,
    contours_to_case,
    read_contour,
    read_link_csv,
    require_contour_folder,
)

SHIFTS = np.arange(-1.5, 1.51, 0.25)  # pixels, in x and in y


def edge_contrast(image: np.ndarray, points: np.ndarray, depth: float = 1.5) -> float:
    """Mean image value ``depth`` pixels inside a closed contour's edges minus that as far outside (along
    the edges' normals, weighted by edge length); ``points`` are ``(x, y)`` = (column, row) from 0."""
    closed = np.vstack([points, points[:1]])
    edges = np.diff(closed, axis=0)
    lengths = np.hypot(*edges.T)
    keep = lengths > 0
    middles = closed[:-1][keep] + edges[keep] / 2
    normals = np.column_stack([edges[keep, 1], -edges[keep, 0]]) / lengths[keep, None]
    if np.sum(closed[:-1, 0] * closed[1:, 1] - closed[1:, 0] * closed[:-1, 1]) < 0:
        normals = -normals  # point them out of the polygon

    def sample(xy: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(image, [xy[:, 1], xy[:, 0]], order=1)

    return float(np.average(sample(middles - depth * normals) - sample(middles + depth * normals),
                            weights=lengths[keep]))


def image_grid(images_and_contours: list[tuple[np.ndarray, np.ndarray]], shifts=SHIFTS) -> np.ndarray:
    """Summed edge contrast of the i-contours moved by every ``(dy, dx)`` of ``shifts`` x ``shifts``; each
    image scaled by its 99th percentile so that no slice outweighs the others."""
    scaled = [(image / top, points) for image, points in images_and_contours
              if (top := np.percentile(image, 99)) > 0]  # a blank slice has no edges to weigh
    return np.array([[sum(edge_contrast(image, points + [dx, dy]) for image, points in scaled)
                      for dx in shifts] for dy in shifts])


def model_grid(study, refs, contour_folder: Path, predicted: dict[int, np.ndarray], shifts=SHIFTS) -> np.ndarray:
    """Mean of LV Dice (ED, ES) and myocardium Dice (ED) of ``predicted`` against the contours moved by every
    ``(dy, dx)``."""
    grid = np.zeros((len(shifts), len(shifts)))
    for i, dy in enumerate(shifts):
        for j, dx in enumerate(shifts):
            case = contours_to_case(study, refs, contour_folder, shift_xy=(dx, dy))
            grid[i, j] = np.mean(list(case.contour_dice(predicted).values()))
    return grid


def peak(grid: np.ndarray, shifts=SHIFTS) -> tuple[float, float]:
    """The ``(dx, dy)`` of a grid's largest value."""
    row, column = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return float(shifts[column]), float(shifts[row])


def measure_study(dicom_folder: Path, contour_folder: Path, segmenter=None) -> dict:
    """Both measures for one study (the model's only with a ``segmenter``): each one's best shift, its value
    there, as read, and one pixel right and down (where the reading from 0 puts files that count from 1)."""
    require_contour_folder(contour_folder)  # before the slower DICOM read
    study, refs = read_dicom_cine_with_index(dicom_folder)
    images = [(study.image[t, z].astype(float), read_contour(path))
              for (t, z), path in sorted(contour_files(contour_folder, refs)["i"].items())]
    grids = {"image edges": image_grid(images)}
    if segmenter is not None:
        from cmrseg.inference import segment_frames  # torch, only when a model is asked for

        case = contours_to_case(study, refs, contour_folder)
        predicted = segment_frames(study, [case.ed_frame, case.es_frame], segmenter)
        grids["model Dice"] = model_grid(study, refs, contour_folder, predicted)
    here, right_down = (int(np.flatnonzero(np.isclose(SHIFTS, value))[0]) for value in (0.0, 1.0))
    return {name: {"best_shift_xy": peak(grid), "best": float(grid.max()), "as_read": float(grid[here, here]),
                   "one_pixel_right_down": float(grid[right_down, right_down])} for name, grid in grids.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmrseg.contour_origin", description=__doc__.splitlines()[0])
    parser.add_argument("root", help="Sunnybrook copy (the folder with link.csv, dicoms/ and contours/)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", help="checkpoint (default: the shipped model)")
    which.add_argument("--images-only", action="store_true", help="measure on the images alone (no model)")
    args = parser.parse_args(argv)
    try:
        root = Path(args.root)
        links = read_link_csv(root)
        segmenter = None
        if not args.images_only:
            from cmrseg.inference import Segmenter  # torch, only when a model is asked for

            segmenter = Segmenter.load(args.model, device="cpu")
        for case_id, contour_folder in sorted(links.items()):
            for name, found in measure_study(root / "dicoms" / case_id, contour_folder, segmenter).items():
                dx, dy = found["best_shift_xy"]
                print(f"{case_id} {name}: best at dx {dx:+.2f}, dy {dy:+.2f} ({found['best']:.3f}); as read "
                      f"{found['as_read']:.3f}; one pixel right and down {found['one_pixel_right_down']:.3f}")
    except (CMRSegError, OSError) as error:
        print(f"cmrseg: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
