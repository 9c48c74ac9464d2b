"""Which series of a scanned DICOM folder is the cine short-axis stack: the one named, or else the stack with
the most slices x phases, where a stack may be joined from several series.

Scanners often store a short-axis cine as one series per breath-hold, down to one series per slice. Series
are joined into one stack when they continue one another (:func:`continues_stack`): the same study, image
grid and phases, at other slice positions. A parallel cine series on the same grid that is left out and
holds slices beyond the stack's ends (other phases, or a slice missing between) is refused, naming it: the
stack would cover only part of the heart. One left out at positions the stack has, or between its slices, is named in a
:class:`DicomReadWarning`. The choice is logged at INFO level on the reader's logger,
``cmrseg.io.dicom_cine``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from cmrseg.errors import CMRSegError
from cmrseg.io.dicom_scan import (
    GEOMETRY_TOLERANCE,
    POSITION_TOLERANCE_MM,
    DicomReadWarning,
    InstanceHeader,
    SeriesSummary,
    _group_series,
    _position_clusters,
    _Scan,
    _slice_normal,
    summarise,
    uneven_gaps,
)

logger = logging.getLogger("cmrseg.io.dicom_cine")


def _listing(series: list[SeriesSummary]) -> str:
    """The series found, on one line (an error is one line)."""
    return "; ".join(s.describe() for s in series)


def stack_size(series: SeriesSummary) -> tuple:
    """What the reader's choice maximises: multi-phase first, then slices x phases, then instances."""
    return series.num_phases > 1, series.num_positions * series.num_phases, series.num_instances


def choose_series(folder: Path, scan: _Scan, series_uid: str | None) -> SeriesSummary:
    series = _group_series(scan.headers)
    if not series:
        raise CMRSegError(
            f"No DICOM images in {folder} ({len(scan.non_dicom)} non-DICOM and {len(scan.unreadable)} "
            "unreadable files). Choose the folder that holds the cine short-axis DICOM series." + scan.skipped_note()
        )
    if series_uid is not None:
        for summary in series:
            if summary.series_uid == series_uid:
                joined = _warn_if_part_of_a_stack(summary, series)
                # named: read as asked, with a warning of what it leaves out (its stack's other parts said above)
                _check_left_out(folder, summary, [s for s in series if s.series_uid not in joined], refuse=False)
                return summary
        raise CMRSegError(
            f"No series with SeriesInstanceUID {series_uid} in {folder}. Name one of the series found: "
            + _listing(series)
        )
    candidates = [s for s in cine_stacks(series) if s.num_positions >= 2]
    if not candidates:
        raise CMRSegError(
            f"No cine short-axis series in {folder}: no series has images at several slice positions (series of "
            "one grid and phases at other positions are joined into a stack only when its slices are evenly "
            f"spaced: is a slice missing?). Series found: {_listing(series)}. Choose a folder with a short-axis "
            "stack."
        )
    best = max(candidates, key=stack_size)
    tied = [c for c in candidates if stack_size(c) == stack_size(best)]
    if len(tied) > 1:  # a repeated acquisition, or an export's stale files: which heart is measured is a guess
        how = ("move one to a folder of its own" if any(c.parts for c in tied) else
               "name one with --series SeriesInstanceUID (in Slicer: load one series), or give a folder of one")
        raise CMRSegError(
            f"{folder} holds {len(tied)} stacks of the same size ({best.num_positions} slices x {best.num_phases} "
            f"phases), and which to measure is not for CMRSeg to guess: {'; '.join(c.describe() for c in tied)}. "
            f"To measure one, {how}."
        )
    _check_left_out(folder, best, series)
    if len(series) > 1:
        kind = "multi-phase" if best.num_phases > 1 else "single-phase"
        logger.info(
            "Chose %s among %d series in %s: %s, with the most slices x phases of the %d stacks. "
            "Name another with series_uid. The series: %s.",
            best.describe(),
            len(series),
            folder,
            kind,
            len(candidates),
            _listing(series),
        )
    return best


def _warn_if_part_of_a_stack(named: SeriesSummary, series: list[SeriesSummary]) -> set[str]:
    """A series named that is one of several joined as a stack here is read alone, as asked: with part of the
    heart's slices, its volumes too small. Returns the UIDs of that stack's parts (none: not such a part)."""
    for stack in cine_stacks(series):
        parts = {part.series_uid for part in stack.parts}
        if len(stack.parts) > 1 and named.series_uid in parts:
            warnings.warn(
                f"{named.describe()} is one of {len(stack.parts)} series joined here as one stack "
                f"({stack.num_positions} slice positions); read alone, as named, it has {named.num_positions}. "
                "Leave out --series to read the whole stack.",
                DicomReadWarning,
                stacklevel=4,
            )
            return parts
    return set()


def cine_stacks(series: list[SeriesSummary]) -> list[SeriesSummary]:
    """The series with those that continue one another joined into one stack each (largest series first). A
    group whose slices would not be evenly spaced (a stray or repeated slice, a slice missing) is not joined:
    its series stay apart, so that a complete series among them is read alone as before."""
    groups: list[list[SeriesSummary]] = []
    stacks: list[SeriesSummary] = []
    for one in sorted(series, key=stack_size, reverse=True):
        for i, stack in enumerate(stacks):
            if continues_stack(stack, one):
                groups[i].append(one)
                ordered = sorted(groups[i], key=lambda s: (s.series_number is None, s.series_number or 0))
                stacks[i] = summarise([h for s in ordered for h in s.instances], tuple(ordered))
                break
        else:
            groups.append([one])
            stacks.append(one)
    return [part for stack in stacks for part in ([stack] if _evenly_spaced(stack) else stack.parts)]


