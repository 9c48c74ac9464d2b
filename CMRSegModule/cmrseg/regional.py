"""Regional LV wall thickness and systolic thickening in the AHA segments 1-16 (Cerqueira et al., Circulation
2002; the apical cap, segment 17, is not on short-axis slices).

Levels: the slices with a closed LV ring (myocardium and blood pool) from base to apex (the base is found on
the ED frame, :func:`cmrseg.basal.basal_end`, and used for ES too), cut into thirds: basal, mid, apical (a
middle slice left over goes to mid).

Angles: in each slice, from the LV blood-pool centroid. The right-ventricular insertion points are the two
ends of the arc where the RV blood pool touches the myocardium; the anterior one (the end pointing more to
the patient's front, from the study's orientation) is the origin, and the segments run from it across the
septum (the RV side): at basal and mid level six 60 degree segments, anteroseptal and inferoseptal first, then
inferior, inferolateral, anterolateral and anterior; at apical level four 90 degree segments, the septal one
centred on the middle of the two septal 60 degree sectors. One origin per phase: the circular mean over the
slices where the RV touches the myocardium.

Thickness: along 360 rays from the centroid (one per degree), the length in mm of the first run of
myocardium (sampled every 0.1 mm, nearest voxel), averaged per segment over the rays and slices of the
segment. Rays through the centroid measure the wall perpendicularly where the ventricle is round and a
little more than that where it is not; this is the "centreline-free" radial method, stated as such.
Thickening = (ES - ED) / ED x 100 %.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from cmrseg.basal import basal_end
from cmrseg.labels import LV, MYO, RV

SEGMENTS: tuple[tuple[int, str, str], ...] = (
    (1, "basal", "basal anterior"), (2, "basal", "basal anteroseptal"), (3, "basal", "basal inferoseptal"),
    (4, "basal", "basal inferior"), (5, "basal", "basal inferolateral"), (6, "basal", "basal anterolateral"),
    (7, "mid", "mid anterior"), (8, "mid", "mid anteroseptal"), (9, "mid", "mid inferoseptal"),
    (10, "mid", "mid inferior"), (11, "mid", "mid inferolateral"), (12, "mid", "mid anterolateral"),
    (13, "apical", "apical anterior"), (14, "apical", "apical septal"), (15, "apical", "apical inferior"),
    (16, "apical", "apical lateral"),
)  # fmt: skip
RAY_STEP_MM = 0.1
RAY_LENGTH_MM = 120.0
ANGLES_DEG = np.arange(360.0)


def ring_slices(labels: np.ndarray, base: int) -> list[int]:
    """Slices with both LV blood pool and myocardium, ordered from the ``base`` slice's end to the apex."""
    with_ring = [z for z in range(labels.shape[0]) if (labels[z] == LV).any() and (labels[z] == MYO).any()]
    if not with_ring:
        return []
    return with_ring if abs(base - with_ring[0]) <= abs(base - with_ring[-1]) else with_ring[::-1]


def slice_levels(ordered: list[int]) -> dict[int, str]:
    """Basal, mid and apical thirds of the slices ordered base to apex."""
    n = len(ordered)
    third = n // 3
    return {z: ("basal" if i < third else "apical" if i >= n - third else "mid") for i, z in enumerate(ordered)}


def centroid_mm(mask: np.ndarray, spacing_xy: tuple[float, float]) -> np.ndarray:
    y, x = np.nonzero(mask)
    return np.array([x.mean() * spacing_xy[0], y.mean() * spacing_xy[1]])


def ray_thickness(myo: np.ndarray, centre_mm: np.ndarray, spacing_xy: tuple[float, float]) -> np.ndarray:
    """Wall thickness (mm) along a ray per degree from ``centre_mm``: the first run of myocardium; NaN where a
    ray meets none."""
    steps = np.arange(0.0, RAY_LENGTH_MM, RAY_STEP_MM)
    theta = np.deg2rad(ANGLES_DEG)[:, None]
    x = np.rint((centre_mm[0] + steps * np.cos(theta)) / spacing_xy[0]).astype(int)
    y = np.rint((centre_mm[1] + steps * np.sin(theta)) / spacing_xy[1]).astype(int)
    inside = (x >= 0) & (x < myo.shape[1]) & (y >= 0) & (y < myo.shape[0])
    hit = np.zeros(x.shape, dtype=bool)
    hit[inside] = myo[y[inside], x[inside]]
    start = np.argmax(hit, axis=1)  # first myocardium sample of each ray
    beyond = (np.arange(hit.shape[1]) >= start[:, None]) & ~hit
    stop = np.where(beyond.any(axis=1), np.argmax(beyond, axis=1), hit.shape[1])  # first sample after the run
    thickness = (stop - start) * RAY_STEP_MM
    thickness = np.where(hit.any(axis=1), thickness, np.nan)
    return thickness


