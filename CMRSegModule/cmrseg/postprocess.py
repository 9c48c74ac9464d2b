"""Anatomical clean-up of a predicted ``[z, y, x]`` label map.

1. Each structure keeps its largest 3D connected component (one LV, one RV, one myocardium) and the parts
   that continue it on slices of their own beyond its end, within the outline of its end slice: on the next
   slice (the apical cap of the myocardium lies inside the ring above it, so it is not connected to it), or,
   when not small, beyond one or two empty slices (a slice the network missed: kept, the empty slice is a gap
   that the quality check flags). Dropping them would make the volume look right but too small.
2. In every slice, holes inside the LV blood pool (e.g. papillary muscles predicted as myocardium) become
   LV blood pool, as in the ACDC convention where papillary muscles belong to the cavity.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cmrseg.labels import BACKGROUND, LV, STRUCTURES

_CONNECTIVITY_3D = ndimage.generate_binary_structure(3, 3)


MAX_GAP_SLICES = 2  # empty slices a structure may continue across
MIN_CONTINUATION = 0.1  # of the largest component's volume
MIN_FOOTPRINT_OVERLAP = 0.5  # of the part's facing slice area, inside the largest component's facing slice


def main_component(mask: np.ndarray) -> np.ndarray:
    """The largest 3D connected component of ``mask`` and the parts that continue it across missed slices."""
    components, count = ndimage.label(mask, structure=_CONNECTIVITY_3D)
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    largest = components == sizes.argmax()
    kept = largest.copy()
    for label in np.flatnonzero(sizes):
        if label != sizes.argmax() and continues(largest, components == label,
                                                 sizes[label] >= MIN_CONTINUATION * sizes.max()):  # fmt: skip
            kept |= components == label
    return kept


def continues(main: np.ndarray, part: np.ndarray, sizeable: bool = True) -> bool:
    """Whether ``part`` lies on slices of its own beyond an end of ``main``, over the same place in-plane (its
    facing slice mostly inside the outline of ``main``'s facing slice, holes filled): on the next slice, or,
    when ``sizeable``, within :data:`MAX_GAP_SLICES` empty slices."""
    main_slices, part_slices = (np.flatnonzero(m.any(axis=(1, 2))) for m in (main, part))
    if part_slices[0] > main_slices[-1]:
        facing_main, facing_part = main_slices[-1], part_slices[0]
    elif part_slices[-1] < main_slices[0]:
        facing_main, facing_part = main_slices[0], part_slices[-1]
    else:
        return False  # beside the main part on a shared slice: a separate blob
    gap = abs(facing_part - facing_main) - 1
    if gap > (MAX_GAP_SLICES if sizeable else 0):
        return False
    footprint, outline = part[facing_part], ndimage.binary_fill_holes(main[facing_main])
    return (footprint & outline).sum() >= MIN_FOOTPRINT_OVERLAP * footprint.sum()


def fill_lv_holes(labels: np.ndarray) -> np.ndarray:
    result = labels.copy()
    for z in range(labels.shape[0]):
        lv = labels[z] == LV
        if lv.any():
            result[z][ndimage.binary_fill_holes(lv) & ~lv] = LV
    return result


def clean_labels(labels: np.ndarray) -> np.ndarray:
    result = np.full_like(labels, BACKGROUND)
    for structure in STRUCTURES:
        result[main_component(labels == structure.label)] = structure.label
    return fill_lv_holes(result)
