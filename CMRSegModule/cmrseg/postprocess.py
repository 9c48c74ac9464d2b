"""Anatomical clean-up of a predicted ``[z, y, x]`` label map.

1. Each structure keeps its largest 3D connected component (one LV, one RV, one myocardium).
2. In every slice, holes inside the LV blood pool (e.g. papillary muscles predicted as myocardium) become
   LV blood pool, as in the ACDC convention where papillary muscles belong to the cavity.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from cmrseg.labels import BACKGROUND, LV, STRUCTURES

_CONNECTIVITY_3D = ndimage.generate_binary_structure(3, 3)


def largest_component(mask: np.ndarray) -> np.ndarray:
    components, count = ndimage.label(mask, structure=_CONNECTIVITY_3D)
    if count <= 1:
        return mask
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == sizes.argmax()


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
        result[largest_component(labels == structure.label)] = structure.label
    return fill_lv_holes(result)