def insertion_arc(labels2d: np.ndarray, centre_mm: np.ndarray, spacing_xy: tuple[float, float]
                  ) -> tuple[float, float] | None:  # fmt: skip
    """The two ends (degrees, image angle) of the arc where the RV blood pool touches the myocardium, in the
    order that runs through the arc with increasing angle; None when they do not touch."""
    contact = (labels2d == MYO) & ndimage.binary_dilation(labels2d == RV, structure=np.ones((3, 3), bool))
    if contact.sum() < 3:
        return None
    y, x = np.nonzero(contact)
    angles = np.sort(np.degrees(np.arctan2(y * spacing_xy[1] - centre_mm[1], x * spacing_xy[0] - centre_mm[0])) % 360)
    gaps = np.diff(np.append(angles, angles[0] + 360))
    widest = int(np.argmax(gaps))  # the arc is everything but the widest gap
    return float(angles[(widest + 1) % len(angles)]), float(angles[widest])


def anterior_origin(arcs: list[tuple[float, float]], direction: np.ndarray) -> tuple[float, int] | None:
    """(angle of the anterior insertion in degrees, sense towards the septum: +1 or -1), from the insertion
    arcs of the slices; ``direction`` is the study's LPS direction matrix (columns: x, y, slice normal)."""
    if not arcs:
        return None

    def anteriority(angle: float) -> float:  # how much an in-plane image direction points to the front (-P)
        rad = math.radians(angle)
        return -float((math.cos(rad) * direction[:, 0] + math.sin(rad) * direction[:, 1])[1])

    starts = np.radians([a for a, _ in arcs])
    ends = np.radians([b for _, b in arcs])
    start = math.degrees(math.atan2(np.sin(starts).mean(), np.cos(starts).mean())) % 360
    end = math.degrees(math.atan2(np.sin(ends).mean(), np.cos(ends).mean())) % 360
    # The arc runs from start to end with increasing angle: towards the septum is +1 from the start.
    return (start, +1) if anteriority(start) >= anteriority(end) else (end, -1)


def segment_of(angle: float, origin: float, sense: int, level: str) -> int:
    """AHA segment number of an image angle at a level, given the anterior insertion and the sense."""
    phi = (sense * (angle - origin)) % 360.0  # degrees from the anterior insertion, across the septum
    if level == "apical":
        return 13 + {0: 1, 1: 2, 2: 3, 3: 0}[int(((phi - 15.0) % 360.0) // 90.0)]
    first = 1 if level == "basal" else 7
    return first + {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 0}[int(phi // 60.0)]


def segment_thickness(labels: np.ndarray, spacing: tuple[float, float, float], direction: np.ndarray,
                      base: int, levels: dict[int, str] | None = None) -> dict[int, float] | None:  # fmt: skip
    """Mean wall thickness (mm) per AHA segment of one ``[z, y, x]`` frame whose base is at the ``base`` slice's
    end; None when it has fewer than three ring slices or no RV contact to place the segments. ``levels``
    (slice -> level) puts the slices at another frame's levels: ES is measured on ED's slices at ED's levels,
    as an apical cavity closed at ES would otherwise move slices into other thirds."""
    ordered = ring_slices(labels, base)
    if len(ordered) < 3:
        return None
    levels = slice_levels(ordered) if levels is None else {z: levels[z] for z in ordered if z in levels}
    xy = (float(spacing[0]), float(spacing[1]))
    centres = {z: centroid_mm(labels[z] == LV, xy) for z in ordered}
    arcs = [arc for z in ordered if (arc := insertion_arc(labels[z], centres[z], xy)) is not None]
    origin = anterior_origin(arcs, np.asarray(direction, dtype=float).reshape(3, 3))
    if origin is None:
        return None
    sums: dict[int, list[float]] = {}
    for z, level in levels.items():
        thickness = ray_thickness(labels[z] == MYO, centres[z], xy)
        for angle, value in zip(ANGLES_DEG, thickness, strict=True):
            if np.isfinite(value):
                sums.setdefault(segment_of(float(angle), *origin, level), []).append(float(value))
    return {number: float(np.mean(sums[number])) for number, _, _ in SEGMENTS if number in sums}


def regional_wall_thickness(ed: np.ndarray, es: np.ndarray, spacing, direction) -> list[dict] | None:
    """The 16 AHA segments with ED and ES wall thickness (mm) and thickening (%), ``None`` where a segment
    has no measurement; None when the ED frame cannot be divided into segments."""
    base = basal_end(ed)  # one base for both phases: ES decided on its own could turn the stack the other way
    levels = slice_levels(ring_slices(ed, base))  # ED's, for ES too
    at_ed = segment_thickness(ed, spacing, direction, base, levels)
    if at_ed is None:
        return None
    at_es = segment_thickness(es, spacing, direction, base, levels) or {}
    rows = []
    for number, level, name in SEGMENTS:
        ed_mm, es_mm = at_ed.get(number), at_es.get(number)
        thickening = 100.0 * (es_mm - ed_mm) / ed_mm if ed_mm and es_mm is not None else None
        rows.append({"segment": number, "name": name, "level": level, "ed_mm": ed_mm, "es_mm": es_mm,
                     "thickening_pct": thickening})  # fmt: skip
    return rows
