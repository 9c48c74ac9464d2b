"""The in-plane orientation the network was trained on, and the flip or quarter turn that brings a study to it.

ACDC's images, on which the networks are trained, are all displayed as the short-axis convention has it: the
patient's front (anterior) up and the patient's left to the right, so the RV lies left of the LV. Scanners and
sites store short-axis slices in other in-plane orientations (a Sunnybrook GE study has its RV below the LV;
the network then misses most of it). From the study's direction cosines, the patient's anterior and left
directions are projected into the slice plane; of the eight flips and quarter turns of the slice array, the
one that points them closest to up and right is applied before the network, and undone on its label maps.
A study already in that orientation (every ACDC study, and any without real direction cosines) is unchanged.
When the network finds no RV beside the LV in that view, segmentation tries it mirrored
(:meth:`InPlaneTransform.mirrored`, :func:`cmrseg.inference.network_view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

# LPS patient axes: +x is the patient's left, +y posterior, +z superior.
ANTERIOR = np.array([0.0, -1.0, 0.0])
LEFT = np.array([1.0, 0.0, 0.0])
# As displayed, in (y, x) array index steps: y down the rows, x along the columns.
UP, RIGHT = np.array([-1.0, 0.0]), np.array([0.0, 1.0])


@dataclass(frozen=True)
class InPlaneTransform:
    """A flip or quarter turn of the last two axes ``(y, x)`` of an array: transpose first, then
    ``numpy.rot90(quarter_turns)``."""

    transpose: bool = False
    quarter_turns: int = 0

    @property
    def identity(self) -> bool:
        return not self.transpose and self.quarter_turns % 4 == 0

    def describe(self) -> str:
        steps = (["mirrored about the diagonal"] if self.transpose else []) + (
            [f"turned {90 * (self.quarter_turns % 4)} degrees counter-clockwise"] if self.quarter_turns % 4 else [])
        return " and ".join(steps) or "unchanged"

    def apply(self, array: np.ndarray) -> np.ndarray:
        if self.transpose:
            array = np.swapaxes(array, -1, -2)
        return np.ascontiguousarray(np.rot90(array, self.quarter_turns, axes=(-2, -1)))

    def undo(self, array: np.ndarray) -> np.ndarray:
        array = np.rot90(array, -self.quarter_turns, axes=(-2, -1))
        if self.transpose:
            array = np.swapaxes(array, -1, -2)
        return np.ascontiguousarray(array)

    def spacing(self, spacing: tuple[float, float, float]) -> tuple[float, float, float]:
        """The ``(x, y, z)`` spacing of the transformed array (x and y swap when the axes do)."""
        swapped = self.transpose != (self.quarter_turns % 2 == 1)
        return (spacing[1], spacing[0], spacing[2]) if swapped else tuple(spacing)

    def mirrored(self) -> InPlaneTransform:
        """The transform that shows what this one shows, mirrored left-right: for a heart whose RV the
        network finds only so (situs inversus, or pixel data stored mirrored against the header)."""
        probe = np.arange(9).reshape(3, 3)
        wanted = self.apply(probe)[:, ::-1]
        return next(t for t in ALL_TRANSFORMS if np.array_equal(t.apply(probe), wanted))

    def vector_matrix(self) -> np.ndarray:
        """The 2 x 2 matrix that maps an in-plane vector ``(y, x)`` (array index steps) to its direction after
        :meth:`apply`; found by transforming a small array, so it cannot disagree with :meth:`apply`."""
        probe = np.zeros((5, 5), dtype=np.int8)
        probe[2, 3], probe[3, 2] = 1, 2  # one step along +x, one along +y from the centre (2, 2)
        moved = self.apply(probe)
        ex, ey = (np.argwhere(moved == value)[0] - 2 for value in (1, 2))
        return np.stack([ey, ex], axis=1).astype(float)  # columns: images of (1, 0) and (0, 1) in (y, x)


ALL_TRANSFORMS = tuple(InPlaneTransform(t, k) for t, k in product((False, True), range(4)))


def to_training_orientation(direction: np.ndarray) -> InPlaneTransform:
    """The flip or quarter turn that shows a study of ``direction`` (columns: the x, y, z axes in LPS)
    with the patient's anterior up and left to the right. Ties (a slice plane that holds neither direction)
    keep the identity."""
    direction = np.asarray(direction, dtype=float)
    wanted = [(np.array([direction[:, 1] @ patient, direction[:, 0] @ patient]), display)  # projected (y, x)
              for patient, display in ((ANTERIOR, UP), (LEFT, RIGHT))]
    best, best_score = InPlaneTransform(), -np.inf
    for transform in ALL_TRANSFORMS:
        matrix = transform.vector_matrix()
        score = sum(float((matrix @ projected) @ target) for projected, target in wanted)
        if score > best_score + 1e-9:
            best, best_score = transform, score
    return best