def _evenly_spaced(stack: SeriesSummary) -> bool:
    return not stack.parts or not uneven_gaps(_positions(stack, _normal(stack)))


def _normal(series: SeriesSummary) -> np.ndarray:
    return _slice_normal(_first_located(series).orientation)


def _positions(series: SeriesSummary, normal: np.ndarray) -> list[float]:
    """The series' slice positions along ``normal``, ascending."""
    return [float(np.dot(normal, cluster[0].position)) for cluster in _position_clusters(series.instances)]


def _first_located(series: SeriesSummary) -> InstanceHeader | None:
    return next((h for h in series.instances if h.has_geometry), None)


def same_grid(a: InstanceHeader, b: InstanceHeader) -> bool:
    """One study, matrix, pixel spacing and orientation: what every image of a stack shares. (Not the frame of
    reference: anonymisation often gives every image its own, as in the shared Sunnybrook studies; a series
    is read all the same.)"""
    if (a.study_uid, a.rows, a.columns) != (b.study_uid, b.rows, b.columns):
        return False
    spacing = np.abs(np.subtract(a.pixel_spacing, b.pixel_spacing)) / np.maximum(np.abs(a.pixel_spacing), 1.0)
    return bool(spacing.max() <= GEOMETRY_TOLERANCE
                and np.abs(np.subtract(a.orientation, b.orientation)).max() <= GEOMETRY_TOLERANCE)


def _shares_a_position(stack: SeriesSummary, other: SeriesSummary) -> bool:
    normal = _normal(stack)
    own = _positions(stack, normal)
    return any(min(abs(q - p) for p in own) <= POSITION_TOLERANCE_MM for q in _positions(other, normal))


def _parallel_on_its_grid(stack: SeriesSummary, other: SeriesSummary) -> bool:
    a, b = _first_located(stack), _first_located(other)
    return a is not None and b is not None and same_grid(a, b)


def continues_stack(stack: SeriesSummary, other: SeriesSummary) -> bool:
    """Whether ``other`` is more slices of ``stack``: the same phases on the same grid, and no slice at a
    position that ``stack`` has."""
    return (other.num_phases == stack.num_phases and _parallel_on_its_grid(stack, other)
            and not _shares_a_position(stack, other))


def _beyond_its_ends(stack: SeriesSummary, other: SeriesSummary) -> bool:
    """Whether ``other`` has a slice position beyond the ends of ``stack``'s slices by half a slice spacing or
    more (a slice that would extend it; nearer, a repeat of the end slice, re-planned a little)."""
    normal = _normal(stack)
    own = _positions(stack, normal)
    margin = max(POSITION_TOLERANCE_MM, 0.5 * float(np.median(np.diff(own)))) if len(own) > 1 else POSITION_TOLERANCE_MM
    return any(q < min(own) - margin or q > max(own) + margin for q in _positions(other, normal))


def _check_left_out(folder: Path, chosen: SeriesSummary, series: list[SeriesSummary], refuse: bool = True) -> None:
    """Refuse a stack chosen (``refuse``) when a cine series on its grid, left out, holds slices beyond its
    ends: the heart measured without them reads too small (another breath-hold with another phase count, say).
    Name the others left out (a repeat at positions the stack has, a stray between its slices), and all of them
    for a stack the user named, in a warning."""
    members = {s.series_uid for s in chosen.parts} or {chosen.series_uid}
    left_out = [other for other in series if other.series_uid not in members and other.num_phases >= 2
                and _parallel_on_its_grid(chosen, other)]  # fmt: skip
    extending = [other for other in left_out if _beyond_its_ends(chosen, other)]
    if extending and refuse:
        how = ("move the other series out of the folder" if chosen.parts else
               f"name it with --series {chosen.series_uid} (in Slicer: load that series alone)")
        raise CMRSegError(
            f"{folder}: the cine stack found ({chosen.describe()}) lacks the slices beyond its ends that "
            + "; ".join(f"{o.describe()} holds on its grid, {_why_left_out(chosen, o)}" for o in extending)
            + ": measured without them, the heart's volumes would be too small. Export the short-axis cine with the "
            f"same phases in every slice and no slice missing; to measure the stack alone all the same, {how}."
        )
    for other in left_out:
        warnings.warn(
            f"{other.describe()} is a cine on the grid of the stack read ({chosen.describe()}), "
            f"{_why_left_out(chosen, other)}; it was not read. If it holds slices of this heart the stack lacks, the "
            "volumes are too small: export the short-axis cine with the same phases in every slice.",
            DicomReadWarning,
            stacklevel=4,
        )


def _why_left_out(chosen: SeriesSummary, other: SeriesSummary) -> str:
    if _shares_a_position(chosen, other):
        if _beyond_its_ends(chosen, other):
            return "repeating some of the stack's slice positions and holding others beyond its ends"
        return "at slice positions the stack already has"
    if other.num_phases != chosen.num_phases:
        return f"at other slice positions, with {other.num_phases} phases against the stack's {chosen.num_phases}"
    return "at other slice positions, which would make the stack's slices unevenly spaced"
